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
    "methods",
    "train",
    "evaluate",
    "predict",
    "benchmark",
    "demo",
)


def register_all(group: click.Group) -> None:
    """Import every command module; one that fails to import raises rather than leaving the
    CLI silently without its command."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"rsmiss.commands.{name}").register(group)
