"""Build and publish scenario files: masks for each resolved request, written atomically.

Every request of every dataset is resolved (:mod:`rsmiss.scenarios.requests`) before the
first file is written, so a bad flag leaves the workspace untouched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsmiss.errors import ConfigError, DataError
from rsmiss.scenarios.allocation import Allocation, allocate_split
from rsmiss.scenarios.inputs import CubeInputs, read_cube_inputs
from rsmiss.scenarios.requests import Request, resolve_requests
from rsmiss.scenarios.spatial import smooth_scores
from rsmiss.scenarios.store import SPLITS, Scenario, load_scenario, save_scenario


def make_scenario(inputs: CubeInputs, request: Request) -> tuple[Scenario, dict[str, Allocation]]:
    """Build the masks of both splits (independent RNG streams derived from the seed)."""
    cols = [inputs.modalities.index(m) for m in request.modalities]
    masks: dict[str, np.ndarray] = {}
    index: dict[str, np.ndarray] = {}
    allocations: dict[str, Allocation] = {}
    for code, name in enumerate(SPLITS):
        setting = request.train_setting if name == "train" else request.test_setting
        idx = np.flatnonzero(inputs.split == name)
        rng = np.random.default_rng(np.random.SeedSequence(request.seed, spawn_key=(code, 0)))
        scores = None
        if request.spatial:
            field_rng = np.random.default_rng(
                np.random.SeedSequence(request.seed, spawn_key=(code, 1))
            )
            scores = smooth_scores(
                inputs.row[idx],
                inputs.col[idx],
                inputs.shape,
                len(setting.fractions),
                field_rng,
                sigma=request.spatial_sigma,
            )
        alloc = allocate_split(
            inputs.label[idx],
            setting.missing,
            setting.fractions,
            rng,
            unobserved=~inputs.observed[idx][:, cols],
            scores=scores,
        )
        masks[name], index[name], allocations[name] = alloc.available, idx, alloc
    scenario = Scenario(
        scenario_id=request.scenario_id,
        dataset=inputs.dataset,
        cube_id=inputs.cube_id,
        modalities=request.modalities,
        train=masks["train"],
        test=masks["test"],
        train_index=index["train"].astype(np.int64),
        test_index=index["test"].astype(np.int64),
        params=request.params,
    )
    return scenario, allocations


@dataclass
class BuildResult:
    """What happened to one scenario file."""

    dataset: str
    scenario_id: str
    path: Path
    status: str  # "written", "up to date", "rewritten"
    counts: dict[str, dict[str, int]]
    warnings: list[str] = field(default_factory=list)


def _warnings(request: Request, allocations: dict[str, Allocation]) -> list[str]:
    out = []
    for name, a in allocations.items():
        tag = f"{request.dataset} {request.scenario_id} {name}"
        if a.excess:
            out.append(
                f"{tag}: {a.unobserved} samples are not observed for some modality, "
                f"{a.excess} more than the missing quota; they stay missing, so this split's "
                "missing rate is above the one requested"
            )
        if a.unmatched:
            out.append(
                f"{tag}: {a.unmatched} samples lack (in the cube's raw data) a modality "
                "combination this scenario does not ask for; they stay missing and use up the "
                "quota of the closest pattern, so fewer samples get the requested pattern"
            )
        if a.none_observed:
            out.append(f"{tag}: {a.none_observed} samples have no observed modality at all")
    return out


def _current(dest: Path, inputs: CubeInputs, request: Request) -> Scenario | None:
    """The file at ``dest`` when it is intact and was built from this cube and request."""
    try:
        old = load_scenario(dest, cube=inputs.cube_id)
    except DataError:
        return None
    return old if old.params == request.params else None


def build_scenarios(
    root: str | os.PathLike[str] | None = None,
    *,
    datasets: Sequence[str] = (),
    rate: float | None = None,
    patterns: Sequence[str] = (),
    availabilities: Sequence[str | dict[str, float]] = (),
    modalities: Sequence[str] | None = None,
    spatial: bool = False,
    test_rate: float | None = None,
    test_pattern: str | None = None,
    seed: int = 0,
    force: bool = False,
) -> list[BuildResult]:
    """Build (or confirm up to date) scenario files for the cubes of a workspace."""
    from rsmiss.workspace import Workspace, clean_stale_tmp

    ws = Workspace(root)
    if rate is not None and not (0.0 <= rate <= 1.0):
        raise ConfigError(f"--rate {rate} is outside [0, 1]; give a fraction such as 0.9")
    if not datasets:
        datasets = sorted(p.name[: -len(".zarr")] for p in ws.cubes.glob("*.zarr"))
        if not datasets:
            raise DataError(
                f"no cubes found in {ws.cubes}; run 'rsmiss ingest DATASET --root {ws.root}' "
                "first or pass --root"
            )
    plan: list[tuple[CubeInputs, Request]] = []
    for ds in dict.fromkeys(datasets):
        path = ws.cube(ds)
        if not path.exists():
            raise DataError(f"no cube for dataset '{ds}' at {path}; run 'rsmiss ingest {ds}' first")
        inputs = read_cube_inputs(path)
        for req in resolve_requests(
            inputs,
            rate=rate,
            patterns=patterns,
            availabilities=availabilities,
            modalities=modalities,
            spatial=spatial,
            test_rate=test_rate,
            test_pattern=test_pattern,
            seed=seed,
        ):
            plan.append((inputs, req))

    results = []
    for inputs, req in plan:
        folder = ws.scenarios(inputs.dataset)
        clean_stale_tmp(folder)
        dest = folder / f"{req.scenario_id}.npz"
        if dest.exists() and not force and (old := _current(dest, inputs, req)) is not None:
            counts = {s: old.pattern_counts(s) for s in SPLITS}
            results.append(BuildResult(inputs.dataset, req.scenario_id, dest, "up to date", counts))
            continue
        status = "rewritten" if dest.exists() else "written"
        scenario, allocations = make_scenario(inputs, req)
        save_scenario(scenario, dest)
        counts = {s: scenario.pattern_counts(s) for s in SPLITS}
        results.append(
            BuildResult(
                inputs.dataset, req.scenario_id, dest, status, counts, _warnings(req, allocations)
            )
        )
    return results


__all__ = ["BuildResult", "build_scenarios", "make_scenario"]
