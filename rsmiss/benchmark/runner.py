"""Run a pipeline: validate -> prepare (synth, ingest, weights, scenarios) -> execute the
cells -> collect the records into a report.

Every stage is idempotent (an up-to-date cube, scenario or finished run is skipped, a run
killed mid-way resumes from its checkpoint), so re-running a killed benchmark continues
where it stopped. Everything that can be checked before any work (the YAML, the methods
and their options, the raw files and the weights) is checked first. This module owns the
:class:`Outcome`, so the report is written even when a cell raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from rsmiss.benchmark.collect import Outcome, write_outcome_report
from rsmiss.benchmark.execute import plan_jobs, run_jobs
from rsmiss.benchmark.pipeline import Pipeline, expand, load_pipeline
from rsmiss.benchmark.preflight import (
    missing_inputs,
    missing_listing,
    missing_message,
    missing_summary,
)
from rsmiss.benchmark.prepare import build_needed_scenarios, pipeline_weights, prepare_data
from rsmiss.benchmark.validate import validate_methods, validate_recipe
from rsmiss.errors import ConfigError, DataError
from rsmiss.workspace import Workspace

logger = logging.getLogger(__name__)


def run_pipeline(
    pipe: Pipeline,
    root: str | Path | None = None,
    backbone_weights: str | None = None,
    progress: bool = False,
    cluster: object | None = None,
) -> Outcome:
    """One pipeline, end to end; the report is written even when a cell fails midway.

    ``cluster`` (a :class:`rsmiss.benchmark.cluster.Cluster`) runs the cells as dask tasks;
    without it they run here, one after the other."""
    ws = Workspace(root)
    cells = expand(pipe)
    validate_recipe(pipe)
    validate_methods(pipe, cells)
    missing = missing_inputs([pipe], ws.root, backbone_weights)
    if missing:
        raise DataError(missing_message(missing))
    prepare_data(pipe, ws, progress)
    backbone_weights = pipeline_weights(pipe, ws, backbone_weights)
    build_needed_scenarios(cells, ws)
    outcome = Outcome(pipe, cells)
    try:
        ctx, jobs = plan_jobs(outcome, ws, backbone_weights, progress)
        if cluster is None:
            run_jobs(outcome, jobs, ctx)
        else:
            from rsmiss.benchmark.cluster import run_jobs_on_cluster

            run_jobs_on_cluster(outcome, jobs, ctx, cluster)  # type: ignore[arg-type]
    finally:
        write_outcome_report(outcome, ws, backbone_weights)
    return outcome


def run_benchmark(
    pipelines: Sequence[str | Path],
    root: str | Path | None = None,
    backbone_weights: str | None = None,
    dry_run: bool = False,
    progress: bool = False,
    seeds: Sequence[int] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> list[Outcome]:
    """Load every pipeline and check every input first; then run them one after the other.

    ``seeds`` replaces every pipeline's own ``seeds`` list (``rsmiss benchmark --seeds``).
    ``scheduler`` (a dask scheduler address) or ``workers`` (local worker processes) run
    the cells of each pipeline as dask tasks; see :mod:`rsmiss.benchmark.cluster`."""
    from rsmiss.benchmark.cluster import check_cluster_flags, connect

    if not pipelines:
        raise ConfigError("give at least one pipeline YAML (e.g. pipelines/paper-table1.yaml)")
    check_cluster_flags(scheduler, workers)
    loaded = [load_pipeline(p) for p in pipelines]
    if seeds is not None:
        loaded = [p.model_copy(update={"seeds": list(seeds)}) for p in loaded]
    names = [p.name for p in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(f"two pipelines share a name ({names}); each needs its own report folder")
    expanded = [(p, expand(p)) for p in loaded]
    for p, cells in expanded:
        validate_recipe(p)
        validate_methods(p, cells)
    if dry_run:  # the caller prints plan_text() of each
        return [Outcome(p, cells) for p, cells in expanded]
    missing = missing_inputs(loaded, root, backbone_weights)
    if missing:
        for line in missing_listing(missing):
            logger.info(line)
        raise DataError(missing_summary(missing, Workspace(root).root))
    distributed = scheduler is not None or workers is not None
    with connect(scheduler, workers) if distributed else nullcontext() as cluster:
        return [run_pipeline(p, root, backbone_weights, progress, cluster) for p in loaded]
