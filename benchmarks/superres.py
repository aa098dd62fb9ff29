"""Super-resolution speed and memory: Real-ESRGAN x4plus (ncnn, CPU) per 64/128/256 px face. Prints JSON.

    python benchmarks/superres.py [--sizes 64 128 256] [--threads 1 2] [--repeats 3]

Each (size, threads) runs in a fresh process so its peak resident memory (model included) is its own.
The face is a real one: the first frame of samples/dst.mp4, cropped around the face and area-resized.
128 px is also the cost merge --super-resolution adds per face for a 128 px model. Timings on a shared
machine move with its load: the JSON carries the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _face(size: int) -> object:
    import cv2
    import numpy as np

    from facelab.media.video import iter_frames

    rgb = next(img for _, img in iter_frames(ROOT / "samples" / "dst.mp4"))
    h, w = rgb.shape[:2]
    side = min(h, w) * 3 // 4
    y0, x0 = (h - side) // 3, (w - side) // 2
    crop = np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side, ::-1])
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def one(size: int, threads: int, repeats: int) -> dict[str, object]:
    from facelab.face.superres import SuperResolver, _spans

    face = _face(size)
    t0 = time.perf_counter()
    sr = SuperResolver(threads=threads)
    load_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sr.enhance(face)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
    return {"size": size, "threads": threads, "tile": sr.tile, "overlap": sr.overlap,
            "blocks": len(_spans(size, sr.tile, sr.overlap)) ** 2, "load_s": round(load_s, 2),
            "seconds_per_face": [round(x, 2) for x in times], "median_s": round(statistics.median(times), 2),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", type=int, nargs=2, metavar=("SIZE", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.repeats)))
        return
    load_before = os.getloadavg()
    runs = []
    for threads in args.threads:
        for size in args.sizes:
            out = subprocess.run([sys.executable, __file__, "--one", str(size), str(threads), "--repeats",
                                  str(args.repeats)], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "superres", "model": "realesrgan-x4plus (ncnn, CPU)", "task": "enhance: x4 "
                      "then area downscale to the face's size", "cpu_count": os.cpu_count(),
                      "loadavg_before": [round(x, 2) for x in load_before],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()], "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
