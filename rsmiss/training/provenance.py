"""Where a run's numbers came from: ``environment.json`` and the timing facts of ``perf.json``.

Nothing here changes what a run computes; it records the seed, the git revision of the
code, library versions, the device, the backbone's origin and the data's, so a result can
be traced and repeated. Kept apart from the orchestration in ``run.py``.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from rsmiss.models.backbone import describe_weights
from rsmiss.training.distributed import DistInfo
from rsmiss.training.plan import PlannedRun
from rsmiss.workspace import write_json_atomic

LIBRARIES = (
    "rsmiss",
    "torch",
    "numpy",
    "scikit-learn",
    "xarray",
    "zarr",
    "rasterio",
    "open_clip_torch",
)


def git_revision() -> str | None:
    """Commit of the rsmiss checkout, read from .git directly (no git binary needed)."""
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        if git.is_file():  # worktree / submodule: "gitdir: PATH"
            git = (git.parent / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        if (git / ref).is_file():
            return (git / ref).read_text().strip() or None
        common = git / "commondir"
        roots = [git] + ([(git / common.read_text().strip()).resolve()] if common.is_file() else [])
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text().strip() or None
            packed = root / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except (OSError, IndexError):
        return None
    return None


def versions() -> dict[str, str]:
    """Python and the installed versions of the libraries that shape the numbers."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def device_text(info: DistInfo) -> str:
    if info.device.type == "cuda":
        return f"{info.world_size} x {torch.cuda.get_device_name(info.device)}"
    return f"{info.world_size} x CPU ({platform.processor() or platform.machine()})"


def peak_memory_mb(device: torch.device) -> float:
    """Peak device memory on a GPU, else this process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_environment(plan: PlannedRun, model: Any, synthetic: bool, info: DistInfo) -> None:
    """``environment.json``: seed, code revision, versions, device, backbone and data origin."""
    cfg = plan.config
    write_json_atomic(
        plan.run_dir / "environment.json",
        {
            "seed": cfg.seed,
            "git_revision": git_revision(),
            "versions": versions(),
            "device": device_text(info),
            "world_size": info.world_size,
            "backbone": {
                "name": cfg.backbone,
                "random_init": cfg.random_init,
                "origin": describe_weights(cfg.backbone_weights),
                "weights": cfg.backbone_weights,
                "weights_sha256": cfg.backbone_weights_sha256,
                "hash": model.config.get("backbone_hash"),
                "activation": model.config.get("activation"),
            },
            "data": {
                "synthetic": synthetic,
                "cube_id": cfg.cube_id,
                "cube": str(plan.cube_path),
                "scenario": str(plan.scenario_path),
            },
            "model_config": model.config,
        },
    )
