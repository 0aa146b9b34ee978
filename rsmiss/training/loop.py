"""The training loop: AdamW, warm-up + linear decay, CE + auxiliary loss, DDP-aware.

Recipe (paper §4.1 where it speaks, our choice where it is silent, reports say which):
AdamW (the paper says Adam, the authors' code uses AdamW), lr 2e-3, weight decay 2e-2 on
weight matrices only (not on norms, biases, embeddings or other 1-D parameters), linear
warm-up over the first 10 % of steps then linear decay to 0, a global batch of 128 split
over the ranks, bf16 autocast on GPU. Nothing is selected on the test set: the model
evaluated is the one after the last epoch; with a ``patience`` (``--epochs auto``) that last
epoch is chosen on validation OA, from training pixels held out, never on the test set.

The learning rate is a pure function of the global step, and the data order one of
(seed, epoch), so resuming needs only the parameters, the optimiser moments and the RNG
states. Inside the step nothing waits on the device: the loss is accumulated on the device
and read once per epoch.

With ``progress`` a bar shows the samples seen; without it (stderr redirected to a log
file, where a bar would leave thousands of carriage-return frames) rank 0 writes one line
per epoch to stderr instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rsmiss.models.routing import RoutingRecorder, record_routing
from rsmiss.training.data import RunData, Split, epoch_batches, epoch_permutation, shard

_NO_DECAY_MODULES = (
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.Embedding,
)


logger = logging.getLogger(__name__)


def compiled(model: torch.nn.Module, backend: str | None) -> torch.nn.Module:
    """``model`` with its transformer blocks under ``torch.compile(backend=...)`` when one
    is named (``MultimodalClassifier.compile_blocks``: one graph whatever the batch's
    composition). Call it before wrapping in DDP; the model is changed in place."""
    if backend:
        model.compile_blocks(backend)
    return model


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decay on weight matrices/kernels, none on norms, biases, embeddings.

    Order is the model's parameter order, so optimiser state maps back identically on resume.
    """
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, _NO_DECAY_MODULES):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if id(p) in no_decay_ids or p.ndim < 2 or leaf == "bias" or "embedding" in leaf:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to 1 over ``warmup_steps`` (first step already > 0), then linear to 0."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class TrainState:
    """What a checkpoint restores: completed epochs, global step, the curve so far."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def routing_summary(recorder: RoutingRecorder, modalities: Sequence[str]) -> dict[str, Any] | None:
    """The recorder's summary with the project's pattern names (pattern index i is the
    bitmask i + 1 over ``modalities``) and MaMOL's static experts named shared + modalities."""
    from rsmiss.training.metrics import pattern_labels

    mods = tuple(modalities)
    n = 2 ** len(mods) - 1
    bits = np.array([[(i + 1) >> j & 1 for j in range(len(mods))] for i in range(n)], dtype=bool)
    return recorder.summary(list(pattern_labels(bits, mods)), ["shared", *mods])


@torch.no_grad()
def predict_split(
    model: torch.nn.Module,
    data: RunData,
    split: Split,
    device: torch.device,
    precision: str,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
) -> np.ndarray | None:
    """Predicted 0-based classes of every sample of ``split``, each computed on one rank.

    Ranks take strided shards (no padding duplicates) and rank 0 reassembles the split's
    order; other ranks return None.
    """
    was_training = model.training
    model.eval()
    sel = shard(len(split), rank, world_size)  # host, like the mask: no sync per batch
    available_host = split.available.cpu()
    preds = []
    for start in range(0, len(sel), batch_size):
        idx_host = sel[start : start + batch_size]
        idx = idx_host.to(device, non_blocking=True)
        inputs = data.scene.patches(split.row[idx], split.col[idx], device)
        with autocast(device, precision):
            out = model(inputs, available_host[idx_host])
        preds.append(out.logits.argmax(dim=1))
    local = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, dtype=np.int64)
    model.train(was_training)
    if world_size == 1:
        return local
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, (sel.cpu().numpy(), local))
    if rank != 0:
        return None
    full = np.empty(len(split), dtype=np.int64)
    for idx, pred in gathered:
        full[idx] = pred
    return full


def should_stop(history: Sequence[dict[str, Any]], patience: int | None) -> bool:
    """Early stopping: True when validation OA has not improved (strictly) on its best for
    ``patience`` epochs. The best is the first epoch reaching the maximum, so with
    ``patience`` 3 the curve 50, 60, 70, 70, 69, 68 stops after epoch 6. Only validation
    OA (training pixels held out) is read; None disables it."""
    if not patience:
        return False
    curve = [h.get("val_oa") for h in history]
    if not curve or any(v is None for v in curve):
        return False
    best = curve.index(max(curve))
    return len(curve) - 1 - best >= patience


def _epoch_line(cfg: Any, record: dict[str, Any], seconds: float) -> str:
    """One epoch in one line, for logs where no progress bar is drawn."""
    val = f", val OA {record['val_oa']:.2f}" if record.get("val_oa") is not None else ""
    return (
        f"{cfg.run_id}: epoch {record['epoch']}/{cfg.epochs} loss {record['train_loss']:.4f}"
        f"{val} ({seconds:.1f} s)"
    )


def fit(
    *,
    model: torch.nn.Module,
    train_model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: RunData,
    cfg: Any,
    device: torch.device,
    state: TrainState,
    rank: int = 0,
    world_size: int = 1,
    on_epoch_end: Callable[[TrainState], None] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train from ``state`` to ``cfg.epochs`` (or until :func:`should_stop` says so, with the
    ``patience`` option); returns throughput figures for perf.json.

    ``train_model`` is ``model`` or its DDP wrapper; evaluation uses the bare ``model``.
    ``on_epoch_end`` writes checkpoints (rank 0) after ``state`` is updated. ``progress``:
    a progress bar, else one summary line per epoch on stderr (rank 0). Each epoch's
    record holds ``wall_s``: training seconds since the run started (resumed segments
    added up), for time-to-accuracy; it is a timing, so it stays out of ``curve.csv``.
    """
    import torch.distributed as dist
    from tqdm import tqdm

    n_train = len(data.train)
    steps_per_epoch = len(epoch_batches(torch.arange(n_train), cfg.batch_size, 0, world_size))
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(round(cfg.warmup_fraction * total_steps))
    base_lrs = [cfg.lr for _ in optimizer.param_groups]
    eval_bs = int(cfg.train_opt("eval_batch_size"))

    bar = tqdm(
        total=n_train * cfg.epochs,
        initial=n_train * state.epoch,
        unit="sample",
        unit_scale=True,
        disable=not progress or rank != 0,
        dynamic_ncols=True,
        leave=False,
    )
    train_model.train()
    samples = 0
    t0 = time.perf_counter()
    # The availability mask stays on the host as well: the model sizes its encoder batches
    # from it, and a host mask costs no device sync in the step (see MultimodalClassifier).
    available_host = data.train.available.cpu()
    patience = cfg.train_opt("patience")
    wall0 = float(state.history[-1].get("wall_s", 0.0)) if state.history else 0.0
    for epoch in range(state.epoch, cfg.epochs):
        if should_stop(state.history, patience):  # a resumed run that had already stopped
            break
        t_epoch = time.perf_counter()
        perm = epoch_permutation(cfg.seed, epoch, n_train)  # host: indexes the host mask too
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        for idx_host, global_n in epoch_batches(perm, cfg.batch_size, rank, world_size):
            idx = idx_host.to(device, non_blocking=True)
            factor = lr_factor(state.step, total_steps, warmup)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
            inputs = data.scene.patches(data.train.row[idx], data.train.col[idx], device)
            labels = data.train.label[idx]
            with autocast(device, cfg.precision):
                out = train_model(inputs, available_host[idx_host])
            ce_sum = F.cross_entropy(out.logits.float(), labels, reduction="sum")
            # DDP averages gradients over ranks: scaling by world/global_n makes the result
            # the mean over the *global* batch even when ranks hold unequal shares.
            loss = ce_sum * (world_size / global_n) + out.aux_loss.float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += ce_sum.detach().double()
            state.step += 1
            samples += int(idx.shape[0])
            bar.update(global_n)
        if world_size > 1:
            dist.all_reduce(loss_sum)
        record = {
            "epoch": epoch + 1,
            "step": state.step,
            "lr": round(base_lrs[0] * lr_factor(max(0, state.step - 1), total_steps, warmup), 10),
            "train_loss": round(float(loss_sum.item()) / max(1, n_train), 6),
        }
        if data.val is not None:
            with record_routing(model, bool(cfg.train_opt("val_routing"))) as recorder:
                pred = predict_split(
                    model, data, data.val, device, cfg.precision, eval_bs, rank, world_size
                )
            if recorder is not None and world_size > 1:
                recorder.all_reduce()
            if rank == 0:
                truth = data.val.label.cpu().numpy()
                record["val_oa"] = round(100.0 * float((pred == truth).mean()), 6)
                if recorder is not None:
                    routing = routing_summary(recorder, data.scene.modalities)
                    sep = routing["separation"]["overall"] if routing else None
                    record["val_separation"] = sep
            if world_size > 1:  # every rank must take the same stopping decision
                gathered: list[Any] = [None]
                if rank == 0:
                    gathered = [record.get("val_oa")]
                dist.broadcast_object_list(gathered, src=0)
                record["val_oa"] = gathered[0]
        record["wall_s"] = round(wall0 + time.perf_counter() - t0, 3)
        state.epoch = epoch + 1
        state.history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", epoch=epoch + 1)
        if not progress and rank == 0:
            logger.info(_epoch_line(cfg, record, time.perf_counter() - t_epoch))
        if on_epoch_end is not None:
            on_epoch_end(state)
    bar.close()
    seconds = time.perf_counter() - t0
    return {
        "train_seconds": seconds,
        "train_samples_per_s": (samples * world_size) / seconds if seconds > 0 else 0.0,
        "steps": float(state.step),
    }
