"""The frozen CLIP vision tower: open_clip's `VisionTransformer` with rsmiss's block path.

The tower IS open_clip's module — built from open_clip's own model configs, so its state-dict
keys are open_clip's `visual.*` keys and weights load with strict matching. rsmiss adds only
what the adapters need: a pass context threaded through the blocks (`run_block`), token
embedding for P x P pixel patches (`embed`, with interpolated position embeddings) and the
pooled feature (`pool`). The blocks' attention runs `scaled_dot_product_attention` directly
on `nn.MultiheadAttention`'s weights (`self_attention`: flash / memory-efficient kernels on
GPU, no sequence-first copies under autograd).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, QuickGELU, VisionTransformer
from torch import nn

from rsmiss.errors import ConfigError
from rsmiss.models.architectures import ACTIVATIONS, VisionConfig

RANDOM_INIT_SEED = 0  # the random-init tower must be identical in every process (checkpoints)


def self_attention(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """open_clip's batch-first, unmasked `nn.MultiheadAttention(x, x, x)`, on its own weights.

    Calls `scaled_dot_product_attention` directly on a (B, heads, N, hd) view of ONE fused
    qkv projection: under autograd `nn.MultiheadAttention` leaves its fused fast path and
    goes through `F.multi_head_attention_forward` (sequence-first transposes and copies),
    2.8x slower per fwd+bwd on the CPU at ViT-B width; the result is the same (exact in fp32).
    """
    b, n, d = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(b, n, 3, heads, d // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v)
    return F.linear(out.transpose(1, 2).reshape(b, n, d), attn.out_proj.weight, attn.out_proj.bias)


def run_block(block: nn.Module, x: torch.Tensor, ctx: Any = None) -> torch.Tensor:
    """One open_clip `ResidualAttentionBlock`, with its FFN adapter when one is injected.

    `ffn_adapter`, when set by an injection, owns the FFN output: it receives `z = ln_2(x)`,
    the frozen `mlp` and the pass context, and returns `mlp(z) + delta(z)`.
    """
    x = x + block.ls_1(self_attention(block.attn, block.ln_1(x)))
    z = block.ln_2(x)
    adapter = block.ffn_adapter
    if adapter is None or ctx is None:  # no pass context: the frozen block
        return x + block.ls_2(block.mlp(z))
    return x + block.ls_2(adapter(z, block.mlp, ctx))


class VisionTower(VisionTransformer):
    """open_clip's CLIP ViT visual tower; keys are open_clip's `visual.*` state dict."""

    def __init__(self, cfg: VisionConfig, activation: str = "quickgelu", init: bool = True) -> None:
        if activation not in ACTIVATIONS:
            raise ConfigError(f"option activation={activation!r} is not one of {ACTIVATIONS}")
        super().__init__(
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            width=cfg.width,
            layers=cfg.layers,
            heads=cfg.heads,
            mlp_ratio=cfg.mlp_width / cfg.width,
            output_dim=cfg.output_dim,
            act_layer=QuickGELU if activation == "quickgelu" else nn.GELU,
            norm_layer=LayerNorm,
        )
        self.cfg = cfg
        self.activation = activation
        for block in self.transformer.resblocks:
            block.ffn_adapter = None  # set by rsmiss.models.injection
        if init:  # skipped when weights are loaded right after
            self.random_init()

    @torch.no_grad()
    def random_init(self) -> None:
        """Deterministic random weights (seeded), so a random-init run can be reloaded."""
        g = torch.Generator().manual_seed(RANDOM_INIT_SEED)
        scale = self.cfg.width**-0.5
        for name, p in self.named_parameters():
            if "ln_" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                fan_in = p.shape[-1] if p.dim() == 2 else p[0].numel()
                std = scale if name in ("class_embedding", "positional_embedding") else None
                std = std or (scale if name == "proj" else fan_in**-0.5)
                p.copy_(torch.randn(p.shape, generator=g) * std)

    def positions(self, grid: int) -> torch.Tensor:
        """Position embeddings for a `grid x grid` token grid (bicubic when it differs)."""
        pos = self.positional_embedding
        if grid == self.cfg.grid:
            return pos
        return _interpolated_positions(pos, self.cfg.grid, grid)

    def embed(self, tokens: torch.Tensor, grid: int) -> torch.Tensor:
        """(B, grid², width) patch tokens -> class token + positions + ln_pre."""
        cls = self.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.positions(grid).to(tokens.dtype)
        return self.ln_pre(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Class token -> ln_post -> proj (the CLIP image feature)."""
        return self.ln_post(x[:, 0]) @ self.proj

    def forward_blocks(self, x: torch.Tensor, ctx: Any = None, prompter: Any = None):
        for i, block in enumerate(self.transformer.resblocks):
            prompts = prompter(i, x, ctx) if prompter is not None else None
            if prompts is None:
                x = run_block(block, x, ctx)
            else:  # deep prompts: [cls, prompts, tokens] for this block, dropped after it
                n = prompts.shape[1]
                y = run_block(block, torch.cat([x[:, :1], prompts.to(x.dtype), x[:, 1:]], 1), ctx)
                x = torch.cat([y[:, :1], y[:, 1 + n :]], dim=1)
        return x

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """The CLIP image feature through our block path (checked against open_clip's)."""
        tokens = self.conv1(images).flatten(2).transpose(1, 2)
        return self.pool(self.forward_blocks(self.embed(tokens, self.cfg.grid)))


def _interpolated_positions(pos: torch.Tensor, g0: int, grid: int) -> torch.Tensor:
    spatial = pos[1:].reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
    spatial = F.interpolate(spatial, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], spatial.permute(0, 2, 3, 1).reshape(grid * grid, -1)])
