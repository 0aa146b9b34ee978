"""Missing-modality settings: which modality subsets go missing, and in which share.

A *setting* is a list of missing subsets (bool rows over the scenario's modalities, True =
missing) with exact rational fractions of the split; the rest of the split is complete.
Fractions are :class:`~fractions.Fraction` so that the counts derived from them are the same
on every machine (no float rounding decides who goes missing).

Pattern names (paper §4.1; docs/design.md, "Scenario semantics"):

- ``other`` (M = 2): η lack the non-HS modality. The "HS role" is played by the modality
  named ``hs``, or by the first modality when none is named ``hs``.
- ``both`` (M = 2): η/2 lack the HS-role modality, η/2 lack the other, none lacks both.
- a modality name (``hs``, ``lidar``, ...): η lack that one.
- ``all``: each single-modality-missing configuration gets η/M (Table 3's first row).
- ``all-subsets``: η spread evenly over the 2^M − 2 non-empty proper subsets.
- availability ``{m: a_m}``: disjoint, 1 − a_m of the samples lack m; feasible iff
  Σ(1 − a_m) ≤ 1, and the implied rate is Σ(1 − a_m).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rsmiss.errors import ConfigError

NAMED_PATTERNS = ("other", "both", "all", "all-subsets")
AVAIL_PATTERN = "avail"

# The paper's modality pair per catalog dataset (Table 1); other datasets use all modalities.
DEFAULT_MODALITIES: dict[str, tuple[str, ...]] = {
    "houston2013": ("hs", "lidar"),
    "trento": ("hs", "lidar"),
    "augsburg": ("hs", "sar"),
}

# Rates are taken as decimals with at most 6 digits: 0.9 means 9/10 exactly.
_MAX_DENOMINATOR = 10**6


def exact(x: float) -> Fraction:
    """The decimal the user meant by the float ``x`` (0.9 -> 9/10), so counts are exact."""
    return Fraction(x).limit_denominator(_MAX_DENOMINATOR)


@dataclass(frozen=True)
class Setting:
    """Missing subsets (K x M bool, True = missing) and their exact shares of a split."""

    modalities: tuple[str, ...]
    missing: np.ndarray
    fractions: tuple[Fraction, ...]
    label: str

    @property
    def rate(self) -> Fraction:
        return sum(self.fractions, Fraction(0))


def default_modalities(dataset: str, cube_modalities: Sequence[str]) -> tuple[str, ...]:
    """The paper's pair for a catalog dataset (when the cube has it), else every modality."""
    pair = DEFAULT_MODALITIES.get(dataset)
    if pair and all(m in cube_modalities for m in pair):
        return pair
    return tuple(cube_modalities)


def hs_role(modalities: Sequence[str]) -> int:
    """Column of the modality that plays "HS" for ``other``/``both``: ``hs``, else the first."""
    return list(modalities).index("hs") if "hs" in modalities else 0


def _check_rate(rate: float, flag: str) -> None:
    if not (0.0 <= rate <= 1.0) or rate != rate:
        raise ConfigError(f"{flag} {rate} is outside [0, 1]; give a fraction such as 0.9")


def pattern_setting(pattern: str, rate: float, modalities: Sequence[str]) -> Setting:
    """Resolve a pattern name at missing rate ``rate`` over ``modalities`` (column order)."""
    mods = tuple(modalities)
    m = len(mods)
    _check_rate(rate, "--rate")
    eta = exact(rate)
    if m < 2:
        raise ConfigError(
            f"--modalities {','.join(mods)}: missing-modality scenarios need at least two "
            "modalities (one missing would leave a sample with none)"
        )
    if pattern in ("other", "both") and m != 2:
        raise ConfigError(
            f"--pattern {pattern} needs exactly two modalities, got {m} ({','.join(mods)}); "
            "use --pattern all, all-subsets or a modality name, or pick two with --modalities"
        )
    eye = np.eye(m, dtype=bool)
    h = hs_role(mods)
    if pattern == "other":
        return Setting(mods, eye[[1 - h]], (eta,), pattern)
    if pattern == "both":
        return Setting(mods, eye[[h, 1 - h]], (eta / 2, eta / 2), pattern)
    if pattern == "all":
        return Setting(mods, eye.copy(), tuple(eta / m for _ in range(m)), pattern)
    if pattern == "all-subsets":
        subsets = [c for size in range(1, m) for c in itertools.combinations(range(m), size)]
        rows = np.zeros((len(subsets), m), dtype=bool)
        for i, c in enumerate(subsets):
            rows[i, list(c)] = True
        return Setting(mods, rows, tuple(eta / len(subsets) for _ in subsets), pattern)
    if pattern in mods:
        return Setting(mods, eye[[mods.index(pattern)]], (eta,), pattern)
    raise ConfigError(
        f"unknown --pattern '{pattern}'; choose one of {', '.join(NAMED_PATTERNS)} or a "
        f"modality taking part ({', '.join(mods)})"
    )


def parse_availability(text: str) -> dict[str, float]:
    """``"hs=1.0,sar=0.75"`` -> ``{"hs": 1.0, "sar": 0.75}`` (order kept)."""
    out: dict[str, float] = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            a = float(value)
        except ValueError:
            raise ConfigError(
                f"--availability '{text}': '{item}' is not MOD=FRACTION; "
                "write e.g. hs=1.0,sar=0.75,lidar=0.5"
            ) from None
        if name in out:
            raise ConfigError(f"--availability '{text}' names '{name}' twice")
        if not (0.0 <= a <= 1.0):
            raise ConfigError(f"--availability '{text}': {name}={value} is outside [0, 1]")
        out[name] = a
    if not out:
        raise ConfigError("--availability is empty; write e.g. hs=1.0,sar=0.75,lidar=0.5")
    return out


def availability_setting(availability: Mapping[str, float], modalities: Sequence[str]) -> Setting:
    """Disjoint per-modality availability; modalities not named are fully available."""
    mods = tuple(modalities)
    if len(mods) < 2:
        raise ConfigError("--availability needs at least two modalities taking part")
    for name in availability:
        if name not in mods:
            raise ConfigError(
                f"--availability names '{name}', which is not a modality taking part "
                f"({', '.join(mods)}); fix the name or add it to --modalities"
            )
    lack = [Fraction(1) - exact(availability.get(m, 1.0)) for m in mods]
    total = sum(lack, Fraction(0))
    if total > 1:
        shown = ", ".join(f"{m}={availability.get(m, 1.0):g}" for m in mods)
        raise ConfigError(
            f"--availability {shown} is infeasible: the missing shares sum to "
            f"{float(total):.4g} > 1, but at most one modality may be missing per sample "
            "(no sample may lack every modality); raise some availabilities"
        )
    keep = [i for i, f in enumerate(lack) if f > 0]
    missing = np.eye(len(mods), dtype=bool)[keep].reshape(len(keep), len(mods))
    return Setting(mods, missing, tuple(lack[i] for i in keep), AVAIL_PATTERN)


def pattern_names(available: np.ndarray, modalities: Sequence[str]) -> np.ndarray:
    """Per-row pattern name: ``complete``, ``hs_missing``, ``hs+sar_missing``, ... ."""
    available = np.asarray(available, dtype=bool)
    mods = list(modalities)
    if available.ndim != 2 or available.shape[1] != len(mods):
        raise ValueError(
            f"availability of shape {available.shape} does not fit {len(mods)} modalities"
        )
    codes = available.astype(np.int64) @ (1 << np.arange(len(mods), dtype=np.int64))
    out = np.empty(len(available), dtype=object)
    for code in np.unique(codes):
        row = [(int(code) >> j) & 1 == 1 for j in range(len(mods))]
        lacking = [m for m, ok in zip(mods, row, strict=True) if not ok]
        out[codes == code] = "+".join(lacking) + "_missing" if lacking else "complete"
    return out.astype(str) if len(out) else np.array([], dtype=str)
