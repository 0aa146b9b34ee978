"""``rsmiss synth``: official raw formats read back with the libraries a user would use."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from click.testing import CliRunner

from rsmiss.cli import main
from rsmiss.synth import MARKER, MAT_LAYOUT, SPECS, synthesize
from rsmiss.synth.specs import MIN_PER_CLASS, scaled_shape

HOUSTON_TR = (198, 190, 192, 188, 186, 182, 196, 191, 193, 191, 181, 192, 184, 181, 187)
HOUSTON_VA = (1053, 1064, 505, 1056, 1056, 143, 1072, 1053, 1059, 1036, 1054, 1041, 285, 247, 473)
CASI = "2013_IEEE_GRSS_DF_Contest_CASI.tif"
LIDAR = "2013_IEEE_GRSS_DF_Contest_LiDAR.tif"
ROI = "2013_IEEE_GRSS_DF_Contest_Samples_{}.txt"


def run_synth(*args: str):
    return CliRunner().invoke(main, ["synth", *args])


def synth_ok(*args: str) -> None:
    result = run_synth(*args)
    assert result.exit_code == 0, result.output


def parse_roi(path: Path) -> tuple[str, list[int], list[list[tuple[int, int]]]]:
    """ENVI ROI ASCII: columns found by header name, blocks split by blank lines."""
    raw = path.read_bytes().decode("ascii")
    lines = raw.split("\r\n")
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
    npts, blocks, header, current = [], [], None, None
    for line in lines:
        if line.startswith(";"):
            if "ROI npts:" in line:
                npts.append(int(line.split(":")[1]))
            if re.search(r"\bID\b", line):
                header = re.split(r"\s{2,}", line.lstrip(";").strip())
            continue
        if not line.strip():
            current = None
            continue
        if current is None:
            current = []
            blocks.append(current)
        values = line.split()
        assert len(values) == len(header)
        current.append((int(values[header.index("X")]), int(values[header.index("Y")])))
    return raw, npts, blocks


def roi_map(blocks, shape) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint8)
    for c, block in enumerate(blocks, start=1):
        for x, y in block:
            assert out[y - 1, x - 1] in (0, c)
            out[y - 1, x - 1] = c
    return out


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def load(folder: Path, name: str, dataset: str) -> np.ndarray:
    key, _, dtype = MAT_LAYOUT[dataset][name]
    arr = sio.loadmat(folder / name)[key]
    assert arr.dtype == np.dtype(dtype), (name, arr.dtype)
    return arr


# ------------------------------------------------------------------------------- formats
def test_trento_small_reads_back(tmp_path):
    out = tmp_path / "trento"
    synth_ok("trento", "--out", str(out), "--scale", "0.15", "--seed", "1")
    h, w = scaled_shape(SPECS["trento"], 0.15)
    for name, (_, shape, _) in MAT_LAYOUT["trento"].items():
        arr = load(out, name, "trento")
        assert arr.shape == (h, w, *shape[2:])
    tr, ts = load(out, "TRLabel.mat", "trento"), load(out, "TSLabel.mat", "trento")
    allgrd = load(out, "allgrd.mat", "trento")
    assert not np.any((tr > 0) & (ts > 0))
    assert np.array_equal(allgrd, np.maximum(tr, ts))
    assert (allgrd == 0).any()  # unlabelled background exists
    for c in range(1, 7):
        assert (tr == c).sum() >= MIN_PER_CLASS and (ts == c).sum() >= MIN_PER_CLASS
    marker = json.loads((out / MARKER).read_text())
    assert marker["dataset"] == "trento" and marker["seed"] == 1 and marker["scale"] == 0.15
    assert marker["real_from"] is None and marker["version"]
    assert sorted(marker["files"]) == sorted(SPECS["trento"].files)


def test_augsburg_small_reads_back(tmp_path):
    out = tmp_path / "aug"
    synth_ok("augsburg", "--out", str(out), "--scale", "0.12")
    h, w = scaled_shape(SPECS["augsburg"], 0.12)
    arrays = {name: load(out, name, "augsburg") for name in MAT_LAYOUT["augsburg"]}
    for name, (_, shape, _) in MAT_LAYOUT["augsburg"].items():
        assert arrays[name].shape == (h, w, *shape[2:])
    tr, ts = arrays["TrainImage.mat"], arrays["TestImage.mat"]
    assert not np.any((tr > 0) & (ts > 0))
    for c in range(1, 8):
        assert (tr == c).sum() >= MIN_PER_CLASS and (ts == c).sum() >= MIN_PER_CLASS
    assert np.all(arrays["data_SAR_HR.mat"][..., :2] > 0)  # speckled intensities
    assert np.isfinite(arrays["data_HS_LR.mat"]).all()


def test_houston_full_size_formats_and_roi_counts(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    out = tmp_path / "houston"
    synth_ok("houston2013", "--out", str(out))
    with rasterio.open(out / CASI) as src:
        assert (src.count, src.height, src.width) == (144, 349, 1905)
        assert src.dtypes[0] == "uint16" and src.crs is not None and src.crs.to_epsg() == 32615
        assert src.res == (2.5, 2.5)
        transform, crs = src.transform, src.crs
    with rasterio.open(out / LIDAR) as src:
        assert (src.count, src.dtypes[0]) == (1, "float32")
        assert src.transform == transform and src.crs == crs
    hdr = (out / "2013_IEEE_GRSS_DF_Contest_CASI.hdr").read_text()
    waves = [float(v) for v in re.search(r"wavelength = \{([^}]*)\}", hdr).group(1).split(",")]
    assert len(waves) == 144 and waves[0] == 364.0 and waves[-1] == 1046.1
    maps = {}
    for split, sizes in (("TR", HOUSTON_TR), ("VA", HOUSTON_VA)):
        raw, npts, blocks = parse_roi(out / ROI.format(split))
        assert "; Number of ROIs: 15" in raw and "; File Dimension: 1905 x 349" in raw
        assert [len(b) for b in blocks] == npts  # npts counts duplicate rows
        assert sum(npts) > sum(sizes)  # some points are listed twice
        assert tuple(len(set(b)) for b in blocks) == sizes
        maps[split] = roi_map(blocks, (349, 1905))
    assert not np.any((maps["TR"] > 0) & (maps["VA"] > 0))


def test_houston_small_roi_and_minimum_per_class(tmp_path):
    out = tmp_path / "h"
    synth_ok("houston2013", "--out", str(out), "--scale", "0.1")
    h, w = scaled_shape(SPECS["houston2013"], 0.1)
    for split in ("TR", "VA"):
        raw, _, blocks = parse_roi(out / ROI.format(split))
        assert f"; File Dimension: {w} x {h}" in raw
        assert len(blocks) == 15 and all(len(set(b)) >= MIN_PER_CLASS for b in blocks)


def test_full_size_label_counts_trento_augsburg():
    """Scale 1 label maps match the standard split sizes exactly (layout only: cheap)."""
    from rsmiss.synth import augsburg, trento

    for module in (trento, augsburg):
        spec = module.SPEC
        lay = module.layout(np.random.default_rng(0), 1.0)
        assert lay.train.shape == (spec.height, spec.width)
        tr = np.bincount(lay.train.ravel(), minlength=spec.n_classes + 1)[1:]
        ts = np.bincount(lay.test.ravel(), minlength=spec.n_classes + 1)[1:]
        assert tuple(tr) == spec.train_counts and tuple(ts) == spec.test_counts
        assert not np.any((lay.train > 0) & (lay.test > 0))


# ------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("dataset", ["trento", "augsburg", "houston2013"])
def test_same_seed_same_bytes_other_seed_differs(tmp_path, dataset):
    a, b, c = (tmp_path / n for n in "abc")
    synth_ok(dataset, "--out", str(a), "--scale", "0.1", "--seed", "5")
    synth_ok(dataset, "--out", str(b), "--scale", "0.1", "--seed", "5")
    synth_ok(dataset, "--out", str(c), "--scale", "0.1", "--seed", "6")
    da, dc = digest(a), digest(c)
    assert da == digest(b)
    data_files = [n for n in da if n not in (MARKER, "2013_IEEE_GRSS_DF_Contest_CASI.hdr")]
    assert all(da[n] != dc[n] for n in data_files)


# ------------------------------------------------------------------------------- content
def test_trento_content_is_learnable_but_needs_both_modalities(tmp_path):
    out = tmp_path / "t"
    synthesize("trento", out, seed=2, scale=0.4)
    hs = load(out, "Italy_hsi.mat", "trento")
    height = load(out, "Italy_lidar.mat", "trento")[..., 0]
    lab = load(out, "allgrd.mat", "trento")
    mean = {c: hs[lab == c].mean(0) for c in range(1, 7)}
    sd = {c: hs[lab == c].std(0).mean() for c in range(1, 7)}
    hgt = {c: float(np.median(height[lab == c])) for c in range(1, 7)}

    def sep(a, b):  # spectral distance of class means in units of within-class spread
        return np.linalg.norm(mean[a] - mean[b]) / np.sqrt(hs.shape[-1]) / (sd[a] + sd[b])

    apple, buildings, ground, woods, roads = 1, 2, 3, 4, 6
    assert sep(apple, woods) < 0.5 < 1.0 < sep(ground, roads)  # HS confuses apple/woods ...
    assert hgt[woods] - hgt[apple] > 5.0  # ... LiDAR separates them
    assert abs(hgt[ground] - hgt[roads]) < 0.5  # same height, told apart by HS
    assert abs(hgt[buildings] - hgt[woods]) < 4.0 and sep(buildings, woods) > 1.0
    lo, hi = SPECS["trento"].wavelength_range
    wl = SPECS["trento"].wavelengths()
    red, nir = np.argmin(abs(wl - 670)), np.argmin(abs(wl - 850))
    assert wl[0] == lo and wl[-1] == hi
    assert mean[woods][nir] > 2 * mean[woods][red]  # vegetation has a red edge


def test_real_from_copies_real_files(tmp_path, real_trento):
    out = tmp_path / "real"
    synth_ok("trento", "--out", str(out), "--real-from", str(real_trento))
    for name in ("Italy_lidar.mat", "allgrd.mat", "TRLabel.mat", "TSLabel.mat"):
        assert (out / name).read_bytes() == (real_trento / name).read_bytes()
    hs = load(out, "Italy_hsi.mat", "trento")
    assert hs.shape == (166, 600, 63)
    lab = sio.loadmat(real_trento / "allgrd.mat")["mask_test"]
    ground, roads = hs[lab == 3].mean(0), hs[lab == 6].mean(0)
    assert np.abs(ground - roads).mean() > 200  # spectra follow the real labels
    assert json.loads((out / MARKER).read_text())["real_from"] == str(real_trento.absolute())


# ------------------------------------------------------------------------------- atomicity
def test_overwrites_dataset_files_keeps_others(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "Italy_hsi.mat").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    synth_ok("trento", "--out", str(out), "--scale", "0.1")
    assert load(out, "Italy_hsi.mat", "trento").ndim == 3
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob(".tmp-*")) and not list(tmp_path.glob(".tmp-*"))


def test_marker_lands_first_and_vouches_for_every_file(tmp_path, monkeypatch):
    import os

    import rsmiss.synth as synth_mod

    out = tmp_path / "o"
    order = []
    real_replace = os.replace

    def replace(a, b):
        order.append(
            (Path(b).name, json.loads(Path(a).read_text()) if Path(b).name == MARKER else None)
        )
        real_replace(a, b)

    monkeypatch.setattr(synth_mod.os, "replace", replace)
    synthesize("trento", out, seed=3, scale=0.1)
    monkeypatch.undo()
    assert order[0][0] == MARKER and order[0][1]["state"] == "publishing"  # before any data
    assert order[-1][0] == MARKER and order[-1][1]["state"] == "complete"
    marker = json.loads((out / MARKER).read_text())
    files = {k: v for k, v in digest(out).items() if k != MARKER}
    assert marker["sha256"] == files and marker["state"] == "complete"


def test_failure_midway_writes_nothing(tmp_path, monkeypatch):
    from rsmiss.synth import trento

    def broken(tmp, rng, scale, real_from):
        (tmp / "Italy_hsi.mat").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(trento, "write", broken)
    with pytest.raises(RuntimeError):
        synthesize("trento", tmp_path / "x" / "y", scale=0.1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nosuch", "--out", "{out}"], "houston2013, trento, augsburg"),
        (["trento", "--out", "{out}", "--scale", "0"], "--scale"),
        (["trento", "--out", "{out}", "--scale", "-0.5"], "--scale"),
        (["trento", "--out", "{out}", "--scale", "1.5"], "--scale"),
        (["houston2013", "--out", "{out}", "--scale", "0.001"], "too small"),
        (["trento", "--out", "{file}/sub"], "not a folder"),
        (["trento", "--out", "{file}"], "--out"),
        (["augsburg", "--out", "{out}", "--real-from", "{real}"], "only available for trento"),
        (["trento", "--out", "{out}", "--real-from", "{empty}"], "Italy_lidar.mat is missing"),
        (["trento", "--out", "{out}", "--real-from", "{real}", "--scale", "0.5"], "--scale 1"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, says):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    real = tmp_path / "real"
    real.mkdir()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    subs = {
        "out": str(tmp_path / "out"),
        "file": str(tmp_path / "afile"),
        "real": str(real),
        "empty": str(tmp_path / "empty"),
    }
    result = run_synth(*(a.format(**subs) for a in args))
    assert result.exit_code == 2
    err = result.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in result.output
    assert says in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
