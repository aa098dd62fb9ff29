"""Pretrain face priors on a lent GPU (docs/gpu.md): each preset for a few minutes on the gathered faces,
continuing the shipped prior of its shape where there is one, then exported to OUT/priors/PRESET.

    python3 tools/gpu_pretrain.py --faces .gpu/pretrain/faces --sources .gpu/pretrain/sources.json
        [--presets demo,quick96,saehd] [--minutes 3] [--device cuda] [--out $OUT]

Imports only the training side of facelab (the device image has no dlib, av or typer). Prints one JSON
object: per preset, iterations, samples/s, the last losses and the exported prior's size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.train.options import PRESETS, TrainOptions  # noqa: E402
from facelab.train.prior import SourceNote, export_prior, origin_prior  # noqa: E402
from facelab.train.trainer import Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=Path, required=True)
    ap.add_argument("--sources", type=Path, required=True)
    ap.add_argument("--presets", default="demo,quick96,saehd")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu_out")))
    args = ap.parse_args()
    notes = [SourceNote(**s) for s in json.loads(args.sources.read_text())["sources"]]
    report: dict[str, object] = {"device": args.device, "minutes": args.minutes}
    for preset in args.presets.split(","):
        opts = TrainOptions.model_validate({**PRESETS[preset], "pretrain": True, "eyes_mouth_prio": True,
                                            "random_hsv_power": 0.05, "device": args.device,
                                            "workers": args.workers, "backup_hours": 0, "preview_every": 500})
        model_dir = Path("/tmp") / f"pretrain-{preset}"
        t0 = time.perf_counter()
        trainer = Trainer(model_dir, opts, args.faces, args.faces)
        start = trainer.state.iteration
        origin = trainer.state.prior
        state = trainer.train(minutes=args.minutes)
        trainer.close()
        seconds = time.perf_counter() - t0
        prior = export_prior(model_dir, args.out / "priors" / preset, notes, started_from=origin_prior(origin),
                             notes=f"pretrained on {args.device} by tools/gpu_pretrain.py")
        report[preset] = {"iterations": state.iteration - start, "seconds": round(seconds, 1),
                          "samples_per_s": round((state.iteration - start) * opts.batch_size / seconds, 1),
                          "losses": state.last_losses, "continued_from": origin or None,
                          "prior_iterations": prior.iterations,
                          "weights_mb": round(prior.weights_path.stat().st_size / 2**20, 1)}
        print(json.dumps({preset: report[preset]}), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
