"""kill -9 at seeded moments: every stage leaves its last complete output or none, a rerun
finishes, finished work is kept, and no process outlives the killed command.

Each stage runs as ``python -m rsmiss.cli`` in its own session (process group). One
uninterrupted subprocess run per stage is the reference *and* the stopwatch: it records when
the stage starts writing and when it ends, and the kill moments are drawn from a seeded RNG
within that window. ``rsmiss train`` killed mid-run and resumed to a byte-identical
``metrics.json`` is covered by tests/test_train_cli.py::test_kill_9_mid_training_resumes_to_
identical_metrics (not repeated here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from reliability_env import INGEST_ARGS, base_root, cli, copy_root, snapshot

from rsmiss.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SEED = 20261126
KILLS = 5
SCALE = 0.4  # synthetic Trento 66 x 240 px, ~4,800 samples: ingest with 7 x 7 patches ~2-4 s
INGEST = ["--patch-size", "7", "--no-progress"]


# ----------------------------------------------------------------------------- processes
def launch(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "rsmiss.cli", *map(str, args)],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def descendants(proc: subprocess.Popen, seen: set[int]) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        seen.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group_alive(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of the killed command's process group."""
    out = []
    for p in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def watch(proc: subprocess.Popen, until, timeout: float = 120.0) -> tuple[float, set[int]]:
    """Poll every 20 ms until ``until(elapsed)`` is true or the process ends."""
    t0 = time.monotonic()
    seen: set[int] = set()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        descendants(proc, seen)
        if until(time.monotonic() - t0, seen):
            break
        time.sleep(0.02)
    return time.monotonic() - t0, seen


def kill9(proc: subprocess.Popen, seen: set[int]) -> None:
    """SIGKILL the command only (not its group), then require every process it started to
    exit on its own (dask workers watch their parent) within 15 s; the group is killed
    afterwards in any case so that a failing test leaves nothing behind."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    left: list[int] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            left = [pid for pid in seen if alive(pid)]
            if not left and not group_alive(pgid):
                break
            time.sleep(0.1)
        assert not left, f"orphans of the killed command: {left}"
        assert not group_alive(pgid), group_alive(pgid)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def run_to_end(args: list[str], log: Path, started) -> tuple[float, float]:
    """The uninterrupted reference run: (seconds until ``started()``, total seconds)."""
    proc = launch(args, log)
    t_start: list[float] = []

    def until(elapsed: float, seen: set[int]) -> bool:
        if not t_start and started():
            t_start.append(elapsed)
        return False

    total, _ = watch(proc, until)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    return (t_start[0] if t_start else 0.0), total


# ----------------------------------------------------------------------------- cubes
@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    from rsmiss.synth import synthesize

    return synthesize("trento", tmp_path_factory.mktemp("crash-raw") / "trento", scale=SCALE)


@pytest.fixture(scope="module")
def ref_cube(raw, tmp_path_factory):
    """Reference cube from one uninterrupted subprocess ingest, with its timing."""
    root = tmp_path_factory.mktemp("crash-ref")
    cubes = root / "cubes"

    def writing() -> bool:
        return cubes.is_dir() and any(cubes.iterdir())

    t_write, total = run_to_end(
        ["ingest", "trento", "--raw", raw, "--root", root, *INGEST],
        root.parent / "ref.log",
        writing,
    )
    return root, t_write, total


def assert_same_cube(path: Path, ref: Path) -> None:
    from rsmiss.cube import open_cube

    got, want = open_cube(path), open_cube(ref)
    assert got.attrs == want.attrs
    assert set(got.variables) == set(want.variables)
    for name in want.variables:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


def assert_tmp_refused(folder: Path) -> list[Path]:
    from rsmiss.cube import open_cube

    tmps = sorted(folder.glob(".tmp-*")) if folder.is_dir() else []
    for t in tmps:
        with pytest.raises(DataError, match="interrupted"):
            open_cube(t)
    return tmps


@pytest.mark.slow
def test_ingest_killed_at_five_moments(raw, ref_cube, tmp_path):
    ref_root, t_write, total = ref_cube
    ref = ref_root / "cubes" / "trento.zarr"
    root = tmp_path / "root"
    dest = root / "cubes" / "trento.zarr"
    rng = np.random.default_rng(SEED)
    # kill moments inside the writing window of the reference run (plus its start-up)
    lo = max(0.0, t_write - 0.5)
    moments = sorted(float(t) for t in rng.uniform(lo, total, size=KILLS))
    outcomes = []
    for k, moment in enumerate(moments):
        args = ["ingest", "trento", "--raw", raw, "--root", root, *INGEST, "--force"]
        if k == KILLS - 1:  # the last one on a local dask cluster: its workers must go too
            args += ["--workers", "1"]
            worker: list[float] = []

            def until(elapsed, seen, workers=worker, extra=moment - lo):
                if not workers and seen:  # the cluster's first process is up
                    workers.append(elapsed)
                return bool(workers) and elapsed >= workers[0] + min(extra, 1.5)
        else:

            def until(elapsed, seen, moment=moment):
                return elapsed >= moment

        proc = launch(args, tmp_path / f"kill{k}.log")
        _, seen = watch(proc, until)
        finished = proc.poll() is not None
        kill9(proc, seen)
        if k == KILLS - 1:
            assert seen, "the --workers run started no worker process before the kill"
        tmps = assert_tmp_refused(root / "cubes")
        if dest.exists():  # complete and valid, or absent: never a half-written cube
            assert_same_cube(dest, ref)
        outcomes.append((round(moment, 2), finished, dest.exists(), len(tmps)))
    # the same command (no --force) finishes, cleans every leftover and gives the reference
    res = cli("ingest", "trento", "--raw", raw, "--root", root, *INGEST)
    assert res.exit_code == 0, res.output
    assert not list((root / "cubes").glob(".tmp-*")), list((root / "cubes").iterdir())
    assert_same_cube(dest, ref)
    print("ingest kills (moment s, finished before kill, cube present, tmp stores):", outcomes)


def test_up_to_date_ingest_removes_leftover_of_an_interrupted_rebuild(tmp_path_factory):
    """Regression (found by the kill test): a killed ``--force`` rebuild left its temporary
    store, and the next, up-to-date ingest returned early and kept it (GBs at full size)."""
    root = copy_root(tmp_path_factory, "leftover", raw=True)
    stale = root / "cubes" / ".tmp-trento.zarr.k1ll3d"
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    before = snapshot(root / "cubes" / "trento.zarr")
    res = cli("ingest", "trento", "--root", root, *INGEST_ARGS)
    assert res.exit_code == 0 and "up to date" in res.stderr, res.output
    assert not stale.exists()
    assert snapshot(root / "cubes" / "trento.zarr") == before


# ----------------------------------------------------------------------------- scenarios
SCEN = ["--rate", "0.9", "--pattern", "both", "--pattern", "other"]
SCEN += ["--pattern", "hs", "--pattern", "lidar"]


@pytest.mark.slow
def test_scenarios_killed_at_five_moments(ref_cube, tmp_path):
    import shutil

    from rsmiss.scenarios import load_scenario

    ref_root = tmp_path / "ref"
    shutil.copytree(ref_cube[0] / "cubes", ref_root / "cubes")
    folder = ref_root / "scenarios" / "trento"
    t_write, total = run_to_end(
        ["scenarios", "--root", ref_root, *SCEN],
        tmp_path / "ref.log",
        lambda: folder.is_dir() and any(folder.iterdir()),
    )
    want = {p.name: p.read_bytes() for p in folder.glob("*.npz")}
    assert len(want) == 4

    root = tmp_path / "root"
    shutil.copytree(ref_cube[0] / "cubes", root / "cubes")
    out = root / "scenarios" / "trento"
    rng = np.random.default_rng(SEED + 1)
    moments = sorted(float(t) for t in rng.uniform(max(0.0, t_write - 0.5), total, size=KILLS))
    for k, moment in enumerate(moments):
        proc = launch(["scenarios", "--root", root, *SCEN, "--force"], tmp_path / f"k{k}.log")
        _, seen = watch(proc, lambda elapsed, seen, m=moment: elapsed >= m)
        kill9(proc, seen)
        for p in out.glob("*.npz") if out.is_dir() else []:
            assert p.read_bytes() == want[p.name], p  # published files are whole
            load_scenario(p, cube=root / "cubes" / "trento.zarr")
    res = cli("scenarios", "--root", root, *SCEN)
    assert res.exit_code == 0, res.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == want  # no .tmp-* left either


# ----------------------------------------------------------------------------- benchmark
@pytest.mark.slow
def test_benchmark_killed_after_a_finished_cell_keeps_it(tmp_path, tmp_path_factory):
    import shutil

    pipeline = REPO / "tests" / "data" / "crash.yaml"
    root = tmp_path / "root"
    base = base_root(tmp_path_factory)  # the pipeline's raw files, cube and scenario
    for sub in ("raw", "cubes", "scenarios"):
        shutil.copytree(base / sub, root / sub)
    runs = root / "runs"

    def finished_runs() -> list[Path]:
        return sorted(p.parent for p in runs.glob("*/metrics.json")) if runs.is_dir() else []

    rng = np.random.default_rng(SEED + 2)
    delay = float(rng.uniform(0.0, 0.25))  # the second cell takes over a second
    first: list[float] = []

    def until(elapsed: float, seen: set[int]) -> bool:
        if not first and finished_runs():
            first.append(elapsed)
        return bool(first) and elapsed >= first[0] + delay

    proc = launch(["benchmark", pipeline, "--root", root], tmp_path / "kill.log")
    _, seen = watch(proc, until, timeout=240)
    assert proc.poll() is None, (
        "the benchmark ended before the kill: " + ((tmp_path / "kill.log").read_text()[-2000:])
    )
    kill9(proc, seen)
    done = finished_runs()
    assert done, "no cell had finished"
    kept = snapshot(*done)

    res = cli("benchmark", str(pipeline), "--root", str(root))
    assert res.exit_code == 0, res.output
    assert snapshot(*done) == kept  # finished cells untouched: not retrained, not rewritten
    assert res.stderr.count("done before, skipped") == len(done), res.stderr
    assert "2 cells" in res.stdout, res.stdout
    assert len(finished_runs()) == 2
    report = root / "reports" / "crash"
    assert {p.name for p in report.iterdir()} == {"report.md", "runs.csv", "oa_vs_rate.png"}
