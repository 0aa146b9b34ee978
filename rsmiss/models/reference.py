"""Reference implementation of MaMOL, KEPT FOR COMPARISON ONLY (tests and the perf harness).

The straightforward design the fast path is measured against, on the SAME weights:
- every modality's encoder runs on every sample; a missing modality's dummy input is
  encoded and its feature zeroed afterwards (what the public MaMOL code does);
- attention is written out (softmax(QKᵀ/√d)V), one modality pass after another;
- every dynamic expert is computed densely for every token, then masked by the top-k
  selection and weighted by its gate; every static expert likewise, then masked by the
  availability coefficients; the router concatenates [z; e(pattern)] literally.
Never use it for training: it is slower by design.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsmiss.models.adapters.mamol import MaMOLAdapter
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


def reference_delta(adapter: MaMOLAdapter, z: torch.Tensor, ctx: PassContext) -> torch.Tensor:
    """Δ = h_dyn + h_stat with each expert computed in full, then masked."""
    cfg = adapter.cfg
    out = torch.zeros_like(z)
    if adapter.dynamic is not None:
        pattern = adapter.pattern_embed(ctx.pattern)[:, None].expand(-1, z.shape[1], -1)
        joint = torch.cat([z, pattern.to(z.dtype)], dim=-1)  # [z ; m_type]
        gates = adapter.router_out(F.gelu(adapter.router_mlp(joint))).float().softmax(-1)
        chosen = gates.topk(cfg.top_k, dim=-1).indices
        for e in range(cfg.experts):
            weight = gates[..., e] * (chosen == e).any(-1)  # raw gate, not renormalised
            out = out + weight[..., None].to(z.dtype) * adapter.dynamic.expert(z, e)
    if adapter.static is not None:
        out = out + adapter.static.expert(z, 0)  # shared expert, always on
        if not cfg.no_modality_specific:
            for m in range(adapter.n_modalities):
                if cfg.static_mode == "pass":
                    on = ctx.modality == m
                else:
                    on = ctx.available[:, m]
                out = out + on[:, None, None].to(z.dtype) * adapter.static.expert(z, 1 + m)
    return out


class ReferenceModel(nn.Module):
    """Runs `model`'s parameters through the straightforward forward (baseline / mamol)."""

    def __init__(self, model: MultimodalClassifier) -> None:
        super().__init__()
        if model.prompter is not None:
            raise TypeError("the reference covers MaMOL and the baseline only")
        for block in model.backbone.transformer.resblocks:
            if block.ffn_adapter is not None and not isinstance(block.ffn_adapter, MaMOLAdapter):
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
                z = block.ln_2(x)
                h = block.mlp(z)
                if block.ffn_adapter is not None:
                    h = h + reference_delta(block.ffn_adapter, z, ctx)
                x = x + h
            # encoded, then thrown away when missing
            feats.append(tower.pool(x) * available[:, j : j + 1].to(x.dtype))
        logits = model.head(torch.cat(feats, dim=1))
        return ModelOutput(logits, logits.new_zeros((), dtype=torch.float32))
