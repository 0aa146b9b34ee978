"""The three MoE baselines of the paper's Table 4, as FFN adapters (docs/design.md, Model contract).

- `ReplacementMoE` (moe_rep, DeepSpeed-MoE style): the FFN is replaced by a top-k MoE whose
  experts are the frozen FFN with a per-expert LoRA on both linears; token router; Switch /
  DeepSpeed load-balancing loss.
- `AdapterMoE` (moe_ada, MoE-LoRA): the frozen FFN stays; a noisy top-k token router over
  LoRA experts beside it; Mixtral-form gates (softmax, top-k, renormalised) and
  load-balancing loss.

Top-1 gates of both (`unit_gate`): a renormalised top-1 gate is the constant 1, so the task
loss would never reach the router, and Switch's raw gate (about 1/N at init) would scale
the frozen FFN down before any training. The gate is therefore 1 in value with the raw
gate's gradient (`p / p.detach()`): the model starts exactly as the frozen one and the router
still learns from the task, as MaMOL's raw-gate rule intends (docs/design.md, "Model contract").
- `TaskMoE` (moe_task, MOELoRA): dense gate from the missing pattern alone; the experts are
  slices of one LoRA (rank / experts each) beside the frozen FFN; no balancing loss.

Every router reports its probabilities and choices to `ctx.record_routing` (routing
statistics, rsmiss.models.routing; a no-op unless a caller records).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsmiss.models.adapters.lora import LoRABank, LoRAConfig
from rsmiss.models.context import PassContext


def unit_gate(top: torch.Tensor) -> torch.Tensor:
    """Value 1, gradient of log(top) — see the module docstring (top-1 gates)."""
    return top / top.detach()


def load_balancing_loss(probs: torch.Tensor, top_idx: torch.Tensor, n: int) -> torch.Tensor:
    """Switch / Mixtral: n * sum_e (fraction of top-k slots on e) * (mean router prob of e)."""
    probs = probs.reshape(-1, n).float()
    mask = F.one_hot(top_idx.reshape(-1, top_idx.shape[-1]), n).float()  # (T, k, n)
    return n * (mask.mean(0) * probs.mean(0)).sum()


class ReplacementMoE(nn.Module):
    def __init__(
        self, width: int, mlp_width: int, experts: int, rank: int, top_k: int, aux_weight: float
    ) -> None:
        super().__init__()
        self.experts, self.top_k, self.aux_weight = experts, top_k, aux_weight
        cfg = LoRAConfig(rank=rank, alpha=float(rank))
        self.router = nn.Linear(width, experts, bias=False)
        self.lora_fc = LoRABank(experts, width, mlp_width, cfg)
        self.lora_proj = LoRABank(experts, mlp_width, width, cfg)

    def expert_ffn(self, z: torch.Tensor, mlp: nn.Module, mask: torch.Tensor) -> torch.Tensor:
        """Frozen FFN with the LoRAs selected by `mask` (N, L, experts) on both linears."""
        h = mlp.gelu(mlp.c_fc(z) + self.lora_fc(z, mask))
        return mlp.c_proj(h) + self.lora_proj(h, mask)

    def forward(self, z: torch.Tensor, mlp: nn.Module, ctx: PassContext) -> torch.Tensor:
        probs = self.router(z).float().softmax(-1)
        top, idx = probs.topk(self.top_k, dim=-1)
        ctx.aux.append(self.aux_weight * load_balancing_loss(probs, idx, self.experts))
        ctx.record_routing(self, probs, torch.zeros_like(probs).scatter(-1, idx, 1.0))
        if self.top_k == 1:  # one expert per token: the experts share W, so one pass
            onehot = F.one_hot(idx[..., 0], self.experts).to(z.dtype)
            return unit_gate(top).to(z.dtype) * self.expert_ffn(z, mlp, onehot)
        weights = top / top.sum(-1, keepdim=True)  # DeepSpeed top-2 renormalises
        coef = torch.zeros_like(probs).scatter(-1, idx, weights).to(z.dtype)
        out = torch.zeros_like(z)
        for e in range(self.experts):
            onehot = torch.zeros_like(coef)
            onehot[..., e] = 1
            out = out + coef[..., e : e + 1] * self.expert_ffn(z, mlp, onehot)
        return out


class AdapterMoE(nn.Module):
    def __init__(self, width: int, experts: int, rank: int, top_k: int, aux_weight: float) -> None:
        super().__init__()
        self.experts, self.top_k, self.aux_weight = experts, top_k, aux_weight
        self.router = nn.Linear(width, experts, bias=False)
        self.noise = nn.Linear(width, experts, bias=False)
        nn.init.zeros_(self.noise.weight)
        self.lora = LoRABank(experts, width, width, LoRAConfig(rank=rank, alpha=float(rank)))

    def forward(self, z: torch.Tensor, mlp: nn.Module, ctx: PassContext) -> torch.Tensor:
        logits = self.router(z).float()
        if self.training:  # noisy top-k gating (Shazeer et al.)
            logits = logits + torch.randn_like(logits) * F.softplus(self.noise(z).float())
        probs = logits.softmax(-1)
        top, idx = probs.topk(self.top_k, dim=-1)
        ctx.aux.append(self.aux_weight * load_balancing_loss(probs, idx, self.experts))
        ctx.record_routing(self, probs, torch.zeros_like(probs).scatter(-1, idx, 1.0))
        if self.top_k == 1:
            weights = unit_gate(top)
        else:
            weights = top / top.sum(-1, keepdim=True)  # Mixtral: renormalised over the top-k
        coef = torch.zeros_like(probs).scatter(-1, idx, weights)
        return mlp(z) + self.lora(z, coef)


class TaskMoE(nn.Module):
    """MOELoRA: `expert_rank` None slices one rank-`rank` LoRA into `experts` slices of
    rank // experts (the paper's MOELoRA form, the default); an `expert_rank` gives each
    expert that rank instead (capacity matching)."""

    def __init__(
        self,
        width: int,
        n_patterns: int,
        experts: int,
        rank: int,
        task_dim: int = 32,
        expert_rank: int | None = None,
    ) -> None:
        super().__init__()
        self.task_embed = nn.Embedding(n_patterns, task_dim)
        self.gate = nn.Linear(task_dim, experts, bias=False)
        slice_rank = expert_rank or max(1, rank // experts)
        self.lora = LoRABank(experts, width, width, LoRAConfig(slice_rank, float(slice_rank)))

    def forward(self, z: torch.Tensor, mlp: nn.Module, ctx: PassContext) -> torch.Tensor:
        gate = self.gate(self.task_embed(ctx.pattern)).float().softmax(-1)  # (N, experts)
        if ctx.recording:  # a dense gate: its arg-max expert counts as chosen
            dense = gate[:, None, :].expand(-1, z.shape[1], -1)
            top = F.one_hot(dense.argmax(-1), dense.shape[-1])
            ctx.record_routing(self, dense, top)
        return mlp(z) + self.lora(z, gate[:, None, :])
