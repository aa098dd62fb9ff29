"""Bit-identity check for refactors of the merge: merge one frame folder with one fixed model under a set
of option combinations that exercise every mask mode side, merge mode and face stage, and print the
SHA-256 of each output folder (JSON). Run it before and after a change on the same inputs; the digests
must be equal.

    python tools/merge_digests.py --model-dir MODEL --frames FRAMES --aligned ALIGNED -o OUT > digests.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.merge.options import MergeOptions  # noqa: E402
from facelab.merge.runner import run_merge  # noqa: E402

OPTION_SETS: dict[str, dict[str, object]] = {
    "default": {},
    "seamless_mkl": {"mode": "seamless-hist-match", "color_transfer": "mkl"},
    "dstmask_scale": {"mask_mode": "dst", "face_scale": 5, "erode": 3, "blur": 10, "color_transfer": "lct"},
    "union_sharpen": {"mask_mode": "learned-prd+learned-dst", "sharpen_mode": "unsharp", "sharpen_amount": 40,
                      "motion_blur": 50, "denoise": 2, "bicubic_degrade": 20, "color_degrade": 10,
                      "color_transfer": "idt-m"},
    "hist_sot": {"mode": "hist-match", "color_transfer": "sot-m", "mask_mode": "learned-dst"},
    "raw_rgb": {"mode": "raw-rgb"},
    "raw_predict": {"mode": "raw-predict", "color_transfer": "mix-m"},
    "full_mklm": {"mask_mode": "full", "color_transfer": "mkl-m", "sharpen_mode": "box", "sharpen_amount": 30},
}


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--frames", type=Path, required=True)
    ap.add_argument("--aligned", type=Path, required=True)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    digests = {}
    for name, kw in OPTION_SETS.items():
        out = args.out / name
        run_merge(args.model_dir, args.frames, args.aligned, out, MergeOptions(**kw),  # type: ignore[arg-type]
                  workers=args.workers, provenance=False)
        digests[name] = folder_digest(out)
    print(json.dumps(digests, indent=1))


if __name__ == "__main__":
    main()
