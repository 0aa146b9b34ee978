"""Training runs: plan them, train them, write their run directories.

``train(...)`` trains one run and returns its directory; ``plan_runs`` + ``execute`` drive
the grids of ``rsmiss train``. Reading a run back (``load_run``), re-scoring and mapping
scenes with it live in ``rsmiss.inference``. See ``docs/design.md`` (model and training
contract).
"""

from __future__ import annotations

from rsmiss.training.config import DEFAULT_EPOCHS, RunConfig
from rsmiss.training.plan import PlannedRun, plan_runs
from rsmiss.training.run import execute, train

__all__ = [
    "DEFAULT_EPOCHS",
    "PlannedRun",
    "RunConfig",
    "execute",
    "plan_runs",
    "train",
]
