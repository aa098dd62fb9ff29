"""Extraction throughput against its limit (detector + landmarks alone on the same frames). Prints JSON.

    python benchmarks/extract.py [--clip PATH] [--workers 2] [--frames N]

Extraction runs with the default tracking (full detection every 8 frames, windowed re-detection
between) and once more with --track 1 (full detection on every frame, like the limit). The limit is
measured on frames decoded beforehand, both in one process and split over `workers`
processes (the fair bound for `facelab extract --workers N`). Extraction is the whole command:
decoding, detection, landmarks, alignment, pose, sharpness, JPEG encoding and atomic writes, journal.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.extract.options import ExtractOptions  # noqa: E402
from facelab.extract.pipeline import run_extract  # noqa: E402


def default_clip() -> Path:
    env = os.environ.get("FACELAB_TEST_DATA")
    base = Path(env) if env else ROOT.parent / "shared" / "data"
    clip = base / "clips" / "lp_d6.mp4"
    return clip if clip.exists() else ROOT / "samples" / "dst.mp4"


def _limit_worker(args: tuple[str, int, int, str, str]) -> tuple[float, int]:
    import cv2

    from facelab.face.detect import create_detector
    from facelab.face.landmarks import create_landmarker
    from facelab.media.video import iter_frames

    cv2.setNumThreads(1)
    clip, start, stop, detector, landmarks = args
    frames = [img for i, img in iter_frames(clip) if start <= i < stop]
    det, lmk = create_detector(detector), create_landmarker(landmarks)
    det.detect(frames[0])  # warm up
    t0 = time.perf_counter()
    n = 0
    for img in frames:
        for box in det.detect(img):
            lmk.landmarks(img, box)
        n += 1
    return time.perf_counter() - t0, n


def limit_fps(clip: Path, frames: int, procs: int, detector: str, landmarks: str) -> float:
    bounds = [(frames * k // procs, frames * (k + 1) // procs) for k in range(procs)]
    jobs = [(str(clip), a, b, detector, landmarks) for a, b in bounds]
    if procs == 1:
        secs, n = _limit_worker(jobs[0])
        return n / secs
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        res = pool.map(_limit_worker, jobs)
    # the processes run concurrently: throughput is all frames over the slowest one's time
    return sum(n for _, n in res) / max(s for s, _ in res)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", type=Path, default=default_clip())
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=0, help="limit to the first N frames (0: all)")
    ap.add_argument("--detector", default="dlib")
    ap.add_argument("--landmarks", default="auto")
    args = ap.parse_args()
    from facelab.media.video import probe_video

    total = probe_video(args.clip).frame_count
    frames = min(total, args.frames) if args.frames else total
    fps_fraction = 0
    if frames < total:
        fps_fraction = frames
    one = limit_fps(args.clip, frames, 1, args.detector, args.landmarks)
    many = limit_fps(args.clip, frames, args.workers, args.detector, args.landmarks)
    with tempfile.TemporaryDirectory() as tmp:
        src = args.clip
        if fps_fraction:
            # extract the same first N frames: write them to a frame folder first (not timed)
            import cv2

            from facelab.media.video import iter_frames

            src = Path(tmp) / "frames"
            src.mkdir()
            for i, img in iter_frames(args.clip):
                if i >= frames:
                    break
                cv2.imwrite(str(src / f"{i:06d}.png"), img[:, :, ::-1])
        walls = {}
        for track in (8, 1):
            opts = ExtractOptions(workers=args.workers, face_type="whole_face", size=256,
                                  detector=args.detector, landmarks=args.landmarks, track=track)
            t0 = time.perf_counter()
            summary = run_extract(src, Path(tmp) / f"aligned_{track}", opts)
            walls[track] = time.perf_counter() - t0
    extract_fps = summary.frames / walls[8]
    full_fps = summary.frames / walls[1]
    print(json.dumps({
        "clip": args.clip.name, "frames": summary.frames, "faces": summary.faces,
        "face_type": "whole_face", "size": 256, "detector": args.detector, "landmarks": args.landmarks,
        "workers": args.workers, "cpu_count": os.cpu_count(),
        "limit_fps_1_process": round(one, 2),
        f"limit_fps_{args.workers}_processes": round(many, 2),
        "extract_fps": round(extract_fps, 2),
        "extract_wall_s": round(walls[8], 2),
        "extract_fps_full_detection_every_frame": round(full_fps, 2),
        "full_detection_vs_limit_same_processes": round(full_fps / many, 3),
        "extract_vs_limit_same_processes": round(extract_fps / many, 3),
        "extract_vs_limit_1_process": round(extract_fps / one, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
