"""What the watermark does to a swap's look: each merged frame marked as `facelab merge` marks it, against the
same frame unmarked, for both watermark regions. Prints JSON.

    python benchmarks/watermark_look.py [--cache DIR]

Uses benchmarks/watermark.py's ``--host swap`` frames (the demo preset from the shipped prior, fine-tuned 150
iterations on the bundled pair, merged unmarked into 60 frames of each of the three dst clips; made on first
use in --cache). Per clip, over the frames with a face, on the face's bounding box resized to 224 px:
the MobileNetV2 perceptual distance (facelab.evaluate.perceptual) and SSIM of the marked face against the
unmarked one, and the face's sharpness (Laplacian variance in the merge mask) over the unmarked face's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import watermark as bench  # noqa: E402

from facelab.evaluate.metrics import ssim  # noqa: E402
from facelab.evaluate.perceptual import perceptual_distance  # noqa: E402
from facelab.face.quality import sharpness  # noqa: E402
from facelab.provenance import syncmark as sm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=Path("/tmp/facelab_wm_bench"))
    args = ap.parse_args()
    bench.prepare(args.cache, 60, list(bench.MARKED_CLIPS))
    bench.prepare_swap(args.cache, list(bench.MARKED_CLIPS))
    payload = sm.make_payload(bench.MODEL_ID)
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clips": {}}
    for name in bench.MARKED_CLIPS:
        frames, masks = bench.merged_clip(args.cache, name, "swapped")
        crops: dict[str, list[np.ndarray]] = {"none": [], "face": [], "frame": []}
        sharp: dict[str, list[float]] = {"none": [], "face": [], "frame": []}
        for i, (rgb, m) in enumerate(zip(frames, masks, strict=True)):
            if not m.any():
                continue
            variants = {"none": rgb, "face": sm.embed(rgb, payload, region=m, frame=i),
                        "frame": sm.embed(rgb, payload, frame=i, texture=True, within=m)}
            x, y, w, h = cv2.boundingRect((m > 0).astype(np.uint8))
            for key, img in variants.items():
                crops[key].append(cv2.resize(np.ascontiguousarray(img[y:y + h, x:x + w]), (224, 224),
                                             interpolation=cv2.INTER_AREA))
                sharp[key].append(sharpness(img, (m > 0).astype(np.float32)))
        res = {}
        for key in ("face", "frame"):
            res[key] = {
                "perceptual_vs_unmarked": round(float(perceptual_distance(crops["none"], crops[key]).mean()), 4),
                "ssim_vs_unmarked": round(float(np.mean([ssim(a, b) for a, b in zip(crops["none"], crops[key],
                                                                                    strict=True)])), 4),
                "sharpness_vs_unmarked": round(float(np.mean(np.array(sharp[key]) /
                                                             np.maximum(np.array(sharp["none"]), 1e-9))), 3)}
        out["clips"][name] = res
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
