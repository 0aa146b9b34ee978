"""Benchmarks: pipeline YAML grids (pipeline.py), input checks and GPU estimate
(preflight.py), and the runner that drives ingest -> scenarios -> train/evaluate -> report.

This is the last stage of the data flow: it may import every stage before it.
"""

from __future__ import annotations

from rsmiss.benchmark.pipeline import Cell, Pipeline, expand, load_pipeline
from rsmiss.benchmark.preflight import Missing, missing_inputs, missing_message
from rsmiss.benchmark.runner import Outcome, plan_text, run_benchmark, run_pipeline

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
