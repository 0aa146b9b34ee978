"""``rsmiss train``: cube + scenario masks -> runs/<run-id>/ (checkpoint, metrics, maps)."""

from __future__ import annotations

import click

from rsmiss.commands.options import progress_option, root_option, show_progress


@click.command("train")
@root_option
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="Dataset(s) to train on (default: every cube under ROOT/cubes).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    help="Scenario id(s) or .npz path(s) (default: every scenario built).",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    help="mamol (default), mamol_ffn, baseline, mmp, dcp, moe_rep, moe_ada, moe_task.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Method option (placement, layers, experts, rank, ablation switches) or "
    "training option (max_test_samples, val_fraction, checkpoint_every, "
    "eval_batch_size, write_map, compile=true for torch.compile on GPU).",
)
@click.option(
    "--backbone",
    default="vit-b-16",
    show_default=True,
    help="vit-b-16 (the paper's), vit-b-32, vit-l-14, tiny (a small tower for tests and "
    "the demo: --random-init, or weights from rsmiss pretrain), or a timm ViT trunk as timm:NAME.",
)
@click.option(
    "--backbone-weights",
    default=None,
    metavar="PATH|TAG",
    help="Backbone weights: a file, an open_clip tag (openai, laion2b_s34b_b88k, ...) or a "
    "torchgeo enum (torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO), downloaded into "
    "ROOT/weights/ (default: $RSMISS_BACKBONE_WEIGHTS, else ROOT/weights/<Arch>.pt or "
    ".safetensors, <Arch> the open_clip name: ViT-B-16, ViT-B-32, ViT-L-14); a file of "
    "another architecture is refused before any run starts.",
)
@click.option(
    "--backbone-activation",
    type=click.Choice(["quickgelu", "gelu"]),
    default=None,
    help="Activation of the frozen ViT (default: what the weights imply, else "
    "quickgelu, as OpenAI's CLIP needs).",
)
@click.option(
    "--random-init",
    is_flag=True,
    help="Randomly initialised backbone (tests, demo); reports say so.",
)
@click.option(
    "--epochs",
    type=str,
    default=None,
    help="Training epochs (default: 30, the paper's recipe), or 'auto': up to 60, stopped "
    "when validation OA (15 % of the training pixels) has not improved for 5 epochs.",
)
@click.option(
    "--batch-size",
    type=int,
    default=128,
    show_default=True,
    help="Global batch, split over devices.",
)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--weight-decay", type=float, default=2e-2, show_default=True)
@click.option(
    "--devices",
    type=int,
    default=1,
    show_default=True,
    help="GPUs on this machine (CPU processes without GPUs); torchrun for multi-node.",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "32", "bf16"]),
    default="auto",
    show_default=True,
    help="auto = bf16 autocast on GPU, fp32 on CPU.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from a run's last checkpoint.",
)
@progress_option
def train_cmd(
    root,
    datasets,
    scenarios,
    methods,
    sets,
    backbone,
    backbone_weights,
    backbone_activation,
    random_init,
    epochs,
    batch_size,
    lr,
    weight_decay,
    devices,
    precision,
    seed,
    resume,
    progress,
) -> None:
    """Train MaMOL or a baseline for every (dataset, scenario, method) asked for.

    Prints the plan first; finished runs are skipped, killed ones resume.
    """
    import os

    from rsmiss.errors import ConfigError
    from rsmiss.inference import load_run
    from rsmiss.training import execute, plan_runs

    if batch_size < 1:
        raise click.BadParameter(f"must be at least 1, got {batch_size}", param_hint="--batch-size")
    from rsmiss.training.config import parse_epochs

    epochs = parse_epochs(epochs)
    if devices < 1:
        raise ConfigError(f"--devices must be at least 1, got {devices}")
    plans = plan_runs(
        root,
        datasets=datasets,
        scenarios=scenarios,
        methods=methods or ("mamol",),
        sets=sets,
        backbone=backbone,
        backbone_weights=backbone_weights,
        backbone_activation=backbone_activation,
        random_init=random_init,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        devices=devices,
        precision=precision,
        seed=seed,
        resume=resume,
    )
    main_rank = os.environ.get("RANK", "0") == "0"
    todo = [p for p in plans if p.status != "finished"]
    if main_rank:
        click.echo(f"plan: {len(plans)} run(s), {len(plans) - len(todo)} finished (skipped)")
        for p in plans:
            click.echo(f"  {p.describe()}")
        if plans and plans[0].config.random_init:
            click.echo("note: random backbone (--random-init); results say nothing about CLIP")
    for p in todo:
        run = load_run(execute(p, progress=show_progress(progress)))
        if main_rank:
            m = run.metrics or {}
            oa = (m.get("overall") or {}).get("oa")
            shown = "-" if oa is None else f"{oa:.2f}"
            click.echo(f"done: {run.run_id}  OA {shown}  -> {run.path}")


def register(group: click.Group) -> None:
    group.add_command(train_cmd)
