"""`moe_task`: MOELoRA, a dense gate from the missing pattern over LoRA slices."""

from __future__ import annotations

from typing import Any

from rsmiss.models.adapters.moe import TaskMoE
from rsmiss.models.injection import inject_ffn_adapters
from rsmiss.models.methods import COMMON_OPTIONS, EXPERT_OPTIONS
from rsmiss.models.methods._moe import chosen_blocks
from rsmiss.models.registry import MethodSpec, Option, register


def attach(model: Any, options: dict[str, Any]) -> None:
    width = model.backbone.cfg.width
    blocks = chosen_blocks(model, options, top_k=False)
    inject_ffn_adapters(
        model.backbone,
        blocks,
        lambda _i: TaskMoE(
            width,
            model.n_patterns,
            options["experts"],
            options["rank"],
            expert_rank=options["expert_rank"],
        ),
    )


OPTIONS = {
    **COMMON_OPTIONS,
    **EXPERT_OPTIONS,
    "expert_rank": Option(
        int,
        None,
        help="LoRA rank of each expert; default: MOELoRA slicing, rank // experts each",
        minimum=1,
    ),
}
register(MethodSpec("moe_task", attach, OPTIONS, "pattern-gated LoRA slices (MOELoRA)"))
