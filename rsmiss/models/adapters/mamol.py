"""MaMOL: Missing-aware Mixture of LoRA experts (paper §3.2-3.4), at two sites.

The choices where the paper is silent are in docs/design.md, "Where the paper is silent".

Routing (`MaMOLRouting`, shared by both sites):
- dynamic (pattern) experts: router g = softmax(W_t f_t([z; e(pattern)])) per token, top-k,
  each selected expert weighted by its RAW softmax gate (not renormalised: a top-1 gate
  renormalised would be 1 and the router would get no gradient);
- static experts: a shared expert (coefficient 1) + one expert per modality, coefficient 1
  when that modality is present in the SAMPLE (in every pass of the sample); `static_mode=
  "pass"` switches on only the encoded modality's own expert (ablation).
Every expert thus gets one coefficient per token (`route`), and an expert's contribution is
its LoRA update times that coefficient.

Sites (`expert_site`):
- `parallel` (`MaMOLAdapter`, the paper's Eq. 2-4, method `mamol`): rank-r LoRA experts
  width -> width beside the frozen FFN, a parallel residual on z = LN2(x):
  `x + MLP(z) + Δ(z)`, `Δ = h_dyn + h_stat` (no LayerNorm around the sum, unlike the paper's
  Eq. 3, so that B = 0 keeps the frozen model exactly intact at init).
- `ffn` (`MaMOLFFNAdapter`, our extension, method `mamol_ffn`): every expert is a LoRA pair
  on the frozen FFN's two linears, as moe_rep's experts are, and the same coefficients
  weight each expert's update at both:
  `c_proj(act(c_fc(z) + Σ_e c_e ΔW_fc,e z)) + Σ_e c_e ΔW_proj,e h`. The experts' updates add
  in weight space, as MaMOL's experts add in Eq. 2, so the frozen FFN runs once (no
  per-expert FFN pass) and B = 0 is again exactly the frozen model. Why it exists: on our
  proxy scenes every method with experts beside the FFN trailed moe_rep, whose experts sit
  inside it; this site keeps MaMOL's routing and moves its experts there.

Fast path, both sites: every expert's A at a site is one stacked matrix, every B another;
the per-token expert coefficients scale the low-rank channels in between, so a site costs
two matmuls of rank (N + 1 + M)·r beside the frozen linear, with no per-expert loop, no
dispatch, no gather and no host sync, for any top-k. The router's z half of f_t reads z, so
it rides in the same matmul as the experts' A (at the c_fc site for `ffn`). The router's
probabilities, its choice and the static coefficients of the same pass go to
`ctx.record_routing` (rsmiss.models.routing), from `route`, so both sites report alike.
`rsmiss.models.reference` computes the same outputs the straightforward way (every expert
densely, then masked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rsmiss.models.adapters.lora import LoRABank, LoRAConfig
from rsmiss.models.context import PassContext

EXPERT_SITES = ("parallel", "ffn")


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
    expert_site: str = "parallel"  # "parallel" | "ffn"
    alpha: float | None = None  # LoRA alpha; None = rank (scaling 1, the paper's setting)


class Routing(NamedTuple):
    """What `route` decided for one pass of one block (the adapter's routing outputs)."""

    gates: torch.Tensor | None  # (N, L, experts) softmax gate; None without dynamic experts
    chosen: torch.Tensor | None  # (N, L, top_k) indices of the selected dynamic experts
    static: torch.Tensor | None  # (N, 1 [+ M]) static coefficients; None without static
    coefficients: torch.Tensor  # (N, L, dynamic + static) every expert's coefficient


class MaMOLRouting(nn.Module):
    """MaMOL's router and static coefficients; the site subclasses own the experts.

    Expert order, everywhere (coefficients, stacked A / B): the dynamic experts, then the
    shared expert, then one per modality. Both sites obtain their routing from `route` and
    nowhere else, so whatever observes routing observes both sites alike.
    """

    def __init__(self, width: int, n_modalities: int, n_patterns: int, cfg: MaMOLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_modalities = n_modalities
        alpha = float(cfg.rank) if cfg.alpha is None else float(cfg.alpha)
        self.lora_cfg = LoRAConfig(rank=cfg.rank, alpha=alpha)
        self.scaling = self.lora_cfg.scaling
        self.has_dynamic = not cfg.no_dynamic
        self.n_static = 0 if cfg.no_static else 1 if cfg.no_modality_specific else 1 + n_modalities
        self.width, self.n_patterns = width, n_patterns

    def build(self, experts: Callable[[int], nn.Module]) -> None:
        """Create the dynamic experts, the router, then the static experts (`experts(n)`
        makes a site's n experts): the order of the parameters and of their seeded random
        initialisation, the same for every site."""
        cfg = self.cfg
        self.dynamic = experts(cfg.experts) if self.has_dynamic else None
        if self.has_dynamic:
            self.pattern_embed = nn.Embedding(self.n_patterns, cfg.pattern_dim)
            self.router_mlp = nn.Linear(self.width + cfg.pattern_dim, cfg.router_hidden)  # f_t
            self.router_out = nn.Linear(cfg.router_hidden, cfg.experts, bias=False)  # W_t
        self.static = experts(self.n_static) if self.n_static else None

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

    def _select(self, gates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw softmax gate on each token's top-k experts, 0 elsewhere (no renormalising),
        and the top-k indices."""
        top, idx = gates.topk(self.cfg.top_k, dim=-1)
        return torch.zeros_like(gates).scatter(-1, idx, top), idx

    def router_reads(self, d: int) -> list[torch.Tensor]:
        """The router's z half of f_t (empty without dynamic experts), to fuse with A."""
        return [self.router_mlp.weight[:, :d]] if self.has_dynamic else []

    def gates(self, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
        d = z.shape[-1]
        return self._gates_from(z @ self.router_mlp.weight[:, :d].t().to(z.dtype), ctx)

    def dynamic_coefficients(self, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
        """(N, L, experts): raw softmax gate on each token's top-k experts, 0 elsewhere."""
        return self._select(self.gates(z, ctx))[0]

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

    def route(self, hz: torch.Tensor | None, ctx: PassContext, length: int) -> Routing:
        """Every expert's coefficient per token, from the z half of f_t's pre-activation
        (`hz`, (N, L, H); None without dynamic experts)."""
        n = ctx.pattern.shape[0]
        gates = chosen = static = None
        coefs = []
        if self.has_dynamic:
            gates = self._gates_from(hz, ctx)
            dynamic, chosen = self._select(gates)
            coefs.append(dynamic)
        if self.n_static:
            static = self.static_coefficients(ctx)
            coefs.append(static[:, None, :].expand(n, length, -1))
        if gates is not None:  # routing statistics, when a caller records them
            ctx.record_routing(self, gates, dynamic, static)
        return Routing(gates, chosen, static, torch.cat(coefs, dim=-1))

    # -- one site: Σ_e c_e B_e A_e x ----------------------------------------------------
    def read(
        self, x: torch.Tensor, banks: list[LoRABank], router: bool = False
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Every matrix that reads `x` (the router's z half when `router`, every expert's A)
        in ONE matmul -> (router pre-activation or None, (..., experts·r) low-rank part)."""
        reads = (self.router_reads(x.shape[-1]) if router else []) + [b.lora_A for b in banks]
        first = x @ torch.cat(reads).t().to(x.dtype)
        if not (router and self.has_dynamic):
            return None, first
        hidden = self.cfg.router_hidden
        return first[..., :hidden], first[..., hidden:]

    def write(
        self, low: torch.Tensor, coefficients: torch.Tensor, banks: list[LoRABank]
    ) -> torch.Tensor:
        """The coefficients scale each expert's r low-rank channels; every B in one matmul."""
        coef = coefficients.repeat_interleave(self.cfg.rank, dim=-1)  # experts share rank
        h = low * coef.to(low.dtype)
        return (h @ torch.cat([b.lora_B for b in banks], dim=1).t().to(h.dtype)) * self.scaling


class MaMOLAdapter(MaMOLRouting):
    """`parallel` site: rank-r experts width -> width beside the frozen FFN (paper Eq. 2)."""

    def __init__(self, width: int, n_modalities: int, n_patterns: int, cfg: MaMOLConfig) -> None:
        super().__init__(width, n_modalities, n_patterns, cfg)
        self.build(lambda n: LoRABank(n, width, width, self.lora_cfg))

    def delta(self, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
        """Router's z half and all experts' A in one matmul, the coefficients in between,
        all experts' B in one more."""
        banks = [b for b in (self.dynamic, self.static) if b is not None]
        if not banks:
            return torch.zeros_like(z)
        hz, low = self.read(z, banks, router=True)
        return self.write(low, self.route(hz, ctx, z.shape[1]).coefficients, banks)

    def forward(self, z: torch.Tensor, mlp: nn.Module, ctx: PassContext) -> torch.Tensor:
        return mlp(z) + self.delta(z, ctx)


class MaMOLFFNAdapter(MaMOLRouting):
    """`ffn` site: every expert a LoRA pair on the frozen FFN's c_fc and c_proj.

    `dynamic` / `static` map a site name (`c_fc`, `c_proj`) to that site's bank of experts.
    Trainable parameters per block: 2·r·(width + mlp_width) per expert (10·r·width at
    CLIP's mlp_ratio 4, five times a parallel expert's 2·r·width) plus the router.
    """

    def __init__(
        self, width: int, mlp_width: int, n_modalities: int, n_patterns: int, cfg: MaMOLConfig
    ) -> None:
        super().__init__(width, n_modalities, n_patterns, cfg)
        self.build(
            lambda n: nn.ModuleDict(
                {
                    "c_fc": LoRABank(n, width, mlp_width, self.lora_cfg),
                    "c_proj": LoRABank(n, mlp_width, width, self.lora_cfg),
                }
            )
        )

    def banks(self, site: str) -> list[LoRABank]:
        """The site's dynamic, then static bank (those switched on)."""
        return [kind[site] for kind in (self.dynamic, self.static) if kind is not None]

    def forward(self, z: torch.Tensor, mlp: nn.Module, ctx: PassContext) -> torch.Tensor:
        fc, proj = self.banks("c_fc"), self.banks("c_proj")
        if not fc:
            return mlp(z)
        hz, low = self.read(z, fc, router=True)
        coefficients = self.route(hz, ctx, z.shape[1]).coefficients
        h = mlp.gelu(mlp.c_fc(z) + self.write(low, coefficients, fc))
        return mlp.c_proj(h) + self.write(self.read(h, proj)[1], coefficients, proj)
