"""One factory for every method: validate, build the frozen tower, attach the method.

Options arrive as plain keys, possibly as strings from the CLI (`--set experts=5`), so each
is coerced to its declared type here; an unknown method or key, or a bad value, is a
ConfigError naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsmiss.errors import ConfigError
from rsmiss.models.backbone import build_backbone
from rsmiss.models.classifier import MultimodalClassifier
from rsmiss.models.methods import load_methods
from rsmiss.models.registry import METHODS, MethodSpec, Option

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def get_method(method: str) -> MethodSpec:
    """The registered method `method`; a ConfigError listing the known ones otherwise."""
    load_methods()
    if method not in METHODS:
        raise ConfigError(f"method {method!r} is not known; choose one of {sorted(METHODS)}")
    return METHODS[method]


def coerce(method: str, key: str, value: Any, opt: Option) -> Any:
    """Value of one option in its declared type (strings from the CLI included)."""
    bad = ConfigError(
        f"option {key}={value!r} of method {method!r} must be {opt.type.__name__}"
        + (f" in {list(opt.choices)}" if opt.choices else "")
        + (f" {opt.allowed()}" if opt.minimum is not None else "")
    )
    if value is None:
        if opt.default is None:
            return None
        raise bad
    if opt.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise bad
    if opt.type is int:
        if isinstance(value, bool):
            raise bad
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise bad
            value = int(number)
        except (TypeError, ValueError):
            raise bad from None
    elif opt.type is float:
        if isinstance(value, bool):
            raise bad
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise bad from None
    elif opt.type is str:
        if not isinstance(value, str):
            raise bad
        value = value.strip().lower()
    if (opt.choices and value not in opt.choices) or opt.below_minimum(value):
        raise bad
    return value


def resolve_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Every option of `method`: the given ones coerced and checked, defaults for the rest."""
    spec = get_method(method)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ConfigError(
            f"option(s) {unknown} not known for method {method!r}; known: {sorted(spec.options)}"
        )
    resolved = {k: opt.default for k, opt in spec.options.items()}
    for key, value in options.items():
        resolved[key] = coerce(method, key, value, spec.options[key])
    return resolved


def _check_modalities(modalities: dict[str, int]) -> dict[str, int]:
    if not isinstance(modalities, dict) or not modalities:
        raise ConfigError("modalities must be a non-empty mapping {name: channels}")
    out = {}
    for name, channels in modalities.items():
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"modality {name!r} has channels={channels!r}; need an int >= 1")
        out[str(name)] = int(channels)
    return out


def build_model(
    method: str,
    n_classes: int,
    modalities: dict[str, int],
    backbone: str = "vit-b-16",
    backbone_weights: str | Path | None = None,
    random_init: bool = False,
    patch_size: int = 14,
    **options: Any,
) -> MultimodalClassifier:
    """Build `method` on a frozen CLIP tower (the contract: docs/design.md, "Model contract")."""
    spec = get_method(method)
    opts = resolve_options(method, options)
    modalities = _check_modalities(modalities)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ConfigError(f"n_classes={n_classes!r} must be an int >= 2")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ConfigError(f"patch_size={patch_size!r} must be an int >= 1")
    if backbone_weights is not None and random_init:
        raise ConfigError("pass either backbone weights or random_init=True, not both")
    tower, record = build_backbone(backbone, backbone_weights, random_init, opts["activation"])
    opts["activation"] = record["activation"]
    model = MultimodalClassifier(tower, modalities, n_classes, patch_size)
    spec.attach(model, opts)
    model.config = {
        "method": method,
        "n_classes": n_classes,
        "modalities": modalities,
        "patch_size": patch_size,
        "options": dict(sorted(opts.items())),
        **record,
    }
    return model


_ACCEPTED: set[str] = set()  # (method, options, backbone) that check_options has built


def check_options(method: str, options: dict[str, Any], backbone: str = "vit-b-16") -> None:
    """Raise the ConfigError that building ``method`` with ``options`` on ``backbone`` would.

    The model is built on the meta device (no memory, about 60 ms for ViT-B/16), so every
    value the method rejects (a rank of 0, top_k above experts, more layers than the
    backbone has) is caught before a plan is printed or a cube is ingested. An accepted
    combination is remembered: a benchmark checks it once, not once per cell and again
    when each cell is planned.
    """
    import json

    import torch

    key = json.dumps([method, options, backbone], sort_keys=True, default=str)
    if key in _ACCEPTED:
        return
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        build_model(method, 2, {"probe": 1}, backbone=backbone, random_init=True, **options)
    _ACCEPTED.add(key)
