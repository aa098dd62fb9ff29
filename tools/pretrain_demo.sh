#!/usr/bin/env bash
# Rebuild or continue the demo preset's face prior (facelab/train/priors/demo-full64) from ../shared/data.
#
#   bash tools/pretrain_demo.sh [WORKSPACE] [MINUTES] [TRAIN FLAGS...]   # default: /tmp/facelab_prior, 60 minutes
#
# TRAIN FLAGS go to `facelab pretrain train` as they are: another shape of prior, e.g. the 128 px trial of
# docs/quality.md: --resolution 128 --e-dims 16 --d-dims 16 --d-mask-dims 8 (a resumed model needs them again).
#
# Gathers the faces (resumable), then trains in WORKSPACE/model for MINUTES. A new WORKSPACE/model starts
# from the shipped prior (so iterations accumulate across sessions); an existing one resumes from its own
# checkpoint. Export when it beats the shipped prior on benchmarks/quality.py:
#   facelab pretrain export --model-dir WORKSPACE/model --sources WORKSPACE/sources.json \
#       -o facelab/train/priors/demo-full64 --notes "$(cat facelab/train/priors/demo-full64/NOTES.md)"
# The clips of the quality benchmark's pairs (lp_d3, lp_d6, lp_d9, lp_d10, lp_d12, lp_d18) and lp_d9.jpg
# are left out on purpose: the benchmark measures the prior on people it never saw.
set -euo pipefail
cd "$(dirname "$0")/.."
WS=${1:-/tmp/facelab_prior}
MINUTES=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
DATA=${FACELAB_TEST_DATA:-$(cd .. && pwd)/shared/data}
FACELAB=${FACELAB:-.venv/bin/facelab}
P=$DATA/pretrain
C=$DATA/clips
mkdir -p "$WS/shared_images"
for f in "$DATA"/images/*.jpg "$DATA"/images/*.png; do
  [ "$(basename "$f")" = lp_d9.jpg ] && continue
  ln -sf "$f" "$WS/shared_images/$(basename "$f")"
done
"$FACELAB" pretrain gather -o "$WS" pretrain_images="$P/images" shared_images="$WS/shared_images" \
  "$P"/clips/fnp_video.mp4 "$P"/clips/lp_d11.mp4 "$P"/clips/lp_s13.mp4 "$P"/clips/lp_s29.mp4 \
  "$P"/clips/sadt_WDA_AlexandriaOcasioCortez_000.mp4 "$P"/clips/sadt_WDA_KatieHill_000.mp4 \
  "$C"/lp_d0.mp4 "$C"/3ddfa_obama.mp4 "$C"/fr_short_hamilton_clip.mp4
"$FACELAB" pretrain train --faces "$WS/faces" --model-dir "$WS/model" --preset demo --eyes-mouth-prio \
  --minutes "$MINUTES" "$@"
