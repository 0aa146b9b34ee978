"""``rsmiss synth``: a synthetic benchmark scene in the official raw file formats."""

from __future__ import annotations

import click


@click.command("synth")
@click.argument("dataset", metavar="DATASET")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Folder to write the raw files into (created if needed; the dataset's files are "
    "replaced).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed; the same seed and scale give byte-identical files.",
)
@click.option(
    "--scale",
    type=float,
    default=None,
    help="Shrink both sides by this factor, 0 < F <= 1 (default 1 = real size).",
)
@click.option(
    "--real-from",
    "real_from",
    type=click.Path(path_type=str),
    default=None,
    help="Trento only: folder with the real Italy_lidar.mat, allgrd.mat, "
    "TRLabel.mat, TSLabel.mat; they are copied and only HS is synthetic.",
)
def synth(dataset: str, out: str, seed: int, scale: float | None, real_from: str | None) -> None:
    """Write a synthetic DATASET (houston2013, trento, augsburg) in its official raw format."""
    from rsmiss.synth import synthesize

    path = synthesize(dataset, out, seed=seed, scale=scale, real_from=real_from)
    click.echo(f"wrote synthetic {dataset} to {path}")


def register(group: click.Group) -> None:
    group.add_command(synth)
