"""open_cube / CubeDataset / cut_patches: lazy patches equal stored ones, refusals, tensors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmiss.cube import cut_patches, open_cube
from rsmiss.errors import DataError
from rsmiss.ingest import ingest
from rsmiss.synth import synthesize


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    """The same small synthetic Trento ingested with and without stored patches (P = 6)."""
    base = tmp_path_factory.mktemp("cube")
    raw = synthesize("trento", base / "raw", seed=1, scale=0.2)
    with_p = ingest("trento", raw=raw, root=base / "a", patch_size=6, progress=False)
    without = ingest(
        "trento", raw=raw, root=base / "b", patch_size=6, patches=False, progress=False
    )
    return with_p.path, without.path


def test_lazy_patches_equal_stored_patches(cubes):
    stored, lazy = open_cube(cubes[0]), open_cube(cubes[1])
    assert stored.attrs["has_patches"] is True and lazy.attrs["has_patches"] is False
    for m in ("hs", "lidar"):
        assert lazy[m].dims == stored[m].dims and lazy[m].dtype == stored[m].dtype
        np.testing.assert_array_equal(lazy[m].values, stored[m].values)
    np.testing.assert_array_equal(lazy["scene_hs"].values, stored["scene_hs"].values)
    assert lazy.attrs["cube_id"] != stored.attrs["cube_id"]  # ingest parameters differ


def test_cube_dataset_returns_tensors_equal_to_the_cube(cubes):
    import torch
    from torchgeo.datasets import NonGeoDataset

    from rsmiss.cube import CubeDataset

    ds = open_cube(cubes[0])
    data = CubeDataset(cubes[0])
    assert isinstance(data, NonGeoDataset)
    assert len(data) == ds.sizes["sample"]
    for i in (0, len(data) // 2, len(data) - 1):
        item = data[i]
        assert set(item) == {"hs", "lidar", "label"}
        assert item["hs"].dtype == torch.float32 and item["hs"].shape == (63, 6, 6)
        np.testing.assert_array_equal(item["hs"].numpy(), ds["hs"][i].values.astype(np.float32))
        np.testing.assert_array_equal(item["lidar"].numpy(), ds["lidar"][i].values)
        assert item["label"].item() == int(ds["label"][i]) - 1
    train = CubeDataset(cubes[1], modalities=["lidar"], split="train")
    n_train = int((ds["split"].values == "train").sum())
    assert len(train) == n_train and set(train[0]) == {"lidar", "label"}
    with pytest.raises(DataError, match="sar"):
        CubeDataset(cubes[0], modalities=["sar"])


def test_open_cube_refuses_what_is_not_a_finished_cube(tmp_path):
    import xarray as xr

    with pytest.raises(DataError, match="not found"):
        open_cube(tmp_path / "none.zarr")
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(
        tmp_path / "foreign.zarr", zarr_format=3, consolidated=False
    )
    with pytest.raises(DataError, match="not a finished rsmiss cube"):
        open_cube(tmp_path / "foreign.zarr")


def _naive(scene, r, c, p):
    pad = ((0, 0), (p // 2, p - 1 - p // 2), (p // 2, p - 1 - p // 2))
    padded = np.pad(scene, pad, mode="reflect")
    return padded[:, r : r + p, c : c + p]


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    p=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_cut_patches_matches_reflect_padding(h, w, p, seed):
    rng = np.random.default_rng(seed)
    scene = rng.random((2, h, w)).astype(np.float32)
    flat = np.sort(rng.choice(h * w, size=min(5, h * w), replace=False))
    rows, cols = np.divmod(flat, w)
    got = cut_patches(scene, rows, cols, p)
    assert got.shape == (rows.size, 2, p, p)
    for k in range(rows.size):
        np.testing.assert_array_equal(got[k], _naive(scene, rows[k], cols[k], p))
        assert got[k][:, p // 2, p // 2].tolist() == scene[:, rows[k], cols[k]].tolist()
