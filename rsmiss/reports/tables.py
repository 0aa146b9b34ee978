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
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmiss.reports.paper import EXTENSIONS, TABLE_TITLES

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


# ---------------------------------------------------------------------------- formatting


def _num(x: Any) -> float | None:
    if x is None or x == "":
        return None
    v = float(x)
    return None if math.isnan(v) else v


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    if len(values) == 1:
        return values[0], None
    return statistics.fmean(values), statistics.stdev(values)


def _fmt(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" if std is None else f"{mean:.2f}±{std:.2f}"


def _fmt_diff(x: float | None) -> str:
    return "—" if x is None else f"{x:+.2f}"


@dataclass
class Group:
    """All seeds of one cell, aggregated."""

    first: dict[str, Any]
    records: list[dict[str, Any]]

    def stat(self, key: str) -> tuple[float | None, float | None]:
        vals = [v for v in (_num(r.get(key)) for r in self.records) if v is not None]
        if not vals:
            return None, None
        return _mean_std(vals)

    def ours(self, kappa: bool = True) -> str:
        oa = _fmt(*self.stat("oa"))
        return f"{oa}/{_fmt(*self.stat('kappa'))}" if kappa else oa

    def paper(self, kappa: bool = True) -> str:
        oa, k = _num(self.first.get("paper_oa")), _num(self.first.get("paper_kappa"))
        if oa is None:
            return "—"
        return f"{oa:.2f}/{_fmt(k)}" if kappa and k is not None else f"{oa:.2f}"

    def diff(self, kappa: bool = True) -> str:
        oa, k = self.stat("oa")[0], self.stat("kappa")[0]
        poa, pk = _num(self.first.get("paper_oa")), _num(self.first.get("paper_kappa"))
        d_oa = None if oa is None or poa is None else oa - poa
        d_k = None if k is None or pk is None else k - pk
        if kappa and pk is not None:
            return f"{_fmt_diff(d_oa)}/{_fmt_diff(d_k)}"
        return _fmt_diff(d_oa)


def group_records(records: Sequence[dict[str, Any]]) -> list[Group]:
    """Seeds of one cell together, in first-appearance order; cells without a result dropped."""
    out: dict[str, Group] = {}
    for r in records:
        if _num(r.get("oa")) is None:
            continue
        g = out.get(r["group_id"])
        if g is None:
            out[r["group_id"]] = Group(r, [r])
        else:
            g.records.append(r)
    return list(out.values())


def _name(g: Group) -> str:
    """The cell without the table prefix (tables are the sections already)."""
    return str(g.first["group_id"]).split(":", 1)[-1]


def _pct(x: Any) -> str:
    v = _num(x)
    return "—" if v is None else f"{v * 100:g}%"


# ------------------------------------------------------------------------ wide layout


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
                _pct(g.first["rate"]),
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
            _pct(g.first["rate"]),
            *[_pct(avail(g).get(m, 1.0)) for m in mods],
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
        theirs = [_num(g.first.get("paper_oa")) for g in gs]
        if not gs or None in ours or (attr != "ours" and None in theirs):
            return "—"
        if attr == "ours":
            return _fmt(statistics.fmean(ours))
        if attr == "paper":
            return _fmt(statistics.fmean(theirs))
        return _fmt_diff(statistics.fmean(ours) - statistics.fmean(theirs))

    return _wide(
        groups,
        row_key=lambda g: (g.first["dataset"], g.first["variant"]),
        row_cells=lambda g: [
            g.first["variant"],
            "—, ours" if g.first["method"] in EXTENSIONS else g.first["paper_name"],
        ],
        row_head=["Variant", "Paper name"],
        col_key=lambda g: _pct(g.first["rate"]),
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
        col_key=lambda g: f"{g.first['variant']} {_pct(g.first['rate'])}",
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
        cell = _name(g)
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
    groups = [g for g in groups if not (_name(g) in seen or seen.add(_name(g)))]
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
            vals.append(_fmt(*_mean_std(xs)) if xs else "—")
        lines.append(f"| {_name(g)} | " + " | ".join(vals) + " |")
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
    lines += _summary_section(groups)
    lines += _routing_section(groups)
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------- capacity, seeds, significance

REFERENCE_VARIANT = "mamol"
"""The variant every other cell of the same context is compared with (paired over seeds)."""


@dataclass(frozen=True)
class Paired:
    """Paired difference over seeds (reference − other): mean, sample std, standard error."""

    n: int
    mean: float
    std: float | None
    se: float | None

    @property
    def significant(self) -> bool:
        """|mean| > 2 standard errors (needs two seeds or more)."""
        return self.se is not None and abs(self.mean) > 2 * self.se

    def text(self) -> str:
        if self.se is None:
            return f"{self.mean:+.2f} (1 seed)"
        return f"{self.mean:+.2f} ± {self.se:.2f}" + (" *" if self.significant else "")


def paired_difference(reference: dict[int, float], other: dict[int, float]) -> Paired | None:
    """Per-seed OA of the reference and another method (seed -> OA), over the seeds both ran:
    the mean difference, its sample std and standard error std / sqrt(n); None if no seed
    is shared."""
    seeds = sorted(set(reference) & set(other))
    if not seeds:
        return None
    diffs = [reference[s] - other[s] for s in seeds]
    if len(diffs) == 1:
        return Paired(1, diffs[0], None, None)
    std = statistics.stdev(diffs)
    return Paired(len(diffs), statistics.fmean(diffs), std, std / math.sqrt(len(diffs)))


def _context(g: Group) -> tuple:
    """What must match for two cells to be compared: everything but the method variant."""
    r = g.first
    keys = ("table", "dataset", "setting", "rate", "availability", "placement", "eval_setting")
    return tuple(str(r.get(k) or "") for k in keys)


def _per_seed(g: Group, key: str = "oa") -> dict[int, float]:
    out = {}
    for r in g.records:
        v = _num(r.get(key))
        if v is not None:
            out[int(r["seed"])] = v
    return out


def _int(x: Any) -> str:
    v = _num(x)
    return "—" if v is None else f"{int(v):,}"


def _unique(groups: list[Group]) -> list[Group]:
    """One group per cell name (a run shared by several tables is listed once)."""
    seen: set[str] = set()
    return [g for g in groups if not (_name(g) in seen or seen.add(_name(g)))]


def _summary_section(groups: list[Group]) -> list[str]:
    """One row per cell: trainable parameters (method-specific and all), epochs used,
    OA mean ± std over seeds, and MaMOL's paired OA difference against it."""
    if not groups:
        return []
    refs = {_context(g): g for g in groups if g.first.get("variant") == REFERENCE_VARIANT}
    lines = [
        "## Capacity, seeds and significance",
        "",
        "Trainable parameters: *method* = what the method adds to the shared token projections "
        "and head (adapters, routers, prompts); *all* = every trainable parameter. "
        f"Δ {REFERENCE_VARIANT} = its OA minus this row's, paired by seed (mean ± standard "
        "error over the seeds both ran); **\\*** marks |mean| > 2 standard errors.",
        "",
        "| Cell | Method params | All trainable | Epochs used | Seeds | OA mean ± std | "
        f"Δ {REFERENCE_VARIANT} (paired) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in _unique(groups):
        r = g.first
        used = sorted({str(x.get("epochs_used") or x.get("epochs")) for x in g.records})
        ref = refs.get(_context(g))
        diff = "—"
        if ref is not None and ref is not g:
            pair = paired_difference(_per_seed(ref), _per_seed(g))
            diff = "—" if pair is None else pair.text()
        seeds = ",".join(str(x["seed"]) for x in g.records)
        lines.append(
            f"| {_name(g)} | {_int(r.get('method_params'))} | {_int(r.get('trainable_params'))} "
            f"| {'/'.join(used)} | {seeds} | {_fmt(*g.stat('oa'))} | {diff} |"
        )
    return lines + [""]


def _routing_section(groups: list[Group]) -> list[str]:
    """Pattern separation of the routers (mean over seeds), per pattern, collapse flags and
    the heat-maps (fields defined in rsmiss.models.routing)."""
    routed = [g for g in _unique(groups) if g.stat("routing_separation")[0] is not None]
    if not routed:
        return []
    lines = [
        "## Expert routing on the test set",
        "",
        "Separation = Jensen–Shannon divergence (base 2, 0 = patterns routed alike, 1 = "
        "disjoint experts) between the missing patterns' shares of tokens per expert, mean "
        "over pattern pairs and adapted blocks; per pattern: against every other pattern. "
        "Mean ± std over seeds. **COLLAPSED**: in every block one expert takes ≥ 95 % of every "
        "pattern.",
        "",
        "| Cell | Separation | Per pattern | Collapsed | Heat-map |",
        "|---|---|---|---|---|",
    ]
    for g in routed:
        per: dict[str, list[float]] = {}
        for r in g.records:
            for p, v in json.loads(r.get("routing_by_pattern") or "{}").items():
                per.setdefault(p, []).append(float(v))
        per_text = ", ".join(f"{p} {_fmt3(*_mean_std(v))}" for p, v in sorted(per.items()))
        flags = [str(r.get("routing_collapsed")).lower() == "true" for r in g.records]
        collapsed = "**COLLAPSED**" if all(flags) else ("some seeds" if any(flags) else "no")
        pngs = [r.get("routing_png") for r in g.records if r.get("routing_png")]
        link = f"[seed {g.records[0]['seed']}](../../{pngs[0]})" if pngs else "—"
        lines.append(
            f"| {_name(g)} | {_fmt3(*g.stat('routing_separation'))} | {per_text or '—'} "
            f"| {collapsed} | {link} |"
        )
    first = next((g for g in routed if g.first.get("variant") == REFERENCE_VARIANT), routed[0])
    png = next((r.get("routing_png") for r in first.records if r.get("routing_png")), None)
    if png:
        lines += ["", f"![routing of {_name(first)}](../../{png})"]
    return lines + [""]


def _fmt3(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f}±{std:.3f}"


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
