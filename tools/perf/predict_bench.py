"""Whole-scene prediction throughput: the patch-by-patch loop before, the current path after.

Both classify the same synthetic scene (``rsmiss synth houston2013``, 144 + 1 bands,
ingested with ``--no-patches`` at P = 7) with the same model (MaMOL on the tiny random
backbone), alternating rounds in one process so that a busy machine slows both alike; the
best round of each is reported, with the agreement of their maps.

``reference_classify`` is the loop ``rsmiss.training.predict.classify_scene`` ran before
(patches gathered from the padded scene and tokenized one patch at a time, batches of
2,048 under ``torch.no_grad``), kept here verbatim as the "before".

    .venv/bin/python tools/perf/predict_bench.py [--scale 0.1] [--rounds 3] [--json PATH]
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
import torch


@torch.no_grad()
def reference_classify(model, scene, device, batch_size: int = 2048) -> np.ndarray:
    """The loop before: every patch tokenized on its own, batches of 2,048 pixels."""
    model.eval()
    h, w, m = scene.height, scene.width, len(scene.modalities)
    observed = scene.observed.reshape(m, -1)
    todo = observed.any(0).nonzero().view(-1)
    preds = []
    for start in range(0, len(todo), batch_size):
        flat_host = todo[start : start + batch_size]
        flat = flat_host.to(device, non_blocking=True)
        avail = observed[:, flat_host].T.contiguous()
        out = model(scene.patches(flat // w, flat % w, device), avail)
        preds.append(out.logits.argmax(dim=1))
    classes = torch.full((h * w,), -1, dtype=torch.long)
    if preds:
        classes[todo] = torch.cat(preds).cpu()
    return classes.reshape(h, w).numpy()


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "rsmiss.cli", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def synthetic_scene(work: Path, scale: float, patch: int):
    """A synthetic Houston 2013 scene, ingested, read back as the run's ``Scene``."""
    from rsmiss.cube import open_cube
    from rsmiss.training.data import load_scene

    raw = work / "raw" / "houston2013"
    _cli("synth", "houston2013", "--out", str(raw), "--scale", str(scale))
    _cli(
        "ingest", "houston2013", "--root", str(work), "--raw", str(raw),
        "--patch-size", str(patch), "--no-patches", "--no-progress",
    )  # fmt: skip
    ds = open_cube(work / "cubes" / "houston2013.zarr")
    mods = tuple(str(m) for m in ds["modality"].values)
    return load_scene(ds, mods, patch, torch.device("cpu"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--scale", type=float, default=0.1, help="synthetic scene scale (0.1: 34 x 190)"
    )
    ap.add_argument("--patch-size", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None, help="new path (default: its own)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from rsmiss.models import build_model
    from rsmiss.training.classify import classify_scene, default_batch

    device = torch.device("cpu")
    bs = args.batch_size or default_batch(device)
    with tempfile.TemporaryDirectory() as tmp:
        scene = synthetic_scene(Path(tmp), args.scale, args.patch_size)
    torch.manual_seed(0)
    model = build_model(
        "mamol", 15, scene.channels, backbone="tiny", random_init=True,
        patch_size=args.patch_size,
    ).eval()  # fmt: skip
    n = scene.height * scene.width
    best = {"before": float("inf"), "after": float("inf")}
    cpu = dict(best)  # CPU seconds of the process: less sensitive to other jobs on the box
    maps = {}
    for _ in range(args.rounds):
        for name in ("before", "after"):
            t0, c0 = time.perf_counter(), time.process_time()
            if name == "before":
                maps[name] = reference_classify(model, scene, device)
            else:
                maps[name] = classify_scene(model, scene, device, batch_size=bs)
            best[name] = min(best[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], time.process_time() - c0)
    result = {
        "scene": [scene.height, scene.width],
        "channels": scene.channels,
        "patch_size": args.patch_size,
        "threads": torch.get_num_threads(),
        "batch_size": {"before": 2048, "after": bs},
        "px_per_s": {k: round(n / v, 1) for k, v in best.items()},
        "speedup": round(best["before"] / best["after"], 2),
        "px_per_cpu_s": {k: round(n / v, 1) for k, v in cpu.items()},
        "cpu_speedup": round(cpu["before"] / cpu["after"], 2),
        "agreement": float((maps["before"] == maps["after"]).mean()),
    }
    print(
        f"scene {scene.height} x {scene.width}, P={args.patch_size}, "
        f"{torch.get_num_threads()} threads: before {result['px_per_s']['before']:.0f} px/s, "
        f"after {result['px_per_s']['after']:.0f} px/s ({result['speedup']}x); per CPU second "
        f"{result['px_per_cpu_s']['before']:.0f} -> {result['px_per_cpu_s']['after']:.0f} px "
        f"({result['cpu_speedup']}x); maps agree on "
        f"{100 * result['agreement']:.3f} % of pixels"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
