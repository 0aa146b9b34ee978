"""Shared option handling of the three MoE baselines (same blocks as MaMOL by default)."""

from __future__ import annotations

from typing import Any

from rsmiss.errors import ConfigError
from rsmiss.models.injection import select_blocks
from rsmiss.models.methods import default_layers


def chosen_blocks(model: Any, options: dict[str, Any], top_k: bool = True) -> list[int]:
    """The blocks that get experts; `layers` resolved from the depth when not given."""
    tower = model.backbone
    if options["layers"] is None:
        options["layers"] = default_layers(tower.cfg.layers)
    if top_k and not 1 <= options["top_k"] <= options["experts"]:
        raise ConfigError(f"option top_k={options['top_k']} must be between 1 and experts")
    return select_blocks(tower.cfg.layers, options["placement"], options["layers"])
