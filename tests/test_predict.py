"""``rsmiss predict`` (whole-scene GeoTIFF + PNG) and ``rsmiss evaluate`` on a trained run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import torch
from click.testing import CliRunner
from training_env import reference_run, small_cube

from rsmiss.cli import main
from rsmiss.models.classifier import ModelOutput
from rsmiss.training.classify import classify_scene
from rsmiss.training.data import Scene


class _PatternModel(torch.nn.Module):
    """Logits that name the availability row it was given: class = row as a bit pattern."""

    rows_seen = 0

    def forward(self, inputs, available):
        assert available.device.type == "cpu" and available.dtype == torch.bool
        assert available.any(1).all() and len(inputs["hs"]) == len(available)
        self.rows_seen += len(available)
        code = (available.long() * torch.tensor([1, 2])).sum(1)
        return ModelOutput(torch.nn.functional.one_hot(code, 4).float(), torch.zeros(()))


def _scene(observed: torch.Tensor) -> Scene:
    padded = {m: torch.zeros(1, 9, 11) for m in ("hs", "lidar")}
    return Scene(("hs", "lidar"), padded, 3, 7, 9, observed)


def test_classify_scene_follows_the_observed_map_and_marks_blanks_nodata():
    """A sensor's gap makes that modality missing for the pixel; no sensor at all: -1."""
    rng = np.random.default_rng(0)
    obs = torch.from_numpy(rng.random((2, 7, 9)) < 0.6)
    obs[:, 0, 0] = False
    code = obs[0].long() + 2 * obs[1].long()
    for batch in (5, 4096):
        model = _PatternModel()
        got = classify_scene(model, _scene(obs), torch.device("cpu"), batch_size=batch)
        want = np.where(code.numpy() == 0, -1, code.numpy())
        np.testing.assert_array_equal(got, want)
        assert model.rows_seen == (want >= 0).sum()  # blank pixels cost nothing
    # --missing hs on top of the map: HS never used; pixels with only HS become nodata
    got = classify_scene(_PatternModel(), _scene(obs), torch.device("cpu"), missing=("hs",))
    np.testing.assert_array_equal(got, np.where(obs[1].numpy(), 2, -1))
    # nothing observed at all: an all-nodata map, no forward pass
    model = _PatternModel()
    empty = torch.zeros(2, 7, 9, dtype=torch.bool)
    assert (classify_scene(model, _scene(empty), torch.device("cpu")) == -1).all()
    assert model.rows_seen == 0


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


def test_predict_missing_modality_and_default_output(tmp_path_factory, tmp_path):
    """Without HS the map changes, and a pixel whose only observed sensor is HS is nodata
    (0) while every pixel another sensor observed is still classified."""
    import zarr

    ref = reference_run(tmp_path_factory)
    cube = tmp_path / "trento.zarr"
    shutil.copytree(small_cube(tmp_path_factory), cube)
    observed = zarr.open_group(str(cube), mode="r+")["observed_map"]
    lidar = observed[1]
    lidar[:10, :20] = False  # a LiDAR gap: these pixels have HS only
    observed[1] = lidar
    res = CliRunner().invoke(
        main, ["predict", str(ref.path), "--cube", str(cube), "--missing", "hs"]
    )
    assert res.exit_code == 0, res.output
    tif = ref.path / "predict" / "trento-missing-hs.tif"
    assert tif.is_file() and tif.with_suffix(".png").is_file()
    import rasterio

    from rsmiss.cube import open_cube

    full = tmp_path / "full.tif"
    res = CliRunner().invoke(
        main, ["predict", str(ref.path), "--cube", str(cube), "--out", str(full)]
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(tif) as a, rasterio.open(full) as b:
        no_hs, both = a.read(1), b.read(1)
    ds = open_cube(cube)
    mods = [str(m) for m in ds["modality"].values]
    obs = np.asarray(ds["observed_map"].values, dtype=bool)
    assert mods == ["hs", "lidar"] and (obs[0] & ~obs[1]).sum() == 200
    others = np.delete(obs, mods.index("hs"), axis=0).any(0)
    np.testing.assert_array_equal(no_hs == 0, ~others)
    np.testing.assert_array_equal(both == 0, ~obs.any(0))
    assert (no_hs[others] != both[others]).any()


def test_predict_bad_missing_is_one_line(tmp_path_factory):
    ref = reference_run(tmp_path_factory)
    res = CliRunner().invoke(
        main, ["predict", ref.run_id, "--root", str(ref.root), "--missing", "hs,lidar"]
    )
    assert res.exit_code == 2 and "--missing" in res.stderr
    args = ["predict", ref.run_id, "--root", str(ref.root), "--missing", "hs", "--missing", "lidar"]
    res = CliRunner().invoke(main, args)  # repeated: both count, not only the last
    assert res.exit_code == 2 and "at least one modality" in res.stderr, res.output
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
    # the overall score is the one its confusion matrix, the sum of the patterns', gives
    cms = [np.array(p["confusion_matrix"]) for p in out["by_pattern"].values()]
    assert (sum(cms) == np.array(out["overall"]["confusion_matrix"])).all()
    assert abs(out["overall"]["oa"] - 100 * np.trace(sum(cms)) / out["n_test"]) < 1e-4


def test_evaluate_without_scenario_skips_other_modality_orders(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory)
    root = tmp_path / "ws"
    shutil.copytree(ref.root, root, ignore=shutil.ignore_patterns("eval"))
    built = {p.stem for p in (root / "scenarios" / "trento").glob("*.npz")}
    args = ["scenarios", "--root", str(root), "--rate", "0.5", "--pattern", "hs"]
    r = CliRunner().invoke(main, [*args, "--modalities", "lidar,hs"])
    assert r.exit_code == 0, r.output
    (other,) = {p.stem for p in (root / "scenarios" / "trento").glob("*.npz")} - built
    res = CliRunner().invoke(main, ["evaluate", ref.run_id, "--root", str(root)])
    assert res.exit_code == 0, res.output
    for sid in built:  # the run's own order: scored; the other order: listed with the reason
        assert f"{ref.run_id} on {sid}: OA" in res.stdout
    assert f"skipped {other}: built for modalities ['lidar', 'hs']" in res.stderr
    scored = {p.stem for p in (root / "runs" / ref.run_id / "eval").glob("*.json")}
    assert scored == built


def test_class_map_png_fits_its_legend_and_keeps_nodata_apart(tmp_path):
    """A thin scene with 15 classes still shows every legend row (the figure grows to the
    legend), and no-data pixels get a colour no class uses (Houston's Residential is white)."""
    import matplotlib.image as mpimg

    from rsmiss.training.classmap import nodata_colour, write_class_map

    white, black = [255, 255, 255], [0, 0, 0]
    palette = [[10 * i, 100, 50] for i in range(14)] + [white]
    assert nodata_colour(palette) == (0, 0, 0)
    assert nodata_colour(palette + [black]) == (128, 128, 128)
    classes = np.arange(4 * 40).reshape(4, 40) % 16  # 0 = no data, 1..15 the classes
    _tif, png = write_class_map(
        classes,
        tmp_path / "thin.tif",
        class_names=[f"class {i}" for i in range(15)],
        palette=palette,
        title="a long title " * 8,
    )
    img = mpimg.imread(png)
    assert img.shape[0] >= 16 * 0.14 * 110  # 15 classes + "no data", about 0.16 in each
    rgb = (img[..., :3] * 255).round().astype(int).reshape(-1, 3)
    assert (rgb == [0, 0, 0]).all(1).any()  # the no-data pixels, in black


def test_scene_needs_the_observed_map():
    """Every cube rsmiss writes has ``observed_map``; one without it is refused in one line."""
    import pytest
    import xarray as xr

    from rsmiss.errors import DataError
    from rsmiss.training.data import load_scene

    ds = xr.Dataset(
        {"scene_hs": (("band", "y", "x"), np.zeros((2, 6, 6), np.float32))},
        coords={"modality": ["hs"]},
    )
    with pytest.raises(DataError, match="observed_map"):
        load_scene(ds, ("hs",), 3, torch.device("cpu"))
