"""``rsmiss evaluate``: re-score a trained run on other scenarios' test masks."""

from __future__ import annotations

import click

from rsmiss.commands.options import root_option


@click.command("evaluate")
@click.argument("run")
@root_option
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    help="Scenario id(s) or .npz path(s) (default: every scenario of the dataset built for "
    "the run's modalities; the others are listed as skipped).",
)
def evaluate_cmd(run, root, scenarios) -> None:
    """Score RUN (id or directory) on SCENARIO's test masks -> runs/<id>/eval/<scenario>.json."""
    from rsmiss.errors import DataError
    from rsmiss.inference import evaluate_run, load_run, scenario_ids

    r = load_run(run, root)
    if not r.finished:
        raise DataError(f"run {r.run_id} is not finished; resume it with rsmiss train first")
    skipped: dict[str, str] = {}
    if not scenarios:
        scenarios, skipped = scenario_ids(r)
        if not scenarios:
            why = "; ".join(f"{sid}: {reason}" for sid, reason in skipped.items())
            raise DataError(
                f"no scenario of {r.config.dataset} fits run {r.run_id} "
                f"({why or 'none built'}); build one with rsmiss scenarios"
            )
    for sid in scenarios:
        res = evaluate_run(r, sid)
        parts = [f"OA {res['overall']['oa']:.2f}"] + [
            f"{name} {v['oa']:.2f}" for name, v in sorted(res["by_pattern"].items())
        ]
        click.echo(f"{r.run_id} on {res['scenario_id']}: " + ", ".join(parts))
    for sid, reason in skipped.items():
        click.echo(f"skipped {sid}: {reason}", err=True)


def register(group: click.Group) -> None:
    group.add_command(evaluate_cmd)
