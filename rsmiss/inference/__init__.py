"""Using trained runs: read a run directory, re-score it, map whole scenes.

Training (``rsmiss.training``) writes run directories; this package reads them.
``load_run(path_or_id)`` gives a :class:`Run` (``.metrics``, ``.config``, ``.load_model()``,
``.predict(...)``, ``.evaluate(...)``). See ``docs/design.md`` (model and training contract).
"""

from __future__ import annotations

from rsmiss.inference.evaluate import evaluate_run, scenario_ids
from rsmiss.inference.predict import predict_run
from rsmiss.inference.run import Run, load_run
from rsmiss.inference.rundir import RunDir, resolve_device

__all__ = [
    "Run",
    "RunDir",
    "evaluate_run",
    "load_run",
    "predict_run",
    "resolve_device",
    "scenario_ids",
]
