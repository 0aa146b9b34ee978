"""The shared multimodal classifier every method builds on.

Each present modality is tokenised by its own projection and encoded by the same frozen
tower; all present (sample, modality) rows go through the tower as ONE batch, so a missing
modality costs nothing (its encoder pass is skipped, not computed and thrown away) and the
matmuls stay large. Missing features are zeros (paper §4.1); features are concatenated in
the order of `modalities` and classified by one linear layer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from rsmiss.errors import DataError
from rsmiss.models.context import PassContext, pattern_index
from rsmiss.models.tokenizer import ModalityTokenizer
from rsmiss.models.tower import VisionTower


class ModelOutput(NamedTuple):
    logits: torch.Tensor  # (B, n_classes)
    aux_loss: torch.Tensor  # scalar; 0 when the method has no auxiliary loss


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without waiting on the device (pinned staging, non-blocking copy)."""
    if t.device == device:
        return t
    if t.device.type == "cpu" and device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def present_rows(column: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the `n` True entries of a bool column, in order: a stable argsort, where
    nonzero() would wait on the device for the size of its output."""
    return torch.argsort((~column).to(torch.int8), stable=True)[:n]


class MultimodalClassifier(nn.Module):
    def __init__(
        self,
        tower: VisionTower,
        modalities: dict[str, int],
        n_classes: int,
        patch_size: int,
    ) -> None:
        super().__init__()
        self.backbone = tower
        self.modalities = tuple(modalities)
        self.patch_size = patch_size
        self.n_patterns = 2 ** len(self.modalities) - 1
        width, dim = tower.cfg.width, tower.cfg.output_dim
        self.tokenizers = nn.ModuleDict(
            {name: ModalityTokenizer(c, width) for name, c in modalities.items()}
        )
        self.head = nn.Linear(len(self.modalities) * dim, n_classes)
        self.prompter: nn.Module | None = None  # set by prompt methods (mmp, dcp)
        self.config: dict[str, Any] = {}
        self._blocks: Any = None  # the block stack under torch.compile (compile_blocks)
        # set by rsmiss.models.routing.record_routing while routing is being recorded
        self.routing_recorder: Any = None

    # -- the contract -------------------------------------------------------------------
    def forward(self, inputs: dict[str, torch.Tensor], available: torch.Tensor) -> ModelOutput:
        available = self._check(inputs, available)
        device = inputs[self.modalities[0]].device
        b, m = available.shape
        available, row, mod, counts = self._encoder_rows(available, device)
        pattern = pattern_index(available)
        tokens, start = [], 0
        for j, name in enumerate(self.modalities):
            n = counts[j]
            if n:
                idx = row[start : start + n]
                tokens.append(self.tokenizers[name](inputs[name].index_select(0, idx)))
                start += n
        x = self.backbone.embed(torch.cat(tokens), self.patch_size)
        if self._blocks is None:
            ctx = PassContext(pattern[row], available[row], mod, self.n_patterns)
            ctx.recording = self.routing_recorder is not None
            x = self.backbone.forward_blocks(x, ctx, self.prompter)
        else:
            # A lone encoder row (one sample with one modality) runs twice: a dimension of
            # size 1 would be specialised, i.e. a second graph. Rows never mix and the
            # balancing losses are means over tokens, so the copy changes no number.
            lone = x.shape[0] == 1
            rows, mods = (row.repeat(2), mod.repeat(2)) if lone else (row, mod)
            x = torch.cat([x, x]) if lone else x
            ctx = PassContext(pattern[rows], available[rows], mods, self.n_patterns)
            ctx.recording, ctx.rows = self.routing_recorder is not None, (1 if lone else None)
            for t in (x, ctx.pattern, ctx.available, ctx.modality):
                torch._dynamo.maybe_mark_dynamic(t, 0)  # rows vary; nothing else does
            x = self._blocks(x, ctx, self.prompter)[: len(row)]
        if ctx.routing:
            self.routing_recorder.consume(ctx.routing)
        feats = self.backbone.pool(x)
        flat = feats.new_zeros(b * m, feats.shape[-1]).index_copy(0, row * m + mod, feats)
        logits = self.head(flat.view(b, -1))
        aux = (
            # mean over the adapted blocks, so the loss weight (0.01 for moe_ada) is the weight
            # of the whole model's balancing loss, as in Mixtral's single loss over all layers
            torch.stack([a.float() for a in ctx.aux]).mean()
            if ctx.aux
            else logits.new_zeros((), dtype=torch.float32)
        )
        return ModelOutput(logits, aux)

    @torch.compiler.disable  # data-dependent sizes: a graph break, never a recompile loop
    def _encoder_rows(
        self, available: torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """The mask on `device`, the rows of the one encoder batch ((sample, modality) of
        every present pair, grouped by modality) and the per-modality counts (host ints:
        they size the sub-batches).

        A mask on the host (the data path can pass one, it is tiny) costs no device sync:
        rows are built on the host and sent with non-blocking copies. A mask on the device
        costs ONE sync (the counts); rows are then built there, without nonzero().
        """
        stats = torch.cat([available.sum(0), (~available.any(1)).sum().view(1)]).tolist()
        if stats[-1]:
            raise DataError(f"{stats[-1]} samples have no modality available; drop them")
        counts = [int(n) for n in stats[:-1]]
        host = available.device.type == "cpu"
        row = torch.cat(
            [
                available[:, j].nonzero().view(-1) if host else present_rows(available[:, j], n)
                for j, n in enumerate(counts)
            ]
        )
        mod = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        return (
            _to_device(available, device),
            _to_device(row, device),
            _to_device(mod, device),
            counts,
        )

    def _check(self, inputs: dict[str, torch.Tensor], available: torch.Tensor) -> torch.Tensor:
        if available.dim() != 2 or available.shape[1] != len(self.modalities):
            raise DataError(
                f"available has shape {tuple(available.shape)}; expected (batch, "
                f"{len(self.modalities)}) with columns {list(self.modalities)}"
            )
        for name in self.modalities:
            x = inputs.get(name)
            if x is not None and tuple(x.shape[-2:]) != (self.patch_size, self.patch_size):
                raise DataError(
                    f"input {name!r} has patch shape {tuple(x.shape[-2:])}; the model was "
                    f"built with patch_size={self.patch_size}"
                )
        missing = [n for n in self.modalities if n not in inputs]
        if missing:
            raise DataError(f"inputs lack modalities {missing}; pass a (dummy) tensor for each")
        return available.to(torch.bool)

    def features(self, inputs: dict[str, torch.Tensor], available: torch.Tensor) -> torch.Tensor:
        """(B, M * dim) concatenated features (zeros for missing), i.e. the head's input."""
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, a: captured.append(a[0]))
        try:
            self.forward(inputs, available)
        finally:
            handle.remove()
        return captured[0]

    def compile_blocks(self, backend: str = "inductor") -> MultimodalClassifier:
        """Run the transformer blocks (with adapters and prompts) under ``torch.compile``.

        The blocks are nearly all of the step's work; the tokenizers, the row bookkeeping
        and the head stay eager. Only the number of encoder rows varies between batches (it
        follows each batch's availability), and that dimension is marked dynamic, so one
        graph serves every batch composition. Compiling the whole model instead recompiles
        whenever a row count crosses a size guard (e.g. every sample of a batch having
        LiDAR). Training and inference each compile once on their first call.
        """
        self._blocks = torch.compile(self.backbone.forward_blocks, backend=backend)
        return self

    # -- training helpers ---------------------------------------------------------------
    def train(self, mode: bool = True) -> MultimodalClassifier:
        """The frozen tower stays in eval mode; its adapters follow `mode`."""
        super().train(mode)
        self.backbone.eval()
        for block in self.backbone.transformer.resblocks:
            if block.ffn_adapter is not None:
                block.ffn_adapter.train(mode)
        return self

    SHARED_PARTS = ("tokenizers.", "head.")
    """Trainable parts every method has (token projections, head): not method-specific."""

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts: ``trainable`` (all), ``method`` (trainable minus the shared
        tokenizers and head, i.e. what the method adds: adapters, routers, prompts) and
        ``total`` (with the frozen backbone)."""
        named = list(self.named_parameters())
        return {
            "trainable": sum(p.numel() for _, p in named if p.requires_grad),
            "method": sum(
                p.numel()
                for n, p in named
                if p.requires_grad and not n.startswith(self.SHARED_PARTS)
            ),
            "total": sum(p.numel() for _, p in named),
        }

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trainable tensors: checkpoints never hold the frozen backbone."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k in names}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        missing, unexpected = sorted(names - set(state)), sorted(set(state) - names)
        if missing or unexpected:
            raise DataError(
                f"checkpoint does not match the model ({self.config.get('method')}): missing "
                f"{missing[:3]}, unexpected {unexpected[:3]}; was it saved with other options?"
            )
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatch: other rank / experts / classes
            raise DataError(f"checkpoint does not fit the model: {str(exc)[:200]}") from exc
