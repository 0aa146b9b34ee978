"""What the encoder learns during pretraining: three objectives over one trainable tower.

The tower is the very ``VisionTower`` the methods later freeze (same blocks, same pooled
CLS feature), trained whole. Everything else here — one tokenizer per (dataset, modality),
the MAE decoder, the classification heads — is thrown away when the weights are written:
the adapted model trains its own tokenizers, as it does on top of CLIP.

- ``mae``: masked token modelling (He et al., 2022, on P x P pixel tokens). Most tokens of
  each modality are hidden; their pixels are zeroed *before* the tokenizer (its 3x3
  convolution would otherwise leak a hidden pixel into its visible neighbours) and their
  tokens are dropped from the encoder. A light decoder (one transformer block) sees the
  pooled CLS feature, the visible tokens and a learned mask token at every hidden place,
  and regresses the hidden pixels' standardised bands; the loss is their mean squared
  error. Feeding the pooled feature to the decoder is what trains ``ln_post``/``proj``,
  the feature every method reads.
- ``contrastive``: CLIP's idea across sensors. The pooled features of two modalities of the
  same pixel are pulled together and those of other pixels pushed apart (symmetric InfoNCE
  with CLIP's learnable temperature); each modality is also contrasted with the fused pair
  (the normalised sum), so a single sensor's feature learns to stand in for both — what an
  encoder needs when the other sensor goes missing.
- ``supervised``: the training-split labels of a source cube, from the concatenated pooled
  features; one present modality of each multi-modal sample is dropped with probability
  1/2, so the tower also learns from single-sensor inputs.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from rsmiss.models.backbone import VisionTower
from rsmiss.models.tokenizer import ModalityTokenizer

OBJECTIVES = ("mae", "contrastive", "supervised")
MASK_RATIO = 0.75
DECODER_WIDTH = 64


def tokenizer_key(dataset: str, modality: str) -> str:
    """ModuleDict key of one (dataset, modality) tokenizer ('.' is not allowed there)."""
    return f"{dataset}__{modality}"


class PretrainModel(nn.Module):
    """A trainable tower, its throw-away tokenizers and one objective's heads.

    ``sources`` maps dataset -> {modality: bands}; ``classes`` maps dataset -> number of
    classes (``supervised`` only).
    """

    def __init__(
        self,
        tower: VisionTower,
        objective: str,
        sources: dict[str, dict[str, int]],
        patch_size: int,
        classes: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.tower = tower
        self.objective = objective
        self.patch_size = patch_size
        self.sources = {d: dict(m) for d, m in sources.items()}
        width, dim = tower.cfg.width, tower.cfg.output_dim
        self.tokenizers = nn.ModuleDict(
            {
                tokenizer_key(d, m): ModalityTokenizer(c, width)
                for d, mods in sources.items()
                for m, c in mods.items()
            }
        )
        n_tok = patch_size * patch_size
        if objective == "mae":
            dec = DECODER_WIDTH
            self.dec_tokens = nn.Linear(width, dec)
            self.dec_cls = nn.Linear(dim, dec)
            self.mask_token = nn.Parameter(torch.zeros(dec))
            self.dec_pos = nn.Parameter(torch.randn(n_tok + 1, dec) * 0.02)
            self.decoder = ResidualAttentionBlock(dec, max(1, dec // 32), batch_first=True)
            self.dec_norm = nn.LayerNorm(dec)
            self.recon = nn.ModuleDict(
                {
                    tokenizer_key(d, m): nn.Linear(dec, c)
                    for d, mods in sources.items()
                    for m, c in mods.items()
                }
            )
        elif objective == "contrastive":
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        elif objective == "supervised":
            classes = classes or {}
            self.heads = nn.ModuleDict(
                {d: nn.Linear(len(mods) * dim, classes[d]) for d, mods in sources.items()}
            )

    # -- the encoder, as the methods will use it --------------------------------------
    def encode(self, dataset: str, modality: str, patch: torch.Tensor) -> torch.Tensor:
        """(B, C, P, P) -> (B, 1 + P², width) block outputs (CLS first)."""
        tokens = self.tokenizers[tokenizer_key(dataset, modality)](patch)
        x = self.tower.embed(tokens, self.patch_size)
        return self.tower.forward_blocks(x)

    def features(self, dataset: str, modality: str, patch: torch.Tensor) -> torch.Tensor:
        """The pooled CLS feature (B, output_dim): what a method's head reads."""
        return self.tower.pool(self.encode(dataset, modality, patch))

    def pooled(
        self, dataset: str, patches: dict[str, torch.Tensor], present: torch.Tensor
    ) -> list[torch.Tensor]:
        """Per modality (in the source's order), (B, output_dim) pooled features of the rows
        where ``present`` (B, M) is True and zeros elsewhere, as the classifier's missing
        features are; only present rows are encoded."""
        out = []
        for j, modality in enumerate(self.sources[dataset]):
            patch = patches[modality]
            rows = present[:, j].nonzero().view(-1).to(patch.device)
            full = patch.new_zeros(present.shape[0], self.tower.cfg.output_dim)
            if rows.numel():
                full = full.index_copy(0, rows, self.features(dataset, modality, patch[rows]))
            out.append(full)
        return out

    # -- objectives --------------------------------------------------------------------
    def forward(
        self,
        dataset: str,
        patches: dict[str, torch.Tensor],
        observed: torch.Tensor,
        label: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The objective's loss on one batch of one dataset (``observed``: (B, M) bool)."""
        if self.objective == "mae":
            return self._mae(dataset, patches, observed, generator)
        if self.objective == "contrastive":
            return self._contrastive(dataset, patches, observed)
        return self._supervised(dataset, patches, observed, label, generator)

    def _mae(self, dataset, patches, observed, generator) -> torch.Tensor:
        losses = []
        n_tok = self.patch_size * self.patch_size
        keep_n = max(1, int(round(n_tok * (1.0 - MASK_RATIO))))
        for j, modality in enumerate(self.sources[dataset]):
            rows = observed[:, j].nonzero().view(-1)
            if rows.numel() == 0:
                continue
            patch = patches[modality].index_select(0, rows.to(patches[modality].device))
            b, c = patch.shape[:2]
            noise = torch.rand(b, n_tok, generator=generator).to(patch.device)
            order = noise.argsort(dim=1)
            keep, hidden = order[:, :keep_n], order[:, keep_n:]
            visible = torch.zeros(b, n_tok, dtype=torch.bool, device=patch.device)
            visible.scatter_(1, keep, True)
            masked_input = patch * visible.view(b, 1, self.patch_size, self.patch_size)
            tokens = self.tokenizers[tokenizer_key(dataset, modality)](masked_input)
            x = self.tower.embed(tokens, self.patch_size)  # (b, 1 + n_tok, width)
            body = x[:, 1:].gather(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            x = self.tower.forward_blocks(torch.cat([x[:, :1], body], dim=1))
            cls = self.dec_cls(self.tower.pool(x))
            dec = self.mask_token.expand(b, n_tok, -1).clone()
            where = keep.unsqueeze(-1).expand(-1, -1, dec.shape[-1])
            dec.scatter_(1, where, self.dec_tokens(x[:, 1:]))
            y = torch.cat([cls.unsqueeze(1), dec], dim=1) + self.dec_pos
            y = self.dec_norm(self.decoder(y))[:, 1:]
            pred = self.recon[tokenizer_key(dataset, modality)](y)  # (b, n_tok, c)
            target = patch.flatten(2).transpose(1, 2)  # (b, n_tok, c)
            idx = hidden.unsqueeze(-1).expand(-1, -1, c)
            losses.append(F.mse_loss(pred.gather(1, idx), target.gather(1, idx)))
        return torch.stack(losses).mean()

    def _contrastive(self, dataset, patches, observed) -> torch.Tensor:
        feats = [F.normalize(f, dim=-1) for f in self.pooled(dataset, patches, observed)]
        scale = self.logit_scale.clamp(max=math.log(100)).exp()
        losses = []
        for ja, jb in combinations(range(len(feats)), 2):
            rows = (observed[:, ja] & observed[:, jb]).nonzero().view(-1)
            if rows.numel() < 2:
                continue
            rows = rows.to(feats[ja].device)
            fa, fb = feats[ja][rows], feats[jb][rows]
            fused = F.normalize(fa + fb, dim=-1)
            losses.append(_info_nce(fa, fb, scale))
            losses.append(0.5 * (_info_nce(fa, fused, scale) + _info_nce(fb, fused, scale)))
        if not losses:  # no pixel of this batch has two sensors: nothing to contrast
            return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
        return torch.stack(losses).mean()

    def _supervised(self, dataset, patches, observed, label, generator) -> torch.Tensor:
        use = observed.clone()
        multi = use.sum(1) > 1
        if multi.any():  # drop one present sensor of half the multi-modal samples
            drop = (torch.rand(use.shape[0], generator=generator) < 0.5) & multi
            scores = torch.rand(use.shape, generator=generator) * use
            victim = scores.argmax(dim=1)
            use[drop, victim[drop]] = False
        logits = self.heads[dataset](torch.cat(self.pooled(dataset, patches, use), dim=1))
        return F.cross_entropy(logits, label)


def _info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over the similarity matrix of matched rows."""
    logits = scale * a @ b.T
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
