"""Checks that run before any work: the recipe, the methods and their options; and the
``--dry-run`` listing of what a pipeline would run.

Raw files and weights are checked by :mod:`rsmiss.benchmark.preflight`; everything here
fails with one line naming the pipeline file and field, before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rsmiss.benchmark.pipeline import Cell, Pipeline, placement_options
from rsmiss.benchmark.preflight import estimate
from rsmiss.benchmark.prepare import scenario_of
from rsmiss.errors import ConfigError


def validate_methods(pipe: Pipeline, cells: Sequence[Cell]) -> None:
    """Unknown methods, option keys or option values fail before anything is written."""
    from rsmiss.models import METHODS
    from rsmiss.models.factory import check_options

    where = pipe.path or pipe.name
    for c in cells:
        if c.method not in METHODS:
            raise ConfigError(
                f"{where}: unknown method {c.method!r} (cell {c.cell_id}); "
                f"known: {', '.join(sorted(METHODS))}"
            )
        keys = set(METHODS[c.method].options)
        opts = {**c.options, **placement_options(c.placement)}
        for k in opts:
            if k not in keys:
                raise ConfigError(
                    f"{where}: method {c.method} has no option {k!r} (cell {c.cell_id}); "
                    f"its options: {', '.join(sorted(keys))}"
                )
        try:  # each distinct (method, options) is built once: check_options remembers
            check_options(c.method, opts, pipe.recipe.backbone)
        except ConfigError as exc:
            raise ConfigError(f"{where}: cell {c.cell_id}: {exc}") from None


def validate_recipe(pipe: Pipeline) -> None:
    """The recipe's training options and precision fail before anything is written, as
    ``rsmiss train --set`` would reject them (and not hours later, at the first run)."""
    from rsmiss.training.config import PRECISIONS, TRAIN_OPTION_DEFAULTS, RunConfig

    where = f"{pipe.path or pipe.name}: recipe"
    r = pipe.recipe
    unknown = sorted(set(r.train_options) - set(TRAIN_OPTION_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{where}.train_options: unknown key {unknown[0]!r}; "
            f"known: {', '.join(sorted(TRAIN_OPTION_DEFAULTS))}"
        )
    if r.precision is not None and r.precision not in PRECISIONS:
        raise ConfigError(
            f"{where}.precision must be one of {', '.join(PRECISIONS)}; got {r.precision!r}"
        )
    try:
        RunConfig("check", "check", "check", random_init=True, train_options=dict(r.train_options))
    except ConfigError as exc:
        raise ConfigError(f"{where}.train_options: {str(exc).removeprefix('--set ')}") from None


def max_epochs(pipe: Pipeline) -> int:
    """Epochs a cell trains at most (``auto``: the early-stopping maximum)."""
    from rsmiss.training.config import AUTO_MAX_EPOCHS, DEFAULT_EPOCHS

    if pipe.recipe.epochs == "auto":
        return AUTO_MAX_EPOCHS
    return pipe.recipe.epochs or DEFAULT_EPOCHS


def plan_text(pipe: Pipeline, cells: Sequence[Cell]) -> str:
    """The ``--dry-run`` listing: every cell, its scenario and paper number, and the estimate."""
    from rsmiss.reports.paper import lookup

    lines = [f"pipeline {pipe.name} ({pipe.path or 'built in'}): {len(cells)} cells"]
    for i, c in enumerate(cells, 1):
        hit = lookup(c.paper_query())
        paper = f"paper {hit.table} {hit.oa:.2f}" if hit else "paper —"
        test = f" test {scenario_of(c, True)}" if c.is_eval else ""
        opts = {**c.options, **placement_options(c.placement)}
        extra = f" {json.dumps(opts, sort_keys=True)}" if opts else ""
        lines.append(
            f"  {i:4d}  {c.cell_id:<52} train {scenario_of(c)}{test}  {c.method}{extra}  {paper}"
        )
    lines.append("  " + estimate(pipe, list(cells), max_epochs(pipe)).text())
    return "\n".join(lines)
