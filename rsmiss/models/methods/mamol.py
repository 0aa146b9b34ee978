"""`mamol`: Missing-aware Mixture of LoRA experts in the FFN of the chosen blocks.

`mamol_ffn` is the same method with `expert_site=ffn` (our extension, not in the paper): the
same routing, its experts as LoRA pairs on the frozen FFN's two linears instead of beside
the FFN (see `rsmiss.models.adapters.mamol`).
"""

from __future__ import annotations

from typing import Any

from rsmiss.errors import ConfigError
from rsmiss.models.adapters.mamol import (
    EXPERT_SITES,
    MaMOLAdapter,
    MaMOLConfig,
    MaMOLFFNAdapter,
)
from rsmiss.models.injection import inject_ffn_adapters, select_blocks
from rsmiss.models.methods import COMMON_OPTIONS, EXPERT_OPTIONS, default_layers
from rsmiss.models.registry import MethodSpec, Option, register


def attach(model: Any, options: dict[str, Any]) -> None:
    tower = model.backbone
    if options["layers"] is None:
        options["layers"] = default_layers(tower.cfg.layers)
    if not 1 <= options["top_k"] <= options["experts"]:
        raise ConfigError(f"option top_k={options['top_k']} must be between 1 and experts")
    cfg = MaMOLConfig(**{k: options[k] for k in MaMOLConfig.__dataclass_fields__ if k in options})
    blocks = select_blocks(tower.cfg.layers, options["placement"], options["layers"])
    n_mod, width = len(model.modalities), tower.cfg.width
    if cfg.expert_site == "ffn":
        mlp_width = tower.cfg.mlp_width
        make = lambda _i: MaMOLFFNAdapter(width, mlp_width, n_mod, model.n_patterns, cfg)  # noqa: E731
    else:
        make = lambda _i: MaMOLAdapter(width, n_mod, model.n_patterns, cfg)  # noqa: E731
    inject_ffn_adapters(tower, blocks, make)


def _options(site: str) -> dict[str, Option]:
    return {
        **COMMON_OPTIONS,
        **EXPERT_OPTIONS,
        "top_k": Option(int, 1, help="dynamic experts per token", minimum=1, maximum="experts"),
        "no_dynamic": Option(bool, False, help="ablation: drop the dynamic pattern experts"),
        "no_static": Option(bool, False, help="ablation: drop all static experts"),
        "no_modality_specific": Option(bool, False, help="ablation: keep only the shared expert"),
        "static_mode": Option(
            str, "sample", ("sample", "pass"), "modality experts on by sample availability or pass"
        ),
        "router_hidden": Option(int, 64, help="hidden width of the router MLP f_t", minimum=1),
        "pattern_dim": Option(int, 32, help="size of the missing-pattern embedding", minimum=1),
        "alpha": Option(
            float,
            None,
            help="LoRA alpha of every expert (scaling alpha / rank; default: the rank)",
            minimum=0,
            exclusive_minimum=True,
        ),
        "expert_site": Option(
            str, site, EXPERT_SITES, "experts beside the FFN (parallel) or LoRA on its linears"
        ),
    }


OPTIONS = _options("parallel")
register(MethodSpec("mamol", attach, OPTIONS, "MaMOL: dynamic + static LoRA experts"))
register(
    MethodSpec(
        "mamol_ffn",
        attach,
        _options("ffn"),
        "MaMOL's routing, its experts as LoRA on the FFN's linears (rsmiss extension)",
    )
)
