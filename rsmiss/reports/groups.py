"""The seeds of one benchmark cell grouped, and the number formats every report table uses."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def num(x: Any) -> float | None:
    if x is None or x == "":
        return None
    v = float(x)
    return None if math.isnan(v) else v


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    if len(values) == 1:
        return values[0], None
    return statistics.fmean(values), statistics.stdev(values)


def fmt(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" if std is None else f"{mean:.2f}±{std:.2f}"


def fmt_diff(x: float | None) -> str:
    return "—" if x is None else f"{x:+.2f}"


def fmt3(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f}±{std:.3f}"


def pct(x: Any) -> str:
    v = num(x)
    return "—" if v is None else f"{v * 100:g}%"


def fmt_int(x: Any) -> str:
    v = num(x)
    return "—" if v is None else f"{int(v):,}"


@dataclass
class Group:
    """All seeds of one cell, aggregated."""

    first: dict[str, Any]
    records: list[dict[str, Any]]

    def stat(self, key: str) -> tuple[float | None, float | None]:
        vals = [v for v in (num(r.get(key)) for r in self.records) if v is not None]
        if not vals:
            return None, None
        return mean_std(vals)

    def ours(self, kappa: bool = True) -> str:
        oa = fmt(*self.stat("oa"))
        return f"{oa}/{fmt(*self.stat('kappa'))}" if kappa else oa

    def paper(self, kappa: bool = True) -> str:
        oa, k = num(self.first.get("paper_oa")), num(self.first.get("paper_kappa"))
        if oa is None:
            return "—"
        return f"{oa:.2f}/{fmt(k)}" if kappa and k is not None else f"{oa:.2f}"

    def diff(self, kappa: bool = True) -> str:
        oa, k = self.stat("oa")[0], self.stat("kappa")[0]
        poa, pk = num(self.first.get("paper_oa")), num(self.first.get("paper_kappa"))
        d_oa = None if oa is None or poa is None else oa - poa
        d_k = None if k is None or pk is None else k - pk
        if kappa and pk is not None:
            return f"{fmt_diff(d_oa)}/{fmt_diff(d_k)}"
        return fmt_diff(d_oa)


def group_records(records: Sequence[dict[str, Any]]) -> list[Group]:
    """Seeds of one cell together, in first-appearance order; cells without a result dropped."""
    out: dict[str, Group] = {}
    for r in records:
        if num(r.get("oa")) is None:
            continue
        g = out.get(r["group_id"])
        if g is None:
            out[r["group_id"]] = Group(r, [r])
        else:
            g.records.append(r)
    return list(out.values())


def cell_name(g: Group) -> str:
    """The cell without the table prefix (tables are the sections already)."""
    return str(g.first["group_id"]).split(":", 1)[-1]


def unique_groups(groups: list[Group]) -> list[Group]:
    """One group per cell name (a run shared by several tables is listed once)."""
    seen: set[str] = set()
    return [g for g in groups if not (cell_name(g) in seen or seen.add(cell_name(g)))]
