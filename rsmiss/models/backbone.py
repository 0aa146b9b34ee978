"""The frozen backbone a model is built on: which architecture a name means, the tower with
its weights and the provenance record, and the check that a weights file fits.

The parts live by job in `architectures` (names and configs), `tower` (the module),
`weights` (files) and `timm_trunk` (timm ViTs); callers outside `rsmiss.models` import
the backbone's public names from here.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import ConfigError, DataError
from rsmiss.models.architectures import (
    ACTIVATIONS,
    BACKBONES,
    TINY,
    VisionConfig,
    architecture_name,
    backbone_key,
    open_clip_arch,
)
from rsmiss.models.timm_trunk import adapt_tower, is_timm, trunk_info, trunk_state
from rsmiss.models.tower import VisionTower
from rsmiss.models.weights import (
    PRETRAIN_FORMAT,
    describe_weights,
    load_backbone_weights,
    load_visual_state,
    pretrained_summary,
    read_backbone_weights,
    state_differences,
)

__all__ = [
    "ACTIVATIONS",
    "BACKBONES",
    "PRETRAIN_FORMAT",
    "TINY",
    "VisionTower",
    "WeightsMisfit",
    "architecture_name",
    "backbone_config",
    "build_backbone",
    "check_weights_fit",
    "describe_weights",
    "load_backbone_weights",
    "load_visual_state",
    "open_clip_arch",
    "pretrained_summary",
    "read_backbone_weights",
]


def backbone_config(name: str) -> VisionConfig:
    """The architecture a backbone name means: one of `BACKBONES`, or a timm trunk's."""
    if is_timm(name):
        return trunk_info(name)[0]
    key = backbone_key(name)
    if key not in BACKBONES:
        raise ConfigError(
            f"backbone {name!r} is not known; choose one of {sorted(BACKBONES)} or a timm ViT "
            "as timm:<name>"
        )
    return BACKBONES[key]


class WeightsMisfit(DataError):
    """A readable weights file of another architecture than the requested backbone."""


def _expected_shapes(cfg: VisionConfig) -> dict[str, tuple[int, ...]]:
    """The tower's state-dict shapes, built on the meta device: no memory, no init."""
    with torch.device("meta"):
        tower = VisionTower(cfg, init=False)
    return {k: tuple(v.shape) for k, v in tower.state_dict().items() if ".ffn_adapter." not in k}


def check_weights_fit(name: str, spec: str | Path, given_by: str = "--backbone-weights") -> None:
    """Refuse a weights file of another architecture before any run starts.

    The error names the file, the architecture its shapes match (when one of ours does)
    and the requested one. timm trunks are skipped: their keys are remapped on load, which
    checks them.
    """
    if is_timm(name):
        return
    tensors, _, _ = read_backbone_weights(spec)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    parts = state_differences(_expected_shapes(backbone_config(name)), shapes)
    if not parts:
        return
    found = next((b for b, cfg in BACKBONES.items() if shapes == _expected_shapes(cfg)), None)
    held = (
        f"{architecture_name(found)} weights"
        if found
        else f"weights of an unknown architecture ({'; '.join(parts)})"
    )
    hint = f"--backbone {found} or " if found else ""
    raise WeightsMisfit(
        f"({given_by}) holds {held}, not {architecture_name(name)} weights as --backbone "
        f"{name} needs; pass {hint}{architecture_name(name)} weights",
        source=str(spec),
    )


def build_backbone(
    name: str,
    weights: str | Path | None = None,
    random_init: bool = False,
    activation: str | None = None,
) -> tuple[VisionTower, dict[str, Any]]:
    """Frozen tower + its provenance record (the QuickGELU decision is made here).

    Activation: explicit option, else what the weights format says (OpenAI TorchScript and
    open_clip configs say it), else QuickGELU (OpenAI CLIP, the paper's weights).
    """
    cfg = backbone_config(name)
    if weights is None and not random_init:
        raise ConfigError(
            "no backbone weights: pass --backbone-weights PATH (or $RSMISS_BACKBONE_WEIGHTS) "
            "or random_init=True for a randomly initialised backbone"
        )
    trunk = is_timm(name)
    tensors, implied, digest = (None, None, "random-init")
    if weights is not None:
        tensors, implied, digest = read_backbone_weights(weights)
    resolved = activation or implied or (trunk_info(name)[1] if trunk else "quickgelu")
    tower = VisionTower(cfg, resolved, init=tensors is None or trunk)
    if trunk:
        adapt_tower(tower, name)
    if tensors is not None:
        if trunk:
            tensors = trunk_state(tower, tensors, str(weights))
        load_visual_state(tower, tensors, str(weights))
    for p in tower.parameters():
        p.requires_grad_(False)
    tower.eval()
    record = {
        "backbone": name,
        "backbone_config": asdict(cfg),
        "backbone_weights": None if weights is None else str(weights),
        "backbone_hash": digest,
        "random_init": weights is None,
        "activation": resolved,
    }
    return tower, record
