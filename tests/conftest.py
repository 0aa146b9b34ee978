"""Shared fixtures: paths to the real Trento files, the smoke benchmark's workspace and a
quiet, deterministic environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "pipelines" / "smoke.yaml"


def trento_dir() -> Path | None:
    """The real Trento files (../shared/data/trento beside the checkout), if present."""
    env = os.environ.get("RSMISS_TRENTO_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "trento")
    for c in candidates:
        if (c / "Italy_lidar.mat").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def real_trento() -> Path:
    path = trento_dir()
    if path is None:
        pytest.skip("real Trento files not found (../shared/data/trento or $RSMISS_TRENTO_DIR)")
    return path


@pytest.fixture(autouse=True)
def _isolated_root(tmp_path_factory, monkeypatch):
    """Never touch the user's ./rsmiss-data or weights from tests."""
    monkeypatch.delenv("RSMISS_ROOT", raising=False)
    monkeypatch.delenv("RSMISS_BACKBONE_WEIGHTS", raising=False)
    for var in ("RSMISS_MIRROR", "RSMISS_CATALOG", "HF_ENDPOINT"):  # downloads stay local
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    """pipelines/smoke.yaml run once through the CLI (as make does), cells one after the
    other; its workspace feeds the smoke tests and the dask grid tests."""
    from click.testing import CliRunner

    from rsmiss.cli import main

    root = tmp_path_factory.mktemp("smoke")
    result = CliRunner().invoke(main, ["benchmark", str(SMOKE), "--root", str(root)])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return root
