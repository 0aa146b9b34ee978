"""Shared fixtures: paths to the real Trento files and a quiet, deterministic environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
