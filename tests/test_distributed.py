"""``--devices 2`` on CPU: two gloo processes under DDP give the single-process metrics.

The global batch and its order are the same for any number of ranks and the loss is scaled
to the global-batch mean, so the two runs differ only by floating-point reduction order
(gradient all-reduce, per-rank auxiliary losses). Tolerance: OA, AA and kappa within
1.5 points, and each test sample scored exactly once (same n, confusion sums to n).
"""

from __future__ import annotations

from click.testing import CliRunner
from training_env import TRAIN_ARGS, fresh_workspace, reference_run

from rsmiss.cli import main
from rsmiss.inference import load_run

TOLERANCE = 1.5  # percentage points


def test_two_cpu_processes_match_single_process(tmp_path_factory):
    ref = reference_run(tmp_path_factory)
    root = fresh_workspace(tmp_path_factory, "ddp")
    res = CliRunner().invoke(main, ["train", "--root", str(root), *TRAIN_ARGS, "--devices", "2"])
    assert res.exit_code == 0, res.output
    (run_dir,) = (root / "runs").iterdir()
    run = load_run(run_dir)
    assert run.config.devices == 2 and run.run_id != ref.run_id
    assert run.environment["world_size"] == 2
    got, want = run.metrics, ref.metrics
    assert got["n_test"] == want["n_test"]
    cm = got["overall"]["confusion_matrix"]
    assert sum(map(sum, cm)) == got["n_test"]  # every test sample exactly once
    for key in ("oa", "aa", "kappa"):
        assert abs(got["overall"][key] - want["overall"][key]) <= TOLERANCE, (key, got, want)
    for name, scores in want["by_pattern"].items():
        assert got["by_pattern"][name]["n"] == scores["n"]


def test_killed_parent_leaves_no_orphan_ranks(tmp_path_factory):
    """kill -9 of `rsmiss train --devices 2`: its spawned ranks die with it (no orphans)."""
    import signal
    import time

    import psutil
    from training_env import rsmiss_subprocess

    root = fresh_workspace(tmp_path_factory, "ddp-kill")
    proc = rsmiss_subprocess(["train", "--root", str(root), *TRAIN_ARGS, "--devices", "2"])
    parent = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 120
        ranks: list[psutil.Process] = []
        while time.monotonic() < deadline and proc.poll() is None:
            # the two ranks (plus the spawn context's resource tracker) are children
            ranks = [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
            if len(ranks) == 2:
                break
            time.sleep(0.05)
        assert len(ranks) == 2, "the two ranks never started"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(ranks, timeout=20)
    assert not alive, f"orphan ranks left behind: {[p.pid for p in alive]}"
