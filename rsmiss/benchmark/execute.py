"""Run the cells: one *job* per training run (the run, then every cell that reads it), in
this process one after the other, or as dask tasks (:mod:`rsmiss.benchmark.cluster`).

A job plans its run when it starts, so a finished run is skipped and a run whose process
died resumes from its checkpoint, wherever the job lands. Jobs return their records (plain
dicts) and the lines to log; the caller's :class:`Outcome` collects them in cell order, so
the report does not depend on where or in which order the cells ran.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rsmiss.benchmark.collect import Outcome, record
from rsmiss.benchmark.pipeline import Cell, Pipeline, placement_options
from rsmiss.benchmark.prepare import scenario_of
from rsmiss.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One training run and the cells it serves: ``(index in the pipeline's cells, cell)``."""

    run_id: str
    cells: tuple[tuple[int, Cell], ...]

    @property
    def label(self) -> str:
        return self.cells[0][1].cell_id


@dataclass
class JobResult:
    """What a job did: its run's status before it started (``new``, ``resume``,
    ``finished``), whether the run then finished (``executed``), the training seconds, the
    records and log lines per cell index, and the cell that raised (``failed``, with
    ``error``) if one did."""

    run_id: str
    status: str = "new"
    executed: bool = False
    seconds: float = 0.0
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    lines: list[tuple[int, str]] = field(default_factory=list)
    failed: str | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Context:
    """What every job of a pipeline needs, small enough to ship to a worker."""

    pipe: Pipeline
    root: str
    weights: str | None
    progress: bool = False
    log_level: int | None = None  # what the client shows of the "rsmiss" logs; None = nothing


def plan_cell(ctx: Context, cell: Cell) -> Any:
    """The :class:`~rsmiss.training.PlannedRun` that trains ``cell`` (status read now)."""
    from rsmiss.training import plan_runs

    r = ctx.pipe.recipe
    sets = tuple(f"{k}={json.dumps(v)}" for k, v in sorted(r.train_options.items()))
    kwargs: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "lr", "precision", "devices"):
        if getattr(r, key) is not None:
            kwargs[key] = getattr(r, key)
    plans = plan_runs(
        ctx.root,
        datasets=(cell.dataset,),
        scenarios=(scenario_of(cell),),
        methods=(cell.method,),
        options={**cell.options, **placement_options(cell.placement)},
        sets=sets,
        backbone=r.backbone,
        backbone_weights=None if r.random_init else ctx.weights,
        random_init=r.random_init,
        seed=cell.seed,
        **kwargs,
    )
    assert len(plans) == 1, [p.config.run_id for p in plans]
    return plans[0]


def make_jobs(ctx: Context, cells: Sequence[Cell]) -> list[Job]:
    """Group the cells by the run they train or read, in the order runs first appear.

    Two cells of different tables may share a run (same method, scenario and seed): one job
    trains it, so no two workers ever write the same run folder."""
    run_of: dict[Cell, str] = {}
    groups: dict[str, list[tuple[int, Cell]]] = {}
    for i, cell in enumerate(cells):
        train_cell = cell.train_cell
        if train_cell not in run_of:
            run_of[train_cell] = plan_cell(ctx, train_cell).config.run_id
        groups.setdefault(run_of[train_cell], []).append((i, cell))
    return [Job(run_id, tuple(members)) for run_id, members in groups.items()]


def run_job(job: Job, ctx: Context) -> JobResult:
    """Train (or skip, or resume) the job's run, then score every cell of it.

    Errors of a cell are returned, not raised, so the cells of the job that finished
    before it still reach the report."""
    from rsmiss.inference import load_run
    from rsmiss.training import execute

    res = JobResult(job.run_id)
    run = None
    for index, cell in job.cells:
        try:
            if run is None:
                plan = plan_cell(ctx, cell.train_cell)
                res.status = plan.status
                t0 = time.perf_counter()
                run = load_run(execute(plan, progress=ctx.progress))
                res.seconds = time.perf_counter() - t0
                res.executed = True
                how = (
                    "done before, skipped"
                    if plan.status == "finished"
                    else f"trained in {res.seconds:.0f} s"
                )
                res.lines.append((index, f"run {plan.config.run_id} {how}"))
            if cell.is_eval:
                sid = scenario_of(cell, True)
                cached = run.path / "eval" / f"{sid}.json"
                scores = json.loads(cached.read_text()) if cached.is_file() else run.evaluate(sid)
                res.lines.append((index, f"evaluated on {sid}"))
            else:
                sid, scores = None, run.metrics or {}
            rec = record(cell, run, scores, sid)
        except Exception as exc:
            res.failed = f"{cell.cell_id} ({type(exc).__name__}: {exc})"
            res.error = exc
            return res
        res.records.append((index, rec))
        paper = f" (paper {rec['paper_oa']:.2f})" if rec["paper_oa"] is not None else ""
        oa = "—" if rec["oa"] is None else f"{rec['oa']:.2f}"
        res.lines.append((index, f"OA {oa}{paper}"))
    return res


def run_job_on_worker(job: Job, ctx: Context, threads: int | None) -> JobResult:
    """:func:`run_job` as a dask task: ``threads`` intra-op threads for torch (workers that
    share a machine's cores would otherwise each start one thread per core), dask's local
    scheduler for the cell's reads, and an error that cannot travel back to the client is
    sent as its text."""
    import dask

    from rsmiss.training.distributed import show_log_lines

    show_log_lines(ctx.log_level)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    # The cell's own reads (xarray over dask arrays) stay in this process: on a worker, dask
    # would otherwise send them to the cluster, whose slots the cells themselves hold.
    with dask.config.set(scheduler="threads"):
        res = run_job(job, ctx)
    if res.error is not None:
        try:
            pickle.dumps(res.error)
        except Exception:
            res.error = RuntimeError(res.failed)
    return res


def absorb(out: Outcome, res: JobResult) -> None:
    """Add a finished job's records to ``out`` and log its lines, tagged ``[i/n] cell``."""
    n = len(out.cells)
    for index, line in res.lines:
        logger.info("[%d/%d] %s: %s", index + 1, n, out.cells[index].cell_id, line)
    for index, rec in res.records:
        out.add(index, rec)
    if res.executed:
        if res.status == "finished":
            out.skipped += 1
        else:
            out.trained += 1
    if res.failed and not out.failed:
        out.failed = res.failed


def run_jobs(out: Outcome, jobs: Sequence[Job], ctx: Context) -> None:
    """Every job in this process, one after the other; stops at the first failing cell
    (``out.failed`` names it) and raises its error."""
    for job in jobs:
        try:
            res = run_job(job, ctx)
        except BaseException as exc:  # Ctrl-C or a signal: the report still names the run
            out.failed = out.failed or f"{job.label} ({type(exc).__name__}: {exc})"
            raise
        absorb(out, res)
        if res.error is not None:
            raise res.error


def plan_jobs(
    out: Outcome, ws: Workspace, weights: str | None, progress: bool
) -> tuple[Context, list[Job]]:
    """The context and the jobs of ``out``'s cells."""
    from rsmiss.training.distributed import shown_log_level

    ctx = Context(out.pipeline, str(ws.root), weights, progress, shown_log_level())
    return ctx, make_jobs(ctx, out.cells)
