"""``rsmiss demo``: the whole toolkit in a few CPU minutes, on data and weights made on the spot.

It synthesises a small Trento-like scene in the official raw formats, ingests it, builds
the 70 % missing-both scenario, trains MaMOL and the frozen-backbone baseline on the tiny
backbone, and prints their test OA per missing pattern side by side, plus where the report
and MaMOL's classification map are.

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

import sys
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
PRETRAIN_EPOCHS = 3
PRETRAIN_PIXELS = 12000
METHODS = ("baseline", "mamol")
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
        seeds=[0],
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
    scores: dict[str, dict[str, Any]]
    report: Path
    map_png: Path | None


def _fmt(x: Any) -> str:
    return "—" if x is None else f"{float(x):6.2f}"


def side_by_side(scores: dict[str, dict[str, Any]]) -> str:
    """Test OA per missing pattern, one column per method (n = test samples of the pattern)."""
    names = {"baseline": "baseline", "mamol": "MaMOL"}
    head = f"  {'test OA (%) per missing pattern':<34}" + "".join(
        f"{names.get(m, m):>10}" for m in scores
    )
    lines = [head, "  " + "-" * (len(head) - 2)]
    first = next(iter(scores.values()))
    for key, label in PATTERNS:
        n = (first.get("by_pattern", {}).get(key) or {}).get("n")
        if n is None:
            continue
        row = f"  {label + f' (n={n})':<34}"
        for s in scores.values():
            row += f"{_fmt((s.get('by_pattern', {}).get(key) or {}).get('oa')):>10}"
        lines.append(row)
    n_all = first.get("overall", {}).get("n")
    row = f"  {f'all test samples (n={n_all})':<34}"
    lines.append(row + "".join(f"{_fmt(s['overall'].get('oa')):>10}" for s in scores.values()))
    row = f"  {'Kappa x 100, all test samples':<34}"
    lines.append(row + "".join(f"{_fmt(s['overall'].get('kappa')):>10}" for s in scores.values()))
    return "\n".join(lines)


def run_demo(
    root: str | Path | None = None,
    *,
    scale: float = DEMO_SCALE,
    epochs: int = DEMO_EPOCHS,
    write_map: bool = True,
    pretrain_epochs: int = PRETRAIN_EPOCHS,
    echo: Callable[[str], None] = print,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo into ``root`` (default ``$RSMISS_ROOT`` / ``./rsmiss-data``)."""
    from rsmiss.benchmark.runner import run_pipeline
    from rsmiss.models.backbone import describe_weights
    from rsmiss.training import load_run
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
    quiet = log or (lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    outcome = run_pipeline(pipe, ws.root, log=quiet)
    scores: dict[str, dict[str, Any]] = {}
    runs: dict[str, Any] = {}
    for rec in outcome.records:
        run = load_run(rec["run_id"], ws.root)
        runs[rec["method"]] = run
        scores[rec["method"]] = run.metrics or {}
    table = side_by_side({m: scores[m] for m in METHODS if m in scores})
    echo("")
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
            f"{d} {view} {v['random_oa']:.2f} random -> {v['pretrained_oa']:.2f} pretrained"
            for view, v in views
        ]
    return (
        "linear probe OA on the pretraining scene's training pixels: " + "; ".join(parts)
        if parts
        else None
    )
