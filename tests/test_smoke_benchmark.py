"""``make benchmark-smoke`` inside ``make test``: pipelines/smoke.yaml end to end, then the
notebooks and the demo on its outputs (so none of them can rot).

One session-scoped run (synthetic Trento at scale 0.15, tiny random backbone, 7x7 patches,
2 epochs, 2 seeds) feeds every test here; together they take well under a minute on two cores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from rsmiss.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "pipelines" / "smoke.yaml"


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "reports" / "smoke" / "runs.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_smoke_writes_every_cell_with_the_paper_beside_it(smoke_root):
    rows = _rows(smoke_root)
    cells = [
        "mmp/s0", "mmp/s1", "mamol/s0", "mamol/s1", "mamol_ffn/s0", "mamol_ffn/s1",
        "baseline/s0", "baseline/s1",
        "mamol/s0", "mamol/s1", "mamol/s0", "mamol/s1", "mamol/s0@hs-r0.70", "mamol/s1@hs-r0.70",
    ]  # fmt: skip
    assert [r["cell_id"] for r in rows] == [f"trento/both-r0.70/{c}" for c in cells]
    for r in rows:
        metrics = json.loads((smoke_root / "runs" / r["run_id"] / "metrics.json").read_text())
        if not r["eval_setting"]:  # the row reports its run's own test score
            assert float(r["oa"]) == pytest.approx(metrics["overall"]["oa"], abs=0.01)
    assert len({r["run_id"] for r in rows}) == 8  # MaMOL's run per seed is shared by 3 cells
    for r in rows:  # capacity in every row; routing for MaMOL's own test sets
        assert int(r["trainable_params"]) > int(r["method_params"]) >= 0
        assert (int(r["method_params"]) == 0) == (r["method"] == "baseline")
        if r["method"] in ("mamol", "mamol_ffn"):  # both expert sites record routing
            assert 0.0 <= float(r["routing_separation"]) <= 1.0
            assert bool(r["routing_png"]) != bool(r["eval_setting"])
        else:
            assert not r["routing_separation"]
    by_table = {(r["table"], r["variant"]): r for r in rows if not r["eval_setting"]}
    assert float(by_table[("table1", "mamol")]["paper_oa"]) == 97.39
    assert float(by_table[("table5", "baseline")]["paper_oa"]) == 93.56
    assert not by_table[("table1", "mamol_ffn")]["paper_oa"]  # ours: no paper number
    ev = rows[-1]
    assert ev["eval_scenario_id"] == "hs-r0.70-s1" and not ev["paper_oa"]
    assert set(json.loads(ev["pattern_oa"])) <= {"complete", "hs_missing"}

    md = (smoke_root / "reports" / "smoke" / "report.md").read_text()
    assert "RANDOM INIT" in md and "trento: **synthetic**" in md and "ViLT" in md
    assert "`mamol_ffn` is rsmiss's extension" in md
    groups: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        groups.setdefault(r["group_id"], []).append(r)
    for group in groups.values():  # mean ± sample std over the two seeds
        if group[0]["paper_oa"]:
            oa = [float(r["oa"]) for r in group]
            kappa = [float(r["kappa"]) for r in group]
            ours = f"{statistics.fmean(oa):.2f}±{statistics.stdev(oa):.2f}"
            if group[0]["table"] != "table5":
                ours += f"/{statistics.fmean(kappa):.2f}±{statistics.stdev(kappa):.2f}"
            assert ours in md, ours
            assert f"{float(group[0]['paper_oa']):.2f}" in md
    png = smoke_root / "reports" / "smoke" / "oa_vs_rate.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    # two seeds: mean ± std, MaMOL's paired difference, the routing section and heat-map
    assert "## Capacity, seeds and significance" in md and "## Expert routing" in md
    capacity = md.split("## Capacity, seeds and significance")[1].split("## ")[0]
    base = next(ln for ln in capacity.splitlines() if ln.startswith("| trento/both-r0.70/baseline"))
    assert "±" in base and "| 0,1 |" in base and base.count("±") == 2  # OA and Δ mamol
    assert "![routing of trento/both-r0.70/mamol](../../runs/" in md
    heat = next(r["routing_png"] for r in rows if r["routing_png"])
    assert (smoke_root / heat).read_bytes()[:4] == b"\x89PNG"


def test_rerun_skips_finished_cells_and_gives_the_same_report(smoke_root):
    report = smoke_root / "reports" / "smoke" / "report.md"
    before = report.read_bytes()
    result = CliRunner().invoke(main, ["benchmark", str(SMOKE), "--root", str(smoke_root)])
    assert result.exit_code == 0, result.output
    assert "0 runs trained" in result.stdout and "done before, skipped" in result.stderr
    assert report.read_bytes() == before


def test_a_failing_cell_still_reports_the_cells_before_it(smoke_root, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(smoke_root, root, ignore=shutil.ignore_patterns("reports"))
    run_id = next(r["run_id"] for r in _rows(smoke_root) if r["cell_id"].endswith("/mamol/s0"))
    (root / "runs" / run_id / "metrics.json").write_text("{truncated")  # the third cell's run
    result = CliRunner().invoke(main, ["benchmark", str(SMOKE), "--root", str(root)])
    assert result.exit_code != 0
    failed = "trento/both-r0.70/mamol/s0"
    assert f"cell {failed} (JSONDecodeError" in result.stderr
    rows = _rows(root)
    assert [r["cell_id"] for r in rows] == [f"trento/both-r0.70/mmp/s{s}" for s in (0, 1)]
    md = (root / "reports" / "smoke" / "report.md").read_text()
    assert f"**Stopped**: cell {failed} (JSONDecodeError" in md


def _execute(notebook: str, env: dict[str, str]) -> list[str]:
    """Run a notebook in a fresh kernel (nbclient); returns its stream outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(REPO / "notebooks" / notebook, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out = []
    images = 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            images += "image/png" in o.get("data", {})
    assert images >= 1, f"{notebook} drew no figure"
    return out


def test_explore_notebook_runs_on_the_smoke_cube(smoke_root):
    text = "".join(_execute("01_explore_cube.ipynb", {"RSMISS_ROOT": str(smoke_root)}))
    assert "showing: trento" in text and "synthetic data: True" in text


def test_report_notebook_runs_on_the_smoke_report(smoke_root):
    env = {"RSMISS_ROOT": str(smoke_root), "RSMISS_PIPELINE": "smoke"}
    text = "".join(_execute("02_benchmark_report.ipynb", env))
    assert "14 runs" in text


def test_demo_prints_the_side_by_side_table(smoke_root):
    """The demo on the smoke's synthetic scene (same scale: raw files and cube are reused)."""
    result = CliRunner().invoke(
        main,
        [
            "demo", "--root", str(smoke_root), "--scale", "0.15", "--epochs", "2", "--no-map",
            "--pretrain-epochs", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "baseline" in out and "MaMOL" in out and "RANDOM" not in out
    weights = smoke_root / "weights" / "demo-tiny-contrastive-houston2013-e1.safetensors"
    assert f"encoder: pretrained by rsmiss pretrain (contrastive, houston2013) -> {weights}" in out
    assert "linear probe OA on the pretraining scene's" in out and "lidar alone" in out
    assert weights.is_file()
    report = (smoke_root / "reports" / "demo" / "report.md").read_text()
    assert "pretrained by rsmiss pretrain (contrastive, houston2013)" in report
    assert "mean ± std over seeds 0, 1" in out
    for label in ("complete", "HS missing", "LiDAR missing", "all test samples"):
        line = next(line for line in out.splitlines() if line.strip().startswith(label))
        assert line.count("±") == 2, line  # label (n=..) + mean ± std per method
    assert str(smoke_root / "reports" / "demo" / "report.md") in out
    assert (smoke_root / "reports" / "demo" / "report.md").is_file()
