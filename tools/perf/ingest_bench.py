"""Ingest performance on full-size synthetic scenes, next to plain numpy -> zarr writes.

For each dataset (default: Augsburg, 332 x 485, 180+4+1 bands, 78,294 patches; and
Houston 2013, 349 x 1905, 144+1 bands, 15,029 patches) this runs ``rsmiss ingest`` twice in
a fresh process — with patches and with ``--no-patches`` — and records wall time, the
process's peak RSS (``wait4``) and the bytes on disk. The baseline writes the same patch
bytes (same chunks, same codec) from numpy arrays already in memory into a zarr array,
timing only the writes: the ratio says how close ingest gets to the storage layer's speed.

    .venv/bin/python tools/perf/ingest_bench.py [--work DIR] [--datasets augsburg ...]

Heavy (several GB written): run it alone. Results go to stdout and ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total


def run_ingest(dataset: str, raw: Path, root: Path, patches: bool) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "rsmiss.cli",
        "ingest",
        dataset,
        "--raw",
        str(raw),
        "--root",
        str(root),
        "--force",
        "--no-progress",
    ]
    if not patches:
        cmd.append("--no-patches")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"ingest failed ({status}): {err}")
    cube = root / "cubes" / f"{dataset}.zarr"
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "bytes_on_disk": du(cube),
    }


def patch_bytes(cube: Path) -> int:
    from rsmiss.cube import open_cube

    ds = open_cube(cube)
    return int(sum(ds[m].nbytes for m in ds.attrs["modalities"]))


def numpy_to_zarr_baseline(cube: Path, out: Path) -> dict:
    """Write the cube's own patches, held in memory chunk by chunk, into a fresh zarr array."""
    import zarr

    from rsmiss.ingest.patches import cut_patches, sample_chunks
    from rsmiss.ingest.store import compressors, patch_chunk, patch_dtype

    g = zarr.open_group(str(cube), mode="r")
    names = list(g.attrs["modalities"])
    p = int(g.attrs["patch_size"])
    rows, cols = g["row"][:], g["col"][:]
    n = rows.size
    bands = [g[f"scene_{m}"].shape[0] for m in names]
    dtypes = {m: patch_dtype(g.attrs[f"kind_{m}"]) for m in names}
    chunk = patch_chunk(bands, p, [g.attrs[f"kind_{m}"] for m in names])
    scenes = {m: g[f"scene_{m}"][:] for m in names}
    dst = zarr.open_group(str(out), mode="w", zarr_format=3)
    arrays = {
        m: dst.create_array(
            m,
            shape=(n, c, p, p),
            chunks=(chunk, c, p, p),
            dtype=dtypes[m],
            compressors=compressors(),
        )
        for m, c in zip(names, bands, strict=True)
    }
    written, spent = 0, 0.0
    for s0, s1 in sample_chunks(n, chunk):
        blocks = {
            m: cut_patches(scenes[m], rows[s0:s1], cols[s0:s1], p, dtypes[m]) for m in names
        }  # untimed: the baseline only writes
        t0 = time.perf_counter()
        for m in names:
            arrays[m][s0:s1] = blocks[m]
        spent += time.perf_counter() - t0
        written += sum(b.nbytes for b in blocks.values())
    del scenes
    return {
        "write_s": round(spent, 2),
        "bytes": written,
        "bytes_on_disk": du(out),
        "mb_per_s": round(written / spent / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--datasets", nargs="+", default=["augsburg", "houston2013"])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rsmiss-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        from rsmiss.synth import synthesize

        for ds in args.datasets:
            raw = work / "raw" / ds
            if not (raw / "SYNTHETIC").exists():
                synthesize(ds, raw, seed=0)
            res = {"no_patches": run_ingest(ds, raw, work / "nop", patches=False)}
            shutil.rmtree(work / "nop", ignore_errors=True)
            res["patches"] = run_ingest(ds, raw, work / "pat", patches=True)
            cube = work / "pat" / "cubes" / f"{ds}.zarr"
            res["patch_bytes"] = patch_bytes(cube)
            res["baseline"] = numpy_to_zarr_baseline(cube, work / "baseline.zarr")
            shutil.rmtree(work / "baseline.zarr", ignore_errors=True)
            shutil.rmtree(work / "pat", ignore_errors=True)
            ingest_rate = res["patch_bytes"] / res["patches"]["wall_s"] / 2**20
            res["ingest_mb_per_s"] = round(ingest_rate, 1)
            res["ratio_to_baseline"] = round(ingest_rate / res["baseline"]["mb_per_s"], 2)
            results[ds] = res
            print(json.dumps({ds: res}, indent=2), flush=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
