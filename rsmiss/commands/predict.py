"""``rsmiss predict``: classification map of a whole scene (GeoTIFF + PNG)."""

from __future__ import annotations

import click

from rsmiss.commands.options import progress_option, root_option, show_progress


@click.command("predict")
@click.argument("run")
@root_option
@click.option(
    "--cube",
    type=click.Path(),
    default=None,
    help="Cube to classify (default: the run's own); same modalities and bands.",
)
@click.option(
    "--missing",
    multiple=True,
    metavar="MOD[,MOD]",
    help="Modalities to treat as absent for every pixel, e.g. hs (repeat or comma-separate).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="GeoTIFF path (default: runs/<id>/predict/<cube>.tif); PNG beside it.",
)
@click.option(
    "--batch-size", type=int, default=2048, show_default=True, help="Pixels per forward pass."
)
@progress_option
def predict_cmd(run, root, cube, missing, out, batch_size, progress) -> None:
    """Classify every pixel of a cube's scene with a trained RUN (id or directory)."""
    from rsmiss.inference import load_run

    if batch_size < 1:
        raise click.BadParameter(f"must be at least 1, got {batch_size}", param_hint="--batch-size")
    r = load_run(run, root)
    tif = r.predict(
        cube=cube,
        missing=tuple(m.strip() for value in missing for m in value.split(",") if m.strip()),
        out=out,
        batch_size=batch_size,
        progress=show_progress(progress),
    )
    click.echo(f"wrote {tif} and {tif.with_suffix('.png')}")


def register(group: click.Group) -> None:
    group.add_command(predict_cmd)
