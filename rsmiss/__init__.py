"""rsmiss: multimodal remote-sensing classification that keeps working with missing modalities."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from rsmiss.version import __version__ as __version__

# Library code logs under "rsmiss" and shows nothing unless the application configures
# logging; the command line does (rsmiss.logs.show_logs).
logging.getLogger(__name__).addHandler(logging.NullHandler())

# Public names resolved lazily, so `import rsmiss` (and the CLI) stays free of torch, zarr, ...
# Each stage adds its entries here: name -> module that defines it.
_LAZY: dict[str, str] = {
    "build_model": "rsmiss.models",
    "open_cube": "rsmiss.cube",
    "load_scenario": "rsmiss.scenarios",
    "load_run": "rsmiss.inference",
}


def train(*args: Any, **kwargs: Any) -> Any:
    """Train one run and return it as a :class:`rsmiss.inference.Run`.

    Arguments are those of :func:`rsmiss.training.train`; training writes the run
    directory, inference reads it back.
    """
    from rsmiss.inference import load_run
    from rsmiss.training import train as train_run

    return load_run(train_run(*args, **kwargs))


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rsmiss' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
