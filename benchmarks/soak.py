"""Soak: train and merge in one process, round after round, for a set time; resident memory and open file
descriptors are sampled after each round and a line is fitted through them. Prints JSON.

    python benchmarks/soak.py --minutes 10 [--iterations 20] [--frames 24] [--warmup 2]

The data are the bundled clips: the first ``--frames`` frames of samples/dst.mp4 and their faces (dst),
and samples/src.mp4's faces at 6 fps (src), extracted once before the clock starts. A tiny model (64 px
DF, 16-channel layers) is trained ``--iterations`` more iterations per round by a new Trainer (as each
`facelab train` run makes one), then the frames are merged by run_merge into a fresh folder (the previous
round's is deleted), with the watermark, provenance record and C2PA signature as always.

RSS is VmRSS from /proc/self/status, fds the entries of /proc/self/fd. The slopes (MB/min, fds/min) are
least-squares fits over the rounds after ``--warmup`` (the first rounds fill caches, allocator pools
and lazily loaded models, a one-off rise). A leak shows as a slope that stays positive however long the
run; a bounded process as a slope near zero (RSS wobbles by a few MB as the allocator reuses memory).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from facelab.extract.options import ExtractOptions  # noqa: E402
from facelab.extract.pipeline import run_extract  # noqa: E402
from facelab.media.frames import extract_frames  # noqa: E402
from facelab.merge.options import MergeOptions  # noqa: E402
from facelab.merge.runner import run_merge  # noqa: E402
from facelab.train.options import TrainOptions  # noqa: E402
from facelab.train.trainer import Trainer  # noqa: E402

TINY = {"arch": "df-ud", "resolution": 64, "ae_dims": 64, "e_dims": 16, "d_dims": 16, "d_mask_dims": 8,
        "batch_size": 4, "workers": 0, "preview_every": 0, "backup_hours": 0}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def slope_per_minute(t_s: list[float], values: list[float]) -> float | None:
    """Least-squares slope of values over time, per minute (None with fewer than 3 points)."""
    if len(t_s) < 3:
        return None
    return float(np.polyfit(np.asarray(t_s) / 60.0, np.asarray(values), 1)[0])


def prepare(tmp: Path, n_frames: int) -> tuple[Path, Path, Path]:
    all_frames, frames = tmp / "all_frames", tmp / "frames"
    extract_frames(ROOT / "samples" / "dst.mp4", all_frames)
    frames.mkdir()
    for p in sorted(all_frames.glob("*.png"))[:n_frames]:
        shutil.copy2(p, frames / p.name)
    shutil.rmtree(all_frames)
    src, dst = tmp / "src", tmp / "dst"
    run_extract(ROOT / "samples" / "src.mp4", src, ExtractOptions(size=128, fps=6, workers=1))
    run_extract(frames, dst, ExtractOptions(size=128, workers=1))
    return frames, src, dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--iterations", type=int, default=20, help="training iterations per round")
    ap.add_argument("--frames", type=int, default=24, help="frames merged per round")
    ap.add_argument("--warmup", type=int, default=2, help="rounds left out of the fit")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        frames, src, dst = prepare(tmp, args.frames)
        model, opts = tmp / "model", TrainOptions.model_validate(TINY)
        samples: list[dict[str, float]] = []
        t0 = time.monotonic()
        rounds = 0
        while time.monotonic() - t0 < args.minutes * 60:
            trainer = Trainer(model, opts, src, dst, previous=opts if rounds else None)
            try:
                state = trainer.train(iterations=args.iterations)
            finally:
                trainer.close()
            del trainer
            out = tmp / "merged"
            shutil.rmtree(out, ignore_errors=True)
            summary = run_merge(model, frames, dst, out, MergeOptions(), workers=1)
            rounds += 1
            gc.collect()
            samples.append({"t_s": round(time.monotonic() - t0, 1), "round": rounds, "iteration": state.iteration,
                            "merged": summary.merged, "rss_mb": round(rss_mb(), 1), "fds": open_fds()})
        fit = samples[args.warmup:]
        t = [s["t_s"] for s in fit]
        rss_slope = slope_per_minute(t, [s["rss_mb"] for s in fit])
        fd_slope = slope_per_minute(t, [s["fds"] for s in fit])
        print(json.dumps({
            "minutes": args.minutes, "rounds": rounds, "iterations_per_round": args.iterations,
            "frames_per_round": args.frames, "warmup_rounds": args.warmup,
            "rss_mb_first": samples[0]["rss_mb"] if samples else None,
            "rss_mb_last": samples[-1]["rss_mb"] if samples else None,
            "rss_mb_max": max(s["rss_mb"] for s in samples) if samples else None,
            "fds_first": samples[0]["fds"] if samples else None, "fds_last": samples[-1]["fds"] if samples else None,
            "rss_slope_mb_per_min": None if rss_slope is None else round(rss_slope, 3),
            "fd_slope_per_min": None if fd_slope is None else round(fd_slope, 3),
            "samples": samples,
        }, indent=2))


if __name__ == "__main__":
    main()
