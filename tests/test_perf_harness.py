"""The perf harness (tools/perf/perf.py) runs end to end on a tiny config and emits sane records.

Timings are not checked (shared CPU): only that every figure is there, with the expected
keys and positive numbers. It runs in a fresh process with zarr / dask / rasterio / torchgeo
/ xarray blocked, as on the GPU machine (which has none of them), so a heavy import on the
train / predict path fails the test. One process keeps the test short (imports dominate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("zarr", "dask", "rasterio", "torchgeo", "xarray")
ARGS = ["--figures", "parity,train,loop,ingest,predict", "--backbone", "tiny", "--patch-size", "6"]
ARGS += ["--batch-size", "6", "--rounds", "2", "--warmup", "1", "--threads", "1"]
ARGS += ["--predict-size", "8x8", "--predict-batch", "32", "--predict-rounds", "1"]
ARGS += ["--loop-scene", "12x10", "--loop-samples", "20", "--loop-epochs", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("perf")
    out = tmp / "res.jsonl"
    code = (
        "import sys, runpy\n"
        f"for name in {HEAVY!r}: sys.modules[name] = None  # `import name` now fails\n"
        f"sys.argv = ['perf.py', '--out', {str(out)!r}, *{ARGS!r}]\n"
        f"runpy.run_path({str(ROOT / 'tools' / 'perf' / 'perf.py')!r}, run_name='__main__')\n"
        f"loaded = [n for n in {HEAVY!r} if sys.modules.get(n) is not None]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp,
        env={
            "OMP_NUM_THREADS": "1",
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp),
            # where the packages come from on a machine with no install (PYTHONPATH=src:site)
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    return printed, written


def test_lines_printed_and_written_without_heavy_modules(run):
    printed, written = run
    assert printed == written
    assert [r["figure"] for r in written] == [
        "parity",
        *["train_step"] * 3,
        "train_ratios",
        "train_loop",
        "ingest",
        "predict",
    ]
    ingest = written[-2]
    assert "zarr" in ingest["skipped"]  # the GPU machine's answer: skipped, with the reason


def test_train_step_records(run):
    records = run[1]
    steps = {r["variant"]: r for r in records if r["figure"] == "train_step"}
    assert set(steps) == {"mamol", "reference", "floor"}
    for rec in steps.values():
        for key in ("step_s", "samples_per_s", "peak_rss_mb", "step_tflop", "threads"):
            assert rec[key] > 0, (rec["variant"], key)
        assert rec["device"] == "cpu" and rec["batch_size"] == 6 and rec["eta"] == 0.7
    # eta = 0.7 of 6: 2 lack HS, 2 lack LiDAR -> 8 encoder rows; the reference encodes all 12
    assert steps["mamol"]["encoder_rows"] == 8 and steps["reference"]["encoder_rows"] == 12
    assert steps["reference"]["step_tflop"] > steps["mamol"]["step_tflop"]
    (ratios,) = [r for r in records if r["figure"] == "train_ratios"]
    assert ratios["mamol_speedup_vs_reference"] > 0 and ratios["mamol_over_floor"] > 0


def test_train_loop_record(run):
    """The real loop (fit) on an in-memory scene: 20 samples in batches of 6 -> 4 steps per
    timed epoch, compared with the step figure of the same variant."""
    (loop,) = [r for r in run[1] if r["figure"] == "train_loop"]
    assert loop["variant"] == "mamol" and loop["steps_timed"] == 4 and loop["n_train"] == 20
    assert loop["samples_per_s"] > 0 and loop["seconds"] > 0 and loop["warmup_s"] > 0
    (step,) = [r for r in run[1] if r.get("variant") == "mamol" and r["figure"] == "train_step"]
    assert loop["step_samples_per_s"] == step["samples_per_s"]
    assert loop["loop_over_step"] == round(loop["samples_per_s"] / step["samples_per_s"], 3)


def test_parity_and_predict_records(run):
    figures = {r["figure"]: r for r in run[1]}
    parity = figures["parity"]
    assert parity["ok"] and 0 < parity["rel_err_fp32"] <= parity["tol_fp32"]
    pred = figures["predict"]
    assert pred["pixels_per_s"] > 0 and pred["seconds"] > 0 and pred["scene"] == [8, 8]
    assert pred["peak_rss_mb"] > 0


def test_present_rows_matches_nonzero():
    """The device-side row selection (no nonzero(): no sync) equals nonzero() on any mask."""
    import torch

    from rsmiss.models.classifier import present_rows

    g = torch.Generator().manual_seed(0)
    for n in (1, 7, 64):
        column = torch.rand(n, generator=g) < 0.6
        expected = column.nonzero().view(-1)
        assert torch.equal(present_rows(column, int(column.sum())), expected)
