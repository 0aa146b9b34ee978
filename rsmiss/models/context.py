"""What every adapter / prompter may know about the rows of one encoder pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    # Routing statistics (rsmiss.models.routing): `recording` is set while a caller records;
    # adapters then append (adapter, pattern, gates, chosen, static) to `routing`, which the
    # classifier hands to its recorder after the blocks (appending, like `aux`, keeps the
    # compiled graph whole). `rows`: how many leading rows are real (the compiled path may
    # duplicate a lone row).
    recording: bool = False
    routing: list[tuple] = field(default_factory=list)
    rows: int | None = None

    def record_routing(
        self,
        adapter: Any,
        gates: torch.Tensor,
        chosen: torch.Tensor,
        static: torch.Tensor | None = None,
    ) -> None:
        """Report one adapter's routing of this pass (see rsmiss.models.routing); a no-op
        unless a caller records, so adapters call it unconditionally."""
        if not self.recording:
            return
        n = self.rows if self.rows is not None else gates.shape[0]
        self.routing.append(
            (
                adapter,
                self.pattern[:n],
                gates[:n].detach(),
                chosen[:n].detach(),
                None if static is None else static[:n].detach(),
            )
        )
