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

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import ConfigError, DataError
from rsmiss.models.backbone import PRETRAIN_FORMAT as FORMAT
from rsmiss.pretrain.loop import read_checkpoint, tower_state, train_worker
from rsmiss.pretrain.objectives import PretrainModel
from rsmiss.pretrain.pixels import PixelSet
from rsmiss.pretrain.request import (
    PretrainRequest,
    build_model,
    cube_path,
    read_sources,
    validate,
)
from rsmiss.workspace import Workspace, atomic_path, file_sha256, write_json_atomic

logger = logging.getLogger(__name__)


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
            logger.info(f"{out}: up to date (same request, same cubes)")
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
    logger.info(
        f"pretrain {req.backbone} ({req.objective}) on "
        + ", ".join(f"{d} ({n} px)" for d, n in n_pixels.items())
        + f", {req.epochs} epochs, {patch}x{patch} patches -> {out}"
    )
    t0 = time.perf_counter()
    launch(train_worker, world, req, sets, patch, fingerprint, ckpt_path, progress)
    seconds = time.perf_counter() - t0
    ckpt = read_checkpoint(ckpt_path, fingerprint)
    if ckpt is None or int(ckpt["epoch"]) != req.epochs:
        raise DataError("pretraining ended without its final checkpoint", source=str(ckpt_path))
    model = build_model(req, sets, patch)
    model.load_state_dict(ckpt["model"])
    probe = run_probes(req, ws, sets, model, patch)
    prov = provenance(req, sets, patch, fingerprint, ckpt["history"], probe)
    _publish(out, meta_path, tower_state(model), prov)
    shutil.rmtree(work, ignore_errors=True)
    logger.info(f"wrote {out} in {seconds:.0f} s (sha256 {prov['sha256'][:12]}…)")
    return PretrainResult(out, prov)


def run_probes(
    req: PretrainRequest,
    ws: Workspace,
    sets: list[PixelSet],
    model: PretrainModel,
    patch: int,
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
        logger.info(probe_table(out))
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

    from rsmiss.version import __version__

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
