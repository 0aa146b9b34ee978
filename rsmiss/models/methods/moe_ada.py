"""`moe_ada`: noisy top-k router over LoRA adapter experts beside the frozen FFN."""

from __future__ import annotations

from typing import Any

from rsmiss.models.adapters.moe import AdapterMoE
from rsmiss.models.injection import inject_ffn_adapters
from rsmiss.models.methods import COMMON_OPTIONS, EXPERT_OPTIONS
from rsmiss.models.methods._moe import chosen_blocks
from rsmiss.models.registry import MethodSpec, Option, register


def attach(model: Any, options: dict[str, Any]) -> None:
    width = model.backbone.cfg.width
    blocks = chosen_blocks(model, options)
    inject_ffn_adapters(
        model.backbone,
        blocks,
        lambda _i: AdapterMoE(
            width, options["experts"], options["rank"], options["top_k"], options["aux_weight"]
        ),
    )


OPTIONS = {
    **COMMON_OPTIONS,
    **EXPERT_OPTIONS,
    "top_k": Option(int, 1, help="experts per token", minimum=1, maximum="experts"),
    "aux_weight": Option(float, 0.01, help="weight of the Mixtral load-balancing loss", minimum=0),
}
register(MethodSpec("moe_ada", attach, OPTIONS, "MoE-LoRA adapters, noisy top-k router"))
