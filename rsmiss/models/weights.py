"""Backbone weights files: reading every accepted format, loading into a tower, provenance.

Accepted: a state dict (.pt/.pth/.bin, full CLIP or bare visual), safetensors (``rsmiss
pretrain`` writes these, with its provenance in the metadata), an open_clip ``local-dir:``
folder, or OpenAI's TorchScript ``.pt``. The format also tells the activation when it can
(OpenAI = QuickGELU, an open_clip config says so). Nothing is downloaded here.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import DataError
from rsmiss.models.tower import VisionTower
from rsmiss.workspace import file_sha256

PRETRAIN_FORMAT = "rsmiss-pretrain-1"  # safetensors metadata of `rsmiss pretrain` weights


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """Tensors of one weights file, plus the activation the format implies (None: unknown)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        meta = pretrained_summary(path) or {}  # rsmiss pretrain records its activation
        return load_file(str(path), device="cpu"), meta.get("activation")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            torchscript = any("/code/" in n or n.startswith("code/") for n in zf.namelist())
        if torchscript:  # OpenAI's ViT-B-16.pt: a TorchScript archive; OpenAI CLIP = QuickGELU
            with warnings.catch_warnings():  # jit.load is deprecated, OpenAI's file is not
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
            return {k: v.float() for k, v in module.state_dict().items()}, "quickgelu"
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise DataError(
            "is not a state dict; pass a .pt/.bin/.safetensors state dict", source=str(path)
        )
    return obj, None


def _resolve_weights_file(path: Path) -> tuple[Path, str | None, dict[str, Any] | None]:
    """Weights file, activation from an open_clip config, and that config's vision_cfg."""
    if not path.is_dir():
        return path, None, None
    cfg_file = path / "open_clip_config.json"
    candidates = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors"]
    found = [path / c for c in candidates if (path / c).is_file()]
    if not cfg_file.is_file() or not found:
        raise DataError(
            "is not an open_clip local-dir folder; it needs open_clip_config.json and "
            "open_clip_model.safetensors (or open_clip_pytorch_model.bin)",
            source=str(path),
        )
    model_cfg = json.loads(cfg_file.read_text()).get("model_cfg", {})
    activation = "quickgelu" if model_cfg.get("quick_gelu") else "gelu"
    return found[0], activation, model_cfg.get("vision_cfg")


def read_backbone_weights(spec: str | Path) -> tuple[dict[str, torch.Tensor], str | None, str]:
    """Visual-tower state dict, implied activation and sha256 of one weights source.

    Accepts a state dict (.pt/.pth/.bin, full CLIP or bare visual), safetensors, an open_clip
    `local-dir:` folder, or OpenAI's TorchScript `.pt`. Nothing is downloaded here: a tag is
    resolved to a file first (`rsmiss.models.pretrained`).
    """
    text = str(spec)
    path = Path(text.removeprefix("local-dir:")).expanduser()
    if not path.exists():
        raise DataError(
            "does not exist; pass --backbone-weights PATH (state dict, .safetensors, open_clip "
            "local-dir folder or OpenAI ViT-B-16.pt) or random_init=True",
            source=text,
        )
    weights_file, activation, _ = _resolve_weights_file(path)
    try:
        tensors, implied = _read_tensors(weights_file)
    except DataError:
        raise
    except Exception as exc:  # corrupt / unknown format: one line naming the file
        raise DataError(
            f"cannot be read as backbone weights ({type(exc).__name__}: {exc})"[:300],
            source=str(weights_file),
        ) from exc
    tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    if any(k.startswith("visual.") for k in tensors):
        tensors = {k[7:]: v for k, v in tensors.items() if k.startswith("visual.")}
    if activation is None and implied is None:  # a file fetched by tag says it by its name
        from rsmiss.models.pretrained import tag_activation  # loads the download stage: lazily

        implied = tag_activation(weights_file)
    return tensors, activation or implied, file_sha256(weights_file)


def state_differences(own: dict[str, tuple], given: dict[str, tuple]) -> list[str]:
    """The first missing keys, unexpected keys and shape mismatches of a state dict."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    shapes = [f"{k} {given[k]} != {v}" for k, v in own.items() if k in given and given[k] != v]
    parts = []
    if missing:
        parts.append(f"missing keys {missing[:3]}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:3]}")
    if shapes:
        parts.append(f"shape mismatch {shapes[:3]}")
    return parts


def load_visual_state(tower: VisionTower, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Strict load; a different architecture is a DataError naming the first bad keys."""
    own = {k: tuple(v.shape) for k, v in tower.state_dict().items() if ".ffn_adapter." not in k}
    parts = state_differences(own, {k: tuple(v.shape) for k, v in tensors.items()})
    if parts:
        raise DataError(
            f"does not match the {tower.cfg} backbone: {'; '.join(parts)}; pass weights of "
            "the same architecture or choose the matching --backbone",
            source=source,
        )
    result = tower.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    assert not result.unexpected_keys  # checked above; only adapter keys may be absent


def load_backbone_weights(tower: VisionTower, spec: str | Path) -> tuple[str | None, str]:
    """Load a weights source into `tower`; returns (implied activation, sha256)."""
    tensors, activation, digest = read_backbone_weights(spec)
    load_visual_state(tower, tensors, str(spec))
    return activation, digest


def pretrained_summary(weights: str | Path) -> dict[str, str] | None:
    """The provenance a ``rsmiss pretrain`` file carries in its metadata (None otherwise)."""
    path = Path(str(weights))
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - not ours / unreadable: no provenance to show
        return None
    try:
        summary = json.loads(meta.get(PRETRAIN_FORMAT, ""))
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None


def describe_weights(weights: str | Path | None) -> str:
    """One phrase for reports: how the frozen encoder was obtained."""
    if weights is None:
        return "random init"
    meta = pretrained_summary(weights)
    if meta is None:
        return "pretrained weights"
    return f"pretrained by rsmiss pretrain ({meta['objective']}, {meta['source']})"
