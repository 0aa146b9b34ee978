"""Scene-scale ingest and prediction: wall time, peak memory and bytes as the scene grows.

For each side N (default 2048, 4096, 8192) this writes a user dataset of GeoTIFFs: 144-band
hyperspectral on a 1 m UTM grid (EPSG:32632), a LiDAR DSM in lat/lon (EPSG:4326, another
CRS and resolution, warped onto the HS grid by ingest) and a sparse label raster. Each is
ingested with ``--no-patches`` in a fresh process; a tiny MaMOL run is trained (one epoch)
on the first; then ``rsmiss predict`` maps a 512 x 512 window of every scene and, with
``--full``, the whole first scene. Every step is a child process measured with ``wait4``:
wall seconds, peak RSS, bytes written, pixels per second. The table shows whether memory
stays flat as N grows (it should: ingest streams row blocks, predict streams tiles).

    .venv/bin/python tools/perf/scale_bench.py [--sizes 2048 4096] [--mosaic] [--full] [--work DIR]

The HS raster is uint16, as the CASI delivers it. Disk: about 6 bytes x 144 x N² per scene
(2 for the raw, 4 for the cube's float32 scene), e.g. 14.5 GB at N = 4096 and 58 GB at
N = 8192; ``--mosaic`` writes scenes over 2048² as a VRT repeating one 2048² GeoTIFF, so only
the cube takes space (39 GB at 8192²) while ingest still reads, warps and writes every pixel.
Check ``df -h`` first. Results go to stdout and ``--json PATH``.
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
MOSAIC_TILE = 2048


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


def write_dataset(raw: Path, n: int, name: str, mosaic: bool = False) -> Path:
    """hs.tif (N x N x 144, UTM), dsm.tif (lat/lon, N/2 x N/2), labels.tif; the user YAML."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=128):  # this script stays small; the measured steps
        return _write_dataset(raw, n, name, mosaic)  # run with GDAL's defaults


def _write_hs(path: Path, n: int, spectra, rng, transform, geo: dict) -> None:
    """An N x N x 144 uint16 GeoTIFF (the CASI's own data type): three region spectra + noise."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path, "w", height=n, width=n, count=BANDS, dtype="uint16",
                       crs="EPSG:32632", transform=transform, **geo) as dst:  # fmt: skip
        for r in range(0, n, BLOCK_ROWS):
            h = min(BLOCK_ROWS, n - r)
            yy, xx = np.mgrid[r : r + h, 0:n].astype(np.float32)
            region = ((np.sin(xx / 97) + np.cos(yy / 71)) > 0).astype(np.int64) + (xx > n / 2)
            block = spectra[region].transpose(2, 0, 1)
            block += rng.standard_normal(block.shape, dtype=np.float32) * 20
            dst.write(
                np.clip(np.rint(block), 0, 65535).astype(np.uint16), window=Window(0, r, n, h)
            )


def _write_mosaic(path: Path, tile: Path, n: int, transform) -> None:
    """A GDAL VRT of N x N pixels that repeats ``tile`` (MOSAIC_TILE square) k x k times, so
    an 8k² scene needs the disk of its cube only, not a second 38 GB copy of the raw."""
    k = n // MOSAIC_TILE
    src = tile.name
    gt = ", ".join(repr(v) for v in transform.to_gdal())
    bands = []
    for b in range(1, BANDS + 1):
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="1">../{src}</SourceFilename>'
            f"<SourceBand>{b}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{MOSAIC_TILE}" ySize="{MOSAIC_TILE}"/>'
            f'<DstRect xOff="{j * MOSAIC_TILE}" yOff="{i * MOSAIC_TILE}" '
            f'xSize="{MOSAIC_TILE}" ySize="{MOSAIC_TILE}"/></SimpleSource>'
            for i in range(k)
            for j in range(k)
        )
        bands.append(f'<VRTRasterBand dataType="UInt16" band="{b}">{sources}</VRTRasterBand>')
    from rasterio.crs import CRS

    wkt = CRS.from_epsg(32632).to_wkt()
    path.write_text(
        f'<VRTDataset rasterXSize="{n}" rasterYSize="{n}"><SRS>{wkt}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>\n"
    )


def _write_dataset(raw: Path, n: int, name: str, mosaic: bool) -> Path:
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
    hs_file = "hs.tif"
    if mosaic and n > MOSAIC_TILE:
        hs_file = "hs.vrt"
        tile = raw.parent / f"_hs_tile_{MOSAIC_TILE}.tif"
        if not tile.is_file():
            _write_hs(tile, MOSAIC_TILE, spectra, rng, hs_t, geo)
        _write_mosaic(raw / hs_file, tile, n, hs_t)
    else:
        _write_hs(raw / hs_file, n, spectra, rng, hs_t, geo)
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
            {"name": "hs", "bands": BANDS, "source": {"file": hs_file, "format": "geotiff"}},
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
    ap.add_argument(
        "--mosaic",
        action="store_true",
        help=f"HS of scenes over {MOSAIC_TILE}² as a VRT repeating one {MOSAIC_TILE}² GeoTIFF "
        "(disk: the cube only; ingest still reads, warps and writes every pixel)",
    )
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
            yml = write_dataset(raw, n, name, args.mosaic)
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
