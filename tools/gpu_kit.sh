#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what the GPU checks of docs/gpu.md carry to the device machine:
#   .whl/  wheels the device's Python 3.12 image lacks (pydantic and its parts; the rest is there)
#   .gpu/  aligned faces for training: src and dst of the bundled demo (extracted here if needed), and
#          .gpu/pretrain/ (the face-prior faces of tools/pretrain_demo.sh, when gathered)
# Both folders are git-ignored through .git/info/exclude. Prints the device command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for d in /.whl/ /.gpu/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
mkdir -p .whl
pins=$($PY -m pip show pydantic pydantic-core annotated-types typing-inspection 2>/dev/null \
       | awk '/^Name:/{n=$2} /^Version:/{print n"=="$2}')
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins
if [ ! -d .gpu/src ] || [ ! -d .gpu/dst ]; then
  ws=${WORKSPACE:-demo_workspace}
  if [ ! -d "$ws/src/aligned" ] || [ ! -d "$ws/dst/aligned" ]; then
    .venv/bin/facelab extract samples/src.mp4 -o "$ws/src/aligned" --size 256
    .venv/bin/facelab extract samples/dst.mp4 -o "$ws/dst/aligned" --size 256
  fi
  mkdir -p .gpu/src .gpu/dst
  cp "$ws"/src/aligned/*.jpg .gpu/src/ 2>/dev/null || cp "$ws"/src/aligned/*.png .gpu/src/
  cp "$ws"/dst/aligned/*.jpg .gpu/dst/ 2>/dev/null || cp "$ws"/dst/aligned/*.png .gpu/dst/
fi
# faces of many people for tools/gpu_pretrain.py (gathered by tools/pretrain_demo.sh; skipped if absent)
PRIOR_WS=${PRIOR_WS:-/tmp/facelab_prior}
if [ -f "$PRIOR_WS/sources.json" ] && [ ! -d .gpu/pretrain/faces ]; then
  mkdir -p .gpu/pretrain/faces
  cp "$PRIOR_WS"/faces/* .gpu/pretrain/faces/
  cp "$PRIOR_WS/sources.json" .gpu/pretrain/
fi
du -sh .whl .gpu
echo 'device run: command "bash tools/gpu_check.sh", carry [".whl", ".gpu"], timeout_s 540'
