"""Benchmarks: pipeline YAML grids (pipeline.py), input checks and GPU estimate
(preflight.py), and the runner (runner.py) that drives validate.py -> prepare.py (synth,
ingest, scenarios) -> execute.py (cells, here or on a dask cluster: cluster.py) ->
collect.py (records, report).

This is the last stage of the data flow: it may import every stage before it.
"""

from __future__ import annotations

from rsmiss.benchmark.collect import Outcome
from rsmiss.benchmark.pipeline import Cell, Pipeline, expand, load_pipeline
from rsmiss.benchmark.preflight import Missing, missing_inputs, missing_message
from rsmiss.benchmark.runner import run_benchmark, run_pipeline
from rsmiss.benchmark.validate import plan_text

__all__ = [
    "Cell",
    "Missing",
    "Outcome",
    "Pipeline",
    "expand",
    "load_pipeline",
    "missing_inputs",
    "missing_message",
    "plan_text",
    "run_benchmark",
    "run_pipeline",
]
