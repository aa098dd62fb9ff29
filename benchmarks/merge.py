"""Merge throughput against the model's bare inference rate. Prints JSON.

    python benchmarks/merge.py [--model-dir DIR | --preset quick96|saehd|demo|tiny] [--clip samples/dst.mp4]
                               [--pool thread|process]

Frames and aligned faces (whole_face, 128 px) of the clip are extracted to a temporary folder first.
Without --model-dir a model is made for the run and trained for 2 iterations on the dst faces (said so
in the JSON), of the preset's architecture and size (speed does not depend on the weights): quick96 by
default, DeepFaceLab's smallest model; ``tiny`` is a 64 px DF with 16-channel layers. The inference rate
is batched predictions only (the same outputs the merge asks for), on faces cropped beforehand: the
bound a merge cannot beat. With very small models (demo, tiny) the bound is out of reach: decoding,
compositing, watermarking and encoding a 480x480 frame cost more CPU than the model itself. Merging is
the whole run_merge: decode, crop, predict, composite, watermark, encode, write. ``frames_per_second``
counts the whole call (checks and model load included); ``loop_frames_per_second`` the frames from the
first read to the last write, which is what a long video sees (the bound excludes model load too).
"""

from __future__ import annotations

import argparse
import json
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
from facelab.faceset.folder import scan_faces  # noqa: E402
from facelab.media.frames import extract_frames, read_image_rgb  # noqa: E402
from facelab.merge.batches import BATCH_FACES, needs_dst_mask  # noqa: E402
from facelab.merge.compose import crop_face, model_transform  # noqa: E402
from facelab.merge.options import MergeOptions  # noqa: E402
from facelab.merge.runner import run_merge  # noqa: E402
from facelab.merge.session import MergeSession  # noqa: E402
from facelab.train.inference import load_swap_model  # noqa: E402


def inference_rate(model_dir: Path, frames: Path, aligned: Path, dst_mask: bool) -> tuple[float, int]:
    model = load_swap_model(model_dir)
    ft, r = model.options.face_type, model.resolution
    crops = []
    for _, rec in scan_faces(aligned).faces:
        frame = read_image_rgb(frames / f"{rec.source.frame}.png")
        crops.append(crop_face(frame, model_transform(rec, ft, r), r))
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    model.swap(x[:BATCH_FACES], dst_mask)  # warm up
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH_FACES):
        model.swap(x[i:i + BATCH_FACES], dst_mask)
    return len(x) / (time.perf_counter() - t0), len(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--clip", type=Path, default=ROOT / "samples" / "dst.mp4")
    ap.add_argument("--pool", choices=("thread", "process"), default="thread")
    ap.add_argument("--preset", choices=("quick96", "saehd", "demo", "tiny"), default="quick96")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        frames, aligned = tmp / "frames", tmp / "aligned"
        extract_frames(args.clip, frames)
        run_extract(frames, aligned, ExtractOptions(size=128, workers=2))
        model_dir = args.model_dir
        trained = model_dir is None
        if model_dir is None:
            from facelab.train.options import PRESETS, TrainOptions
            from facelab.train.trainer import Trainer

            model_dir = tmp / "model"
            shape: dict[str, object] = ({"arch": "df-ud", "resolution": 64, "ae_dims": 64, "e_dims": 16,
                                         "d_dims": 16, "d_mask_dims": 8} if args.preset == "tiny"
                                        else dict(PRESETS[args.preset]))
            opts = TrainOptions.model_validate(shape | {"batch_size": 4, "workers": 0, "preview_every": 0,
                                                        "backup_hours": 0})
            Trainer(model_dir, opts, aligned, aligned).train(iterations=2)
        runs_opts = (("overlay+rct", MergeOptions(mode="overlay", color_transfer="rct")),
                     ("seamless", MergeOptions(mode="seamless", color_transfer="rct")))
        # both use the default mask mode, which needs dst's own mask: the bound predicts it too
        dst_mask = any(needs_dst_mask(MergeSession(o)) for _, o in runs_opts)
        infer, faces = inference_rate(model_dir, frames, aligned, dst_mask)
        n_frames = len(list(frames.glob("*.png")))
        frames_with_faces = len({rec.source.frame for _, rec in scan_faces(aligned).faces})
        bound = infer * frames_with_faces / faces  # frames/s if only the model ran
        runs = []
        for name, opts_m in runs_opts:
            for workers in (1, 2):
                out = tmp / f"out_{name}_{workers}"
                s = run_merge(model_dir, frames, aligned, out, opts_m, workers=workers, pool=args.pool)
                runs.append({"options": name, "workers": workers, "frames": s.frames,
                             "frames_per_second": s.frames_per_second,
                             "share_of_inference_bound": round(s.frames_per_second / bound, 3),
                             "setup_seconds": s.setup_seconds, "schedule": s.schedule,
                             "model_threads": s.model_threads,
                             "loop_frames_per_second": s.loop_frames_per_second,
                             "loop_share_of_inference_bound": round(s.loop_frames_per_second / bound, 3)})
        print(json.dumps({
            "clip": str(args.clip), "frames": n_frames, "faces": faces, "pool": args.pool,
            "model": (f"{args.preset} model trained 2 iterations for this run" if trained
                      else str(model_dir)),
            "inference_faces_per_second": round(infer, 2), "inference_bound_frames_per_second": round(bound, 2),
            "torch_threads": torch.get_num_threads(), "merge": runs,
        }, indent=2))


if __name__ == "__main__":
    main()
