"""What a pipeline produced: the :class:`Outcome` its caller owns, one record per finished
cell (the row of ``runs.csv``), and the report written from them.

The records are plain dicts of JSON-friendly values, so a cell run on a dask worker sends
its record back to the client as it is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmiss.benchmark.pipeline import Cell, Pipeline, expand, placement_options
from rsmiss.benchmark.validate import max_epochs
from rsmiss.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one pipeline produced: its cells, one record per finished cell (in cell order),
    the report files, and the cell that stopped it (``failed``: cell id and error).

    The caller creates it and hands it to the executor, so the records of the cells that
    finished before one raised are still there to report."""

    pipeline: Pipeline
    cells: list[Cell]
    records: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Path] = field(default_factory=dict)
    trained: int = 0
    skipped: int = 0
    failed: str | None = None
    # cell index -> record, filled as cells finish (in any order on a cluster)
    finished: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, index: int, record: dict[str, Any]) -> None:
        """Record cell ``index``; ``records`` stays in the order of ``cells``."""
        self.finished[index] = record
        self.records = [self.finished[i] for i in sorted(self.finished)]


def record(cell: Cell, run: Any, scores: dict[str, Any], eval_sid: str | None) -> dict[str, Any]:
    """The ``runs.csv`` row of ``cell``: its run, its scores and the paper's number beside."""
    from rsmiss.reports.paper import lookup

    m = run.metrics or {}
    cfg = run.config
    overall = scores.get("overall", {})
    hit = lookup(cell.paper_query())
    oa, kappa = overall.get("oa"), overall.get("kappa")
    perf = run.perf or run.environment or {}
    return {
        "pipeline": cell.pipeline,
        "table": cell.table or "",
        "group_id": cell.group_id,
        "cell_id": cell.cell_id,
        "dataset": cell.dataset,
        "modalities": ",".join(m.get("modalities") or run.modalities),
        "setting": cell.setting,
        "eval_setting": cell.eval_setting or "",
        "rate": cell.rate,
        "availability": json.dumps(dict(cell.availability)) if cell.availability else "",
        "method": cell.method,
        "variant": cell.variant,
        "paper_name": cell.paper_name,
        "placement": cell.placement or "",
        "options": json.dumps(
            {**cell.options, **placement_options(cell.placement)}, sort_keys=True
        ),
        "seed": cell.seed,
        "run_id": run.run_id,
        "scenario_id": cfg.scenario_id,
        "eval_scenario_id": eval_sid or "",
        "status": "finished",
        "oa": oa,
        "aa": overall.get("aa"),
        "kappa": kappa,
        "pattern_oa": json.dumps(
            {k: v.get("oa") for k, v in sorted(scores.get("by_pattern", {}).items())}
        ),
        "paper_table": hit.table if hit else "",
        "paper_row": hit.row if hit else "",
        "paper_oa": hit.oa if hit else None,
        "paper_kappa": hit.kappa if hit else None,
        "diff_oa": round(oa - hit.oa, 2) if hit and oa is not None else None,
        "diff_kappa": round(kappa - hit.kappa, 2)
        if hit and hit.kappa is not None and kappa is not None
        else None,
        "trainable_params": (m.get("parameters") or {}).get("trainable"),
        "method_params": (m.get("parameters") or {}).get("method"),
        "epochs": cfg.epochs,
        "epochs_used": m.get("epochs_used", cfg.epochs),
        **_routing_fields(scores.get("routing"), getattr(run, "path", None), eval_sid),
        "backbone": cfg.backbone,
        "backbone_sha256": cfg.backbone_weights_sha256 or "",
        "random_init": cfg.random_init,
        "synthetic": m.get("synthetic_data"),
        "device": perf.get("device", ""),
    }


def _routing_fields(
    routing: dict | None, run_dir: Path | None, eval_sid: str | None
) -> dict[str, Any]:
    """The report's routing columns: separation overall and per pattern, collapse flag and
    the heat-map, relative to the workspace root (of the run's own test set; re-scored
    cells have no PNG)."""
    png = Path(run_dir or ".") / "routing.png"
    if not routing:
        return {"routing_separation": None, "routing_by_pattern": "", "routing_collapsed": ""}
    sep = routing.get("separation") or {}
    return {
        "routing_separation": sep.get("overall"),
        "routing_by_pattern": json.dumps(sep.get("by_pattern") or {}, sort_keys=True),
        "routing_collapsed": bool(routing.get("collapsed")),
        "routing_png": f"runs/{png.parent.name}/routing.png"
        if run_dir is not None and eval_sid is None and png.is_file()
        else "",
    }


def count_groups(pipe: Pipeline) -> int:
    """Report groups of ``pipe`` (cells without the seed): what a report averages over."""
    return len({c.group_id for c in expand(pipe)})


def report_header(
    pipe: Pipeline,
    ws: Workspace,
    records: Sequence[dict[str, Any]],
    weights: str | None = None,
    failed: str | None = None,
) -> Any:
    """Header facts read from what actually ran (cube attrs, run configs, perf files)."""
    from rsmiss.ingest.store import read_attrs
    from rsmiss.models.backbone import describe_weights
    from rsmiss.reports.tables import ReportHeader

    datasets = {}
    for ds in pipe.dataset_names():
        attrs = read_attrs(ws.cube(ds))
        if attrs is None:
            datasets[ds] = "not ingested"
        else:
            synthetic = attrs.get("synthetic")
            datasets[ds] = "synthetic" if synthetic not in (None, False, "false", "") else "real"
    shas = sorted({r["backbone_sha256"] for r in records if r.get("backbone_sha256")})
    return ReportHeader(
        pipeline=pipe.name,
        description=pipe.description,
        backbone=pipe.recipe.backbone,
        weights=", ".join(shas) or None,
        weights_path=weights if shas else None,
        weights_origin=describe_weights(weights) if shas else None,
        datasets=datasets,
        epochs=sorted({int(r["epochs"]) for r in records}) or [max_epochs(pipe)],
        epochs_used=sorted({int(r.get("epochs_used") or r["epochs"]) for r in records}),
        seeds=list(pipe.seeds),
        batch_size=pipe.recipe.batch_size or 128,
        hardware=sorted({r["device"] for r in records if r.get("device")}),
        n_groups=count_groups(pipe),
        failed=failed,
    )


def write_outcome_report(out: Outcome, ws: Workspace, weights: str | None) -> None:
    """Write ``reports/<pipeline>/`` from the cells that finished (none: no report)."""
    from rsmiss.reports.tables import write_report

    if out.failed:
        logger.info("cell %s failed; %d cell(s) finished", out.failed, len(out.records))
    if out.records:
        header = report_header(out.pipeline, ws, out.records, weights, out.failed)
        out.report = write_report(ws.reports(out.pipeline.name), header, out.records)
        logger.info("report: %s", out.report["markdown"])
