#!/usr/bin/env bash
# Wheels that `make perf-gpu` needs and the GPU machine lacks (see docs/performance.md):
# open_clip_torch (our version) and ftfy + wcwidth (open_clip imports ftfy at import time).
# Its other requirements (torch, torchvision, regex, tqdm, huggingface-hub, safetensors,
# timm) are in the machine's image. Python 3.12, manylinux x86_64; --no-deps, one version of
# each. Run here (any cwd): bash tools/perf/gpu/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
OPEN_CLIP_VERSION=${OPEN_CLIP_VERSION:-$(.venv/bin/python -c \
  'import open_clip; print(open_clip.__version__)' 2>/dev/null || echo 3.3.0)}
PINS=("open_clip_torch==$OPEN_CLIP_VERSION" "ftfy==6.3.1" "wcwidth==0.9.4")
rm -rf .whl
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl "${PINS[@]}"
echo "requirements of the carried wheels (all others must be on the GPU machine):"
for w in .whl/*.whl; do
  unzip -p "$w" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' || true
done | sort -u
ls -l .whl
kib=$(du -sk .whl | cut -f1)
echo ".whl: ${kib} KiB (limit 64 MiB per call, with the working tree)"
[ "$kib" -lt $((64 * 1024)) ] || { echo "error: .whl is over 64 MiB" >&2; exit 1; }
