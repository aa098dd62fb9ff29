"""Training-sample throughput (facelab.train.samples). Prints JSON.

    python benchmarks/samples.py [--src DIR --dst DIR] [--resolutions 96 128 256] [--workers 2]

Samples are made as in training: random flip, affine and warp, colour transfer rct of the src faces
towards random dst faces, face and eyes-mouth masks. Measured in this process (one core's worth,
OpenCV single-threaded like a loader worker) and through make_loader with ``--workers`` processes
(batches of ``--batch``, including collation and the transfer to this process).
Without --src/--dst, the bundled clips are extracted first (``--size`` px whole_face, not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from facelab.train.samples import FaceSampleDataset, FaceSet, SampleOptions, make_loader  # noqa: E402


def one_process(ds: FaceSampleDataset, seconds: float) -> float:
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for i in range(5):
            ds[i]
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ds[n % len(ds)]
            n += 1
        return n / (time.perf_counter() - t0)
    finally:
        cv2.setNumThreads(previous)


def with_loader(ds: FaceSampleDataset, workers: int, batch: int, seconds: float) -> float:
    loader = make_loader(ds, batch, workers=workers, seed=0)
    it = iter(loader)
    for _ in range(2 * workers + 1):  # start-up and the prefetch queue
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(it)
        n += batch
    rate = n / (time.perf_counter() - t0)
    del it, loader
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path)
    ap.add_argument("--dst", type=Path)
    ap.add_argument("--size", type=int, default=256, help="face size when extracting the bundled clips")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[96, 128, 256])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ct", default="rct")
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = args.src, args.dst
        if src is None or dst is None:
            from facelab.extract.options import ExtractOptions
            from facelab.extract.pipeline import run_extract

            opts = ExtractOptions(size=args.size, fps=6, workers=2)
            src, dst = Path(tmp) / "src", Path(tmp) / "dst"
            run_extract(ROOT / "samples" / "src.mp4", src, opts)
            run_extract(ROOT / "samples" / "dst.mp4", dst, opts)
        src_set, dst_set = FaceSet(src), FaceSet(dst)
        results = []
        for res in args.resolutions:
            ds = FaceSampleDataset(src_set, SampleOptions(res, "whole_face", ct_mode=args.ct, seed=0), dst_set)
            plain = FaceSampleDataset(src_set, SampleOptions(res, "whole_face", seed=0))
            results.append({
                "resolution": res,
                "samples_per_s_1_process": round(one_process(ds, args.seconds), 1),
                "samples_per_s_1_process_no_ct": round(one_process(plain, args.seconds), 1),
                f"samples_per_s_loader_{args.workers}_workers": round(
                    with_loader(ds, args.workers, args.batch, args.seconds), 1),
            })
    print(json.dumps({
        "src": str(args.src or "samples/src.mp4"), "dst": str(args.dst or "samples/dst.mp4"),
        "faces": len(src_set), "stored_face_type": src_set.face_type, "stored_size": src_set.size,
        "model_face_type": "whole_face", "augmentation": f"flip + affine + warp + ct {args.ct} + masks",
        "batch": args.batch, "cpu_count": os.cpu_count(), "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
