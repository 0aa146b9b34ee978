"""The benchmark grid on dask: two local worker processes give the sequential run's bytes,
a worker killed mid-cell is replaced and the cell resumes from its checkpoint, and a bad
cluster flag is one line (exit 2) before anything is written.

Every test starts from a copy of the smoke workspace (raw files, cube and scenarios are
reused; only the runs a test deletes are trained again).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml
from click.testing import CliRunner

from rsmiss.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "pipelines" / "smoke.yaml"


def _copy(smoke_root: Path, dest: Path, drop_runs: tuple[str, ...] = ()) -> Path:
    shutil.copytree(smoke_root, dest, ignore=shutil.ignore_patterns("reports"))
    for run_id in drop_runs:
        shutil.rmtree(dest / "runs" / run_id)
    return dest


def test_two_local_workers_give_the_sequential_report(smoke_root, tmp_path, monkeypatch):
    """Two worker processes, each set up as on a 2-GPU node (its own CUDA_VISIBLE_DEVICES and
    a GPU resource, so every cell asks for one): the runs' bytes and the report are the
    sequential run's."""
    monkeypatch.setattr("rsmiss.benchmark.cluster._gpu_count", lambda: 2)
    runs = sorted(p.name for p in (smoke_root / "runs").iterdir())
    drop = tuple(r for r in runs if "-mmp-" in r)  # one run per worker to train again
    assert len(drop) == 2
    root = _copy(smoke_root, tmp_path / "ws", drop)
    res = CliRunner().invoke(main, ["benchmark", str(SMOKE), "--root", str(root), "--workers", "2"])
    assert res.exit_code == 0, res.output + res.stderr
    assert "dask cluster tcp://" in res.stderr and "2 worker(s), one GPU per cell" in res.stderr
    assert "2 runs trained, 6 found finished" in res.stdout
    for run_id in runs:
        got = (root / "runs" / run_id / "metrics.json").read_bytes()
        assert got == (smoke_root / "runs" / run_id / "metrics.json").read_bytes(), run_id
    for name in ("runs.csv", "report.md"):
        want = (smoke_root / "reports" / "smoke" / name).read_bytes()
        assert (root / "reports" / "smoke" / name).read_bytes() == want, name


def _workers_of(pid: int) -> list[psutil.Process]:
    """The dask worker processes a ``--workers`` run spawned (not its resource tracker)."""
    kids = psutil.Process(pid).children(recursive=True)
    return [k for k in kids if "spawn_main" in " ".join(k.cmdline())]


def test_a_killed_worker_is_replaced_and_the_cell_resumes(smoke_root, tmp_path):
    root = _copy(smoke_root, tmp_path / "ws")
    doc = yaml.safe_load(SMOKE.read_text())
    doc["name"], doc["seeds"] = "grid-kill", [0]
    doc["recipe"]["epochs"] = 10  # long enough to be killed between two checkpoints
    doc["grid"] = [{**doc["grid"][0], "methods": ["mmp"]}]
    pipe = tmp_path / "grid-kill.yaml"
    pipe.write_text(yaml.safe_dump(doc))
    code = "import sys; from rsmiss.cli import main; sys.argv[0] = 'rsmiss'; main()"
    args = ["benchmark", str(pipe), "--root", str(root), "--workers", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    before = set((root / "runs").iterdir())
    killed = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            ckpts = [p / "checkpoint.pt" for p in set((root / "runs").iterdir()) - before]
            if ckpts and ckpts[0].is_file() and not (ckpts[0].parent / "metrics.json").exists():
                for w in _workers_of(proc.pid):
                    w.send_signal(signal.SIGKILL)
                    killed.append(w.pid)
                break
            time.sleep(0.005)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert killed, "the worker was never caught mid-run"
    assert proc.returncode == 0, text
    assert "1 cells (1 runs trained" in out.decode()
    assert text.count("epoch 10/10") == 1 and text.count("epoch 1/10") == 1, text  # resumed
    (run,) = set((root / "runs").iterdir()) - before
    assert (run / "metrics.json").is_file()
    rows = (root / "reports" / "grid-kill" / "runs.csv").read_text().splitlines()
    assert len(rows) == 2 and run.name in rows[1]


def test_bad_cluster_flags_are_one_line_and_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("rsmiss.scheduler.CONNECT_TIMEOUT", "1s")
    root = tmp_path / "ws"
    cases = [
        (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler tcp://127.0.0.1:9: no dask scheduler"),
        (["--scheduler", "localhost"], "expected an address like tcp://"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "2", "--scheduler", "tcp://h:1"], "exclude each other"),
    ]
    for flags, message in cases:
        res = CliRunner().invoke(main, ["benchmark", str(SMOKE), "--root", str(root), *flags])
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1, (flags, res.stderr)
        assert lines[0].startswith("error: ") and message in lines[0], lines
    assert not root.exists() or not any(root.iterdir())
