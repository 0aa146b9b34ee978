"""``rsmiss ingest``: split counts of the real/synthetic benchmarks, co-registration, the
cube layout, idempotence, atomicity and every bad input (one line, exit 2, nothing published)."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from click.testing import CliRunner

from rsmiss.catalog import CATALOG_DIR
from rsmiss.cli import main
from rsmiss.synth import synthesize
from rsmiss.synth.specs import AUGSBURG, HOUSTON2013, TRENTO

SMALL = 0.25  # synthetic Trento at 42 x 150 px


def cli(*args: str):
    return CliRunner().invoke(main, [*map(str, args), "--no-progress"])


def assert_bad(res, root: Path, *needles: str) -> None:
    """Exit 2, one ``error:`` line naming the problem, and no cube or temp store left behind."""
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.output
    for n in needles:
        assert n in errors[0], errors[0]
    cubes = root / "cubes"
    assert not cubes.exists() or not any(cubes.iterdir()), list(cubes.iterdir())


def open_cube(path):
    from rsmiss.cube import open_cube as oc

    return oc(path)


@pytest.fixture(scope="module")
def small_trento(tmp_path_factory) -> Path:
    return synthesize("trento", tmp_path_factory.mktemp("raw") / "trento", seed=0, scale=SMALL)


@pytest.fixture
def trento_copy(small_trento, tmp_path) -> Path:
    dst = tmp_path / "raw"
    shutil.copytree(small_trento, dst)
    return dst


def user_yaml(tmp_path: Path, edit=None, drop_shapes: bool = True) -> Path:
    """The Trento catalog entry as a user YAML (no checksums, optionally no shapes)."""
    doc = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
    doc["name"] = "mine"
    doc.pop("shape")
    for fs in [m["source"] for m in doc["modalities"]] + list(doc["split"].values()):
        if isinstance(fs, dict):
            fs.pop("sha256", None)
            if drop_shapes:
                fs.pop("shape", None)
    if edit:
        edit(doc)
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


# --------------------------------------------------------------------------- full size
def test_trento_real_files_counts_lidar_values_and_no_leak(real_trento, tmp_path):
    raw = tmp_path / "D"
    raw.mkdir()
    for f in ("Italy_lidar.mat", "allgrd.mat", "TRLabel.mat", "TSLabel.mat"):
        shutil.copy(real_trento / f, raw / f)
    synth = synthesize("trento", tmp_path / "S", real_from=real_trento)
    shutil.copy(synth / "Italy_hsi.mat", raw / "Italy_hsi.mat")
    shutil.copy(synth / "SYNTHETIC", raw / "SYNTHETIC")
    root = tmp_path / "root"
    res = cli("ingest", "trento", "--raw", raw, "--root", root, "--patch-size", 3)
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "Italy_hsi.mat" in res.output  # synthetic HS sum

    ds = open_cube(root / "cubes" / "trento.zarr")
    split = ds["split"].values
    label = ds["label"].values
    assert (split == "train").sum() == 819 and (split == "test").sum() == 29395
    for s, counts in (("train", TRENTO.train_counts), ("test", TRENTO.test_counts)):
        assert np.bincount(label[split == s], minlength=7)[1:].tolist() == list(counts)
    sums = ds.attrs["checksums"]
    assert sums["TRLabel.mat"]["matched"] is True and sums["Italy_hsi.mat"]["matched"] is False
    assert ds.attrs["synthetic"] is True

    rows, cols = ds["row"].values, ds["col"].values
    tr = scipy.io.loadmat(real_trento / "TRLabel.mat")["TRLabel"]
    ts = scipy.io.loadmat(real_trento / "TSLabel.mat")["TSLabel"]
    is_train = split == "train"
    assert (ts[rows[is_train], cols[is_train]] == 0).all()  # no test pixel in training
    assert (tr[rows[is_train], cols[is_train]] == label[is_train]).all()
    assert (ts[rows[~is_train], cols[~is_train]] == label[~is_train]).all()

    lidar = scipy.io.loadmat(real_trento / "Italy_lidar.mat")["data"]
    centre = ds["lidar"].values[:, :, 1, 1]  # P = 3: centre at P//2
    mean = np.array(ds.attrs["norm_mean_lidar"])
    std = np.array(ds.attrs["norm_std_lidar"])
    np.testing.assert_allclose(centre * std + mean, lidar[rows, cols], rtol=1e-5, atol=1e-3)


@pytest.mark.slow
def test_houston2013_full_size_split_from_roi_files(tmp_path):
    raw = synthesize("houston2013", tmp_path / "raw", seed=0)
    root = tmp_path / "root"
    res = cli("ingest", "houston2013", "--raw", raw, "--root", root, "--no-patches")
    assert res.exit_code == 0, res.output
    ds = open_cube(root / "cubes" / "houston2013.zarr")
    split, label = ds["split"].values, ds["label"].values
    for s, counts in (("train", HOUSTON2013.train_counts), ("test", HOUSTON2013.test_counts)):
        assert np.bincount(label[split == s], minlength=16)[1:].tolist() == list(counts)
    assert ds.attrs["crs"] and len(ds.attrs["transform"]) == 6
    assert ds.sizes["hs_band"] == 144 and ds["scene_hs"].shape == (144, 349, 1905)


@pytest.mark.slow
def test_augsburg_full_size_three_modalities(tmp_path):
    raw = synthesize("augsburg", tmp_path / "raw", seed=0)
    root = tmp_path / "root"
    res = cli("ingest", "augsburg", "--raw", raw, "--root", root, "--no-patches")
    assert res.exit_code == 0, res.output
    ds = open_cube(root / "cubes" / "augsburg.zarr")
    split, label = ds["split"].values, ds["label"].values
    for s, counts in (("train", AUGSBURG.train_counts), ("test", AUGSBURG.test_counts)):
        assert np.bincount(label[split == s], minlength=8)[1:].tolist() == list(counts)
    assert list(ds["modality"].values) == ["hs", "sar", "lidar"]
    assert ds["observed"].shape == (78294, 3)
    assert (ds.sizes["hs_band"], ds.sizes["sar_band"], ds.sizes["lidar_band"]) == (180, 4, 1)
    assert ds["sar"].shape == (78294, 4, 14, 14)  # cut lazily from the scene
    assert np.isfinite(ds["hs"][:4].values).all()


# --------------------------------------------------------------------------- layout
def test_small_cube_layout_values_and_normalisation(small_trento, tmp_path):
    root = tmp_path / "root"
    res = cli("ingest", "trento", "--raw", small_trento, "--root", root)
    assert res.exit_code == 0, res.output
    path = root / "cubes" / "trento.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plain xarray.open_zarr works, without warnings
        import xarray as xr

        raw_ds = xr.open_zarr(path)
        assert set(raw_ds["split"].values.tolist()) == {"train", "test"}
    ds = open_cube(path)
    n, p = ds.sizes["sample"], 14
    assert ds["hs"].dtype == np.float16 and ds["lidar"].dtype == np.float32
    assert ds["hs"].dims == ("sample", "hs_band", "py", "px")
    assert ds["scene_hs"].dims == ("hs_band", "y", "x") and ds["scene_hs"].dtype == np.float32
    assert list(ds["modality"].values) == ["hs", "lidar"]
    rows, cols = ds["row"].values, ds["col"].values
    w = ds.sizes["x"]
    assert (np.diff(rows.astype(np.int64) * w + cols) > 0).all()  # raster order
    lm = ds["label_map"].values
    assert (lm[rows, cols] == ds["label"].values).all() and int((lm > 0).sum()) == n
    assert ds["label"].values.min() >= 1 and ds["observed"].values.all()

    scene = ds["scene_hs"].values
    hs = ds["hs"].values
    np.testing.assert_array_equal(
        hs[:, :, p // 2, p // 2], scene[:, rows, cols].T.astype(np.float16)
    )
    padded = np.pad(scene, ((0, 0), (p // 2, p - 1 - p // 2), (p // 2, p - 1 - p // 2)), "reflect")
    for i in (0, n - 1, int(np.argmin(cols))):  # edge samples: reflect padding
        want = padded[:, rows[i] : rows[i] + p, cols[i] : cols[i] + p].astype(np.float16)
        np.testing.assert_array_equal(hs[i], want)

    train = ds["split"].values == "train"
    tr_vals = scene[:, rows[train], cols[train]]
    np.testing.assert_allclose(tr_vals.mean(axis=1), 0, atol=1e-3)
    np.testing.assert_allclose(tr_vals.std(axis=1), 1, atol=1e-3)
    a = ds.attrs
    for key in (
        "dataset",
        "modalities",
        "class_names",
        "palette",
        "crs",
        "transform",
        "checksums",
        "synthetic",
        "norm_mean_hs",
        "norm_std_lidar",
        "patch_size",
        "has_patches",
        "rsmiss_version",
        "cube_id",
    ):
        assert key in a, key
    assert a["patch_size"] == 14 and a["has_patches"] is True and a["synthetic"] is True
    assert len(a["norm_mean_hs"]) == 63 and a["crs"] is None and a["transform"] is None
    # no CRS (plain .mat arrays): pixel-index coordinates, no grid mapping
    assert "spatial_ref" not in ds.variables and "grid_mapping" not in ds["scene_hs"].attrs
    assert ds["y"].values.tolist() == list(range(ds.sizes["y"]))
    assert ds["x"].values.tolist() == list(range(w))
    np.testing.assert_array_equal(ds["sample_y"].values, rows)
    np.testing.assert_array_equal(ds["sample_x"].values, cols)
    assert ds["hs_band"].size == 63 and ds["hs_band"].attrs["units"] == "nm"
    assert float(ds["hs_band"][0]) == pytest.approx(402.89)


def test_rerun_is_up_to_date_force_rebuilds_changed_input_rebuilds(trento_copy, tmp_path):
    root = tmp_path / "root"
    args = ("ingest", "trento", "--raw", trento_copy, "--root", root, "--no-patches")
    assert cli(*args).exit_code == 0
    meta = root / "cubes" / "trento.zarr" / "zarr.json"
    first = json.loads(meta.read_text())["attributes"]["cube_id"]
    stamp = meta.stat().st_mtime_ns
    again = cli(*args)
    assert again.exit_code == 0 and "up to date" in again.output
    assert meta.stat().st_mtime_ns == stamp
    forced = cli(*args, "--force")
    assert forced.exit_code == 0 and "up to date" not in forced.output
    assert json.loads(meta.read_text())["attributes"]["cube_id"] == first
    assert cli("ingest", "trento", "--raw", trento_copy, "--root", root).exit_code == 0
    assert json.loads(meta.read_text())["attributes"]["cube_id"] != first  # patches now
    assert not list((root / "cubes").glob(".tmp-*"))


def test_failed_run_publishes_nothing_and_leftovers_are_refused(trento_copy, tmp_path, monkeypatch):
    from rsmiss.errors import DataError
    from rsmiss.ingest import ingest, patches

    root = tmp_path / "root"

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(patches, "write_patch_chunk", boom)
    with pytest.raises(RuntimeError, match="killed"):
        ingest("trento", raw=trento_copy, root=root, progress=False)
    assert not any((root / "cubes").iterdir())  # neither the cube nor a .tmp-* sibling
    monkeypatch.undo()
    ingest("trento", raw=trento_copy, root=root, patches=False, progress=False)
    cube = root / "cubes" / "trento.zarr"
    stale = root / "cubes" / ".tmp-trento.zarr.x1"  # what a SIGKILL leaves behind
    shutil.copytree(cube, stale)
    with pytest.raises(DataError, match="interrupted ingest"):
        open_cube(stale)
    meta = cube / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"].pop("rsmiss_complete")
    meta.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="not a finished rsmiss cube"):
        open_cube(cube)
    res = cli("ingest", "trento", "--raw", trento_copy, "--root", root, "--no-patches")
    assert res.exit_code == 0 and "up to date" not in res.output  # unfinished store rebuilt
    open_cube(cube)
    assert not stale.exists()  # the killed run's leftover is cleaned up


def test_matlab_v73_copy_with_another_key_ingests_like_v5(trento_copy, tmp_path):
    import h5py

    from rsmiss.ingest import ingest

    ref = ingest("trento", raw=trento_copy, root=tmp_path / "a", patches=False, progress=False)
    hs = scipy.io.loadmat(trento_copy / "Italy_hsi.mat")["data"]
    (trento_copy / "Italy_hsi.mat").unlink()
    with h5py.File(trento_copy / "Italy_hsi.mat", "w") as fh:  # as MATLAB -v7.3 saves it
        fh.create_dataset("hsi_resaved", data=np.ascontiguousarray(hs.T), chunks=(8, 64, 16))
    new = ingest("trento", raw=trento_copy, root=tmp_path / "b", patches=False, progress=False)
    a, b = open_cube(ref.path), open_cube(new.path)
    np.testing.assert_array_equal(a["scene_hs"].values, b["scene_hs"].values)
    assert a.attrs["norm_mean_hs"] == b.attrs["norm_mean_hs"]


# --------------------------------------------------------------------------- user data
def _tif(path, data, crs, transform, nodata=None):
    import rasterio

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(data)


def from_origin(west, north, xsize, ysize):
    from affine import Affine

    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def _geo_dataset(tmp_path: Path, lidar_crs: str = "EPSG:4326") -> tuple[Path, dict]:
    """HS on a 10 m UTM grid; LiDAR in lat/lon at ~3 m over part of it, value = f(E, N)."""
    from rasterio.warp import transform as warp_pts
    from rasterio.warp import transform_bounds

    raw = tmp_path / "geo_raw"
    raw.mkdir()
    h, w, e0, n0, px = 30, 40, 660000.0, 5100000.0, 10.0
    hs_t = from_origin(e0, n0, px, px)
    rng = np.random.default_rng(0)
    hs = rng.random((4, h, w)).astype(np.float32) * 100
    hs[:, 0, 0] = -9999.0  # nodata pixel
    _tif(raw / "hs.tif", hs, "EPSG:32632", hs_t, nodata=-9999.0)
    labels = np.zeros((1, h, w), np.uint8)
    labels[0, 2:28:2, 2:38:2] = rng.integers(1, 4, size=(13, 18))
    labels[0, 0, 0] = 1
    _tif(raw / "labels.tif", labels, "EPSG:32632", hs_t)

    def f(east, north):
        return (east - e0) * 0.05 + (n0 - north) * 0.02

    if lidar_crs == "EPSG:4326":  # covers the scene except its last 8 columns
        west, south, east, north = transform_bounds(
            "EPSG:32632", "EPSG:4326", e0, n0 - h * px, e0 + (w - 8) * px, n0
        )
        lh, lw = 150, 120
        lt = from_origin(west, north, (east - west) / lw, (north - south) / lh)
        jj, ii = np.meshgrid(np.arange(lw) + 0.5, np.arange(lh) + 0.5)
        lon, lat = lt @ (jj.ravel(), ii.ravel())
        ee, nn = warp_pts("EPSG:4326", "EPSG:32632", lon, lat)
        dsm = f(np.array(ee), np.array(nn)).reshape(1, lh, lw).astype(np.float32)
        _tif(raw / "dsm.tif", dsm, lidar_crs, lt)
    else:
        _tif(
            raw / "dsm.tif",
            np.ones((1, 10, 10), np.float32),
            lidar_crs,
            from_origin(0, 100, 10, 10),
        )
    doc = {
        "name": "geo",
        "modalities": [
            {"name": "hs", "bands": 4, "source": {"file": "hs.tif"}},
            {"name": "lidar", "bands": 1, "source": {"file": "dsm.tif"}},
        ],
        "classes": [{"name": n} for n in ("a", "b", "c")],
        "split": {
            "method": "random",
            "labels": {"file": "labels.tif"},
            "train_per_class": 5,
            "seed": 3,
        },
    }
    return raw, {"doc": doc, "f": f, "e0": e0, "n0": n0, "px": px, "w": w}


def _ingest_yaml(tmp_path: Path, doc: dict, raw: Path, *flags):
    """Write ``doc`` as tmp_path/geo.yaml and ingest it into tmp_path/root."""
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(doc))
    root = tmp_path / "root"
    return cli("ingest", yml, "--raw", raw, "--root", root, *flags), root


def test_geotiff_user_yaml_lidar_other_crs_and_resolution_lands_on_hs_grid(tmp_path):
    raw, g = _geo_dataset(tmp_path)
    res, root = _ingest_yaml(tmp_path, g["doc"], raw, "--patch-size", 5)
    assert res.exit_code == 0, res.output
    ds = open_cube(root / "cubes" / "geo.zarr")
    assert ds["scene_lidar"].shape == (1, 30, 40) and "32632" in ds.attrs["crs"]
    assert "32632" in ds["spatial_ref"].attrs["crs_wkt"]
    assert ds["scene_lidar"].attrs["grid_mapping"] == "spatial_ref"
    np.testing.assert_allclose(ds["x"].values, g["e0"] + (np.arange(40) + 0.5) * g["px"])
    mean, std = ds.attrs["norm_mean_lidar"][0], ds.attrs["norm_std_lidar"][0]
    lid = ds["scene_lidar"].values[0] * std + mean
    jj, ii = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    want = g["f"](g["e0"] + jj * g["px"], g["n0"] - ii * g["px"])
    inner = (slice(2, 28), slice(2, 30))
    np.testing.assert_allclose(lid[inner], want[inner], rtol=0.01, atol=0.3)
    rows, cols = ds["row"].values, ds["col"].values
    obs = ds["observed"].values
    assert not obs[(rows == 0) & (cols == 0), 0].any()  # HS nodata pixel
    assert not obs[cols >= 34, 1].any() and obs[cols < 30, 1].all()  # outside LiDAR footprint
    # the same per pixel of the whole scene, for prediction
    omap = ds["observed_map"].values
    assert omap.shape == (2, 30, 40) and omap.dtype == bool
    np.testing.assert_array_equal(omap[:, rows, cols].T, obs)
    assert not omap[0, 0, 0] and omap[0].sum() == 30 * 40 - 1
    assert not omap[1, :, 34:].any() and omap[1, :, :30].all()
    train = ds["split"].values == "train"
    assert np.bincount(ds["label"].values[train]).tolist() == [0, 5, 5, 5]


def test_label_raster_on_another_grid_with_its_own_nodata(tmp_path):
    """A label raster at 5 m (the HS grid is 10 m), shifted, with nodata 255 and a footprint
    short of the scene: nearest resampling keeps the classes, its nodata and the area outside
    it become unlabelled (0), and no nodata value survives as a class."""
    import rasterio

    raw, g = _geo_dataset(tmp_path)
    with rasterio.open(raw / "labels.tif") as src:
        want = src.read(1).astype(np.int16)
    h, w = want.shape
    fine = np.full((1, 2 * h + 1, 2 * w - 7), 7, np.uint8)  # 7: junk between the centres
    cover = (2 * w - 7 - 1) // 2  # HS columns whose centre the fine raster still covers
    fine[0, 1::2, 1::2][:, :cover] = want[:, :cover]
    holes = (want > 0) & (np.random.default_rng(4).random(want.shape) < 0.2)
    holes[:, cover:] = False
    fine[0, 1::2, 1::2][holes[:, :cover]] = 255
    want[holes] = 0
    want[:, cover:] = 0
    _tif(
        raw / "labels.tif",
        fine,
        "EPSG:32632",
        from_origin(g["e0"] - 2.5, g["n0"] + 2.5, 5.0, 5.0),
        nodata=255,
    )
    res, root = _ingest_yaml(tmp_path, g["doc"], raw, "--patch-size", 5)
    assert res.exit_code == 0, res.output
    ds = open_cube(root / "cubes" / "geo.zarr")
    np.testing.assert_array_equal(ds["label_map"].values, want)
    assert holes.sum() > 10 and set(np.unique(ds["label"].values)) <= {1, 2, 3}


def _index_csv(path: Path, rows, cols, splits, labels=None, header="row,col,split") -> None:
    lines = [header + (",label" if labels is not None else "")]
    for i, (r, c, s) in enumerate(zip(rows, cols, splits, strict=True)):
        lines.append(f"{r},{c},{s}" + (f",{labels[i]}" if labels is not None else ""))
    path.write_text("\n".join(lines) + "\n")


def test_index_csv_split_gives_exactly_the_listed_pixels(tmp_path):
    import rasterio

    raw, g = _geo_dataset(tmp_path)
    with rasterio.open(raw / "labels.tif") as src:
        lab = src.read(1)
    r_all, c_all = np.nonzero(lab)
    pick = np.random.default_rng(1).permutation(r_all.size)[:40]
    rows, cols = r_all[pick], c_all[pick]
    splits = ["train" if i % 3 == 0 else "test" for i in range(rows.size)]
    for k in (1, 2, 3):  # at least one training pixel per class
        i = int(np.flatnonzero(lab[rows, cols] == k)[0])
        splits[i] = "train"
    _index_csv(raw / "split.csv", rows, cols, splits)
    (raw / "split.csv").write_text(
        (raw / "split.csv").read_text() + f"{rows[0]},{cols[0]},{splits[0]}\n"
    )
    doc = dict(
        g["doc"], split={"method": "index", "file": "split.csv", "labels": {"file": "labels.tif"}}
    )
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(doc))
    root = tmp_path / "root"
    args = ("ingest", yml, "--raw", raw, "--root", root, "--patch-size", 3, "--no-patches")
    res = cli(*args)
    assert res.exit_code == 0, res.output
    ds = open_cube(root / "cubes" / "geo.zarr")
    got = {
        (int(r), int(c)): s
        for r, c, s in zip(ds["row"].values, ds["col"].values, ds["split"].values, strict=True)
    }
    assert got == {(int(r), int(c)): s for r, c, s in zip(rows, cols, splits, strict=True)}
    assert (ds["label"].values == lab[ds["row"].values, ds["col"].values]).all()
    assert "split.csv" in ds.attrs["checksums"] and ds.attrs["split_method"] == "index"
    first = ds.attrs["cube_id"]

    _index_csv(raw / "split.csv", rows[::-1], cols[::-1], splits[::-1])  # same pixels, new bytes
    res = cli(*args)
    assert res.exit_code == 0 and "up to date" not in res.output, res.output
    assert open_cube(root / "cubes" / "geo.zarr").attrs["cube_id"] != first

    # without a label raster the CSV's label column gives the classes
    labels = [int(v) for v in lab[rows, cols]]
    _index_csv(raw / "split.csv", rows, cols, splits, labels, header="y,x,set")
    columns = {"row": "y", "col": "x", "split": "set"}
    doc["split"] = {"method": "index", "file": "split.csv", "columns": columns}
    yml.write_text(yaml.safe_dump(doc))
    r = ingest_no_patches(yml, raw, tmp_path / "root2")
    assert r.sizes["sample"] == rows.size
    assert (r["label"].values == lab[r["row"].values, r["col"].values]).all()
    assert (r["split"].values == ds["split"].values).all()


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("row,col,split\n2,2,train\n2,2,test\n", ("split.csv", "row 2, col 2", "lines 2 and 3")),
        (
            "row,col,split\n2,2,train\n30,2,test\n",
            ("split.csv", "line 3", "outside the reference grid (30 rows x 40 columns"),
        ),
        ("row,col,split\n2,2,train\n2,4,val\n", ("split.csv", "line 3", "neither train nor test")),
        ("row,col,split\n2,2,train\n2,3,test\n", ("split.csv", "line 3", "no label (0)")),
        ("row,column,split\n2,2,train\n", ("split.csv", "no column 'col'")),
        ("row,col,split\n2,2.5,train\n", ("split.csv", "line 2", "col '2.5' is not an integer")),
    ],
)
def test_bad_index_csv_is_one_line_error(tmp_path, text, needles):
    raw, g = _geo_dataset(tmp_path)
    (raw / "split.csv").write_text(text)
    doc = dict(
        g["doc"], split={"method": "index", "file": "split.csv", "labels": {"file": "labels.tif"}}
    )
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(doc))
    root = tmp_path / "root"
    assert_bad(cli("ingest", yml, "--raw", raw, "--root", root), root, *needles)


def test_rasters_are_read_by_bounded_windows(tmp_path, monkeypatch):
    from rsmiss.ingest import grid, ingest
    from rsmiss.io.raster import RasterioSource

    raw, g = _geo_dataset(tmp_path)
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(g["doc"]))
    monkeypatch.setattr(grid, "WINDOW_BYTES", 4 * 40 * 4 * 3)  # 3 rows of the 4-band HS
    spans = []
    orig_read, orig_window = RasterioSource._read, RasterioSource.read_window

    def read(self, r0, r1):
        spans.append((self.path.name, r1 - r0))
        return orig_read(self, r0, r1)

    def read_window(self, r0, r1, c0, c1):
        spans.append((self.path.name, r1 - r0))
        return orig_window(self, r0, r1, c0, c1)

    monkeypatch.setattr(RasterioSource, "_read", read)
    monkeypatch.setattr(RasterioSource, "read_window", read_window)
    ingest(yml, raw=raw, root=tmp_path / "root", patches=False, progress=False)
    hs_rows = [n for f, n in spans if f == "hs.tif"]
    dsm_rows = [n for f, n in spans if f == "dsm.tif"]
    assert hs_rows and max(hs_rows) <= 3
    assert dsm_rows and max(dsm_rows) < 150 // 2  # LiDAR source windows, not the whole file


def test_random_split_is_reproducible_and_unlabelled_scene_has_no_samples(tmp_path):
    from rsmiss.ingest import ingest

    raw, g = _geo_dataset(tmp_path)
    spec_a = tmp_path / "a.yaml"
    spec_a.write_text(yaml.safe_dump(g["doc"]))
    a = ingest(spec_a, raw=raw, root=tmp_path / "r1", patches=False, progress=False)
    b = ingest(spec_a, raw=raw, root=tmp_path / "r2", patches=False, progress=False)
    sa, sb = open_cube(a.path)["split"].values, open_cube(b.path)["split"].values
    assert a.cube_id == b.cube_id and (sa == sb).all()

    doc = dict(g["doc"], name="pred", classes=[], split={"method": "none"})
    spec_n = tmp_path / "n.yaml"
    spec_n.write_text(yaml.safe_dump(doc))
    r = ingest(spec_n, raw=raw, root=tmp_path / "r3", progress=False)
    ds = open_cube(r.path)
    assert ds.sizes["sample"] == 0 and ds["hs"].shape == (0, 4, 14, 14)
    assert ds.attrs["has_labels"] is False and int(ds["label_map"].values.max()) == 0
    assert ds["scene_hs"].shape == (4, 30, 40) and np.isfinite(ds["scene_hs"].values).all()


def test_workers_run_a_local_cluster_and_leave_no_process(trento_copy, tmp_path):
    import psutil

    from rsmiss.ingest import ingest

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    r = ingest(
        "trento", raw=trento_copy, root=tmp_path / "root", workers=1, patch_size=5, progress=False
    )
    ds = open_cube(r.path)
    p = 5
    scene = ds["scene_lidar"].values
    i = ds.sizes["sample"] // 2
    r0, c0 = int(ds["row"][i]), int(ds["col"][i])
    np.testing.assert_array_equal(ds["lidar"].values[i, :, p // 2, p // 2], scene[:, r0, c0])

    def alive_workers():
        out = set()
        for q in psutil.Process().children(recursive=True):
            try:  # Python's own multiprocessing resource tracker lives as long as we do
                if q.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                    q.cmdline()
                ):
                    out.add(q.pid)
            except psutil.NoSuchProcess:
                pass
        return out

    assert alive_workers() <= before


# --------------------------------------------------------------------------- bad inputs
def test_missing_raw_file_and_missing_folder(trento_copy, tmp_path):
    root = tmp_path / "root"
    (trento_copy / "TRLabel.mat").unlink()
    assert_bad(
        cli("ingest", "trento", "--raw", trento_copy, "--root", root),
        root,
        "TRLabel.mat",
        "not found",
    )
    assert_bad(
        cli("ingest", "trento", "--raw", tmp_path / "nowhere", "--root", root),
        root,
        "nowhere",
        "raw folder not found",
    )


def test_truncated_mat_and_corrupt_tif(trento_copy, tmp_path):
    root = tmp_path / "root"
    hsi = trento_copy / "Italy_hsi.mat"
    hsi.write_bytes(hsi.read_bytes()[: hsi.stat().st_size // 2])
    assert_bad(
        cli("ingest", "trento", "--raw", trento_copy, "--root", root),
        root,
        "Italy_hsi.mat",
        "corrupt",
    )
    raw, g = _geo_dataset(tmp_path)
    tif = raw / "hs.tif"
    tif.write_bytes(tif.read_bytes()[:600])
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(g["doc"]))
    assert_bad(cli("ingest", yml, "--raw", raw, "--root", root), root, "hs.tif")


def test_wrong_and_ambiguous_key(trento_copy, tmp_path):
    root = tmp_path / "root"
    lab = scipy.io.loadmat(trento_copy / "TRLabel.mat")["TRLabel"]
    scipy.io.savemat(trento_copy / "TRLabel.mat", {"a": lab, "b": lab})
    assert_bad(
        cli("ingest", "trento", "--raw", trento_copy, "--root", root),
        root,
        "TRLabel.mat",
        "'TRLabel' not found",
        "keys: a, b",
    )


def test_shape_and_band_count_not_as_catalog(trento_copy, tmp_path):
    root = tmp_path / "root"
    lid = scipy.io.loadmat(trento_copy / "Italy_lidar.mat")["data"]
    scipy.io.savemat(trento_copy / "Italy_lidar.mat", {"data": np.concatenate([lid, lid], 2)})
    assert_bad(
        cli("ingest", "trento", "--raw", trento_copy, "--root", root),
        root,
        "Italy_lidar.mat",
        "(42, 150, 4)",
        "(166, 600, 2)",
    )
    yml = user_yaml(tmp_path)  # no shapes: the modality's band count still applies
    assert_bad(
        cli("ingest", yml, "--raw", trento_copy, "--root", root),
        root,
        "Italy_lidar.mat",
        "4 bands",
        "'lidar' has 2",
    )


def test_different_shapes_without_georeferencing(trento_copy, tmp_path):
    root = tmp_path / "root"
    lid = scipy.io.loadmat(trento_copy / "Italy_lidar.mat")["data"]
    scipy.io.savemat(trento_copy / "Italy_lidar.mat", {"data": lid[:-1]})
    yml = user_yaml(tmp_path)
    assert_bad(
        cli("ingest", yml, "--raw", trento_copy, "--root", root),
        root,
        "Italy_lidar.mat",
        "41 x 150",
        "42 x 150",
        "cannot be co-registered",
    )


def test_crs_that_cannot_be_reprojected(tmp_path):
    raw, g = _geo_dataset(tmp_path, lidar_crs='LOCAL_CS["lab",UNIT["metre",1]]')
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(g["doc"]))
    root = tmp_path / "root"
    assert_bad(
        cli("ingest", yml, "--raw", raw, "--root", root), root, "dsm.tif", "cannot be reprojected"
    )


def test_all_nan_band(trento_copy, tmp_path):
    root = tmp_path / "root"
    hs = scipy.io.loadmat(trento_copy / "Italy_hsi.mat")["data"]
    hs[:, :, 5] = np.nan
    scipy.io.savemat(trento_copy / "Italy_hsi.mat", {"data": hs})
    assert_bad(
        cli("ingest", "trento", "--raw", trento_copy, "--root", root),
        root,
        "Italy_hsi.mat",
        "band 5",
        "no valid value",
    )


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("outside", ("TSLabel.mat", "label values 9", "outside the class list")),
        ("overlap", ("TRLabel.mat", "TSLabel.mat", "overlap")),
        ("no_train", ("TRLabel.mat", "class 'Ground' has no training pixel")),
    ],
)
def test_bad_labels(trento_copy, tmp_path, case, needles):
    root = tmp_path / "root"
    tr = scipy.io.loadmat(trento_copy / "TRLabel.mat")["TRLabel"]
    ts = scipy.io.loadmat(trento_copy / "TSLabel.mat")["TSLabel"]
    if case == "outside":
        ts[np.unravel_index(np.flatnonzero(ts)[0], ts.shape)] = 9
    elif case == "overlap":
        r, c = np.unravel_index(np.flatnonzero(tr)[0], tr.shape)
        ts[r, c] = tr[r, c]
    else:
        ts = np.where(tr == 3, 3, ts).astype(ts.dtype)
        tr = np.where(tr == 3, 0, tr).astype(tr.dtype)
    scipy.io.savemat(trento_copy / "TRLabel.mat", {"TRLabel": tr})
    scipy.io.savemat(trento_copy / "TSLabel.mat", {"TSLabel": ts})
    yml = user_yaml(tmp_path, lambda d: d["split"].pop("labels"))
    assert_bad(cli("ingest", yml, "--raw", trento_copy, "--root", root), root, *needles)


def test_checksum_mismatch_warns_and_strict_fails(trento_copy, tmp_path):
    def fake_sum(doc):
        doc["modalities"][1]["source"]["sha256"] = "0" * 64

    yml = user_yaml(tmp_path, fake_sum)
    root = tmp_path / "root"
    assert_bad(
        cli("ingest", yml, "--raw", trento_copy, "--root", root, "--strict"),
        root,
        "Italy_lidar.mat",
        "sha256",
        "--strict",
    )
    res = cli("ingest", yml, "--raw", trento_copy, "--root", root, "--no-patches")
    assert res.exit_code == 0
    assert any(
        ln.startswith("warning:") and "Italy_lidar.mat" in ln for ln in res.output.splitlines()
    )


def test_dtype_mismatch_warns_and_strict_fails(trento_copy, tmp_path):
    import scipy.io

    lidar = scipy.io.loadmat(trento_copy / "Italy_lidar.mat")["data"]
    scipy.io.savemat(trento_copy / "Italy_lidar.mat", {"data": lidar.astype(np.float64)})
    yml = user_yaml(tmp_path)
    root = tmp_path / "root"
    assert_bad(
        cli("ingest", yml, "--raw", trento_copy, "--root", root, "--strict"),
        root,
        "Italy_lidar.mat",
        "dtype float64",
        "float32",
        "--strict",
    )
    res = cli("ingest", yml, "--raw", trento_copy, "--root", root, "--no-patches")
    assert res.exit_code == 0, res.output
    warned = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1 and "Italy_lidar.mat: dtype float64" in warned[0], res.output


@pytest.mark.parametrize("dataset", ["trento", "houston2013", "augsburg"])
def test_synthetic_files_have_the_catalog_dtypes(dataset, tmp_path):
    from rsmiss.catalog import load_catalog
    from rsmiss.io import dtype_mismatch

    raw = synthesize(dataset, tmp_path / dataset, seed=0, scale=0.1)
    files = load_catalog(dataset).files().values()
    assert any(fs.dtype for fs in files)
    assert [dtype_mismatch(raw / fs.file, fs) for fs in files] == [None] * len(files)


def test_bad_flags_are_one_line_errors(small_trento, tmp_path):
    root = tmp_path / "root"
    assert_bad(
        cli("ingest", "trento", "--raw", small_trento, "--root", root, "--patch-size", 0),
        root,
        "--patch-size",
    )
    assert_bad(
        cli(
            "ingest",
            "trento",
            "--raw",
            small_trento,
            "--root",
            root,
            "--workers",
            1,
            "--scheduler",
            "tcp://127.0.0.1:1",
        ),
        root,
        "--workers",
    )


# --------------------------------------------------------------------------- review fixes
def test_real_from_cube_id_does_not_depend_on_where_the_real_files_were(real_trento, tmp_path):
    ids = []
    for k in ("a", "b"):
        copy = tmp_path / f"copy_{k}" / "trento"
        shutil.copytree(real_trento, copy)
        raw = synthesize("trento", tmp_path / f"raw_{k}", seed=0, real_from=copy)
        root = tmp_path / f"root_{k}"
        res = cli(
            "ingest", "trento", "--raw", raw, "--root", root, "--patch-size", 3, "--no-patches"
        )
        assert res.exit_code == 0, res.output
        ids.append(json.loads((root / "cubes" / "trento.zarr" / "zarr.json").read_text()))
    assert (
        ids[0]["attributes"]["synthetic_info"]["real_from"]
        != ids[1]["attributes"]["synthetic_info"]["real_from"]
    )
    assert ids[0]["attributes"]["cube_id"] == ids[1]["attributes"]["cube_id"]


def test_envi_header_change_is_not_up_to_date(tmp_path):
    import rasterio

    raw, g = _geo_dataset(tmp_path)
    with rasterio.open(raw / "dsm.tif") as src:  # the LiDAR as ENVI: dsm.img + dsm.hdr
        data, crs, t = src.read(), src.crs, src.transform
    (raw / "dsm.tif").unlink()
    with rasterio.open(
        raw / "dsm.img", "w", driver="ENVI", height=data.shape[1], width=data.shape[2],
        count=1, dtype=data.dtype, crs=crs, transform=t,
    ) as ds:  # fmt: skip
        ds.write(data)
    g["doc"]["modalities"][1]["source"]["file"] = "dsm.img"
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(g["doc"]))
    root = tmp_path / "root"
    args = ("ingest", yml, "--raw", raw, "--root", root, "--patch-size", 3, "--no-patches")
    assert cli(*args).exit_code == 0
    meta = root / "cubes" / "geo.zarr" / "zarr.json"
    first = json.loads(meta.read_text())["attributes"]
    assert "dsm.hdr" in first["checksums"]
    assert "up to date" in cli(*args).output
    hdr = raw / "dsm.hdr"
    lines = hdr.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("map info"))
    parts = lines[i].split(",")  # {proj, ref x, ref y, west, north, ...}: shift one pixel west
    parts[3] = f" {float(parts[3]) - abs(t.a)!r}"
    lines[i] = ",".join(parts)
    hdr.write_text("\n".join(lines) + "\n")
    res = cli(*args)
    assert res.exit_code == 0 and "up to date" not in res.output, res.output
    second = json.loads(meta.read_text())["attributes"]
    assert second["cube_id"] != first["cube_id"]


def test_crs_that_cannot_be_reprojected_prints_one_short_line(tmp_path):
    import os
    import subprocess
    import sys

    raw, g = _geo_dataset(tmp_path, lidar_crs='LOCAL_CS["lab",UNIT["metre",1]]')
    yml = tmp_path / "geo.yaml"
    yml.write_text(yaml.safe_dump(g["doc"]))
    cmd = [sys.executable, "-c", "from rsmiss.cli import main; main()", "ingest", str(yml)]
    cmd += ["--raw", str(raw), "--root", str(tmp_path / "root")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "dsm.tif" in lines[0] and "cannot be reprojected" in lines[0] and "lab" in lines[0]
    assert "PROJJSON" not in lines[0] and "$schema" not in lines[0] and len(lines[0]) < 400


def test_label_raster_nodata_is_unlabelled(tmp_path):
    import rasterio

    raw, g = _geo_dataset(tmp_path)
    with rasterio.open(raw / "labels.tif") as src:
        lab, crs, t = src.read(), src.crs, src.transform
    lab[0, 29, :] = 255  # the last row: no data
    _tif(raw / "labels.tif", lab, crs, t, nodata=255)
    res, root = _ingest_yaml(tmp_path, g["doc"], raw, "--patch-size", 3, "--no-patches")
    assert res.exit_code == 0, res.output
    ds = open_cube(root / "cubes" / "geo.zarr")
    lm = ds["label_map"].values
    assert (lm[29] == 0).all() and lm.max() == 3 and (lm[:29] == lab[0, :29]).all()


def test_float16_follows_the_modality_kind_not_its_name(tmp_path):
    raw, g = _geo_dataset(tmp_path)
    doc = g["doc"]
    doc["reference"] = "vnir"
    doc["modalities"][0]["name"] = "vnir"  # hyperspectral by its wavelengths
    doc["modalities"][0]["wavelengths"] = {"start": 400.0, "stop": 1000.0}
    doc["modalities"][1]["kind"] = "lidar"
    res, root = _ingest_yaml(tmp_path, doc, raw, "--patch-size", 3)
    assert res.exit_code == 0, res.output
    ds = open_cube(root / "cubes" / "geo.zarr")
    assert ds["vnir"].dtype == np.float16 and ds["lidar"].dtype == np.float32
    assert ds.attrs["kind_vnir"] == "hyperspectral"
    lazy = ingest_no_patches(
        tmp_path / "geo.yaml", raw, tmp_path / "root2"
    )  # patches cut on the fly
    assert lazy["vnir"].dtype == np.float16 and lazy["lidar"].dtype == np.float32
    np.testing.assert_array_equal(lazy["vnir"].values, ds["vnir"].values)


def ingest_no_patches(yml, raw, root):
    from rsmiss.ingest import ingest

    r = ingest(yml, raw=raw, root=root, patch_size=3, patches=False, progress=False)
    return open_cube(r.path)


def test_killed_synth_over_a_folder_is_refused_by_ingest(tmp_path, monkeypatch):
    import rsmiss.synth as synth_mod
    from rsmiss.errors import DataError
    from rsmiss.ingest import ingest

    raw = tmp_path / "raw"
    synthesize("trento", raw, seed=0, scale=SMALL)
    ingest("trento", raw=raw, root=tmp_path / "r0", patches=False, progress=False)
    calls = []
    real_replace = os.replace

    def replace(a, b):  # SIGKILL after the second file landed
        calls.append(b)
        if len(calls) > 2:
            raise KeyboardInterrupt
        real_replace(a, b)

    monkeypatch.setattr(synth_mod.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        synthesize("trento", raw, seed=1, scale=SMALL)
    monkeypatch.undo()
    assert (raw / "SYNTHETIC").is_file()  # never looks like real data
    with pytest.raises(DataError, match=r"SYNTHETIC.*rsmiss synth"):
        ingest("trento", raw=raw, root=tmp_path / "r1", patches=False, progress=False)
    assert not (tmp_path / "r1" / "cubes" / "trento.zarr").exists()
    synthesize("trento", raw, seed=1, scale=SMALL)  # re-running synth repairs it
    ingest("trento", raw=raw, root=tmp_path / "r1", patches=False, progress=False)
