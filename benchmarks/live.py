"""`facelab live` speed: end-to-end frames per second, milliseconds per stage and frame-in to frame-out
latency (median, p95), with a clip played as a live source at its own frame rate. Prints JSON.

    python benchmarks/live.py [--model DIR | --model X.dfm] [--clip CLIP] [--no-realtime]
                              [--output none|FILE.mp4] [--detect-every N] [--model-threads N]
                              [--precision auto|fp32|bf16] [--set KEY=VALUE ...]

Default clip: the shared set's lp_d18 (480x480, 30 fps; samples/dst.mp4 when the shared set is absent).
Without --model a quick96-size model (DF-UD 96 px, DeepFaceLab's Quick96 shape) is made for the run and
trained for 2 iterations on faces of samples/dst.mp4: speed does not depend on the weights (said so in the
JSON). ``--output none`` (the default) drops the frames after the merge stage, as a window would show
them (the output stage's cost is then ~0); a file name encodes them. Latency runs from the moment a frame
is due in the paced source to the moment the output stage is done with it. The JSON carries the machine's
load (`uptime`) before and after: on a shared machine the figure depends on it.
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
from facelab.live.faces import cpu_bf16, needs_dst_mask, predict  # noqa: E402
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


def bare_model_ms(model: FaceSwapper, threads: int, dst_mask: bool, bf16: bool) -> float:
    """Median milliseconds of one batch-1 model call on a random face (no other stage running)."""
    torch.set_num_threads(threads)
    r = model.resolution
    crop = np.random.default_rng(0).integers(0, 255, (r, r, 3), dtype=np.uint8)
    times = []
    for k in range(25):
        t0 = time.perf_counter()
        predict(model, [crop], dst_mask, bf16)
        if k >= 5:
            times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1000.0, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, help="a model folder or a .dfm / .onnx file")
    shared = ROOT.parent / "shared" / "data" / "clips" / "lp_d18.mp4"
    ap.add_argument("--clip", type=Path, default=shared if shared.is_file() else ROOT / "samples" / "dst.mp4")
    ap.add_argument("--no-realtime", action="store_true", help="as fast as possible instead of at the clip's rate")
    ap.add_argument("--output", default="none", help="none, or a video file to encode")
    ap.add_argument("--detect-every", type=int, default=None)
    ap.add_argument("--model-threads", type=int, default=None)
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None)
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
        for item in args.set:
            key, _, value = item.partition("=")
            flags[key.replace("-", "_")] = value
        opts = LiveOptions.model_validate(flags)
        model = load_model(model_path, "cpu", threads=opts.model_threads)
        marker = marker_for(model.model_id)
        source = VideoFileSource(args.clip, realtime=opts.realtime)
        dst_mask = needs_dst_mask(opts.merge_options())
        bare = bare_model_ms(model, opts.model_threads, dst_mask, cpu_bf16(model, opts.precision))
        sink: Sink = NullSink() if args.output == "none" else FileSink(Path(args.output), source.size, source.fps, opts,
                                                                       marker, args.clip)
        load_start = load()
        s = LivePipeline(model, source, sink, opts, marker).run()
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M"), "clip": str(args.clip), "size": list(source.size),
        "clip_fps": float(source.fps), "realtime": opts.realtime, "output": args.output,
        "model": ("quick96-size model (df-ud 96 px) trained 2 iterations for this run" if made else str(model_path)),
        "model_resolution": model.resolution, "face_type": model.face_type,
        "cpu_count": os.cpu_count(), "model_threads": opts.model_threads, "detect_every": opts.detect_every,
        "fps": s.fps, "frames_out": s.frames_out, "source_frames": s.source_frames, "dropped": s.dropped,
        "latency_ms_median": s.latency_ms_median, "latency_ms_p95": s.latency_ms_p95,
        "stage_ms": s.stage_ms, "stage_cpu_ms": s.stage_cpu_ms,
        "cpu_ms_per_frame": round(sum(s.stage_cpu_ms.values()), 1), "bare_model_ms_batch1": bare,
        "set": args.set, "precision": opts.precision, "bf16": cpu_bf16(model, opts.precision),
        "detections": s.detections, "faces": s.faces,
        "target": {"fps": 20, "latency_ms_median": 120,
                   "met": s.fps >= 20 and s.latency_ms_median <= 120},
        "load_before": load_before, "load_at_start": load_start, "load_after": load(),
    }, indent=2))


if __name__ == "__main__":
    main()
