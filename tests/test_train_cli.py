"""``rsmiss train`` from the command line: plan and skipping, bad inputs, kill -9 + resume."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from training_env import (
    SCENARIO,
    TRAIN_ARGS,
    finish_in_subprocess,
    fresh_workspace,
    kill_9_once_written,
    reference_run,
    rsmiss_subprocess,
)

from rsmiss.cli import main


def _train(root, *args):
    return CliRunner().invoke(main, ["train", "--root", str(root), *args])


def test_finished_run_is_skipped_and_plan_is_printed(tmp_path_factory):
    ref = reference_run(tmp_path_factory)
    before = (ref.path / "metrics.json").read_bytes()
    res = _train(ref.root, *TRAIN_ARGS)
    assert res.exit_code == 0, res.output
    assert "1 run(s), 1 finished (skipped)" in res.stdout
    assert f"{ref.run_id}  finished (skipped)" in res.stdout
    assert (ref.path / "metrics.json").read_bytes() == before


def _wrong_arch_weights(path):
    torch.save({"conv1.weight": torch.zeros(8, 3, 4, 4), "nonsense": torch.zeros(2)}, path)
    return path


BAD = [
    ("unknown method", ["--method", "nope", "--random-init"], "nope"),
    ("unknown --set key", ["--set", "wobble=3", "--random-init"], "wobble"),
    ("batch size < 1", ["--batch-size", "0", "--random-init"], "--batch-size"),
    ("too many devices", ["--devices", "4096", "--random-init"], "--devices"),
    ("no weights", ["--backbone", "vit-b-16"], "ViT-B-16.pt"),
    ("no weights vit-l-14", ["--backbone", "vit-l-14"], "weights/ViT-L-14.pt"),
    ("no weights vit-b-32", ["--backbone", "vit-b-32"], "weights/ViT-B-32.pt"),
    ("weights missing", ["--backbone-weights", "/nonexistent/w.pt"], "/nonexistent/w.pt"),
    ("unknown scenario", ["--scenario", "nope-r0.1-s0", "--random-init"], "nope-r0.1-s0"),
    ("unknown backbone", ["--backbone", "vit-h-99", "--random-init"], "--backbone"),
    ("rank < 1", ["--set", "rank=0", "--random-init"], "rank=0"),
    ("top_k > experts", ["--set", "top_k=3", "--random-init"], "top_k=3"),
    ("more layers than blocks", ["--set", "layers=5", "--random-init"], "layers=5"),
    ("eval batch 0", ["--set", "eval_batch_size=0", "--random-init"], "eval_batch_size"),
    ("test samples not a number", ["--set", "max_test_samples=all", "--random-init"], "'all'"),
    ("write_map not a bool", ["--set", "write_map=maybe", "--random-init"], "write_map"),
    ("val_fraction 1", ["--set", "val_fraction=1", "--random-init"], "val_fraction"),
]


@pytest.mark.parametrize(("case", "args", "named"), BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path_factory, case, args, named):
    root = fresh_workspace(tmp_path_factory, "bad")
    base = ["--backbone", "tiny", "--epochs", "1"]
    res = _train(root, *base, *args)
    assert res.exit_code == 2, (case, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], res.stderr
    assert "plan:" not in res.stdout  # rejected before anything is planned
    assert not (root / "runs").exists()


def test_help_states_the_default_epochs():
    from rsmiss.models import BACKBONES
    from rsmiss.training import DEFAULT_EPOCHS

    res = CliRunner().invoke(main, ["train", "--help"], terminal_width=400)
    assert f"(default: {DEFAULT_EPOCHS}," in res.output
    assert all(name in res.output for name in BACKBONES)


def _tiny_weights(path):
    from rsmiss.models.backbone import TINY, VisionTower

    torch.save(VisionTower(TINY).state_dict(), path)
    return path


@pytest.mark.parametrize("via_env", [False, True], ids=["flag", "env"])
def test_weights_of_another_backbone_are_refused_naming_both(
    tmp_path_factory, monkeypatch, via_env
):
    root = fresh_workspace(tmp_path_factory, "misfit")
    w = _tiny_weights(root / "tiny-w.pt")
    args = ["--backbone", "vit-l-14", "--epochs", "1"]
    if via_env:
        monkeypatch.setenv("RSMISS_BACKBONE_WEIGHTS", str(w))
    else:
        args += ["--backbone-weights", str(w)]
    res = _train(root, *args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for named in (str(w), "tiny", "ViT-L-14"):
        assert named in lines[0], (named, lines[0])
    assert ("$RSMISS_BACKBONE_WEIGHTS" in lines[0]) == via_env
    assert "plan:" not in res.stdout and not (root / "runs").exists()


def test_default_weights_file_is_per_architecture(tmp_path, monkeypatch):
    import rsmiss.models.backbone as backbone
    from rsmiss.errors import ConfigError
    from rsmiss.training.plan import resolve_weights
    from rsmiss.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.weights.mkdir(parents=True)
    (ws.weights / "ViT-B-16.pt").write_bytes(b"b16")
    with pytest.raises(ConfigError, match="ViT-L-14.pt") as err:
        resolve_weights(ws, "vit-l-14", None, False)
    assert "ViT-B-16" not in str(err.value)
    (ws.weights / "ViT-B-32.safetensors").write_bytes(b"b32")
    checked = []
    monkeypatch.setattr(backbone, "check_weights_fit", lambda *a, **k: checked.append(a))
    path, _ = resolve_weights(ws, "vit-b-32", None, False)
    assert path == str(ws.weights / "ViT-B-32.safetensors")
    assert checked == [("vit-b-32", path)]


def test_weights_of_the_backbone_fit(tmp_path):
    from rsmiss.models.backbone import WeightsMisfit, check_weights_fit

    w = _tiny_weights(tmp_path / "w.pt")
    check_weights_fit("tiny", w)
    with pytest.raises(WeightsMisfit, match=r"holds tiny weights, not ViT-B-32"):
        check_weights_fit("vit-b-32", w)


def test_weights_unreadable_or_of_wrong_architecture(tmp_path_factory):
    root = fresh_workspace(tmp_path_factory, "badw")
    w = _wrong_arch_weights(root / "w.pt")
    res = _train(root, "--backbone", "tiny", "--backbone-weights", str(w), "--epochs", "1")
    assert res.exit_code == 2
    assert "nonsense" in res.stderr or "missing keys" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (root / "runs").exists()
    (root / "garbage.pt").write_bytes(b"\x00garbage")
    res = _train(root, "--backbone", "tiny", "--backbone-weights", str(root / "garbage.pt"))
    assert res.exit_code == 2 and "garbage.pt" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (root / "runs").exists()


def test_scenario_of_another_cube_is_refused(tmp_path_factory):
    root = fresh_workspace(tmp_path_factory, "othercube")
    import zarr

    group = zarr.open_group(str(root / "cubes" / "trento.zarr"), mode="r+")
    group.attrs["cube_id"] = "0123456789abcdef"  # as if re-ingested with other parameters
    try:
        zarr.consolidate_metadata(str(root / "cubes" / "trento.zarr"))
    except Exception:  # noqa: BLE001 - stores without consolidated metadata need nothing
        pass
    res = _train(root, "--backbone", "tiny", "--random-init", "--epochs", "1")
    assert res.exit_code == 2, res.output
    assert "cube" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (root / "runs").exists()


def test_corrupt_checkpoint_refused_and_kept(tmp_path_factory):
    ref = reference_run(tmp_path_factory)
    root = fresh_workspace(tmp_path_factory, "corrupt")
    run_dir = root / "runs" / ref.run_id
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    res = _train(root, *TRAIN_ARGS)
    assert res.exit_code == 2, res.output
    assert "--no-resume" in res.stderr and "checkpoint.pt" in res.stderr
    assert (run_dir / "checkpoint.pt").read_bytes() == b"not a checkpoint"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt"]


def test_kill_9_mid_training_resumes_to_identical_metrics(tmp_path_factory):
    """Same seed on CPU: an interrupted + resumed run ends byte-identical to the reference."""
    ref = reference_run(tmp_path_factory)
    root = fresh_workspace(tmp_path_factory, "kill")
    ckpt = root / "runs" / ref.run_id / "checkpoint.pt"
    kill_9_once_written(["train", "--root", str(root), *TRAIN_ARGS], ckpt)
    assert not (root / "runs" / ref.run_id / "metrics.json").exists(), "killed too late"
    out = finish_in_subprocess(["train", "--root", str(root), *TRAIN_ARGS])
    assert "resume after epoch" in out, out
    got = (root / "runs" / ref.run_id / "metrics.json").read_bytes()
    assert got == (ref.path / "metrics.json").read_bytes()
    curve = (root / "runs" / ref.run_id / "curve.csv").read_text()
    assert curve == (ref.path / "curve.csv").read_text()
    assert json.loads(got)["run_id"] == ref.run_id


def test_redirected_log_has_one_line_per_epoch_and_no_bar_frames(tmp_path_factory, tmp_path):
    """stderr to a file (not a terminal): no progress-bar frames, one summary per epoch."""
    root = fresh_workspace(tmp_path_factory, "log")
    args = ["train", "--root", str(root), "--scenario", SCENARIO, "--backbone", "tiny"]
    args += ["--random-init", "--epochs", "3", "--set", "max_test_samples=200"]
    args += ["--set", "write_map=false"]
    with open(tmp_path / "train.log", "w") as log:
        proc = rsmiss_subprocess(args, stdout=log, stderr=log)
        assert proc.wait(timeout=300) == 0, (tmp_path / "train.log").read_text()
    raw = (tmp_path / "train.log").read_bytes()  # read_text() would turn \r into \n
    assert b"\r" not in raw
    text = raw.decode()
    epochs = [line for line in text.splitlines() if ": epoch " in line]
    assert [line.split(": epoch ")[1].split()[0] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all(" loss " in line for line in epochs)
