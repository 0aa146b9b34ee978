"""Prompt baselines: MMP (missing-aware prompts) and DCP (deep correlated prompts).

A prompter is called before each block with (block index, tokens, pass context) and returns
(N, L_p, width) prompt tokens for that block or None; the tower inserts them after the class
token for that block only (deep prompting), see `VisionTower.forward_blocks`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsmiss.models.context import PassContext


class MissingAwarePrompts(nn.Module):
    """MMP (Lee et al., CVPR 2023): one learnable prompt set per missing pattern and layer."""

    def __init__(self, n_patterns: int, depth: int, length: int, width: int) -> None:
        super().__init__()
        self.depth = depth
        self.prompts = nn.Parameter(torch.empty(n_patterns, depth, length, width))
        nn.init.trunc_normal_(self.prompts, std=0.02)

    def forward(self, layer: int, x: torch.Tensor, ctx: PassContext) -> torch.Tensor | None:
        if layer >= self.depth:
            return None
        return self.prompts[ctx.pattern, layer]


class CorrelatedPrompts(nn.Module):
    """DCP (Hu et al., NeurIPS 2024), `length` split over its three prompt kinds.

    - correlated: layer-0 prompts per (pattern, modality); layer l's prompts are generated
      from layer l-1's of ALL modalities by a small MLP (residual);
    - dynamic: per-pattern queries cross-attending to the block's input tokens;
    - modal-common: per-layer prompts shared by all patterns and modalities.
    """

    def __init__(
        self,
        n_patterns: int,
        n_modalities: int,
        depth: int,
        length: int,
        width: int,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        self.depth, self.n_modalities = depth, n_modalities
        self.l_corr = length // 3
        self.l_dyn = length // 3
        self.l_common = length - self.l_corr - self.l_dyn
        self.correlated = nn.Parameter(torch.empty(n_patterns, n_modalities, self.l_corr, width))
        self.generators = nn.ModuleList(
            nn.Sequential(
                nn.Linear(n_modalities * width, hidden),
                nn.GELU(),
                nn.Linear(hidden, n_modalities * width),
            )
            for _ in range(depth - 1)
        )
        self.queries = nn.Parameter(torch.empty(n_patterns, depth, self.l_dyn, width))
        self.common = nn.Parameter(torch.empty(depth, self.l_common, width))
        for p in (self.correlated, self.queries, self.common):
            nn.init.trunc_normal_(p, std=0.02)

    def correlated_all_layers(self) -> list[torch.Tensor]:
        """Correlated prompts of every layer for every (pattern, modality): depth x (P, M, L, D)."""
        p, m, length, d = self.correlated.shape
        layers = [self.correlated]
        for gen in self.generators:
            prev = layers[-1]
            joint = prev.permute(0, 2, 1, 3).reshape(p, length, m * d)  # across modalities
            step = gen(joint).reshape(p, length, m, d).permute(0, 2, 1, 3)
            layers.append(prev + step)
        return layers

    def forward(self, layer: int, x: torch.Tensor, ctx: PassContext) -> torch.Tensor | None:
        if layer >= self.depth:
            return None
        if "dcp_correlated" not in ctx.scratch:  # once per pass, for all patterns at once
            ctx.scratch["dcp_correlated"] = self.correlated_all_layers()
        corr = ctx.scratch["dcp_correlated"][layer][ctx.pattern, ctx.modality]
        q = self.queries[ctx.pattern, layer].to(x.dtype)
        dyn = F.scaled_dot_product_attention(q[:, None], x[:, None], x[:, None])[:, 0]
        common = self.common[layer].expand(x.shape[0], -1, -1)
        return torch.cat([corr.to(x.dtype), dyn, common.to(x.dtype)], dim=1)
