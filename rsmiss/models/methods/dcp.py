"""`dcp`: deep correlated prompts (Hu et al., NeurIPS 2024), length 36, depth 6."""

from __future__ import annotations

from typing import Any

from rsmiss.models.adapters.prompts import CorrelatedPrompts
from rsmiss.models.methods import COMMON_OPTIONS, PROMPT_OPTIONS
from rsmiss.models.methods.mmp import prompt_depth
from rsmiss.models.registry import MethodSpec, Option, register


def attach(model: Any, options: dict[str, Any]) -> None:
    depth = prompt_depth(model, options)
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
    "prompt_length": Option(
        int, 36, help="prompt tokens per block, split over the 3 prompt kinds", minimum=3
    ),
    "prompt_hidden": Option(int, 64, help="hidden width of the prompt-generating MLPs", minimum=1),
}
register(MethodSpec("dcp", attach, OPTIONS, "correlated + dynamic + modal-common prompts"))
