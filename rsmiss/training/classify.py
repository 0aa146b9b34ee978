"""Classify every pixel of a scene with a model: the forward pass behind every class map.

A pixel's modalities are those its sensors observed (the cube's per-pixel ``observed_map``:
a cloud, a LiDAR gap or the edge of a footprint makes that modality missing there, exactly
as in training) minus the ``missing`` ones, which simulate absent sensors everywhere.
Missing encoders are skipped as in training; a pixel no sensor observed is not classified
(-1).

Where the time goes, and what is done about it: each pixel's P x P patch becomes P² tokens
through the modality tokenizer (Conv3x3 -> GELU -> Conv1x1), and neighbouring patches
overlap in all but one row or column, so tokenizing patch by patch repeats the same
convolution P² times per pixel; for 144 hyperspectral bands that was about 40 % of the
arithmetic of a tiny-backbone forward pass. A convolution over the scene computes every
token once. Only the tokens on a patch's border differ (the tokenizer zero-pads the patch,
it does not see the neighbour outside it), so the scene is convolved with the nine border
variants of the 3x3 kernel (taps outside the patch removed) and each patch gathers the
variant its position needs: the same sums, in another order. The transformer then runs on
gathered token patches in batches small enough to stay in cache, under
``torch.inference_mode``.

Training maps its own scene with this at the end of a run; ``rsmiss.inference`` maps whole
scenes tile by tile with the same function, so both give the same classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsmiss.errors import ConfigError
from rsmiss.models.tokenizer import ModalityTokenizer
from rsmiss.training.data import Scene
from rsmiss.training.loop import autocast

CPU_BATCH = 128
"""Pixels per forward pass on CPU: measured fastest (tools/perf/predict_bench.py; 2,048 ran
at about 40 % of the speed): larger batches spill the transformer's activations out of
cache without saving any work."""

GPU_BATCH = 2048
"""Pixels per forward pass on a GPU, where a batch must be large to fill the device."""


def default_batch(device: torch.device) -> int:
    return GPU_BATCH if device.type == "cuda" else CPU_BATCH


BAND_PIXELS = 32_768
"""Padded-scene pixels tokenized at once (about 100 MB of token maps at 144 bands)."""


class ClassifiedScene(NamedTuple):
    classes: np.ndarray  # (H, W) int64, 0-based; -1 where no modality was observed
    confidence: np.ndarray | None  # (H, W) float32 softmax probability of the class; 0 at -1


def missing_columns(missing: tuple[str, ...] | list[str], modalities: tuple[str, ...]) -> list[int]:
    """Mask columns of the ``missing`` modalities; at least one modality must stay."""
    unknown = [m for m in missing if m not in modalities]
    if unknown:
        raise ConfigError(
            f"--missing: unknown modality {unknown[0]!r}; this run uses {', '.join(modalities)}"
        )
    if len(set(missing)) >= len(modalities):
        raise ConfigError("--missing: at least one modality must stay available")
    return [modalities.index(m) for m in missing]


def _variant_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(9 * out, C, 3, 3): the 3x3 kernel with the taps outside a patch removed, for a token
    on the top / middle / bottom row times the left / middle / right column of its patch."""
    kernels = []
    for top, bottom in ((True, False), (False, False), (False, True)):
        for left, right in ((True, False), (False, False), (False, True)):
            k = weight.clone()
            if top:
                k[:, :, 0, :] = 0
            if bottom:
                k[:, :, 2, :] = 0
            if left:
                k[:, :, :, 0] = 0
            if right:
                k[:, :, :, 2] = 0
            kernels.append(k)
    return torch.cat(kernels)


def token_maps(tok: ModalityTokenizer, padded: torch.Tensor) -> torch.Tensor:
    """(9, width, H, W) tokens of every pixel of a padded (C, H, W) scene band, one map per
    border variant (the order of ``_variant_kernels``)."""
    hidden = tok.conv3.out_channels
    w3, b3 = tok.conv3.weight, tok.conv3.bias
    maps = []
    x = padded.unsqueeze(0).to(w3.dtype)
    kernels = _variant_kernels(w3)
    for v in range(9):
        h = F.conv2d(x, kernels[v * hidden : (v + 1) * hidden], b3, padding=1)
        maps.append(tok.conv1(tok.act(h))[0])
    return torch.stack(maps)


def _variant_index(patch_size: int, device: torch.device) -> torch.Tensor:
    """(P, P) variant of each token position of a patch."""
    cls = torch.ones(patch_size, dtype=torch.long, device=device)
    cls[0], cls[-1] = 0, 2
    return cls[:, None] * 3 + cls[None, :]


def gather_tokens(
    maps: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, p: int
) -> torch.Tensor:
    """(B, width, P, P) token patches whose top-left corners are (rows, cols) of ``maps``."""
    nv, width, hb, wb = maps.shape
    off = torch.arange(p, device=maps.device)
    ii = rows[:, None, None] + off[None, :, None]  # (B, P, 1)
    jj = cols[:, None, None] + off[None, None, :]  # (B, 1, P)
    flat = _variant_index(p, maps.device) * (hb * wb) + ii * wb + jj  # (B, P, P)
    out = maps.permute(1, 0, 2, 3).reshape(width, -1).index_select(1, flat.reshape(-1))
    return out.view(width, rows.shape[0], p, p).permute(1, 0, 2, 3)


class _QuickGELU(nn.Module):
    """open_clip's ``x * sigmoid(1.702 x)`` with one temporary instead of three: the same
    bits, about 30 % less time in what is a third of a tiny tower's forward pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(1.702 * x).mul_(x)


class _Tokens(nn.Module):
    """Stands in for a tokenizer whose tokens were gathered already: (B, width, P, P) in."""

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        return patch.flatten(2).transpose(1, 2)


@contextlib.contextmanager
def _pretokenized(model: nn.Module) -> Iterator[None]:
    """Tokenizers that take gathered tokens, and the in-place QuickGELU, while mapping."""
    from open_clip.transformer import QuickGELU

    saved = model.tokenizers
    acts = [(mod, name) for mod in model.modules() for name, child in mod.named_children()
            if type(child) is QuickGELU]  # fmt: skip
    model.tokenizers = nn.ModuleDict({m: _Tokens() for m in saved})
    for mod, name in acts:
        setattr(mod, name, _QuickGELU())
    try:
        yield
    finally:
        model.tokenizers = saved
        for mod, name in acts:
            setattr(mod, name, QuickGELU())


def _scene_tokens_apply(model: nn.Module) -> bool:
    tokenizers = getattr(model, "tokenizers", None)
    return isinstance(tokenizers, nn.ModuleDict) and all(
        type(t) is ModalityTokenizer for t in tokenizers.values()
    )


@contextlib.contextmanager
def _batch_runner(device: torch.device) -> Iterator[Callable]:
    """``map`` over batches. On CPU with N intra-op threads: N batches at a time, each on
    one thread, instead of every small operator split N ways: the transformer's operators
    on a batch are too small to split well, and split ones stall whenever another process
    holds a core. Each batch's numbers are then computed single-threaded, the same
    whichever thread or process runs it."""
    workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers <= 1:
        yield map
        return
    from concurrent.futures import ThreadPoolExecutor

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            yield pool.map
    finally:
        torch.set_num_threads(workers)


@torch.inference_mode()
def classify(
    model: nn.Module,
    scene: Scene,
    device: torch.device,
    *,
    precision: str = "32",
    missing: tuple[str, ...] = (),
    batch_size: int | None = None,
    confidence: bool = False,
    progress: bool = False,
) -> ClassifiedScene:
    """Class (and optionally its probability) of every pixel of ``scene``; ``batch_size``
    None: :func:`default_batch` of the device."""
    from tqdm import tqdm

    batch_size = batch_size or default_batch(device)
    model.eval()
    h, w, m, p = scene.height, scene.width, len(scene.modalities), scene.patch_size
    keep = torch.ones(m, dtype=torch.bool)
    keep[missing_columns(tuple(missing), scene.modalities)] = False
    observed = scene.observed.reshape(m, -1) & keep[:, None]
    wanted = observed.any(0)
    classes = torch.full((h * w,), -1, dtype=torch.long)
    conf = torch.zeros(h * w, dtype=torch.float32) if confidence else None
    fast = _scene_tokens_apply(model)
    tokenizers = dict(model.tokenizers.items()) if fast else {}
    band = max(1, BAND_PIXELS // (w + p - 1) - (p - 1)) if fast else h
    with (
        tqdm(total=h * w, unit="px", unit_scale=True, disable=not progress, leave=False) as bar,
        _pretokenized(model) if fast else contextlib.nullcontext(),
        _batch_runner(device) as run,
    ):
        for r0 in range(0, h, band):
            r1 = min(h, r0 + band)
            todo = wanted[r0 * w : r1 * w].nonzero().view(-1) + r0 * w
            bar.update((r1 - r0) * w - len(todo))
            if not len(todo):
                continue
            maps: dict[str, torch.Tensor] = {}
            if fast:
                with autocast(device, precision):
                    for j, mod in enumerate(scene.modalities):
                        if keep[j]:
                            band_px = scene.padded[mod][:, r0 : r1 + p - 1].to(device)
                            maps[mod] = token_maps(tokenizers[mod], band_px)
            if device.type == "cuda":
                todo = todo.pin_memory()  # batches of it go to the device without a sync

            @torch.inference_mode()
            def one_batch(start: int, todo=todo, maps=maps, r0=r0) -> tuple[Any, Any]:
                flat_host = todo[start : start + batch_size]
                avail = observed[:, flat_host].T.contiguous()
                flat = flat_host.to(device, non_blocking=True)
                rows, cols = flat // w, flat % w
                if fast:
                    inputs = {
                        mod: gather_tokens(maps[mod], rows - r0, cols, p)
                        if mod in maps
                        else torch.zeros((), device=device).expand(len(flat), 1, p, p)
                        for mod in scene.modalities
                    }
                else:
                    inputs = scene.patches(rows, cols, device)
                with autocast(device, precision):
                    logits = model(inputs, avail).logits
                if conf is None:
                    return logits.argmax(dim=1), None
                best, k = torch.softmax(logits.float(), dim=1).max(dim=1)
                return k, best

            picked, probs = [], []
            for k, best in run(one_batch, range(0, len(todo), batch_size)):
                picked.append(k)
                probs.append(best)
                bar.update(len(k))
            classes[todo] = torch.cat(picked).cpu()
            if conf is not None:
                conf[todo] = torch.cat(probs).cpu()
    return ClassifiedScene(
        classes.reshape(h, w).numpy(), None if conf is None else conf.reshape(h, w).numpy()
    )


def classify_scene(
    model: nn.Module,
    scene: Scene,
    device: torch.device,
    *,
    precision: str = "32",
    missing: tuple[str, ...] = (),
    batch_size: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """0-based class of every pixel, shape (H, W); -1 where no modality was observed."""
    return classify(
        model,
        scene,
        device,
        precision=precision,
        missing=missing,
        batch_size=batch_size,
        progress=progress,
    ).classes
