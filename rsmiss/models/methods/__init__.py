"""Method registry: one module per method, each registering a `MethodSpec` on import.

A new method is one new module listed in `METHOD_MODULES`: its options (typed, with
defaults) and an `attach(model, options)` that adds its adapters / prompts to the shared
classifier. `rsmiss.models.factory.build_model` does the rest.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rsmiss.models.backbone import ACTIVATIONS

METHOD_MODULES = ("baseline", "mamol", "mmp", "dcp", "moe_rep", "moe_ada", "moe_task")


@dataclass(frozen=True)
class Option:
    """One `--set KEY=VALUE` option: type, default (None = resolved from the backbone)."""

    type: type
    default: Any
    choices: tuple | None = None
    help: str = ""


@dataclass(frozen=True)
class MethodSpec:
    name: str
    attach: Callable[[Any, dict[str, Any]], None]
    options: dict[str, Option] = field(default_factory=dict)
    summary: str = ""

    def __call__(self, n_classes: int, modalities: dict[str, int], **kwargs: Any):
        """The registry entry is a builder: METHODS["mamol"](15, {"hs": 144, "lidar": 1}, ...)."""
        from rsmiss.models.factory import build_model

        return build_model(self.name, n_classes, modalities, **kwargs)


METHODS: dict[str, MethodSpec] = {}

COMMON_OPTIONS = {
    "activation": Option(
        str, None, ACTIVATIONS, "backbone activation; default from the weights, else quickgelu"
    ),
}
EXPERT_OPTIONS = {
    "placement": Option(str, "last", ("last", "head"), "blocks with experts: last or first"),
    "layers": Option(int, None, None, "number of blocks with experts (default: half the depth)"),
    "experts": Option(int, 2, None, "experts per block"),
    "rank": Option(int, 8, None, "LoRA rank"),
}
PROMPT_OPTIONS = {
    "prompt_depth": Option(int, None, None, "blocks with prompts from the first (default: 6)"),
}


def register(spec: MethodSpec) -> MethodSpec:
    METHODS[spec.name] = spec
    return spec


def load_methods() -> dict[str, MethodSpec]:
    for name in METHOD_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return METHODS


def default_layers(depth: int) -> int:
    """Half the depth: the paper's "last 6" of ViT-B/16's 12 blocks; 2 of the tiny 4."""
    return max(1, depth // 2)
