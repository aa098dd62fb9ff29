"""Export: framing difference, identity through the .dfm, export time and file sizes. Prints JSON.

    python benchmarks/export.py --model-dir /work/qws/demo/models/demo-wf-scratch-it2800 \
        --frames /work/qws/demo/dst/frames --dst-aligned /work/qws/demo/dst/aligned \
        --src-aligned /work/qws/demo/src/aligned [--count 24] [--int8] [--ort-python /work/ort115/bin/python]

1. Framing: on every face of the aligned folders, the mean corner displacement (crop pixels at 224, the
   DeepFaceLive default) between FaceFusion's ``dfl_whole_face`` five-point crop and facelab's whole_face
   crop (before), and facelab's ``dfl_whole_face`` framing (after).
2. Identity (dlib distance to the mean src embedding, measured with dst's landmarks on the output frame,
   over ``count`` frames spread over the folder) of:
   - ``facelab_merge``: facelab's own merge of the model folder (default options, no watermark: it does
     not change the identity);
   - ``dfm_merge``: the same merge of the exported .dfm (facelab crops in its dfl_whole_face framing);
   - ``facefusion_crop``: each face cropped as FaceFusion crops it (five points onto the dfl_whole_face
     template, at the .dfm's size), run through the .dfm with onnxruntime and pasted back with its mask
     (blurred edge); ``facelab_crop`` is the same paste with facelab's own crop through PyTorch;
   - ``naive_dfm``: what a .dfm without the framing correction would do: the model fed the FaceFusion
     crop directly at its own resolution (the difference the in-graph resampling removes).
   For the last two, also the mean absolute difference (0..255) of the output frame from
   ``facelab_crop``'s inside the face (landmark hull): how far the .dfm's result is from facelab's own.
   With ``--int8`` also ``int8_dfm_merge``: the merge of the ``--quantize int8`` export (calibrated on
   ``--dst-aligned``), and its difference from facelab's merge and per frame from the fp32 .dfm's merge.
3. Export time and file size, fp32 and fp16 (and int8); the onnxruntime versions that loaded the file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from facelab.evaluate.identity import faceset_embedding  # noqa: E402
from facelab.export.exporter import export_model  # noqa: E402
from facelab.export.framing import DFL_FRAMING, corner_displacement, template_transform  # noqa: E402
from facelab.export.load import load_model  # noqa: E402
from facelab.export.options import ExportOptions  # noqa: E402
from facelab.face.align import face_transform  # noqa: E402
from facelab.face.identity import create_embedder, distance  # noqa: E402
from facelab.face.masks import face_hull_mask  # noqa: E402
from facelab.faceset.folder import scan_faces  # noqa: E402
from facelab.faceset.record import FaceRecord  # noqa: E402
from facelab.media.frames import list_frames, read_image_rgb  # noqa: E402
from facelab.merge.options import MergeOptions  # noqa: E402
from facelab.merge.runner import run_merge  # noqa: E402
from facelab.train.inference import load_swap_model  # noqa: E402

SIDE = 224


def framing(folders: list[Path]) -> dict[str, object]:
    before, after = [], []
    for folder in folders:
        for _, rec in scan_faces(folder).faces:
            lm = rec.source_landmarks_array()
            ff = template_transform(lm, SIDE)
            before.append(corner_displacement(face_transform(lm, "whole_face", SIDE), ff, SIDE))
            after.append(corner_displacement(face_transform(lm, DFL_FRAMING, SIDE), ff, SIDE))
    stats = {}
    for name, v in (("whole_face_vs_facefusion", before), ("dfl_whole_face_vs_facefusion", after)):
        a = np.array(v)
        stats[name] = {"mean_px": round(float(a.mean()), 2), "median_px": round(float(np.median(a)), 2),
                       "p95_px": round(float(np.percentile(a, 95)), 2)}
    return {"faces": len(before), "crop_px": SIDE, **stats}


def paste(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """The face (R,R,3 RGB 0..1) and its mask pasted into the frame through the crop transform ``mat``."""
    h, w = frame.shape[:2]
    r = face.shape[0]
    m = cv2.GaussianBlur(cv2.erode(mask.astype(np.float32), np.ones((3, 3), np.uint8)), (0, 0), r / 40)
    inv = cv2.invertAffineTransform(mat)
    fw = cv2.warpAffine(face.astype(np.float32), inv, (w, h), flags=cv2.INTER_CUBIC)
    mw = cv2.warpAffine(m, inv, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    out = frame.astype(np.float32) / 255.0 * (1 - mw) + fw * mw
    return np.asarray(np.clip(out * 255.0 + 0.5, 0, 255), dtype=np.uint8)


def crop(frame: np.ndarray, mat: np.ndarray, r: int) -> np.ndarray:
    return np.asarray(cv2.warpAffine(frame, mat, (r, r), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE))


def identity(args: argparse.Namespace, dfm: Path, tmp: Path, int8: Path | None = None) -> dict[str, object]:
    embedder = create_embedder()
    src_emb, n_src = faceset_embedding(args.src_aligned, embedder)
    faces = scan_faces(args.dst_aligned).faces
    by_frame: dict[str, FaceRecord] = {}
    for _, rec in faces:
        by_frame.setdefault(rec.source.frame, rec)
    frames = [p for p in list_frames(args.frames) if p.stem in by_frame]
    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, min(args.count, len(frames))).round().astype(int)]
    sub = tmp / "frames"
    sub.mkdir()
    for p in picks:
        (sub / p.name).symlink_to(p.resolve())
    torch_model = load_swap_model(args.model_dir, "cpu")
    onnx_model = load_model(dfm, "cpu")
    naive_r = torch_model.resolution
    dists: dict[str, list[float]] = {k: [] for k in ("dst_frame", "facelab_merge", "dfm_merge", "facelab_crop",
                                                     "facefusion_crop", "naive_dfm")}
    merges = [("facelab_merge", args.model_dir), ("dfm_merge", dfm)]
    if int8 is not None:
        dists["int8_dfm_merge"] = []
        merges.append(("int8_dfm_merge", int8))
    pixel_diff: dict[str, list[float]] = {"facefusion_crop": [], "naive_dfm": []}
    merged = {}
    for name, model_path in merges:
        out = tmp / name
        run_merge(model_path, sub, args.dst_aligned, out, MergeOptions(), workers=2, provenance=False, device="cpu")
        merged[name] = out
    for p in picks:
        rec = by_frame[p.stem]
        lm = rec.source_landmarks_array()
        frame = read_image_rgb(p)
        hull = face_hull_mask(lm, frame.shape[:2], "full") > 0.5
        outs: dict[str, np.ndarray] = {}
        dists["dst_frame"].append(distance(embedder.embed(frame, lm), src_emb))
        for name, out in merged.items():
            dists[name].append(distance(embedder.embed(read_image_rgb(out / f"{p.stem}.png"), lm), src_emb))
        for name, model, ft, r, mat_of in (
                ("facelab_crop", torch_model, torch_model.face_type, torch_model.resolution,
                 lambda lm, r, ft: face_transform(lm, ft, r)),
                ("facefusion_crop", onnx_model, DFL_FRAMING, onnx_model.resolution,
                 lambda lm, r, ft: template_transform(lm, r)),
                ("naive_dfm", torch_model, torch_model.face_type, naive_r,
                 lambda lm, r, ft: template_transform(lm, r))):
            mat = mat_of(lm, r, ft)
            x = torch.from_numpy(crop(frame, mat, r)).permute(2, 0, 1)[None].float().div(255.0)
            face, mask, _ = model.swap(x, False)
            out_frame = paste(frame, face[0].permute(1, 2, 0).clamp(0, 1).numpy(), mask[0, 0].numpy(), mat)
            dists[name].append(distance(embedder.embed(out_frame, lm), src_emb))
            outs[name] = out_frame.astype(np.float64)
        for name in pixel_diff:
            pixel_diff[name].append(float(np.abs(outs[name] - outs["facelab_crop"])[hull].mean()))
    means = {k: round(float(np.mean(v)), 4) for k, v in dists.items()}
    extra = {} if int8 is None else {
        "int8_dfm_merge_minus_facelab_merge": round(means["int8_dfm_merge"] - means["facelab_merge"], 4),
        "int8_dfm_merge_minus_dfm_merge_per_frame_max_abs": round(float(np.abs(
            np.array(dists["int8_dfm_merge"]) - np.array(dists["dfm_merge"])).max()), 4)}
    return {**extra, "frames": len(picks), "src_faces_averaged": n_src, "mean_distance_to_src": means,
            "dfm_merge_minus_facelab_merge": round(means["dfm_merge"] - means["facelab_merge"], 4),
            "facefusion_crop_minus_facelab_merge": round(means["facefusion_crop"] - means["facelab_merge"], 4),
            "facefusion_crop_minus_facelab_crop": round(means["facefusion_crop"] - means["facelab_crop"], 4),
            "naive_dfm_minus_facelab_crop": round(means["naive_dfm"] - means["facelab_crop"], 4),
            "mean_abs_pixel_difference_to_facelab_crop_inside_the_face": {
                k: round(float(np.mean(v)), 2) for k, v in pixel_diff.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--frames", type=Path, required=True)
    ap.add_argument("--dst-aligned", type=Path, required=True)
    ap.add_argument("--src-aligned", type=Path, required=True)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--int8", action="store_true", help="also export --quantize int8 (calibrated on --dst-aligned) "
                    "and merge with it")
    ap.add_argument("--ort-python", type=Path, help="another Python with onnxruntime (e.g. 1.15.1) to load the file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        exports = {}
        kinds = {"fp32": ExportOptions(), "fp16": ExportOptions(fp16=True)}
        if args.int8:
            kinds["int8"] = ExportOptions(quantize="int8", calibration=args.dst_aligned)
        for kind, opts in kinds.items():
            path = tmp / f"model-{kind}.dfm"
            t0 = time.perf_counter()
            r = export_model(args.model_dir, path, opts)
            exports[kind] = {"seconds": round(time.perf_counter() - t0, 2),
                             "megabytes": round(r.bytes / 1e6, 2), "resolution": r.resolution}
            loaded = [f"onnxruntime {ort.__version__}"]
            if args.ort_python is not None:
                run = subprocess.run([str(args.ort_python), str(ROOT / "tools" / "ort_check.py"), str(path)],
                                     capture_output=True, text=True, check=False)
                loaded.append(f"onnxruntime {json.loads(run.stdout)['onnxruntime']}" if run.returncode == 0
                              else f"FAILED in {args.ort_python}: {run.stderr.strip().splitlines()[-1:]}")
            exports[kind]["loaded_by"] = loaded
        result = {"model": str(args.model_dir), "framing": framing([args.dst_aligned, args.src_aligned]),
                  "export": exports, "identity": identity(args, tmp / "model-fp32.dfm", tmp,
                                                         tmp / "model-int8.dfm" if args.int8 else None),
                  "torch_threads": torch.get_num_threads()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
