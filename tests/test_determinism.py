"""Determinism and leakage guards.

- Same seed, two CPU training runs in separate workspaces -> byte-identical ``metrics.json``
  and identical trained weights. (Same request -> byte-identical scenario files across two
  processes is tests/test_scenarios.py::test_byte_identical_in_separate_processes; the
  crash test also compares a subprocess's files with an in-process rerun's.)
- No test-split pixel is a training sample, and the cube's split equals the raw split maps.
- Normalisation depends on training pixels only: multiplying every *test* pixel of the raw
  HS and LiDAR by 10 changes neither the stored statistics, nor the training samples' values,
  nor the weights a short training run ends with.
"""

from __future__ import annotations

import shutil

import numpy as np
import scipy.io
import torch
from reliability_env import (
    INGEST_ARGS,
    TRAIN_ARGS,
    base_root,
    copy_root,
    ok,
    trained_run,
)

from rsmiss.cube import open_cube


def _weights(run_dir) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    return ckpt["model"]


def _assert_same_weights(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_two_training_runs_give_byte_identical_metrics(tmp_path_factory):
    ref = trained_run(tmp_path_factory)
    root = copy_root(tmp_path_factory, "det-again")
    ok("train", "--root", root, *TRAIN_ARGS)
    again = root / "runs" / ref.name  # same config -> same run id
    assert (again / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()
    assert (again / "curve.csv").read_bytes() == (ref / "curve.csv").read_bytes()
    _assert_same_weights(ref, again)


def test_no_test_pixel_is_a_training_sample(tmp_path_factory):
    root = base_root(tmp_path_factory)
    raw = root / "raw" / "trento"
    tr = scipy.io.loadmat(raw / "TRLabel.mat")["TRLabel"]
    ts = scipy.io.loadmat(raw / "TSLabel.mat")["TSLabel"]
    ds = open_cube(root / "cubes" / "trento.zarr")
    split = ds["split"].values
    rows, cols, label = ds["row"].values, ds["col"].values, ds["label"].values
    train, test = split == "train", split == "test"
    assert train.any() and test.any() and (train | test).all()
    pos = rows.astype(np.int64) * tr.shape[1] + cols
    assert not set(pos[train]) & set(pos[test])
    # equal to the raw maps, in raster order, with the raw class ids
    for mask, lab in ((train, tr), (test, ts)):
        want = np.flatnonzero(lab.ravel() > 0)
        np.testing.assert_array_equal(pos[mask], want)
        np.testing.assert_array_equal(label[mask], lab.ravel()[want])
    # the scenario's rows index the same disjoint splits
    from rsmiss.scenarios import load_scenario

    (npz,) = (root / "scenarios" / "trento").glob("*.npz")
    sc = load_scenario(npz, cube=root / "cubes" / "trento.zarr")
    np.testing.assert_array_equal(sc.train_index, np.flatnonzero(train))
    np.testing.assert_array_equal(sc.test_index, np.flatnonzero(test))


def test_normalisation_and_training_ignore_test_pixels(tmp_path_factory):
    base = base_root(tmp_path_factory)
    ref_run = trained_run(tmp_path_factory)
    root = tmp_path_factory.mktemp("det-leak")
    raw = root / "raw" / "trento"
    shutil.copytree(base / "raw" / "trento", raw)
    ts = scipy.io.loadmat(raw / "TSLabel.mat")["TSLabel"] > 0
    for name in ("Italy_hsi.mat", "Italy_lidar.mat"):
        x = scipy.io.loadmat(raw / name)["data"]
        x[ts] *= 10  # every band of every test pixel
        scipy.io.savemat(raw / name, {"data": x})
    ok("ingest", "trento", "--root", root, *INGEST_ARGS)

    a = open_cube(base / "cubes" / "trento.zarr")
    b = open_cube(root / "cubes" / "trento.zarr")
    assert a.attrs["cube_id"] != b.attrs["cube_id"]  # the inputs did change ...
    for m in a.attrs["modalities"]:
        for stat in ("norm_mean", "norm_std"):
            assert a.attrs[f"{stat}_{m}"] == b.attrs[f"{stat}_{m}"], (stat, m)
        # ... but not the training samples. The shared cube has 1 x 1 patches, so a patch is
        # exactly its pixel; with P > 1 a training patch next to a test pixel would include
        # that pixel's (changed) value as spatial context, so only centres are comparable.
        c = int(a.attrs["patch_size"]) // 2
        train = a["split"].values == "train"
        va, vb = a[m].values[:, :, c, c], b[m].values[:, :, c, c]
        np.testing.assert_array_equal(va[train], vb[train])
        assert not np.array_equal(va[~train], vb[~train])  # the test pixels did change

    ok("scenarios", "--root", root, "--rate", "0.5", "--pattern", "both")
    ok("train", "--root", root, *TRAIN_ARGS)
    (run,) = (root / "runs").iterdir()
    _assert_same_weights(ref_run, run)
