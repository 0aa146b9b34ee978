"""``rsmiss pretrain``: objectives learn, weights load where random ones did, labels stay
unread by self-supervision, the probe shows what pretraining bought, kills resume exactly,
and bad requests are one line with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from training_env import base_workspace, finish_in_subprocess, kill_9_once_written

from rsmiss.cli import main

PATCH = 3


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def ok(*args: str) -> str:
    res = cli(*args)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def scene_root(tmp_path_factory) -> Path:
    """The training tests' synthetic Trento (scale 0.75, 125 x 450 px, 462 training pixels,
    3 x 3 patches cut on the fly); read-only: tests copy its cube."""
    return base_workspace(tmp_path_factory)


def copy_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "cubes", dst / "cubes")
    return dst


def pretrain_args(root: Path, *extra: str) -> list[str]:
    return [
        "pretrain", "--root", str(root), "--dataset", "trento", "--epochs", "2",
        "--max-pixels", "1024", "--batch-size", "128", "--no-progress", *extra,
    ]  # fmt: skip


# ------------------------------------------------------------------------ objectives
@pytest.mark.parametrize("objective", ["mae", "contrastive", "supervised"])
def test_loss_decreases_over_a_few_steps(scene_root, objective):
    from rsmiss.pretrain.request import PretrainRequest, build_model, read_sources
    from rsmiss.workspace import Workspace

    req = PretrainRequest(datasets=("trento",), objective=objective)
    (pixels,), patch = read_sources(req, Workspace(scene_root))
    model = build_model(req, [pixels], patch)
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    idx = torch.arange(min(128, len(pixels)))
    batch = pixels.scene.patches(pixels.row[idx], pixels.col[idx], torch.device("cpu"))
    label = None if pixels.label is None else pixels.label[idx]
    losses = []
    for _ in range(12):
        g = torch.Generator().manual_seed(0)  # the same masks every step: a fixed target
        loss = model("trento", batch, pixels.observed[idx], label, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses
    grads = [p.grad for p in model.tower.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "the tower did not learn"


def test_mae_hides_masked_pixels_from_the_encoder(scene_root):
    """A hidden pixel's value cannot reach the encoder: changing it changes no visible
    token's output (the tokenizer's 3x3 convolution would leak it if masking came later)."""
    from rsmiss.pretrain.request import PretrainRequest, build_model, read_sources
    from rsmiss.workspace import Workspace

    req = PretrainRequest(datasets=("trento",), objective="mae")
    (pixels,), patch = read_sources(req, Workspace(scene_root))
    model = build_model(req, [pixels], patch).eval()
    idx = torch.arange(8)
    batch = pixels.scene.patches(pixels.row[idx], pixels.col[idx], torch.device("cpu"))
    captured = []
    handle = model.tower.ln_post.register_forward_hook(lambda _m, a, _o: captured.append(a[0]))
    obs = torch.ones(8, 2, dtype=torch.bool)
    with torch.no_grad():
        model("trento", batch, obs, None, torch.Generator().manual_seed(5))
        noisy = {k: v + 100.0 * torch.randn_like(v) for k, v in batch.items()}
        g = torch.Generator().manual_seed(5)
        noise = torch.rand(8, patch * patch, generator=g)
        keep = noise.argsort(1)[:, :2]
        for k in noisy:  # restore the visible pixels of the hs pass: only hidden ones changed
            flat_new, flat_old = noisy[k].flatten(2), batch[k].flatten(2)
            for r in range(8):
                flat_new[r, :, keep[r]] = flat_old[r, :, keep[r]]
        model("trento", {"hs": noisy["hs"], "lidar": batch["lidar"]}, obs, None,
              torch.Generator().manual_seed(5))  # fmt: skip
    handle.remove()
    torch.testing.assert_close(captured[0], captured[2])  # hs pass, first vs noisy


# ------------------------------------------------------------------- files and loading
def test_weights_load_through_backbone_weights_with_hash_in_run(scene_root, tmp_path):
    root = copy_root(scene_root, tmp_path / "root")
    out = ok(*pretrain_args(root, "--probe-pixels", "0"))
    weights = root / "weights" / "tiny-mae-trento-s0.safetensors"
    assert weights.is_file() and f"weights: {weights}" in out
    prov = json.loads(weights.with_suffix(".json").read_text())
    import hashlib

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert prov["sha256"] == digest
    assert prov["objective"] == "mae" and len(prov["loss_curve"]) == 2
    assert "no label was read" in prov["pixels_used"]
    assert prov["datasets"][0]["pixels_per_epoch"] == 1024
    ok("scenarios", "--root", root, "--rate", "0.7", "--pattern", "both")
    for spec in (str(weights), "pretrain:tiny-mae-trento-s0"):
        ok(
            "train", "--root", root, "--dataset", "trento", "--method", "baseline",
            "--backbone", "tiny", "--backbone-weights", spec, "--epochs", "1",
            "--set", "max_test_samples=50", "--set", "write_map=false",
        )  # fmt: skip
    (run,) = (root / "runs").iterdir()  # the same content hash: the same run, skipped twice
    env = json.loads((run / "environment.json").read_text())
    assert env["backbone"]["weights_sha256"] == digest
    assert env["backbone"]["origin"] == "pretrained by rsmiss pretrain (mae, trento)"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backbone"]["random_init"] is False
    # the tower that trained is the pretrained one, not the random init
    from rsmiss.models.backbone import BACKBONES, VisionTower, read_backbone_weights

    tensors, activation, _ = read_backbone_weights(weights)
    assert activation == "quickgelu"
    rnd = VisionTower(BACKBONES["tiny"])
    assert not torch.equal(tensors["proj"], rnd.proj.detach())


def test_same_request_same_bytes_and_up_to_date(scene_root, tmp_path):
    a = copy_root(scene_root, tmp_path / "a")
    b = copy_root(scene_root, tmp_path / "b")
    ok(*pretrain_args(a, "--probe-pixels", "0", "--objective", "contrastive"))
    ok(*pretrain_args(b, "--probe-pixels", "0", "--objective", "contrastive"))
    name = "tiny-contrastive-trento-s0.safetensors"
    assert (a / "weights" / name).read_bytes() == (b / "weights" / name).read_bytes()
    again = ok(*pretrain_args(a, "--probe-pixels", "0", "--objective", "contrastive"))
    assert "up to date" in again
    res = cli(*pretrain_args(a, "--probe-pixels", "0", "--objective", "contrastive", "--seed",
                             "1", "--name", "tiny-contrastive-trento-s0"))  # fmt: skip
    assert res.exit_code == 2 and "another request" in res.output


def _relabel(cube: Path) -> None:
    """Every label of the cube changed in place (class k -> k mod C + 1)."""
    import zarr

    g = zarr.open_group(str(cube), mode="r+")
    for name in ("label", "label_map"):
        arr = g[name]
        values = np.asarray(arr[...])
        c = int(values.max())
        arr[...] = np.where(values > 0, values % c + 1, values).astype(values.dtype)


@pytest.mark.parametrize("objective", ["mae", "contrastive"])
def test_self_supervised_pretraining_reads_no_label(scene_root, tmp_path, objective):
    a = copy_root(scene_root, tmp_path / "a")
    b = copy_root(scene_root, tmp_path / "b")
    _relabel(b / "cubes" / "trento.zarr")
    flags = ("--probe-pixels", "0", "--objective", objective, "--epochs", "1")
    ok(*pretrain_args(a, *flags))
    ok(*pretrain_args(b, *flags))
    name = f"tiny-{objective}-trento-s0.safetensors"
    assert (a / "weights" / name).read_bytes() == (b / "weights" / name).read_bytes()


def test_supervised_pretraining_does_read_labels(scene_root, tmp_path):
    """The counter-check of the test above: the relabelling does reach a label reader."""
    a = copy_root(scene_root, tmp_path / "a")
    b = copy_root(scene_root, tmp_path / "b")
    _relabel(b / "cubes" / "trento.zarr")
    flags = ("--probe-pixels", "0", "--objective", "supervised", "--epochs", "1")
    ok(*pretrain_args(a, *flags))
    ok(*pretrain_args(b, *flags))
    name = "tiny-supervised-trento-s0.safetensors"
    assert (a / "weights" / name).read_bytes() != (b / "weights" / name).read_bytes()


# ------------------------------------------------------------------------ linear probe
# Points of held-out probe OA that contrastive pretraining must add to the LiDAR-alone
# features (measured: 88.7 random -> 93.1 pretrained on this scene). With both sensors the
# training pixels of a synthetic scene are nearly separable by any features (~99 %), so the
# single-sensor view is the one that can show a gain.
PROBE_MARGIN = 2.0


def test_linear_probe_pretrained_beats_random(scene_root, tmp_path):
    root = copy_root(scene_root, tmp_path / "root")
    out = ok(*pretrain_args(root, "--objective", "contrastive", "--epochs", "3",
                            "--max-pixels", "4096"))  # fmt: skip
    assert "linear probe" in out and "lidar alone" in out
    prov = json.loads((root / "weights" / "tiny-contrastive-trento-s0.json").read_text())
    probe = prov["linear_probe"]["trento"]
    assert probe["n"] == 462 and set(probe["by_modality"]) == {"hs", "lidar"}
    lidar = probe["by_modality"]["lidar"]
    assert lidar["pretrained_oa"] >= lidar["random_oa"] + PROBE_MARGIN, probe


# ------------------------------------------------------------------------ resume
def test_kill_9_mid_pretraining_resumes_to_identical_weights(scene_root, tmp_path):
    """The reference, the killed and the resumed run are each a fresh CLI process (with the
    same thread count), so the comparison is about resuming, not about this test process's
    state."""
    ref = copy_root(scene_root, tmp_path / "ref")
    args = ["--epochs", "4", "--max-pixels", "1024", "--probe-pixels", "0"]
    finish_in_subprocess(pretrain_args(ref, *args))
    root = copy_root(scene_root, tmp_path / "kill")
    ckpt = root / "weights" / ".pretrain-tiny-mae-trento-s0" / "checkpoint.pt"
    kill_9_once_written(pretrain_args(root, *args), ckpt)
    name = "tiny-mae-trento-s0.safetensors"
    assert not (root / "weights" / name).exists(), "killed too late"
    out = finish_in_subprocess(pretrain_args(root, *args))
    assert "resume after epoch" in out
    assert (root / "weights" / name).read_bytes() == (ref / "weights" / name).read_bytes()
    assert not ckpt.parent.exists(), "the work folder outlived the finished run"


# ------------------------------------------------------------------------ bad input
def _nothing_written(root: Path) -> None:
    assert not (root / "weights").exists() or not any((root / "weights").iterdir())


def test_unknown_objective_is_one_line(scene_root, tmp_path):
    root = copy_root(scene_root, tmp_path / "r")
    res = cli(*pretrain_args(root, "--objective", "simclr"))
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "--objective" in res.output
    _nothing_written(root)


def test_contrastive_on_a_single_sensor_cube_is_one_line(scene_root, tmp_path):
    from rsmiss.catalog import CATALOG_DIR

    doc = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
    doc["name"] = "hsonly"
    doc["modalities"] = doc["modalities"][:1]
    doc["modalities"][0]["source"].pop("sha256")
    for fs in doc["split"].values():
        if isinstance(fs, dict):
            fs.pop("sha256", None)
    yml = tmp_path / "hsonly.yaml"
    yml.write_text(yaml.safe_dump(doc))
    root = tmp_path / "r"
    ok("ingest", yml, "--raw", scene_root / "raw" / "trento", "--root", root,
       "--patch-size", PATCH, "--no-patches", "--no-progress")  # fmt: skip
    res = cli("pretrain", "--root", root, "--dataset", "hsonly", "--objective", "contrastive")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "hsonly.zarr" in res.output and "two co-registered sensors" in res.output
    _nothing_written(root)


def test_supervised_on_a_cube_without_training_labels_is_one_line(scene_root, tmp_path):
    import zarr

    root = copy_root(scene_root, tmp_path / "r")
    split = zarr.open_group(str(root / "cubes" / "trento.zarr"), mode="r+")["split"]
    split[...] = np.full(split.shape, "test", dtype=split.dtype)
    res = cli(*pretrain_args(root, "--objective", "supervised"))
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "no training-split labels" in res.output
    _nothing_written(root)


def test_missing_cube_and_bad_numbers_are_one_line(tmp_path):
    res = cli("pretrain", "--root", tmp_path, "--dataset", "trento")
    assert res.exit_code == 2 and "rsmiss ingest trento" in res.output
    res = cli("pretrain", "--root", tmp_path, "--dataset", "trento", "--epochs", "0")
    assert res.exit_code == 2 and "--epochs" in res.output
    res = cli("train", "--root", tmp_path, "--backbone", "tiny",
              "--backbone-weights", "pretrain:nothing-here")  # fmt: skip
    assert res.exit_code == 2 and "rsmiss pretrain" in res.output
    assert not (tmp_path / "weights").exists()


def test_two_process_ddp_pretraining_writes_loadable_weights(scene_root, tmp_path):
    """--devices 2 on CPU: two gloo processes, each a strided half of every global batch."""
    from rsmiss.models.backbone import (
        BACKBONES,
        VisionTower,
        load_visual_state,
        read_backbone_weights,
    )

    root = copy_root(scene_root, tmp_path / "r")
    out = ok(*pretrain_args(root, "--devices", "2", "--probe-pixels", "0", "--epochs", "1"))
    weights = root / "weights" / "tiny-mae-trento-s0.safetensors"
    assert f"weights: {weights}" in out
    tensors, _, _ = read_backbone_weights(weights)
    load_visual_state(VisionTower(BACKBONES["tiny"]), tensors, str(weights))
    prov = json.loads(weights.with_suffix(".json").read_text())
    assert len(prov["loss_curve"]) == 1 and np.isfinite(prov["loss_curve"][0]["loss"])


def test_pipeline_pretrain_step_is_checked_up_front(tmp_path):
    """recipe.backbone_weights: pretrain needs a pretrain: block; the error names the file."""
    doc = {
        "name": "p",
        "recipe": {"backbone": "tiny", "backbone_weights": "pretrain"},
        "datasets": {"trento": {"synthetic": {"scale": 0.15}}},
        "grid": [{"datasets": ["trento"], "rates": [0.7], "settings": ["both"],
                  "methods": ["baseline"]}],
    }  # fmt: skip
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = cli("benchmark", path, "--root", tmp_path / "root", "--dry-run")
    assert res.exit_code == 2 and "p.yaml" in res.output and "pretrain" in res.output
    assert len(res.output.strip().splitlines()) == 1
    doc["pretrain"] = {"datasets": ["trento"], "objective": "simclr"}
    path.write_text(yaml.safe_dump(doc))
    res = cli("benchmark", path, "--root", tmp_path / "root", "--dry-run")
    assert res.exit_code == 2 and "objective" in res.output
    assert not (tmp_path / "root").exists()
