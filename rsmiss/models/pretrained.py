"""Backbone weights by tag (``--backbone-weights openai``), fetched into ROOT/weights/.

open_clip's own registry says where each tag lives and its own download code fetches it:
tags with a URL (OpenAI's, whose URL carries the file's sha256, which open_clip checks) are
fetched from that URL; tags published on the Hugging Face Hub (``laion2b_s34b_b88k``, ...)
through ``huggingface_hub``. rsmiss adds only where the file ends up and what a failure says:
the download lands in ``ROOT/downloads/open_clip/`` and is moved to
``ROOT/weights/<Arch>-<tag><suffix>`` once open_clip returns it, so ``ROOT/weights/`` never
holds a partial file, and a cached file is used without touching the network.

Redirecting (tests, air-gapped sites): URL tags honour ``--mirror`` / ``$RSMISS_MIRROR``
(the same ``<host>/<path>`` layout as the dataset downloads); Hub tags honour
huggingface_hub's ``$HF_ENDPOINT`` (a Hub mirror) and ``$HF_HUB_OFFLINE``.

torchgeo's weight enums (``--backbone-weights torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO``,
for a ``timm:`` backbone) name a URL whose file name carries the start of its sha256;
``torch.hub`` downloads it into ``ROOT/weights/`` and checks that hash, honouring the same
mirrors.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from rsmiss.download.dataset import mirrored, resolve_mirrors
from rsmiss.download.http import DownloadError
from rsmiss.errors import ConfigError
from rsmiss.models.architectures import OPEN_CLIP_NAMES, open_clip_arch
from rsmiss.models.timm_trunk import PREFIX as TIMM_PREFIX
from rsmiss.models.timm_trunk import is_timm
from rsmiss.workspace import Workspace, atomic_path, file_sha256

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
TORCHGEO_PREFIX = "torchgeo:"


logger = logging.getLogger(__name__)


def open_clip_name(backbone: str) -> str:
    name = open_clip_arch(backbone)
    if name is None:
        raise ConfigError(
            f"--backbone {backbone}: pretrained tags exist only for {sorted(OPEN_CLIP_NAMES)}; "
            "pass --backbone-weights PATH instead"
        )
    return name


def known_tags(backbone: str) -> list[str]:
    import open_clip

    name = open_clip_name(backbone)
    tags = set(open_clip.list_pretrained_tags_by_model(name))
    # OpenAI's weights also serve the QuickGELU variant our tower builds for them.
    tags |= set(open_clip.list_pretrained_tags_by_model(f"{name}-quickgelu"))
    return sorted(tags)


def looks_like_tag(text: str) -> bool:
    """A bare word (no folder, no weights suffix) that is not an existing path."""
    path = Path(text)
    return (
        "/" not in text
        and not text.startswith(("local-dir:", "~", "."))
        and path.suffix.lower() not in WEIGHT_SUFFIXES
        and not path.exists()
    )


def tag_activation(path: Path) -> str | None:
    """The activation of a file named ``<Arch>-<tag><suffix>`` (as fetched here or placed by
    hand as the offline message says), from open_clip's registry: its ``quick_gelu`` flag
    (OpenAI, MetaCLIP, DFN) or GELU (LAION, DataComp, ...). None for any other name."""
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        return None
    for backbone, name in OPEN_CLIP_NAMES.items():
        tag = path.stem.removeprefix(f"{name}-")
        if tag != path.stem and tag in known_tags(backbone):
            return "quickgelu" if _pretrained_cfg(name, tag).get("quick_gelu") else "gelu"
    return None


def _pretrained_cfg(name: str, tag: str) -> dict:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag) or open_clip.get_pretrained_cfg(
        f"{name}-quickgelu", tag
    )
    return dict(cfg)


def cached_weights(ws: Workspace, backbone: str, tag: str) -> Path | None:
    stem = f"{open_clip_name(backbone)}-{tag}"
    for suffix in WEIGHT_SUFFIXES:
        if (ws.weights / f"{stem}{suffix}").is_file():
            return ws.weights / f"{stem}{suffix}"
    return None


def _place_instead(ws: Workspace, name: str, tag: str, cfg: dict) -> str:
    where = cfg.get("url") or f"https://huggingface.co/{cfg.get('hf_hub', '').rstrip('/')}"
    return (
        f"place the file at {ws.weights / f'{name}-{tag}.pt'} (from {where}) or pass "
        "--backbone-weights PATH"
    )


def _sha_failure(exc: Exception, url: str, cache: Path) -> str | None:
    """open_clip's checksum refusal of an OpenAI URL, said with the expected and got digests."""
    if "SHA256" not in str(exc):
        return None
    target = cache / os.path.basename(url)
    expected = url.split("/")[-2]  # open_clip's convention for OpenAI URLs
    got = file_sha256(target) if target.is_file() else "?"
    target.unlink(missing_ok=True)
    return f"sha256 mismatch: expected {expected}, got {got}"


def fetch_weights(
    backbone: str,
    tag: str,
    *,
    root: str | os.PathLike[str] | None = None,
    mirrors: tuple[str, ...] | list[str] | None = None,
    force: bool = False,
) -> tuple[Path, str]:
    """(path, sha256) of the ``tag`` weights of ``backbone`` in ROOT/weights/, fetched if absent."""
    import open_clip

    if tag.startswith(TORCHGEO_PREFIX):
        return _fetch_torchgeo_weights(tag, backbone, root=root, mirrors=mirrors)
    ws = Workspace(root)
    name = open_clip_name(backbone)
    tags = known_tags(backbone)
    if tag not in tags:
        raise ConfigError(
            f"--backbone-weights {tag}: neither a file nor an open_clip tag of {name}; tags: "
            f"{', '.join(tags)}; or pass the path of a weights file"
        )
    cached = cached_weights(ws, backbone, tag)
    if cached is not None and not force:
        return cached, file_sha256(cached)
    cfg = _pretrained_cfg(name, tag)
    cache = ws.root / "downloads" / "open_clip"
    cache.mkdir(parents=True, exist_ok=True)
    url = cfg.get("url", "")
    attempts = (
        [dict(cfg, url=u) for u in mirrored([url], resolve_mirrors(mirrors))] if url else [cfg]
    )
    failures = []
    for attempt in attempts:
        where = attempt.get("url") or attempt.get("hf_hub")
        logger.info(f"{name} {tag}: downloading through open_clip from {where}")
        try:
            got = open_clip.download_pretrained(
                attempt, prefer_hf_hub=not url, cache_dir=str(cache)
            )
        except Exception as exc:  # noqa: BLE001 - urllib, huggingface_hub, open_clip's own
            reason = _sha_failure(exc, attempt.get("url", ""), cache) if url else None
            failures.append(f"{where}: {reason or ' '.join(str(exc).split())[:200]}")
            continue
        if not got or not Path(got).is_file():
            failures.append(f"{where}: open_clip returned no file")
            continue
        source = Path(os.path.realpath(got))  # the Hub's snapshot entry links to a bare blob
        dest = ws.weights / f"{name}-{tag}{Path(got).suffix or '.pt'}"
        with atomic_path(dest) as tmp:
            os.replace(source, tmp)
        for stale in cache.glob("models--*"):  # the Hub's snapshot now points at nothing
            shutil.rmtree(stale, ignore_errors=True)
        digest = file_sha256(dest)
        logger.info(f"{name} {tag}: {dest} (sha256 {digest})")
        return dest, digest
    raise DownloadError(
        f"cannot download {name} weights '{tag}' ({'; '.join(failures)}); "
        + _place_instead(ws, name, tag, cfg),
        source=f"--backbone-weights {tag}",
    )


def _fetch_torchgeo_weights(
    tag: str,
    backbone: str,
    *,
    root: str | os.PathLike[str] | None = None,
    mirrors: tuple[str, ...] | list[str] | None = None,
) -> tuple[Path, str]:
    """(path, sha256) of a torchgeo weight enum's file in ROOT/weights/, fetched if absent."""
    import torch
    import torchgeo.models as tgm

    enum_name, _, member = tag[len(TORCHGEO_PREFIX) :].partition(".")
    enum = getattr(tgm, enum_name, None)
    weights = getattr(enum, member, None) if enum is not None and member else None
    if weights is None or not hasattr(weights, "url"):
        raise ConfigError(
            f"--backbone-weights {tag}: not a torchgeo weight enum member; give e.g. "
            "torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO"
        )
    model = weights.meta.get("model")
    if not is_timm(backbone) or backbone[len(TIMM_PREFIX) :] != model:
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
        logger.info(f"{tag}: downloading from {url}")
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
