"""The method registry: what a method declares (typed options, an attach step) and the table of
registered methods.

It sits below both its users: method modules register into it, `rsmiss.models.factory` reads
it to build, `rsmiss methods` reads it to describe; neither imports the other through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Option:
    """One `--set KEY=VALUE` option of a method.

    `default` None means "resolved when the model is built" (from the backbone's depth or
    the weights); `help` says what that resolution is. `minimum` (inclusive, or exclusive
    with `exclusive_minimum`) is checked when the value is read; `maximum` names what bounds
    the value from above when that depends on other options or on the backbone ("experts",
    "the backbone's depth"), which the method's attach step checks.
    """

    type: type
    default: Any
    choices: tuple | None = None
    help: str = ""
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: str | None = None

    def allowed(self) -> str:
        """The accepted values in words (``last | first``, ``>= 1, <= experts``); "" if any."""
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true | false"
        if self.minimum is None:
            return f"<= {self.maximum}" if self.maximum else ""
        low = f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        return f"{low}, <= {self.maximum}" if self.maximum else low

    def below_minimum(self, value: Any) -> bool:
        """Whether a number of this option's type lies under its minimum."""
        if self.minimum is None or not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return value <= self.minimum if self.exclusive_minimum else value < self.minimum


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its options and the step that attaches its trainable parts."""

    name: str
    attach: Callable[[Any, dict[str, Any]], None]
    options: dict[str, Option] = field(default_factory=dict)
    summary: str = ""


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add `spec` to `METHODS` (each method module calls this once, on import)."""
    METHODS[spec.name] = spec
    return spec
