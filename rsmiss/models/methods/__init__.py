"""The method modules, each registering a `MethodSpec` in `rsmiss.models.registry` on import.

A new method is one new module listed in `METHOD_MODULES`: its options (typed, with
defaults) and an `attach(model, options)` that adds its adapters / prompts to the shared
classifier. `rsmiss.models.factory.build_model` does the rest. The option sets below are
shared so that every method with experts takes Table 4's placements the same way.
"""

from __future__ import annotations

import importlib

from rsmiss.models.architectures import ACTIVATIONS
from rsmiss.models.injection import PLACEMENTS
from rsmiss.models.registry import METHODS, MethodSpec, Option

METHOD_MODULES = ("baseline", "mamol", "mmp", "dcp", "moe_rep", "moe_ada", "moe_task")
DEPTH = "the backbone's depth"

COMMON_OPTIONS = {
    "activation": Option(
        str, None, ACTIVATIONS, "backbone activation; default from the weights, else quickgelu"
    ),
}
EXPERT_OPTIONS = {
    "placement": Option(
        str, "last", PLACEMENTS, "which blocks get experts: the last or the first `layers` blocks"
    ),
    "layers": Option(
        int,
        None,
        help="number of blocks with experts (default: half the depth)",
        minimum=1,
        maximum=DEPTH,
    ),
    "experts": Option(int, 2, help="experts per block", minimum=1),
    "rank": Option(int, 8, help="LoRA rank", minimum=1),
}
PROMPT_OPTIONS = {
    "prompt_depth": Option(
        int,
        None,
        help="blocks with prompts, from the first (default: 6, at most half the depth)",
        minimum=1,
        maximum=DEPTH,
    ),
}


def load_methods() -> dict[str, MethodSpec]:
    """Import every method module, so that each has registered itself in `METHODS`."""
    for name in METHOD_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return METHODS


def default_layers(depth: int) -> int:
    """Half the depth: the paper's "last 6" of ViT-B/16's 12 blocks; 2 of the tiny 4."""
    return max(1, depth // 2)
