"""``rsmiss predict``: classification map of a scene or a window of it (COG GeoTIFF + PNG)."""

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
    "--window",
    metavar="ROW0:ROW1,COL0:COL1",
    default=None,
    help="Map only these rows and columns of the scene (end exclusive).",
)
@click.option(
    "--bbox",
    metavar="MINX,MINY,MAXX,MAXY",
    default=None,
    help="Map only the pixels this box (in the cube's CRS) touches.",
)
@click.option(
    "--tile", type=int, default=512, show_default=True, help="Tile side in pixels (resume unit)."
)
@click.option(
    "--devices",
    type=int,
    default=1,
    show_default=True,
    help="Local dask worker processes for the tiles (one per GPU when there are GPUs).",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    default=None,
    help="Spread the tiles over an existing dask cluster instead.",
)
@click.option(
    "--confidence",
    is_flag=True,
    help="Also write <out>.confidence.tif: the class's softmax probability, in percent.",
)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Pixels per forward pass (default: 128 on CPU, 2048 on a GPU).",
)
@progress_option
def predict_cmd(
    run, root, cube, missing, out, window, bbox, tile, devices, scheduler, confidence,
    batch_size, progress,
) -> None:  # fmt: skip
    """Classify every pixel of a cube's scene (or a window) with a trained RUN (id or dir).

    Tiles are saved as they finish; a killed predict started again resumes at the first
    unfinished tile and writes the same bytes.
    """
    from rsmiss.inference import load_run

    r = load_run(run, root)
    tif = r.predict(
        cube=cube,
        missing=tuple(m.strip() for value in missing for m in value.split(",") if m.strip()),
        out=out,
        window=window,
        bbox=bbox,
        tile=tile,
        devices=devices,
        scheduler=scheduler,
        confidence=confidence,
        batch_size=batch_size,
        progress=show_progress(progress),
    )
    click.echo(f"wrote {tif} and {tif.with_suffix('.png')}")


def register(group: click.Group) -> None:
    group.add_command(predict_cmd)
