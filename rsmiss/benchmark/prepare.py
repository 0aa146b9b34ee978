"""Everything the cells need, made once per dataset before any cell runs: synthetic raw
files, the cube (ingest), the backbone weights (the pipeline's ``pretrain:`` step) and every
scenario a cell trains or is tested on.

Each step is idempotent (an up-to-date cube or scenario is confirmed, not rebuilt), and all
of it runs in the calling process, so cells spread over a cluster only read what it wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rsmiss.benchmark.pipeline import Cell, Pipeline
from rsmiss.errors import ConfigError, DataError
from rsmiss.workspace import Workspace

logger = logging.getLogger(__name__)


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


def prepare_data(pipe: Pipeline, ws: Workspace, progress: bool) -> None:
    """Synthesise raw files where the pipeline asks for it and they are absent; ingest."""
    from rsmiss.benchmark.preflight import raw_files
    from rsmiss.ingest.pipeline import ingest
    from rsmiss.synth import synthesize

    check_synthetic(pipe, ws)
    for ds in pipe.prepared_datasets():
        entry = pipe.entry(ds)
        raw = ws.raw(ds)
        if entry.synthetic is not None and not all((raw / f).is_file() for f in raw_files(ds)):
            logger.info(
                "%s: synthesising raw files into %s (scale %s)", ds, raw, entry.synthetic.scale
            )
            synthesize(ds, raw, seed=entry.synthetic.seed, scale=entry.synthetic.scale)
        with _quiet_synthetic(raw, ds):
            ingest(
                ds, root=ws.root, progress=progress, **entry.ingest.model_dump(exclude_unset=True)
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


class SyntheticChecksums(logging.Filter):
    """Synthetic raw files never match the real files' catalog checksums: one note for the
    dataset instead of one warning per file."""

    def __init__(self, dataset: str) -> None:
        super().__init__()
        self.dataset = dataset
        self.noted = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "does not match the catalog" not in record.getMessage():
            return True
        if self.noted:
            return False
        self.noted = True
        record.msg = f"{self.dataset}: synthetic raw files (checksums differ from the real ones)"
        record.args = ()
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


@contextmanager
def _quiet_synthetic(raw: Path, dataset: str) -> Iterator[None]:
    """While ingesting synthetic raw files, :class:`SyntheticChecksums` filters ingest's log."""
    from rsmiss.synth import MARKER

    if not (raw / MARKER).is_file():
        yield
        return
    ingest_log = logging.getLogger("rsmiss.ingest.pipeline")
    quiet = SyntheticChecksums(dataset)
    ingest_log.addFilter(quiet)
    try:
        yield
    finally:
        ingest_log.removeFilter(quiet)


def build_needed_scenarios(cells: Sequence[Cell], ws: Workspace) -> None:
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
            logger.info("%s: scenario %s %s", r.dataset, r.scenario_id, r.status)
    built = {(r.dataset, r.scenario_id) for r in done}
    for c in cells:
        for sid in {scenario_of(c), scenario_of(c, True)}:
            if (c.dataset, sid) not in built:  # our id rule and the builder's disagree: a bug
                raise DataError(f"scenario {sid} for cell {c.cell_id} was not built")


def pipeline_weights(pipe: Pipeline, ws: Workspace, backbone_weights: str | None) -> str | None:
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
        result = pretrain(req, ws.root, progress=False)
        return str(result.weights)
    return pipe.recipe.backbone_weights
