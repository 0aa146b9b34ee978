"""``rsmiss scenarios``: build reproducible missing-modality masks from the cubes."""

from __future__ import annotations

import click

from rsmiss.commands.options import root_option


def _table(counts: dict[str, dict[str, int]]) -> list[str]:
    """Rows: split; columns: pattern (complete first), sample counts."""
    names = sorted({p for c in counts.values() for p in c}, key=lambda p: (p != "complete", p))
    width = [max(len(n), 6) for n in names]
    lines = ["    split  " + "  ".join(n.rjust(w) for n, w in zip(names, width, strict=True))]
    for split, c in counts.items():
        cells = "  ".join(str(c.get(n, 0)).rjust(w) for n, w in zip(names, width, strict=True))
        lines.append(f"    {split:<5}  {cells}")
    return lines


@click.command("scenarios")
@click.option(
    "--rate",
    type=float,
    default=None,
    help="Missing rate η: fraction of samples lacking at least one modality.",
)
@root_option
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="Dataset(s) to build for (default: every cube under ROOT/cubes).",
)
@click.option(
    "--pattern",
    "patterns",
    multiple=True,
    help="other, both (two modalities), a modality name, all, all-subsets "
    "(default: other, hs, both — the paper's three settings; all when not two modalities).",
)
@click.option(
    "--availability",
    "availabilities",
    multiple=True,
    metavar="MOD=F,...",
    help="Per-modality availability, disjoint, e.g. hs=1.0,sar=0.75,lidar=0.5; "
    "implies the rate Σ(1 − a).",
)
@click.option(
    "--modalities",
    default=None,
    metavar="MOD,...",
    help="Modalities taking part, in column order (default: the paper's pair).",
)
@click.option(
    "--spatial",
    is_flag=True,
    help="Contiguous blobs (clouds, gaps) instead of independent samples; counts stay exact.",
)
@click.option(
    "--test-rate", type=float, default=None, help="Other missing rate for the test split."
)
@click.option("--test-pattern", default=None, help="Other pattern for the test split.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even when the file is up to date.")
def scenarios_cmd(
    rate: float | None,
    root: str | None,
    datasets: tuple[str, ...],
    patterns: tuple[str, ...],
    availabilities: tuple[str, ...],
    modalities: str | None,
    spatial: bool,
    test_rate: float | None,
    test_pattern: str | None,
    seed: int,
    force: bool,
) -> None:
    """Write ROOT/scenarios/<dataset>/<scenario-id>.npz (train and test availability masks)."""
    from rsmiss.scenarios import build_scenarios

    mods = None
    if modalities is not None:
        mods = [m.strip() for m in modalities.split(",") if m.strip()]
        if not mods:
            raise click.BadParameter(
                "give modality names, e.g. hs,lidar", param_hint="--modalities"
            )
    results = build_scenarios(
        root,
        datasets=datasets,
        rate=rate,
        patterns=patterns,
        availabilities=availabilities,
        modalities=mods,
        spatial=spatial,
        test_rate=test_rate,
        test_pattern=test_pattern,
        seed=seed,
        force=force,
    )
    for r in results:
        click.echo(f"{r.dataset}/{r.scenario_id}: {r.status} ({r.path})")
        for line in _table(r.counts):
            click.echo(line)
        for w in r.warnings:
            click.echo(f"warning: {w}", err=True)


def register(group: click.Group) -> None:
    group.add_command(scenarios_cmd)
