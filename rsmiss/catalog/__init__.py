"""Dataset catalog: one YAML file per dataset, validated into a :class:`DatasetSpec`.

A catalog entry is data about a dataset (file names, array keys, shapes, checksums, classes,
split), kept beside the code rather than in it, so a user adds a dataset by writing one YAML
file. The three benchmarks live in the repository's ``catalog/`` folder (shipped inside the
wheel, see :mod:`rsmiss.resources`); any other path may be given instead of a name. Errors
name the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path

from rsmiss.catalog.schema import (
    RESERVED_NAMES,
    ClassSpec,
    DatasetSpec,
    FileSpec,
    IndexColumns,
    IndexKeys,
    ModalitySpec,
    SplitSpec,
    WavelengthRange,
)
from rsmiss.catalog.sources import ARCHIVE_SUFFIXES, ManualSpec, MemberSpec, SourceSpec
from rsmiss.errors import ConfigError
from rsmiss.resources import data_dir, packaged_file
from rsmiss.yamlschema import read_yaml_mapping, validate_mapping

CATALOG_DIR = data_dir("catalog")
CATALOG_ENV = "RSMISS_CATALOG"


def catalog_dirs() -> list[Path]:
    """Folders searched for a dataset named on the command line: those in ``$RSMISS_CATALOG``
    (``os.pathsep``-separated; a site's own entries, or its own copy of a benchmark's entry
    with a mirror's checksums) before the built-in catalog."""
    extra = [Path(p).expanduser() for p in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if p]
    return [*extra, CATALOG_DIR]


def catalog_names() -> list[str]:
    return sorted({p.stem for d in catalog_dirs() for p in d.glob("*.yaml")})


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file() or "/" in text:
        if not path.is_file() and (packaged := packaged_file(path, "catalog")) is not None:
            return packaged
        if not path.is_file():
            raise ConfigError(f"{path}: dataset YAML not found; check the path")
        return path
    for folder in catalog_dirs():
        candidate = folder / f"{text}.yaml"
        if candidate.is_file():
            return candidate
    known = ", ".join(catalog_names()) or "none"
    raise ConfigError(
        f"unknown dataset '{text}': known datasets are {known}; or pass the path of a dataset YAML"
    )


def load_catalog(name_or_path: str | Path) -> DatasetSpec:
    """Load and validate a catalog entry by name (``trento``) or YAML path."""
    path = _resolve(name_or_path)
    spec = validate_mapping(DatasetSpec, read_yaml_mapping(path, "dataset YAML"), path)
    return spec.model_copy(update={"path": path.resolve()})


__all__ = [
    "ARCHIVE_SUFFIXES",
    "CATALOG_DIR",
    "CATALOG_ENV",
    "ClassSpec",
    "DatasetSpec",
    "FileSpec",
    "IndexColumns",
    "IndexKeys",
    "ManualSpec",
    "MemberSpec",
    "ModalitySpec",
    "RESERVED_NAMES",
    "SourceSpec",
    "SplitSpec",
    "WavelengthRange",
    "catalog_dirs",
    "catalog_names",
    "load_catalog",
]
