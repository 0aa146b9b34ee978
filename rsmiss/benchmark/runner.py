"""Run a pipeline: (synth) -> ingest -> scenarios -> train / evaluate per cell -> report.

Every stage is idempotent (an up-to-date cube, scenario or finished run is skipped, a run
killed mid-way resumes from its checkpoint), so re-running a killed benchmark continues
where it stopped. Everything that can be checked before any work — the YAML, the methods
and their options, the raw files and the weights — is checked first.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmiss.benchmark.pipeline import Cell, Pipeline, expand, load_pipeline, placement_options
from rsmiss.benchmark.preflight import (
    estimate,
    missing_inputs,
    missing_listing,
    missing_message,
    missing_summary,
)
from rsmiss.errors import ConfigError, DataError
from rsmiss.workspace import Workspace

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """What one pipeline produced: its cells, one record per cell, the report files, and the
    cell that stopped it (``failed``: cell id and error) when one raised."""

    pipeline: Pipeline
    cells: list[Cell]
    records: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Path] = field(default_factory=dict)
    trained: int = 0
    skipped: int = 0
    failed: str | None = None


def validate_methods(pipe: Pipeline, cells: Sequence[Cell]) -> None:
    """Unknown methods, option keys or option values fail before anything is written."""
    from rsmiss.models import METHODS
    from rsmiss.models.factory import check_options

    where = pipe.path or pipe.name
    for c in cells:
        if c.method not in METHODS:
            raise ConfigError(
                f"{where}: unknown method {c.method!r} (cell {c.cell_id}); "
                f"known: {', '.join(sorted(METHODS))}"
            )
        keys = set(METHODS[c.method].options)
        opts = {**c.options, **placement_options(c.placement)}
        for k in opts:
            if k not in keys:
                raise ConfigError(
                    f"{where}: method {c.method} has no option {k!r} (cell {c.cell_id}); "
                    f"its options: {', '.join(sorted(keys))}"
                )
        try:  # each distinct (method, options) is built once: check_options remembers
            check_options(c.method, opts, pipe.recipe.backbone)
        except ConfigError as exc:
            raise ConfigError(f"{where}: cell {c.cell_id}: {exc}") from None


def validate_recipe(pipe: Pipeline) -> None:
    """The recipe's training options and precision fail before anything is written, as
    ``rsmiss train --set`` would reject them (and not hours later, at the first run)."""
    from rsmiss.training.config import PRECISIONS, TRAIN_OPTION_DEFAULTS, RunConfig

    where = f"{pipe.path or pipe.name}: recipe"
    r = pipe.recipe
    unknown = sorted(set(r.train_options) - set(TRAIN_OPTION_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{where}.train_options: unknown key {unknown[0]!r}; "
            f"known: {', '.join(sorted(TRAIN_OPTION_DEFAULTS))}"
        )
    if r.precision is not None and r.precision not in PRECISIONS:
        raise ConfigError(
            f"{where}.precision must be one of {', '.join(PRECISIONS)}; got {r.precision!r}"
        )
    try:
        RunConfig("check", "check", "check", random_init=True, train_options=dict(r.train_options))
    except ConfigError as exc:
        raise ConfigError(f"{where}.train_options: {str(exc).removeprefix('--set ')}") from None


def _default_mods(dataset: str, mods: tuple[str, ...] | None) -> bool:
    from rsmiss.scenarios import DEFAULT_MODALITIES

    return mods is None or DEFAULT_MODALITIES.get(dataset) == tuple(mods)


def scenario_of(cell: Cell, evaluation: bool = False) -> str:
    """The scenario id a cell trains on (or, with ``evaluation``, is tested on)."""
    from rsmiss.scenarios import scenario_id

    if cell.availability is not None:
        return scenario_id("avail", cell.rate, cell.seed, availability=dict(cell.availability))
    setting = cell.eval_setting if evaluation and cell.eval_setting else cell.setting
    mods = None if _default_mods(cell.dataset, cell.modalities) else cell.modalities
    return scenario_id(setting, cell.rate, cell.seed, modalities=mods)


def _epochs(pipe: Pipeline) -> int:
    """Epochs a cell trains at most (``auto``: the early-stopping maximum)."""
    from rsmiss.training.config import AUTO_MAX_EPOCHS, DEFAULT_EPOCHS

    if pipe.recipe.epochs == "auto":
        return AUTO_MAX_EPOCHS
    return pipe.recipe.epochs or DEFAULT_EPOCHS


def plan_text(pipe: Pipeline, cells: Sequence[Cell]) -> str:
    """The ``--dry-run`` listing: every cell, its scenario and paper number, and the estimate."""
    from rsmiss.reports.paper import lookup

    lines = [f"pipeline {pipe.name} ({pipe.path or 'built in'}): {len(cells)} cells"]
    for i, c in enumerate(cells, 1):
        hit = lookup(c.paper_query())
        paper = f"paper {hit.table} {hit.oa:.2f}" if hit else "paper —"
        test = f" test {scenario_of(c, True)}" if c.is_eval else ""
        opts = {**c.options, **placement_options(c.placement)}
        extra = f" {json.dumps(opts, sort_keys=True)}" if opts else ""
        lines.append(
            f"  {i:4d}  {c.cell_id:<52} train {scenario_of(c)}{test}  {c.method}{extra}  {paper}"
        )
    lines.append("  " + estimate(pipe, list(cells), _epochs(pipe)).text())
    return "\n".join(lines)


def prepare_data(pipe: Pipeline, ws: Workspace, log: Log, progress: bool) -> None:
    """Synthesise raw files where the pipeline asks for it and they are absent; ingest."""
    from rsmiss.benchmark.preflight import raw_files
    from rsmiss.ingest.pipeline import ingest
    from rsmiss.synth import synthesize

    check_synthetic(pipe, ws)
    for ds in pipe.prepared_datasets():
        entry = pipe.entry(ds)
        raw = ws.raw(ds)
        if entry.synthetic is not None and not all((raw / f).is_file() for f in raw_files(ds)):
            log(f"{ds}: synthesising raw files into {raw} (scale {entry.synthetic.scale})")
            synthesize(ds, raw, seed=entry.synthetic.seed, scale=entry.synthetic.scale)
        ingest(
            ds,
            root=ws.root,
            progress=progress,
            log=_quiet_synthetic(raw, ds, log),
            **entry.ingest.model_dump(exclude_unset=True),
        )


def check_synthetic(pipe: Pipeline, ws: Workspace) -> None:
    """Raw files a ``synthetic:`` dataset finds already there must be the ones it asks for.

    Otherwise the run, its report and the demo's headline would say "synthetic, scale s"
    about real files or another scale's scene. Checked for every dataset before anything is
    synthesised or ingested.
    """
    from rsmiss.benchmark.preflight import raw_files
    from rsmiss.synth import read_marker

    for ds in pipe.prepared_datasets():
        want = pipe.entry(ds).synthetic
        raw = ws.raw(ds)
        if want is None or not any((raw / f).is_file() for f in raw_files(ds)):
            continue
        marker = read_marker(raw)
        if marker is None:
            got = "real (no SYNTHETIC marker)"
        elif marker.get("scale") != want.scale or marker.get("seed") != want.seed:
            got = f"synthetic scale {marker.get('scale')}, seed {marker.get('seed')}"
        else:
            continue
        where = pipe.path or pipe.name
        raise ConfigError(
            f"{raw}: the raw files are {got} but {where} asks for synthetic scale "
            f"{want.scale}, seed {want.seed}; use another --root, or remove the folder to "
            "synthesise it again"
        )


def _quiet_synthetic(raw: Path, dataset: str, log: Log) -> Log:
    """For synthetic raw files, one note instead of a checksum warning per file."""
    from rsmiss.synth import MARKER

    if not (raw / MARKER).is_file():
        return log
    noted: list[bool] = []

    def inner(msg: str) -> None:
        if "does not match the catalog" in msg:
            if not noted:
                noted.append(True)
                log(f"{dataset}: synthetic raw files (checksums differ from the real ones)")
            return
        log(msg)

    return inner


def build_needed_scenarios(cells: Sequence[Cell], ws: Workspace, log: Log) -> None:
    """Every scenario a cell trains or is tested on (already built ones are confirmed)."""
    from rsmiss.scenarios import build_scenarios

    by_rate: dict[tuple, list[str]] = {}
    by_avail: dict[tuple, list[dict[str, float]]] = {}
    for c in cells:
        mods = None if c.modalities is None else tuple(c.modalities)
        if c.availability is not None:
            by_avail.setdefault((c.dataset, mods, c.seed), [])
            if dict(c.availability) not in by_avail[(c.dataset, mods, c.seed)]:
                by_avail[(c.dataset, mods, c.seed)].append(dict(c.availability))
            continue
        pats = by_rate.setdefault((c.dataset, mods, c.rate, c.seed), [])
        for p in (c.setting, c.eval_setting):
            if p and p not in pats:
                pats.append(p)
    done: list[Any] = []
    for (ds, mods, rate, seed), pats in by_rate.items():
        done += build_scenarios(
            ws.root, datasets=[ds], rate=rate, patterns=pats, modalities=mods, seed=seed
        )
    for (ds, mods, seed), avails in by_avail.items():
        done += build_scenarios(
            ws.root, datasets=[ds], availabilities=avails, modalities=mods, seed=seed
        )
    for r in done:
        if r.status != "up to date":
            log(f"{r.dataset}: scenario {r.scenario_id} {r.status}")
    built = {(r.dataset, r.scenario_id) for r in done}
    for c in cells:
        for sid in {scenario_of(c), scenario_of(c, True)}:
            if (c.dataset, sid) not in built:  # our id rule and the builder's disagree: a bug
                raise DataError(f"scenario {sid} for cell {c.cell_id} was not built")


def pipeline_weights(
    pipe: Pipeline, ws: Workspace, backbone_weights: str | None, log: Log
) -> str | None:
    """The weights every cell adapts: ``--backbone-weights``, else the recipe's; the
    pipeline's ``pretrain:`` step runs here when the recipe asks for it (a finished one is
    found up to date)."""
    if pipe.recipe.random_init:
        return None
    if backbone_weights is not None:
        return backbone_weights
    if pipe.recipe.backbone_weights == "pretrain":
        from rsmiss.pretrain import pretrain

        assert pipe.pretrain is not None  # the pipeline model checks it
        req = pipe.pretrain.request(pipe.recipe.backbone)
        result = pretrain(req, ws.root, progress=False, log=log)
        return str(result.weights)
    return pipe.recipe.backbone_weights


def _plan(pipe: Pipeline, cell: Cell, ws: Workspace, backbone_weights: str | None):
    from rsmiss.training import plan_runs

    r = pipe.recipe
    sets = tuple(f"{k}={json.dumps(v)}" for k, v in sorted(r.train_options.items()))
    kwargs: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "lr", "precision", "devices"):
        if getattr(r, key) is not None:
            kwargs[key] = getattr(r, key)
    plans = plan_runs(
        ws.root,
        datasets=(cell.dataset,),
        scenarios=(scenario_of(cell),),
        methods=(cell.method,),
        options={**cell.options, **placement_options(cell.placement)},
        sets=sets,
        backbone=r.backbone,
        backbone_weights=None if r.random_init else backbone_weights,
        random_init=r.random_init,
        seed=cell.seed,
        **kwargs,
    )
    assert len(plans) == 1, [p.config.run_id for p in plans]
    return plans[0]


def _record(cell: Cell, run: Any, scores: dict[str, Any], eval_sid: str | None) -> dict[str, Any]:
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


def run_cells(
    out: Outcome, ws: Workspace, backbone_weights: str | None, log: Log, progress: bool
) -> None:
    """Train every training cell of ``out`` (skipping finished runs), evaluate the others,
    and add each record to ``out`` as soon as it exists.

    The caller owns ``out``, so when a cell raises, the records of the cells before it are
    still there to report; ``out.failed`` names the cell that raised and the error."""
    from rsmiss.inference import load_run
    from rsmiss.training import execute

    pipe, cells = out.pipeline, out.cells
    runs: dict[Cell, Any] = {}
    for i, cell in enumerate(cells, 1):
        tag = f"[{i}/{len(cells)}] {cell.cell_id}"
        try:
            train_cell = cell.train_cell
            if train_cell not in runs:
                plan = _plan(pipe, train_cell, ws, backbone_weights)
                t0 = time.perf_counter()
                runs[train_cell] = load_run(execute(plan, progress=progress))
                if plan.status == "finished":
                    out.skipped += 1
                else:
                    out.trained += 1
                how = (
                    "done before, skipped"
                    if plan.status == "finished"
                    else (f"trained in {time.perf_counter() - t0:.0f} s")
                )
                log(f"{tag}: run {plan.config.run_id} {how}")
            run = runs[train_cell]
            if cell.is_eval:
                sid = scenario_of(cell, True)
                cached = run.path / "eval" / f"{sid}.json"
                scores = json.loads(cached.read_text()) if cached.is_file() else run.evaluate(sid)
                log(f"{tag}: evaluated on {sid}")
            else:
                sid, scores = None, run.metrics or {}
            rec = _record(cell, run, scores, sid)
        except BaseException as exc:
            out.failed = f"{cell.cell_id} ({type(exc).__name__}: {exc})"
            raise
        out.records.append(rec)
        paper = f" (paper {rec['paper_oa']:.2f})" if rec["paper_oa"] is not None else ""
        oa = "—" if rec["oa"] is None else f"{rec['oa']:.2f}"
        log(f"{tag}: OA {oa}{paper}")


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
        epochs=sorted({int(r["epochs"]) for r in records}) or [_epochs(pipe)],
        epochs_used=sorted({int(r.get("epochs_used") or r["epochs"]) for r in records}),
        seeds=list(pipe.seeds),
        batch_size=pipe.recipe.batch_size or 128,
        hardware=sorted({r["device"] for r in records if r.get("device")}),
        n_cells=len(expand_groups(pipe)),
        failed=failed,
    )


def expand_groups(pipe: Pipeline) -> set[str]:
    return {c.group_id for c in expand(pipe)}


def run_pipeline(
    pipe: Pipeline,
    root: str | Path | None = None,
    backbone_weights: str | None = None,
    log: Log = _stderr,
    progress: bool = False,
) -> Outcome:
    """One pipeline, end to end; the report is written even when a cell fails midway."""
    from rsmiss.reports.tables import write_report

    ws = Workspace(root)
    cells = expand(pipe)
    validate_recipe(pipe)
    validate_methods(pipe, cells)
    missing = missing_inputs([pipe], ws.root, backbone_weights)
    if missing:
        raise DataError(missing_message(missing))
    prepare_data(pipe, ws, log, progress)
    backbone_weights = pipeline_weights(pipe, ws, backbone_weights, log)
    build_needed_scenarios(cells, ws, log)
    outcome = Outcome(pipe, cells)
    try:
        run_cells(outcome, ws, backbone_weights, log, progress)
    finally:
        if outcome.failed:
            done = len(outcome.records)
            log(f"cell {outcome.failed} failed; {done} cell(s) finished before it")
        if outcome.records:
            header = report_header(pipe, ws, outcome.records, backbone_weights, outcome.failed)
            outcome.report = write_report(ws.reports(pipe.name), header, outcome.records)
            log(f"report: {outcome.report['markdown']}")
    return outcome


def run_benchmark(
    pipelines: Sequence[str | Path],
    root: str | Path | None = None,
    backbone_weights: str | None = None,
    dry_run: bool = False,
    log: Log = _stderr,
    progress: bool = False,
    seeds: Sequence[int] | None = None,
) -> list[Outcome]:
    """Load every pipeline and check every input first; then run them one after the other.

    ``seeds`` replaces every pipeline's own ``seeds`` list (``rsmiss benchmark --seeds``)."""
    if not pipelines:
        raise ConfigError("give at least one pipeline YAML (e.g. pipelines/paper-table1.yaml)")
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
    if dry_run:
        for p, cells in expanded:
            log(plan_text(p, cells))
        return [Outcome(p, cells) for p, cells in expanded]
    missing = missing_inputs(loaded, root, backbone_weights)
    if missing:
        for line in missing_listing(missing):
            log(line)
        raise DataError(missing_summary(missing, Workspace(root).root))
    return [run_pipeline(p, root, backbone_weights, log, progress) for p in loaded]
