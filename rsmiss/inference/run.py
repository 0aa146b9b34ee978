"""``Run`` and ``load_run``: a run directory with what can be done with its trained model.

Training writes run directories (``rsmiss.training``); this is how they are read back:
``load_run(path_or_id)`` gives ``.metrics``, ``.config``, ``.perf``, ``.environment``,
``.load_model()``, ``.predict(...)`` and ``.evaluate(...)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rsmiss.errors import DataError
from rsmiss.inference.evaluate import evaluate_run
from rsmiss.inference.predict import predict_run
from rsmiss.inference.rundir import RunDir
from rsmiss.workspace import Workspace


class Run(RunDir):
    """A run directory plus prediction and re-scoring with its model."""

    def predict(self, cube: str | os.PathLike[str] | None = None, **options: Any) -> Path:
        """Classify ``cube``'s scene (default: the run's own); returns the GeoTIFF path.

        ``options`` and their defaults are those of :func:`rsmiss.inference.predict.predict_run`.
        """
        return predict_run(self, cube=cube, **options)

    def evaluate(self, scenario: str | os.PathLike[str]) -> dict[str, Any]:
        """Re-score on another scenario's test masks; writes ``eval/<scenario-id>.json``."""
        return evaluate_run(self, scenario)


def load_run(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Run:
    """A run by directory path or by run id under ``ROOT/runs``."""
    p = Path(path)
    if (p / "config.json").is_file():
        return Run(p)
    candidate = Workspace(root).runs / str(path)
    if (candidate / "config.json").is_file():
        return Run(candidate)
    raise DataError(
        f"run {path!s} not found (neither a run directory nor an id under "
        f"{Workspace(root).runs}); see rsmiss train"
    )
