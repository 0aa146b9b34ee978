"""``rsmiss pretrain``: train the whole encoder on cube pixels, write frozen-ready weights.

Output: ``ROOT/weights/<name>.safetensors`` — the bare visual-tower state dict that
``--backbone-weights`` loads (open_clip's ``visual.*`` keys without the prefix), with the
provenance in the file's own metadata — and ``<name>.json`` beside it (objective, datasets
and cube ids, pixels used, epochs, seed, loss curve, linear probe, sha256 of the weights).

The same request gives the same bytes on the CPU: the model starts from seeded weights, the
pixel order and the MAE masks are functions of (seed, epoch) only, and no wall time is
written. That also makes resuming exact: a checkpoint after every epoch (parameters and
optimiser moments) is all a killed run needs, and a rerun of the same command continues
from it. A finished request is reported up to date; another request under the same name is
refused rather than overwriting it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import ConfigError, DataError
from rsmiss.models.backbone import PRETRAIN_FORMAT as FORMAT
from rsmiss.pretrain.objectives import OBJECTIVES, PretrainModel
from rsmiss.pretrain.pixels import PixelSet, load_pixels
from rsmiss.workspace import Workspace, atomic_path, file_sha256, write_json_atomic

Log = Callable[[str], None]


@dataclass(frozen=True)
class PretrainRequest:
    """Everything that decides the weights; its fingerprint names a finished result."""

    datasets: tuple[str, ...]
    objective: str = "mae"
    backbone: str = "tiny"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    max_pixels: int | None = None  # per dataset and epoch; None = every pixel
    patch_size: int | None = None  # None = the first cube's patch size
    activation: str = "quickgelu"
    seed: int = 0
    name: str | None = None
    probe_pixels: int = 4000
    devices: int = 1

    def default_name(self) -> str:
        return (
            self.name or f"{self.backbone}-{self.objective}-{'+'.join(self.datasets)}-s{self.seed}"
        )

    def fingerprint(self, cube_ids: dict[str, str], patch_size: int) -> str:
        fields = asdict(self)
        for key in ("name", "devices"):
            fields.pop(key)
        fields["patch_size"] = patch_size
        fields["cube_ids"] = cube_ids
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def validate(req: PretrainRequest) -> None:
    """Refuse a bad request before anything is read or written (one line each)."""
    import re

    from rsmiss.models.backbone import ACTIVATIONS, backbone_config

    if req.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {req.objective!r} is not one of {', '.join(OBJECTIVES)}")
    if not req.datasets:
        raise ConfigError("--dataset: give at least one cube to pretrain on")
    backbone_config(req.backbone)
    if req.activation not in ACTIVATIONS:
        raise ConfigError(f"--activation {req.activation!r} is not one of {ACTIVATIONS}")
    for flag, value, low in (
        ("--epochs", req.epochs, 1),
        ("--batch-size", req.batch_size, 2),
        ("--probe-pixels", req.probe_pixels, 0),
        ("--devices", req.devices, 1),
    ):
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    if req.max_pixels is not None and req.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be at least 1, got {req.max_pixels}")
    if req.patch_size is not None and req.patch_size < 1:
        raise ConfigError(f"--patch-size must be at least 1, got {req.patch_size}")
    if not req.lr > 0:
        raise ConfigError(f"--lr must be positive, got {req.lr}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", req.default_name()):
        raise ConfigError(
            f"--name {req.default_name()!r}: use letters, digits, '.', '_', '-' and '+' only"
        )


def cube_path(ws: Workspace, dataset: str) -> Path:
    path = Path(dataset)
    if path.suffix == ".zarr":
        return path
    return ws.cube(dataset)


def _cube_patch_size(path: Path) -> int:
    from rsmiss.ingest.store import read_attrs

    attrs = read_attrs(path)
    if attrs is None:
        name = path.stem
        raise DataError(
            f"no finished cube here; build it with `rsmiss ingest {name}` first", source=str(path)
        )
    return int(attrs["patch_size"])


def read_sources(req: PretrainRequest, ws: Workspace) -> tuple[list[PixelSet], int]:
    """Every cube's pixels (host memory), checked against what the objective needs."""
    paths = [cube_path(ws, d) for d in req.datasets]
    sizes = [_cube_patch_size(p) for p in paths]
    patch = req.patch_size or sizes[0]
    sets = [load_pixels(p, patch, labels=req.objective == "supervised") for p in paths]
    names = [s.dataset for s in sets]
    if len(set(names)) != len(names):
        raise ConfigError(f"--dataset names the same dataset twice ({names})")
    for s, p in zip(sets, paths, strict=True):
        if req.objective == "contrastive":
            if len(s.modalities) < 2:
                raise DataError(
                    f"has only the modality {s.modalities[0]!r}; --objective contrastive needs "
                    "two co-registered sensors (use mae for a single-sensor cube)",
                    source=str(p),
                )
            if not bool((s.observed.sum(1) >= 2).any()):
                raise DataError(
                    "has no pixel where two sensors were both observed; --objective "
                    "contrastive needs some",
                    source=str(p),
                )
    return sets, patch


# ---------------------------------------------------------------------------- training
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


def build_model(req: PretrainRequest, sets: list[PixelSet], patch: int) -> PretrainModel:
    """The trainable tower (seeded like the random-init tower) and seeded heads."""
    from rsmiss.models.backbone import VisionTower, backbone_config
    from rsmiss.models.seeded import seed_all

    seed_all(req.seed)
    tower = VisionTower(backbone_config(req.backbone), req.activation)
    sources = {s.dataset: s.scene.channels for s in sets}
    classes = {s.dataset: s.n_classes for s in sets}
    return PretrainModel(tower, req.objective, sources, patch, classes)


def _checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def _read_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
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


def _train(info: Any, *args: Any) -> None:
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
    log: Log,
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
    ckpt = _read_checkpoint(ckpt_path, fingerprint)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step, history = int(ckpt["epoch"]), int(ckpt["step"]), list(ckpt["history"])
        if info.is_main:
            log(f"resume after epoch {start_epoch}/{req.epochs}")
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
                log(
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


# ---------------------------------------------------------------------------- publishing
def tower_state(model: PretrainModel) -> dict[str, torch.Tensor]:
    """The visual-tower tensors exactly as ``load_visual_state`` expects them."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.tower.state_dict().items()}


@dataclass
class PretrainResult:
    weights: Path
    provenance: dict[str, Any]
    up_to_date: bool = False


def pretrain(
    req: PretrainRequest,
    root: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    log: Log = print,
) -> PretrainResult:
    """Pretrain, probe and publish; a finished identical request is returned as it is."""
    from rsmiss.training.distributed import check_devices, launch

    validate(req)
    ws = Workspace(root)
    sets, patch = read_sources(req, ws)
    cube_ids = {s.dataset: s.cube_id for s in sets}
    fingerprint = req.fingerprint(cube_ids, patch)
    name = req.default_name()
    out = ws.weights / f"{name}.safetensors"
    meta_path = out.with_suffix(".json")
    if out.is_file() and meta_path.is_file() and not force:
        prov = _read_provenance(meta_path)
        if prov.get("fingerprint") == fingerprint and prov.get("sha256") == file_sha256(out):
            log(f"{out}: up to date (same request, same cubes)")
            return PretrainResult(out, prov, up_to_date=True)
        raise ConfigError(
            f"--name {name}: {out} holds weights of another request; choose another --name "
            "or pass --force to replace them"
        )
    world = check_devices(req.devices)
    work = ws.weights / f".pretrain-{name}"
    ckpt_path = work / "checkpoint.pt"
    if force and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    n_pixels = {s.dataset: len(s) for s in sets}
    log(
        f"pretrain {req.backbone} ({req.objective}) on "
        + ", ".join(f"{d} ({n} px)" for d, n in n_pixels.items())
        + f", {req.epochs} epochs, {patch}x{patch} patches -> {out}"
    )
    t0 = time.perf_counter()
    launch(_train, world, req, sets, patch, fingerprint, ckpt_path, progress, log)
    seconds = time.perf_counter() - t0
    ckpt = _read_checkpoint(ckpt_path, fingerprint)
    if ckpt is None or int(ckpt["epoch"]) != req.epochs:
        raise DataError("pretraining ended without its final checkpoint", source=str(ckpt_path))
    model = build_model(req, sets, patch)
    model.load_state_dict(ckpt["model"])
    probe = run_probes(req, ws, sets, model, patch, log)
    prov = provenance(req, sets, patch, fingerprint, ckpt["history"], probe)
    _publish(out, meta_path, tower_state(model), prov)
    shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {out} in {seconds:.0f} s (sha256 {prov['sha256'][:12]}…)")
    return PretrainResult(out, prov)


def run_probes(
    req: PretrainRequest,
    ws: Workspace,
    sets: list[PixelSet],
    model: PretrainModel,
    patch: int,
    log: Log,
) -> dict[str, Any]:
    """Linear probe of the pretrained and the random encoder on every source cube (the
    scenes already read for pretraining are reused; only the training labels are read)."""
    from rsmiss.pretrain.probe import linear_probe

    if req.probe_pixels == 0:
        return {}
    out = {}
    for d, s in zip(req.datasets, sets, strict=True):
        res = linear_probe(cube_path(ws, d), model, req, patch, scene=s.scene)
        out[res["dataset"]] = res
    if out:
        log(probe_table(out))
    return out


def probe_table(probe: dict[str, Any]) -> str:
    lines = [
        "linear probe (logistic regression on frozen CLS features; held-out half of the "
        "training pixels, OA %):",
        f"  {'dataset':<16}{'features':<12}{'random encoder':>16}{'pretrained':>12}{'pixels':>9}",
    ]
    for d, r in probe.items():
        rows = [("all", r), *r.get("by_modality", {}).items()]
        for view, v in rows:
            lines.append(
                f"  {d:<16}{view + (' alone' if view != 'all' else ''):<12}"
                f"{v['random_oa']:>16.2f}{v['pretrained_oa']:>12.2f}{r['n']:>9}"
            )
    return "\n".join(lines)


def provenance(
    req: PretrainRequest,
    sets: list[PixelSet],
    patch: int,
    fingerprint: str,
    history: list[dict[str, Any]],
    probe: dict[str, Any],
) -> dict[str, Any]:
    from rsmiss import __version__

    ssl = req.objective != "supervised"
    return {
        "format": FORMAT,
        "rsmiss_version": __version__,
        "name": req.default_name(),
        "fingerprint": fingerprint,
        "objective": req.objective,
        "backbone": req.backbone,
        "activation": req.activation,
        "patch_size": patch,
        "datasets": [
            {
                "dataset": s.dataset,
                "cube_id": s.cube_id,
                "synthetic": s.synthetic,
                "modalities": s.scene.channels,
                "pixels_available": len(s),
                "pixels_per_epoch": min(len(s), req.max_pixels or len(s)),
            }
            for s in sets
        ],
        "pixels_used": (
            "every pixel some sensor observed, labelled or not (train and test locations "
            "alike); no label was read"
            if ssl
            else "the training-split pixels and their labels; no test label was read"
        ),
        "epochs": req.epochs,
        "batch_size": req.batch_size,
        "lr": req.lr,
        "weight_decay": req.weight_decay,
        "seed": req.seed,
        "loss_curve": history,
        "linear_probe": probe,
    }


def _publish(out: Path, meta_path: Path, state: dict[str, torch.Tensor], prov: dict) -> None:
    """Weights first, then the provenance naming their hash (a kill between the two leaves
    weights without provenance, which the next run replaces)."""
    from safetensors.torch import save_file

    summary = {
        "format": FORMAT,
        "objective": prov["objective"],
        "backbone": prov["backbone"],
        "activation": prov["activation"],
        "source": "+".join(d["dataset"] for d in prov["datasets"]),
        "fingerprint": prov["fingerprint"],
    }
    # One metadata key: safetensors writes its metadata map in hash order, so several keys
    # would make the same weights different bytes from one run to the next.
    metadata = {FORMAT: json.dumps(summary, sort_keys=True)}
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    prov["sha256"] = file_sha256(out)
    write_json_atomic(meta_path, prov)


def _read_provenance(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
