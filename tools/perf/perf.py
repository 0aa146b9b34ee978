"""Performance harness: one JSON line per figure, on stdout and in a results file.

Figures (`--figures`, default all):
- `train`: one training step (forward + backward + AdamW) of MaMOL, two modalities with
  Houston2013's channels (HS 144 + LiDAR 1), eta = 0.7 "missing both" (eta/2 lack HS, eta/2
  lack LiDAR). Three variants in ONE process on the SAME batch and device: `mamol` (the fast
  path: skipped encoders, stacked experts, SDPA, bf16 autocast on GPU, host-side mask so the
  step never waits on the device), `reference` (rsmiss.models.reference on the same weights:
  dense experts, dummy encoder passes zeroed, written-out attention, fp16 autocast + grad
  scaler on GPU) and `floor` (the `baseline` method: frozen tower, projections + head).
  Steps are interleaved round by round (fair under a noisy, shared CPU); the figure is the
  median round. Peak memory: CUDA allocator peak, or the process's RSS high-water mark
  (VmHWM, reset per variant). FLOPs from `FlopCounterMode`; MFU on GPU against the dense
  bf16 peak of the device. `--compile` adds `mamol` and `floor` variants with their blocks
  under torch.compile, as `rsmiss train --set compile=true` runs them.
- `ingest`: `tools/perf/ingest_bench.py` (Augsburg-size synthetic scene; ingest beside the
  raw numpy -> zarr write of the same bytes) in a subprocess; skipped, with the reason, where
  zarr is absent (the GPU machine).
- `predict`: whole-scene classification throughput (pixels/s) through
  `rsmiss.training.classify.classify_scene` on a synthetic in-memory scene (no zarr needed).

Runs from the source tree (`PYTHONPATH=.`); zarr, dask, rasterio, torchgeo and xarray are never
imported on the train / predict path, only open_clip (for the tower's module) is needed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODALITIES = {"hs": 144, "lidar": 1}  # Houston2013
N_CLASSES = 15
HOUSTON_PIXELS = 349 * 1905
FIGURES = ("parity", "train", "loop", "ingest", "predict")
PARITY_TOL = {"fp32": 1e-4, "amp": 3e-2}  # relative L2 error of the logits vs the fp32 reference
# dense bf16 tensor-core peaks (no sparsity), TFLOP/s; first match on the device name wins
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4))
TARGETS = {
    "mamol_speedup_vs_reference_min": 1.4,
    "mamol_over_floor_max": 1.3,
    "mfu_min": 0.35,
    "ingest_ratio_min": 0.5,
    "ingest_peak_rss_mb_max": 2048,
}


# -- small helpers -------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _importable(name: str) -> bool:
    """Whether `import name` would work, without importing it (None in sys.modules = no)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def device_label(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAK_BF16_TFLOPS if k in name), None)


def _status_kb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak(device: Any) -> None:
    """Start a fresh high-water mark: CUDA allocator, or the process's VmHWM (Linux)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then VmHWM / ru_maxrss stay process-wide peaks


def peak_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kb = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def current_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return (_status_kb("VmRSS") or 0.0) / 1024


def availability(batch: int, eta: float):
    """eta/2 of the samples lack HS, eta/2 lack LiDAR, the rest are complete (seeded order)."""
    import torch

    n_missing = round(batch * eta / 2)
    available = torch.ones(batch, 2, dtype=torch.bool)
    available[:n_missing, 0] = False
    available[n_missing : 2 * n_missing, 1] = False
    return available[torch.randperm(batch, generator=torch.Generator().manual_seed(0))]


def autocast(device: Any, dtype: Any):
    """Autocast to `dtype`, or nothing when dtype is None (fp32)."""
    import contextlib

    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def timed(fn: Callable[[], None], n: int, device: Any) -> float:
    """Seconds per call of `fn`, n calls back to back (CUDA events on GPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / n
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


# -- figure 1-3: training steps ------------------------------------------------------------
def build(method: str, args: argparse.Namespace, device: Any):
    import torch

    from rsmiss.models import build_model

    torch.manual_seed(0)
    model = build_model(
        method,
        N_CLASSES,
        MODALITIES,
        backbone=args.backbone,
        random_init=True,
        patch_size=args.patch_size,
    ).to(device)
    return model.train()


def make_step(forward, model, batch: dict, amp, device: Any, host_mask: bool) -> Callable:
    """One training step closure: own AdamW over the model's trainable parameters."""
    import torch
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=2e-2)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    available = batch["available_host"] if host_mask else batch["available"]

    def step() -> None:
        with autocast(device, amp):
            out = forward(batch["inputs"], available)
            loss = F.cross_entropy(out.logits.float(), batch["labels"]) + out.aux_loss
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    return step


def train_figures(args: argparse.Namespace, device: Any) -> list[dict]:
    import torch

    from rsmiss.models.reference import ReferenceModel

    cuda = device.type == "cuda"
    g = torch.Generator().manual_seed(0)
    b, p = args.batch_size, args.patch_size
    avail = availability(b, args.eta)
    batch = {  # data already on the device; the mask also on the (pinned) host
        "inputs": {
            k: torch.randn(b, c, p, p, generator=g).to(device) for k, c in MODALITIES.items()
        },
        "labels": torch.randint(0, N_CLASSES, (b,), generator=g).to(device),
        "available": avail.to(device),
        "available_host": avail.pin_memory() if cuda else avail,
    }
    fast_amp = torch.bfloat16 if cuda else None
    ref_amp = torch.float16 if cuda else None
    mamol, floor = build("mamol", args, device), build("baseline", args, device)
    variants: dict[str, tuple[Callable, Any]] = {
        "mamol": (make_step(mamol, mamol, batch, fast_amp, device, True), fast_amp),
        "reference": (
            make_step(ReferenceModel(mamol), mamol, batch, ref_amp, device, False),
            ref_amp,
        ),
        "floor": (make_step(floor, floor, batch, fast_amp, device, True), fast_amp),
    }
    if cuda:  # the same fast step with the mask on the device: what the one sync costs
        variants["mamol-device-mask"] = (
            make_step(mamol, mamol, batch, fast_amp, device, False),
            fast_amp,
        )
    if args.compile:  # as `rsmiss train --set compile=true` runs it: the blocks compiled
        from rsmiss.training.loop import compiled

        for name, method in (("mamol", "mamol"), ("floor", "baseline")):
            model = compiled(build(method, args, device), "inductor")  # same seed, weights
            step = make_step(model, model, batch, fast_amp, device, True)
            variants[f"{name}+compile"] = (step, fast_amp)
    compile_s, failed = {}, []
    for name, (step, _) in list(variants.items()):
        t0 = time.perf_counter()
        try:
            for _ in range(max(1, args.warmup)):
                step()
        except Exception as exc:  # a compile failure must not cost the eager figures
            if not name.endswith("+compile"):
                raise
            del variants[name]
            failed.append({"figure": "train_step", "variant": name, "error": _one_line(exc)})
            continue
        if cuda:
            torch.cuda.synchronize(device)
        compile_s[name] = time.perf_counter() - t0
        print(f"warm-up {name}: {compile_s[name]:.1f} s", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {n: [] for n in variants}
    peaks: dict[str, float] = dict.fromkeys(variants, 0.0)
    base: dict[str, float] = {}
    for _ in range(args.rounds):  # interleaved: every variant sees the same machine state
        for name, (step, _) in variants.items():
            base.setdefault(name, current_mb(device))
            reset_peak(device)
            times[name].append(timed(step, args.steps_per_round, device))
            peaks[name] = max(peaks[name], peak_mb(device))
    label = device_label(device)
    peak = peak_tflops(label, args.peak_tflops) if cuda else args.peak_tflops
    flops: dict[str, int] = {}
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode

        for name, (step, _) in variants.items():
            if name.endswith("+compile"):
                continue  # same arithmetic as its eager variant
            counter = FlopCounterMode(display=False)
            with counter:
                step()
            flops[name] = int(counter.get_total_flops())
    records = []
    for name, (_, amp) in variants.items():
        step_s = statistics.median(times[name])
        rec = {
            "figure": "train_step",
            "variant": name,
            "device": label,
            "backbone": args.backbone,
            "batch_size": b,
            "eta": args.eta,
            "encoder_rows": int(avail.sum()) if name != "reference" else b * len(MODALITIES),
            "amp": str(amp).removeprefix("torch.") if amp else "fp32",
            "step_s": round(step_s, 6),
            "step_s_spread": [round(min(times[name]), 6), round(max(times[name]), 6)],
            "rounds": args.rounds,
            "steps_per_round": args.steps_per_round,
            "warmup_s": round(compile_s[name], 3),
            "samples_per_s": round(b / step_s, 2),
        }
        key = "peak_mem_mb" if cuda else "peak_rss_mb"
        rec[key] = round(peaks[name], 1)
        rec["mem_before_step_mb"] = round(base[name], 1)
        n_flops = flops.get(name.removesuffix("+compile"))
        if n_flops:
            rec["step_tflop"] = round(n_flops / 1e12, 4)
            rec["achieved_tflops"] = round(n_flops / step_s / 1e12, 3)
            if not cuda:
                rec["flops_note"] = "CPU SDPA kernels are not counted by FlopCounterMode"
            if peak:
                rec["peak_tflops"] = peak
                rec["mfu"] = round(n_flops / step_s / (peak * 1e12), 4)
        records.append(rec)
    by = {r["variant"]: r for r in records}
    ratios = {
        "figure": "train_ratios",
        "device": label,
        "mamol_speedup_vs_reference": round(by["reference"]["step_s"] / by["mamol"]["step_s"], 3),
        "mamol_over_floor": round(by["mamol"]["step_s"] / by["floor"]["step_s"], 3),
        "targets": {k: v for k, v in TARGETS.items() if not k.startswith("ingest")},
    }
    if "mamol-device-mask" in by:
        ratios["host_mask_speedup"] = round(
            by["mamol-device-mask"]["step_s"] / by["mamol"]["step_s"], 3
        )
    if "mamol+compile" in by and "floor+compile" in by:
        ratios["compiled_speedup_vs_reference"] = round(
            by["reference"]["step_s"] / by["mamol+compile"]["step_s"], 3
        )
        ratios["compiled_over_floor"] = round(
            by["mamol+compile"]["step_s"] / by["floor+compile"]["step_s"], 3
        )
        ratios["compile_speedup"] = round(by["mamol"]["step_s"] / by["mamol+compile"]["step_s"], 3)
    records.append(ratios)
    return records + failed


# -- the training loop itself: data path, schedule, varying batches ------------------------
def loop_figure(args: argparse.Namespace, device: Any, earlier: list[dict]) -> dict:
    """`rsmiss.training.loop.fit`, the loop `rsmiss train` runs, on an in-memory synthetic
    scene (Houston2013 channels and, on GPU, its size and training-split size; no zarr).

    Unlike `train_step` (one fixed batch), every batch has its own samples and missing
    patterns, so the encoder batch sizes vary, patches are cut from the scene on the device
    and the learning rate follows the schedule. One epoch warms up (with `--compile`:
    torch.compile as `--set compile=true` does, static then dynamic shapes), then
    `--loop-epochs` are timed. `loop_over_step` compares with this process's `train_step`
    figure of the same variant: near 1 means the loop adds nothing to the step.
    """
    import numpy as np
    import torch
    from torch._dynamo.utils import counters

    from rsmiss.training.config import RunConfig
    from rsmiss.training.data import RunData, Scene, Split, pad_scene
    from rsmiss.training.loop import TrainState, compiled, fit, param_groups

    cuda = device.type == "cuda"
    h, w = args.loop_scene
    n, p = args.loop_samples, args.patch_size
    rng = np.random.default_rng(0)
    padded = {
        m: torch.from_numpy(pad_scene(rng.standard_normal((c, h, w), np.float32), p))
        for m, c in MODALITIES.items()
    }
    observed = torch.ones(len(MODALITIES), h, w, dtype=torch.bool)
    scene = Scene(tuple(MODALITIES), padded, p, h, w, observed)
    flat = torch.from_numpy(rng.choice(h * w, size=n, replace=False))
    train = Split(
        torch.arange(n),
        flat // w,
        flat % w,
        torch.from_numpy(rng.integers(0, N_CLASSES, n)),
        availability(n, args.eta),
    )
    data = RunData(
        scene=scene,
        train=train,
        val=None,
        test=train,
        n_classes=N_CLASSES,
        class_names=[str(i) for i in range(N_CLASSES)],
        test_patterns=np.array([], dtype=str),
        attrs={},
    ).to(device)
    variant = "mamol+compile" if args.compile else "mamol"
    model = build("mamol", args, device)
    step_model = compiled(model, "inductor" if args.compile else None)
    cfg = RunConfig(
        "houston2013",
        "perf",
        "perf",
        backbone=args.backbone,
        random_init=True,
        patch_size=p,
        batch_size=args.batch_size,
        precision="bf16" if cuda else "32",
        epochs=1,
    )
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    state = TrainState()
    common = dict(
        model=model,
        train_model=step_model,
        optimizer=optimizer,
        data=data,
        device=device,
        state=state,
        progress=False,
    )
    t0 = time.perf_counter()
    fit(cfg=cfg, **common)
    if cuda:
        torch.cuda.synchronize(device)
    warmup_s = time.perf_counter() - t0
    steps_warm = state.step
    graphs_before = counters["stats"]["unique_graphs"]
    reset_peak(device)
    timed_cfg = RunConfig.from_dict({**cfg.to_dict(), "epochs": 1 + args.loop_epochs})
    perf = fit(cfg=timed_cfg, **common)  # fit's own clock; it reads the loss once per epoch
    rec = {
        "figure": "train_loop",
        "variant": variant,
        "device": device_label(device),
        "backbone": args.backbone,
        "scene": [h, w],
        "n_train": n,
        "batch_size": args.batch_size,
        "eta": args.eta,
        "epochs_timed": args.loop_epochs,
        "steps_timed": state.step - steps_warm,
        "seconds": round(perf["train_seconds"], 4),
        "samples_per_s": round(perf["train_samples_per_s"], 2),
        "warmup_s": round(warmup_s, 3),
        ("peak_mem_mb" if cuda else "peak_rss_mb"): round(peak_mb(device), 1),
    }
    if args.compile:
        rec["graphs_compiled_while_timed"] = counters["stats"]["unique_graphs"] - graphs_before
    step = next(
        (r for r in earlier if r.get("figure") == "train_step" and r.get("variant") == variant),
        None,
    )
    if step:
        rec["step_samples_per_s"] = step["samples_per_s"]
        rec["loop_over_step"] = round(rec["samples_per_s"] / step["samples_per_s"], 3)
    return rec


# -- parity: the fast path computes the reference's logits ---------------------------------
def parity_figure(args: argparse.Namespace, device: Any) -> dict:
    """Fast path (fp32, and bf16 autocast on GPU) vs the fp32 reference, same weights/inputs.

    lora_B is drawn non-zero so every expert matters; rows cover every missing pattern.
    """
    import torch

    from rsmiss.models.reference import ReferenceModel

    model = build("mamol", args, device).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(0, 0.05)
    g = torch.Generator().manual_seed(2)
    n, p = 12, args.patch_size
    avail = torch.tensor([[True, True], [True, False], [False, True]]).repeat(n // 3, 1)
    inputs = {k: torch.randn(n, c, p, p, generator=g).to(device) for k, c in MODALITIES.items()}
    cuda = device.type == "cuda"
    rec = {"figure": "parity", "device": device_label(device), "backbone": args.backbone}
    with torch.no_grad():
        ref = ReferenceModel(model)(inputs, avail.to(device)).logits.double()
        runs = {"fp32": None, "amp": torch.bfloat16 if cuda else None}
        for key, amp in runs.items():
            if key == "amp" and amp is None:
                continue
            with autocast(device, amp):
                fast = model(inputs, avail).logits.double()
            err = float((fast - ref).norm() / ref.norm())
            rec[f"rel_err_{key}"] = err if err == err else "nan"
            rec[f"tol_{key}"] = PARITY_TOL[key]
    rec["ok"] = all(
        isinstance(rec[f"rel_err_{k}"], float) and rec[f"rel_err_{k}"] <= PARITY_TOL[k]
        for k in PARITY_TOL
        if f"rel_err_{k}" in rec
    )
    return rec


# -- figure 4: ingest ----------------------------------------------------------------------
def ingest_figure(args: argparse.Namespace) -> dict:
    rec: dict[str, Any] = {"figure": "ingest", "dataset": "augsburg"}
    script = ROOT / "tools" / "perf" / "ingest_bench.py"
    if not _importable("zarr"):
        return {**rec, "skipped": "zarr is not installed here (the GPU machine has none)"}
    if not script.is_file():
        return {**rec, "skipped": f"{script.relative_to(ROOT)} is missing"}
    with tempfile.TemporaryDirectory(prefix="rsmiss-perf-") as tmp:
        out = Path(tmp) / "ingest.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        cmd = [sys.executable, str(script), "--datasets", "augsburg", "--json", str(out)]
        cmd += ["--work", str(Path(tmp) / "work")]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=args.ingest_timeout
            )
        except subprocess.TimeoutExpired:
            return {
                **rec,
                "skipped": f"ingest_bench.py ran over --ingest-timeout {args.ingest_timeout} s",
            }
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return {**rec, "skipped": f"ingest_bench.py failed: {tail[0][:200]}"}
        res = json.loads(out.read_text())["augsburg"]
    patches, raw = res["patches"], res["baseline"]
    return {
        **rec,
        "device": "cpu",
        "ingest_s": patches["wall_s"],
        "peak_rss_mb": patches["peak_rss_mb"],
        "patch_bytes": res["patch_bytes"],
        "ingest_mb_per_s": res["ingest_mb_per_s"],
        "raw_write_s": raw["write_s"],
        "raw_write_mb_per_s": raw["mb_per_s"],
        "ratio_to_raw_write": res["ratio_to_baseline"],
        "no_patches_s": res.get("no_patches", {}).get("wall_s"),
        "no_patches_peak_rss_mb": res.get("no_patches", {}).get("peak_rss_mb"),
        "targets": {k: v for k, v in TARGETS.items() if k.startswith("ingest")},
    }


# -- figure 5: whole-scene prediction ------------------------------------------------------
def predict_figure(args: argparse.Namespace, device: Any) -> dict:
    import numpy as np
    import torch

    from rsmiss.training.classify import classify_scene
    from rsmiss.training.data import Scene, pad_scene

    h, w = args.predict_size
    rng = np.random.default_rng(0)
    padded = {
        m: torch.from_numpy(
            pad_scene(rng.standard_normal((c, h, w), np.float32), args.patch_size)
        ).to(device)
        for m, c in MODALITIES.items()
    }
    observed = torch.ones(len(MODALITIES), h, w, dtype=torch.bool)
    scene = Scene(tuple(MODALITIES), padded, args.patch_size, h, w, observed)
    model = build("mamol", args, device).eval()
    precision = "bf16" if device.type == "cuda" else "32"
    warm = Scene(
        scene.modalities, scene.padded, args.patch_size, min(h, 8), w, observed[:, : min(h, 8)]
    )
    classify_scene(model, warm, device, precision=precision, batch_size=args.predict_batch)
    reset_peak(device)

    def run() -> None:
        classify_scene(model, scene, device, precision=precision, batch_size=args.predict_batch)

    secs = [timed(run, 1, device) for _ in range(args.predict_rounds)]
    sec = statistics.median(secs)
    pps = h * w / sec
    return {
        "figure": "predict",
        "device": device_label(device),
        "backbone": args.backbone,
        "scene": [h, w],
        "batch_size": args.predict_batch,
        "precision": precision,
        "seconds": round(sec, 4),
        "pixels_per_s": round(pps, 1),
        "houston2013_scene_s": round(HOUSTON_PIXELS / pps, 1),
        ("peak_mem_mb" if device.type == "cuda" else "peak_rss_mb"): round(peak_mb(device), 1),
    }


# -- driver --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--figures", default=",".join(FIGURES), help=f"subset of {FIGURES}")
    ap.add_argument(
        "--out", default=None, help="results file (default perf-results/<device>.jsonl)"
    )
    ap.add_argument("--backbone", default=None, help="default: tiny on cpu, vit-b-16 on cuda")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 16 cpu, 128 cuda")
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--eta", type=float, default=0.7)
    ap.add_argument("--warmup", type=int, default=None, help="steps per variant (2 cpu, 3 cuda)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds (5 cpu, 10 cuda)")
    ap.add_argument("--steps-per-round", type=int, default=None, help="(1 cpu, 5 cuda)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile'd variants")
    ap.add_argument("--no-flops", dest="flops", action="store_false", help="skip FLOP counting")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device dense bf16 peak")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    ap.add_argument("--predict-size", default=None, help="HxW (default 16x16 cpu, 128x128 cuda)")
    ap.add_argument("--predict-batch", type=int, default=None, help="(256 cpu, 2048 cuda)")
    ap.add_argument("--predict-rounds", type=int, default=3)
    ap.add_argument("--ingest-timeout", type=int, default=1800)
    ap.add_argument(
        "--loop-scene", default=None, help="HxW (default 349x1905 cuda: Houston2013; 32x32 cpu)"
    )
    ap.add_argument(
        "--loop-samples", type=int, default=None, help="training samples (2832 cuda, 64 cpu)"
    )
    ap.add_argument("--loop-epochs", type=int, default=2, help="timed epochs after 1 warm-up")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    figures = [f for f in args.figures.split(",") if f]
    unknown = sorted(set(figures) - set(FIGURES))
    if unknown:
        ap.error(f"--figures: unknown {unknown}; choose from {list(FIGURES)}")
    args.figures = figures
    args.backbone = args.backbone or ("vit-b-16" if cuda else "tiny")
    args.batch_size = args.batch_size or (128 if cuda else 16)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 2)
    args.rounds = args.rounds or (10 if cuda else 5)
    args.steps_per_round = args.steps_per_round or (5 if cuda else 1)
    args.predict_batch = args.predict_batch or (2048 if cuda else 256)

    def scene_size(flag: str, text: str) -> tuple[int, int]:
        try:
            h, w = (int(v) for v in text.lower().split("x"))
        except ValueError:
            h = w = 0
        if min(h, w) <= args.patch_size:
            ap.error(f"{flag} {text!r}: need HxW, both larger than the patch size")
        return h, w

    args.predict_size = scene_size(
        "--predict-size", args.predict_size or ("128x128" if cuda else "16x16")
    )
    args.loop_scene = scene_size(
        "--loop-scene", args.loop_scene or ("349x1905" if cuda else "32x32")
    )
    args.loop_samples = args.loop_samples or (2832 if cuda else 64)
    if not 0 < args.loop_samples <= args.loop_scene[0] * args.loop_scene[1]:
        ap.error("--loop-samples: between 1 and the scene's pixel count")
    if args.loop_epochs < 1:
        ap.error("--loop-epochs: at least 1")
    args.out = Path(args.out or f"perf-results/{args.device.replace(':', '-')}.jsonl")
    return args


def run(args: argparse.Namespace, emit: Callable[[dict], None]) -> list[dict]:
    import torch

    device = torch.device(args.device)
    if device.type == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    common = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    records = []
    for figure in args.figures:
        try:
            if figure == "parity":
                recs = [parity_figure(args, device)]
            elif figure == "train":
                recs = train_figures(args, device)
            elif figure == "loop":
                recs = [loop_figure(args, device, records)]
            elif figure == "ingest":
                recs = [ingest_figure(args)]
            else:
                recs = [predict_figure(args, device)]
        except Exception as exc:  # one broken figure must not cost the others (one GPU call)
            recs = [{"figure": figure, "device": str(device), "error": _one_line(exc)}]
        for rec in recs:
            rec = {**rec, **common}
            records.append(rec)
            emit(rec)
    return records


def main(argv: list[str] | None = None) -> int:
    """Print each record as it comes and rewrite the results file (atomically) each time,
    so a run stopped by a time limit keeps the figures it finished."""
    from rsmiss.workspace import write_text_atomic

    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done: list[dict] = []

    def emit(rec: dict) -> None:
        done.append(rec)
        print(json.dumps(rec, sort_keys=True), flush=True)
        write_text_atomic(args.out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in done))

    records = run(args, emit)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
