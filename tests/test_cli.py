"""The command line's shell: version, help, and the one-line error contract."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import rsmiss
from rsmiss.cli import RsmissGroup, main
from rsmiss.errors import RsmissError


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert rsmiss.__version__ in result.output


EXPECTED_COMMANDS = (
    "synth", "ingest", "scenarios", "pretrain", "methods", "train", "evaluate", "predict",
    "benchmark", "demo", "download",
)  # fmt: skip


def test_help_lists_every_pipeline_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    for name in EXPECTED_COMMANDS:
        assert name in main.commands, name
        assert main.commands[name].callback is not None
        assert f"  {name} " in result.output, name


def test_a_command_module_that_fails_to_import_is_loud(monkeypatch):
    import rsmiss.commands as commands

    monkeypatch.setattr(commands, "COMMAND_MODULES", (*commands.COMMAND_MODULES, "no_such"))
    with pytest.raises(ModuleNotFoundError, match="rsmiss.commands.no_such"):
        commands.register_all(click.Group())


def _group_raising(exc: Exception) -> click.Group:
    @click.group(cls=RsmissGroup)
    @click.option("--debug", is_flag=True)
    def grp(debug):
        pass

    @grp.command()
    @click.option("--rate", type=float, required=True)
    def boom(rate):
        raise exc

    return grp


def test_user_error_is_one_line_exit_2():
    grp = _group_raising(RsmissError("is not a cube", source="cubes/x.zarr"))
    result = CliRunner().invoke(grp, ["boom", "--rate", "1"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: cubes/x.zarr: is not a cube"]
    assert "Traceback" not in result.output


def test_debug_shows_traceback():
    grp = _group_raising(RsmissError("broken"))
    result = CliRunner().invoke(grp, ["--debug", "boom", "--rate", "1"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_bad_flag_value_is_one_line_exit_2():
    grp = _group_raising(RsmissError("unused"))
    result = CliRunner().invoke(grp, ["boom", "--rate", "abc"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--rate" in lines[0]


def test_error_message_is_folded_to_one_line():
    assert "\n" not in str(RsmissError("a\nb   c"))


def test_atomic_outputs_are_readable_and_never_half_written(tmp_path):
    import os

    import pytest

    from rsmiss.workspace import atomic_path, write_text_atomic

    dest = tmp_path / "out" / "report.md"
    write_text_atomic(dest, "old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "old"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["report.md"]
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    folder = tmp_path / "cube.zarr"
    with atomic_path(folder, is_dir=True) as tmp:
        (tmp / "a").write_text("1")
    assert (folder / "a").read_text() == "1"
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
