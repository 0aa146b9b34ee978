"""`dcp`: deep correlated prompts (Hu et al., NeurIPS 2024), length 36, depth 6."""

from __future__ import annotations

from typing import Any

from rsmiss.errors import ConfigError
from rsmiss.models.adapters.prompts import CorrelatedPrompts
from rsmiss.models.methods import COMMON_OPTIONS, PROMPT_OPTIONS, MethodSpec, Option, register
from rsmiss.models.methods.mmp import prompt_depth


def attach(model: Any, options: dict[str, Any]) -> None:
    depth = prompt_depth(model, options)
    if options["prompt_length"] < 3:
        raise ConfigError("option prompt_length must be at least 3 for dcp (three prompt kinds)")
    model.prompter = CorrelatedPrompts(
        model.n_patterns,
        len(model.modalities),
        depth,
        options["prompt_length"],
        model.backbone.cfg.width,
        options["prompt_hidden"],
    )


OPTIONS = {
    **COMMON_OPTIONS,
    **PROMPT_OPTIONS,
    "prompt_length": Option(int, 36, None, "prompt tokens per block (split over 3 kinds)"),
    "prompt_hidden": Option(int, 64, None, "hidden width of the prompt-generating MLPs"),
}
register(MethodSpec("dcp", attach, OPTIONS, "correlated + dynamic + modal-common prompts"))
