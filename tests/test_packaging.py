"""The wheel carries the catalog and the pipelines: an installed rsmiss works from anywhere.

Builds the wheel from a clean copy of the checkout (the files git knows), installs it into a
fresh virtual environment, and runs the README's commands from a folder outside the source
tree. The new environment reuses this one's installed dependencies through a ``.pth`` line
(a ``--system-site-packages`` venv would see the base interpreter's packages, not this
environment's, and this environment's editable rsmiss must not be the one imported).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FALLBACK = ("rsmiss", "catalog", "pipelines", "pyproject.toml", "setup.py", "MANIFEST.in")


def clean_copy(dest: Path) -> Path:
    """The files of a fresh clone (tracked or new, never ignored build outputs)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the build inputs
        listed = [str(p.relative_to(REPO)) for top in FALLBACK for p in (REPO / top).rglob("*")]
        listed += list(FALLBACK)
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file() and not rel.startswith(("notebooks/", "tests/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def rsmiss_cli(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RSMISS_ROOT")}
    return subprocess.run(
        [str(venv / "bin" / "rsmiss"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_installed_wheel_knows_the_catalog_and_pipelines_from_any_folder(tmp_path):
    src = clean_copy(tmp_path / "src")
    assert not (src / "rsmiss" / "_data").exists()  # the copy is made by the build, not kept
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("rsmiss-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site, "_rsmiss_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
        + ["--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import rsmiss; print(rsmiss.__file__)"],
        cwd=elsewhere,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(site), where

    for name in ("paper-table1", "pipelines/paper-table1.yaml"):
        res = rsmiss_cli(venv, elsewhere, "benchmark", name, "--dry-run", "--seeds", "0")
        assert res.returncode == 0, res.stderr
        assert (
            res.stdout.startswith("pipeline paper-table1 (") and ": 189 cells" in res.stdout
        )  # one seed: 162 of the paper + mamol_ffn
        assert "/_data/pipelines/paper-table1.yaml" in res.stdout.splitlines()[0]

    raw = elsewhere / "D"
    res = rsmiss_cli(venv, elsewhere, "synth", "trento", "--out", str(raw), "--scale", "0.25")
    assert res.returncode == 0, res.stderr
    res = rsmiss_cli(
        venv, elsewhere, "ingest", "trento", "--raw", "D", "--no-patches", "--no-progress"
    )
    assert res.returncode == 0, res.stderr
    assert (elsewhere / "rsmiss-data" / "cubes" / "trento.zarr").is_dir()
