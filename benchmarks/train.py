"""Training-step throughput for the presets, against the machine's measured convolution peak. Prints JSON.

    python benchmarks/train.py [--presets demo,quick96,saehd] [--precisions fp32,bf16] [--iterations 6]
                               [--src DIR --dst DIR] [--device auto]

For each preset and precision: ms per iteration, samples/s, the FLOPs of one training step (forward +
backward + discriminators, counted by torch.utils.flop_counter) and the GFLOP/s the step achieves, next
to the peak GFLOP/s of large convolutions (forward + backward) measured in the same run, and the share
of wall time spent waiting for samples (DataLoader workers as configured by the preset).

``achieved_gflops`` times the steps of a training loop, with the loader workers making samples on the
same cores meanwhile; ``achieved_gflops_step_alone`` times the same step with the workers idle, as the
peak is measured. On a 2-core CPU the two differ by the cores the sample workers take.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.train.device import autocast, resolve_device  # noqa: E402
from facelab.train.options import PRESETS, TrainOptions  # noqa: E402
from facelab.train.samples import infinite  # noqa: E402
from facelab.train.trainer import Trainer, _side  # noqa: E402


def conv_peak(device: torch.device, precision: str, seconds: float = 3.0) -> float:
    """Best GFLOP/s of forward+backward over a few large convolutions (the nets' bulk)."""
    best = 0.0
    # shapes like the nets' own: 3x3 upscale/residual convs and 5x5 stride-2 downscale convs
    for cin, cout, k, stride, res in ((256, 256, 3, 1, 32), (256, 1024, 3, 1, 16), (128, 256, 5, 2, 32),
                                      (64, 128, 5, 2, 64)):
        conv = torch.nn.Conv2d(cin, cout, k, stride, padding=k // 2).to(device).to(memory_format=torch.channels_last)
        x = torch.randn(8, cin, res, res, device=device).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)

        def run(conv: torch.nn.Module = conv, x: torch.Tensor = x) -> None:
            with autocast(device, precision):
                y = conv(x)
            y.float().sum().backward()

        with FlopCounterMode(display=False) as fc:
            run()
        flops = fc.get_total_flops()
        run()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 4:
            run()
            n += 1
        _sync(device)
        best = max(best, flops * n / (time.perf_counter() - t0) / 1e9)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def faces(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    if args.src and args.dst:
        return Path(args.src), Path(args.dst)
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract

    for side in ("src", "dst"):
        run_extract(ROOT / "samples" / f"{side}.mp4", tmp / side, ExtractOptions(size=256, fps=10))
    return tmp / "src", tmp / "dst"


def bench(preset: str, precision: str, src: Path, dst: Path, iterations: int, device: str, tmp: Path,
          batch: int | None) -> dict[str, Any]:
    values = PRESETS[preset] | {"precision": precision, "preview_every": 0, "backup_hours": 0,
                                "autosave_minutes": 1e6, "device": device}
    if batch:
        values["batch_size"] = batch
    opts = TrainOptions(**values)
    t = Trainer(tmp / f"{preset}-{precision}", opts, src, dst)
    src_it, dst_it = infinite(t.src_loader), infinite(t.dst_loader)
    s, d = _side(next(src_it), t.device), _side(next(dst_it), t.device)
    with FlopCounterMode(display=False) as fc:
        t.step(s, d)
    flops = fc.get_total_flops()
    t.step(s, d)  # warm-up
    wait = step = 0.0
    for _ in range(iterations):
        t0 = time.perf_counter()
        sb, db = next(src_it), next(dst_it)
        s, d = _side(sb, t.device), _side(db, t.device)
        t1 = time.perf_counter()
        t.step(s, d)
        _sync(t.device)
        t2 = time.perf_counter()
        wait += t1 - t0
        step += t2 - t1
    wall = wait + step
    # the step alone: the same batch again while the loader workers sit idle (their prefetch queues are
    # full), so no sample making competes for the cores
    time.sleep(1.0)
    t0 = time.perf_counter()
    for _ in range(iterations):
        t.step(s, d)
    _sync(t.device)
    alone = time.perf_counter() - t0
    return {"preset": preset, "arch": opts.arch, "resolution": opts.resolution, "batch_size": opts.batch_size,
            "precision": precision, "ms_per_iteration": round(1000 * wall / iterations, 1),
            "samples_per_s": round(opts.batch_size * iterations / wall, 2),
            "gflop_per_iteration": round(flops / 1e9, 2),
            "achieved_gflops": round(flops * iterations / step / 1e9, 1),
            "step_alone_ms": round(1000 * alone / iterations, 1),
            "achieved_gflops_step_alone": round(flops * iterations / alone / 1e9, 1),
            "sample_wait_share": round(wait / wall, 4), "loader_workers": opts.workers}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="demo,quick96,saehd")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--batch", type=int, default=0, help="override the presets' batch size")
    ap.add_argument("--src")
    ap.add_argument("--dst")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    precisions = args.precisions.split(",")
    peaks = {p: round(conv_peak(device, p), 1) for p in precisions}
    out: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "cpu_count": os.cpu_count(), "conv_peak_gflops": peaks, "runs": []}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src, dst = faces(args, tmp)
        for preset in args.presets.split(","):
            for p in precisions:
                r = bench(preset, p, src, dst, args.iterations, args.device, tmp, args.batch or None)
                r["share_of_conv_peak"] = round(r["achieved_gflops"] / peaks[p], 3)
                r["share_of_conv_peak_step_alone"] = round(r["achieved_gflops_step_alone"] / peaks[p], 3)
                out["runs"].append(r)
                print(json.dumps(r), file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
