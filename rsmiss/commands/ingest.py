"""``rsmiss ingest NAME|YAML``: raw files -> ROOT/cubes/NAME.zarr."""

from __future__ import annotations

import click

from rsmiss.commands.download import mirror_option
from rsmiss.commands.options import progress_option, root_option


@click.command("ingest")
@click.argument("dataset")
@click.option(
    "--raw",
    "raw",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder holding the raw files (default: ROOT/raw/NAME).",
)
@root_option
@click.option(
    "--patch-size",
    type=int,
    default=14,
    show_default=True,
    help="Patch side P (centre pixel at P//2); 14 = ViT-B/16 token grid at 224 px.",
)
@click.option(
    "--no-patches",
    is_flag=True,
    help="Store only the scene and the sample index; patches are cut on the fly.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Start a local dask.distributed cluster with N worker processes.",
)
@click.option(
    "--scheduler", default=None, help="Address of an existing dask scheduler (tcp://host:port)."
)
@click.option("--strict", is_flag=True, help="Checksum mismatches are errors, not warnings.")
@click.option("--force", is_flag=True, help="Rebuild even if the cube is up to date.")
@click.option(
    "--download",
    is_flag=True,
    help="First fetch missing or wrong raw files from the catalog's sources (rsmiss download).",
)
@mirror_option
@progress_option
def ingest_cmd(
    dataset,
    raw,
    root,
    patch_size,
    no_patches,
    workers,
    scheduler,
    strict,
    force,
    download,
    mirrors,
    progress,
):
    """Build the cube of DATASET (a catalog name such as trento, or a dataset YAML path).

    Checks the raw files against the catalog (keys, shapes, checksums), co-registers every
    modality onto the reference grid, standardises bands with training-pixel statistics and
    writes ROOT/cubes/NAME.zarr atomically. Re-running with unchanged inputs does nothing.
    """
    from rsmiss.ingest import ingest

    if patch_size < 1:
        raise click.BadParameter("must be a positive number of pixels", param_hint="--patch-size")
    if workers is not None and workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    if mirrors and not download:
        raise click.BadParameter("only with --download", param_hint="--mirror")
    if download:
        from rsmiss.download import download_dataset

        download_dataset(
            dataset,
            root=root,
            raw=raw,
            mirrors=mirrors,
            progress=progress,
        )
    ingest(
        dataset,
        raw=raw,
        root=root,
        patch_size=patch_size,
        patches=not no_patches,
        workers=workers,
        scheduler=scheduler,
        strict=strict,
        force=force,
        progress=progress,
    )


def register(group: click.Group) -> None:
    group.add_command(ingest_cmd)
