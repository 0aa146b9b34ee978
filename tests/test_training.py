"""Training pieces (patch gathering, order, schedule, metrics, checkpoints, run ids) and the
end-to-end run on a small synthetic Trento cube (tiny backbone, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from training_env import EPOCHS, MAX_TEST, SCENARIO, base_workspace, fresh_workspace, reference_run

from rsmiss.errors import ConfigError, DataError
from rsmiss.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from rsmiss.training.config import RunConfig, parse_set
from rsmiss.training.data import cut_patches, epoch_batches, epoch_permutation, pad_scene, shard
from rsmiss.training.loop import lr_factor, param_groups
from rsmiss.training.metrics import score

# -- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [7, 8])
def test_cut_patches_match_numpy_reference(p):
    rng = np.random.default_rng(0)
    scene = rng.normal(size=(3, 11, 13)).astype(np.float32)
    padded = pad_scene(scene, p)
    rows = np.array([0, 0, 10, 5, 10, 3])
    cols = np.array([0, 12, 0, 6, 12, 1])
    got = cut_patches(torch.from_numpy(padded), torch.from_numpy(rows), torch.from_numpy(cols), p)
    b, a = p // 2, p - 1 - p // 2
    ref_pad = np.pad(scene, ((0, 0), (b, a), (b, a)), mode="reflect")
    for k, (r, c) in enumerate(zip(rows, cols, strict=True)):
        ref = ref_pad[:, r : r + p, c : c + p]
        np.testing.assert_array_equal(got[k].numpy(), ref)
        assert got[k, :, p // 2, p // 2].tolist() == scene[:, r, c].tolist()  # centre pixel


def test_epoch_order_is_seeded_and_batches_are_global():
    a, b = epoch_permutation(3, 1, 50), epoch_permutation(3, 1, 50)
    assert torch.equal(a, b) and not torch.equal(a, epoch_permutation(3, 2, 50))
    single = epoch_batches(a, 16)
    r0, r1 = epoch_batches(a, 16, 0, 2), epoch_batches(a, 16, 1, 2)
    assert [n for _, n in single] == [16, 16, 16, 2]
    for (s, _), (x, _), (y, _) in zip(single, r0, r1, strict=True):
        assert sorted(s.tolist()) == sorted(x.tolist() + y.tolist())  # same global batch
    # evaluation shards cover every sample exactly once (no padding duplicates)
    cover = torch.cat([shard(11, r, 3) for r in range(3)])
    assert sorted(cover.tolist()) == list(range(11))


def test_lr_schedule_warmup_then_linear_decay():
    f = [lr_factor(s, 100, 10) for s in range(100)]
    assert 0 < f[0] < f[9] < 1.0 and f[10] == 1.0
    assert all(x > y for x, y in zip(f[10:], f[11:], strict=False)) and f[-1] == pytest.approx(
        1 / 90
    )


def test_no_weight_decay_on_norms_biases_embeddings():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Embedding(3, 4))
    decay, no_decay = param_groups(m, 0.02)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4


def test_metrics_oa_aa_kappa():
    y = np.array([0, 0, 1, 1, 2, 2])
    s = score(y, np.array([0, 0, 1, 0, 2, 2]), 4)
    assert s["oa"] == pytest.approx(100 * 5 / 6, abs=1e-5)
    assert s["aa"] == pytest.approx(100 * (1 + 0.5 + 1) / 3, abs=1e-5)
    assert s["per_class_accuracy"][3] is None and s["n"] == 6
    assert s["confusion_matrix"][1] == [1, 1, 0, 0]
    assert 0 < s["kappa"] < 100


def test_checkpoint_roundtrip_restores_rng(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    state = capture_rng()
    want = (torch.rand(3), np.random.rand(2))
    save_checkpoint(
        tmp_path / "c.pt",
        {
            "run_id": "r",
            "backbone_hash": "h",
            "epoch": 1,
            "step": 4,
            "model": {},
            "optimizer": {},
            "rng": [state],
        },
    )
    ck = load_checkpoint(tmp_path / "c.pt", run_id="r", backbone_hash="h")
    torch.rand(7)
    restore_rng(ck["rng"][0])
    got = (torch.rand(3), np.random.rand(2))
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    (tmp_path / "c.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="--no-resume"):
        load_checkpoint(tmp_path / "c.pt", run_id="r", backbone_hash="h")
    assert (tmp_path / "c.pt").read_bytes() == b"garbage"  # kept


def test_run_id_is_readable_and_changes_with_config():
    a = RunConfig("trento", "both-r0.90-s0", "cid", random_init=True)
    assert a.run_id.startswith("trento-both-r0.90-s0-mamol-") and len(a.run_id.split("-")[-1]) == 8
    assert a.run_id == RunConfig("trento", "both-r0.90-s0", "cid", random_init=True).run_id
    assert a.run_id != RunConfig("trento", "both-r0.90-s0", "cid", random_init=True, seed=1).run_id
    b = RunConfig(
        "trento", "both-r0.90-s0", "cid", random_init=True, train_options={"checkpoint_every": 3}
    )
    assert a.run_id == b.run_id  # bookkeeping options do not change the numbers
    with pytest.raises(ConfigError, match="batch-size"):
        RunConfig("trento", "x", "cid", batch_size=0)


def test_parse_set_routes_and_rejects_unknown_keys():
    model, train = parse_set(["experts=3", "max_test_samples=50"], {"experts", "rank"})
    assert model == {"experts": 3} and train == {"max_test_samples": 50}
    with pytest.raises(ConfigError, match="nonsense"):
        parse_set(["nonsense=1"], {"experts"})


# -- end to end (shared small synthetic Trento workspace, tiny backbone, CPU) ---------------


def test_gathered_patches_equal_the_cubes(tmp_path_factory):
    from rsmiss.cube import open_cube
    from rsmiss.scenarios import load_scenario
    from rsmiss.training.data import load_run_data

    root = base_workspace(tmp_path_factory)
    ds = open_cube(root / "cubes" / "trento.zarr")
    sc = load_scenario(root / "scenarios" / "trento" / f"{SCENARIO}.npz", cube=ds)
    p = int(ds.attrs["patch_size"])
    data = load_run_data(root / "cubes" / "trento.zarr", sc, p, torch.device("cpu"), seed=0, ds=ds)
    sel = torch.arange(0, len(data.test), 97)
    got = data.scene.patches(data.test.row[sel], data.test.col[sel], torch.device("cpu"))
    idx = data.test.index[sel].numpy()
    for m in sc.modalities:
        want = np.asarray(ds[m].isel(sample=idx).values)
        np.testing.assert_array_equal(got[m].numpy().astype(want.dtype), want)
    assert (data.test.label.numpy() + 1 == np.asarray(ds["label"].values)[data.test.index]).all()


def test_mamol_run_directory_and_metrics(tmp_path_factory):
    run = reference_run(tmp_path_factory)
    m = run.metrics
    for key in ("oa", "aa", "kappa", "per_class_accuracy", "confusion_matrix", "n"):
        assert key in m["overall"]
    assert set(m["by_pattern"]) == {"complete", "hs_missing", "lidar_missing"}
    assert sum(v["n"] for v in m["by_pattern"].values()) == m["n_test"] == MAX_TEST
    assert m["parameters"]["trainable"] < m["parameters"]["total"]
    assert m["epochs"] == EPOCHS and m["backbone"]["random_init"] is True
    assert m["synthetic_data"] is True
    # the synthetic classes are separable with both modalities
    assert m["by_pattern"]["complete"]["oa"] >= 80.0, m["by_pattern"]
    names = {p.name for p in run.path.iterdir()}
    assert {
        "config.json",
        "environment.json",
        "checkpoint.pt",
        "curve.csv",
        "curve.png",
        "confusion.png",
        "metrics.json",
        "perf.json",
        "routing.png",
    } <= names
    assert m["epochs_used"] == EPOCHS
    routing = m["routing"]  # recorded on the test predictions' own pass
    assert routing["unit"] == "tokens" and routing["collapsed"] in (True, False)
    assert set(routing["patterns"]) == set(m["by_pattern"])
    for block in routing["blocks"]:
        for name, entry in block["by_pattern"].items():
            assert entry["passes"] == m["by_pattern"][name]["n"] * (2 if name == "complete" else 1)
    env = run.environment
    assert env["backbone"]["random_init"] is True and "torch" in env["versions"]
    assert env["data"]["synthetic"] is True and "git_revision" in env
    perf = run.perf
    assert perf["train_samples_per_s"] > 0 and perf["peak_memory_mb"] > 0
    assert len((run.path / "curve.csv").read_text().splitlines()) == EPOCHS + 1
    text = (run.path / "metrics.json").read_text()
    assert json.loads(text) == m and "seconds" not in text  # no timings in metrics.json


BASELINES = ["baseline", "mmp", "dcp", "moe_rep", "moe_ada", "moe_task"]


def test_every_baseline_trains_and_scores(tmp_path_factory):
    import rsmiss

    root = fresh_workspace(tmp_path_factory, "baselines")
    for method in BASELINES:
        run = rsmiss.train(
            root,
            dataset="trento",
            scenario=SCENARIO,
            method=method,
            backbone="tiny",
            random_init=True,
            epochs=1,
            sets=("max_test_samples=64", "write_map=false"),
        )
        m = run.metrics
        assert run.finished and m["method"] == method and m["n_test"] == 64
        cm = np.array(m["overall"]["confusion_matrix"])
        assert cm.sum() == 64
        assert m["overall"]["oa"] == pytest.approx(100 * np.trace(cm) / cm.sum(), abs=0.01)
        assert 0 < m["parameters"]["trainable"] < m["parameters"]["total"]
        assert rsmiss.load_run(run.run_id, root).metrics == m


def test_compile_option_runs_the_step_through_torch_compile(tmp_path_factory):
    """--set compile=aot_eager (dynamo + AOTAutograd, no code generation: fast on a CPU)
    really compiles the blocks, without a graph per batch composition,
    and trains to the eager run's scores; compile=true names inductor, junk is refused."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    import rsmiss

    root = fresh_workspace(tmp_path_factory, "compiled")
    common = dict(dataset="trento", scenario=SCENARIO, backbone="tiny", random_init=True, epochs=2)
    sets = ("max_test_samples=256", "write_map=false")
    eager = rsmiss.train(root, sets=sets, **common)
    torch._dynamo.reset()
    counters.clear()
    compiled = rsmiss.train(root, sets=(*sets, "compile=aot_eager"), **common)
    assert compiled.run_id != eager.run_id
    # the blocks compiled: one training graph and one inference graph (evaluation), not one
    # per batch composition (whole-model compile made 5 here, dynamic=False 10)
    assert counters["stats"]["unique_graphs"] == 2
    oa_e, oa_c = eager.metrics["overall"]["oa"], compiled.metrics["overall"]["oa"]
    assert abs(oa_e - oa_c) <= 1.0, (oa_e, oa_c)
    torch._dynamo.reset()

    cfg = RunConfig("trento", "s", "c", train_options={"compile": True})
    assert cfg.compile_backend == "inductor"
    off = RunConfig("trento", "s", "c", train_options={"compile": False})
    assert off.compile_backend is None and off.run_id == RunConfig("trento", "s", "c").run_id
    with pytest.raises(ConfigError, match="compile"):
        RunConfig("trento", "s", "c", train_options={"compile": "fast"})


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # .mat: no CRS
def test_three_modalities_every_pattern_end_to_end(tmp_path):
    """Augsburg's HS + SAR + DSM (7 availability patterns, 6 of them with something missing):
    synth -> ingest -> an all-subsets scenario -> MaMOL -> scores for every pattern ->
    re-scored on another scenario -> a map that follows `--missing`."""
    import rasterio
    from click.testing import CliRunner

    import rsmiss
    from rsmiss.cli import main

    def cli(*args: str) -> None:
        res = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert res.exit_code == 0, res.output

    root = str(tmp_path)
    cli("synth", "augsburg", "--out", f"{root}/raw/augsburg", "--scale", "0.2", "--seed", "0")
    cli("ingest", "augsburg", "--root", root, "--patch-size", "3", "--no-patches", "--no-progress")
    mods = ["--modalities", "hs,sar,lidar"]
    cli("scenarios", "--root", root, "--rate", "0.7", "--pattern", "all-subsets", *mods)
    cli("scenarios", "--root", root, "--rate", "0.7", "--pattern", "hs", *mods)
    sid = "all-subsets-r0.70-s0-m-hs-sar-lidar"
    run = rsmiss.train(
        root,
        dataset="augsburg",
        scenario=sid,
        method="mamol",
        backbone="tiny",
        random_init=True,
        epochs=2,
        sets=("max_test_samples=700", "write_map=false"),
    )
    m = run.metrics
    assert m["modalities"] == ["hs", "sar", "lidar"] and m["n_test"] == 700
    assert len(m["by_pattern"]) == 7  # complete + the six ways of missing one or two
    assert sum(p["n"] for p in m["by_pattern"].values()) == 700
    cms = [np.array(p["confusion_matrix"]) for p in m["by_pattern"].values()]
    assert (sum(cms) == np.array(m["overall"]["confusion_matrix"])).all()
    assert m["overall"]["oa"] == pytest.approx(100 * np.trace(sum(cms)) / 700, abs=0.01)
    # the model reloaded from the run directory is the trained one, modality order included
    # (config.json once stored the modalities as a JSON object: sorted, hs, lidar, sar)
    again = rsmiss.load_run(run.run_id, root)
    assert list(again.modalities) == ["hs", "sar", "lidar"]
    assert again.evaluate(scenario=sid)["overall"] == m["overall"]
    other = again.evaluate(scenario="hs-r0.70-s0-m-hs-sar-lidar")
    assert set(other["by_pattern"]) == {"complete", "hs_missing"}
    tif = again.predict(missing=("sar", "lidar"))
    with rasterio.open(tif) as src:
        classes = src.read(1)
    assert classes.shape == (src.height, src.width) and classes.max() <= len(m["class_names"])


def test_run_keeps_the_model_modality_order(tmp_path):
    """config.json keeps the model's modality order as [name, bands] pairs (a JSON object
    would come back with its keys sorted)."""
    from rsmiss.inference import load_run
    from rsmiss.workspace import write_json_atomic

    cfg = RunConfig("augsburg", "all-r0.70-s0", "cid", random_init=True)
    run_dir = tmp_path / "runs" / cfg.run_id
    run_dir.mkdir(parents=True)
    model = {"modalities": [["hs", 30], ["sar", 4], ["lidar", 1]], "n_classes": 2}
    write_json_atomic(
        run_dir / "config.json", {"run_id": cfg.run_id, "config": cfg.to_dict(), "model": model}
    )
    run = load_run(cfg.run_id, tmp_path)
    assert list(run.modalities) == ["hs", "sar", "lidar"]
    assert run.modalities == {"hs": 30, "sar": 4, "lidar": 1}


def test_patience_stops_on_validation_and_never_reads_test_labels(tmp_path_factory, monkeypatch):
    """Two runs that differ only in their test labels: same curve, stopping epoch and
    weights; only the test metrics differ. (``--epochs auto`` is this with 60 epochs and a
    patience of 5: tests/test_routing.py checks that translation.)"""
    from click.testing import CliRunner

    import rsmiss.training.run as run_module
    from rsmiss.cli import main
    from rsmiss.inference import load_run

    args = [
        "--dataset", "trento", "--scenario", SCENARIO, "--method", "mamol",
        "--backbone", "tiny", "--random-init", "--epochs", "10", "--set", "patience=1",
        "--set", "val_fraction=0.15",
        "--set", f"max_test_samples={MAX_TEST}", "--set", "write_map=false",
        "--set", "val_routing=true",
    ]  # fmt: skip
    runs = []
    original = run_module.prepare_data
    for name, shift in (("auto-a", 0), ("auto-b", 1)):

        def shifted(plan, shift=shift):
            data = original(plan)
            data.test.label = (data.test.label + shift) % data.n_classes  # other test labels
            return data

        monkeypatch.setattr(run_module, "prepare_data", shifted)
        root = fresh_workspace(tmp_path_factory, name)
        res = CliRunner().invoke(main, ["train", "--root", str(root), *args])
        assert res.exit_code == 0, res.output
        (run_dir,) = (root / "runs").iterdir()
        runs.append(load_run(run_dir))
    a, b = runs
    assert a.run_id == b.run_id and a.config.epochs == 10
    assert a.metrics["epochs_used"] < 10  # stopped by patience ...
    curve = (a.path / "curve.csv").read_text().split()
    assert curve[0] == "epoch,step,lr,train_loss,val_oa,val_separation"
    history = [float(line.split(",")[4]) for line in curve[1:]]
    assert all(0 <= float(line.split(",")[5]) <= 1 for line in curve[1:])
    best = history.index(max(history))
    assert len(history) == best + 1 + 1  # ... one epoch after the best val OA
    assert (a.path / "curve.csv").read_bytes() == (b.path / "curve.csv").read_bytes()
    assert a.metrics["epochs_used"] == b.metrics["epochs_used"] == len(history)
    wa = load_checkpoint(
        a.path / "checkpoint.pt", run_id=a.run_id, backbone_hash=None, check_backbone=False
    )["model"]
    wb = load_checkpoint(
        b.path / "checkpoint.pt", run_id=b.run_id, backbone_hash=None, check_backbone=False
    )["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics["routing"] == b.metrics["routing"]  # routing reads no label either
    assert a.metrics["overall"]["oa"] != b.metrics["overall"]["oa"]
    assert [h["epoch"] for h in a.perf["curve"]] == list(range(1, len(history) + 1))
    assert all(h["wall_s"] > 0 for h in a.perf["curve"])
