"""``rsmiss pretrain``: cubes -> ROOT/weights/<name>.safetensors (a frozen-ready encoder)."""

from __future__ import annotations

import click

from rsmiss.commands.options import progress_option, root_option, show_progress


@click.command("pretrain")
@root_option
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    help="Cube(s) to pretrain on: a dataset name under ROOT/cubes or a .zarr path (repeat).",
)
@click.option(
    "--objective",
    type=click.Choice(["mae", "contrastive", "supervised"]),
    default="mae",
    show_default=True,
    help="mae: masked pixel-token reconstruction; contrastive: InfoNCE across sensors of a "
    "pixel; supervised: the training labels of a source cube.",
)
@click.option(
    "--backbone",
    default="tiny",
    show_default=True,
    help="Tower to pretrain: tiny, vit-b-16, vit-b-32 or vit-l-14.",
)
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--weight-decay", type=float, default=0.05, show_default=True)
@click.option(
    "--max-pixels",
    type=int,
    default=None,
    help="Pixels per cube and epoch (a seeded subset; default: all).",
)
@click.option(
    "--patch-size",
    type=int,
    default=None,
    help="P x P patches (default: the first cube's patch size).",
)
@click.option(
    "--activation",
    type=click.Choice(["quickgelu", "gelu"]),
    default="quickgelu",
    show_default=True,
)
@click.option(
    "--probe-pixels",
    type=int,
    default=4000,
    show_default=True,
    help="Training pixels for the linear probe (0: no probe).",
)
@click.option("--name", default=None, help="Output name (default: backbone-objective-data-sSEED).")
@click.option("--devices", type=int, default=1, show_default=True, help="DDP processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace existing weights of that name.")
@progress_option
def pretrain_cmd(
    root,
    datasets,
    objective,
    backbone,
    epochs,
    batch_size,
    lr,
    weight_decay,
    max_pixels,
    patch_size,
    activation,
    probe_pixels,
    name,
    devices,
    seed,
    force,
    progress,
) -> None:
    """Pretrain the encoder on cube pixels; write weights that --backbone-weights loads.

    Self-supervised objectives read no label and use every observed pixel; the linear
    probe (pretrained vs random encoder) is printed at the end and stored beside the
    weights in NAME.json.
    """
    from rsmiss.pretrain import PretrainRequest, pretrain

    req = PretrainRequest(
        datasets=tuple(datasets),
        objective=objective,
        backbone=backbone,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        max_pixels=max_pixels,
        patch_size=patch_size,
        activation=activation,
        seed=seed,
        name=name,
        probe_pixels=probe_pixels,
        devices=devices,
    )
    result = pretrain(req, root, force=force, progress=show_progress(progress))
    click.echo(f"weights: {result.weights}")
    click.echo(f"use it:  rsmiss train --backbone {backbone} --backbone-weights {result.weights}")


def register(group: click.Group) -> None:
    group.add_command(pretrain_cmd)
