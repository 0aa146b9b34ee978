"""Models: frozen CLIP ViT + per-modality token projections + MaMOL or a baseline.

`build_model(method, n_classes, modalities, ...)` is the one entry point; `METHODS` maps a
method name to its registered `MethodSpec` (options with types, defaults and help);
`OPTION_KEYS` lists each method's option keys.
"""

from __future__ import annotations

from rsmiss.models.backbone import BACKBONES, load_backbone_weights
from rsmiss.models.classifier import ModelOutput, MultimodalClassifier
from rsmiss.models.factory import build_model
from rsmiss.models.methods import load_methods
from rsmiss.models.registry import METHODS

load_methods()
OPTION_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(sorted(spec.options)) for name, spec in sorted(METHODS.items())
}

__all__ = [
    "BACKBONES",
    "METHODS",
    "OPTION_KEYS",
    "ModelOutput",
    "MultimodalClassifier",
    "build_model",
    "load_backbone_weights",
]
