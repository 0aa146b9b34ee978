"""One small synthetic Trento workspace and one trained reference run, shared by the training
tests (test_training, test_train_cli, test_distributed, test_predict) within a pytest session.

Built once per session (module-level cache, since the four modules import these helpers
separately): synthetic Trento at scale 0.75 (125 x 450 px, 462 training pixels), a cube with
3 x 3 patches cut on the fly (small patches: the random tiny backbone averages its tokens,
and larger windows mix parcels), the paper's missing-both scenario at η = 0.9, and MaMOL on
the tiny backbone for ``EPOCHS`` epochs on CPU (complete-modality OA ~86 %, train ~10 s).
A second, smaller synthetic scene (scale 0.25) is ingested for whole-scene prediction: same
modalities and bands, a different area, and few pixels to classify.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SCALE = 0.75
PATCH = 3
RATE = 0.9
SCENARIO = "both-r0.90-s0"
EPOCHS = 15
MAX_TEST = 1500
# The flags of the reference run: the CLI tests, the kill -9 test and the DDP test re-issue
# them (in other workspaces), so their metrics can be compared with the reference's.
TRAIN_ARGS = [
    "--dataset",
    "trento",
    "--scenario",
    SCENARIO,
    "--method",
    "mamol",
    "--backbone",
    "tiny",
    "--random-init",
    "--epochs",
    str(EPOCHS),
    "--seed",
    "0",
    "--set",
    f"max_test_samples={MAX_TEST}",
    "--set",
    "write_map=false",
]

_CACHE: dict[str, Path] = {}


def _cli(*args: str) -> None:
    from click.testing import CliRunner

    from rsmiss.cli import main

    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output


def _synth_and_ingest(root: Path, *synth_args: str) -> None:
    """A synthetic Trento scene under ROOT/raw/trento, ingested with PATCH-sized patches."""
    _cli("synth", "trento", "--out", str(root / "raw" / "trento"), *synth_args)
    _cli(
        "ingest",
        "trento",
        "--root",
        str(root),
        "--patch-size",
        str(PATCH),
        "--no-patches",
        "--no-progress",
    )


def base_workspace(tmp_path_factory) -> Path:
    """ROOT with cubes/trento.zarr and scenarios/trento/<SCENARIO>.npz (read-only: copy it)."""
    if "base" not in _CACHE:
        root = tmp_path_factory.mktemp("train-base")
        _synth_and_ingest(root, "--scale", str(SCALE))
        _cli("scenarios", "--root", str(root), "--rate", str(RATE), "--pattern", "both")
        _CACHE["base"] = root
    return _CACHE["base"]


def small_cube(tmp_path_factory) -> Path:
    """Another synthetic Trento scene (scale 0.25, other seed) as its own cube, for predict."""
    if "small" not in _CACHE:
        root = tmp_path_factory.mktemp("train-small")
        _synth_and_ingest(root, "--scale", "0.25", "--seed", "1")
        _CACHE["small"] = root / "cubes" / "trento.zarr"
    return _CACHE["small"]


def fresh_workspace(tmp_path_factory, name: str) -> Path:
    """A copy of the base workspace (cube + scenarios, no runs) to train into."""
    base = base_workspace(tmp_path_factory)
    root = tmp_path_factory.mktemp(name)
    for sub in ("cubes", "scenarios"):
        shutil.copytree(base / sub, root / sub)
    return root


def reference_run(tmp_path_factory):
    """The reference MaMOL run (trained once, in-process, through the CLI)."""
    from rsmiss.inference import load_run

    if "ref" not in _CACHE:
        root = fresh_workspace(tmp_path_factory, "train-ref")
        _cli("train", "--root", str(root), *TRAIN_ARGS)
        (run_dir,) = (root / "runs").iterdir()
        _CACHE["ref"] = run_dir
    return load_run(_CACHE["ref"])


def rsmiss_subprocess(args: list[str], **kw) -> subprocess.Popen:
    """The CLI in a subprocess (for kill -9), with this process's thread settings."""
    import torch

    # the same intra-op thread count as the in-process reference run: CPU reductions may
    # split differently with another count, and the kill test compares bytes
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    code = "import sys; from rsmiss.cli import main; sys.argv[0] = 'rsmiss'; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kw)


def kill_9_once_written(args: list[str], path: Path) -> None:
    """Run the CLI in a subprocess and SIGKILL it as soon as ``path`` exists (a checkpoint)."""
    proc = rsmiss_subprocess(args)
    try:
        deadline = time.monotonic() + 240
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.exists(), f"{path.name} never appeared"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)


def finish_in_subprocess(args: list[str]) -> str:
    """Run the CLI to the end in a fresh process; its stdout, then its stderr (the log
    lines; it must exit 0)."""
    proc = rsmiss_subprocess(args, stdout=-1, stderr=-1, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out + err
