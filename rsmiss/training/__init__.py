"""Training, evaluation and classification maps (DESIGN §6).

``train(...)`` runs one training run and returns a :class:`Run`; ``load_run(path_or_id)``
opens a finished one (``.metrics``, ``.config``, ``.predict(...)``, ``.evaluate(...)``);
``plan_runs`` + ``execute`` drive the grids of ``rsmiss train``.
"""

from __future__ import annotations

from rsmiss.training.config import DEFAULT_EPOCHS, RunConfig
from rsmiss.training.plan import PlannedRun, plan_runs
from rsmiss.training.run import execute, train
from rsmiss.training.rundir import Run, load_run

__all__ = [
    "DEFAULT_EPOCHS",
    "PlannedRun",
    "Run",
    "RunConfig",
    "execute",
    "load_run",
    "plan_runs",
    "train",
]
