"""``rsmiss benchmark``: run pipeline grids and write reports beside the paper's numbers."""

from __future__ import annotations

import click

from rsmiss.commands.options import progress_option, root_option, show_progress


@click.command("benchmark")
@click.argument("pipelines", nargs=-1, required=True, type=click.Path(dir_okay=False))
@root_option
@click.option(
    "--backbone-weights",
    type=click.Path(dir_okay=True),
    default=None,
    help="CLIP weights file or open_clip tag such as openai (downloaded into ROOT/weights/; "
    "default: $RSMISS_BACKBONE_WEIGHTS, else ROOT/weights/<Arch>.pt such as ViT-B-16.pt).",
)
@click.option(
    "--dry-run", is_flag=True, help="List every cell and the GPU-time estimate; run nothing."
)
@click.option(
    "--seeds",
    default=None,
    metavar="0,1,2",
    help="Seeds to run, replacing each pipeline's own list (reports: mean ± std over them).",
)
@progress_option
def benchmark_cmd(pipelines, root, backbone_weights, dry_run, seeds, progress) -> None:
    """Run PIPELINES (YAML grids under pipelines/): ingest -> scenarios -> train -> report.

    Finished cells are skipped, so a killed benchmark continues where it stopped. Reports go
    to ROOT/reports/<pipeline>/ (runs.csv, report.md, oa_vs_rate.png).
    """
    from rsmiss.benchmark.pipeline import parse_seeds
    from rsmiss.benchmark.runner import run_benchmark

    log = click.echo if dry_run else (lambda msg: click.echo(msg, err=True))
    outcomes = run_benchmark(
        pipelines,
        root=root,
        backbone_weights=backbone_weights,
        dry_run=dry_run,
        log=log,
        progress=show_progress(progress),
        seeds=None if seeds is None else parse_seeds(seeds),
    )
    if dry_run:
        return
    for o in outcomes:
        where = o.report.get("markdown", "no report (no cell finished)")
        click.echo(
            f"{o.pipeline.name}: {len(o.records)} cells ({o.trained} runs trained, "
            f"{o.skipped} found finished) -> {where}"
        )


def register(group: click.Group) -> None:
    group.add_command(benchmark_cmd)
