"""``rsmiss demo``: the whole toolkit in about a minute on a CPU, data and weights made here.

It synthesises a small Trento-like scene in the official raw formats, ingests it, builds
the 70 % missing-both scenarios of two seeds, trains MaMOL and the frozen-backbone
baseline on the tiny backbone for each, and prints their test OA per missing pattern side
by side as mean ± std over the seeds, plus where the report and MaMOL's classification map
are.

No pretrained CLIP weights exist offline, and a random frozen encoder hides what the
methods do. So the demo first pretrains the tiny encoder with ``rsmiss pretrain`` on a
*different* synthetic scene — a Houston2013-like one: another sensor (144 bands), other
classes, another place — without reading a label, and then adapts it, frozen, on the
Trento-like scene. The weights are cached under ``ROOT/weights/``; a second call reuses
them and every other output.

It is a built-in benchmark pipeline (Table 5's baseline vs MaMOL cell at 70 %), so it runs
through exactly the code ``rsmiss benchmark`` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmiss.benchmark.pipeline import (
    Block,
    DatasetEntry,
    Pipeline,
    PretrainSpec,
    Recipe,
    SynthSpec,
)
from rsmiss.errors import ConfigError

DEMO_DATASET = "trento"
DEMO_SCALE = 0.75
DEMO_RATE = 0.7
DEMO_EPOCHS = 20
# 3x3 patches: the random tiny backbone averages its tokens, so wide windows at reduced
# scale blur neighbouring parcels together (rsmiss/training/README.md has the figures).
DEMO_PATCH = 3
# The pretraining scene and its budget: a Houston2013-like scene at scale 0.3 (105 x 571 px),
# every observed pixel a sample, no label read.
PRETRAIN_DATASET = "houston2013"
PRETRAIN_SCALE = 0.3
PRETRAIN_OBJECTIVE = "contrastive"
PRETRAIN_EPOCHS = 4
PRETRAIN_PIXELS = 20000
METHODS = ("baseline", "mamol")
DEMO_SEEDS = (0, 1)  # two seeds: each number is printed as mean ± std over them
PATTERNS = (
    ("complete", "complete"),
    ("hs_missing", "HS missing"),
    ("lidar_missing", "LiDAR missing"),
)


def pretrain_name(pretrain_epochs: int = PRETRAIN_EPOCHS) -> str:
    """The cached weights' name; a shortened (test) pretraining gets its own."""
    short = "" if pretrain_epochs == PRETRAIN_EPOCHS else f"-e{pretrain_epochs}"
    return f"demo-tiny-{PRETRAIN_OBJECTIVE}-{PRETRAIN_DATASET}{short}"


def demo_pipeline(
    scale: float = DEMO_SCALE, epochs: int = DEMO_EPOCHS, pretrain_epochs: int = PRETRAIN_EPOCHS
) -> Pipeline:
    """The demo as a pipeline: pretrain the tiny encoder on a synthetic Houston-like scene,
    then baseline vs MaMOL on a synthetic Trento-like scene with that encoder frozen."""
    return Pipeline(
        name="demo",
        description=(
            f"rsmiss demo — synthetic Trento-like scene (scale {scale}), tiny backbone "
            f"pretrained by rsmiss pretrain ({PRETRAIN_OBJECTIVE}, no labels) on a different "
            f"synthetic scene ({PRETRAIN_DATASET}-like, scale {PRETRAIN_SCALE}), "
            f"{DEMO_PATCH}x{DEMO_PATCH} patches, {epochs} epochs, {DEMO_RATE:.0%} missing "
            "both. A tiny encoder on synthetic data: it shows the machinery, not the paper's "
            "numbers."
        ),
        table="table5",
        seeds=list(DEMO_SEEDS),
        pretrain=PretrainSpec(
            datasets=[PRETRAIN_DATASET],
            objective=PRETRAIN_OBJECTIVE,
            epochs=pretrain_epochs,
            max_pixels=PRETRAIN_PIXELS,
            name=pretrain_name(pretrain_epochs),
        ),
        recipe=Recipe(
            backbone="tiny",
            backbone_weights="pretrain",
            epochs=epochs,
            batch_size=128,
            train_options={"write_map": False},
        ),
        datasets={
            DEMO_DATASET: DatasetEntry(
                modalities=["hs", "lidar"],
                synthetic=SynthSpec(scale=scale, seed=0),
                ingest={"patch_size": DEMO_PATCH},
            ),
            PRETRAIN_DATASET: DatasetEntry(
                synthetic=SynthSpec(scale=PRETRAIN_SCALE, seed=1),
                ingest={"patch_size": DEMO_PATCH, "patches": False},
            ),
        },
        grid=[
            Block(
                datasets=[DEMO_DATASET],
                rates=[DEMO_RATE],
                settings=["both"],
                methods=list(METHODS),
            )
        ],
    )


@dataclass
class DemoResult:
    """What the demo printed, for tests: per-method metrics and the output paths."""

    table: str
    scores: dict[str, list[dict[str, Any]]]  # method -> per-seed metrics
    report: Path
    map_png: Path | None


def _fmt(xs: Any) -> str:
    """One number, or mean ± sample std of a list of per-seed numbers."""
    import statistics

    vals = [float(x) for x in (xs if isinstance(xs, list) else [xs]) if x is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{statistics.fmean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def side_by_side(scores: dict[str, dict[str, Any] | list[dict[str, Any]]]) -> str:
    """Test OA per missing pattern, one column per method (n = test samples of the pattern,
    per seed); a method given a list of per-seed metrics shows mean ± std over the seeds."""
    names = {"baseline": "baseline", "mamol": "MaMOL"}
    runs = {m: s if isinstance(s, list) else [s] for m, s in scores.items()}
    width = 16 if any(len(v) > 1 for v in runs.values()) else 10
    head = f"  {'test OA (%) per missing pattern':<34}" + "".join(
        f"{names.get(m, m):>{width}}" for m in runs
    )
    lines = [head, "  " + "-" * (len(head) - 2)]
    first = next(iter(runs.values()))[0]

    def cell(metrics: list[dict[str, Any]], key: str | None, stat: str = "oa") -> str:
        got = [
            (m.get("by_pattern", {}).get(key) if key else m.get("overall")) or {} for m in metrics
        ]
        return f"{_fmt([g.get(stat) for g in got]):>{width}}"

    for key, label in PATTERNS:
        n = (first.get("by_pattern", {}).get(key) or {}).get("n")
        if n is None:
            continue
        lines.append(f"  {label + f' (n={n})':<34}" + "".join(cell(s, key) for s in runs.values()))
    n_all = first.get("overall", {}).get("n")
    row = f"  {f'all test samples (n={n_all})':<34}"
    lines.append(row + "".join(cell(s, None) for s in runs.values()))
    row = f"  {'Kappa x 100, all test samples':<34}"
    lines.append(row + "".join(cell(s, None, "kappa") for s in runs.values()))
    return "\n".join(lines)


def run_demo(
    root: str | Path | None = None,
    *,
    scale: float = DEMO_SCALE,
    epochs: int = DEMO_EPOCHS,
    write_map: bool = True,
    pretrain_epochs: int = PRETRAIN_EPOCHS,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo into ``root`` (default ``$RSMISS_ROOT`` / ``./rsmiss-data``)."""
    from rsmiss.benchmark.runner import run_pipeline
    from rsmiss.inference import load_run
    from rsmiss.models.backbone import describe_weights
    from rsmiss.workspace import Workspace

    if not 0 < scale <= 1:
        raise ConfigError(f"--scale must be in (0, 1], got {scale}")
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    ws = Workspace(root)
    if pretrain_epochs < 1:
        raise ConfigError(f"--pretrain-epochs must be at least 1, got {pretrain_epochs}")
    pipe = demo_pipeline(scale, epochs, pretrain_epochs)
    echo(pipe.description)
    echo(f"workspace: {ws.root}")
    outcome = run_pipeline(pipe, ws.root)  # its progress goes to the "rsmiss" loggers
    scores: dict[str, list[dict[str, Any]]] = {}
    runs: dict[str, Any] = {}
    for rec in outcome.records:
        run = load_run(rec["run_id"], ws.root)
        runs.setdefault(rec["method"], run)  # the first seed's run draws the map
        scores.setdefault(rec["method"], []).append(run.metrics or {})
    table = side_by_side({m: scores[m] for m in METHODS if m in scores})
    echo("")
    echo(f"  mean ± std over seeds {', '.join(map(str, DEMO_SEEDS))}")
    echo(table)
    echo("")
    map_png = None
    if write_map and "mamol" in runs:
        run = runs["mamol"]
        png = run.path / "predict" / f"{DEMO_DATASET}.png"
        if not png.is_file():
            echo("drawing MaMOL's classification map of the whole scene ...")
            tif = run.predict(progress=False)
            png = Path(tif).with_suffix(".png")
        map_png = png
    report = outcome.report.get("markdown", ws.reports(pipe.name) / "report.md")
    echo(f"report (beside the paper's Table 5 numbers): {report}")
    if map_png is not None:
        echo(f"classification map (MaMOL, all modalities): {map_png}")
    weights = Workspace(root).weights / f"{pretrain_name(pretrain_epochs)}.safetensors"
    echo(f"encoder: {describe_weights(weights)} -> {weights}")
    probe = _probe_line(weights.with_suffix(".json"))
    if probe:
        echo(probe)
    return DemoResult(table, scores, Path(report), map_png)


def _probe_line(provenance: Path) -> str | None:
    """What pretraining bought, from the weights' provenance (linear probe OA)."""
    import json

    try:
        probe = json.loads(provenance.read_text()).get("linear_probe") or {}
    except (OSError, ValueError):
        return None
    parts = []
    for d, r in probe.items():
        views = [("all sensors", r)] + [
            (f"{m} alone", v) for m, v in r.get("by_modality", {}).items()
        ]
        parts += [
            f"{d} {view} {v['random_oa']:.2f} -> {v['pretrained_oa']:.2f}" for view, v in views
        ]
    if not parts:
        return None
    return (
        "linear probe OA on the pretraining scene's training pixels (random -> pretrained "
        "encoder): " + "; ".join(parts)
    )
