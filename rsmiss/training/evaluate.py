"""Use a trained run: re-score it on another scenario's test masks, or map a whole scene.

Re-scoring (paper Fig. 4: train under one missing setting, test under another) needs a
scenario built on the same cube as the run, so the test samples are the same pixels and
only their availability differs; the result goes to ``runs/<id>/eval/<scenario-id>.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rsmiss.errors import DataError
from rsmiss.training.rundir import Run, resolve_device
from rsmiss.workspace import Workspace, write_json_atomic


def _scenario_path(run: Run, scenario: str | os.PathLike[str]) -> Path:
    p = Path(scenario)
    if p.suffix == ".npz" and p.is_file():
        return p
    candidate = Workspace(run.root).scenarios(run.config.dataset) / f"{scenario}.npz"
    if candidate.is_file():
        return candidate
    raise DataError(
        f"--scenario {scenario}: not found at {candidate}; build it with rsmiss scenarios"
    )


def scenario_ids(run: Run) -> tuple[list[str], dict[str, str]]:
    """Every scenario built for the run's dataset (the default of ``rsmiss evaluate``), split
    into those the run can be scored on and the others, each with the reason it cannot
    (a scenario built for other modalities, or another order of them)."""
    import numpy as np

    folder = Workspace(run.root).scenarios(run.config.dataset)
    fits: list[str] = []
    skipped: dict[str, str] = {}
    for path in sorted(folder.glob("*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                mods = [str(m) for m in z["modalities"]]
        except (OSError, KeyError, ValueError) as exc:
            skipped[path.stem] = f"unreadable ({exc})"
            continue
        if mods != list(run.modalities):
            skipped[path.stem] = f"built for modalities {mods}, the run has {list(run.modalities)}"
        else:
            fits.append(path.stem)
    return fits, skipped


def evaluate_run(
    run: Run, scenario: str | os.PathLike[str], device: str | None = None
) -> dict[str, Any]:
    """Metrics of ``run`` on ``scenario``'s test masks; written to ``eval/<id>.json``."""
    from rsmiss.cube import open_cube
    from rsmiss.models.routing import record_routing
    from rsmiss.scenarios import load_scenario
    from rsmiss.training.data import load_run_data
    from rsmiss.training.loop import predict_split, routing_summary
    from rsmiss.training.metrics import score_by_pattern

    cfg = run.config
    path = _scenario_path(run, scenario)
    cube_path = Workspace(run.root).cube(cfg.dataset)
    ds = open_cube(cube_path)
    if str(ds.attrs.get("cube_id")) != cfg.cube_id:
        raise DataError(
            f"{cube_path}: cube was re-ingested since run {run.run_id} was trained "
            "(cube_id differs); retrain the run on the current cube"
        )
    sc = load_scenario(path, cube=ds)
    if tuple(sc.modalities) != tuple(run.modalities):
        raise DataError(
            f"{path}: scenario modalities {list(sc.modalities)} differ from the run's "
            f"{list(run.modalities)}"
        )
    dev = resolve_device(device)
    model = run.load_model(dev)
    data = load_run_data(
        cube_path,
        sc,
        cfg.patch_size,
        dev,
        seed=cfg.seed,
        ds=ds,
        max_test_samples=cfg.train_opt("max_test_samples"),
    )
    with record_routing(model) as recorder:
        pred = predict_split(
            model, data, data.test, dev, cfg.precision, int(cfg.train_opt("eval_batch_size"))
        )
    truth = data.test.label.cpu().numpy()
    patterns = data.test_patterns
    result = {
        "run_id": run.run_id,
        "trained_on": cfg.scenario_id,
        "scenario_id": sc.scenario_id,
        "scenario_params": sc.params,
        "n_test": len(data.test),
        **score_by_pattern(truth, pred, patterns, data.n_classes),
        "routing": routing_summary(recorder, run.modalities),
    }
    write_json_atomic(run.path / "eval" / f"{sc.scenario_id}.json", result)
    return result


def predict_run(
    run: Run,
    *,
    cube: str | os.PathLike[str] | None = None,
    missing: tuple[str, ...] = (),
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 2048,
    device: str | None = None,
    progress: bool = False,
) -> Path:
    """Classify every pixel of a cube's scene with ``run``; write GeoTIFF + PNG, return the tif.

    Default output: ``runs/<id>/predict/<cube-name>[-missing-<mods>].tif``.
    """
    from rsmiss.cube import open_cube
    from rsmiss.training.predict import (
        classify_scene,
        missing_columns,
        scene_for_run,
        write_class_map,
    )

    cfg = run.config
    modalities = tuple(run.modalities)
    missing = tuple(m.strip() for m in missing if m.strip())
    missing_columns(missing, modalities)  # validate before any work
    cube_path = Path(cube) if cube else Workspace(run.root).cube(cfg.dataset)
    if not cube_path.exists():
        raise DataError(f"cube {cube_path} does not exist; pass --cube PATH of an ingested cube")
    if out is None:
        tag = f"-missing-{'+'.join(missing)}" if missing else ""
        out = run.path / "predict" / f"{cube_path.name.removesuffix('.zarr')}{tag}.tif"
    out = Path(out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise DataError(f"--out {out}: give a .tif path (the PNG is written beside it)")
    try:
        ds = open_cube(cube_path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot open cube ({type(exc).__name__})", source=str(cube_path)) from None
    dev = resolve_device(device)
    scene = scene_for_run(ds, modalities, run.modalities, cfg.patch_size, dev, str(cube_path))
    model = run.load_model(dev)
    cmap = classify_scene(
        model,
        scene,
        dev,
        precision=cfg.precision,
        missing=missing,
        batch_size=batch_size,
        progress=progress,
    )
    palette = run.model_info.get("palette") or None
    title = f"{run.run_id} on {cube_path.name}" + (
        f", missing {', '.join(missing)}" if missing else ""
    )
    tif, _ = write_class_map(
        cmap + 1,
        out,
        class_names=list(run.model_info["class_names"]),
        palette=palette,
        crs=ds.attrs.get("crs"),
        transform=ds.attrs.get("transform"),
        title=title,
    )
    return tif
