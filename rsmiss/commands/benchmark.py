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
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Run the cells as tasks on this dask cluster (its workers must see ROOT; workers "
    "started with --resources GPU=1 get one cell per GPU).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    metavar="N",
    help="Run the cells on N local dask worker processes (one GPU each when there are GPUs).",
)
@progress_option
def benchmark_cmd(
    pipelines, root, backbone_weights, dry_run, seeds, scheduler, workers, progress
) -> None:
    """Run PIPELINES (YAML grids under pipelines/): ingest -> scenarios -> train -> report.

    Finished cells are skipped, so a killed benchmark continues where it stopped. Reports go
    to ROOT/reports/<pipeline>/ (runs.csv, report.md, oa_vs_rate.png). Cells run one after
    the other here, or as dask tasks with --workers or --scheduler (same report).
    """
    from rsmiss.benchmark.pipeline import parse_seeds
    from rsmiss.benchmark.runner import run_benchmark
    from rsmiss.benchmark.validate import plan_text

    outcomes = run_benchmark(
        pipelines,
        root=root,
        backbone_weights=backbone_weights,
        dry_run=dry_run,
        progress=show_progress(progress),
        seeds=None if seeds is None else parse_seeds(seeds),
        scheduler=scheduler,
        workers=workers,
    )
    if dry_run:
        for o in outcomes:
            click.echo(plan_text(o.pipeline, o.cells))
        return
    for o in outcomes:
        where = o.report.get("markdown", "no report (no cell finished)")
        click.echo(
            f"{o.pipeline.name}: {len(o.records)} cells ({o.trained} runs trained, "
            f"{o.skipped} found finished) -> {where}"
        )


def register(group: click.Group) -> None:
    group.add_command(benchmark_cmd)
