"""What a pretraining request is: its fields, checks, source pixels and seeded model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rsmiss.errors import ConfigError, DataError
from rsmiss.pretrain.objectives import OBJECTIVES, PretrainModel
from rsmiss.pretrain.pixels import PixelSet, load_pixels
from rsmiss.workspace import Workspace


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


def build_model(req: PretrainRequest, sets: list[PixelSet], patch: int) -> PretrainModel:
    """The trainable tower (seeded like the random-init tower) and seeded heads."""
    from rsmiss.models.backbone import VisionTower, backbone_config
    from rsmiss.models.seeded import seed_all

    seed_all(req.seed)
    tower = VisionTower(backbone_config(req.backbone), req.activation)
    sources = {s.dataset: s.scene.channels for s in sets}
    classes = {s.dataset: s.n_classes for s in sets}
    return PretrainModel(tower, req.objective, sources, patch, classes)
