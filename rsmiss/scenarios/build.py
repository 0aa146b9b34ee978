"""Read what scenarios need from a cube, resolve requests, build and publish scenario files.

Everything a request could get wrong is checked for every dataset before the first file is
written, so a bad flag leaves the workspace untouched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.errors import ConfigError, DataError
from rsmiss.scenarios.allocation import Allocation, allocate_split
from rsmiss.scenarios.patterns import (
    AVAIL_PATTERN,
    Setting,
    availability_setting,
    default_modalities,
    parse_availability,
    pattern_setting,
)
from rsmiss.scenarios.spatial import blob_sigma, smooth_scores
from rsmiss.scenarios.store import Scenario, load_scenario, save_scenario, scenario_id

SPLITS = ("train", "test")
_REQUIRED = ("label", "split", "row", "col", "observed")


@dataclass(frozen=True)
class CubeInputs:
    """The per-sample facts a scenario needs (numpy, already loaded)."""

    dataset: str
    cube_id: str
    modalities: tuple[str, ...]
    label: np.ndarray
    split: np.ndarray
    row: np.ndarray
    col: np.ndarray
    observed: np.ndarray  # sample x modality, in ``modalities`` order
    shape: tuple[int, int]
    path: Path | None = None


def open_cube_any(path: Path) -> Any:
    """Open the cube's sample variables lazily, refusing unfinished or foreign stores.

    Scenarios need only ``label``/``split``/``row``/``col``/``observed`` and attributes, so
    this opens the zarr store with xarray after ingest's "finished cube" check rather than
    through ``rsmiss.cube.open_cube``, whose torchgeo import costs seconds to tens of
    seconds for a command that otherwise runs in well under one.
    """
    import xarray as xr

    if not Path(path).exists():
        raise DataError(f"no cube at {path}; run 'rsmiss ingest' for this dataset first")
    try:
        from rsmiss.ingest.store import require_cube
    except ImportError:  # pragma: no cover - ingest ships with the package
        require_cube = None
    if require_cube is not None:
        require_cube(path)
    try:
        return xr.open_zarr(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable store is a data problem
        raise DataError(f"cannot open cube {path} ({exc}); re-run rsmiss ingest") from None


def _as_str(values: np.ndarray) -> np.ndarray:
    """Split labels as str whether stored as unicode, bytes or objects."""
    if values.dtype.kind in "SOT":  # bytes, objects, numpy's variable-width StringDType
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()])
    return values.astype(str)


def read_cube_inputs(cube: Any) -> CubeInputs:
    """From a cube path or an opened cube, load label/split/row/col/observed and attrs."""
    path = None
    if isinstance(cube, (str, os.PathLike)):
        path = Path(cube)
        cube = open_cube_any(path)
    where = str(path) if path else f"cube {cube.attrs.get('dataset', '?')}"
    for name in _REQUIRED:
        if name not in cube.variables:
            raise DataError(f"{where} has no '{name}' variable; re-run rsmiss ingest")
    for name in ("dataset", "cube_id"):
        if name not in cube.attrs:
            raise DataError(f"{where} has no '{name}' attribute; re-run rsmiss ingest")
    if "modality" in cube.coords:
        modalities = tuple(str(m) for m in np.asarray(cube["modality"].values))
    else:
        modalities = tuple(str(m) for m in cube.attrs.get("modalities", ()))
    observed = np.asarray(cube["observed"].transpose("sample", ...).values, dtype=bool)
    if observed.shape[1] != len(modalities):
        raise DataError(f"{where}: 'observed' has {observed.shape[1]} columns for {modalities}")
    split = _as_str(np.asarray(cube["split"].values))
    unknown = sorted(set(np.unique(split)) - set(SPLITS))
    if unknown:
        raise DataError(f"{where}: split holds {unknown}, expected only train/test")
    row = np.asarray(cube["row"].values, dtype=np.int64)
    col = np.asarray(cube["col"].values, dtype=np.int64)
    if "y" in cube.sizes and "x" in cube.sizes:
        shape = (int(cube.sizes["y"]), int(cube.sizes["x"]))
    else:
        shape = (int(row.max(initial=0)) + 1, int(col.max(initial=0)) + 1)
    return CubeInputs(
        dataset=str(cube.attrs["dataset"]),
        cube_id=str(cube.attrs["cube_id"]),
        modalities=modalities,
        label=np.asarray(cube["label"].values, dtype=np.int64),
        split=split,
        row=row,
        col=col,
        observed=observed,
        shape=shape,
        path=path,
    )


@dataclass(frozen=True)
class Request:
    """One scenario to build on one cube, validated."""

    dataset: str
    modalities: tuple[str, ...]
    pattern: str
    rate: float
    seed: int
    spatial: bool
    train_setting: Setting
    test_setting: Setting
    scenario_id: str
    availability: dict[str, float] | None = None
    test_pattern: str | None = None
    test_rate: float | None = None
    spatial_sigma: float | None = None

    @property
    def params(self) -> dict[str, Any]:
        """What the file records (JSON-able; null test_* = same as train)."""
        params: dict[str, Any] = {
            "dataset": self.dataset,
            "modalities": list(self.modalities),
            "pattern": self.pattern,
            "availability": self.availability,
            "rate": self.rate,
            "seed": self.seed,
            "spatial": self.spatial,
            "test_pattern": self.test_pattern,
            "test_rate": self.test_rate,
        }
        if self.spatial:
            params["spatial_sigma"] = self.spatial_sigma
        return params


def _require_in_cube(flag: str, names: Sequence[str], inputs: CubeInputs) -> None:
    """Refuse a modality name that the cube does not hold, naming the flag that gave it."""
    for m in names:
        if m not in inputs.modalities:
            raise ConfigError(
                f"{flag} names '{m}', but cube {inputs.path or inputs.dataset} has no such "
                f"modality (it has {', '.join(inputs.modalities)})"
            )


def _pick_modalities(
    inputs: CubeInputs, modalities: Sequence[str] | None, extra: Sequence[str] = ()
) -> tuple[tuple[str, ...], bool]:
    """Modalities taking part and whether they are the dataset default."""
    default = default_modalities(inputs.dataset, inputs.modalities)
    if modalities is None:
        _require_in_cube("--availability", extra, inputs)
        added = [m for m in inputs.modalities if m in extra and m not in default]
        return default + tuple(added), not added
    mods = tuple(modalities)
    _require_in_cube("--modalities", mods, inputs)
    if len(set(mods)) != len(mods):
        raise ConfigError(f"--modalities {','.join(mods)} names a modality twice")
    return mods, mods == default


def resolve_requests(
    inputs: CubeInputs,
    *,
    rate: float | None,
    patterns: Sequence[str] = (),
    availabilities: Sequence[str | dict[str, float]] = (),
    modalities: Sequence[str] | None = None,
    spatial: bool = False,
    test_rate: float | None = None,
    test_pattern: str | None = None,
    seed: int = 0,
) -> list[Request]:
    """Validate one dataset's requests; raise ConfigError on the first problem."""
    if seed < 0:
        raise ConfigError(f"--seed {seed} must be ≥ 0")
    if test_rate is not None and not (0.0 <= test_rate <= 1.0):
        raise ConfigError(f"--test-rate {test_rate} is outside [0, 1]; give a fraction such as 0.5")
    sigma = blob_sigma(inputs.shape) if spatial else None
    avails = [parse_availability(a) if isinstance(a, str) else dict(a) for a in availabilities]
    patterns = list(patterns) or ([] if avails else None)
    out: list[Request] = []

    def test_of(setting: Setting, pattern: str, r: float, mods: tuple[str, ...]) -> Setting:
        if test_pattern is None and test_rate is None:
            return setting
        if test_pattern is None and pattern == AVAIL_PATTERN:
            raise ConfigError("--test-rate with --availability needs --test-pattern too")
        return pattern_setting(test_pattern or pattern, r if test_rate is None else test_rate, mods)

    def request(
        pattern: str,
        r: float,
        mods: tuple[str, ...],
        setting: Setting,
        *,
        availability: dict[str, float] | None = None,
        id_modalities: tuple[str, ...] | None = None,
    ) -> Request:
        """The request for ``setting``; everything but the setting comes from the flags."""
        return Request(
            dataset=inputs.dataset,
            modalities=mods,
            pattern=pattern,
            rate=float(r),
            seed=seed,
            spatial=spatial,
            train_setting=setting,
            test_setting=test_of(setting, pattern, r, mods),
            scenario_id=scenario_id(
                pattern,
                r,
                seed,
                modalities=id_modalities,
                availability=availability,
                spatial=spatial,
                test_pattern=test_pattern,
                test_rate=test_rate,
            ),
            availability=availability,
            test_pattern=test_pattern,
            test_rate=test_rate,
            spatial_sigma=sigma,
        )

    for avail in avails:
        mods, _ = _pick_modalities(inputs, modalities, extra=list(avail))
        setting = availability_setting(avail, mods)
        implied = float(setting.rate)
        if rate is not None and abs(rate - implied) > 1e-9:
            raise ConfigError(
                f"--rate {rate} does not match --availability, which implies a missing rate "
                f"of Σ(1 − a_m) = {implied:g}; drop --rate or make them agree"
            )
        full = {m: float(avail.get(m, 1.0)) for m in mods}
        out.append(request(AVAIL_PATTERN, implied, mods, setting, availability=full))
    if patterns is None or patterns:
        if rate is None:
            raise ConfigError("--rate is required (e.g. --rate 0.9) unless --availability is given")
        mods, is_default = _pick_modalities(inputs, modalities)
        if patterns is None:  # the paper's three settings; other datasets with M ≠ 2: all
            patterns = ["other", mods[0] if "hs" not in mods else "hs", "both"]
            if len(mods) != 2:
                patterns = ["all"]
        for pattern in dict.fromkeys(patterns):
            setting = pattern_setting(pattern, rate, mods)
            id_modalities = None if is_default else mods
            out.append(request(pattern, rate, mods, setting, id_modalities=id_modalities))
    return out


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
        status = "written"
        if dest.exists() and not force:
            try:
                old = load_scenario(dest, cube=inputs.cube_id)
                if old.params == req.params:
                    counts = {s: old.pattern_counts(s) for s in SPLITS}
                    results.append(
                        BuildResult(inputs.dataset, req.scenario_id, dest, "up to date", counts)
                    )
                    continue
            except DataError:
                pass
            status = "rewritten"
        elif dest.exists():
            status = "rewritten"
        scenario, allocations = make_scenario(inputs, req)
        save_scenario(scenario, dest)
        counts = {s: scenario.pattern_counts(s) for s in SPLITS}
        results.append(
            BuildResult(
                inputs.dataset, req.scenario_id, dest, status, counts, _warnings(req, allocations)
            )
        )
    return results


__all__ = [
    "BuildResult",
    "CubeInputs",
    "Request",
    "build_scenarios",
    "make_scenario",
    "read_cube_inputs",
    "resolve_requests",
]
