"""`moe_rep`: replacement MoE (DeepSpeed-MoE style) in the chosen blocks' FFN."""

from __future__ import annotations

from typing import Any

from rsmiss.models.adapters.moe import ReplacementMoE
from rsmiss.models.injection import inject_ffn_adapters
from rsmiss.models.methods import COMMON_OPTIONS, EXPERT_OPTIONS
from rsmiss.models.methods._moe import chosen_blocks
from rsmiss.models.registry import MethodSpec, Option, register


def attach(model: Any, options: dict[str, Any]) -> None:
    cfg = model.backbone.cfg
    blocks = chosen_blocks(model, options)
    inject_ffn_adapters(
        model.backbone,
        blocks,
        lambda _i: ReplacementMoE(
            cfg.width,
            cfg.mlp_width,
            options["experts"],
            options["rank"],
            options["top_k"],
            options["aux_weight"],
        ),
    )


OPTIONS = {
    **COMMON_OPTIONS,
    **EXPERT_OPTIONS,
    "top_k": Option(int, 1, help="experts per token", minimum=1, maximum="experts"),
    "aux_weight": Option(float, 0.01, help="weight of the load-balancing loss", minimum=0),
}
register(MethodSpec("moe_rep", attach, OPTIONS, "FFN replaced by a top-k LoRA-expert MoE"))
