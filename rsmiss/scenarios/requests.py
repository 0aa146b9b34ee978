"""Resolve ``rsmiss scenarios`` flags into validated requests, one per scenario file.

Each request names its modalities, train and test settings and scenario id; a ConfigError
naming the flag is raised on the first problem, before anything is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rsmiss.errors import ConfigError
from rsmiss.scenarios.inputs import CubeInputs
from rsmiss.scenarios.patterns import (
    AVAIL_PATTERN,
    Setting,
    availability_setting,
    default_modalities,
    parse_availability,
    pattern_setting,
)
from rsmiss.scenarios.spatial import blob_sigma
from rsmiss.scenarios.store import scenario_id


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
                f"{flag} names '{m}', but cube {inputs.path} has no such "
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


__all__ = ["Request", "resolve_requests"]
