"""The catalog and pipeline YAML folders, wherever rsmiss runs from.

``catalog/`` and ``pipelines/`` live at the top of the repository: they are the source of
truth that contributors edit and review. A wheel cannot ship top-level folders, so the build
(``setup.py``) copies them into the package as ``rsmiss/_data/{catalog,pipelines}``, read here
with :mod:`importlib.resources`. A source checkout or an editable install has no such copy
and reads the top-level folders directly, so an edited YAML takes effect without a rebuild.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_FOLDERS = ("catalog", "pipelines")
PACKAGED = "_data"


def data_dir(name: str) -> Path:
    """The ``catalog`` or ``pipelines`` folder: the packaged copy, else the repository's."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; one of {DATA_FOLDERS}")
    packaged = resources.files("rsmiss") / PACKAGED / name
    # An installed wheel is a plain folder; a zip import would need extraction, which pip
    # never produces, so the packaged copy is used only when it is a real directory.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


def packaged_file(path: Path, folder: str) -> Path | None:
    """``pipelines/x.yaml`` (or ``catalog/x.yaml``) written relative to the repository, found
    in the packaged copy when the working directory has no such file; else None."""
    parts = path.parts
    if len(parts) == 2 and parts[0] == folder and not path.is_absolute():
        candidate = data_dir(folder) / parts[1]
        if candidate.is_file():
            return candidate
    return None
