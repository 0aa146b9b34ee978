"""Whole-scene prediction on a GPU: the patch-by-patch loop before, the current path after.

One device-tool call measures pixels per second of ``classify`` (the current path, rsmiss's
default GPU batch and two others) against the loop it replaced (``reference_classify`` in
``tools/perf/predict_bench.py``: patches gathered per pixel, batches of 2,048), both in
bf16 autocast, on a random Houston2013-shaped scene (144 + 1 bands) with MaMOL on a
random-init ViT-B/16 at P = 14. Only the model's numbers matter here, so the scene is
random and lives on the device; no cube is read. Prints one JSON line per figure.

    python3 tools/perf/gpu/predict_gpu.py [--device cuda] [--backbone vit-b-16] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "perf"))

MODALITIES = {"hs": 144, "lidar": 1}


def main() -> None:
    import numpy as np
    import torch
    from predict_bench import reference_classify

    from rsmiss.models import build_model
    from rsmiss.training.classify import classify
    from rsmiss.training.data import Scene, pad_scene
    from rsmiss.training.loop import autocast

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--backbone", default="vit-b-16")
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--size", type=int, default=128, help="scene side in pixels")
    ap.add_argument("--batches", default="1024,2048,4096")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    precision = "bf16" if device.type == "cuda" else "32"
    p, side = args.patch_size, args.size
    rng = np.random.default_rng(0)
    padded = {
        m: torch.from_numpy(pad_scene(rng.standard_normal((c, side, side), np.float32), p)).to(
            device
        )
        for m, c in MODALITIES.items()
    }
    observed = torch.ones(len(MODALITIES), side, side, dtype=torch.bool)
    scene = Scene(tuple(MODALITIES), padded, p, side, side, observed)
    torch.manual_seed(0)
    model = build_model(
        "mamol", 15, MODALITIES, backbone=args.backbone, random_init=True, patch_size=p
    ).to(device)
    model.eval()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def best_of(fn) -> tuple[float, object]:
        fn()  # warm-up (kernels, allocator)
        times, out = [], None
        for _ in range(args.rounds):
            sync()
            t0 = time.perf_counter()
            out = fn()
            sync()
            times.append(time.perf_counter() - t0)
        return min(times), out

    def before():
        with autocast(device, precision):
            return reference_classify(model, scene, device, batch_size=2048)

    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    base = {"device": label, "backbone": args.backbone, "patch": p, "pixels": side * side,
            "precision": precision, "torch": torch.__version__}  # fmt: skip
    sec, ref_map = best_of(before)
    ref_pps = side * side / sec
    print(json.dumps({**base, "path": "before", "batch": 2048, "px_per_s": round(ref_pps)}))
    for b in [int(x) for x in args.batches.split(",")]:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sec, res = best_of(
            lambda b=b: classify(model, scene, device, precision=precision, batch_size=b)
        )
        agree = float((res.classes == ref_map).mean())
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        row = {
            **base,
            "path": "after",
            "batch": b,
            "px_per_s": round(side * side / sec),
            "speedup": round(side * side / sec / ref_pps, 2),
            "agree_with_before": round(agree, 4),
            "peak_mb": None if peak is None else round(peak),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
