"""``rsmiss download`` and ``ingest --download`` against a real HTTP server on 127.0.0.1.

The served files are ``rsmiss synth trento`` output packed in the sources' own layouts (the
GitHub archive with its ``Trento-<commit>/`` folder, the label maps as single files). The
catalog's URLs are redirected with ``--mirror`` / ``$RSMISS_MIRROR``; where checksums must
match the synthetic files, ``$RSMISS_CATALOG`` puts a copy of the Trento entry (same
sources, the synthetic files' shapes and sha256s) before the built-in one, so the commands
are exactly the README's. A guard fails any test that connects anywhere but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from click.testing import CliRunner
from mirror_server import MirrorServer

from rsmiss.catalog import CATALOG_DIR, load_catalog
from rsmiss.cli import main
from rsmiss.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
TRENTO = load_catalog("trento")
ARCHIVE = TRENTO.sources[0]
ARCHIVE_URL = ARCHIVE.urls[0]
PREFIX = ARCHIVE.members[0].member.split("/")[0]
TR_URL, TS_URL = TRENTO.sources[1].urls[0], TRENTO.sources[2].urls[0]
FILES = ("Italy_hsi.mat", "Italy_lidar.mat", "allgrd.mat", "TRLabel.mat", "TSLabel.mat")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Any connection to another host is a test failure, not a silent download."""
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, bytes]:
    raw = synthesize("trento", tmp_path_factory.mktemp("synth") / "trento", seed=0, scale=0.25)
    return {name: (raw / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory, synthetic) -> Path:
    """The Trento entry with the synthetic files' shapes and checksums (same sources)."""
    doc = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
    files = [m["source"] for m in doc["modalities"]]
    files += [doc["split"][k] for k in ("train", "test", "labels")]
    for spec in files:
        data = synthetic[spec["file"]]
        spec["sha256"] = sha(data)
        spec["shape"] = list(scipy.io.loadmat(io.BytesIO(data))[spec["key"]].shape)
    doc["shape"] = files[0]["shape"][:2]
    folder = tmp_path_factory.mktemp("catalog")
    (folder / "trento.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def trento_zip(files: dict[str, bytes], drop: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(f"{PREFIX}/README.md", "Trento\n")
        for name in ("Italy_hsi.mat", "Italy_lidar.mat", "allgrd.mat"):
            if name != drop:
                zf.writestr(f"{PREFIX}/{name}", files[name])
    return buf.getvalue()


@pytest.fixture
def server(tmp_path):
    srv = MirrorServer(tmp_path / "mirror").start()
    yield srv
    srv.stop()


@pytest.fixture
def mirror(server, synthetic, catalog_dir, monkeypatch) -> MirrorServer:
    """The Trento sources served from 127.0.0.1; `trento` resolves to the synthetic entry."""
    server.put(ARCHIVE_URL, trento_zip(synthetic))
    server.put(TR_URL, synthetic["TRLabel.mat"])
    server.put(TS_URL, synthetic["TSLabel.mat"])
    monkeypatch.setenv("RSMISS_CATALOG", str(catalog_dir))
    return server


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def refused(result) -> str:
    """The one-line error of a refused command (exit 2)."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def published(root: Path) -> list[str]:
    """Everything under ROOT/raw and ROOT/weights (temporary siblings included)."""
    out = []
    for sub in ("raw", "weights"):
        if (root / sub).exists():
            out += [str(p.relative_to(root)) for p in (root / sub).rglob("*") if p.is_file()]
    return out


def test_download_then_ingest_by_name_as_in_the_readme(mirror, synthetic, tmp_path):
    root = tmp_path / "ws"
    res = run("download", "trento", "--root", str(root), "--mirror", mirror.url)
    assert res.exit_code == 0, res.output
    assert "5 file(s) downloaded" in res.stdout
    for name in FILES:
        assert (root / "raw" / "trento" / name).read_bytes() == synthetic[name]
    assert not list(root.rglob("*.part")) and not list(root.rglob(".tmp-*"))
    assert not (root / "downloads" / "trento").exists()  # the archive is gone once extracted

    n = len(mirror.requests)
    again = run("download", "trento", "--root", str(root), "--mirror", mirror.url)
    assert again.exit_code == 0 and "5 already present" in again.stdout
    assert len(mirror.requests) == n  # nothing fetched again

    res = run("ingest", "trento", "--root", str(root), "--no-progress")
    assert res.exit_code == 0, res.output
    assert (root / "cubes" / "trento.zarr").is_dir()


def test_ingest_download_end_to_end_with_the_mirror_variable(mirror, monkeypatch, tmp_path):
    root = tmp_path / "ws"
    monkeypatch.setenv("RSMISS_MIRROR", mirror.url)
    res = run(
        "ingest", "trento", "--download", "--no-patches", "--root", str(root), "--no-progress"
    )
    assert res.exit_code == 0, res.output
    assert (root / "cubes" / "trento.zarr").is_dir()
    assert {r.path for r in mirror.gets()} == {
        "/" + u.split("://", 1)[1] for u in (ARCHIVE_URL, TR_URL, TS_URL)
    }


def test_first_mirror_404_then_the_second_answers(mirror, tmp_path):
    root = tmp_path / "ws"
    dead = mirror.url + "gone/"
    res = run("download", "trento", "--root", str(root), "--mirror", dead, "--mirror", mirror.url)
    assert res.exit_code == 0, res.output
    paths = [r.path for r in mirror.gets("Trento/archive")]
    assert paths[0].startswith("/gone/github.com/") and not paths[1].startswith("/gone/")
    assert "(HTTP 404)" not in res.stderr and "HTTP 404" in res.stderr  # logged, not fatal


def test_dropped_connection_is_resumed_with_range(mirror, synthetic, tmp_path):
    root = tmp_path / "ws"
    mirror.switches.drop_after, mirror.switches.drops = 100_000, 1
    res = run("download", "trento", "--root", str(root), "--mirror", mirror.url)
    assert res.exit_code == 0, res.output
    first, second = [r.range for r in mirror.gets("Trento/archive")]
    resumed_at = int(second.removeprefix("bytes=").removesuffix("-"))
    assert first is None and 0 < resumed_at <= 100_000  # what had reached the .part file
    assert (root / "raw" / "trento" / "Italy_hsi.mat").read_bytes() == synthetic["Italy_hsi.mat"]


def test_kill_9_mid_download_leaves_a_part_the_next_call_resumes(mirror, synthetic, tmp_path):
    root = tmp_path / "ws"
    mirror.switches.delay_s = 0.01  # ~0.4 MB/s: the archive takes seconds
    env = {**os.environ, "PYTHONPATH": str(REPO), "RSMISS_MIRROR": mirror.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rsmiss.cli", "download", "trento", "--root", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    part = root / "downloads" / "trento" / f"{ARCHIVE.name}.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 200_000):
        assert proc.poll() is None and time.monotonic() < deadline, "download never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = part.stat().st_size
    assert 0 < kept < len(trento_zip(synthetic)) and published(root) == []

    mirror.switches.delay_s = 0.0
    res = run("download", "trento", "--root", str(root), "--mirror", mirror.url)
    assert res.exit_code == 0, res.output
    assert mirror.gets("Trento/archive")[-1].range == f"bytes={kept}-"
    assert f"resuming after {kept} bytes" in res.stderr
    assert (root / "raw" / "trento" / "Italy_hsi.mat").read_bytes() == synthetic["Italy_hsi.mat"]


def test_wrong_bytes_are_refused_naming_both_checksums(server, synthetic, tmp_path):
    """The built-in entry (real checksums): a stand-in HS cube in the archive is refused."""
    root = tmp_path / "ws"
    server.put(ARCHIVE_URL, trento_zip({**synthetic, "Italy_hsi.mat": b"not the real cube"}))
    line = refused(run("download", "trento", "--root", str(root), "--mirror", server.url))
    expected = TRENTO.expected_sha256("Italy_hsi.mat")
    assert f"{PREFIX}/Italy_hsi.mat" in line and "sha256 mismatch" in line
    assert f"expected {expected}, got {sha(b'not the real cube')}" in line
    assert published(root) == [] and not list(root.rglob("*.zip"))


def test_corrupt_bytes_of_a_single_file_are_refused(mirror, tmp_path):
    root = tmp_path / "ws"
    mirror.switches.corrupt = True
    line = refused(run("download", "trento", "--root", str(root), "--mirror", mirror.url))
    assert "corrupt archive" in line and published(root) == []


def test_single_file_checksum_mismatch_publishes_nothing(mirror, synthetic, tmp_path):
    root = tmp_path / "ws"
    mirror.put(TR_URL, synthetic["TSLabel.mat"])  # the wrong file under the right name
    line = refused(run("download", "trento", "--root", str(root), "--mirror", mirror.url))
    assert line.startswith("error: TRLabel.mat: sha256 mismatch: expected ")
    assert f"got {sha(synthetic['TSLabel.mat'])}" in line
    assert not (root / "raw" / "trento" / "TRLabel.mat").exists()
    assert not list((root / "raw").rglob(".tmp-*"))


def test_truncated_archive_is_refused_and_removed(mirror, synthetic, tmp_path):
    root = tmp_path / "ws"
    whole = trento_zip(synthetic)
    mirror.put(ARCHIVE_URL, whole[: len(whole) // 2])
    line = refused(run("download", "trento", "--root", str(root), "--mirror", mirror.url))
    assert f"error: {ARCHIVE.name}: truncated or corrupt archive" in line
    assert published(root) == [] and not list(root.rglob("*.zip"))


def test_archive_lacking_a_member_is_refused(mirror, synthetic, tmp_path):
    root = tmp_path / "ws"
    mirror.put(ARCHIVE_URL, trento_zip(synthetic, drop="allgrd.mat"))
    line = refused(run("download", "trento", "--root", str(root), "--mirror", mirror.url))
    assert f"lacks {PREFIX}/allgrd.mat" in line and published(root) == []


def test_404_everywhere_refused_and_no_network_are_one_line_each(mirror, monkeypatch, tmp_path):
    root = tmp_path / "ws"
    line = refused(run("download", "trento", "--root", str(root), "--mirror", mirror.url + "x/"))
    assert line.count("(HTTP 404)") == 1 and "--mirror" in line

    mirror.switches.refused = {"/github.com/"}
    line = refused(run("download", "trento", "--root", str(root), "--mirror", mirror.url))
    assert "(HTTP 403)" in line

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    line = refused(run("download", "trento", "--root", str(root), "--mirror", closed))
    assert "(connection refused)" in line

    def no_dns(*_a, **_k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    line = refused(run("download", "trento", "--root", str(root)))  # the real URLs, offline
    assert "host not found (no network?)" in line and "github.com" in line
    assert published(root) == []


def test_disk_full_while_writing_is_one_line_and_publishes_nothing(mirror, tmp_path):
    root = tmp_path / "ws"

    def small_disk():  # writes past 150 kB fail with EFBIG, as on a full disk (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rsmiss.cli", "download", "trento", "--root", str(root)]
        + ["--mirror", mirror.url],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert "disk full while writing" in line and ".part" in line
    assert published(root) == []


def test_manual_entry_says_where_and_what(tmp_path):
    line = refused(run("download", "augsburg", "--root", str(tmp_path)))
    assert (
        "data_HS_LR.mat" in line and "TestImage.mat" in line and "must be fetched by hand" in line
    )
    assert "ISPRS_S2FL" in line and str(tmp_path / "raw" / "augsburg") in line


def test_synthetic_folder_is_not_overwritten(mirror, tmp_path):
    root = tmp_path / "ws"
    synthesize("trento", root / "raw" / "trento", seed=0, scale=0.25)
    line = refused(run("download", "trento", "--root", str(root), "--mirror", mirror.url))
    assert "synthetic" in line and mirror.gets() == []


def test_bad_sources_are_refused_by_the_catalog(tmp_path):
    doc = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
    doc["sources"][1]["urls"] = ["ftp://example.org/TRLabel.mat"]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc))
    line = refused(run("download", str(tmp_path / "a.yaml"), "--root", str(tmp_path)))
    assert "sources.1.urls" in line and "http(s)" in line
    doc = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
    doc["sources"].pop(2)  # TSLabel.mat from nowhere
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(doc))
    line = refused(run("download", str(tmp_path / "b.yaml"), "--root", str(tmp_path)))
    assert "TSLabel.mat" in line and "come from no source" in line


OUC = load_catalog("augsburg-ouc")
OUC_URL = OUC.sources[0].urls[0]


@pytest.fixture(scope="module")
def ouc_files(tmp_path_factory) -> dict[str, bytes]:
    """The official-layout synthetic Augsburg re-packed as augsburg-ouc.zip's members."""
    raw = synthesize("augsburg", tmp_path_factory.mktemp("aug") / "augsburg", seed=0, scale=0.2)
    mats = {n: scipy.io.loadmat(raw / f"{n}.mat")[n] for n in ("data_HS_LR", "data_SAR_HR")}
    train = scipy.io.loadmat(raw / "TrainImage.mat")["TrainImage"].astype(np.uint8)
    test = scipy.io.loadmat(raw / "TestImage.mat")["TestImage"].astype(np.uint8)
    arrays = {
        "augsburg_hsi": np.round(mats["data_HS_LR"] * 1000).astype(np.uint16),
        "augsburg_sar": mats["data_SAR_HR"],
        "augsburg_gt": train + test,
        "augsburg_index": {
            "augsburg_train": np.argwhere(train > 0),
            "augsburg_test": np.argwhere(test > 0),
        },
    }
    out = {}
    for name, arr in arrays.items():
        buf = io.BytesIO()
        scipy.io.savemat(buf, arr if isinstance(arr, dict) else {name: arr})
        out[f"{name}.mat"] = buf.getvalue()
    return out


def ouc_catalog(folder: Path, files: dict[str, bytes], archive: bytes) -> None:
    doc = yaml.safe_load((CATALOG_DIR / "augsburg-ouc.yaml").read_text())
    for spec in [m["source"] for m in doc["modalities"]] + [doc["split"]["labels"]]:
        spec["sha256"] = sha(files[spec["file"]])
        spec["shape"] = list(scipy.io.loadmat(io.BytesIO(files[spec["file"]]))[spec["key"]].shape)
    doc["shape"] = doc["split"]["labels"]["shape"]
    doc["split"]["sha256"] = sha(files["augsburg_index.mat"])
    doc["sources"][0]["sha256"] = sha(archive)
    (folder / "augsburg-ouc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def ouc_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in files.items():
            zf.writestr(f"Augsburg/{name}", data)
    return buf.getvalue()


def test_augsburg_ouc_variant_downloads_and_ingests_its_index(
    server, ouc_files, tmp_path, monkeypatch
):
    import xarray as xr

    archive = ouc_zip(ouc_files)
    server.put(OUC_URL, archive)
    ouc_catalog(tmp_path, ouc_files, archive)
    monkeypatch.setenv("RSMISS_CATALOG", str(tmp_path))
    root = tmp_path / "ws"
    args = ["ingest", "augsburg-ouc", "--download", "--no-patches", "--no-progress"]
    res = run(*args, "--root", str(root), "--mirror", server.url)
    assert res.exit_code == 0, res.output
    index = scipy.io.loadmat(io.BytesIO(ouc_files["augsburg_index.mat"]))
    gt = scipy.io.loadmat(io.BytesIO(ouc_files["augsburg_gt.mat"]))["augsburg_gt"]
    with xr.open_zarr(root / "cubes" / "augsburg-ouc.zarr") as ds:
        split = ds["split"].values
        rows, cols, labels = ds["row"].values, ds["col"].values, ds["label"].values
        assert list(ds.attrs["modalities"]) == ["hs", "sar"]
    assert (split == "train").sum() == len(index["augsburg_train"])
    assert (split == "test").sum() == len(index["augsburg_test"])
    assert np.array_equal(labels, gt[rows, cols])

    # A pixel listed for training and for testing is refused in one line.
    both = {
        **index,
        "augsburg_test": np.vstack([index["augsburg_test"], index["augsburg_train"][:1]]),
    }
    buf = io.BytesIO()
    scipy.io.savemat(buf, {k: v for k, v in both.items() if not k.startswith("__")})
    (root / "raw" / "augsburg-ouc" / "augsburg_index.mat").write_bytes(buf.getvalue())
    line = refused(run("ingest", "augsburg-ouc", "--no-patches", "--root", str(root)))
    assert (
        "augsburg_index.mat" in line and "is in both 'augsburg_train' and 'augsburg_test'" in line
    )


def test_archive_checksum_is_checked_when_the_host_serves_stable_bytes(server, tmp_path):
    """Houston's 2013_DFTC.zip has a catalog sha256 of its own, checked before extraction."""
    houston = load_catalog("houston2013")
    src = houston.sources[0]
    fake = trento_zip({n: b"x" for n in FILES})
    server.put(src.urls[0], fake)
    root = tmp_path / "ws"
    line = refused(run("download", "houston2013", "--root", str(root), "--mirror", server.url))
    assert line.startswith("error: 2013_DFTC.zip: sha256 mismatch: ")
    assert f"expected {src.sha256}, got {sha(fake)}" in line
    assert published(root) == [] and not list(root.rglob("*.zip"))
