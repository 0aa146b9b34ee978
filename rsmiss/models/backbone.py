"""Frozen CLIP vision tower (open_clip's `VisionTransformer`) and the one weight-loading path.

The tower IS open_clip's module — built from open_clip's own model configs, so its state-dict
keys are open_clip's `visual.*` keys and weights load with strict matching. rsmiss adds only
what the adapters need: a pass context threaded through the blocks (`run_block`), token
embedding for P x P pixel patches (`embed`, with interpolated position embeddings) and the
pooled feature (`pool`). The blocks' attention runs `scaled_dot_product_attention` directly
on `nn.MultiheadAttention`'s weights (`self_attention`: flash / memory-efficient kernels on
GPU, no sequence-first copies under autograd).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip import get_model_config
from open_clip.transformer import LayerNorm, QuickGELU, VisionTransformer
from torch import nn

from rsmiss.errors import ConfigError, DataError
from rsmiss.workspace import file_sha256


@dataclass(frozen=True)
class VisionConfig:
    """Architecture of a CLIP ViT vision tower (open_clip's `vision_cfg` fields)."""

    width: int
    layers: int
    heads: int
    mlp_width: int
    patch_size: int
    image_size: int
    output_dim: int

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


def _open_clip_config(name: str) -> VisionConfig:
    """A vision config read from open_clip's packaged model config (configs are data)."""
    cfg = get_model_config(name)
    vision = cfg["vision_cfg"]
    width = vision["width"]
    head_width = vision.get("head_width", 64)
    return VisionConfig(
        width=width,
        layers=vision["layers"],
        heads=width // head_width,
        mlp_width=int(width * vision.get("mlp_ratio", 4.0)),
        patch_size=vision["patch_size"],
        image_size=vision["image_size"],
        output_dim=cfg["embed_dim"],
    )


# Our backbone names -> open_clip model configs; `tiny` keeps the same code path for CPU tests.
OPEN_CLIP_NAMES = {"vit-b-16": "ViT-B-16", "vit-b-32": "ViT-B-32", "vit-l-14": "ViT-L-14"}
TINY = VisionConfig(64, 4, 4, 256, 16, 224, 64)


BACKBONES: dict[str, VisionConfig] = {
    "tiny": TINY,
    **{name: _open_clip_config(oc_name) for name, oc_name in OPEN_CLIP_NAMES.items()},
}
ACTIVATIONS = ("quickgelu", "gelu")
RANDOM_INIT_SEED = 0  # the random-init tower must be identical in every process (checkpoints)
PRETRAIN_FORMAT = "rsmiss-pretrain-1"  # safetensors metadata of `rsmiss pretrain` weights


def self_attention(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """open_clip's batch-first, unmasked `nn.MultiheadAttention(x, x, x)`, on its own weights.

    Calls `scaled_dot_product_attention` directly on a (B, heads, N, hd) view of ONE fused
    qkv projection: under autograd `nn.MultiheadAttention` leaves its fused fast path and
    goes through `F.multi_head_attention_forward` (sequence-first transposes and copies),
    2.8x slower per fwd+bwd on the CPU at ViT-B width; the result is the same (exact in fp32).
    """
    b, n, d = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(b, n, 3, heads, d // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v)
    return F.linear(out.transpose(1, 2).reshape(b, n, d), attn.out_proj.weight, attn.out_proj.bias)


def run_block(block: nn.Module, x: torch.Tensor, ctx: Any = None) -> torch.Tensor:
    """One open_clip `ResidualAttentionBlock`, with its FFN adapter when one is injected.

    `ffn_adapter`, when set by an injection, owns the FFN output: it receives `z = ln_2(x)`,
    the frozen `mlp` and the pass context, and returns `mlp(z) + delta(z)`.
    """
    x = x + block.ls_1(self_attention(block.attn, block.ln_1(x)))
    z = block.ln_2(x)
    adapter = block.ffn_adapter
    if adapter is None or ctx is None:  # no pass context: the frozen block
        return x + block.ls_2(block.mlp(z))
    return x + block.ls_2(adapter(z, block.mlp, ctx))


class VisionTower(VisionTransformer):
    """open_clip's CLIP ViT visual tower; keys are open_clip's `visual.*` state dict."""

    def __init__(self, cfg: VisionConfig, activation: str = "quickgelu", init: bool = True) -> None:
        if activation not in ACTIVATIONS:
            raise ConfigError(f"option activation={activation!r} is not one of {ACTIVATIONS}")
        super().__init__(
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            width=cfg.width,
            layers=cfg.layers,
            heads=cfg.heads,
            mlp_ratio=cfg.mlp_width / cfg.width,
            output_dim=cfg.output_dim,
            act_layer=QuickGELU if activation == "quickgelu" else nn.GELU,
            norm_layer=LayerNorm,
        )
        self.cfg = cfg
        self.activation = activation
        for block in self.transformer.resblocks:
            block.ffn_adapter = None  # set by rsmiss.models.injection
        if init:  # skipped when weights are loaded right after
            self.random_init()

    @torch.no_grad()
    def random_init(self) -> None:
        """Deterministic random weights (seeded), so a random-init run can be reloaded."""
        g = torch.Generator().manual_seed(RANDOM_INIT_SEED)
        scale = self.cfg.width**-0.5
        for name, p in self.named_parameters():
            if "ln_" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                fan_in = p.shape[-1] if p.dim() == 2 else p[0].numel()
                std = scale if name in ("class_embedding", "positional_embedding") else None
                std = std or (scale if name == "proj" else fan_in**-0.5)
                p.copy_(torch.randn(p.shape, generator=g) * std)

    def positions(self, grid: int) -> torch.Tensor:
        """Position embeddings for a `grid x grid` token grid (bicubic when it differs)."""
        pos = self.positional_embedding
        if grid == self.cfg.grid:
            return pos
        return _interpolated_positions(pos, self.cfg.grid, grid)

    def embed(self, tokens: torch.Tensor, grid: int) -> torch.Tensor:
        """(B, grid², width) patch tokens -> class token + positions + ln_pre."""
        cls = self.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.positions(grid).to(tokens.dtype)
        return self.ln_pre(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Class token -> ln_post -> proj (the CLIP image feature)."""
        return self.ln_post(x[:, 0]) @ self.proj

    def forward_blocks(self, x: torch.Tensor, ctx: Any = None, prompter: Any = None):
        for i, block in enumerate(self.transformer.resblocks):
            prompts = prompter(i, x, ctx) if prompter is not None else None
            if prompts is None:
                x = run_block(block, x, ctx)
            else:  # deep prompts: [cls, prompts, tokens] for this block, dropped after it
                n = prompts.shape[1]
                y = run_block(block, torch.cat([x[:, :1], prompts.to(x.dtype), x[:, 1:]], 1), ctx)
                x = torch.cat([y[:, :1], y[:, 1 + n :]], dim=1)
        return x

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """The CLIP image feature through our block path (checked against open_clip's)."""
        tokens = self.conv1(images).flatten(2).transpose(1, 2)
        return self.pool(self.forward_blocks(self.embed(tokens, self.cfg.grid)))


def _interpolated_positions(pos: torch.Tensor, g0: int, grid: int) -> torch.Tensor:
    spatial = pos[1:].reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
    spatial = F.interpolate(spatial, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], spatial.permute(0, 2, 3, 1).reshape(grid * grid, -1)])


def backbone_key(name: str) -> str:
    """A backbone name as the tables here spell it (``ViT_L_14`` -> ``vit-l-14``)."""
    return name.lower().replace("_", "-")


def open_clip_arch(name: str) -> str | None:
    """open_clip's model name of a backbone (``ViT-L-14``); None for ``tiny`` and timm."""
    return OPEN_CLIP_NAMES.get(backbone_key(name))


def backbone_config(name: str) -> VisionConfig:
    from rsmiss.models.timm_trunk import is_timm, trunk_info

    if is_timm(name):
        return trunk_info(name)[0]
    key = backbone_key(name)
    if key not in BACKBONES:
        raise ConfigError(
            f"backbone {name!r} is not known; choose one of {sorted(BACKBONES)} or a timm ViT "
            "as timm:<name>"
        )
    return BACKBONES[key]


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
        from rsmiss.models.pretrained import tag_activation

        implied = tag_activation(weights_file)
    return tensors, activation or implied, file_sha256(weights_file)


def _differences(own: dict[str, tuple], given: dict[str, tuple]) -> list[str]:
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
    parts = _differences(own, {k: tuple(v.shape) for k, v in tensors.items()})
    if parts:
        raise DataError(
            f"does not match the {tower.cfg} backbone: {'; '.join(parts)}; pass weights of "
            "the same architecture or choose the matching --backbone",
            source=source,
        )
    result = tower.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    assert not result.unexpected_keys  # checked above; only adapter keys may be absent


class WeightsMisfit(DataError):
    """A readable weights file of another architecture than the requested backbone."""


def _expected_shapes(cfg: VisionConfig) -> dict[str, tuple[int, ...]]:
    """The tower's state-dict shapes, built on the meta device: no memory, no init."""
    with torch.device("meta"):
        tower = VisionTower(cfg, init=False)
    return {k: tuple(v.shape) for k, v in tower.state_dict().items() if ".ffn_adapter." not in k}


def architecture_name(name: str) -> str:
    """open_clip's name of a backbone (``ViT-L-14``), or the backbone itself (``tiny``)."""
    return open_clip_arch(name) or name


def check_weights_fit(name: str, spec: str | Path, given_by: str = "--backbone-weights") -> None:
    """Refuse a weights file of another architecture before any run starts.

    The error names the file, the architecture its shapes match (when one of ours does)
    and the requested one. timm trunks are skipped: their keys are remapped on load, which
    checks them.
    """
    from rsmiss.models.timm_trunk import is_timm

    if is_timm(name):
        return
    tensors, _, _ = read_backbone_weights(spec)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    parts = _differences(_expected_shapes(backbone_config(name)), shapes)
    if not parts:
        return
    found = next((b for b, cfg in BACKBONES.items() if shapes == _expected_shapes(cfg)), None)
    held = (
        f"{architecture_name(found)} weights"
        if found
        else f"weights of an unknown architecture ({'; '.join(parts)})"
    )
    hint = f"--backbone {found} or " if found else ""
    raise WeightsMisfit(
        f"({given_by}) holds {held}, not {architecture_name(name)} weights as --backbone "
        f"{name} needs; pass {hint}{architecture_name(name)} weights",
        source=str(spec),
    )


def load_backbone_weights(tower: VisionTower, spec: str | Path) -> tuple[str | None, str]:
    """Load a weights source into `tower`; returns (implied activation, sha256)."""
    tensors, activation, digest = read_backbone_weights(spec)
    load_visual_state(tower, tensors, str(spec))
    return activation, digest


def build_backbone(
    name: str,
    weights: str | Path | None = None,
    random_init: bool = False,
    activation: str | None = None,
) -> tuple[VisionTower, dict[str, Any]]:
    """Frozen tower + its provenance record (the QuickGELU decision is made here).

    Activation: explicit option, else what the weights format says (OpenAI TorchScript and
    open_clip configs say it), else QuickGELU (OpenAI CLIP, the paper's weights).
    """
    cfg = backbone_config(name)
    if weights is None and not random_init:
        raise ConfigError(
            "no backbone weights: pass --backbone-weights PATH (or $RSMISS_BACKBONE_WEIGHTS) "
            "or random_init=True for a randomly initialised backbone"
        )
    from rsmiss.models.timm_trunk import adapt_tower, is_timm, trunk_info, trunk_state

    trunk = is_timm(name)
    tensors, implied, digest = (None, None, "random-init")
    if weights is not None:
        tensors, implied, digest = read_backbone_weights(weights)
    resolved = activation or implied or (trunk_info(name)[1] if trunk else "quickgelu")
    tower = VisionTower(cfg, resolved, init=tensors is None or trunk)
    if trunk:
        adapt_tower(tower, name)
    if tensors is not None:
        if trunk:
            tensors = trunk_state(tower, tensors, str(weights))
        load_visual_state(tower, tensors, str(weights))
    for p in tower.parameters():
        p.requires_grad_(False)
    tower.eval()
    record = {
        "backbone": name,
        "backbone_config": asdict(cfg),
        "backbone_weights": None if weights is None else str(weights),
        "backbone_hash": digest,
        "random_init": weights is None,
        "activation": resolved,
    }
    return tower, record


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
