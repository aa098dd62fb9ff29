#!/usr/bin/env bash
# The GPU checks, run on the device machine from the repository root (docs/gpu.md); results land in $OUT.
# Needs the folders tools/gpu_kit.sh prepares (.whl, .gpu), carried along.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"
python3 -c "import torch, pydantic; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'pydantic', pydantic.__version__)"
# 1. correctness: fp32, bf16 and fp16 (loss scaling) train, losses fall, resume is bit-identical, DDP (nccl)
timeout 200 python3 tools/gpu_smoke.py --src .gpu/src --dst .gpu/dst --device cuda --iterations 40 \
  > "$OUT/smoke.json" 2> "$OUT/smoke.err"; echo "smoke exit $?"; cat "$OUT/smoke.json"
# 2. speed: the training benchmark of issue 3 on the GPU (peak, ms/iteration, GFLOP/s, sample wait)
timeout 280 python3 benchmarks/train.py --device cuda --src .gpu/src --dst .gpu/dst --precisions fp32,bf16 \
  --iterations 20 > "$OUT/train_cuda.json" 2> "$OUT/train_cuda.err"; echo "train benchmark exit $?"
cat "$OUT/train_cuda.json"
tail -5 "$OUT/smoke.err" "$OUT/train_cuda.err"
