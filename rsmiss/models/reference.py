"""Reference implementation of MaMOL, KEPT FOR COMPARISON ONLY (tests and the perf harness).

The straightforward design the fast path is measured against, on the SAME weights:
- every modality's encoder runs on every sample; a missing modality's dummy input is
  encoded and its feature zeroed afterwards (what the public MaMOL code does);
- attention is written out (softmax(QKᵀ/√d)V), one modality pass after another;
- every dynamic expert is computed densely for every token, then masked by the top-k
  selection and weighted by its gate; every static expert likewise, then masked by the
  availability coefficients; the router concatenates [z; e(pattern)] literally;
- at the `ffn` site, each expert's LoRA on c_fc and on c_proj is computed alone and added,
  weighted, to the frozen linear's output (no stacked matrices).
Never use it for training: it is slower by design.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsmiss.models.adapters.lora import LoRABank
from rsmiss.models.adapters.mamol import MaMOLAdapter, MaMOLFFNAdapter, MaMOLRouting
from rsmiss.models.classifier import ModelOutput, MultimodalClassifier
from rsmiss.models.context import PassContext, pattern_index


def reference_attention(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """open_clip's batch-first `nn.MultiheadAttention`, written out: softmax(QKᵀ/√d)V."""
    b, n, d = x.shape
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(b, n, 3, attn.num_heads, d // attn.num_heads).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    out = weights.softmax(-1) @ v
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, d))


def reference_coefficients(
    adapter: MaMOLRouting, z: torch.Tensor, ctx: PassContext
) -> list[torch.Tensor]:
    """Every expert's weight per token ((N, L) each; dynamic, shared, then modality experts),
    with the router reading the literal concatenation [z ; m_type]."""
    cfg = adapter.cfg
    n, length = z.shape[:2]
    weights = []
    if adapter.dynamic is not None:
        pattern = adapter.pattern_embed(ctx.pattern)[:, None].expand(-1, length, -1)
        joint = torch.cat([z, pattern.to(z.dtype)], dim=-1)  # [z ; m_type]
        gates = adapter.router_out(F.gelu(adapter.router_mlp(joint))).float().softmax(-1)
        chosen = gates.topk(cfg.top_k, dim=-1).indices
        for e in range(cfg.experts):
            weights.append(gates[..., e] * (chosen == e).any(-1))  # raw gate, not renormalised
    if adapter.static is not None:
        weights.append(z.new_ones(n, length))  # shared expert, always on
        if not cfg.no_modality_specific:
            for m in range(adapter.n_modalities):
                on = ctx.modality == m if cfg.static_mode == "pass" else ctx.available[:, m]
                weights.append(on[:, None].to(z.dtype).expand(n, length))
    return weights


def _experts(banks: list[LoRABank]) -> list[tuple[LoRABank, int]]:
    """(bank, index) of every expert, in the adapter's expert order."""
    return [(bank, e) for bank in banks for e in range(bank.n)]


def reference_delta(adapter: MaMOLAdapter, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
    """Δ = h_dyn + h_stat with each expert computed in full, then weighted (parallel site)."""
    out = torch.zeros_like(z)
    banks = [b for b in (adapter.dynamic, adapter.static) if b is not None]
    weights = reference_coefficients(adapter, z, ctx)
    for (bank, e), w in zip(_experts(banks), weights, strict=True):
        out = out + w[..., None].to(z.dtype) * bank.expert(z, e)
    return out


def reference_ffn(
    adapter: MaMOLFFNAdapter, z: torch.Tensor, mlp: nn.Module, ctx: PassContext
) -> torch.Tensor:
    """The FFN with each expert's LoRA pair computed in full at c_fc and c_proj, weighted
    by the expert's coefficient and added to the frozen linear's output (ffn site)."""
    weights = [w[..., None].to(z.dtype) for w in reference_coefficients(adapter, z, ctx)]
    fc = mlp.c_fc(z)
    for (bank, e), w in zip(_experts(adapter.banks("c_fc")), weights, strict=True):
        fc = fc + w * bank.expert(z, e)
    h = mlp.gelu(fc)
    out = mlp.c_proj(h)
    for (bank, e), w in zip(_experts(adapter.banks("c_proj")), weights, strict=True):
        out = out + w * bank.expert(h, e)
    return out


def reference_mlp(
    adapter: nn.Module | None, z: torch.Tensor, mlp: nn.Module, ctx: PassContext
) -> torch.Tensor:
    """The block's FFN output, with its MaMOL experts at whichever site they sit."""
    if isinstance(adapter, MaMOLFFNAdapter):
        return reference_ffn(adapter, z, mlp, ctx)
    h = mlp(z)
    return h if adapter is None else h + reference_delta(adapter, z, ctx)


class ReferenceModel(nn.Module):
    """Runs `model`'s parameters through the straightforward forward (baseline, mamol at
    either expert site)."""

    def __init__(self, model: MultimodalClassifier) -> None:
        super().__init__()
        if model.prompter is not None:
            raise TypeError("the reference covers MaMOL and the baseline only")
        for block in model.backbone.transformer.resblocks:
            if block.ffn_adapter is not None and not isinstance(block.ffn_adapter, MaMOLRouting):
                raise TypeError("the reference covers MaMOL and the baseline only")
        self.model = model

    def forward(self, inputs: dict[str, torch.Tensor], available: torch.Tensor) -> ModelOutput:
        model = self.model
        tower = model.backbone
        available = available.to(torch.bool)
        b = available.shape[0]
        pattern = pattern_index(available)
        feats = []
        for j, name in enumerate(model.modalities):
            modality = torch.full((b,), j, dtype=torch.long, device=available.device)
            ctx = PassContext(pattern, available, modality, model.n_patterns)
            x = tower.embed(model.tokenizers[name](inputs[name]), model.patch_size)
            for block in tower.transformer.resblocks:
                x = x + reference_attention(block.attn, block.ln_1(x))
                x = x + reference_mlp(block.ffn_adapter, block.ln_2(x), block.mlp, ctx)
            # encoded, then thrown away when missing
            feats.append(tower.pool(x) * available[:, j : j + 1].to(x.dtype))
        logits = model.head(torch.cat(feats, dim=1))
        return ModelOutput(logits, logits.new_zeros((), dtype=torch.float32))
