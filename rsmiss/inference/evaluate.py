"""Re-score a trained run on another scenario's test masks.

Re-scoring (paper Fig. 4: train under one missing setting, test under another) needs a
scenario built on the same cube as the run, so the test samples are the same pixels and
only their availability differs; the result goes to ``runs/<id>/eval/<scenario-id>.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rsmiss.errors import DataError
from rsmiss.inference.rundir import RunDir, resolve_device
from rsmiss.workspace import Workspace, write_json_atomic


def _scenario_path(run: RunDir, scenario: str | os.PathLike[str]) -> Path:
    p = Path(scenario)
    if p.suffix == ".npz" and p.is_file():
        return p
    candidate = Workspace(run.root).scenarios(run.config.dataset) / f"{scenario}.npz"
    if candidate.is_file():
        return candidate
    raise DataError(
        f"--scenario {scenario}: not found at {candidate}; build it with rsmiss scenarios"
    )


def scenario_ids(run: RunDir) -> tuple[list[str], dict[str, str]]:
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
    run: RunDir, scenario: str | os.PathLike[str], device: str | None = None
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
