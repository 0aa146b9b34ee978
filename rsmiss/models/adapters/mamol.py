"""MaMOL: Missing-aware Mixture of LoRA experts (paper §3.2-3.4, DESIGN.md §5).

Parallel residual on the FFN input z = LN2(x): `x + MLP(z) + Δ(z)`, `Δ = h_dyn + h_stat`
(no LayerNorm around the sum, unlike the paper's Eq. 3, so that B = 0 keeps the frozen
model exactly intact at init).

- h_dyn: N LoRA pattern experts, router g = softmax(W_t f_t([z; e(pattern)])) per token,
  top-k, each selected expert weighted by its RAW softmax gate (not renormalised: a top-1
  gate renormalised would be 1 and the router would get no gradient).
- h_stat: a shared LoRA expert (coefficient 1) + one LoRA expert per modality, coefficient 1
  when that modality is present in the SAMPLE (in every pass of the sample); `static_mode=
  "pass"` switches on only the encoded modality's own expert (ablation).

Fast path: every expert's A is one stacked matrix, every B another; the per-token expert
coefficients (gate·top-k mask for dynamic, 0/1 from the availability mask for static)
scale the low-rank channels in between, so Δ costs two matmuls of rank (N + 1 + M)·r, with
no dispatch, no gather and no host sync. The router's probabilities, its choice and the
static coefficients of the same pass go to `ctx.record_routing` (rsmiss.models.routing).
`rsmiss.models.reference` computes the same Δ the straightforward way (every expert
densely, then masked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rsmiss.models.adapters.lora import LoRABank, LoRAConfig
from rsmiss.models.context import PassContext


@dataclass(frozen=True)
class MaMOLConfig:
    """Adapter settings; names are the `build_model` option keys."""

    experts: int = 2
    rank: int = 8
    top_k: int = 1
    no_dynamic: bool = False
    no_static: bool = False
    no_modality_specific: bool = False
    static_mode: str = "sample"  # "sample" | "pass"
    router_hidden: int = 64
    pattern_dim: int = 32


class MaMOLAdapter(nn.Module):
    def __init__(self, width: int, n_modalities: int, n_patterns: int, cfg: MaMOLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_modalities = n_modalities
        lora = LoRAConfig(rank=cfg.rank, alpha=float(cfg.rank))
        self.scaling = lora.scaling
        self.dynamic: LoRABank | None = None
        self.static: LoRABank | None = None
        if not cfg.no_dynamic:
            self.dynamic = LoRABank(cfg.experts, width, width, lora)
            self.pattern_embed = nn.Embedding(n_patterns, cfg.pattern_dim)
            self.router_mlp = nn.Linear(width + cfg.pattern_dim, cfg.router_hidden)  # f_t
            self.router_out = nn.Linear(cfg.router_hidden, cfg.experts, bias=False)  # W_t
        if not cfg.no_static:
            n_static = 1 if cfg.no_modality_specific else 1 + n_modalities
            self.static = LoRABank(n_static, width, width, lora)

    # -- routing ------------------------------------------------------------------------
    def _router_pattern_term(self, ctx: PassContext, dtype: torch.dtype) -> torch.Tensor:
        """f_t's weight split: the e(pattern) half, projected once per row -> (N, 1, H)."""
        d_pat = self.cfg.pattern_dim
        w_pat = self.router_mlp.weight[:, -d_pat:].to(dtype)
        pat = self.pattern_embed(ctx.pattern).to(dtype)
        return (pat @ w_pat.t() + self.router_mlp.bias.to(dtype))[:, None]

    def _gates_from(self, hz: torch.Tensor, ctx: PassContext) -> torch.Tensor:
        """softmax(W_t f_t([z; e])) given the z half of f_t's pre-activation."""
        h = F.gelu(hz + self._router_pattern_term(ctx, hz.dtype))
        return self.router_out(h).float().softmax(-1)

    def _select(self, gates: torch.Tensor) -> torch.Tensor:
        """Raw softmax gate on each token's top-k experts, 0 elsewhere (no renormalising)."""
        top, idx = gates.topk(self.cfg.top_k, dim=-1)
        return torch.zeros_like(gates).scatter(-1, idx, top)

    def gates(self, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
        d = z.shape[-1]
        return self._gates_from(z @ self.router_mlp.weight[:, :d].t().to(z.dtype), ctx)

    def dynamic_coefficients(self, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
        """(N, L, experts): raw softmax gate on each token's top-k experts, 0 elsewhere."""
        return self._select(self.gates(z, ctx))

    def static_coefficients(self, ctx: PassContext) -> torch.Tensor:
        """(N, 1 [+ M]): shared expert 1; modality experts from the availability mask."""
        n = ctx.pattern.shape[0]
        shared = torch.ones(n, 1, device=ctx.pattern.device)
        if self.cfg.no_modality_specific:
            return shared
        if self.cfg.static_mode == "pass":
            own = F.one_hot(ctx.modality, self.n_modalities).float()
        else:
            own = ctx.available.float()
        return torch.cat([shared, own], dim=1)

    # -- Δ and the FFN ------------------------------------------------------------------
    def delta(self, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
        """Every matrix that reads z (router's z half, all experts' A) in ONE matmul, the
        coefficients in between, all experts' B in one more."""
        n, length, d = z.shape
        reads, b_parts = [], []
        if self.dynamic is not None:
            reads += [self.router_mlp.weight[:, :d], self.dynamic.lora_A]
            b_parts.append(self.dynamic.lora_B)
        if self.static is not None:
            reads.append(self.static.lora_A)
            b_parts.append(self.static.lora_B)
        if not reads:
            return torch.zeros_like(z)
        first = z @ torch.cat(reads).t().to(z.dtype)
        coefs = []
        gates = chosen = static = None
        if self.dynamic is not None:
            hidden = self.cfg.router_hidden
            gates = self._gates_from(first[..., :hidden], ctx)
            chosen = self._select(gates)
            coefs.append(chosen)
            first = first[..., hidden:]
        if self.static is not None:
            static = self.static_coefficients(ctx)
            coefs.append(static[:, None, :].expand(n, length, -1))
        if gates is not None:  # routing statistics, when a caller records them
            ctx.record_routing(self, gates, chosen, static)
        # all experts share rank and scaling: coefficients per low-rank channel
        coef = torch.cat(coefs, dim=-1).repeat_interleave(self.cfg.rank, dim=-1)
        h = first * coef.to(first.dtype)
        return (h @ torch.cat(b_parts, dim=1).t().to(h.dtype)) * self.scaling

    def forward(self, z: torch.Tensor, mlp: nn.Module, ctx: PassContext) -> torch.Tensor:
        return mlp(z) + self.delta(z, ctx)
