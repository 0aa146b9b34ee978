"""The catalog entry's schema: raw files, modalities, classes, split and sources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rsmiss.catalog.fields import Sha256
from rsmiss.catalog.sources import ManualSpec, SourceSpec
from rsmiss.yamlschema import SafeName, StrictModel

# Names a modality may not take: they are the cube's own variables and dimensions.
RESERVED_NAMES = frozenset(
    {"sample", "label", "split", "row", "col", "observed", "label_map", "modality", "y", "x"}
)


_SUFFIX_FORMAT = {
    ".mat": "mat",
    ".tif": "geotiff",
    ".tiff": "geotiff",
    ".img": "envi",
    ".dat": "envi",
    ".bsq": "envi",
    ".bil": "envi",
    ".bip": "envi",
    ".txt": "roi",
    ".csv": "csv",
}


class FileSpec(StrictModel):
    """One raw file: where it is, how to read it and what it must look like."""

    file: str = Field(description="file name, relative to the raw folder")
    format: Literal["mat", "geotiff", "envi", "roi", "csv"] | None = Field(
        None, description="reader; inferred from the suffix when omitted"
    )
    key: str | None = Field(None, description="MATLAB variable name (mat only)")
    layout: Literal["hwc", "chw", "hw"] | None = Field(
        None, description="axis order of a MATLAB array (default: hw for 2-D, hwc for 3-D)"
    )
    shape: tuple[int, ...] | None = Field(None, description="expected array shape, as stored")
    dtype: str | None = Field(
        None, description="expected dtype; ingest warns on another (--strict: refuses)"
    )
    sha256: Sha256 = Field(None, description="expected checksum; mismatch warns")
    nodata: float | None = Field(None, description="nodata value (overrides the file's own)")

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        import numpy as np

        if v is not None:
            try:
                np.dtype(v)
            except TypeError:
                raise ValueError(f"{v!r} is not a dtype (uint8, uint16, float32, ...)") from None
        return v

    @property
    def reader(self) -> str:
        if self.format is not None:
            return self.format
        fmt = _SUFFIX_FORMAT.get(Path(self.file).suffix.lower())
        if fmt is None:
            return "envi"  # ENVI binaries often have no suffix; GDAL reads the .hdr beside
        return fmt


_NAME_KIND = {"hs": "hyperspectral", "lidar": "lidar", "sar": "sar"}


class WavelengthRange(StrictModel):
    """Evenly spaced band centres, as papers usually state them (first and last, nm)."""

    start: float
    stop: float


class ModalitySpec(StrictModel):
    """One sensor: its name in the cube, band count and source file."""

    name: str
    bands: int = Field(gt=0)
    source: FileSpec
    band_indices: list[int] | None = Field(
        None, description="0-based bands of the file to keep (default: all)"
    )
    wavelengths: list[float] | WavelengthRange | None = None
    resampling: Literal["bilinear", "nearest", "cubic", "average"] = "bilinear"
    kind: Literal["hyperspectral", "lidar", "sar", "other"] | None = Field(
        None,
        description="sensor kind; hyperspectral patches are stored as float16 (default: from "
        "the name - hs, lidar, sar - else hyperspectral when wavelengths are given, else other)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError("must be lower-case letters, digits and '_', starting with a letter")
        if v in RESERVED_NAMES or v.startswith("scene_") or v.endswith("_band"):
            raise ValueError(f"'{v}' is reserved for the cube's own variables")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModalitySpec:
        if self.band_indices is not None and len(self.band_indices) != self.bands:
            raise ValueError(
                f"band_indices has {len(self.band_indices)} entries, bands={self.bands}"
            )
        if isinstance(self.wavelengths, list) and len(self.wavelengths) != self.bands:
            raise ValueError(f"wavelengths has {len(self.wavelengths)} entries, bands={self.bands}")
        return self

    @property
    def modality_kind(self) -> str:
        """``kind`` as given, else inferred (``hs`` -> hyperspectral, has wavelengths -> too)."""
        if self.kind is not None:
            return self.kind
        if self.name in _NAME_KIND:
            return _NAME_KIND[self.name]
        return "hyperspectral" if self.wavelengths is not None else "other"

    def wavelength_list(self) -> list[float] | None:
        if self.wavelengths is None:
            return None
        if isinstance(self.wavelengths, list):
            return [float(w) for w in self.wavelengths]
        lo, hi, n = self.wavelengths.start, self.wavelengths.stop, self.bands
        step = (hi - lo) / (n - 1) if n > 1 else 0.0
        return [round(lo + i * step, 2) for i in range(n)]


class ClassSpec(StrictModel):
    name: str
    color: tuple[int, int, int] = (0, 0, 0)

    @field_validator("color")
    @classmethod
    def _rgb(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(c < 0 or c > 255 for c in v):
            raise ValueError("colour components must be 0..255")
        return v


class IndexColumns(StrictModel):
    """Header names of the index CSV's columns (``split: {method: index}``)."""

    row: str = Field("row", min_length=1, description="0-based pixel row of the reference grid")
    col: str = Field("col", min_length=1, description="0-based pixel column")
    split: str = Field("split", min_length=1, description="train or test")
    label: str = Field("label", min_length=1, description="class id 1..K (without 'labels')")


class IndexKeys(StrictModel):
    """Variables of a MATLAB index file: (N, 2) arrays of 0-based pixel row, col."""

    train: str = Field(min_length=1)
    test: str = Field(min_length=1)


class SplitSpec(StrictModel):
    """How training and test pixels are given.

    ``label_maps``: two label rasters/arrays (``train``, ``test``), optional ``labels`` (full
    map, checked against them). ``roi``: two ENVI ROI text files, ROI *i* = class *i*.
    ``random``: one ``labels`` raster split per class with ``seed`` and ``train_per_class``
    (or ``train_fraction``). ``index``: a CSV ``file`` listing pixel row, col and split (and
    label, unless a ``labels`` raster gives them), or a MATLAB ``.mat`` file whose ``keys``
    name the training and test arrays of (row, col) pairs, labelled by a ``labels`` raster.
    ``none``: no labels, the scene is ingested for prediction only.
    """

    method: Literal["label_maps", "roi", "random", "index", "none"]
    train: FileSpec | None = None
    test: FileSpec | None = None
    labels: FileSpec | None = None
    seed: int = 0
    train_per_class: int | None = Field(None, gt=0)
    train_fraction: float | None = Field(None, gt=0, lt=1)
    file: str | None = Field(None, description="index CSV, relative to the raw folder")
    sha256: Sha256 = Field(None, description="expected checksum of the index file")
    columns: IndexColumns = Field(default_factory=IndexColumns)
    keys: IndexKeys | None = Field(None, description="MATLAB index file: its two variables")

    @model_validator(mode="after")
    def _needs(self) -> SplitSpec:
        m = self.method
        if m in ("label_maps", "roi") and (self.train is None or self.test is None):
            raise ValueError(f"method '{m}' needs both 'train' and 'test' files")
        if m == "random":
            if self.labels is None:
                raise ValueError("method 'random' needs a 'labels' file")
            if (self.train_per_class is None) == (self.train_fraction is None):
                raise ValueError(
                    "method 'random' needs exactly one of train_per_class/train_fraction"
                )
        if m == "none" and any(f is not None for f in (self.train, self.test, self.labels)):
            raise ValueError("method 'none' takes no label files")
        if m == "index":
            if self.file is None:
                raise ValueError("method 'index' needs the index CSV as 'file'")
            if self.train is not None or self.test is not None:
                raise ValueError("method 'index' takes no 'train'/'test' files; 'file' gives both")
            if self.file.lower().endswith(".mat"):
                if self.keys is None or self.labels is None:
                    raise ValueError(
                        "a MATLAB index file needs 'keys' (train, test) and a 'labels' raster"
                    )
            elif self.keys is not None:
                raise ValueError("'keys' belongs to a MATLAB (.mat) index file only")
        elif {"file", "sha256", "columns", "keys"} & self.model_fields_set:
            raise ValueError("'file', 'sha256', 'columns' and 'keys' belong to method 'index' only")
        if m == "roi":
            for f in (self.train, self.test):
                if f is not None and f.reader != "roi":
                    raise ValueError(f"method 'roi' needs ROI text files, got {f.file}")
        return self

    @property
    def index(self) -> FileSpec | None:
        """The index CSV as a raw file (checksummed like the others)."""
        if self.file is None:
            return None
        fmt = "mat" if self.file.lower().endswith(".mat") else "csv"
        return FileSpec(file=self.file, format=fmt, sha256=self.sha256)

    def files(self) -> dict[str, FileSpec]:
        out = {"train": self.train, "test": self.test, "labels": self.labels, "index": self.index}
        return {k: v for k, v in out.items() if v is not None}


class DatasetSpec(StrictModel):
    """A validated catalog entry; ``path`` is the YAML it came from."""

    name: SafeName
    title: str = ""
    description: str = ""
    citation: str = ""
    reference: str | None = Field(
        None, description="modality whose grid the others follow (default: hs, else the first)"
    )
    shape: tuple[int, int] | None = Field(None, description="scene height, width")
    modalities: list[ModalitySpec] = Field(min_length=1)
    classes: list[ClassSpec] = Field(default_factory=list)
    split: SplitSpec
    sources: list[SourceSpec] = Field(
        default_factory=list, description="where `rsmiss download` fetches the raw files"
    )
    manual: ManualSpec | None = Field(None, description="raw files that must be fetched by hand")
    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"modality names must be unique, got {names}")
        if self.reference is not None and self.reference not in names:
            raise ValueError(f"reference '{self.reference}' is not one of the modalities {names}")
        if self.split.method != "none" and not self.classes:
            raise ValueError("a labelled dataset needs its 'classes'")
        if self.sources or self.manual is not None:
            given = [t for src in self.sources for t in self.source_targets(src)]
            given += self.manual.files if self.manual is not None else []
            if len(set(given)) != len(given):
                raise ValueError(f"sources/manual name a raw file twice: {sorted(given)}")
        return self

    def unsourced_files(self) -> list[str]:
        """Raw files that neither ``sources`` nor ``manual`` provide (checked by download only,
        so a local copy of an entry with other file names still ingests)."""
        given = {t for src in self.sources for t in self.source_targets(src)}
        given |= set(self.manual.files) if self.manual is not None else set()
        names = dict.fromkeys(f.file for f in self.files().values())
        return [name for name in names if name not in given]

    @staticmethod
    def source_targets(src: SourceSpec) -> list[str]:
        """File names a source publishes under ``raw/NAME/``."""
        return [m.target for m in src.members] if src.is_archive else [src.name]

    def expected_sha256(self, file: str) -> str | None:
        """The catalog's checksum of a raw file by name (None when unknown)."""
        for spec in self.files().values():
            if spec.file == file and spec.sha256 is not None:
                return spec.sha256
        return None

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    @property
    def reference_name(self) -> str:
        if self.reference is not None:
            return self.reference
        names = self.modality_names
        return "hs" if "hs" in names else names[0]  # docs/design.md, 'Ingest'

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def palette(self) -> list[list[int]]:
        return [list(c.color) for c in self.classes]

    def files(self) -> dict[str, FileSpec]:
        """Every raw file by role: ``modality:<name>`` and ``split:<role>``."""
        out = {f"modality:{m.name}": m.source for m in self.modalities}
        out.update({f"split:{k}": v for k, v in self.split.files().items()})
        return out

    def canonical_json(self) -> str:
        """The spec as deterministic JSON: part of the cube id, independent of YAML layout."""
        doc = self.model_dump(mode="json", exclude={"sources", "manual"})  # where, not what
        for m in doc["modalities"]:  # unset kind: as before the field existed (same cube ids)
            if m.get("kind") is None:
                m.pop("kind", None)
        if doc["split"]["method"] != "index":  # likewise the index-only split fields
            for key in ("file", "sha256", "columns"):
                doc["split"].pop(key, None)
        if doc["split"].get("keys") is None:
            doc["split"].pop("keys", None)
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))
