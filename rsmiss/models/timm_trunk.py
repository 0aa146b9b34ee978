"""timm ViT trunks (``--backbone timm:vit_small_patch16_224``) as frozen encoders.

Remote-sensing pretrained ViTs — torchgeo's SSL4EO Sentinel-2 / Landsat ViT-S/16 weights,
among others — are timm models. Our tokenizers replace their patch embedding, so only the
transformer trunk is taken: class token, position embeddings, the blocks and the final norm.
They are renamed into open_clip's ``VisionTransformer`` layout (``qkv`` is
``nn.MultiheadAttention``'s ``in_proj``, ``fc1``/``fc2`` are ``c_fc``/``c_proj``, ``norm`` is
``ln_post``), so the blocks run through the same ``run_block`` path and take the same adapters
as CLIP's. A timm ViT has no pre-norm and no output projection: ``ln_pre`` becomes the
identity and ``proj`` the identity matrix (the feature is the normed class token, as timm's
``token`` pooling gives it). A trunk that does not fit that shape (layer scale, register
tokens, q/k norms, a pre-norm, no class token) is refused in one line rather than loaded
approximately.

torchgeo's weight enums (``--backbone-weights torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO``)
name a URL whose file name carries the start of its sha256; ``torch.hub`` downloads it into
``ROOT/weights/`` and checks that hash. ``--mirror`` / ``$RSMISS_MIRROR`` redirect it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import ConfigError, DataError

PREFIX = "timm:"
WEIGHTS_PREFIX = "torchgeo:"
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_BLOCK_KEYS = {
    "norm1": "ln_1",
    "attn.qkv": "attn.in_proj_",
    "attn.proj": "attn.out_proj",
    "norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_SKIPPED = ("patch_embed.", "head.", "head_drop.")  # replaced by our tokenizers / not used


def is_timm(name: str) -> bool:
    return name.lower().startswith(PREFIX)


def _timm_model(name: str):
    import timm

    model_name = name[len(PREFIX) :]
    try:
        return timm.create_model(model_name, pretrained=False, num_classes=0)
    except Exception as exc:  # noqa: BLE001 - unknown name, unsupported kwargs
        raise ConfigError(
            f"--backbone {name}: timm cannot build {model_name!r} ({type(exc).__name__}); give "
            "a timm ViT name such as timm:vit_small_patch16_224"
        ) from None


def _refuse(name: str, why: str) -> ConfigError:
    return ConfigError(
        f"--backbone {name}: its trunk does not fit ({why}); only plain timm ViTs (class "
        "token, no pre-norm, no layer scale, register tokens or q/k norms) can take our tokens"
    )


@functools.lru_cache(maxsize=8)
def trunk_info(name: str) -> tuple[Any, str, float]:
    """(VisionConfig, activation, LayerNorm eps) of a timm ViT trunk; refuses misfits."""
    from timm.models.vision_transformer import VisionTransformer

    from rsmiss.models.backbone import VisionConfig

    model = _timm_model(name)
    if not isinstance(model, VisionTransformer):
        raise _refuse(name, f"{type(model).__name__} is not a timm VisionTransformer")
    keys = list(model.state_dict())
    unknown = [k for k in keys if _open_clip_key(k) is None and not k.startswith(_SKIPPED)]
    if model.cls_token is None:
        unknown.insert(0, "no class token")
    if unknown:
        raise _refuse(name, f"no counterpart for {', '.join(unknown[:3])}")
    block = model.blocks[0]
    act = type(block.mlp.act).__name__
    if act not in ("GELU", "QuickGELU"):
        raise _refuse(name, f"MLP activation {act}")
    grid = model.patch_embed.grid_size
    if grid[0] != grid[1] or model.pos_embed.shape[1] != 1 + grid[0] * grid[1]:
        raise _refuse(name, f"position embeddings {tuple(model.pos_embed.shape)} for {grid}")
    width = model.embed_dim
    cfg = VisionConfig(
        width=width,
        layers=len(model.blocks),
        heads=block.attn.num_heads,
        mlp_width=block.mlp.fc1.out_features,
        patch_size=model.patch_embed.patch_size[0],
        image_size=model.patch_embed.img_size[0],
        output_dim=width,
    )
    return cfg, "quickgelu" if act == "QuickGELU" else "gelu", float(model.norm.eps)


def adapt_tower(tower: torch.nn.Module, name: str) -> None:
    """The tower as timm computes: no pre-norm, timm's LayerNorm eps (1e-6, not CLIP's 1e-5)."""
    tower.ln_pre = torch.nn.Identity()
    eps = trunk_info(name)[2]
    for module in tower.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = eps


def _open_clip_key(key: str) -> str | None:
    if key == "cls_token":
        return "class_embedding"
    if key == "pos_embed":
        return "positional_embedding"
    if key.startswith("norm."):
        return "ln_post." + key[len("norm.") :]
    m = _BLOCK.match(key)
    if m is None:
        return None
    i, rest = m.groups()
    for theirs, ours in _BLOCK_KEYS.items():
        if rest.startswith(theirs + "."):
            leaf = rest[len(theirs) + 1 :]
            if ours.endswith("_"):  # qkv weight/bias -> in_proj_weight / in_proj_bias
                return f"transformer.resblocks.{i}.{ours}{leaf}"
            return f"transformer.resblocks.{i}.{ours}.{leaf}"
    return None


def is_timm_state(tensors: dict[str, torch.Tensor]) -> bool:
    return "cls_token" in tensors and any(k.startswith("blocks.") for k in tensors)


def trunk_state(
    tower: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """A timm checkpoint's trunk in the tower's keys; the tower's own patch embedding
    (unused: our tokenizers feed the blocks) and an identity projection complete it."""
    if not is_timm_state(tensors):
        raise DataError(
            "is not a timm ViT checkpoint (no cls_token / blocks.*); pass the weights of the "
            "timm model named by --backbone",
            source=source,
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        ours = _open_clip_key(key)
        if ours is None:
            if key.startswith(_SKIPPED):
                continue
            raise DataError(
                f"checkpoint key {key!r} has no place in a plain ViT trunk; pass weights of "
                "the timm model named by --backbone",
                source=source,
            )
        out[ours] = value.reshape(-1, value.shape[-1]) if key == "pos_embed" else value
    if "class_embedding" in out:
        out["class_embedding"] = out["class_embedding"].reshape(-1)
    own = tower.state_dict()
    out["conv1.weight"] = own["conv1.weight"]
    out["proj"] = torch.eye(own["proj"].shape[0], own["proj"].shape[1])
    for key in [k for k in own if k.endswith("attn.in_proj_bias")]:
        out.setdefault(key, torch.zeros_like(own[key]))  # timm ViTs without qkv bias
    return out


def fetch_torchgeo_weights(
    tag: str,
    backbone: str,
    *,
    root: str | os.PathLike[str] | None = None,
    mirrors: tuple[str, ...] | list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, str]:
    """(path, sha256) of a torchgeo weight enum's file in ROOT/weights/, fetched if absent."""
    import torchgeo.models as tgm

    from rsmiss.download.dataset import mirrored, resolve_mirrors
    from rsmiss.download.http import DownloadError
    from rsmiss.workspace import Workspace, file_sha256

    log = log or (lambda _msg: None)
    enum_name, _, member = tag[len(WEIGHTS_PREFIX) :].partition(".")
    enum = getattr(tgm, enum_name, None)
    weights = getattr(enum, member, None) if enum is not None and member else None
    if weights is None or not hasattr(weights, "url"):
        raise ConfigError(
            f"--backbone-weights {tag}: not a torchgeo weight enum member; give e.g. "
            "torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO"
        )
    model = weights.meta.get("model")
    if not is_timm(backbone) or backbone[len(PREFIX) :] != model:
        raise ConfigError(
            f"--backbone-weights {tag}: weights of timm:{model}, not of --backbone {backbone}; "
            f"pass --backbone timm:{model}"
        )
    ws = Workspace(root)
    dest = ws.weights / os.path.basename(weights.url)
    if dest.is_file():
        return dest, file_sha256(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in mirrored([weights.url], resolve_mirrors(mirrors)):
        log(f"{tag}: downloading from {url}")
        try:
            # torch.hub writes a temporary file, checks the hash in the file name, then renames.
            torch.hub.download_url_to_file(url, str(dest), hash_prefix=_hash_prefix(dest.name))
        except Exception as exc:  # noqa: BLE001 - urllib errors and torch.hub's hash check
            failures.append(f"{url}: {' '.join(str(exc).split())[:200]}")
            continue
        return dest, file_sha256(dest)
    raise DownloadError(
        f"cannot download {tag} ({'; '.join(failures)}); place {dest.name} (from "
        f"{weights.url}) at {dest} or pass --backbone-weights PATH",
        source=f"--backbone-weights {tag}",
    )


def _hash_prefix(file_name: str) -> str | None:
    m = re.search(r"-([a-f0-9]+)\.", file_name)  # torch.hub's convention: name-<sha256[:n]>.ext
    return m.group(1) if m else None
