"""Shared state of the reliability tests (test_bad_inputs, test_determinism): one small cube
and one tiny trained run, built once per pytest session and only ever copied, never changed.

Synthetic Trento at scale 0.25 (42 x 150 px, 53 training / 1,838 test pixels), ingested with
``--patch-size 1 --no-patches`` (one pixel per sample: training inputs are then exactly the
training pixels, which the leakage test needs), the paper's missing-both scenario at η = 0.5
and MaMOL on the tiny random backbone for one epoch on CPU (a few seconds).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

SCALE = "0.25"
PATCH = "1"
SCENARIO = "both-r0.50-s0"
INGEST_ARGS = ["--patch-size", PATCH, "--no-patches", "--no-progress"]
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
    "1",
    "--seed",
    "0",
    "--set",
    "max_test_samples=200",
    "--set",
    "write_map=false",
]

_CACHE: dict[str, Path] = {}


def cli(*args: str, catch: bool = True):
    """The CLI in this process (CliRunner keeps stdout and stderr apart)."""
    from click.testing import CliRunner

    from rsmiss.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=catch)


def ok(*args: str):
    res = cli(*args, catch=False)
    assert res.exit_code == 0, (args, res.output, res.stderr)
    return res


def base_root(tmp_path_factory) -> Path:
    """ROOT with raw/trento (synthetic), cubes/trento.zarr and the scenario (read-only)."""
    if "base" not in _CACHE:
        root = tmp_path_factory.mktemp("rel-base")
        ok("synth", "trento", "--out", root / "raw" / "trento", "--scale", SCALE)
        ok("ingest", "trento", "--root", root, *INGEST_ARGS)
        ok("scenarios", "--root", root, "--rate", "0.5", "--pattern", "both")
        _CACHE["base"] = root
    return _CACHE["base"]


def copy_root(tmp_path_factory, name: str, *, runs: bool = False, raw: bool = False) -> Path:
    """A private copy of the base workspace (cubes, scenarios; runs and raw on request)."""
    base = base_root(tmp_path_factory)
    if runs:
        trained_run(tmp_path_factory)
    root = tmp_path_factory.mktemp(name)
    subs = ["cubes", "scenarios"] + (["runs"] if runs else []) + (["raw"] if raw else [])
    for sub in subs:
        shutil.copytree(base / sub, root / sub)
    return root


def trained_run(tmp_path_factory) -> Path:
    """The run directory of the reference 1-epoch run inside the base workspace."""
    if "run" not in _CACHE:
        root = base_root(tmp_path_factory)
        ok("train", "--root", root, *TRAIN_ARGS)
        (run_dir,) = (root / "runs").iterdir()
        assert (run_dir / "metrics.json").is_file()
        _CACHE["run"] = run_dir
    return _CACHE["run"]


def snapshot(*folders: Path) -> dict[str, tuple]:
    """Every entry under ``folders``: kind, size, mtime and content hash (files).

    Two equal snapshots mean nothing was added, removed, rewritten or touched.
    """
    out: dict[str, tuple] = {}
    for folder in folders:
        if not folder.exists():
            out[str(folder)] = ("absent",)
            continue
        for dirpath, dirs, files in os.walk(folder):
            dirs.sort()
            for d in dirs:
                out[os.path.join(dirpath, d)] = ("dir",)
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                st = os.stat(p)
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                out[p] = ("file", st.st_size, st.st_mtime_ns, digest)
    return out


def tamper_npz(npz: Path) -> None:
    """Flip one mask entry and rewrite a valid zip: only the stored hash can tell."""
    with zipfile.ZipFile(npz) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    blob = bytearray(entries["train.npy"])
    blob[-1] ^= 1
    entries["train.npy"] = bytes(blob)
    with zipfile.ZipFile(npz, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
