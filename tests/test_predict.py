"""``rsmiss predict`` (whole-scene GeoTIFF + PNG) and ``rsmiss evaluate`` on a trained run."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from training_env import reference_run, small_cube

from rsmiss.cli import main


def test_predict_writes_geotiff_of_scene_shape(tmp_path_factory, tmp_path):
    """Another scene with the same modalities (a different area), its whole raster mapped."""
    import rasterio

    from rsmiss.cube import open_cube

    ref = reference_run(tmp_path_factory)
    cube = small_cube(tmp_path_factory)
    out = tmp_path / "map.tif"
    res = CliRunner().invoke(
        main,
        ["predict", ref.run_id, "--root", str(ref.root), "--cube", str(cube), "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    ds = open_cube(cube)
    h, w = ds["label_map"].shape
    with rasterio.open(out) as src:
        assert (src.height, src.width, src.count) == (h, w, 1)
        data = src.read(1)
        assert src.colormap(1)[1][:3] == tuple(ds.attrs["palette"][0])
    assert 1 <= data.min() and data.max() <= len(ds.attrs["class_names"])
    assert (tmp_path / "map.png").stat().st_size > 0
    # far above chance (6 classes) on the labelled pixels of the unseen scene
    labels = np.asarray(ds["label_map"].values)
    assert (data[labels > 0] == labels[labels > 0]).mean() > 0.5


def test_predict_missing_modality_and_default_output(tmp_path_factory):
    ref = reference_run(tmp_path_factory)
    cube = small_cube(tmp_path_factory)
    res = CliRunner().invoke(
        main, ["predict", str(ref.path), "--cube", str(cube), "--missing", "hs"]
    )
    assert res.exit_code == 0, res.output
    tif = ref.path / "predict" / "trento-missing-hs.tif"
    assert tif.is_file() and tif.with_suffix(".png").is_file()


def test_predict_bad_missing_is_one_line(tmp_path_factory):
    ref = reference_run(tmp_path_factory)
    res = CliRunner().invoke(
        main, ["predict", ref.run_id, "--root", str(ref.root), "--missing", "hs,lidar"]
    )
    assert res.exit_code == 2 and "--missing" in res.stderr
    res = CliRunner().invoke(main, ["predict", "no-such-run", "--root", str(ref.root)])
    assert res.exit_code == 2 and "no-such-run" in res.stderr


def test_evaluate_on_another_scenario(tmp_path_factory):
    ref = reference_run(tmp_path_factory)
    r = CliRunner().invoke(
        main, ["scenarios", "--root", str(ref.root), "--rate", "0.5", "--pattern", "hs"]
    )
    assert r.exit_code == 0, r.output
    res = CliRunner().invoke(
        main, ["evaluate", ref.run_id, "--root", str(ref.root), "--scenario", "hs-r0.50-s0"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads((ref.path / "eval" / "hs-r0.50-s0.json").read_text())
    assert out["trained_on"] == ref.config.scenario_id and out["scenario_id"] == "hs-r0.50-s0"
    assert set(out["by_pattern"]) == {"complete", "hs_missing"}
    assert out["n_test"] == ref.metrics["n_test"]
    # complete test samples see the same inputs in both scenarios only where the masks agree;
    # the overall score is a valid percentage either way
    assert 0 <= out["overall"]["oa"] <= 100
