"""Before a benchmark touches anything: which raw files and weights are missing, and where
to get them; and how long the grid would take on a GPU (``--dry-run``).

``make benchmark`` on a fresh machine must stop at once with the complete list, not after
an hour of ingesting the one dataset that happened to be there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rsmiss.benchmark.pipeline import Cell, Pipeline
from rsmiss.errors import ConfigError, DataError
from rsmiss.workspace import Workspace

SOURCES = {
    "houston2013": (
        "`rsmiss download houston2013` (the GRSS DFC 2013 distribution from the University of "
        "Houston, fetched on your machine: its licence forbids redistribution)"
    ),
    "trento": "`rsmiss download trento` (public GitHub copies, checked against the catalog)",
    "augsburg": (
        "the Augsburg HS+SAR+DSM benchmark (Hong et al., ISPRS J. 2021), by hand: "
        "`rsmiss download augsburg` says where"
    ),
}
WEIGHTS_SOURCE = (
    "OpenAI CLIP {arch}: pass --backbone-weights openai (make benchmark WEIGHTS=openai) to "
    "download it through open_clip, or copy OpenAI's {arch}.pt to ROOT/weights/, or pass "
    "--backbone-weights PATH / set $RSMISS_BACKBONE_WEIGHTS"
)


def weights_source(backbone: str) -> str:
    """Where to get the weights of one backbone; each architecture has its own file."""
    from rsmiss.models.backbone import architecture_name

    return WEIGHTS_SOURCE.format(arch=architecture_name(backbone))


@dataclass(frozen=True)
class Missing:
    """One missing input: the path expected and where to get it."""

    what: str  # "raw" or "weights"
    path: str
    source: str

    def line(self) -> str:
        return f"{self.path}  <- {self.source}"


def raw_files(dataset: str) -> list[str]:
    """File names the catalog expects in ``ROOT/raw/<dataset>/``."""
    from rsmiss.catalog import load_catalog

    spec = load_catalog(dataset)
    return list(dict.fromkeys(fs.file for fs in spec.files().values()))


def missing_raw(pipe: Pipeline, ws: Workspace) -> list[Missing]:
    """Raw files absent for the datasets that are not synthesised on demand."""
    out: list[Missing] = []
    for ds in pipe.prepared_datasets():
        if pipe.entry(ds).synthetic is not None:
            continue
        raw = ws.raw(ds)
        source = SOURCES.get(ds, f"see the 'citation' of catalog/{ds}.yaml")
        for name in raw_files(ds):
            if not (raw / name).is_file():
                out.append(Missing("raw", str(raw / name), source))
    return out


def missing_weights(pipe: Pipeline, ws: Workspace, backbone_weights: str | None) -> list[Missing]:
    """The backbone weights file, unless the pipeline trains on a random backbone."""
    from rsmiss.models.backbone import WeightsMisfit
    from rsmiss.training.plan import resolve_weights, weight_names

    if pipe.recipe.random_init:
        return []
    if backbone_weights is None:
        backbone_weights = pipe.recipe.backbone_weights
        if backbone_weights == "pretrain":  # made by the pipeline's own pretrain step
            return []
    try:
        resolve_weights(ws, pipe.recipe.backbone, backbone_weights, False)
    except ConfigError:
        if backbone_weights is not None:
            raise  # an unknown tag: its own message lists the known ones
        names = weight_names(pipe.recipe.backbone)
        path = str(ws.weights / names[0]) if names else "--backbone-weights PATH"
        return [Missing("weights", path, weights_source(pipe.recipe.backbone))]
    except WeightsMisfit:
        raise  # present but of another architecture: its own line names both
    except DataError as exc:
        if str(backbone_weights).startswith("pretrain:"):
            name = str(backbone_weights).split(":", 1)[1]
            return [
                Missing(
                    "weights",
                    str(ws.weights / f"{name}.safetensors"),
                    f"`rsmiss pretrain --name {name} --dataset DATASET`",
                )
            ]
        return [Missing("weights", str(backbone_weights), f"unreadable ({exc})")]
    if (
        backbone_weights is not None
        and not str(backbone_weights).startswith("pretrain:")
        and not Path(backbone_weights).exists()
    ):
        return [Missing("weights", str(backbone_weights), weights_source(pipe.recipe.backbone))]
    return []


def missing_inputs(
    pipes: list[Pipeline], root: str | Path | None, backbone_weights: str | None = None
) -> list[Missing]:
    """Everything missing for the given pipelines, each path once, in pipeline order."""
    ws = Workspace(root)
    seen: dict[str, Missing] = {}
    for pipe in pipes:
        for m in [*missing_raw(pipe, ws), *missing_weights(pipe, ws, backbone_weights)]:
            seen.setdefault(m.path, m)
    return list(seen.values())


def missing_listing(missing: list[Missing]) -> list[str]:
    """Several lines for a terminal: the missing paths grouped by where to get them."""
    lines = ["missing inputs (nothing was run):"]
    by_source: dict[str, list[str]] = {}
    for m in missing:
        by_source.setdefault(m.source, []).append(m.path)
    for source, paths in by_source.items():
        lines.append(f"  get from {source}:")
        lines += [f"    {p}" for p in paths]
    return lines


def missing_summary(missing: list[Missing], root: str | Path) -> str:
    """The one-line error after :func:`missing_listing`."""
    n_raw = sum(m.what == "raw" for m in missing)
    parts = [f"{n_raw} raw file(s)"] if n_raw else []
    if any(m.what == "weights" for m in missing):
        parts.append("the backbone weights")
    return (
        f"{' and '.join(parts)} missing under {root} (listed above); nothing was run. Put them "
        "there, or run `make benchmark-smoke` / `rsmiss demo` for a synthetic run"
    )


def missing_message(missing: list[Missing]) -> str:
    """One line (the CLI error contract) naming every missing file and where to get it."""
    raw = [m for m in missing if m.what == "raw"]
    weights = [m for m in missing if m.what == "weights"]
    parts = []
    if raw:
        by_source: dict[str, list[str]] = {}
        for m in raw:
            by_source.setdefault(m.source, []).append(m.path)
        parts.append(
            f"{len(raw)} raw file(s) missing: "
            + "; ".join(
                f"{', '.join(paths)} (get them from {src})" for src, paths in by_source.items()
            )
        )
    if weights:
        parts.append("backbone weights missing: " + "; ".join(m.line() for m in weights))
    return " | ".join(parts) + " | nothing was run; put the files there and re-run"


# --------------------------------------------------------------------------- estimate

TRAIN_PASSES_PER_S = 2500.0
"""Assumed ViT-B/16 encoder passes per second in training on one H100 (bf16, 197 tokens,
forward + backward through the frozen tower for the adapters, no weight gradients). An
assumption, not a measurement: about 1.5x the full fine-tuning step rate of ~1,700 img/s
commonly reported for ViT-B/16 on an H100."""
EVAL_PASSES_PER_S = 8000.0
"""Assumed inference passes per second (bf16, H100), for test sets and scene maps."""
OVERHEAD_S = 20.0
"""Per run: process start, cube and scenario loading, checkpoint and plot writing."""

_SIZES = {  # (n_train, n_test, height x width) of the official benchmarks
    "houston2013": (2832, 12197, 349 * 1905),
    "trento": (819, 29395, 166 * 600),
    "augsburg": (761, 77533, 332 * 485),
}


def _mods(cell: Cell) -> int:
    if cell.modalities:
        return len(cell.modalities)
    if cell.availability:
        return len(cell.availability)
    return 2


@dataclass
class Estimate:
    train_runs: int
    eval_only: int
    seconds: float
    map_seconds: float
    epochs: int

    def text(self) -> str:
        h = self.seconds / 3600
        return (
            f"estimated GPU time: {h:.1f} h on one H100 ({self.train_runs} training runs x "
            f"{self.epochs} epochs + {self.eval_only} extra evaluations; of which "
            f"{self.map_seconds / 3600:.1f} h scene maps). Assumes {TRAIN_PASSES_PER_S:.0f} "
            f"ViT-B/16 encoder passes/s in training and {EVAL_PASSES_PER_S:.0f}/s in inference "
            f"(bf16, 197 tokens; assumed, not measured), one pass per available modality, plus "
            f"{OVERHEAD_S:.0f} s per run"
            + ("; recipe.train_options.write_map: false skips the maps" if self.map_seconds else "")
        )


def estimate(pipe: Pipeline, cells: list[Cell], epochs: int) -> Estimate:
    """GPU time of a pipeline from the dataset sizes and the assumed throughput above."""
    write_map = bool(pipe.recipe.train_options.get("write_map", True))
    total = maps = 0.0
    train_runs = eval_only = 0
    for c in cells:
        n_train, n_test, pixels = _SIZES.get(c.dataset, (1000, 10000, 200_000))
        m = _mods(c)
        per_sample = m - c.rate  # η of the samples lack one modality
        if c.is_eval:
            eval_only += 1
            total += n_test * per_sample / EVAL_PASSES_PER_S + OVERHEAD_S / 2
            continue
        train_runs += 1
        map_s = pixels * m / EVAL_PASSES_PER_S if write_map else 0.0
        maps += map_s
        total += (
            epochs * math.ceil(n_train / 128) * 128 * per_sample / TRAIN_PASSES_PER_S
            + n_test * per_sample / EVAL_PASSES_PER_S
            + map_s
            + OVERHEAD_S
        )
    return Estimate(train_runs, eval_only, total, maps, epochs)
