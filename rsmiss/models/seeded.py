"""A run's model rebuilt from plain run fields, with the same random draws every time.

Training builds the model of a run here and so does reading a finished run back: the
frozen backbone comes from its weights file or, for a random backbone, from the run's seed,
and every randomly initialised trainable part is drawn after seeding, so a resumed run and a
reloaded one start from exactly the tensors training started from.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmiss.models.classifier import MultimodalClassifier
from rsmiss.models.factory import build_model


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators from one run seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model_for_run(
    method: str,
    n_classes: int,
    channels: dict[str, int],
    *,
    seed: int,
    backbone: str,
    backbone_weights: str | Path | None,
    random_init: bool,
    patch_size: int,
    options: dict[str, Any] | None = None,
) -> MultimodalClassifier:
    """``build_model`` after ``seed_all(seed)``; ``channels`` in the model's modality order."""
    seed_all(seed)
    return build_model(
        method,
        n_classes,
        dict(channels),
        backbone=backbone,
        backbone_weights=backbone_weights,
        random_init=random_init,
        patch_size=patch_size,
        **(options or {}),
    )
