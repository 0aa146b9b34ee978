"""Checkpoints: trainable parameters, optimiser, progress and every RNG state, atomically.

Only the trainable parameters are stored (the frozen backbone is identified by its hash),
so a MaMOL checkpoint is megabytes, not the 86 M frozen weights. RNG states of torch,
numpy and Python (per rank) are stored so that a resumed run continues bit-for-bit where
the killed one stopped; the data order itself is a function of (seed, epoch) and needs no
state. The file is written beside its destination and renamed, so a kill leaves either the
previous checkpoint or the new one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmiss.errors import DataError
from rsmiss.workspace import atomic_path

FORMAT = "rsmiss-checkpoint-1"


def capture_rng() -> dict[str, Any]:
    """This process's RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "python": [int(py[0]), list(py[1]), py[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (plus the format tag) to ``path``."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(
    path: str | Path, *, run_id: str, backbone_hash: str | None, check_backbone: bool = True
) -> dict[str, Any]:
    """Read a checkpoint for resuming; refuse (keeping the file) when it is unusable."""
    path = Path(path)
    hint = "the file is kept; rerun with --no-resume to start this run over"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        reason = " ".join(str(exc).split())[:120]
        raise DataError(f"{path}: corrupt or unreadable checkpoint ({reason}); {hint}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(f"{path}: not an rsmiss checkpoint; {hint}")
    if ckpt.get("run_id") != run_id:
        raise DataError(f"{path}: checkpoint belongs to run {ckpt.get('run_id')!r}; {hint}")
    if check_backbone and ckpt.get("backbone_hash") != backbone_hash:
        raise DataError(f"{path}: checkpoint was trained on another backbone; {hint}")
    for key in ("model", "optimizer", "epoch", "step", "rng"):
        if key not in ckpt:
            raise DataError(f"{path}: checkpoint lacks {key!r}; {hint}")
    return ckpt
