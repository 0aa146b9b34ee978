"""Where adapters go: pick blocks by placement, wrap their FFNs (peft's injection step).

The adapter never knows where it sits; this module never knows what an adapter computes.
Placement ``first`` puts the adapters in the first `layers` blocks, ``last`` in the last ones.
Table 4 of the paper calls them "Head" and "Last": "Head (6x2)" = first 6 blocks, 2 experts;
"Last (6x2)" = last 6 blocks; "Last (2x5)" = last 2 blocks, 5 experts.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rsmiss.errors import ConfigError
from rsmiss.models.tower import VisionTower

PLACEMENTS = ("last", "first")


def select_blocks(depth: int, placement: str, layers: int) -> list[int]:
    """Indices of the `layers` first or last blocks of a `depth`-block tower."""
    if placement not in PLACEMENTS:
        raise ConfigError(f"option placement={placement!r} is not one of {PLACEMENTS}")
    if not 1 <= layers <= depth:
        raise ConfigError(f"option layers={layers} must be between 1 and the depth {depth}")
    return list(range(layers)) if placement == "first" else list(range(depth - layers, depth))


def inject_ffn_adapters(
    tower: VisionTower, blocks: list[int], make: Callable[[int], nn.Module]
) -> list[int]:
    """Give each chosen block an FFN adapter made by `make(block_index)`."""
    for i in blocks:
        block = tower.transformer.resblocks[i]
        if block.ffn_adapter is not None:
            raise ConfigError(f"block {i} already has an adapter")
        block.ffn_adapter = make(i)
    return blocks
