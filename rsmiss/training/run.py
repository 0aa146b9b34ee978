"""One training run end to end: data, model, loop, files of the run directory; `train()`.

``ROOT/runs/<run-id>/`` holds ``config.json`` (resolved config + what the model needs to be
rebuilt), ``environment.json`` (seed, git revision, library versions, device, backbone
provenance, synthetic or real data), ``checkpoint.pt``, ``curve.csv``/``curve.png``,
``confusion.png``, ``routing.png`` (methods with a router), ``map.tif``/``map.png``,
``perf.json`` and, written last, ``metrics.json``:
its presence means the run is finished, and it holds only deterministic content so two runs
of the same config (or a killed and resumed one) give the same bytes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from rsmiss.models.backbone import describe_weights
from rsmiss.models.routing import record_routing
from rsmiss.models.seeded import seed_all
from rsmiss.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from rsmiss.training.data import RunData, load_run_data
from rsmiss.training.distributed import DistInfo, launch
from rsmiss.training.loop import (
    TrainState,
    compiled,
    fit,
    param_groups,
    predict_split,
    routing_summary,
    should_stop,
)
from rsmiss.training.metrics import score_by_pattern
from rsmiss.training.plan import PlannedRun, plan_runs
from rsmiss.training.provenance import device_text, peak_memory_mb, write_environment
from rsmiss.training.report import write_confusion_png, write_curve, write_routing_png
from rsmiss.workspace import write_json_atomic


def prepare_data(plan: PlannedRun) -> RunData:
    """Read the cube and scenario once (host memory), checking they belong together."""
    from rsmiss.cube import open_cube
    from rsmiss.scenarios import load_scenario

    cfg = plan.config
    ds = open_cube(plan.cube_path)
    scenario = load_scenario(plan.scenario_path, cube=ds)
    return load_run_data(
        plan.cube_path,
        scenario,
        cfg.patch_size,
        torch.device("cpu"),
        seed=cfg.seed,
        ds=ds,
        val_fraction=float(cfg.train_opt("val_fraction")),
        max_test_samples=cfg.train_opt("max_test_samples"),
    )


def _worker(info: DistInfo, plan: PlannedRun, data: RunData, progress: bool) -> None:
    """Train, evaluate and write one run on this rank (rank 0 writes the files)."""
    was = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        _train_rank(info, plan, data, progress)
    finally:  # an in-process run leaves the caller's global setting as it found it
        torch.use_deterministic_algorithms(was, warn_only=warn)


def _train_rank(info: DistInfo, plan: PlannedRun, host_data: RunData, progress: bool) -> None:
    import torch.distributed as dist

    t_start = time.perf_counter()
    cfg, rank, world, device = plan.config, info.rank, info.world_size, info.device
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    data = host_data.to(device)
    model = compiled(
        cfg.build_model(data.scene.channels, data.n_classes).to(device), cfg.compile_backend
    )
    backbone_hash = model.config.get("backbone_hash")
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    state = TrainState()
    ckpt_path = plan.run_dir / "checkpoint.pt"
    # Per-rank training stream; the model above was built from the shared seed on every rank.
    seed_all(cfg.seed * 1_000_003 + 7 + rank)
    if plan.resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, run_id=cfg.run_id, backbone_hash=backbone_hash)
        model.load_trainable_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = TrainState(int(ckpt["epoch"]), int(ckpt["step"]), list(ckpt.get("history", [])))
        restore_rng(ckpt["rng"][rank])
    if info.is_main:
        _write_run_files(plan, model, data, info)
    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # device_ids=None: the inputs are already on this rank's device, and with ids DDP
        # would also move the host availability mask there, costing a device sync per step
        train_model = DDP(model, device_ids=None, find_unused_parameters=True)

    every = int(cfg.train_opt("checkpoint_every"))

    def on_epoch_end(st: TrainState) -> None:
        last = st.epoch == cfg.epochs or should_stop(st.history, cfg.train_opt("patience"))
        if st.epoch % every and not last:
            return
        rngs: list[Any] = [capture_rng()]
        if world > 1:
            rngs = [None] * world
            dist.all_gather_object(rngs, capture_rng())
        if info.is_main:
            save_checkpoint(
                ckpt_path,
                {
                    "run_id": cfg.run_id,
                    "backbone_hash": backbone_hash,
                    "epoch": st.epoch,
                    "step": st.step,
                    "history": st.history,
                    "rng": rngs,
                    "model": model.trainable_state_dict(),
                    "optimizer": optimizer.state_dict(),
                },
            )

    perf = fit(
        model=model,
        train_model=train_model,
        optimizer=optimizer,
        data=data,
        cfg=cfg,
        device=device,
        state=state,
        rank=rank,
        world_size=world,
        on_epoch_end=on_epoch_end,
        progress=progress,
    )
    t_eval = time.perf_counter()
    eval_bs = int(cfg.train_opt("eval_batch_size"))
    # routing statistics from the same forward passes as the test predictions
    with record_routing(model) as recorder:
        pred = predict_split(model, data, data.test, device, cfg.precision, eval_bs, rank, world)
    if world > 1:
        recorder.all_reduce()
    routing = routing_summary(recorder, data.scene.modalities)
    eval_s = time.perf_counter() - t_eval
    if info.is_main:
        _finish(plan, model, data, pred, routing, state, device, perf, eval_s, t_start, info)
    if world > 1:
        dist.barrier()


def _write_run_files(plan: PlannedRun, model: Any, data: RunData, info: DistInfo) -> None:
    cfg = plan.config
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        plan.run_dir / "config.json",
        {
            "run_id": cfg.run_id,
            "config": cfg.to_dict(),
            "model": {
                # [name, bands] pairs, not an object: JSON objects are written with sorted
                # keys, and the order is the model's (mask columns, the head's input)
                "modalities": [[m, c] for m, c in data.scene.channels.items()],
                "n_classes": data.n_classes,
                "class_names": data.class_names,
                "palette": [list(map(int, c)) for c in data.attrs.get("palette") or []],
            },
        },
    )
    write_environment(plan, model, bool(data.attrs["synthetic"]), info)


def _finish(plan, model, data, pred, routing, state, device, perf, eval_s, t_start, info):
    """Rank 0: curve, confusion plot, routing heat-map, classification map, perf.json, then
    metrics.json."""
    cfg = plan.config
    truth = data.test.label.cpu().numpy()
    scores = score_by_pattern(truth, pred, data.test_patterns, data.n_classes)
    metrics = {
        "run_id": cfg.run_id,
        "dataset": cfg.dataset,
        "scenario_id": cfg.scenario_id,
        "method": cfg.method,
        "options": model.config.get("options", {}),
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        # fewer than `epochs` when validation OA stopped the run (patience / --epochs auto)
        "epochs_used": state.epoch,
        "backbone": {
            "name": cfg.backbone,
            "random_init": cfg.random_init,
            "origin": describe_weights(cfg.backbone_weights),
            "weights_sha256": cfg.backbone_weights_sha256,
        },
        "synthetic_data": data.attrs["synthetic"],
        "modalities": list(data.scene.modalities),
        "class_names": data.class_names,
        "n_train": len(data.train),
        "n_test": len(data.test),
        "parameters": model.parameter_counts(),
        "final_train_loss": state.history[-1]["train_loss"] if state.history else None,
        "final_val_oa": state.history[-1].get("val_oa") if state.history else None,
        **scores,
        # expert routing on the test set per block and missing pattern (None without a
        # router); the fields are documented in rsmiss.models.routing
        "routing": routing,
    }
    write_curve(plan.run_dir, state.history)
    write_confusion_png(
        plan.run_dir / "confusion.png",
        scores["overall"]["confusion_matrix"],
        data.class_names,
        f"{cfg.run_id}: OA {scores['overall']['oa']}",
    )
    if routing is not None:
        write_routing_png(plan.run_dir / "routing.png", routing, f"{cfg.run_id}: test routing")
    map_s = 0.0
    if cfg.train_opt("write_map"):
        from rsmiss.training.classify import classify_scene
        from rsmiss.training.classmap import write_class_map

        t0 = time.perf_counter()
        cmap = classify_scene(model, data.scene, device, precision=cfg.precision)
        map_s = time.perf_counter() - t0
        write_class_map(
            cmap + 1,
            plan.run_dir / "map.tif",
            class_names=data.class_names,
            palette=data.attrs.get("palette"),
            crs=data.attrs.get("crs"),
            transform=data.attrs.get("transform"),
            title=f"{cfg.run_id} (all modalities)",
        )
    write_json_atomic(
        plan.run_dir / "perf.json",
        {
            "device": device_text(info),
            "train_samples_per_s": round(perf["train_samples_per_s"], 3),
            "train_seconds": round(perf["train_seconds"], 3),
            "eval_seconds": round(eval_s, 3),
            "map_seconds": round(map_s, 3),
            "map_pixels_per_s": round(data.scene.height * data.scene.width / map_s, 1)
            if map_s
            else None,
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "wall_seconds": round(time.perf_counter() - t_start, 3),
            # time to accuracy: training seconds (resumed segments added up) per epoch
            "curve": [
                {k: h.get(k) for k in ("epoch", "wall_s", "train_loss", "val_oa")}
                for h in state.history
            ],
        },
    )
    write_json_atomic(plan.run_dir / "metrics.json", metrics)


def execute(plan: PlannedRun, *, progress: bool = True) -> Path:
    """Run one planned run (skipping a finished one); its directory (read it with
    ``rsmiss.inference.load_run``)."""
    if plan.status != "finished":
        from rsmiss.workspace import clean_stale_tmp

        clean_stale_tmp(plan.run_dir)
        data = prepare_data(plan)  # before any file is written: a bad input stops here
        if plan.config.devices > 1:  # spawned ranks: check weights/options here, in one line
            plan.config.build_model(data.scene.channels, data.n_classes)
        launch(_worker, plan.config.devices, plan, data, progress)
    return plan.run_dir


def train(
    root: str | os.PathLike[str] | None = None,
    *,
    dataset: str | None = None,
    scenario: str | None = None,
    method: str = "mamol",
    options: dict[str, Any] | None = None,
    progress: bool = False,
    **kwargs: Any,
) -> Path:
    """Train one run (``rsmiss train`` for a single dataset/scenario/method); its directory.

    ``kwargs`` are :func:`plan_runs` arguments (``epochs``, ``batch_size``, ``random_init``,
    ``backbone``, ``seed``, ``devices``, ``sets`` ...). With several datasets or scenarios
    available, name the one meant.
    """
    plans = plan_runs(
        root,
        datasets=(dataset,) if dataset else (),
        scenarios=(scenario,) if scenario else (),
        methods=(method,),
        options=options,
        **kwargs,
    )
    if len(plans) != 1:
        from rsmiss.errors import ConfigError

        raise ConfigError(
            f"train(): {len(plans)} runs match ({', '.join(p.config.run_id for p in plans[:3])}"
            "...); pass dataset= and scenario=, or use plan_runs() + execute()"
        )
    return execute(plans[0], progress=progress)
