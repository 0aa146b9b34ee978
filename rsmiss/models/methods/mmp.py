"""`mmp`: missing-aware prompts (Lee et al., CVPR 2023), length 16 in blocks 0-5."""

from __future__ import annotations

from typing import Any

from rsmiss.errors import ConfigError
from rsmiss.models.adapters.prompts import MissingAwarePrompts
from rsmiss.models.methods import COMMON_OPTIONS, PROMPT_OPTIONS, default_layers
from rsmiss.models.registry import MethodSpec, Option, register


def prompt_depth(model: Any, options: dict[str, Any]) -> int:
    """Blocks with prompts: the option, else 6 (at most half the depth); at most the depth."""
    depth = model.backbone.cfg.layers
    if options["prompt_depth"] is None:
        options["prompt_depth"] = min(6, default_layers(depth))  # 0-5 on ViT-B/16
    if not 1 <= options["prompt_depth"] <= depth:
        raise ConfigError(f"option prompt_depth must be between 1 and the depth {depth}")
    return options["prompt_depth"]


def attach(model: Any, options: dict[str, Any]) -> None:
    depth = prompt_depth(model, options)
    model.prompter = MissingAwarePrompts(
        model.n_patterns, depth, options["prompt_length"], model.backbone.cfg.width
    )


OPTIONS = {
    **COMMON_OPTIONS,
    **PROMPT_OPTIONS,
    "prompt_length": Option(int, 16, help="prompt tokens per block", minimum=1),
}
register(MethodSpec("mmp", attach, OPTIONS, "missing-aware prompts per pattern"))
