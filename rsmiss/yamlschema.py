"""YAML files validated by pydantic models: one reader, one error format for every YAML input.

The dataset catalog and the benchmark pipelines are both user-written YAML; a user who
breaks either gets the same one-line error naming the file and the offending field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from rsmiss.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo must not be silently ignored); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
        raise ValueError("must be letters, digits, '_', '-' or '.'")
    return v


# A name that becomes a file or folder name (cubes/<dataset>.zarr, reports/<pipeline>/).
SafeName = Annotated[str, AfterValidator(_check_name)]


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path``; ``what`` names the file in errors."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{path}:{where} invalid YAML ({problem}); fix the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of fields, got {type(raw).__name__}")
    return raw


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the dotted path a user reads in the YAML (grid.0.rates)."""
    return ".".join(str(p) for p in loc) or "(top level)"


def validate_mapping(model: type[ModelT], raw: dict[str, Any], path: Path) -> ModelT:
    """``model`` validated from ``raw``; the first error names the file and the field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errs = exc.errors()
        first = errs[0]
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ConfigError(
            f"{path}: field '{field_path(first['loc'])}': {first['msg']}{more}"
        ) from exc
