"""Time one training step (forward + backward + AdamW) of every method; JSON lines out.

CPU (default): tiny backbone, batch 16, each method in its own subprocess so that peak RSS
is that method's own. GPU: `--device cuda --backbone vit-b-16 --batch-size 128` with bf16
autocast, peak memory from the CUDA allocator, MFU from FlopCounterMode, and the MaMOL
reference implementation (fp16 autocast, dense experts, dummy encoder passes) in the same
process on the same batch, reported as a ratio. Two modalities with Houston2013's channels
(HS 144 + LiDAR 1), η = 0.7 "missing both": η/2 lack HS, η/2 lack LiDAR, 1 - η complete.
Runs from the source tree (PYTHONPATH=.), needs neither open_clip nor weights.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

METHODS = ("baseline", "mamol", "mamol-reference", "mmp", "dcp", "moe_rep", "moe_ada", "moe_task")
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}
MODALITIES = {"hs": 144, "lidar": 1}


def availability(batch: int, eta: float):
    import torch

    n_missing = round(batch * eta / 2)
    available = torch.ones(batch, 2, dtype=torch.bool)
    available[:n_missing, 0] = False  # HS missing
    available[n_missing : 2 * n_missing, 1] = False  # LiDAR missing
    return available


def peak_tflops(device) -> float | None:
    import torch

    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def run_one(method: str, args: argparse.Namespace) -> dict:
    import torch

    from rsmiss.models import build_model
    from rsmiss.models.reference import ReferenceModel

    torch.manual_seed(0)
    device = torch.device(args.device)
    base = "mamol" if method == "mamol-reference" else method
    model = build_model(
        base,
        15,
        MODALITIES,
        backbone=args.backbone,
        random_init=True,
        patch_size=args.patch_size,
    ).to(device)
    model.train()
    forward = ReferenceModel(model) if method == "mamol-reference" else model
    if args.compile and method != "mamol-reference":
        forward = torch.compile(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=2e-2)
    g = torch.Generator().manual_seed(0)
    b = args.batch_size
    inputs = {
        k: torch.randn(b, c, args.patch_size, args.patch_size, generator=g).to(device)
        for k, c in MODALITIES.items()
    }
    labels = torch.randint(0, 15, (b,), generator=g).to(device)
    available = availability(b, args.eta).to(device)
    amp_dtype = None
    if device.type == "cuda":  # the reference uses fp16 autocast, the fast path bf16
        amp_dtype = torch.float16 if method == "mamol-reference" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = forward(inputs, available)
            loss = torch.nn.functional.cross_entropy(out.logits.float(), labels) + out.aux_loss
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / args.steps
    counts = model.parameter_counts()
    rec = {
        "figure": "train_step",
        "method": method,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "backbone": args.backbone,
        "batch_size": b,
        "eta": args.eta,
        "threads": torch.get_num_threads(),
        "step_s": round(dt, 5),
        "samples_per_s": round(b / dt, 2),
        "trainable_params": counts["trainable"],
        "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "fp32",
    }
    if device.type == "cuda":
        rec["peak_mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if args.flops:
            from torch.utils.flop_counter import FlopCounterMode

            counter = FlopCounterMode(display=False)
            with counter:
                step()
            flops = counter.get_total_flops()
            rec["step_tflop"] = round(flops / 1e12, 3)
            peak = args.peak_tflops or peak_tflops(device)
            if peak:
                rec["mfu"] = round(flops / dt / (peak * 1e12), 4)
    else:
        rec["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backbone", default=None, help="default: tiny on cpu, vit-b-16 on cuda")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 16 cpu, 128 cuda")
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--eta", type=float, default=0.7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--compile", action="store_true", help="torch.compile the fast models")
    ap.add_argument("--flops", action="store_true", help="count FLOPs and MFU (cuda)")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--isolate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.backbone = args.backbone or ("vit-b-16" if cuda else "tiny")
    args.batch_size = args.batch_size or (128 if cuda else 16)
    records = []
    for method in args.methods.split(","):
        if cuda or args.isolate:
            rec = run_one(method, args)
        else:  # own process per method: peak RSS is that method's own
            cmd = [sys.executable, __file__, "--isolate", "--methods", method]
            for key in ("device", "backbone", "batch_size", "patch_size", "eta", "steps", "warmup"):
                cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
            rec = json.loads(out.stdout.strip().splitlines()[-1])
        records.append(rec)
        print(json.dumps(rec, sort_keys=True), flush=True)
    by = {r["method"]: r for r in records}
    if not args.isolate and "mamol" in by:
        summary = {"figure": "ratios", "device": by["mamol"]["device"]}
        if "mamol-reference" in by:
            summary["mamol_speedup_vs_reference"] = round(
                by["mamol"]["samples_per_s"] / by["mamol-reference"]["samples_per_s"], 3
            )
        if "baseline" in by:
            summary["mamol_step_over_frozen_floor"] = round(
                by["mamol"]["step_s"] / by["baseline"]["step_s"], 3
            )
        records.append(summary)
        print(json.dumps(summary, sort_keys=True), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            for rec in records:
                f.write(json.dumps(rec, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
