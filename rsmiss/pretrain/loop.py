"""The pretraining loop of one rank: seeded epoch order, the step, resumable checkpoints."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import DataError
from rsmiss.models.backbone import PRETRAIN_FORMAT as FORMAT
from rsmiss.pretrain.objectives import PretrainModel
from rsmiss.pretrain.pixels import PixelSet
from rsmiss.pretrain.request import PretrainRequest, build_model
from rsmiss.workspace import atomic_path

logger = logging.getLogger(__name__)


def epoch_schedule(
    sets: list[PixelSet], req: PretrainRequest, epoch: int
) -> list[tuple[int, torch.Tensor]]:
    """The epoch's global batches as (source index, pixel indices): a function of
    (seed, epoch) only. Each source contributes at most ``max_pixels`` pixels; batches of
    different sources are interleaved in a seeded order."""
    batches: list[tuple[int, torch.Tensor]] = []
    for k, s in enumerate(sets):
        g = torch.Generator().manual_seed((req.seed * 1_000_003 + epoch * 101 + k) % 2**63)
        perm = torch.randperm(len(s), generator=g)
        if req.max_pixels is not None:
            perm = perm[: req.max_pixels]
        for start in range(0, len(perm), req.batch_size):
            chunk = perm[start : start + req.batch_size]
            if len(chunk) >= 2 * req.devices:  # InfoNCE needs two rows on every rank
                batches.append((k, chunk))
    g = torch.Generator().manual_seed((req.seed * 7919 + epoch) % 2**63)
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in order]


def _checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def read_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    hint = "delete it (or pass --force) to start over"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise DataError(
            f"corrupt pretraining checkpoint ({type(exc).__name__}); {hint}", source=str(path)
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(f"not an rsmiss pretraining checkpoint; {hint}", source=str(path))
    if ckpt.get("fingerprint") != fingerprint:
        return None  # another request's leftovers: start over
    return ckpt


def train_worker(info: Any, *args: Any) -> None:
    """One rank's pretraining loop (rank 0 writes the checkpoints)."""
    was = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        _train_rank(info, *args)
    finally:  # an in-process run leaves the caller's global setting as it found it
        torch.use_deterministic_algorithms(was, warn_only=warn)


def _train_rank(
    info: Any,
    req: PretrainRequest,
    sets: list[PixelSet],
    patch: int,
    fingerprint: str,
    ckpt_path: Path,
    progress: bool,
) -> None:

    from tqdm import tqdm

    from rsmiss.training.loop import lr_factor, param_groups

    device = info.device
    if device.type == "cpu":  # the same bytes whether resumed in this process or another
        torch.use_deterministic_algorithms(True, warn_only=True)
    model = build_model(req, sets, patch)  # every parameter trains: nothing here is frozen
    model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, req.weight_decay), lr=req.lr)
    start_epoch, step, history = 0, 0, []
    ckpt = read_checkpoint(ckpt_path, fingerprint)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step, history = int(ckpt["epoch"]), int(ckpt["step"]), list(ckpt["history"])
        if info.is_main:
            logger.info(f"resume after epoch {start_epoch}/{req.epochs}")
    train_model: torch.nn.Module = model
    if info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, find_unused_parameters=True)
    on_device = [s.to(device) for s in sets]
    steps_per_epoch = len(epoch_schedule(sets, req, 0))
    total = steps_per_epoch * req.epochs
    warmup = int(round(0.1 * total))
    bar = tqdm(
        total=total,
        initial=step,
        unit="batch",
        disable=not (progress and info.is_main and sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
    )
    model.train()
    for epoch in range(start_epoch, req.epochs):
        g = torch.Generator().manual_seed((req.seed * 31 + epoch * 1009 + info.rank) % 2**63)
        loss_sum, n_batches, t0 = 0.0, 0, time.perf_counter()
        for k, chunk in epoch_schedule(sets, req, epoch):
            idx = chunk[info.rank :: info.world_size]
            s = on_device[k]
            for group in optimizer.param_groups:
                group["lr"] = req.lr * lr_factor(step, total, warmup)
            patches = s.scene.patches(s.row[idx], s.col[idx], device)
            label = None if s.label is None else s.label[idx].to(device)
            loss = train_model(s.dataset, patches, s.observed[idx], label, g)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach())
            n_batches += 1
            step += 1
            bar.update(1)
        if info.world_size > 1:
            import torch.distributed as dist

            t = torch.tensor([loss_sum], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            loss_sum = float(t.item()) / info.world_size
        mean = round(loss_sum / max(1, n_batches), 6)
        history.append({"epoch": epoch + 1, "loss": mean})
        bar.set_postfix(loss=f"{mean:.4f}")
        if info.is_main:
            if not (progress and sys.stderr.isatty()):
                logger.info(
                    f"epoch {epoch + 1}/{req.epochs}: loss {mean:.4f} "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
            _checkpoint(
                ckpt_path,
                {
                    "fingerprint": fingerprint,
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "step": step,
                    "history": history,
                },
            )
    bar.close()


def tower_state(model: PretrainModel) -> dict[str, torch.Tensor]:
    """The visual-tower tensors exactly as ``load_visual_state`` expects them."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.tower.state_dict().items()}
