"""`moe_task`: MOELoRA, a dense gate from the missing pattern over LoRA slices."""

from __future__ import annotations

from typing import Any

from rsmiss.models.adapters.moe import TaskMoE
from rsmiss.models.injection import inject_ffn_adapters
from rsmiss.models.methods import COMMON_OPTIONS, EXPERT_OPTIONS, MethodSpec, register
from rsmiss.models.methods._moe import chosen_blocks


def attach(model: Any, options: dict[str, Any]) -> None:
    width = model.backbone.cfg.width
    blocks = chosen_blocks(model, options, top_k=False)
    inject_ffn_adapters(
        model.backbone,
        blocks,
        lambda _i: TaskMoE(width, model.n_patterns, options["experts"], options["rank"]),
    )


OPTIONS = {**COMMON_OPTIONS, **EXPERT_OPTIONS}
register(MethodSpec("moe_task", attach, OPTIONS, "pattern-gated LoRA slices (MOELoRA)"))
