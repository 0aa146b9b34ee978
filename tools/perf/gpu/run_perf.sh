#!/usr/bin/env bash
# The ONE device-tool call for the GPU figures (docs/performance.md):
#   run(command="bash tools/perf/gpu/run_perf.sh", carry=[".whl"], timeout_s=520)
# after `bash tools/perf/gpu/fetch_wheels.sh` here. Installs the carried wheels into
# /tmp/site, runs the harness from the source tree (no make install) twice under a time
# budget: eager (parity, train, loop, predict; ingest is skipped: no zarr there) and with
# torch.compile (train, then the loop as `--set compile=true` runs it). Each figure is
# written as soon as it is done, so a time limit costs only the unfinished ones. Results
# and logs go to $OUT (perf-results/ when run by hand).
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-perf-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
EAGER_S=${PERF_EAGER_S:-120}
COMPILE_S=${PERF_COMPILE_S:-360}
DEVICE=${PERF_DEVICE:-cuda}  # PERF_DEVICE=cpu PERF_EXTRA="--backbone tiny ...": a dry run here
read -r -a EXTRA <<<"${PERF_EXTRA:-}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "error: wheel install failed" >&2; exit 3; }
fi
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv 2>&1
  python3 -c 'import sys, torch, open_clip
print(sys.version.split()[0], torch.__version__, "open_clip", open_clip.__version__,
      torch.cuda.get_device_name(), torch.backends.cuda.flash_sdp_enabled())'
} 2>&1 | tee "$OUT/env.txt"
rc=0
timeout "$EAGER_S" python3 tools/perf/perf.py --device "$DEVICE" "${EXTRA[@]}" \
  --out "$OUT/perf-$DEVICE.jsonl" 2>&1 | tee "$OUT/perf-eager.log" || rc=$?
timeout "$COMPILE_S" python3 tools/perf/perf.py --device "$DEVICE" "${EXTRA[@]}" --figures train,loop \
  --compile --out "$OUT/perf-$DEVICE-compile.jsonl" 2>&1 | tee "$OUT/perf-compile.log" || rc=$?
echo "== summary"
cat "$OUT"/perf-"$DEVICE"*.jsonl 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    keys = ("figure", "variant", "step_s", "samples_per_s", "peak_mem_mb", "mfu", "pixels_per_s",
            "mamol_speedup_vs_reference", "mamol_over_floor", "compiled_speedup_vs_reference",
            "compiled_over_floor", "rel_err_fp32", "rel_err_amp", "ok", "skipped", "error",
            "warmup_s", "loop_over_step", "steps_timed", "graphs_compiled_while_timed")
    print({k: r[k] for k in keys if k in r})'
exit $rc
