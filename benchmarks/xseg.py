"""XSeg throughput on the CPU: training iterations/s (batch 8) and inference faces/s. Prints JSON.

    python benchmarks/xseg.py [--resolutions 256,128] [--precisions fp32,bf16] [--threads 1,2] [--iterations 4]

Training runs on synthetic labelled faces (random pictures with a random polygon label, so no data set
is needed); each figure is the mean over ``--iterations`` after one warm-up iteration, split into the
sample pipeline (augmentation) and the optimiser step. Inference is ``XSegModel.predict`` on 32 faces
of 256 px, batch 16, for each resolution.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.xseg.augment import AugmentOptions, LabelledFace, make_sample  # noqa: E402
from facelab.xseg.infer import XSegModel, to_input  # noqa: E402
from facelab.xseg.net import XSegNet  # noqa: E402
from facelab.xseg.options import XSegOptions  # noqa: E402
from facelab.xseg.train import segmentation_loss  # noqa: E402


def synthetic_faces(n: int, size: int, rng: np.random.Generator) -> list[LabelledFace]:
    out: list[LabelledFace] = []
    for _ in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 3)
        mask = np.zeros((size, size), np.float32)
        cv2.fillConvexPoly(mask, (rng.uniform(0.2, 0.8, (6, 2)) * size).astype(np.int32), 1.0)
        occluder = np.zeros((size, size), np.float32)
        cv2.rectangle(occluder, (size // 3, size // 2), (size // 2, size * 2 // 3), 1.0, -1)
        out.append(LabelledFace(np.asarray(img, np.uint8), mask * (1 - occluder), occluder))
    return out


def train_rate(res: int, precision: str, iterations: int, batch: int = 8) -> dict[str, float]:
    rng = np.random.default_rng(0)
    faces = synthetic_faces(16, 256, rng)
    net = XSegNet(16)
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    aug = AugmentOptions()
    data_s = step_s = 0.0
    for i in range(iterations + 1):
        t0 = time.perf_counter()
        samples = [make_sample(faces, int(rng.integers(16)), res, rng, aug) for _ in range(batch)]
        x = to_input([s[0] for s in samples], res)
        y = torch.from_numpy(np.stack([s[1] for s in samples])[:, None])
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = net(x)
        loss = segmentation_loss(logits, y)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        t2 = time.perf_counter()
        if i:  # the first iteration warms up
            data_s += t1 - t0
            step_s += t2 - t1
    return {"it_per_s": round(iterations / (data_s + step_s), 3), "samples_per_s": round(iterations * batch /
            (data_s + step_s), 2), "sample_ms": round(data_s / iterations * 1000, 1),
            "step_ms": round(step_s / iterations * 1000, 1)}


def predict_rate(res: int) -> float:
    rng = np.random.default_rng(1)
    model = XSegModel(XSegNet(16), XSegOptions(resolution=res))
    faces = [f.image for f in synthetic_faces(32, 256, rng)]
    model.predict(faces[:16])
    t0 = time.perf_counter()
    model.predict(faces, batch_size=16)
    return round(len(faces) / (time.perf_counter() - t0), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default="256,128")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iterations", type=int, default=4)
    args = ap.parse_args()
    results = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for res in (int(r) for r in args.resolutions.split(",")):
            for precision in args.precisions.split(","):
                row = {"threads": threads, "resolution": res, "precision": precision, "batch": 8,
                       **train_rate(res, precision, args.iterations)}
                results.append(row)
            results.append({"threads": threads, "resolution": res, "predict_faces_per_s": predict_rate(res)})
    print(json.dumps({"torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
