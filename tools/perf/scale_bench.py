"""Scene-scale ingest and prediction: wall time, peak memory and bytes as the scene grows.

For each side N (default 2048, 4096, 8192) this writes a user dataset of GeoTIFFs: 144-band
hyperspectral on a 1 m UTM grid (EPSG:32632), a LiDAR DSM in lat/lon (EPSG:4326, another
CRS and resolution, warped onto the HS grid by ingest) and a sparse label raster. Each is
ingested with ``--no-patches`` in a fresh process; a tiny MaMOL run is trained (one epoch)
on the first; then ``rsmiss predict`` maps a 512 x 512 window of every scene and, with
``--full``, the whole first scene. Every step is a child process measured with ``wait4``:
wall seconds, peak RSS, bytes written, pixels per second. The table shows whether memory
stays flat as N grows (it should: ingest streams row blocks, predict streams tiles).

    .venv/bin/python tools/perf/scale_bench.py [--sizes 2048 4096] [--full] [--work DIR]

Disk: about 2 x 4.6 bytes x 144 x N² per scene (raw + cube), e.g. 19 GB at N = 4096 and 77
GB at N = 8192; check ``df -h`` first. Results go to stdout and ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BANDS = 144
PATCH = 7
BLOCK_ROWS = 64


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# Started fresh (a small Python), this runs the measured command and reports wait4's peak
# RSS: the largest of the command and its worker processes. Forking the command from this
# script instead would report this script's own peak too: Linux carries the parent's peak
# resident set into a child through exec.
MEASURE = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read().decode()
_pid, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"status": status, "wall": time.perf_counter() - t0,
                  "maxrss_kb": usage.ru_maxrss, "err": err[-500:]}))
"""


def measured(cmd: list[str], label: str, pixels: int | None, written: Path) -> dict:
    """Run ``cmd`` (the rsmiss CLI) in a child; wall time, peak RSS, bytes, px/s."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], check=True, capture_output=True, text=True
    )
    res = json.loads(done.stdout.strip().splitlines()[-1])
    if res["status"] != 0:
        raise SystemExit(f"{label} failed: {res['err'].strip().splitlines()[-1:]}")
    wall = res["wall"]
    row = {
        "step": label,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(res["maxrss_kb"] / 1024, 0),
        "bytes_written": du(written),
    }
    if pixels:
        row["px_per_s"] = round(pixels / wall, 1)
    return row


def rsmiss(*args: str) -> list[str]:
    return [sys.executable, "-m", "rsmiss.cli", *map(str, args)]


def write_dataset(raw: Path, n: int, name: str) -> Path:
    """hs.tif (N x N x 144, UTM), dsm.tif (lat/lon, N/2 x N/2), labels.tif; the user YAML."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=128):  # this script stays small; the measured steps
        return _write_dataset(raw, n, name)  # run with GDAL's defaults


def _write_dataset(raw: Path, n: int, name: str) -> Path:
    import rasterio
    import yaml
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    raw.mkdir(parents=True, exist_ok=True)
    e0, n0 = 660000.0, 5100000.0
    hs_t = from_origin(e0, n0, 1.0, 1.0)
    rng = np.random.default_rng(n)
    spectra = rng.random((3, BANDS)).astype(np.float32) * 1000 + 200
    geo = {"driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(raw / "hs.tif", "w", height=n, width=n, count=BANDS, dtype="float32",
                       crs="EPSG:32632", transform=hs_t, **geo) as dst:  # fmt: skip
        for r in range(0, n, BLOCK_ROWS):
            h = min(BLOCK_ROWS, n - r)
            yy, xx = np.mgrid[r : r + h, 0:n].astype(np.float32)
            region = ((np.sin(xx / 97) + np.cos(yy / 71)) > 0).astype(np.int64) + (xx > n / 2)
            block = spectra[region].transpose(2, 0, 1)
            block += rng.standard_normal(block.shape, dtype=np.float32) * 20
            dst.write(block, window=Window(0, r, n, h))
    labels = np.zeros((1, n, n), np.uint8)
    yy, xx = np.mgrid[0:n:61, 0:n:59]
    region = ((np.sin(xx / 97) + np.cos(yy / 71)) > 0).astype(np.int64) + (xx > n / 2)
    labels[0, yy, xx] = region + 1
    with rasterio.open(raw / "labels.tif", "w", height=n, width=n, count=1, dtype="uint8",
                       crs="EPSG:32632", transform=hs_t, **geo) as dst:  # fmt: skip
        dst.write(labels)
    west, south, east, north = transform_bounds("EPSG:32632", "EPSG:4326", e0, n0 - n, e0 + n, n0)
    m = n // 2
    dsm_t = from_origin(west, north, (east - west) / m, (north - south) / m)
    with rasterio.open(raw / "dsm.tif", "w", height=m, width=m, count=1, dtype="float32",
                       crs="EPSG:4326", transform=dsm_t, **geo) as dst:  # fmt: skip
        for r in range(0, m, BLOCK_ROWS * 4):
            h = min(BLOCK_ROWS * 4, m - r)
            yy, xx = np.mgrid[r : r + h, 0:m].astype(np.float32)
            dst.write((10 + np.sin(xx / 40) * np.cos(yy / 30) * 5)[None], window=Window(0, r, m, h))
    doc = {
        "name": name,
        "modalities": [
            {"name": "hs", "bands": BANDS, "source": {"file": "hs.tif"}},
            {"name": "lidar", "bands": 1, "source": {"file": "dsm.tif"}},
        ],
        "classes": [{"name": c} for c in ("a", "b", "c")],
        "split": {
            "method": "random",
            "labels": {"file": "labels.tif"},
            "train_per_class": 30,
            "seed": 0,
        },
    }
    yml = raw / f"{name}.yaml"
    yml.write_text(yaml.safe_dump(doc))
    return yml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--window", type=int, default=512, help="side of the predicted window")
    ap.add_argument("--full", action="store_true", help="also predict the whole first scene")
    ap.add_argument("--devices", type=int, default=1, help="rsmiss predict --devices")
    ap.add_argument("--tile", type=int, default=256, help="rsmiss predict --tile")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rsmiss-scale-"))
    root = work / "root"
    rows: list[dict] = []
    run_dir: Path | None = None
    for n in args.sizes:
        name = f"scale{n}"
        raw = work / "raw" / name
        t0 = time.perf_counter()
        yml = raw / f"{name}.yaml"
        if not yml.is_file():  # raw files of an earlier run of this script are reused
            yml = write_dataset(raw, n, name)
        print(f"{name}: raw files ready in {time.perf_counter() - t0:.0f} s", flush=True)
        cube = root / "cubes" / f"{name}.zarr"
        ingest = rsmiss("ingest", yml, "--raw", raw, "--root", root, "--patch-size", PATCH,
                        "--no-patches", "--no-progress", "--force")  # fmt: skip
        rows.append({"scene": f"{n}²", **measured(ingest, "ingest --no-patches", n * n, cube)})
        print(rows[-1], flush=True)
        runs = sorted((root / "runs").glob("*")) if (root / "runs").is_dir() else []
        run_dir = run_dir or (runs[0] if runs else None)
        if run_dir is None:
            subprocess.run(rsmiss("scenarios", "--root", root, "--dataset", name, "--rate",
                                  "0.5", "--pattern", "both"), check=True)  # fmt: skip
            sid = next((root / "scenarios" / name).glob("*.npz")).stem
            subprocess.run(rsmiss("train", "--root", root, "--dataset", name, "--scenario", sid,
                                  "--method", "mamol", "--backbone", "tiny", "--random-init",
                                  "--epochs", "1", "--set", "write_map=false",
                                  "--set", "max_test_samples=200", "--no-progress"),
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            run_dir = next((root / "runs").iterdir())
        side = min(args.window, n)
        out = work / "maps" / f"{name}-window.tif"
        win = f"0:{side},0:{side}"
        predict = rsmiss(
            "predict", run_dir, "--cube", cube, "--out", out, "--window", win,
            "--devices", args.devices, "--tile", args.tile, "--no-progress",
        )  # fmt: skip
        step = measured(predict, f"predict {side}² window", side**2, out)
        rows.append({"scene": f"{n}²", **step})
        print(rows[-1], flush=True)
        if args.full and n == args.sizes[0]:
            out = work / "maps" / f"{name}-full.tif"
            predict = rsmiss("predict", run_dir, "--cube", cube, "--out", out, "--tile", args.tile,
                             "--devices", args.devices, "--no-progress")  # fmt: skip
            rows.append({"scene": f"{n}²", **measured(predict, f"predict full {n}²", n * n, out)})
            print(rows[-1], flush=True)
    print("\n| scene | step | wall s | peak RSS MB | bytes written | px/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scene']} | {r['step']} | {r['wall_s']} | {r['peak_rss_mb']:.0f} | "
              f"{r['bytes_written']:,} | {r.get('px_per_s', '')} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
