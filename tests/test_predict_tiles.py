"""Streaming, tiled ``rsmiss predict``: tiles equal the untiled map, windows keep their
georeference, a killed predict resumes to the same bytes, bad windows are one line."""

from __future__ import annotations

import shutil
import signal
import time

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from training_env import reference_run, rsmiss_subprocess, small_cube

from rsmiss.cli import main

_UNTILED: dict[str, np.ndarray] = {}


def _untiled(tmp_path_factory) -> np.ndarray:
    """The whole small scene classified in one piece (raw ids, 0 = no data)."""
    if "map" not in _UNTILED:
        from rsmiss.cube import open_cube
        from rsmiss.training.classify import classify_scene
        from rsmiss.training.data import load_scene

        ref = reference_run(tmp_path_factory)
        ds = open_cube(small_cube(tmp_path_factory))
        scene = load_scene(ds, tuple(ref.modalities), ref.config.patch_size, torch.device("cpu"))
        model = ref.load_model("cpu")
        _UNTILED["map"] = classify_scene(model, scene, torch.device("cpu")) + 1
    return _UNTILED["map"]


def _predict(ref, *args: str) -> None:
    res = CliRunner().invoke(main, ["predict", str(ref.path), *args])
    assert res.exit_code == 0, res.output


def test_tiles_equal_the_untiled_map(tmp_path_factory, tmp_path):
    """Tiles of 16 px (not a divisor of the 42 x 150 scene) in this process, and tiles of 20
    px on two dask worker processes: the same classes as the scene classified whole,
    including tile borders and the reflected scene edge; a COG with the class palette."""
    ref = reference_run(tmp_path_factory)
    cube = str(small_cube(tmp_path_factory))
    want = _untiled(tmp_path_factory)
    assert want.shape == (42, 150)
    one, two = tmp_path / "one.tif", tmp_path / "two.tif"
    _predict(ref, "--cube", cube, "--out", str(one), "--tile", "16", "--confidence")
    _predict(ref, "--cube", cube, "--out", str(two), "--tile", "20", "--devices", "2")
    for tif in (one, two):
        with rasterio.open(tif) as src:
            np.testing.assert_array_equal(src.read(1), want)
            assert src.profile["tiled"] and src.colorinterp[0].name == "palette"
    with rasterio.open(one.with_suffix(".confidence.tif")) as src:
        conf = src.read(1)
    assert ((conf == 255) == (want == 0)).all() and conf[want > 0].max() <= 100
    assert conf[want > 0].min() >= 100 // len(ref.model_info["class_names"])
    assert not list(tmp_path.glob(".*parts"))  # the tile folder goes once published


def test_window_output_is_placed_in_the_scene(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory)
    cube = tmp_path / "geo.zarr"
    shutil.copytree(small_cube(tmp_path_factory), cube)
    import zarr

    group = zarr.open_group(str(cube), mode="r+")
    group.attrs.update({"crs": "EPSG:32632", "transform": [2.0, 0, 600000.0, 0, -2.0, 5100000.0]})
    out = tmp_path / "win.tif"
    _predict(ref, "--cube", str(cube), "--out", str(out), "--window", "5:20,10:47", "--tile", "8")
    with rasterio.open(out) as src:
        assert src.transform == rasterio.Affine(2.0, 0, 600020.0, 0, -2.0, 5099990.0)
        assert src.crs.to_epsg() == 32632 and (src.height, src.width) == (15, 37)
        np.testing.assert_array_equal(src.read(1), _untiled(tmp_path_factory)[5:20, 10:47])
    # the same pixels by their map box: x 600020..600094, y 5099960..5099990
    box = tmp_path / "box.tif"
    _predict(ref, "--cube", str(cube), "--out", str(box), "--bbox", "600020,5099960,600094,5099990")
    with rasterio.open(out) as a, rasterio.open(box) as b:
        assert a.transform == b.transform and (a.read(1) == b.read(1)).all()


def test_killed_predict_resumes_to_the_same_bytes(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory)
    cube = str(small_cube(tmp_path_factory))
    whole, killed = tmp_path / "whole.tif", tmp_path / "killed.tif"
    args = ["predict", str(ref.path), "--cube", cube, "--tile", "6"]
    _predict(ref, *args[2:], "--out", str(whole))
    parts = tmp_path / ".killed.tif.parts"
    proc = rsmiss_subprocess([*args, "--out", str(killed)])
    try:
        deadline = time.monotonic() + 240
        while len(list(parts.glob("*.npy"))) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, "predict ended before it could be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert not killed.exists() and 3 <= len(list(parts.glob("*.npy"))) < 7 * 25
    _predict(ref, *args[2:], "--out", str(killed))
    assert killed.read_bytes() == whole.read_bytes()
    assert not parts.exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--window", "0:10", "ROW0:ROW1,COL0:COL1"),
        ("--window", "5:5,0:10", "inside the scene"),
        ("--window", "0:43,0:10", "42 rows x 150 columns"),
        ("--bbox", "1,2,3", "MINX,MINY,MAXX,MAXY"),
        ("--bbox", "0,0,10,10", "no georeference"),
        ("--tile", "0", "--tile"),
    ],
)
def test_bad_window_is_one_line(tmp_path_factory, tmp_path, flag, value, message):
    ref = reference_run(tmp_path_factory)
    out = tmp_path / "out" / "map.tif"
    cube = str(small_cube(tmp_path_factory))
    res = CliRunner().invoke(
        main, ["predict", str(ref.path), "--cube", cube, "--out", str(out), flag, value]
    )
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
