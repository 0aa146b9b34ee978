"""Readers: MATLAB v5/v7.3, GeoTIFF/ENVI, ENVI ROI text — orientation, keys, bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from rsmiss.catalog import FileSpec
from rsmiss.errors import DataError
from rsmiss.io import check_shape, open_mat, open_source, read_mat, read_roi


def _save_v73(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays the way MATLAB v7.3 does: HDF5 with every axis reversed."""
    with h5py.File(path, "w") as fh:
        for k, v in arrays.items():
            fh.create_dataset(k, data=np.ascontiguousarray(v.T), chunks=True)


def test_mat_v5_and_v73_read_identically_band_first(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.random((7, 5, 3)).astype(np.float32)  # H, W, C as MATLAB holds it
    scipy.io.savemat(tmp_path / "v5.mat", {"data": cube})
    _save_v73(tmp_path / "v73.mat", data=cube)
    for name in ("v5.mat", "v73.mat"):
        src = open_mat(tmp_path / name, "data")
        assert (src.count, src.height, src.width) == (3, 7, 5)
        assert src.stored_shape == (7, 5, 3)
        np.testing.assert_array_equal(src.read(), cube.transpose(2, 0, 1))
        np.testing.assert_array_equal(src.read(2, 6), cube[2:6].transpose(2, 0, 1))
        np.testing.assert_array_equal(read_mat(tmp_path / name, "data"), cube)
        src.close()


def test_mat_v73_2d_and_chw_layouts(tmp_path):
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    chw = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    _save_v73(tmp_path / "a.mat", img=img)
    _save_v73(tmp_path / "b.mat", cube=chw)
    np.testing.assert_array_equal(open_mat(tmp_path / "a.mat", "img").read(1, 3)[0], img[1:3])
    np.testing.assert_array_equal(open_mat(tmp_path / "b.mat", "cube", "chw").read(), chw)


def test_mat_key_fallback_single_array_else_error_listing_keys(tmp_path):
    arr = np.ones((4, 4), np.uint8)
    scipy.io.savemat(tmp_path / "one.mat", {"renamed": arr})
    np.testing.assert_array_equal(read_mat(tmp_path / "one.mat", "TRLabel"), arr)
    scipy.io.savemat(tmp_path / "two.mat", {"a": arr, "b": arr})
    with pytest.raises(DataError, match=r"two\.mat.*'TRLabel' not found.*keys: a, b"):
        read_mat(tmp_path / "two.mat", "TRLabel")
    _save_v73(tmp_path / "two73.mat", a=arr, b=arr)
    with pytest.raises(DataError, match="keys: a, b"):
        open_mat(tmp_path / "two73.mat", "x")


def test_truncated_and_corrupt_mat_files_are_data_errors(tmp_path):
    scipy.io.savemat(tmp_path / "full.mat", {"data": np.random.default_rng(0).random((50, 50))})
    blob = (tmp_path / "full.mat").read_bytes()
    (tmp_path / "trunc.mat").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.mat").write_bytes(b"\x00garbage" * 100)
    for name in ("trunc.mat", "junk.mat"):
        with pytest.raises(DataError, match=name):
            open_mat(tmp_path / name, "data")
    with pytest.raises(DataError, match="not found"):
        open_mat(tmp_path / "absent.mat", "data")


def _write_tif(path: Path, data: np.ndarray, crs=None, transform=None, nodata=None, driver="GTiff"):
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    kw = {"crs": crs, "transform": transform} if crs is not None else {}
    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # plain arrays on purpose
    with rasterio.open(
        path,
        "w",
        driver=driver,
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        nodata=nodata,
        **kw,
    ) as ds:
        ds.write(data)


def test_geotiff_windows_bands_and_georeferencing(tmp_path):
    from affine import Affine

    data = np.arange(3 * 6 * 5, dtype=np.uint16).reshape(3, 6, 5)
    t = Affine(2.0, 0, 500000, 0, -2.0, 5000000)
    _write_tif(tmp_path / "a.tif", data, crs="EPSG:32632", transform=t)
    src = open_source(tmp_path / "a.tif", FileSpec(file="a.tif", shape=(3, 6, 5)))
    check_shape(src, FileSpec(file="a.tif", shape=(3, 6, 5)))
    assert src.georeferenced and src.transform == t
    src.select_bands([2, 0])
    np.testing.assert_array_equal(src.read(1, 4), data[[2, 0], 1:4])
    with pytest.raises(DataError, match=r"a\.tif.*shape \(3, 6, 5\).*\(4, 6, 5\)"):
        check_shape(src, FileSpec(file="a.tif", shape=(4, 6, 5)))
    src.close()


def test_envi_is_read_through_gdal(tmp_path):
    data = np.random.default_rng(1).random((2, 4, 3)).astype(np.float32)
    _write_tif(tmp_path / "scene.img", data, driver="ENVI")
    assert (tmp_path / "scene.hdr").exists()
    src = open_source(tmp_path / "scene.img", FileSpec(file="scene.img"))
    assert not src.georeferenced
    np.testing.assert_array_equal(src.read(), data)


def test_truncated_tif_is_a_data_error_naming_it(tmp_path):
    data = np.random.default_rng(2).random((4, 64, 64)).astype(np.float32)
    _write_tif(tmp_path / "ok.tif", data)
    blob = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(DataError, match=r"cut\.tif"):
        src = open_source(tmp_path / "cut.tif", FileSpec(file="cut.tif"))
        src.read()


ROI_TEXT = (
    "; ENVI Output of ROIs (5.0) [Tue Jan 01 00:00:00 2013]\r\n"
    "; Number of ROIs: 2\r\n"
    "; File Dimension: 6 x 4\r\n"
    ";\r\n"
    "; ROI name: grass\r\n"
    "; ROI rgb value: {0, 205, 0}\r\n"
    "; ROI npts: 3\r\n"
    ";\r\n"
    "; ROI name: road\r\n"
    "; ROI rgb value: {255, 0, 0}\r\n"
    "; ROI npts: 2\r\n"
    ";   ID     X     Y          Map X          Map Y       B1\r\n"
    "     1     1     1      271460.00     3290891.0      712\r\n"
    "     2     6     1      271462.50     3290891.0      715\r\n"
    "     3     6     1      271462.50     3290891.0      715\r\n"
    "\r\n"
    "     1     2     4      271463.00     3290883.5      700\r\n"
    "     2     3     4      271465.50     3290883.5      701\r\n"
)


def test_roi_columns_by_header_duplicates_counted_once(tmp_path):
    (tmp_path / "tr.txt").write_bytes(ROI_TEXT.encode())
    roi = read_roi(tmp_path / "tr.txt")
    assert (roi.width, roi.height) == (6, 4)
    assert [r.name for r in roi.rois] == ["grass", "road"]
    assert roi.rois[0].npts == 3 and roi.rois[0].rows.size == 2  # duplicate counted once
    m = roi.label_map()
    assert m.shape == (4, 6) and m[0, 0] == 1 and m[0, 5] == 1 and m[3, 1] == 2 and m[3, 2] == 2
    assert int((m > 0).sum()) == 4


def test_roi_errors_npts_overlap_bounds(tmp_path):
    bad_npts = ROI_TEXT.replace("; ROI npts: 2", "; ROI npts: 3")
    (tmp_path / "a.txt").write_text(bad_npts)
    with pytest.raises(DataError, match=r"a\.txt: ROI 'road' header says npts=3"):
        read_roi(tmp_path / "a.txt")
    clash = ROI_TEXT.replace(
        "     2     3     4      271465.50", "     2     6     1      271465.50"
    )
    (tmp_path / "b.txt").write_text(clash)
    with pytest.raises(DataError, match=r"b\.txt: pixel X=6 Y=1 .*'grass'.*'road'"):
        read_roi(tmp_path / "b.txt").label_map()
    outside = ROI_TEXT.replace(
        "     2     3     4      271465.50", "     2     9     4      271465.50"
    )
    (tmp_path / "c.txt").write_text(outside)
    with pytest.raises(DataError, match="outside"):
        read_roi(tmp_path / "c.txt")
    (tmp_path / "d.txt").write_text("hello\n1 2 3\n")
    with pytest.raises(DataError, match="not an ENVI ROI"):
        read_roi(tmp_path / "d.txt")
