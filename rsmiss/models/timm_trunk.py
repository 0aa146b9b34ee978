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
approximately. Their weights (``torchgeo:`` tags) are fetched by ``rsmiss.models.pretrained``.
"""

from __future__ import annotations

import functools
import re

import torch

from rsmiss.errors import ConfigError, DataError
from rsmiss.models.architectures import VisionConfig

PREFIX = "timm:"
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
def trunk_info(name: str) -> tuple[VisionConfig, str, float]:
    """(VisionConfig, activation, LayerNorm eps) of a timm ViT trunk; refuses misfits."""
    from timm.models.vision_transformer import VisionTransformer

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
