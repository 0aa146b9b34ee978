"""CLI subcommands, one module per pipeline stage; each defines ``register(group)``.

Modules import their stage lazily inside the command body.
"""

from __future__ import annotations

import importlib

import click

# Order is the order of the pipeline, which is also the order of ``rsmiss --help``.
COMMAND_MODULES = (
    "download",
    "synth",
    "ingest",
    "scenarios",
    "pretrain",
    "train",
    "evaluate",
    "predict",
    "benchmark",
    "demo",
)


def register_all(group: click.Group) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"rsmiss.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"rsmiss.commands.{name}":
                continue  # stage not built yet: no placeholder command
            raise
        module.register(group)
