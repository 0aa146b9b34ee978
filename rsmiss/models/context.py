"""What every adapter / prompter may know about the rows of one encoder pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def pattern_index(available: torch.Tensor) -> torch.Tensor:
    """Availability rows (N, M) -> index over the 2^M - 1 non-empty patterns (bitmask - 1).

    Bit m is modality m, so for ("hs", "lidar"): 0 = hs only, 1 = lidar only, 2 = complete.
    """
    weights = 2 ** torch.arange(available.shape[1], device=available.device)
    return (available.long() * weights).sum(1) - 1


@dataclass
class PassContext:
    """Per-row facts of one encoder pass (a row = one sample's one modality).

    `available` is the availability of the row's SAMPLE (all modalities), so the HS pass knows
    whether LiDAR is there; `modality` is the index of the modality this row encodes.
    """

    pattern: torch.Tensor  # (N,) long
    available: torch.Tensor  # (N, M) bool
    modality: torch.Tensor  # (N,) long
    n_patterns: int
    aux: list[torch.Tensor] = field(default_factory=list)
    scratch: dict = field(default_factory=dict)
