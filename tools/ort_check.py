"""Load an ONNX model in whatever onnxruntime this Python has and run it once; print JSON.

For checking facelab's exports in other onnxruntime versions than facelab's own, e.g. 1.15.1, the one
DeepFaceLive ships (python3.11 -m venv /work/ort115 && /work/ort115/bin/pip install onnxruntime==1.15.1
"numpy<2"); imports neither facelab nor torch, so any venv with onnxruntime and numpy runs it:

    /work/ort115/bin/python tools/ort_check.py MODEL.dfm [--batch 2]

Prints the onnxruntime version, the inputs and outputs (name, shape, type), and per output its shape and
value range for a batch of random faces (float inputs get uniform 0..1; a [1] input, DeepFaceLab's
morph_value, gets 1.0).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {}
    for i in sess.get_inputs():
        if list(i.shape) == [1]:
            feed[i.name] = np.array([1.0], dtype=np.float32)
        else:
            shape = [args.batch if not isinstance(d, int) else d for d in i.shape]
            feed[i.name] = rng.random(shape, dtype=np.float32)
    outs = sess.run(None, feed)
    print(json.dumps({
        "onnxruntime": ort.__version__,
        "inputs": [{"name": i.name, "shape": list(i.shape), "type": i.type} for i in sess.get_inputs()],
        "outputs": [{"name": o.name, "shape": list(o.shape), "type": o.type} for o in sess.get_outputs()],
        "results": [{"shape": list(o.shape), "dtype": str(o.dtype), "min": float(o.min()), "max": float(o.max())}
                    for o in outs],
    }))


if __name__ == "__main__":
    main()
