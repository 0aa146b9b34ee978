"""Benchmark report: ``runs.csv`` (every run) and ``report.md`` (paper-style tables).

The Markdown puts three lines under each paper row — ours, the paper's, and the difference
— with the paper's columns (methods, placements or rates), so a reader compares cell by
cell. Seeds of one cell are averaged (mean ± sample std). Only cells that ran are shown; the
header says what the numbers were produced with (weights or RANDOM INIT, real or synthetic
data, epochs, seeds, hardware), because a synthetic or random-init number is not comparable
to the paper's and must not be mistaken for one.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmiss.reports.groups import Group, cell_name, fmt, fmt_diff, group_records, mean_std, num, pct
from rsmiss.reports.paper import EXTENSIONS, TABLE_TITLES
from rsmiss.reports.significance import routing_section, summary_section

RUN_COLUMNS = (
    "pipeline", "table", "group_id", "cell_id", "dataset", "modalities", "setting",
    "eval_setting", "rate", "availability", "method", "variant", "paper_name", "placement",
    "options", "seed", "run_id", "scenario_id", "eval_scenario_id", "status",
    "oa", "aa", "kappa", "pattern_oa", "paper_table", "paper_row", "paper_oa", "paper_kappa",
    "diff_oa", "diff_kappa", "trainable_params", "method_params", "epochs", "epochs_used",
    "routing_separation", "routing_by_pattern", "routing_collapsed", "routing_png",
    "backbone", "backbone_sha256", "random_init", "synthetic", "device",
)  # fmt: skip
"""Columns of ``runs.csv``: one row per (cell, seed); metrics x 100 like the paper."""


VILT_NOTE = (
    "The paper ran its MoE baselines (Moe_rep, Moe_ada, Moe_task) on ViLT (its Table 4 says "
    "so); here every method runs on the same frozen CLIP backbone with the same tokenizers, "
    "head and recipe, so rows of those methods also differ from the paper by the backbone."
)


@dataclass
class ReportHeader:
    """What the numbers were produced with; every field is printed in the report's header."""

    pipeline: str
    description: str = ""
    backbone: str = "vit-b-16"
    weights: str | None = None  # sha256 of the weights file; None = random init
    weights_path: str | None = None
    weights_origin: str | None = None  # e.g. "pretrained by rsmiss pretrain (mae, houston2013)"
    datasets: dict[str, str] = field(default_factory=dict)  # name -> "real" / "synthetic" / ...
    epochs: list[int] = field(default_factory=list)
    epochs_used: list[int] = field(default_factory=list)  # differs when stopped early
    seeds: list[int] = field(default_factory=list)
    batch_size: int | None = None
    hardware: list[str] = field(default_factory=list)
    n_groups: int = 0  # report groups (cells without the seed) the pipeline has
    failed: str | None = None  # the cell that stopped the benchmark, and its error


def _wide(
    groups: list[Group],
    row_key: Callable[[Group], tuple],
    row_cells: Callable[[Group], list[str]],
    row_head: list[str],
    col_key: Callable[[Group], str],
    kappa: bool = True,
    with_paper: bool = True,
    extra_col: Callable[[list[Group], str], str] | None = None,
    extra_head: str = "",
) -> list[str]:
    """Paper-style table: one block of ours / paper / Δ lines per row, one column per key."""
    cols = list(dict.fromkeys(col_key(g) for g in groups))
    rows: dict[tuple, dict[str, Group]] = {}
    for g in groups:
        rows.setdefault(row_key(g), {})[col_key(g)] = g
    head = [*row_head, "", *cols] + ([extra_head] if extra_col else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    kinds = (
        [("ours", "ours"), ("paper", "paper"), ("Δ", "diff")] if with_paper else [("ours", "ours")]
    )
    for by_col in rows.values():
        lead = row_cells(next(iter(by_col.values())))
        for i, (label, attr) in enumerate(kinds):
            cells = [getattr(by_col[c], attr)(kappa) if c in by_col else "—" for c in cols]
            if extra_col:
                cells.append(extra_col(list(by_col.values()), attr))
            first = lead if i == 0 else [""] * len(lead)
            lines.append("| " + " | ".join([*first, label, *cells]) + " |")
    return lines


def modality_label(name: str) -> str:
    """A modality as the papers write it: HS, SAR, LiDAR, DSM."""
    return {"lidar": "LiDAR"}.get(name, name.upper())


def _section_table1(groups: list[Group]) -> list[str]:
    out = []
    for ds in dict.fromkeys(g.first["dataset"] for g in groups):
        sub = [g for g in groups if g.first["dataset"] == ds]
        mods = sub[0].first.get("modalities") or ""
        shown = "+".join(modality_label(m) for m in mods.split(",") if m)
        out += [f"### {ds} ({shown or 'default modalities'})", ""]
        out += _wide(
            sub,
            row_key=lambda g: (g.first["rate"], g.first["setting"]),
            row_cells=lambda g: [
                pct(g.first["rate"]),
                g.first["setting"],
                *_avail_pair(g.first),
            ],
            row_head=["Missing rate", "Missing", "HS avail.", "other avail."],
            col_key=lambda g: g.first["variant"],
        )
        out.append("")
    return out


def _avail_pair(rec: dict[str, Any]) -> list[str]:
    from rsmiss.reports.paper import setting_availability

    pair = setting_availability(rec["setting"], float(rec["rate"]))
    return ["?", "?"] if pair is None else [f"{pair[0]:g}%", f"{pair[1]:g}%"]


def _section_table3(groups: list[Group]) -> list[str]:
    def avail(g: Group) -> dict[str, float]:
        return json.loads(g.first["availability"] or "{}")

    mods = list(dict.fromkeys(m for g in groups for m in avail(g)))
    return _wide(
        groups,
        row_key=lambda g: (g.first["dataset"], g.first["availability"]),
        row_cells=lambda g: [
            g.first["dataset"],
            pct(g.first["rate"]),
            *[pct(avail(g).get(m, 1.0)) for m in mods],
        ],
        row_head=["Dataset", "Missing rate", *[modality_label(m) for m in mods]],
        col_key=lambda g: g.first["variant"],
    ) + [""]


def _section_table4(groups: list[Group]) -> list[str]:
    def backbone(g: Group) -> str:
        method = g.first["method"]
        paper = "ViLT" if method.startswith("moe_") else "CLIP"
        return f"CLIP (paper: {'—, ours' if method in EXTENSIONS else paper})"

    return _wide(
        groups,
        row_key=lambda g: (g.first["dataset"], g.first["variant"]),
        row_cells=lambda g: [g.first["variant"], backbone(g)],
        row_head=["Method", "Backbone"],
        col_key=lambda g: g.first["placement"] or "default",
    ) + [""]


def _section_table5(groups: list[Group]) -> list[str]:
    def avg(gs: list[Group], attr: str) -> str:
        """Mean over the rates that ran (the paper's Avg. when all three did)."""
        ours = [g.stat("oa")[0] for g in gs]
        theirs = [num(g.first.get("paper_oa")) for g in gs]
        if not gs or None in ours or (attr != "ours" and None in theirs):
            return "—"
        if attr == "ours":
            return fmt(statistics.fmean(ours))
        if attr == "paper":
            return fmt(statistics.fmean(theirs))
        return fmt_diff(statistics.fmean(ours) - statistics.fmean(theirs))

    return _wide(
        groups,
        row_key=lambda g: (g.first["dataset"], g.first["variant"]),
        row_cells=lambda g: [
            g.first["variant"],
            "—, ours" if g.first["method"] in EXTENSIONS else g.first["paper_name"],
        ],
        row_head=["Variant", "Paper name"],
        col_key=lambda g: pct(g.first["rate"]),
        kappa=False,
        extra_col=avg,
        extra_head="Avg.",
    ) + [""]


def _section_fig4(groups: list[Group]) -> list[str]:
    return _wide(
        groups,
        row_key=lambda g: (g.first["dataset"], g.first["setting"], _test_setting(g.first)),
        row_cells=lambda g: [g.first["dataset"], g.first["setting"], _test_setting(g.first)],
        row_head=["Dataset", "Trained on", "Tested on"],
        col_key=lambda g: f"{g.first['variant']} {pct(g.first['rate'])}",
        with_paper=False,
    ) + [""]


def _test_setting(rec: dict[str, Any]) -> str:
    return rec.get("eval_setting") or rec["setting"]


def _section_other(groups: list[Group]) -> list[str]:
    lines = [
        "| Cell | Ours OA/κ | Paper OA/κ | Δ | Paper row |",
        "|---|---|---|---|---|",
    ]
    for g in groups:
        cell = cell_name(g)
        row = g.first.get("paper_row") or ""
        lines.append(f"| {cell} | {g.ours()} | {g.paper()} | {g.diff()} | {row} |")
    return lines + [""]


_SECTIONS = {
    "table1": _section_table1,
    "table3": _section_table3,
    "table4": _section_table4,
    "table5": _section_table5,
    "fig4": _section_fig4,
}


def _pattern_section(groups: list[Group]) -> list[str]:
    """OA per missing pattern of the test set (complete / HS missing / other missing)."""
    pats: list[str] = []
    for g in groups:
        for r in g.records:
            pats += [p for p in json.loads(r.get("pattern_oa") or "{}") if p not in pats]
    if not pats:
        return []
    seen: set[str] = set()
    groups = [g for g in groups if not (cell_name(g) in seen or seen.add(cell_name(g)))]
    lines = [
        "## OA per missing pattern of the test set",
        "",
        "| Cell | " + " | ".join(pats) + " |",
        "|---|" + "---|" * len(pats),
    ]
    for g in groups:
        vals = []
        for p in pats:
            xs = [json.loads(r.get("pattern_oa") or "{}").get(p) for r in g.records]
            xs = [float(x) for x in xs if x is not None]
            vals.append(fmt(*mean_std(xs)) if xs else "—")
        lines.append(f"| {cell_name(g)} | " + " | ".join(vals) + " |")
    return lines + [""]


def _epochs_text(h: ReportHeader) -> str:
    text = ", ".join(str(e) for e in h.epochs) or "—"
    if h.epochs_used and h.epochs_used != h.epochs:
        lo, hi = min(h.epochs_used), max(h.epochs_used)
        used = str(lo) if lo == hi else f"{lo}–{hi}"
        text += f" at most; used {used} (stopped when validation OA stopped improving)"
    return text


def _header(h: ReportHeader, records: Sequence[dict[str, Any]], groups: list[Group]) -> list[str]:
    if h.weights:
        where = f" ({h.weights_path})" if h.weights_path else ""
        weights = f"{h.weights_origin or 'pretrained'}, sha256 `{h.weights}`{where}"
    else:
        weights = (
            "**RANDOM INIT** — no pretrained weights; these numbers say the pipeline works, "
            "not how well the method does, and are not comparable to the paper's"
        )
    data = ", ".join(f"{k}: **{v}**" for k, v in h.datasets.items()) or "—"
    seeds = ", ".join(str(s) for s in h.seeds) or "—"
    if len(h.seeds) > 1:
        seeds += " (ours: mean ± sample std over seeds)"
    ran = len(groups)
    lines = [
        f"# Benchmark report: {h.pipeline}",
        "",
        *([h.description, ""] if h.description else []),
        "| | |",
        "|---|---|",
        f"| Backbone | {h.backbone}, weights: {weights} |",
        f"| Data | {data} |",
        f"| Epochs | {_epochs_text(h)} |",
        f"| Seeds | {seeds} |",
        f"| Batch size | {h.batch_size or '—'} |",
        f"| Hardware | {'; '.join(h.hardware) or '—'} |",
        f"| Cells | {ran} of {h.n_groups or ran} ran ({len(records)} runs incl. seeds) |",
        "",
        *(
            [f"**Stopped**: cell {h.failed} failed; cells unfinished by then did not run.", ""]
            if h.failed
            else []
        ),
        f"> {VILT_NOTE}",
        "",
        "Values are OA/Kappa x 100 (Table 5: OA). Under each row: **ours**, the **paper**'s "
        "number, and **Δ** = ours − paper. Optimiser AdamW, bf16 on GPU (the paper: Adam).",
        "",
    ]
    for method in dict.fromkeys(r.get("method") for r in records):
        if method in EXTENSIONS:
            lines += [f"> {EXTENSIONS[method]}", ""]
    if any(v == "synthetic" for v in h.datasets.values()):
        lines += [
            "**Synthetic data**: at least one dataset was synthesised by `rsmiss synth`; its "
            "numbers cannot be compared with the paper's.",
            "",
        ]
    return lines


def render_markdown(header: ReportHeader, records: Sequence[dict[str, Any]]) -> str:
    """The report text (deterministic: same records -> same bytes)."""
    groups = group_records(records)
    lines = _header(header, records, groups)
    tables = list(dict.fromkeys(g.first.get("table") or "" for g in groups))
    for t in tables:
        sub = [g for g in groups if (g.first.get("table") or "") == t]
        lines += [f"## {TABLE_TITLES.get(t, 'Other cells')}", ""]
        lines += _SECTIONS.get(t, _section_other)(sub)
    if not groups:
        lines += ["No cell has finished yet.", ""]
    lines += _pattern_section(groups)
    lines += summary_section(groups)
    lines += routing_section(groups)
    return "\n".join(lines).rstrip() + "\n"


def render_csv(records: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RUN_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in RUN_COLUMNS})
    return buf.getvalue()


def write_report(
    out_dir: str | Path, header: ReportHeader, records: Sequence[dict[str, Any]]
) -> dict[str, Path]:
    """Publish runs.csv, report.md and the plot into ``out_dir`` (each file atomically)."""
    from rsmiss.reports.plots import plot_oa_vs_rate
    from rsmiss.workspace import write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "runs.csv", "markdown": out / "report.md", "plot": out / "oa_vs_rate.png"}
    write_text_atomic(paths["csv"], render_csv(records))
    write_text_atomic(paths["markdown"], render_markdown(header, records))
    if not plot_oa_vs_rate(records, paths["plot"], title=header.pipeline):
        paths.pop("plot")
    return paths
