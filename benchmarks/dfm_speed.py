"""One face through an exported .dfm on onnxruntime's CPU provider: speed and quality of its variants against
today's fp32 file, and the model folder's PyTorch path in the same process. Prints JSON.

    python benchmarks/dfm_speed.py --model-dir MODEL --faces DST_ALIGNED [--src-aligned SRC_ALIGNED]
                                   [--eval OTHER_ALIGNED] [--threads 1,2] [--rounds 4] [--calls 10] [--eval-faces 24]
                                   [--variants fp32,fp32-extended,...]

Variants (each file exported here from MODEL by `facelab export`'s own code):
- ``fp32``: the default export, onnxruntime's defaults (ORT_ENABLE_ALL: the NCHWc layout transformer
  included; intra-op threads spin while waiting); ``fp32-extended``: ORT_ENABLE_EXTENDED (no NCHWc
  layouts); ``fp32-nospin``: ``session.intra_op.allow_spinning`` 0; ``fp32-parallel``: ExecutionMode
  ORT_PARALLEL (two inter-op threads);
- ``fp16``: ``--fp16``;
- ``int8``: ``--quantize int8`` (calibrated on ``--faces``); ``int8-nospin``, ``int8-extended`` as above;
- ``torch``: the model folder as `facelab live` runs it (frozen TorchScript trace with oneDNN fusion, bf16
  autocast where the CPU has it), at the model's own crop (96 px for quick96; the .dfm's is larger).

Speed: per thread count, per variant, ``calls`` batch-1 calls after 3 warm-up calls, the median wall and
process CPU milliseconds per call (the process's, so onnxruntime's and OpenMP's worker threads count,
their spinning included); variants and thread counts interleaved round by round, the figure is the median
of the rounds' medians, and the load average is read before and after.

Quality (ONNX variants, against the fp32 file, on ``--eval-faces`` aligned faces of ``--eval`` (default
``--faces``, whose faces int8 was calibrated on: give another folder to test faces it did not see) re-cut to
the .dfm's framing): max / mean absolute difference of each output (0..1 scale), and with
``--src-aligned`` the dlib identity distance of the swapped face (the out_celeb_face crop, embedded with
the dst face's landmarks) to the mean src embedding, its mean over the faces and the mean and max of its
per-face change from fp32's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from facelab.evaluate.identity import faceset_embedding  # noqa: E402
from facelab.export.exporter import export_model  # noqa: E402
from facelab.export.framing import DFL_FRAMING  # noqa: E402
from facelab.export.options import ExportOptions  # noqa: E402
from facelab.export.quantize import calibration_inputs  # noqa: E402
from facelab.face.align import convert_transform  # noqa: E402
from facelab.face.identity import create_embedder, distance  # noqa: E402
from facelab.faceset.folder import scan_faces  # noqa: E402
from facelab.live.faces import freeze_model, predict  # noqa: E402
from facelab.train.device import native_bf16  # noqa: E402
from facelab.train.inference import load_swap_model  # noqa: E402

VARIANTS = ("fp32", "fp32-extended", "fp32-nospin", "fp32-parallel", "fp16", "int8", "int8-nospin",
            "int8-extended", "torch")
FILES = {"fp32": ExportOptions(), "fp16": ExportOptions(fp16=True)}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def session(path: Path, variant: str, threads: int) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.log_severity_level = 3
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    if variant.endswith("-extended"):
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if variant.endswith("-nospin"):
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if variant.endswith("-parallel"):
        o.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        o.inter_op_num_threads = 2
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def timed(call: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median wall and process-CPU ms of ``calls`` calls after 3 warm-up calls."""
    for _ in range(3):
        call()
    wall, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)) * 1000.0, float(np.median(cpu)) * 1000.0


def speed(args: argparse.Namespace, files: dict[str, Path], x: np.ndarray) -> dict[str, Any]:
    model = load_swap_model(args.model_dir, "cpu") if "torch" in args.variants else None
    bf16 = native_bf16()
    calls: dict[tuple[str, int], Callable[[], Any]] = {}
    for t in args.threads:
        for v in args.variants:
            if v == "torch":
                continue
            s = session(files[v.split("-")[0]], v, t)
            calls[(v, t)] = (lambda s=s: s.run(None, {"in_face:0": x[:1]}))
    if model is not None:
        why = freeze_model(model, "fused", True, bf16)
        r = model.resolution
        crop = np.random.default_rng(0).integers(0, 255, (r, r, 3), dtype=np.uint8)
        for t in args.threads:
            def run(t: int = t) -> None:
                torch.set_num_threads(t)
                predict(model, [crop], True, bf16)
            calls[("torch", t)] = run
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {k: [] for k in calls}
    before = load()
    for _ in range(args.rounds):
        for key, call in calls.items():
            runs[key].append(timed(call, args.calls))
            time.sleep(0.2)  # let the previous variant's worker threads stop spinning
    out: dict[str, Any] = {"load_before": before, "load_after": load()}
    for (v, t), vals in runs.items():
        out.setdefault(v, {})[f"threads_{t}"] = {
            "wall_ms": round(float(np.median([w for w, _ in vals])), 2),
            "cpu_ms": round(float(np.median([c for _, c in vals])), 2),
            "wall_ms_rounds": [round(w, 1) for w, _ in vals]}
    if model is not None:
        out["torch"]["runs_as"] = f"{why}, bf16 autocast: {bf16}, {model.resolution} px"
    return out


def quality(args: argparse.Namespace, files: dict[str, Path], res: int) -> dict[str, Any]:
    folder = args.eval or args.faces
    faces = scan_faces(folder).faces
    picks = [faces[i] for i in np.linspace(0, len(faces) - 1, min(args.eval_faces, len(faces))).round().astype(int)]
    x = calibration_inputs(folder, DFL_FRAMING, res, "dfm", count=args.eval_faces)  # the same spread picks
    outs: dict[str, list[np.ndarray]] = {}
    for name in sorted({v.split("-")[0] for v in args.variants if v != "torch"}):
        s = session(files[name], name, 2)
        got = [s.run(None, {"in_face:0": x[i:i + 1]}) for i in range(len(x))]
        outs[name] = [np.concatenate([g[k] for g in got]) for k in range(3)]
    ref = outs["fp32"]
    result: dict[str, Any] = {"faces": len(x), "folder": str(folder)}
    names = ("out_face_mask", "out_celeb_face", "out_celeb_face_mask")
    for name, o in outs.items():
        if name != "fp32":
            result[name] = {n: {"max_abs": round(float(np.abs(a - b).max()), 5),
                                "mean_abs": round(float(np.abs(a - b).mean()), 6)}
                            for n, a, b in zip(names, o, ref, strict=True)}
    if args.src_aligned is None:
        return result
    embedder = create_embedder()
    src, n_src = faceset_embedding(args.src_aligned, embedder)
    dists: dict[str, list[float]] = {}
    for name, o in outs.items():
        for k, (_, rec) in enumerate(picks):
            mat = convert_transform(np.eye(3)[:2], rec.face_type, rec.size, DFL_FRAMING, res)
            lm = rec.landmarks_array() @ mat[:, :2].T + mat[:, 2]
            rgb = np.ascontiguousarray((np.clip(o[1][k], 0, 1) * 255.0 + 0.5).astype(np.uint8)[..., ::-1])
            dists.setdefault(name, []).append(distance(embedder.embed(rgb, lm), src))
    ident: dict[str, Any] = {"src_faces_averaged": n_src}
    for name, d in dists.items():
        delta = np.array(d) - np.array(dists["fp32"])
        ident[name] = {"mean_distance_to_src": round(float(np.mean(d)), 4),
                       "mean_change_from_fp32": round(float(delta.mean()), 4),
                       "max_abs_change_from_fp32": round(float(np.abs(delta).max()), 4)}
    result["identity"] = ident
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--faces", type=Path, required=True, help="aligned dst faces: int8 calibration and quality")
    ap.add_argument("--eval", type=Path, help="aligned faces for the quality figures (default: --faces)")
    ap.add_argument("--src-aligned", type=Path, help="aligned src faces: the identity distance")
    ap.add_argument("--threads", type=lambda s: [int(t) for t in s.split(",")], default=[1, 2])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--eval-faces", type=int, default=24)
    ap.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    args = ap.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown or "fp32" not in args.variants:
        ap.error(f"variants: fp32 and any of {', '.join(VARIANTS)} (unknown: {sorted(unknown)})")
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[str, Path] = {}
        exports: dict[str, Any] = {}
        wanted = {v.split("-")[0] for v in args.variants if v != "torch"}
        for name in sorted(wanted):
            opts = FILES.get(name) or ExportOptions(quantize="int8", calibration=args.faces)
            r = export_model(args.model_dir, Path(tmp) / f"{name}.dfm", opts)
            files[name] = r.path
            exports[name] = {"megabytes": round(r.bytes / 1e6, 2), "export_seconds": r.seconds,
                             "resolution": r.resolution}
        res = exports["fp32"]["resolution"]
        x = calibration_inputs(args.faces, DFL_FRAMING, res, "dfm", count=1)
        result = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": str(args.model_dir),
                  "onnxruntime": ort.__version__, "torch": torch.__version__, "cpu_count": os.cpu_count(),
                  "exports": exports, "speed": speed(args, files, x), "quality": quality(args, files, res)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
