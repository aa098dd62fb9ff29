"""`facelab live` speed: end-to-end frames per second, milliseconds per stage and frame-in to frame-out
latency (median, p95), with a clip played as a live source at its own frame rate. Prints JSON.

    python benchmarks/live.py [--model DIR | --model X.dfm] [--clip CLIP] [--no-realtime]
                              [--output none|FILE.mp4] [--detect-every N] [--model-threads N] [--swap-workers N]
                              [--precision auto|fp32|bf16] [--trace fused|trace|off | --no-trace]
                              [--no-pace] [--ab-model] [--set KEY=VALUE ...]

Default clip: the shared set's lp_d18 (480x480, 30 fps; samples/dst.mp4 when the shared set is absent).
Without --model a quick96-size model (DF-UD 96 px, DeepFaceLab's Quick96 shape) is made for the run and
trained for 2 iterations on faces of samples/dst.mp4: speed does not depend on the weights (said so in the
JSON). ``--output none`` (the default) drops the frames after the merge stage, as a window would show
them (the output stage's cost is then ~0); a file name encodes them. Latency runs from the moment a frame
is due in the paced source to the moment the output stage is done with it. The JSON carries the machine's
load (`uptime`) before and after: on a shared machine the figure depends on it.

The live defaults are on unless switched off: the model folder's swap as a frozen TorchScript trace with
oneDNN fusion (``--trace``; ``--no-trace`` runs it eager; the JSON's ``model_runs`` says what ran), and the
detection stage started just in time for the model (``--no-pace``: as soon as the model took a frame). The bare
model figure (batch 1, wall and CPU ms of the calling thread: all of it with one model thread) is taken with
what the pipeline runs; ``--ab-model`` adds eager, trace and fused figures taken interleaved in this process.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from facelab.core.types import U8  # noqa: E402
from facelab.export.load import FaceSwapper, load_model  # noqa: E402
from facelab.live.capture import VideoFileSource  # noqa: E402
from facelab.live.faces import cpu_bf16, freeze_model, needs_dst_mask, predict  # noqa: E402
from facelab.live.options import LiveOptions  # noqa: E402
from facelab.live.outputs import FileSink, Sink  # noqa: E402
from facelab.live.pipeline import LivePipeline  # noqa: E402
from facelab.provenance.marker import marker_for  # noqa: E402


class NullSink:
    name = "none"
    overlay = False

    def write(self, rgb: U8, index: int) -> bool:
        return True

    def close(self) -> list[str]:
        return []


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def quick96_model(tmp: Path) -> Path:
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract
    from facelab.train.options import PRESETS, TrainOptions
    from facelab.train.trainer import Trainer

    faces = tmp / "faces"
    run_extract(ROOT / "samples" / "dst.mp4", faces, ExtractOptions(size=128, fps=3, workers=1))
    model_dir = tmp / "model"
    opts = TrainOptions.model_validate(dict(PRESETS["quick96"]) | {"batch_size": 4, "workers": 0, "preview_every": 0,
                                                                   "backup_hours": 0})
    trainer = Trainer(model_dir, opts, faces, faces)
    trainer.train(iterations=2)
    trainer.close()
    return model_dir


def bare_model_ms(model: FaceSwapper, dst_mask: bool, bf16: bool, calls: int = 20) -> tuple[float, float]:
    """Median wall and CPU milliseconds (the calling thread's) of one batch-1 model call on a random face (no
    other stage running), after 5 warm-up calls."""
    r = model.resolution
    crop = np.random.default_rng(0).integers(0, 255, (r, r, 3), dtype=np.uint8)
    wall, cpu = [], []
    for k in range(calls + 5):
        t0, c0 = time.perf_counter(), time.thread_time()
        predict(model, [crop], dst_mask, bf16)
        if k >= 5:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    return round(float(np.median(wall)) * 1000.0, 2), round(float(np.median(cpu)) * 1000.0, 2)


def model_ab(model: FaceSwapper, dst_mask: bool, bf16: bool, rounds: int = 4) -> dict[str, dict[str, float]]:
    """Bare model wall / CPU ms per face for each ``--trace`` choice, interleaved round by round (the median of
    each round's medians), so that the machine's load falls on each alike. Leaves the model eager."""
    runs: dict[str, list[tuple[float, float]]] = {"off": [], "trace": [], "fused": []}
    for _ in range(rounds):
        for how in runs:
            freeze_model(model, how, dst_mask, bf16)
            runs[how].append(bare_model_ms(model, dst_mask, bf16, calls=10))
    freeze_model(model, "off", dst_mask, bf16)
    return {how: {"wall_ms": round(float(np.median([w for w, _ in v])), 2),
                  "cpu_ms": round(float(np.median([c for _, c in v])), 2)} for how, v in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, help="a model folder or a .dfm / .onnx file")
    shared = ROOT.parent / "shared" / "data" / "clips" / "lp_d18.mp4"
    ap.add_argument("--clip", type=Path, default=shared if shared.is_file() else ROOT / "samples" / "dst.mp4")
    ap.add_argument("--no-realtime", action="store_true", help="as fast as possible instead of at the clip's rate")
    ap.add_argument("--output", default="none", help="none, or a video file to encode")
    ap.add_argument("--detect-every", type=int, default=None)
    ap.add_argument("--model-threads", type=int, default=None)
    ap.add_argument("--swap-workers", type=int, default=None)
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None)
    ap.add_argument("--trace", choices=("fused", "trace", "off"), default=None,
                    help="the model folder's swap: frozen trace with oneDNN fusion (the default), frozen trace, eager")
    ap.add_argument("--no-trace", dest="trace", action="store_const", const="off", help="the same as --trace off")
    ap.add_argument("--no-pace", action="store_true", help="start detection as soon as the model took a frame "
                    "(not just in time for the model)")
    ap.add_argument("--ab-model", action="store_true", help="also time the bare model eager, traced and fused, "
                    "interleaved")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any other live option, e.g. --set detail_transfer=0 --set skin_mask=false")
    args = ap.parse_args()
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp_str:
        made = args.model is None
        model_path = quick96_model(Path(tmp_str)) if made else args.model
        flags: dict[str, object] = {"realtime": not args.no_realtime, "stats_every": 0}
        if args.detect_every is not None:
            flags["detect_every"] = args.detect_every
        if args.precision is not None:
            flags["precision"] = args.precision
        if args.model_threads is not None:
            flags["model_threads"] = args.model_threads
        if args.swap_workers is not None:
            flags["swap_workers"] = args.swap_workers
        if args.trace is not None:
            flags["trace"] = args.trace
        if args.no_pace:
            flags["pace_detection"] = False
        for item in args.set:
            key, _, value = item.partition("=")
            flags[key.replace("-", "_")] = value
        opts = LiveOptions.model_validate(flags)
        model = load_model(model_path, "cpu", threads=opts.model_threads)
        marker = marker_for(model.model_id)
        source = VideoFileSource(args.clip, realtime=opts.realtime)
        sink: Sink = NullSink() if args.output == "none" else FileSink(Path(args.output), source.size, source.fps, opts,
                                                                       marker, args.clip)
        torch.set_num_threads(opts.model_threads)
        ab = model_ab(model, needs_dst_mask(opts.merge_options()), cpu_bf16(model, opts.precision)) \
            if args.ab_model else None
        pipeline = LivePipeline(model, source, sink, opts, marker)  # freezes the model as opts.trace says
        bare_wall, bare_cpu = bare_model_ms(model, pipeline.dst_mask, pipeline.bf16)
        load_start = load()
        s = pipeline.run()
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M"), "clip": str(args.clip), "size": list(source.size),
        "clip_fps": float(source.fps), "realtime": opts.realtime, "output": args.output,
        "model": ("quick96-size model (df-ud 96 px) trained 2 iterations for this run" if made else str(model_path)),
        "model_resolution": model.resolution, "face_type": model.face_type,
        "cpu_count": os.cpu_count(), "model_threads": opts.model_threads,
        "swap_workers": opts.swap_workers, "detect_every": opts.detect_every,
        "fps": s.fps, "frames_out": s.frames_out, "source_frames": s.source_frames, "dropped": s.dropped,
        "latency_ms_median": s.latency_ms_median, "latency_ms_p95": s.latency_ms_p95,
        "stage_ms": s.stage_ms, "stage_cpu_ms": s.stage_cpu_ms,
        "cpu_ms_per_frame": round(sum(s.stage_cpu_ms.values()), 1), "bare_model_ms_batch1": bare_wall,
        "bare_model_cpu_ms_batch1": bare_cpu, "model_ab": ab,
        "set": args.set, "precision": opts.precision, "bf16": pipeline.bf16, "trace": opts.trace,
        "pace_detection": opts.pace_detection,
        "dst_mask": pipeline.dst_mask, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "model_runs": s.model_runs,
        "detections": s.detections, "faces": s.faces,
        "target": {"fps": 20, "latency_ms_median": 120,
                   "met": s.fps >= 20 and s.latency_ms_median <= 120},
        "load_before": load_before, "load_at_start": load_start, "load_after": load(),
    }, indent=2))


if __name__ == "__main__":
    main()
