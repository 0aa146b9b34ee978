"""`rsmiss scenarios`: the paper's settings, Table 3 rows, files, ids, errors, --spatial.

Cubes here are tiny cube-like zarr stores with exactly the variables scenarios read
(``label``, ``split``, ``row``, ``col``, ``observed``, coordinate ``modality``, attrs
``dataset``, ``cube_id``, ``modalities``), built by :func:`make_cube`; one integration test
ingests a synthetic scene for real.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from reliability_env import tamper_npz

from rsmiss.cli import main
from rsmiss.errors import DataError
from rsmiss.scenarios import (
    load_scenario,
    neighbour_share,
    pattern_names,
    read_cube_inputs,
    scenario_id,
)

REPO = Path(__file__).resolve().parents[1]


def make_cube(
    root: Path,
    dataset: str = "trento",
    modalities: tuple[str, ...] = ("hs", "lidar"),
    shape: tuple[int, int] = (24, 30),
    cube_id: str = "c0ffee",
    unobserved: dict[str, float] | None = None,
    seed: int = 0,
) -> Path:
    """A cube-like zarr: class regions as vertical bands, ~40 % train, every pixel labelled.

    Only the variables and attributes scenarios read, plus the two attributes that make
    ``rsmiss.cube.open_cube`` accept it as a finished cube.
    """
    import xarray as xr

    rng = np.random.default_rng(seed)
    h, w = shape
    rows, cols = np.divmod(np.arange(h * w), w)
    label = 1 + (cols * 5 // w)  # five classes, contiguous regions
    split = np.where(rng.random(h * w) < 0.4, "train", "test")
    observed = np.ones((h * w, len(modalities)), dtype=bool)
    for m, frac in (unobserved or {}).items():
        observed[:, modalities.index(m)] = rng.random(h * w) >= frac
    label_map = np.zeros(shape, dtype=np.int64)
    label_map[rows, cols] = label
    ds = xr.Dataset(
        {
            "label": ("sample", label.astype(np.int64)),
            "split": ("sample", split.astype(object)),  # as ingest writes it
            "row": ("sample", rows.astype(np.int64)),
            "col": ("sample", cols.astype(np.int64)),
            "observed": (("sample", "modality"), observed),
            "label_map": (("y", "x"), label_map),
        },
        coords={"modality": np.array(modalities, dtype=object)},
        attrs={
            "dataset": dataset,
            "cube_id": cube_id,
            "modalities": list(modalities),
            "rsmiss_complete": True,  # what rsmiss.cube.open_cube takes as a finished cube
            "has_patches": True,  # (none here: scenarios never read patches)
        },
    )
    path = root / "cubes" / f"{dataset}.zarr"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_zarr(path, mode="w")
    return path


def run(*args: str):
    return CliRunner().invoke(main, ["scenarios", *args])


def near(count: int, share: float, n: int) -> bool:
    """``count`` is ⌊share n⌋ or ⌈share n⌉ (up to float noise in ``share n``)."""
    return math.floor(share * n + 1e-9) <= count <= math.ceil(share * n - 1e-9)


@pytest.fixture
def trento_root(tmp_path: Path) -> Path:
    make_cube(tmp_path)
    return tmp_path


def test_default_three_settings(trento_root: Path):
    result = run("--rate", "0.9", "--root", str(trento_root))
    assert result.exit_code == 0, result.output
    folder = trento_root / "scenarios" / "trento"
    assert sorted(p.name for p in folder.iterdir()) == [
        "both-r0.90-s0.npz",
        "hs-r0.90-s0.npz",
        "other-r0.90-s0.npz",
    ]
    assert "hs_missing" in result.output and "complete" in result.output
    for split in ("train", "test"):
        both = load_scenario(folder / "both-r0.90-s0.npz").split(split)
        n = len(both)
        lacks = ~both
        assert near(int(lacks[:, 0].sum()), 0.45, n) and near(int(lacks[:, 1].sum()), 0.45, n)
        assert not lacks.all(1).any()
        other = load_scenario(folder / "other-r0.90-s0.npz").split(split)
        assert other[:, 0].all() and near(int((~other[:, 1]).sum()), 0.9, n)
        hs = load_scenario(folder / "hs-r0.90-s0.npz").split(split)
        assert hs[:, 1].all() and near(int((~hs[:, 0]).sum()), 0.9, n)
    again = run("--rate", "0.9", "--root", str(trento_root))
    assert again.exit_code == 0 and again.output.count("up to date") == 3
    forced = run("--rate", "0.9", "--root", str(trento_root), "--pattern", "both", "--force")
    assert "rewritten" in forced.output


def test_reingested_cube_rebuilds(trento_root: Path):
    assert run("--rate", "0.5", "--pattern", "hs", "--root", str(trento_root)).exit_code == 0
    path = trento_root / "scenarios" / "trento" / "hs-r0.50-s0.npz"
    make_cube(trento_root, cube_id="new-cube")
    with pytest.raises(DataError, match="re-ingested"):
        load_scenario(path, cube=trento_root / "cubes" / "trento.zarr")
    result = run("--rate", "0.5", "--pattern", "hs", "--root", str(trento_root))
    assert "rewritten" in result.output
    assert load_scenario(path, cube="new-cube").cube_id == "new-cube"


def test_scenario_contents_follow_the_cube(trento_root: Path):
    assert run("--rate", "0.5", "--root", str(trento_root), "--pattern", "both").exit_code == 0
    path = trento_root / "scenarios" / "trento" / "both-r0.50-s0.npz"
    inputs = read_cube_inputs(trento_root / "cubes" / "trento.zarr")
    s = load_scenario(path, cube=trento_root / "cubes" / "trento.zarr")
    assert s.modalities == ("hs", "lidar") and s.dataset == "trento" and s.cube_id == "c0ffee"
    assert np.array_equal(s.train_index, np.flatnonzero(inputs.split == "train"))
    assert np.array_equal(s.test_index, np.flatnonzero(inputs.split == "test"))
    assert s.train.shape == (len(s.train_index), 2) and s.train.dtype == bool
    assert s.params["rate"] == 0.5 and s.params["pattern"] == "both" and s.params["seed"] == 0
    # train and test use different random streams: the masks are not the same sequence
    k = min(len(s.train), len(s.test))
    assert not np.array_equal(s.train[:k], s.test[:k])
    # spread over classes: each class's missing share is within one sample of the rate
    labels = inputs.label[s.test_index]
    for c in np.unique(labels):
        rows = s.test[labels == c]
        assert abs((~rows).any(1).sum() - 0.5 * len(rows)) <= 1 + 1e-9


def test_byte_identical_in_separate_processes(tmp_path: Path):
    make_cube(tmp_path / "a")
    shutil.copytree(tmp_path / "a" / "cubes", tmp_path / "b" / "cubes")
    args = ["scenarios", "--rate", "0.7", "--pattern", "both", "--spatial", "--root"]
    # one run in this process, one in a fresh interpreter (other hash seed, other imports)
    assert CliRunner().invoke(main, [*args, str(tmp_path / "a")]).exit_code == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "12345"}
    cmd = [sys.executable, "-m", "rsmiss.cli", *args, str(tmp_path / "b")]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    name = "both-r0.70-s0-spatial.npz"
    a = (tmp_path / "a" / "scenarios" / "trento" / name).read_bytes()
    b = (tmp_path / "b" / "scenarios" / "trento" / name).read_bytes()
    assert a == b
    # another seed gives other masks
    assert (
        run(
            "--rate",
            "0.7",
            "--pattern",
            "both",
            "--spatial",
            "--seed",
            "1",
            "--root",
            str(tmp_path / "a"),
        ).exit_code
        == 0
    )
    s0 = load_scenario(tmp_path / "a" / "scenarios" / "trento" / name)
    s1 = load_scenario(tmp_path / "a" / "scenarios" / "trento" / "both-r0.70-s1-spatial.npz")
    assert not np.array_equal(s0.test, s1.test)


def test_tampered_or_foreign_file_is_refused(trento_root: Path):
    assert run("--rate", "0.5", "--root", str(trento_root), "--pattern", "other").exit_code == 0
    path = trento_root / "scenarios" / "trento" / "other-r0.50-s0.npz"
    with pytest.raises(DataError, match="cube"):
        load_scenario(path, cube="another-cube-id")
    tamper_npz(path)  # one mask entry flipped, the zip still valid
    with pytest.raises(DataError, match="other-r0.50-s0.npz"):
        load_scenario(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_scenario(path)
    # the command repairs it
    result = run("--rate", "0.5", "--root", str(trento_root), "--pattern", "other")
    assert "rewritten" in result.output
    assert load_scenario(path).params["pattern"] == "other"


def test_table3_rows_on_three_modality_augsburg(tmp_path: Path):
    make_cube(tmp_path, "augsburg", ("hs", "sar", "lidar"), shape=(20, 25))
    root = str(tmp_path)
    rows = {  # scenario id -> stated availability (hs, sar, lidar)
        "all-r0.75-s0-m-hs-sar-lidar": (0.75, 0.75, 0.75),
        "avail-hs1.00-sar0.75-lidar0.50-s0": (1.0, 0.75, 0.5),
        "avail-hs0.50-sar1.00-lidar0.75-s0": (0.5, 1.0, 0.75),
        "avail-hs0.75-sar0.50-lidar1.00-s0": (0.75, 0.5, 1.0),
    }
    r = run("--root", root, "--modalities", "hs,sar,lidar", "--pattern", "all", "--rate", "0.75")
    assert r.exit_code == 0, r.output
    r = run(
        "--root",
        root,
        "--availability",
        "hs=1.0,sar=0.75,lidar=0.5",
        "--availability",
        "hs=0.5,sar=1,lidar=0.75",
    )
    assert r.exit_code == 0, r.output
    # modalities not named are fully available; --modalities brings lidar in
    r = run("--root", root, "--modalities", "hs,sar,lidar", "--availability", "sar=0.5,hs=0.75")
    assert r.exit_code == 0, r.output
    for sid, stated in rows.items():
        s = load_scenario(tmp_path / "scenarios" / "augsburg" / f"{sid}.npz")
        assert s.modalities == ("hs", "sar", "lidar")
        for split in ("train", "test"):
            avail = s.split(split)
            n = len(avail)
            assert ((~avail).sum(1) <= 1).all()  # at most one modality missing per sample
            assert near(int((~avail).any(1).sum()), 0.75, n)
            for j, a in enumerate(stated):
                assert near(int((~avail[:, j]).sum()), 1 - a, n), (sid, split, j)
    # --rate may accompany --availability only when it agrees
    ok = run("--root", root, "--availability", "hs=1,sar=0.75,lidar=0.5", "--rate", "0.75")
    assert ok.exit_code == 0 and "up to date" in ok.output
    bad = run("--root", root, "--availability", "hs=1,sar=0.75,lidar=0.5", "--rate", "0.5")
    assert bad.exit_code == 2 and "implies" in bad.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rate", "1.5"], "outside [0, 1]"),
        (["--rate", "-0.1"], "outside [0, 1]"),
        (["--rate", "0.5", "--pattern", "clouds"], "unknown --pattern 'clouds'"),
        (["--rate", "0.5", "--modalities", "hs,radar"], "'radar'"),
        (["--rate", "0.5", "--modalities", "hs,sar,lidar", "--pattern", "both"], "exactly two"),
        (["--rate", "0.5", "--modalities", "hs,sar,lidar", "--pattern", "other"], "exactly two"),
        (["--availability", "hs=0.5,sar=0.5,lidar=0.9"], "infeasible"),
        (["--availability", "hs=0.5,dsm=0.5"], "'dsm'"),
        (["--availability", "hs=1.0,lidar=0.5", "--modalities", "hs,sar"], "'lidar'"),
        (["--availability", "hs=x"], "MOD=FRACTION"),
        (["--pattern", "both"], "--rate is required"),
        (["--rate", "0.5", "--dataset", "houston2013"], "no cube for dataset 'houston2013'"),
        (["--rate", "0.5", "--pattern", "both", "--test-rate", "2"], "--test-rate"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path: Path, args, needle):
    make_cube(tmp_path, "augsburg", ("hs", "sar", "lidar"), shape=(8, 10))
    # the first flag is fine for augsburg, so a later dataset failing must not leave files
    make_cube(tmp_path, "trento", shape=(8, 10))
    result = run("--root", str(tmp_path), *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not (tmp_path / "scenarios").exists()


def test_no_cubes_found(tmp_path: Path):
    result = run("--rate", "0.9", "--root", str(tmp_path))
    assert result.exit_code == 2 and "no cubes found" in result.output


def test_unobserved_samples_stay_missing_and_count(tmp_path: Path):
    make_cube(tmp_path, unobserved={"lidar": 0.2})
    inputs = read_cube_inputs(tmp_path / "cubes" / "trento.zarr")
    assert run("--rate", "0.5", "--pattern", "other", "--root", str(tmp_path)).exit_code == 0
    s = load_scenario(tmp_path / "scenarios" / "trento" / "other-r0.50-s0.npz")
    for split, index in (("train", s.train_index), ("test", s.test_index)):
        avail = s.split(split)
        unobserved = ~inputs.observed[index, 1]
        assert not avail[unobserved, 1].any()  # never made available
        assert near(int((~avail[:, 1]).sum()), 0.5, len(avail))  # still counts to the rate
    # more unobserved than the quota: they stay missing, with a warning
    result = run("--rate", "0.1", "--pattern", "hs", "--root", str(tmp_path))
    assert result.exit_code == 0 and "warning:" in result.output
    s = load_scenario(tmp_path / "scenarios" / "trento" / "hs-r0.10-s0.npz")
    assert not s.test[~inputs.observed[s.test_index, 1], 1].any()
    # LiDAR gaps under an HS-missing request: said, not silently counted as HS missing
    result = run("--rate", "0.5", "--pattern", "hs", "--root", str(tmp_path))
    assert result.exit_code == 0
    assert "modality combination this scenario does not ask for" in result.output
    result = run("--rate", "0.5", "--pattern", "other", "--root", str(tmp_path), "--force")
    assert "does not ask for" not in result.output  # LiDAR gaps are the requested pattern


def test_test_overrides_and_ids(trento_root: Path):
    r = run(
        "--rate",
        "0.9",
        "--pattern",
        "both",
        "--test-pattern",
        "hs",
        "--test-rate",
        "0.5",
        "--root",
        str(trento_root),
    )
    assert r.exit_code == 0, r.output
    s = load_scenario(trento_root / "scenarios" / "trento" / "both-r0.90-s0-test-hs-r0.50.npz")
    assert s.params["test_pattern"] == "hs" and s.params["test_rate"] == 0.5
    assert s.test[:, 1].all() and near(int((~s.test[:, 0]).sum()), 0.5, len(s.test))
    assert near(int((~s.train[:, 0]).sum()), 0.45, len(s.train))
    assert scenario_id("other", 0.7, 1) == "other-r0.70-s1"
    assert scenario_id("both", 0.9, 0, spatial=True) == "both-r0.90-s0-spatial"
    assert scenario_id("both", 0.125, 0) == "both-r0.125-s0"
    names = pattern_names(np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1]], bool), ("hs", "sar", "lidar"))
    assert list(names) == ["complete", "hs_missing", "hs+sar_missing"]


def test_spatial_masks_are_contiguous_and_exact(tmp_path: Path):
    make_cube(tmp_path, shape=(60, 60))
    root = str(tmp_path)
    assert run("--rate", "0.5", "--pattern", "both", "--root", root).exit_code == 0
    assert run("--rate", "0.5", "--pattern", "both", "--spatial", "--root", root).exit_code == 0
    inputs = read_cube_inputs(tmp_path / "cubes" / "trento.zarr")
    folder = tmp_path / "scenarios" / "trento"
    plain = load_scenario(folder / "both-r0.50-s0.npz")
    blobs = load_scenario(folder / "both-r0.50-s0-spatial.npz")
    assert blobs.params["spatial"] is True
    for split in ("train", "test"):
        idx = blobs.train_index if split == "train" else blobs.test_index
        rows, cols = inputs.row[idx], inputs.col[idx]
        for j in range(2):
            lack_b = ~blobs.split(split)[:, j]
            lack_p = ~plain.split(split)[:, j]
            assert lack_b.sum() == lack_p.sum()  # same exact counts
            assert near(int(lack_b.sum()), 0.25, len(idx))
            share_b = neighbour_share(lack_b, rows, cols, inputs.shape)
            share_p = neighbour_share(lack_p, rows, cols, inputs.shape)
            assert share_b >= lack_b.mean() + 0.3, (split, j, share_b, lack_b.mean())
            assert share_b >= share_p + 0.3
        assert not (~blobs.split(split)).all(1).any()


def _ingest(tmp_path: Path, dataset: str, scale: float) -> Path:
    """Synthetic raw files -> the real ingest (no patches); returns the workspace root."""
    raw, root = tmp_path / "raw", tmp_path / "root"
    runner = CliRunner()
    r = runner.invoke(main, ["synth", dataset, "--out", str(raw), "--scale", str(scale)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main, ["ingest", dataset, "--raw", str(raw), "--root", str(root), "--no-patches"]
    )
    assert r.exit_code == 0, r.output
    return root


def test_real_ingest_trento_paper_settings(tmp_path: Path):
    """Synthetic Trento through the real ingest, then the paper's three settings."""
    root = _ingest(tmp_path, "trento", 0.15)
    r = CliRunner().invoke(main, ["scenarios", "--rate", "0.9", "--root", str(root)])
    assert r.exit_code == 0, r.output
    cube = root / "cubes" / "trento.zarr"
    folder = root / "scenarios" / "trento"
    assert {p.stem for p in folder.glob("*.npz")} == {
        "other-r0.90-s0",
        "hs-r0.90-s0",
        "both-r0.90-s0",
    }
    s = load_scenario(folder / "both-r0.90-s0.npz", cube=cube)
    for split in ("train", "test"):
        lacks = ~s.split(split)
        assert len(lacks) > 0
        assert near(int(lacks[:, 0].sum()), 0.45, len(lacks))
        assert near(int(lacks[:, 1].sum()), 0.45, len(lacks))
        assert not lacks.all(1).any()


def test_real_ingest_augsburg_table3(tmp_path: Path):
    """Synthetic three-modality Augsburg through the real ingest, Table 3's four rows."""
    root = _ingest(tmp_path, "augsburg", 0.15)
    runner = CliRunner()
    base = ["scenarios", "--root", str(root), "--modalities", "hs,sar,lidar"]
    r = runner.invoke(main, [*base, "--pattern", "all", "--rate", "0.75"])
    assert r.exit_code == 0, r.output
    avails = ["hs=1.0,sar=0.75,lidar=0.5", "hs=0.5,sar=1.0,lidar=0.75", "hs=0.75,sar=0.5,lidar=1.0"]
    r = runner.invoke(main, [*base, *[x for a in avails for x in ("--availability", a)]])
    assert r.exit_code == 0, r.output
    folder = root / "scenarios" / "augsburg"
    rows = {
        "all-r0.75-s0-m-hs-sar-lidar": (0.75, 0.75, 0.75),
        "avail-hs1.00-sar0.75-lidar0.50-s0": (1.0, 0.75, 0.5),
        "avail-hs0.50-sar1.00-lidar0.75-s0": (0.5, 1.0, 0.75),
        "avail-hs0.75-sar0.50-lidar1.00-s0": (0.75, 0.5, 1.0),
    }
    for sid, stated in rows.items():
        s = load_scenario(folder / f"{sid}.npz", cube=root / "cubes" / "augsburg.zarr")
        for split in ("train", "test"):
            avail = s.split(split)
            for j, a in enumerate(stated):
                assert near(int((~avail[:, j]).sum()), 1 - a, len(avail)), (sid, split)
