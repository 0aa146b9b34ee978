"""Which vision towers rsmiss builds: their architectures and the names they go by.

Architectures are read from open_clip's packaged model configs (configs are data); ``tiny``
keeps the same code path for CPU tests. One normaliser (``backbone_key``) serves every
lookup by name, so ``ViT_L_14``, ``vit-l-14`` and open_clip's ``ViT-L-14`` agree. A timm
trunk (``timm:<name>``) is described by ``rsmiss.models.timm_trunk``.
"""

from __future__ import annotations

from dataclasses import dataclass

from open_clip import get_model_config


@dataclass(frozen=True)
class VisionConfig:
    """Architecture of a CLIP ViT vision tower (open_clip's `vision_cfg` fields)."""

    width: int
    layers: int
    heads: int
    mlp_width: int
    patch_size: int
    image_size: int
    output_dim: int

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


def _open_clip_config(name: str) -> VisionConfig:
    """A vision config read from open_clip's packaged model config (configs are data)."""
    cfg = get_model_config(name)
    vision = cfg["vision_cfg"]
    width = vision["width"]
    head_width = vision.get("head_width", 64)
    return VisionConfig(
        width=width,
        layers=vision["layers"],
        heads=width // head_width,
        mlp_width=int(width * vision.get("mlp_ratio", 4.0)),
        patch_size=vision["patch_size"],
        image_size=vision["image_size"],
        output_dim=cfg["embed_dim"],
    )


# Our backbone names -> open_clip model configs; `tiny` keeps the same code path for CPU tests.
OPEN_CLIP_NAMES = {"vit-b-16": "ViT-B-16", "vit-b-32": "ViT-B-32", "vit-l-14": "ViT-L-14"}
TINY = VisionConfig(64, 4, 4, 256, 16, 224, 64)


BACKBONES: dict[str, VisionConfig] = {
    "tiny": TINY,
    **{name: _open_clip_config(oc_name) for name, oc_name in OPEN_CLIP_NAMES.items()},
}
ACTIVATIONS = ("quickgelu", "gelu")


def backbone_key(name: str) -> str:
    """A backbone name as the tables here spell it (``ViT_L_14`` -> ``vit-l-14``)."""
    return name.lower().replace("_", "-")


def open_clip_arch(name: str) -> str | None:
    """open_clip's model name of a backbone (``ViT-L-14``); None for ``tiny`` and timm."""
    return OPEN_CLIP_NAMES.get(backbone_key(name))


def architecture_name(name: str) -> str:
    """open_clip's name of a backbone (``ViT-L-14``), or the backbone itself (``tiny``)."""
    return open_clip_arch(name) or name
