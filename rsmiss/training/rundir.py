"""A finished (or resumable) run directory as an object: ``Run`` and ``load_run``.

Reading a run needs no training machinery: config and results are JSON, the model is
rebuilt on demand (frozen backbone from its weights file or, for a random backbone, from the
run's seed, exactly as training built it) plus the trainable tensors of the checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmiss.errors import DataError
from rsmiss.training.checkpoint import load_checkpoint
from rsmiss.training.config import RunConfig
from rsmiss.workspace import Workspace


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as given, else the first GPU when there is one, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Run:
    """A run directory: its config and results, and the trained model on demand."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise DataError(f"{self.path} is not a run directory (no config.json); train it first")
        raw = json.loads((self.path / "config.json").read_text())
        self.run_id: str = raw["run_id"]
        self.config = RunConfig.from_dict(raw["config"])
        self.model_info: dict[str, Any] = raw["model"]

    @property
    def modalities(self) -> dict[str, int]:
        """{modality: bands} in the model's order: its mask columns and its head's input."""
        stored = self.model_info["modalities"]
        if isinstance(stored, list):
            return {str(m): int(c) for m, c in stored}
        # Older runs stored {name: bands} as a JSON object, whose keys were written sorted:
        # take the order from the run's metrics or its training scenario, not from it.
        order = (self.metrics or {}).get("modalities") or self._scenario_modalities()
        if order is None or sorted(order) != sorted(stored):
            raise DataError(
                f"{self.path / 'config.json'}: the order of the run's modalities is not "
                "recorded (an older run, and neither its metrics.json nor its scenario "
                "file is left); retrain it"
            )
        return {str(m): int(stored[m]) for m in order}

    def _scenario_modalities(self) -> list[str] | None:
        path = (
            Workspace(self.root).scenarios(self.config.dataset) / f"{self.config.scenario_id}.npz"
        )
        try:
            with np.load(path, allow_pickle=False) as z:
                return [str(m) for m in z["modalities"]]
        except (OSError, KeyError, ValueError):
            return None

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, finished={self.finished})"

    @property
    def root(self) -> Path:
        return self.path.parent.parent

    @property
    def finished(self) -> bool:
        return (self.path / "metrics.json").is_file()

    def _json(self, name: str) -> dict[str, Any] | None:
        p = self.path / name
        return json.loads(p.read_text()) if p.is_file() else None

    @property
    def metrics(self) -> dict[str, Any] | None:
        return self._json("metrics.json")

    @property
    def perf(self) -> dict[str, Any] | None:
        return self._json("perf.json")

    @property
    def environment(self) -> dict[str, Any] | None:
        return self._json("environment.json")

    def load_model(self, device: str | torch.device | None = None) -> torch.nn.Module:
        """The trained model (frozen backbone rebuilt from its weights or seed + checkpoint)."""
        cfg = self.config
        if cfg.backbone_weights is not None and not Path(cfg.backbone_weights).exists():
            raise DataError(
                f"backbone weights {cfg.backbone_weights} of run {self.run_id} are gone; "
                "put them back to use this run"
            )
        ckpt_path = self.path / "checkpoint.pt"
        if not ckpt_path.is_file():
            raise DataError(f"{ckpt_path} missing; the run has no trained model")
        from rsmiss.training.run import build_for_run

        model = build_for_run(cfg, self.modalities, int(self.model_info["n_classes"]))
        ckpt = load_checkpoint(
            ckpt_path, run_id=self.run_id, backbone_hash=model.config.get("backbone_hash")
        )
        model.load_trainable_state_dict(ckpt["model"])
        return model.to(resolve_device(device)).eval()

    def predict(self, cube: str | os.PathLike[str] | None = None, **options: Any) -> Path:
        """Classify every pixel of ``cube`` (default: the run's own); returns the GeoTIFF path.

        ``options`` (missing, out, batch_size, device, progress) and their defaults are
        those of :func:`rsmiss.training.evaluate.predict_run`, kept in that one place.
        """
        from rsmiss.training.evaluate import predict_run

        return predict_run(self, cube=cube, **options)

    def evaluate(self, scenario: str | os.PathLike[str]) -> dict[str, Any]:
        """Re-score on another scenario's test masks; writes ``eval/<scenario-id>.json``."""
        from rsmiss.training.evaluate import evaluate_run

        return evaluate_run(self, scenario)


def load_run(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Run:
    """A run by directory path or by run id under ``ROOT/runs``."""
    p = Path(path)
    if (p / "config.json").is_file():
        return Run(p)
    candidate = Workspace(root).runs / str(path)
    if (candidate / "config.json").is_file():
        return Run(candidate)
    raise DataError(
        f"run {path!s} not found (neither a run directory nor an id under "
        f"{Workspace(root).runs}); see rsmiss train"
    )
