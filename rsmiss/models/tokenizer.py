"""Per-modality token projection: one pixel of the P x P patch becomes one CLIP token.

The paper's "modality projection layers": Conv3x3(C -> 256) + Conv1x1(256 -> width), so each
pixel's spectrum (or LiDAR / SAR vector, with a 3x3 neighbourhood) becomes a width-d token.
A GELU sits between the two convolutions; without it the pair would collapse to one conv.
"""

from __future__ import annotations

import torch
from torch import nn


class ModalityTokenizer(nn.Module):
    """(B, C, P, P) patch -> (B, P², width) tokens (trainable)."""

    def __init__(self, channels: int, width: int, hidden: int = 256) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels, hidden, kernel_size=3, padding=1)
        self.act = nn.GELU()
        self.conv1 = nn.Conv2d(hidden, width, kernel_size=1)

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.act(self.conv3(patch))).flatten(2).transpose(1, 2)
