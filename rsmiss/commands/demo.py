"""``rsmiss demo``: synthesise, ingest, build scenarios, train MaMOL and the baseline, compare."""

from __future__ import annotations

import click

from rsmiss.commands.options import root_option


@click.command("demo")
@root_option
@click.option("--scale", type=float, default=None, hidden=True, help="Scene scale (tests).")
@click.option("--epochs", type=int, default=None, hidden=True, help="Epochs (tests).")
@click.option("--no-map", is_flag=True, hidden=True, help="Skip the classification map (tests).")
@click.option(
    "--pretrain-epochs", type=int, default=None, hidden=True, help="Pretraining epochs (tests)."
)
def demo_cmd(root, scale, epochs, no_map, pretrain_epochs) -> None:
    """Run the embedded demo (about a minute on a CPU, nothing downloaded).

    Synthesises a small Trento-like scene in the official formats, ingests it, builds the
    70 % missing-both scenario, trains MaMOL and the frozen-backbone baseline on a tiny
    backbone that `rsmiss pretrain` first pretrains (no labels) on a different synthetic
    scene, and prints their test OA per missing pattern side by side.
    """
    from rsmiss.demo import DEMO_EPOCHS, DEMO_SCALE, PRETRAIN_EPOCHS, run_demo

    run_demo(
        root,
        scale=DEMO_SCALE if scale is None else scale,
        epochs=DEMO_EPOCHS if epochs is None else epochs,
        write_map=not no_map,
        pretrain_epochs=PRETRAIN_EPOCHS if pretrain_epochs is None else pretrain_epochs,
        echo=click.echo,
    )


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
