"""``rsmiss demo``: the whole toolkit in a few CPU minutes, on data and weights made on the spot.

It synthesises a small Trento-like scene in the official raw formats, ingests it, builds
the 70 % missing-both scenarios of two seeds, trains MaMOL and the frozen-backbone
baseline on the tiny backbone for each, and prints their test OA per missing pattern side
by side as mean ± std over the seeds, plus where the report
and MaMOL's classification map are. No pretrained CLIP weights exist offline, so the tiny
backbone is randomly initialised — said in the output and the report: the demo shows the
machinery, not the method's accuracy.

It is a built-in benchmark pipeline (Table 5's baseline vs MaMOL cell at 70 %), so it runs
through exactly the code ``rsmiss benchmark`` uses and a second call reuses every output.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmiss.benchmark.pipeline import Block, DatasetEntry, Pipeline, Recipe, SynthSpec
from rsmiss.errors import ConfigError

DEMO_DATASET = "trento"
DEMO_SCALE = 0.75
DEMO_RATE = 0.7
DEMO_EPOCHS = 20
# 3x3 patches: the random tiny backbone averages its tokens, so wide windows at reduced
# scale blur neighbouring parcels together (rsmiss/training/README.md has the figures).
DEMO_PATCH = 3
METHODS = ("baseline", "mamol")
DEMO_SEEDS = (0, 1)  # two seeds: each number is printed as mean ± std over them
PATTERNS = (
    ("complete", "complete"),
    ("hs_missing", "HS missing"),
    ("lidar_missing", "LiDAR missing"),
)


def demo_pipeline(scale: float = DEMO_SCALE, epochs: int = DEMO_EPOCHS) -> Pipeline:
    """The demo as a pipeline: synthetic Trento, tiny random backbone, baseline vs MaMOL."""
    return Pipeline(
        name="demo",
        description=(
            f"rsmiss demo — synthetic Trento-like scene (scale {scale}), tiny backbone with "
            f"RANDOM weights, {DEMO_PATCH}x{DEMO_PATCH} patches, {epochs} epochs, "
            f"{DEMO_RATE:.0%} missing both. Shows the machinery, not the method's accuracy."
        ),
        table="table5",
        seeds=list(DEMO_SEEDS),
        recipe=Recipe(
            backbone="tiny",
            random_init=True,
            epochs=epochs,
            batch_size=128,
            train_options={"write_map": False},
        ),
        datasets={
            DEMO_DATASET: DatasetEntry(
                modalities=["hs", "lidar"],
                synthetic=SynthSpec(scale=scale, seed=0),
                ingest={"patch_size": DEMO_PATCH},
            )
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
    echo: Callable[[str], None] = print,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo into ``root`` (default ``$RSMISS_ROOT`` / ``./rsmiss-data``)."""
    from rsmiss.benchmark.runner import run_pipeline
    from rsmiss.training import load_run
    from rsmiss.workspace import Workspace

    if not 0 < scale <= 1:
        raise ConfigError(f"--scale must be in (0, 1], got {scale}")
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    ws = Workspace(root)
    pipe = demo_pipeline(scale, epochs)
    echo(pipe.description)
    echo(f"workspace: {ws.root}")
    quiet = log or (lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    outcome = run_pipeline(pipe, ws.root, log=quiet)
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
    echo("weights: RANDOM INIT (tiny backbone) — numbers show the pipeline, not MaMOL's accuracy")
    return DemoResult(table, scores, Path(report), map_png)
