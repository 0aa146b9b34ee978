"""`baseline`: frozen backbone, trainable tokenizers and head only (no experts, no prompts)."""

from __future__ import annotations

from typing import Any

from rsmiss.models.methods import COMMON_OPTIONS
from rsmiss.models.registry import MethodSpec, register


def attach(model: Any, options: dict[str, Any]) -> None:
    """Nothing to add: the shared classifier is the baseline."""


register(MethodSpec("baseline", attach, dict(COMMON_OPTIONS), "frozen backbone + head"))
