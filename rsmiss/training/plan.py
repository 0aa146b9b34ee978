"""Turn ``rsmiss train`` flags into a list of resolved runs, validating everything first.

Every check that can fail on user input (unknown dataset, scenario, method or ``--set`` key,
scenario of another cube, weights missing or unreadable, too many devices, bad batch size,
unusable checkpoint) runs here, before any run directory is created, so a bad request
exits with one line and leaves the workspace as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmiss.errors import ConfigError, DataError
from rsmiss.training.config import (
    DEFAULT_EPOCHS,
    RunConfig,
    auto_epochs,
    file_sha256,
    parse_epochs,
    parse_set,
)
from rsmiss.workspace import Workspace

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pt", ".safetensors")


def weight_names(backbone: str) -> tuple[str, ...]:
    """Default file names in ``ROOT/weights/`` for a backbone: its open_clip name
    (``ViT-L-14.pt``, ``ViT-L-14.safetensors``), so each architecture has its own file;
    none for ``tiny`` and timm trunks."""
    from rsmiss.models.backbone import open_clip_arch

    arch = open_clip_arch(backbone)
    return tuple(f"{arch}{suffix}" for suffix in WEIGHT_SUFFIXES) if arch else ()


@dataclass(frozen=True)
class PlannedRun:
    config: RunConfig
    cube_path: Path
    scenario_path: Path
    run_dir: Path
    status: str  # "finished", "resume", "new"
    resume_epoch: int = 0
    resume: bool = True

    def describe(self) -> str:
        if self.status == "finished":
            return f"{self.config.run_id}  finished (skipped)"
        if self.status == "resume":
            return (
                f"{self.config.run_id}  resume after epoch {self.resume_epoch}/{self.config.epochs}"
            )
        stop = self.config.train_opt("patience")
        until = f", stops after {stop} epochs without a better val OA" if stop else ""
        return f"{self.config.run_id}  new ({self.config.epochs} epochs{until})"


def _weights_sha256(path: Path) -> str:
    """Content hash of a weights file, or of an open_clip local-dir folder's files."""
    try:
        if path.is_dir():
            h = hashlib.sha256()
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                h.update(f.relative_to(path).as_posix().encode())
                h.update(file_sha256(f).encode())
            return h.hexdigest()
        return file_sha256(path)
    except OSError as exc:
        raise DataError(
            f"cannot read backbone weights ({exc.strerror or exc})", source=str(path)
        ) from None


def pretrained_weights_path(ws: Workspace, spec: str) -> Path:
    """``pretrain:NAME`` -> ``ROOT/weights/NAME.safetensors`` (written by ``rsmiss pretrain``)."""
    name = spec.split(":", 1)[1]
    path = ws.weights / f"{name}.safetensors"
    if not name or not path.is_file():
        raise DataError(
            f"no pretrained weights {name!r} at {path}; make them with `rsmiss pretrain "
            f"--name {name or 'NAME'} --dataset DATASET`",
            source=spec,
        )
    return path


def resolve_weights(
    ws: Workspace, backbone: str, weights: str | None, random_init: bool
) -> tuple[str | None, str | None]:
    """(path, sha256) of the backbone weights, or (None, None) for an explicit random init.

    Order: ``--backbone-weights``, ``$RSMISS_BACKBONE_WEIGHTS``, ``ROOT/weights/<Arch>.pt``
    (or ``.safetensors``; ``<Arch>`` is the open_clip name, ``ViT-L-14``). Either of the
    first two may be an open_clip pretrained tag (``openai``): its file is fetched into
    ``ROOT/weights/`` unless cached; ``pretrain:NAME`` names the output of ``rsmiss pretrain
    --name NAME``. A file is checked to fit the backbone here, since the environment variable
    applies to every architecture and a misfit would otherwise surface only once a run starts.
    """
    if weights is not None and random_init:
        raise ConfigError("--backbone-weights and --random-init exclude each other; pass one")
    if random_init:
        return None, None
    source = "--backbone-weights"
    if weights is None and os.environ.get("RSMISS_BACKBONE_WEIGHTS"):
        weights, source = os.environ["RSMISS_BACKBONE_WEIGHTS"], "$RSMISS_BACKBONE_WEIGHTS"
    if weights is None:
        for name in weight_names(backbone):
            if (ws.weights / name).exists():
                weights, source = str(ws.weights / name), "ROOT/weights"
                break
    if weights is not None and str(weights).startswith("pretrain:"):
        weights, source = str(pretrained_weights_path(ws, str(weights))), str(weights)
    if weights is None:
        names = weight_names(backbone)
        default = (
            f"put {names[0]} (or a .safetensors state dict) at {ws.weights / names[0]}, "
            if names
            else ""
        )
        raise ConfigError(
            f"no backbone weights for {backbone}: pass --backbone-weights openai to download "
            f"OpenAI's through open_clip, {default}or pass --backbone-weights PATH / set "
            "$RSMISS_BACKBONE_WEIGHTS; --random-init trains on a random backbone instead"
        )
    from rsmiss.models.pretrained import fetch_weights, looks_like_tag

    if looks_like_tag(str(weights)):
        path, digest = fetch_weights(backbone, str(weights), root=ws.root)
        return str(path), digest
    path = Path(str(weights).removeprefix("local-dir:")).expanduser()
    if not path.exists():
        raise DataError(f"backbone weights file does not exist ({source})", source=str(path))
    from rsmiss.models.backbone import check_weights_fit

    check_weights_fit(backbone, str(weights), given_by=source)
    return str(weights), _weights_sha256(path)


def _option_keys(method: str) -> set[str]:
    from rsmiss.models import METHODS

    if method not in METHODS:
        raise ConfigError(
            f"--method: unknown method {method!r}; choose from {', '.join(sorted(METHODS))}"
        )
    return set(METHODS[method].options)


def _cube_attrs(path: Path) -> Any:
    from rsmiss.cube import open_cube

    try:
        return open_cube(path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken store is one user-facing problem
        raise DataError(
            f"cannot open cube ({type(exc).__name__}); re-run rsmiss ingest", source=str(path)
        ) from None


def _scenario_paths(ws: Workspace, dataset: str, wanted: tuple[str, ...]) -> list[Path]:
    folder = ws.scenarios(dataset)
    if not wanted:
        return sorted(folder.glob("*.npz"))
    out = []
    for sid in wanted:
        p = Path(sid)
        if p.suffix == ".npz" and p.is_file():
            out.append(p)
        elif (folder / f"{sid}.npz").is_file():
            out.append(folder / f"{sid}.npz")
    return out


def plan_runs(
    root: str | os.PathLike[str] | None = None,
    *,
    datasets: tuple[str, ...] = (),
    scenarios: tuple[str, ...] = (),
    methods: tuple[str, ...] = ("mamol",),
    sets: tuple[str, ...] = (),
    options: dict[str, Any] | None = None,
    backbone: str = "vit-b-16",
    backbone_weights: str | None = None,
    backbone_activation: str | None = None,
    random_init: bool = False,
    epochs: int | str | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 2e-2,
    devices: int = 1,
    precision: str = "auto",
    seed: int = 0,
    resume: bool = True,
) -> list[PlannedRun]:
    """Resolve flags into runs (dataset x scenario x method), each with its status."""
    import torch

    from rsmiss.models.backbone import backbone_config
    from rsmiss.models.factory import check_options
    from rsmiss.scenarios import load_scenario
    from rsmiss.training.checkpoint import load_checkpoint
    from rsmiss.training.distributed import check_devices

    ws = Workspace(root)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    try:  # before the plan is printed: a typo must not look like a planned run
        backbone_config(backbone)
    except ConfigError as exc:
        raise ConfigError(f"--backbone: {exc}") from None
    world = check_devices(devices)
    epochs = parse_epochs(epochs)
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "32"
    methods = tuple(methods) or ("mamol",)
    per_method: dict[str, tuple[dict, dict]] = {}
    for m in methods:
        keys = _option_keys(m)
        model_opts, train_opts = parse_set(tuple(sets), keys)
        unknown = sorted(set(options or {}) - keys)
        if unknown:
            raise ConfigError(
                f"option {unknown[0]!r} is not known for method {m!r}; known: {sorted(keys)}"
            )
        model_opts.update(options or {})
        if backbone_activation is not None:
            model_opts["activation"] = backbone_activation
        try:  # every value the model would reject, before the plan is printed
            check_options(m, model_opts, backbone)
        except ConfigError as exc:
            raise ConfigError(f"{'--set' if sets else 'options'} of method {m!r}: {exc}") from None
        per_method[m] = (model_opts, train_opts)
    w_path, w_sha = resolve_weights(ws, backbone, backbone_weights, random_init)

    if datasets:
        names = list(dict.fromkeys(datasets))
        for d in names:
            if not ws.cube(d).exists():
                raise DataError(f"no cube for dataset {d!r} at {ws.cube(d)}; run rsmiss ingest {d}")
    else:
        names = sorted(p.name.removesuffix(".zarr") for p in ws.cubes.glob("*.zarr"))
        if not names:
            raise DataError(f"no cubes in {ws.cubes}; run rsmiss ingest first")

    plans: list[PlannedRun] = []
    found_scenarios: set[str] = set()
    for d in names:
        ds = _cube_attrs(ws.cube(d))
        cube_id = str(ds.attrs.get("cube_id", ""))
        patch_size = int(ds.attrs.get("patch_size", 14))
        for sp in _scenario_paths(ws, d, tuple(scenarios)):
            sc = load_scenario(sp, cube=ds)  # DataError when built for another cube
            found_scenarios.update({sc.scenario_id, str(sp)})
            for m in methods:
                model_opts, train_opts = per_method[m]
                n_epochs = epochs or DEFAULT_EPOCHS
                if epochs == "auto":
                    n_epochs, train_opts = auto_epochs(train_opts)
                cfg = RunConfig(
                    dataset=d,
                    scenario_id=sc.scenario_id,
                    cube_id=cube_id,
                    method=m,
                    options=dict(sorted(model_opts.items())),
                    backbone=backbone,
                    backbone_activation=backbone_activation,
                    backbone_weights=w_path,
                    backbone_weights_sha256=w_sha,
                    random_init=w_path is None,
                    patch_size=patch_size,
                    epochs=n_epochs,
                    batch_size=batch_size,
                    lr=lr,
                    weight_decay=weight_decay,
                    seed=seed,
                    devices=world,
                    precision=precision,
                    train_options=dict(sorted(train_opts.items())),
                )
                run_dir = ws.runs / cfg.run_id
                status, epoch = "new", 0
                if (run_dir / "metrics.json").is_file():
                    status = "finished"
                elif resume and (run_dir / "checkpoint.pt").is_file():
                    ckpt = load_checkpoint(
                        run_dir / "checkpoint.pt",
                        run_id=cfg.run_id,
                        backbone_hash=None,
                        check_backbone=False,
                    )
                    status, epoch = "resume", int(ckpt["epoch"])
                plans.append(PlannedRun(cfg, ws.cube(d), sp, run_dir, status, epoch, resume))
    missing = [s for s in scenarios if s not in found_scenarios]
    if missing:
        raise DataError(
            f"--scenario {missing[0]}: no such scenario for {', '.join(names)} under "
            f"{ws.root / 'scenarios'}; build it with rsmiss scenarios"
        )
    if not plans:
        raise DataError(f"no scenarios under {ws.root / 'scenarios'}; run rsmiss scenarios first")
    return plans
