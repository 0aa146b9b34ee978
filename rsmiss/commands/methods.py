"""``rsmiss methods [NAME ...]``: each method with its ``--set`` options (type, default, allowed
values, help), as aligned text or ``--json``."""

from __future__ import annotations

import json
from typing import Any

import click

AUTO = "auto"  # shown for a default resolved when the model is built (the help says from what)


def describe(names: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The registered methods (all, or `names` in the order given) as plain data."""
    from rsmiss.models.factory import get_method
    from rsmiss.models.methods import load_methods

    chosen = list(dict.fromkeys(names)) or list(load_methods())
    out = []
    for name in chosen:
        spec = get_method(name)
        options = [
            {
                "name": key,
                "type": opt.type.__name__,
                "default": opt.default,
                "choices": list(opt.choices) if opt.choices else None,
                "minimum": opt.minimum,
                "exclusive_minimum": opt.exclusive_minimum,
                "maximum": opt.maximum,
                "allowed": opt.allowed(),
                "help": opt.help,
            }
            for key, opt in spec.options.items()
        ]
        out.append({"name": spec.name, "summary": spec.summary, "options": options})
    return out


def _default_text(value: Any) -> str:
    if value is None:
        return AUTO
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _cells(option: dict[str, Any]) -> tuple[str, ...]:
    default = _default_text(option["default"])
    return (option["name"], option["type"], default, option["allowed"] or "any", option["help"])


def render(methods: list[dict[str, Any]]) -> str:
    """Aligned text: a line per method, then one indented line per option (columns aligned
    across all methods shown)."""
    head = ("option", "type", "default", "allowed", "help")
    rows = [_cells(o) for m in methods for o in m["options"]]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]

    def line(cells: tuple[str, ...]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells, widths, strict=False)]
        return ("    " + "  ".join([*padded, cells[-1]])).rstrip()

    lines = []
    for m in methods:
        lines += [f"{m['name']} — {m['summary']}", line(head)]
        lines += [line(_cells(o)) for o in m["options"]]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


@click.command("methods")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def methods_cmd(names: tuple[str, ...], as_json: bool) -> None:
    """List the methods `train --method` takes, with the options `--set KEY=VALUE` sets.

    "auto" defaults are resolved when the model is built (the help says from what); an
    unknown NAME is an error.
    """
    methods = describe(names)
    if as_json:
        click.echo(json.dumps({"methods": methods}, indent=2))
    else:
        click.echo(render(methods), nl=False)


def register(group: click.Group) -> None:
    group.add_command(methods_cmd)
