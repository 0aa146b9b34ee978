"""A finished (or resumable) run directory read back: config, results, the trained model.

Reading a run needs no training machinery: config and results are JSON, the model is
rebuilt on demand (frozen backbone from its weights file or, for a random backbone, from the
run's seed, exactly as training built it) plus the trainable tensors of the checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import DataError
from rsmiss.training.checkpoint import load_checkpoint
from rsmiss.training.config import RunConfig


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as given, else the first GPU when there is one, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class RunDir:
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
        return {str(m): int(c) for m, c in self.model_info["modalities"]}

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
        model = cfg.build_model(self.modalities, int(self.model_info["n_classes"]))
        ckpt = load_checkpoint(
            ckpt_path, run_id=self.run_id, backbone_hash=model.config.get("backbone_hash")
        )
        model.load_trainable_state_dict(ckpt["model"])
        return model.to(resolve_device(device)).eval()
