"""``rsmiss download NAME ...``: catalog sources -> ROOT/raw/NAME/ (verified); weights by tag."""

from __future__ import annotations

import click

from rsmiss.commands.options import progress_option, root_option

MIRROR_HELP = (
    "Fetch from this mirror instead of the catalog's URLs (repeatable; tried in order). A "
    "mirror holds each file under <host>/<path> of its original URL. Default: $RSMISS_MIRROR."
)
mirror_option = click.option("--mirror", "mirrors", multiple=True, metavar="URL", help=MIRROR_HELP)


@click.command("download")
@click.argument("datasets", nargs=-1)
@root_option
@click.option(
    "--raw",
    type=click.Path(file_okay=False),
    default=None,
    help="Put the files here instead of ROOT/raw/NAME (one dataset only).",
)
@mirror_option
@click.option("--force", is_flag=True, help="Fetch again even if the files are present and right.")
@click.option(
    "--weights",
    "weights_tag",
    default=None,
    metavar="TAG",
    help="Also fetch CLIP weights by open_clip tag (openai, laion2b_s34b_b88k, ...) into "
    "ROOT/weights/.",
)
@click.option(
    "--backbone",
    default="vit-b-16",
    show_default=True,
    help="Architecture whose --weights tag is fetched.",
)
@progress_option
def download_cmd(datasets, root, raw, mirrors, force, weights_tag, backbone, progress) -> None:
    """Download the raw files of DATASETS (catalog names or YAML paths) into ROOT/raw/NAME/.

    Each file is checked against the catalog's sha256 before it is published; files already
    present and right are skipped; an interrupted download resumes. Datasets whose licence
    needs a manual step say where to get which file.
    """
    from rsmiss.download import download_dataset
    from rsmiss.errors import ConfigError

    if not datasets and weights_tag is None:
        raise ConfigError("download: name a dataset (e.g. trento) or pass --weights TAG")
    if raw is not None and len(datasets) != 1:
        raise ConfigError("--raw: takes exactly one dataset; name one, or drop --raw")
    for name in datasets:
        report = download_dataset(
            name, root=root, raw=raw, mirrors=mirrors, force=force, progress=progress
        )
        click.echo(
            f"{name}: {len(report.fetched)} file(s) downloaded, {len(report.present)} already "
            f"present -> {report.raw}"
        )
    if weights_tag is not None:
        from rsmiss.models.pretrained import fetch_weights

        path, digest = fetch_weights(
            backbone,
            weights_tag,
            root=root,
            mirrors=mirrors,
            force=force,
        )
        click.echo(f"{backbone} {weights_tag}: {path} (sha256 {digest})")


def register(group: click.Group) -> None:
    group.add_command(download_cmd)
