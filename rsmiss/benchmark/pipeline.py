"""Benchmark pipelines: a YAML grid, validated with pydantic, expanded into cells.

A pipeline names the datasets, the training recipe, the seeds and one or more grid blocks;
each block is the cartesian product of its datasets x (rates x settings | availability
rows) x methods (x placements) x seeds. One *cell* is one number of a paper table: a trained
model evaluated on one scenario's test masks. Cells evaluated on another scenario than the
one they were trained on (Fig. 4) share the training run with their "home" cell.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rsmiss.errors import ConfigError
from rsmiss.resources import data_dir, packaged_file
from rsmiss.yamlschema import SafeName, StrictModel, read_yaml_mapping, validate_mapping

PIPELINE_DIR = data_dir("pipelines")
PLACEMENT_RE = re.compile(r"^(first|last)_(\d+)x(\d+)$")
SETTING_RE = re.compile(r"^[a-z][a-z0-9_+-]*$")


class SynthSpec(StrictModel):
    """Synthesise the raw files (``rsmiss synth``) when they are absent: tests and smoke runs."""

    scale: float = Field(1.0, gt=0, le=1)
    seed: int = Field(0, ge=0)


class IngestOptions(StrictModel):
    """The ``ingest()`` keywords a pipeline may set; checked before anything is synthesised."""

    patch_size: int = Field(14, gt=0)
    patches: bool = True
    workers: int | None = Field(None, gt=0)
    scheduler: str | None = None
    strict: bool = False
    force: bool = False

    @model_validator(mode="after")
    def _one_executor(self) -> IngestOptions:
        if self.workers is not None and self.scheduler is not None:
            raise ValueError("give workers or scheduler, not both")
        return self


class DatasetEntry(StrictModel):
    """Per-dataset settings: default modalities, synthetic stand-in, ingest options."""

    modalities: list[str] | None = None
    synthetic: SynthSpec | None = None
    ingest: IngestOptions = Field(default_factory=IngestOptions)


class PretrainSpec(StrictModel):
    """A ``rsmiss pretrain`` step run before the cells (``recipe.backbone_weights: pretrain``).

    Its datasets are prepared like the grid's (``datasets:`` entries apply: synthetic
    stand-ins, ingest options); they need not be datasets the grid trains on.
    """

    datasets: list[str] = Field(min_length=1)
    objective: Literal["mae", "contrastive", "supervised"] = "mae"
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(256, gt=1)
    lr: float = Field(1e-3, gt=0)
    max_pixels: int | None = Field(None, gt=0)
    patch_size: int | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    name: SafeName | None = None

    def request(self, backbone: str) -> Any:
        from rsmiss.pretrain import PretrainRequest

        return PretrainRequest(
            datasets=tuple(self.datasets),
            objective=self.objective,
            backbone=backbone,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            max_pixels=self.max_pixels,
            patch_size=self.patch_size,
            seed=self.seed,
            name=self.name,
        )


class Recipe(StrictModel):
    """Training recipe shared by every cell (None = the trainer's default).

    ``backbone_weights``: a weights path, ``pretrain:NAME`` (``ROOT/weights/NAME.safetensors``
    from ``rsmiss pretrain``) or ``pretrain`` (the pipeline's own ``pretrain:`` step); None
    = ``--backbone-weights`` / the default weights file.
    """

    backbone: str = "vit-b-16"
    random_init: bool = False
    backbone_weights: str | None = None
    epochs: int | Literal["auto"] | None = Field(
        None, description="epochs, or auto (stopped on validation OA; see training.config)"
    )
    batch_size: int | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)
    precision: str | None = None
    devices: int | None = Field(None, gt=0, description="GPUs per run (DDP); default 1")
    train_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"epochs must be at least 1 or 'auto', got {v}")
        return v


class MethodEntry(StrictModel):
    """A method, possibly with options; ``name`` labels it in reports, ``paper`` in the tables."""

    method: str
    name: str | None = None
    paper: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.method


class Block(StrictModel):
    """One cartesian grid; either ``rates`` x ``settings`` or ``availability`` rows."""

    table: Literal["table1", "table3", "table4", "table5", "fig4"] | None = None
    datasets: list[str] = Field(min_length=1)
    modalities: list[str] | None = None
    rates: list[float] = Field(default_factory=list)
    settings: list[str] = Field(default_factory=list)
    availability: list[dict[str, float]] = Field(default_factory=list)
    methods: list[str | MethodEntry] = Field(min_length=1)
    placements: list[str] = Field(default_factory=list)
    evaluate_on: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        for r in v:
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"rate {r} is outside [0, 1]; write e.g. 0.9 for 90 %")
        return v

    @field_validator("settings")
    @classmethod
    def _settings(cls, v: list[str]) -> list[str]:
        for s in v:
            if not SETTING_RE.match(s):
                raise ValueError(f"setting {s!r} is not a pattern name (other, hs, both, all, ...)")
        return v

    @field_validator("availability")
    @classmethod
    def _avail(cls, v: list[dict[str, float]]) -> list[dict[str, float]]:
        for row in v:
            for m, a in row.items():
                if not 0.0 <= a <= 1.0:
                    raise ValueError(f"availability of {m} is {a}, outside [0, 1]")
            if sum(1.0 - a for a in row.values()) > 1.0 + 1e-9:
                raise ValueError(f"availability {row} is infeasible: Σ(1 − a_m) must be ≤ 1")
        return v

    @field_validator("placements")
    @classmethod
    def _placements(cls, v: list[str]) -> list[str]:
        for p in v:
            if not PLACEMENT_RE.match(p):
                raise ValueError(f"placement {p!r} must look like last_6x2 or first_6x2")
        return v

    @model_validator(mode="after")
    def _shape(self) -> Block:
        if self.availability and (self.rates or self.settings):
            raise ValueError("give either 'availability' rows or 'rates' + 'settings', not both")
        if not self.availability and not (self.rates and self.settings):
            raise ValueError("needs 'rates' and 'settings' (or 'availability' rows)")
        for train, tests in self.evaluate_on.items():
            if train not in self.settings:
                raise ValueError(f"evaluate_on names {train!r}, which is not in 'settings'")
            for t in tests:
                if not SETTING_RE.match(t):
                    raise ValueError(f"evaluate_on: {t!r} is not a pattern name")
        labels = [m if isinstance(m, str) else m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ValueError(f"method labels must be unique in a block, got {labels}")
        return self


class Pipeline(StrictModel):
    """A validated pipeline file; ``path`` is where it came from."""

    name: SafeName
    description: str = ""
    table: Literal["table1", "table3", "table4", "table5", "fig4"] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    recipe: Recipe = Field(default_factory=Recipe)
    datasets: dict[str, DatasetEntry] = Field(default_factory=dict)
    pretrain: PretrainSpec | None = None
    grid: list[Block] = Field(min_length=1)
    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _weights(self) -> Pipeline:
        w = self.recipe.backbone_weights
        if w is not None and self.recipe.random_init:
            raise ValueError("recipe: give backbone_weights or random_init: true, not both")
        if w == "pretrain" and self.pretrain is None:
            raise ValueError("recipe.backbone_weights: pretrain needs a 'pretrain:' block")
        if w == "pretrain:":
            raise ValueError(
                "recipe.backbone_weights: write pretrain:NAME (NAME of rsmiss pretrain)"
            )
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct and ≥ 0, got {v}")
        return v

    def dataset_names(self) -> list[str]:
        return list(dict.fromkeys(ds for b in self.grid for ds in b.datasets))

    def prepared_datasets(self) -> list[str]:
        """Every dataset whose cube the pipeline needs: the grid's, then pretraining's."""
        extra = self.pretrain.datasets if self.pretrain is not None else []
        return list(dict.fromkeys([*self.dataset_names(), *extra]))

    def entry(self, dataset: str) -> DatasetEntry:
        return self.datasets.get(dataset) or DatasetEntry()


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` (or ``0 1 2``) -> [0, 1, 2]: distinct integers >= 0."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct integers >= 0 such as 0,1,2; got {text!r}")
    return seeds


def resolve_pipeline_path(name_or_path: str | Path) -> Path:
    """A path, or a bare name of a file in the repository's ``pipelines/`` folder.

    ``pipelines/NAME.yaml`` written as in the README finds the packaged copy when the working
    directory is not a checkout.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if (packaged := packaged_file(path, "pipelines")) is not None:
        return packaged
    for cand in (PIPELINE_DIR / f"{name_or_path}", PIPELINE_DIR / f"{name_or_path}.yaml"):
        if "/" not in str(name_or_path) and cand.is_file():
            return cand
    raise ConfigError(f"{path}: pipeline YAML not found; give the path of a pipelines/*.yaml file")


def load_pipeline(name_or_path: str | Path) -> Pipeline:
    """Read and validate a pipeline YAML; errors name the file and the field."""
    path = resolve_pipeline_path(name_or_path)
    raw = read_yaml_mapping(path, "pipeline")
    raw.setdefault("name", path.stem)
    pipe = validate_mapping(Pipeline, raw, path)
    return pipe.model_copy(update={"path": path.resolve()})


@dataclass(frozen=True)
class Cell:
    """One number of a report: a trained model evaluated on one scenario's test masks."""

    pipeline: str
    table: str | None
    dataset: str
    modalities: tuple[str, ...] | None  # None = the dataset's default pair
    setting: str  # pattern name, or "avail"
    rate: float
    availability: tuple[tuple[str, float], ...] | None
    method: str
    variant: str  # label in reports
    paper_name: str  # name in the paper's table
    placement: str | None
    options_json: str  # method options, sorted JSON
    seed: int
    eval_setting: str | None = None  # None = the training scenario's own test masks

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json)

    @property
    def train_cell(self) -> Cell:
        return replace(self, eval_setting=None)

    @property
    def is_eval(self) -> bool:
        return self.eval_setting is not None

    @property
    def scenario_label(self) -> str:
        if self.availability is not None:
            return "avail-" + "-".join(f"{m}{a:.2f}" for m, a in self.availability)
        return f"{self.setting}-r{self.rate:.2f}"

    @property
    def group_id(self) -> str:
        """``cell_id`` without the seed, prefixed by the table: what reports average over."""
        return f"{self.table or '-'}:{self.cell_id.replace(f'/s{self.seed}', '', 1)}"

    @property
    def cell_id(self) -> str:
        parts = [self.dataset, self.scenario_label, self.variant]
        if self.placement:
            parts.append(self.placement)
        text = "/".join(parts) + f"/s{self.seed}"
        if self.eval_setting:
            text += f"@{self.eval_setting}-r{self.rate:.2f}"
        return text

    def paper_query(self) -> dict[str, Any]:
        """What the paper tables are looked up by (see ``rsmiss.reports.paper``)."""
        return {
            "table": self.table,
            "dataset": self.dataset,
            "modalities": list(self.modalities) if self.modalities else None,
            "setting": self.eval_setting or self.setting,
            "train_setting": self.setting,
            "rate": self.rate,
            "availability": dict(self.availability) if self.availability else None,
            "method": self.method,
            "paper_name": self.paper_name,
            "placement": self.placement,
            "has_options": bool(self.options),
            "options": self.options,
        }


def _method_entries(block: Block) -> list[MethodEntry]:
    return [MethodEntry(method=m) if isinstance(m, str) else m for m in block.methods]


def expand(pipe: Pipeline) -> list[Cell]:
    """Every cell of the pipeline, in table order (block, dataset, rate, setting, method, seed)."""
    cells: list[Cell] = []
    for block in pipe.grid:
        table = block.table or pipe.table
        for ds in block.datasets:
            mods = block.modalities or pipe.entry(ds).modalities
            mods_t = tuple(mods) if mods else None
            rows: list[tuple[str, float, tuple | None]] = []
            if block.availability:
                for av in block.availability:
                    order = list(mods_t or av.keys())
                    order += [m for m in av if m not in order]
                    full = tuple((m, float(av.get(m, 1.0))) for m in order)
                    rows.append(("avail", round(sum(1 - a for _, a in full), 6), full))
            else:
                rows = [(s, float(r), None) for r in block.rates for s in block.settings]
            for setting, rate, avail in rows:
                evals = [None] + [t for t in block.evaluate_on.get(setting, []) if t != setting]
                for entry in _method_entries(block):
                    for placement in block.placements or [None]:
                        for ev in evals:
                            for seed in pipe.seeds:
                                cells.append(
                                    Cell(
                                        pipeline=pipe.name,
                                        table=table,
                                        dataset=ds,
                                        modalities=mods_t,
                                        setting=setting,
                                        rate=rate,
                                        availability=avail,
                                        method=entry.method,
                                        variant=entry.label,
                                        paper_name=entry.paper or entry.method,
                                        placement=placement,
                                        options_json=json.dumps(entry.options, sort_keys=True),
                                        seed=seed,
                                        eval_setting=ev,
                                    )
                                )
    seen: set[tuple[str | None, str]] = set()
    for c in cells:
        if (c.table, c.cell_id) in seen:
            where = pipe.path or pipe.name
            raise ConfigError(f"{where}: cell {c.cell_id} appears twice; remove the duplicate")
        seen.add((c.table, c.cell_id))
    return cells


def placement_options(placement: str | None) -> dict[str, Any]:
    """``last_6x2`` -> the model options for that placement (Table 4's notation)."""
    if placement is None:
        return {}
    m = PLACEMENT_RE.match(placement)
    assert m is not None  # validated by Block
    return {"placement": m.group(1), "layers": int(m.group(2)), "experts": int(m.group(3))}
