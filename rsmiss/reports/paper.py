"""The MaMOL paper's published numbers (Tables 1, 3, 4, 5) and which one a cell reproduces.

The CSVs are a packaged copy of ``../shared/data/paper/`` (long form, OA / Kappa x 100), so
reports work from an installed package. Fig. 4 is a plot without published numbers.

Mapping facts (paper §4.1, Table 1 column "Train/Test HS other"): at missing rate η the
setting ``other`` keeps HS at 100 % and the other modality at 1 − η, ``hs`` the reverse,
``both`` keeps each at 1 − η/2. Table 4's ``mamol_dyn`` is MaMOL at the given placement;
Table 5's variants ``no_*_experts`` are MaMOL with the options ``no_*``. Methods of our own
(``EXTENSIONS``, and MaMOL with ``expert_site=ffn``) have no published number, whatever a
pipeline calls them.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources
from typing import Any

PAPER_TABLES = ("table1", "table3", "table4", "table5")
TABLE_TITLES = {
    "table1": "Table 1 — OA / Kappa under missing HS, missing other, missing both",
    "table3": "Table 3 — Augsburg HS / SAR / LiDAR at 75 % overall missing rate (MaMOL)",
    "table4": "Table 4 — expert placement, Trento 70 % missing both",
    "table5": "Table 5 — ablation of expert types, Trento missing both (OA)",
    "fig4": "Fig. 4 — trained on one setting, tested on others (paper: Houston2013; no numbers)",
}
# Methods rsmiss adds beyond the paper -> the note every report prints when they appear.
EXTENSIONS = {
    "mamol_ffn": (
        "`mamol_ffn` is rsmiss's extension, not the paper's MaMOL: MaMOL's routing (pattern-"
        "aware top-k router, shared and modality-specific static experts) with its experts "
        "as LoRA pairs on the frozen FFN's two linears, where moe_rep's experts sit, instead "
        "of beside the FFN. The paper has no number for it."
    ),
}


def is_extension(method: str, options: dict[str, Any] | None = None) -> bool:
    """A method (or MaMOL setting) of ours that no paper table can hold."""
    site = (options or {}).get("expert_site", "parallel")
    return method in EXTENSIONS or str(site).lower() != "parallel"


@dataclass(frozen=True)
class PaperEntry:
    """One published number: where it sits in the paper and its value."""

    table: str
    row: str  # a human label of the row/column it comes from
    oa: float
    kappa: float | None


@functools.cache
def load_table(name: str) -> tuple[dict[str, str], ...]:
    """Rows of one packaged paper table (strings, as in the CSV)."""
    if name not in PAPER_TABLES:
        raise KeyError(name)
    text = resources.files("rsmiss.reports").joinpath("paper_tables", f"{name}.csv").read_text()
    return tuple(csv.DictReader(io.StringIO(text)))


def _pct(x: float) -> int:
    return int(round(x * 100))


def setting_availability(setting: str, rate: float) -> tuple[int, int] | None:
    """(HS %, other %) available for Table 1's settings at missing rate ``rate``."""
    p = _pct(rate)
    if setting == "other":
        return 100, 100 - p
    if setting == "hs":
        return 100 - p, 100
    if setting == "both":
        return (100 - p / 2, 100 - p / 2) if p % 2 else (100 - p // 2, 100 - p // 2)
    return None


def _entry(table: str, row: dict[str, str], label: str) -> PaperEntry:
    kappa = row.get("kappa")
    return PaperEntry(table, label, float(row["oa"]), float(kappa) if kappa else None)


def _table1(q: dict[str, Any]) -> PaperEntry | None:
    if (
        q["placement"]
        or q["has_options"]
        or q["availability"]
        or q["setting"] != q["train_setting"]
    ):
        return None
    avail = setting_availability(q["setting"], q["rate"])
    if avail is None:
        return None
    for row in load_table("table1"):
        if row["dataset"] != q["dataset"] or row["method"] != q["paper_name"]:
            continue
        if q["modalities"] and list(q["modalities"]) != ["hs", row["other_modality"]]:
            continue
        if (
            int(row["missing_rate_pct"]) == _pct(q["rate"])
            and float(row["hs_available_pct"]) == avail[0]
            and float(row["other_available_pct"]) == avail[1]
        ):
            label = (
                f"{row['dataset']} {_pct(q['rate'])}% HS {avail[0]:g}% / "
                f"{row['other_modality']} {avail[1]:g}% {row['method']}"
            )
            return _entry("table1", row, label)
    return None


def _table3(q: dict[str, Any]) -> PaperEntry | None:
    av = q["availability"]
    if not av or q["placement"] or q["has_options"] or set(av) != {"hs", "sar", "lidar"}:
        return None
    for row in load_table("table3"):
        if row["dataset"] != q["dataset"] or row["method"] != q["paper_name"]:
            continue
        if all(int(row[f"{m}_available_pct"]) == _pct(av[m]) for m in ("hs", "sar", "lidar")):
            label = "HS {hs}% / SAR {sar}% / LiDAR {lidar}% {method}".format(
                method=row["method"], **{m: _pct(a) for m, a in av.items()}
            )
            return _entry("table3", row, label)
    return None


def _table4(q: dict[str, Any]) -> PaperEntry | None:
    if not q["placement"] or q["availability"] or q["setting"] != q["train_setting"]:
        return None
    name = "mamol_dyn" if q["paper_name"] == "mamol" else q["paper_name"]
    # the paper calls the first blocks "Head" (head_6x2); rsmiss says first_6x2
    placement = q["placement"].replace("first_", "head_", 1)
    for row in load_table("table4"):
        if (
            row["dataset"] == q["dataset"]
            and int(row["missing_rate_pct"]) == _pct(q["rate"])
            and row["pattern"] == q["setting"]
            and row["method"] == name
            and row["placement"] == placement
        ):
            return _entry("table4", row, f"{name} {row['placement']} ({row['backbone']})")
    return None


def _table5(q: dict[str, Any]) -> PaperEntry | None:
    if q["placement"] or q["availability"] or q["setting"] != q["train_setting"]:
        return None
    col = f"oa_rate{_pct(q['rate'])}"
    for row in load_table("table5"):
        if (
            row["dataset"] == q["dataset"]
            and row["pattern"] == q["setting"]
            and row["variant"] == q["paper_name"]
            and col in row
        ):
            return PaperEntry(
                "table5", f"{row['variant']} {_pct(q['rate'])}%", float(row[col]), None
            )
    return None


_LOOKUP = {"table1": _table1, "table3": _table3, "table4": _table4, "table5": _table5}


def lookup(query: dict[str, Any]) -> PaperEntry | None:
    """The published number a cell reproduces, or None (Fig. 4, our own extras).

    ``query`` is ``Cell.paper_query()``: table (the block's declared table, or None = try
    Tables 1, 3, 4, 5 in order), dataset, modalities, setting (test), train_setting, rate,
    availability, method, paper_name, placement, has_options, options.
    """
    table = query.get("table")
    if table == "fig4" or is_extension(query["method"], query.get("options")):
        return None
    order = [table] if table in _LOOKUP else list(_LOOKUP)
    for name in order:
        hit = _LOOKUP[name](query)
        if hit is not None:
            return hit
    return None
