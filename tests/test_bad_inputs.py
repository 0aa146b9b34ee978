"""The bad-input matrix: every stage of the CLI, fed one broken input at a time.

Each case must end with exit code 2 and exactly one non-empty stderr line ``error: ...``
naming the file or flag and the problem, no traceback (one case asks for it with
``--debug``), and nothing published or overwritten: the watched folders are snapshotted
(names, sizes, mtimes, content hashes) before and after. All cases share one small cube and
one 1-epoch tiny run (tests/reliability_env.py) and run in this process through CliRunner.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from reliability_env import (
    SCENARIO,
    base_root,
    cli,
    copy_root,
    snapshot,
    tamper_npz,
    trained_run,
)

from rsmiss.catalog import CATALOG_DIR


@dataclass
class Ctx:
    """What a case's setup may use: a private folder and the shared fixtures."""

    tmp: Path
    factory: pytest.TempPathFactory

    # ------------------------------------------------------------- workspaces
    def root(self, *, runs: bool = False) -> Path:
        return copy_root(self.factory, "case", runs=runs)

    def raw(self) -> Path:
        """A private copy of the synthetic Trento raw files, free to corrupt."""
        dst = self.tmp / "raw"
        shutil.copytree(base_root(self.factory) / "raw" / "trento", dst)
        return dst

    def run_dir(self, root: Path) -> Path:
        return root / "runs" / trained_run(self.factory).name

    # ------------------------------------------------------------- raw edits
    @staticmethod
    def load(path: Path, key: str) -> np.ndarray:
        return scipy.io.loadmat(path)[key]

    @staticmethod
    def save(path: Path, **arrays: np.ndarray) -> None:
        scipy.io.savemat(path, arrays)

    def user_yaml(self, edit: Callable[[dict], None] | None = None, text: str | None = None):
        """The Trento entry as a user YAML 'mine': no checksums (so no warnings on the
        synthetic files), no fixed shapes, no full label map (checked separately)."""
        doc = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
        doc["name"] = "mine"
        doc.pop("shape")
        doc["split"].pop("labels")
        for fs in [m["source"] for m in doc["modalities"]] + list(doc["split"].values()):
            if isinstance(fs, dict):
                fs.pop("sha256", None)
                fs.pop("shape", None)
        if edit is not None:
            edit(doc)
        path = self.tmp / "mine.yaml"
        path.write_text(text if text is not None else yaml.safe_dump(doc))
        return path


def roi_text(labels: np.ndarray, n_classes: int, extra: dict[int, tuple[int, int]] = {}) -> str:  # noqa: B006
    """An ENVI ROI export of a label map (ROI i = class i, X/Y columns only); ``extra`` adds
    one (row, col) pixel to a class's ROI."""
    h, w = labels.shape
    head = ["; ENVI Output of ROIs (4.8)", f"; Number of ROIs: {n_classes}"]
    head.append(f"; File Dimension: {w} x {h}")
    blocks = []
    for c in range(1, n_classes + 1):
        pts = list(zip(*np.nonzero(labels == c), strict=True))
        if c in extra:
            pts.append(extra[c])
        head += [f"; ROI name: class {c}", "; ROI rgb value: {0, 0, 0}", f"; ROI npts: {len(pts)}"]
        blocks.append("\n".join(f"{i + 1} {x + 1} {y + 1}" for i, (y, x) in enumerate(pts)))
    head.append(";   ID  X  Y")
    return "\n".join(head) + "\n" + "\n\n".join(b for b in blocks if b) + "\n"


# ----------------------------------------------------------------------------- ingest cases
def _ingest(ctx: Ctx, yml, raw: Path, *extra: str):
    root = ctx.root()
    return ["ingest", str(yml), "--raw", str(raw), "--root", str(root), "--no-progress", *extra], [
        root / "cubes"
    ]


def mat_truncated(ctx: Ctx):
    raw = ctx.raw()
    f = raw / "Italy_hsi.mat"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return _ingest(ctx, ctx.user_yaml(), raw)


def mat_garbage(ctx: Ctx):
    raw = ctx.raw()
    (raw / "Italy_lidar.mat").write_bytes(np.random.default_rng(0).bytes(4096))
    return _ingest(ctx, ctx.user_yaml(), raw)


def tif_truncated(ctx: Ctx):
    import rasterio

    raw = ctx.raw()
    lid = ctx.load(raw / "Italy_lidar.mat", "data").transpose(2, 0, 1)
    tif = raw / "dsm.tif"
    profile = {"driver": "GTiff", "height": lid.shape[1], "width": lid.shape[2]}
    with warnings.catch_warnings():  # "no geotransform": plain arrays, like the .mat files
        warnings.simplefilter("ignore")
        with rasterio.open(tif, "w", count=2, dtype="float32", **profile) as dst:
            dst.write(lid.astype(np.float32))
    tif.write_bytes(tif.read_bytes()[:600])

    def edit(doc):
        doc["modalities"][1]["source"] = {"file": "dsm.tif"}

    return _ingest(ctx, ctx.user_yaml(edit), raw)


def _roi_yaml(ctx: Ctx, raw: Path, *, cut: bool = False, overlap: bool = False) -> Path:
    tr = ctx.load(raw / "TRLabel.mat", "TRLabel")
    ts = ctx.load(raw / "TSLabel.mat", "TSLabel")
    first = tuple(int(v) for v in np.argwhere(tr == 1)[0])  # a class-1 training pixel ...
    (raw / "train.txt").write_text(roi_text(tr, 6, {2: first} if overlap else {}))  # ... in 2
    test = roi_text(ts, 6)
    (raw / "test.txt").write_text(test[: len(test) * 3 // 5] if cut else test)

    def edit(doc):
        doc["split"] = {
            "method": "roi",
            "train": {"file": "train.txt"},
            "test": {"file": "test.txt"},
        }

    return ctx.user_yaml(edit)


def roi_truncated(ctx: Ctx):
    raw = ctx.raw()
    return _ingest(ctx, _roi_yaml(ctx, raw, cut=True), raw)


def roi_pixel_in_two_classes(ctx: Ctx):
    raw = ctx.raw()
    return _ingest(ctx, _roi_yaml(ctx, raw, overlap=True), raw)


def key_ambiguous(ctx: Ctx):
    raw = ctx.raw()
    lab = ctx.load(raw / "TRLabel.mat", "TRLabel")
    ctx.save(raw / "TRLabel.mat", a=lab, b=lab)
    return _ingest(ctx, ctx.user_yaml(), raw)


def key_wrong(ctx: Ctx):
    raw = ctx.raw()
    lid = ctx.load(raw / "Italy_lidar.mat", "data")
    ctx.save(raw / "Italy_lidar.mat", data=lid, dsm=lid[..., :1])

    def edit(doc):
        doc["modalities"][1]["source"]["key"] = "height"

    return _ingest(ctx, ctx.user_yaml(edit), raw)


def band_count(ctx: Ctx):
    raw = ctx.raw()
    lid = ctx.load(raw / "Italy_lidar.mat", "data")
    ctx.save(raw / "Italy_lidar.mat", data=np.concatenate([lid, lid], 2))
    return _ingest(ctx, ctx.user_yaml(), raw)


def spatial_shape(ctx: Ctx):
    raw = ctx.raw()
    ctx.save(raw / "Italy_lidar.mat", data=ctx.load(raw / "Italy_lidar.mat", "data")[:-1])
    return _ingest(ctx, ctx.user_yaml(), raw)


def nan_band(ctx: Ctx):
    raw = ctx.raw()
    hs = ctx.load(raw / "Italy_hsi.mat", "data")
    hs[:, :, 5] = np.nan
    ctx.save(raw / "Italy_hsi.mat", data=hs)
    return _ingest(ctx, ctx.user_yaml(), raw)


def _labels(ctx: Ctx, change: Callable[[np.ndarray, np.ndarray], None]):
    raw = ctx.raw()
    tr = ctx.load(raw / "TRLabel.mat", "TRLabel")
    ts = ctx.load(raw / "TSLabel.mat", "TSLabel")
    change(tr, ts)
    ctx.save(raw / "TRLabel.mat", TRLabel=tr)
    ctx.save(raw / "TSLabel.mat", TSLabel=ts)
    return _ingest(ctx, ctx.user_yaml(), raw)


def label_out_of_range(ctx: Ctx):
    def change(tr, ts):
        ts[np.unravel_index(np.flatnonzero(ts)[0], ts.shape)] = 9

    return _labels(ctx, change)


def splits_overlap(ctx: Ctx):
    def change(tr, ts):
        r, c = np.unravel_index(np.flatnonzero(tr)[0], tr.shape)
        ts[r, c] = tr[r, c]

    return _labels(ctx, change)


def class_without_training_pixel(ctx: Ctx):
    def change(tr, ts):
        ts[tr == 3] = 3
        tr[tr == 3] = 0

    return _labels(ctx, change)


def missing_raw_file(ctx: Ctx):
    raw = ctx.raw()
    (raw / "TRLabel.mat").unlink()
    return _ingest(ctx, ctx.user_yaml(), raw)


def unknown_dataset(ctx: Ctx):
    return _ingest(ctx, "atlantis", ctx.raw())


def yaml_syntax(ctx: Ctx):
    return _ingest(ctx, ctx.user_yaml(text="name: mine\nmodalities: [\n  - {name: hs\n"), ctx.raw())


def yaml_wrong_type(ctx: Ctx):
    def edit(doc):
        doc["modalities"][0]["bands"] = "many"

    return _ingest(ctx, ctx.user_yaml(edit), ctx.raw())


def checksum_strict(ctx: Ctx):
    # the catalog's sums are the real files'; the synthetic copies differ
    return _ingest(ctx, "trento", ctx.raw(), "--strict", "--force")


def patch_size_zero(ctx: Ctx):
    return _ingest(ctx, ctx.user_yaml(), ctx.raw(), "--patch-size", "0")


def workers_and_scheduler(ctx: Ctx):
    return _ingest(ctx, ctx.user_yaml(), ctx.raw(), "--workers", "1", "--scheduler", "tcp://x:1")


def debug_traceback(ctx: Ctx):
    args, watch = mat_truncated(ctx)
    return ["--debug", *args], watch


# ----------------------------------------------------------------------------- synth
def synth_scale(ctx: Ctx):
    out = ctx.tmp / "synth-out"
    return ["synth", "trento", "--out", str(out), "--scale", "1.5"], [out]


# ----------------------------------------------------------------------------- scenarios
def _scen(ctx: Ctx, *args: str):
    root = ctx.root()
    return ["scenarios", "--root", str(root), *args], [root / "scenarios", root / "cubes"]


def rate_out_of_range(ctx: Ctx):
    return _scen(ctx, "--rate", "1.5")


def negative_test_rate(ctx: Ctx):
    return _scen(ctx, "--rate", "0.5", "--test-rate", "-0.1")


def unknown_pattern(ctx: Ctx):
    return _scen(ctx, "--rate", "0.5", "--pattern", "clouds")


def availability_infeasible(ctx: Ctx):
    return _scen(ctx, "--availability", "hs=0.3,lidar=0.4")


def availability_unknown_modality(ctx: Ctx):
    return _scen(ctx, "--availability", "hs=1.0,sar=0.5")


def both_needs_two_modalities(ctx: Ctx):
    return _scen(ctx, "--rate", "0.5", "--pattern", "both", "--modalities", "hs")


def no_cube_for_dataset(ctx: Ctx):
    return _scen(ctx, "--rate", "0.5", "--dataset", "atlantis")


# ----------------------------------------------------------------------------- train
def _train(ctx: Ctx, *args: str, runs: bool = False, root: Path | None = None):
    root = root or ctx.root(runs=runs)
    base = ["--backbone", "tiny", "--epochs", "1", "--scenario", SCENARIO]
    return ["train", "--root", str(root), *base, *args], [
        root / "runs",
        root / "scenarios",
        root / "cubes",
    ]


def scenario_tampered(ctx: Ctx):
    root = ctx.root()
    tamper_npz(root / "scenarios" / "trento" / f"{SCENARIO}.npz")
    return _train(ctx, "--random-init", root=root)


def scenario_of_another_cube(ctx: Ctx):
    root = ctx.root()
    meta = root / "cubes" / "trento.zarr" / "zarr.json"  # as if re-ingested with new inputs
    doc = json.loads(meta.read_text())
    doc["attributes"]["cube_id"] = "0123456789abcdef"
    meta.write_text(json.dumps(doc))
    return _train(ctx, "--random-init", root=root)


def unknown_method(ctx: Ctx):
    return _train(ctx, "--random-init", "--method", "nope")


def unknown_set_key(ctx: Ctx):
    return _train(ctx, "--random-init", "--set", "wobble=3")


def unknown_compile_backend(ctx: Ctx):
    return _train(ctx, "--random-init", "--set", "compile=fast")


def batch_size_zero(ctx: Ctx):
    return _train(ctx, "--random-init", "--batch-size", "0")


def epochs_zero(ctx: Ctx):
    return _train(ctx, "--random-init", "--epochs", "0")


def too_many_devices(ctx: Ctx):
    return _train(ctx, "--random-init", "--devices", "4096")


def weights_wrong_architecture(ctx: Ctx):
    import torch

    w = ctx.tmp / "w.pt"
    torch.save({"conv1.weight": torch.zeros(8, 3, 4, 4), "nonsense": torch.zeros(2)}, w)
    return _train(ctx, "--backbone-weights", str(w))


def weights_garbage(ctx: Ctx):
    w = ctx.tmp / "garbage.pt"
    w.write_bytes(b"\x00garbage, not a weights file")
    return _train(ctx, "--backbone-weights", str(w))


def checkpoint_corrupt(ctx: Ctx):
    """A killed run (checkpoint, no metrics) whose checkpoint is damaged: refused, kept."""
    from reliability_env import TRAIN_ARGS

    root = ctx.root(runs=True)
    run = ctx.run_dir(root)
    (run / "metrics.json").unlink()
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    return ["train", "--root", str(root), *TRAIN_ARGS], [root / "runs"]


# ----------------------------------------------------------------------------- evaluate/predict
def evaluate_unknown_run(ctx: Ctx):
    root = ctx.root(runs=True)
    return ["evaluate", "no-such-run", "--root", str(root)], [root / "runs"]


def evaluate_tampered_scenario(ctx: Ctx):
    root = ctx.root(runs=True)
    tamper_npz(root / "scenarios" / "trento" / f"{SCENARIO}.npz")
    run = ctx.run_dir(root)
    return ["evaluate", run.name, "--root", str(root), "--scenario", SCENARIO], [
        root / "runs",
        root / "scenarios",
    ]


def predict_unknown_modality(ctx: Ctx):
    root = ctx.root(runs=True)
    run = ctx.run_dir(root)
    out = ctx.tmp / "map.tif"
    return ["predict", run.name, "--root", str(root), "--missing", "sar", "--out", str(out)], [
        root / "runs",
        out,
    ]


# ----------------------------------------------------------------------------- benchmark
def pipeline_invalid_yaml(ctx: Ctx):
    root = ctx.root()
    p = ctx.tmp / "broken.yaml"
    p.write_text("name: broken\ngrid: [\n")
    return ["benchmark", str(p), "--root", str(root)], [root]


def pipeline_unknown_method(ctx: Ctx):
    root = ctx.root()
    doc = yaml.safe_load(Path(CATALOG_DIR.parent / "pipelines" / "smoke.yaml").read_text())
    doc["name"] = "weird"
    doc["grid"][0]["methods"] = ["mamol", "telepathy"]
    p = ctx.tmp / "weird.yaml"
    p.write_text(yaml.safe_dump(doc))
    return ["benchmark", str(p), "--root", str(root)], [root]


# (case id, setup, substrings the error line must contain)
CASES: list[tuple[str, Callable, tuple[str, ...]]] = [
    ("mat-truncated", mat_truncated, ("Italy_hsi.mat", "corrupt")),
    ("mat-garbage", mat_garbage, ("Italy_lidar.mat",)),
    ("tif-truncated", tif_truncated, ("dsm.tif",)),
    ("roi-truncated", roi_truncated, ("test.txt", "truncated")),
    ("roi-pixel-in-two-classes", roi_pixel_in_two_classes, ("train.txt", "class 1", "class 2")),
    ("key-ambiguous", key_ambiguous, ("TRLabel.mat", "'TRLabel' not found", "keys: a, b")),
    ("key-wrong", key_wrong, ("Italy_lidar.mat", "'height' not found", "keys: data, dsm")),
    ("band-count", band_count, ("Italy_lidar.mat", "4 bands", "'lidar' has 2")),
    ("shape-no-georef", spatial_shape, ("Italy_lidar.mat", "cannot be co-registered")),
    ("nan-band", nan_band, ("Italy_hsi.mat", "band 5", "no valid value")),
    ("label-out-of-range", label_out_of_range, ("TSLabel.mat", "outside the class list")),
    ("splits-overlap", splits_overlap, ("TRLabel.mat", "TSLabel.mat", "overlap")),
    ("class-no-train", class_without_training_pixel, ("TRLabel.mat", "no training pixel")),
    ("raw-file-missing", missing_raw_file, ("TRLabel.mat", "not found")),
    ("unknown-dataset", unknown_dataset, ("atlantis", "unknown dataset")),
    ("yaml-syntax", yaml_syntax, ("mine.yaml", "invalid YAML")),
    ("yaml-wrong-type", yaml_wrong_type, ("mine.yaml", "bands")),
    ("checksum-strict", checksum_strict, ("Italy_hsi.mat", "sha256", "--strict")),
    ("patch-size-0", patch_size_zero, ("--patch-size",)),
    ("workers-and-scheduler", workers_and_scheduler, ("--workers", "--scheduler")),
    ("synth-scale", synth_scale, ("--scale", "1.5")),
    ("rate-out-of-range", rate_out_of_range, ("--rate", "1.5")),
    ("test-rate-negative", negative_test_rate, ("--test-rate", "-0.1")),
    ("unknown-pattern", unknown_pattern, ("clouds",)),
    ("availability-infeasible", availability_infeasible, ("--availability",)),
    ("availability-unknown-modality", availability_unknown_modality, ("sar",)),
    ("one-modality", both_needs_two_modalities, ("--modalities hs", "at least two")),
    ("no-cube-for-dataset", no_cube_for_dataset, ("atlantis",)),
    ("scenario-tampered", scenario_tampered, (f"{SCENARIO}.npz", "sha256")),
    ("scenario-of-another-cube", scenario_of_another_cube, (f"{SCENARIO}.npz", "cube")),
    ("unknown-method", unknown_method, ("nope",)),
    ("unknown-set-key", unknown_set_key, ("wobble",)),
    ("unknown-compile-backend", unknown_compile_backend, ("compile", "fast")),
    ("batch-size-0", batch_size_zero, ("--batch-size",)),
    ("epochs-0", epochs_zero, ("--epochs",)),
    ("too-many-devices", too_many_devices, ("--devices", "4096")),
    ("weights-wrong-architecture", weights_wrong_architecture, ("w.pt",)),
    ("weights-garbage", weights_garbage, ("garbage.pt",)),
    ("checkpoint-corrupt", checkpoint_corrupt, ("checkpoint.pt", "--no-resume")),
    ("evaluate-unknown-run", evaluate_unknown_run, ("no-such-run",)),
    ("evaluate-tampered-scenario", evaluate_tampered_scenario, (f"{SCENARIO}.npz", "sha256")),
    ("predict-unknown-modality", predict_unknown_modality, ("--missing", "sar")),
    ("pipeline-invalid-yaml", pipeline_invalid_yaml, ("broken.yaml",)),
    ("pipeline-unknown-method", pipeline_unknown_method, ("weird.yaml", "telepathy")),
    ("debug-traceback", debug_traceback, ("Italy_hsi.mat", "corrupt")),
]


@pytest.mark.parametrize(("case", "setup", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, setup, needles, tmp_path, tmp_path_factory):
    args, watched = setup(Ctx(tmp_path, tmp_path_factory))
    before = snapshot(*watched)
    res = cli(*args)
    after = snapshot(*watched)

    assert res.exit_code == 2, (case, res.exit_code, res.stderr, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    debug = "--debug" in args
    if debug:  # the traceback first, then the same single error line
        assert "Traceback (most recent call last)" in res.stderr, res.stderr
        lines = lines[-1:]
    else:
        assert "Traceback" not in res.stderr + res.stdout, res.stderr
    assert len(lines) == 1, (case, res.stderr)
    line = lines[0]
    assert line.startswith("error: ") and len(line) > len("error: ") + 10, line
    for needle in needles:
        assert needle in line, (case, needle, line)
    assert before == after, (case, sorted(set(before.items()) ^ set(after.items()))[:5])


def test_harness_passes_a_good_input_and_sees_its_writes(tmp_path, tmp_path_factory):
    """The matrix's checks can fail: the same workspace with a valid request exits 0 with no
    error line, and the snapshot sees the scenario it publishes."""
    root = Ctx(tmp_path, tmp_path_factory).root()
    before = snapshot(root / "scenarios")
    res = cli("scenarios", "--root", str(root), "--rate", "0.5", "--pattern", "hs")
    after = snapshot(root / "scenarios")
    assert res.exit_code == 0, res.stderr
    assert not any(ln.startswith("error: ") for ln in res.stderr.splitlines())
    assert before != after
    assert any("hs-r0.50-s0" in str(k) for k in set(after) - set(before))
