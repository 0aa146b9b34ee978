"""open_cube / CubeDataset / cut_patches: lazy patches equal stored ones, refusals, tensors;
the CF / GeoZarr view GIS tools get of a georeferenced cube; no torch behind open_cube."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

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


@pytest.fixture(scope="module")
def houston(tmp_path_factory) -> tuple[Path, Path]:
    """A small synthetic Houston 2013 (GeoTIFFs in EPSG:32615, 17 x 95 px): raw folder, cube."""
    base = tmp_path_factory.mktemp("houston")
    raw = synthesize("houston2013", base / "raw", seed=0, scale=0.05)
    cube = ingest(
        "houston2013", raw=raw, root=base / "root", patch_size=3, patches=False, progress=False
    )
    return raw, cube.path


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray's
def test_georeferenced_cube_reads_in_rioxarray_and_writes_a_geotiff(houston, tmp_path):
    import rasterio
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr
    from affine import Affine

    from rsmiss.catalog import load_catalog
    from rsmiss.synth.houston2013 import CASI

    raw, path = houston
    with rasterio.open(raw / CASI) as src:
        crs, transform = src.crs, src.transform
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(path)  # plain xarray: no rsmiss code, no warnings
    assert crs.to_epsg() == 32615
    assert ds.rio.crs == crs and ds["scene_hs"].rio.crs == crs
    assert ds["scene_hs"].rio.transform() == transform == Affine(*ds.attrs["transform"])
    assert ds["scene_hs"].attrs["grid_mapping"] == "spatial_ref"
    ref = ds["spatial_ref"].attrs
    assert rasterio.crs.CRS.from_wkt(ref["crs_wkt"]) == crs and ref["spatial_ref"] == ref["crs_wkt"]
    assert [float(v) for v in ref["GeoTransform"].split()] == list(transform.to_gdal())
    assert ref["grid_mapping_name"] == "transverse_mercator"

    # pixel-centre coordinates in metres, per sample too
    h, w = ds.sizes["y"], ds.sizes["x"]
    np.testing.assert_allclose(ds["x"].values, transform.c + transform.a * (np.arange(w) + 0.5))
    np.testing.assert_allclose(ds["y"].values, transform.f + transform.e * (np.arange(h) + 0.5))
    assert ds["x"].attrs["standard_name"] == "projection_x_coordinate"
    assert ds["y"].attrs["units"] == "metre"
    rows, cols = ds["row"].values, ds["col"].values
    np.testing.assert_array_equal(ds["sample_x"].values, ds["x"].values[cols])
    np.testing.assert_array_equal(ds["sample_y"].values, ds["y"].values[rows])
    assert "sample_x" in open_cube(path)["hs"].coords  # the (lazy) patches carry them

    # wavelengths as the band coordinate, in nm; no coordinate for the LiDAR band
    (hs_spec,) = [m for m in load_catalog("houston2013").modalities if m.name == "hs"]
    wl = hs_spec.wavelength_list()
    np.testing.assert_allclose(ds["hs_band"].values, wl)
    assert ds["hs_band"].attrs["units"] == "nm" and "lidar_band" not in ds.coords
    assert not any(k.startswith("wavelengths_") for k in ds.attrs)

    out = tmp_path / "scene_hs.tif"
    ds["scene_hs"].rio.to_raster(out)
    with rasterio.open(out) as tif:
        assert tif.crs == crs and tif.transform == transform
        assert (tif.count, tif.height, tif.width) == (144, h, w)
        np.testing.assert_array_equal(tif.read(7), ds["scene_hs"][6].values)


def test_open_cube_and_scenario_inputs_do_not_load_torch(houston):
    """Scenarios read cubes through rsmiss.cube; neither may pull in torch (seconds)."""
    code = (
        "import sys; from rsmiss.cube import open_cube; "
        "from rsmiss.scenarios import read_cube_inputs; "
        f"ds = open_cube({str(houston[1])!r}); ds['hs'][:2].values; "
        f"read_cube_inputs({str(houston[1])!r}); "
        "print(sorted(m for m in ('torch', 'torchgeo', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


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
