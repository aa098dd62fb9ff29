"""The detail ratio a perfect model of each resolution would reach on a pair's dst clip. Prints JSON.

    python benchmarks/detail_ceiling.py [--pairs demo,d6-d9,d3-d12,d12-d3] [--workspace quality_workspace]
        [--resolutions 64,96,128,192] [--detail-transfers 0,50] [--faces 20] [--face-type full]

A "perfect model" of resolution R predicts dst's own face exactly, but at R x R pixels: each sampled dst
face is cut from its frame at R px through the model's transform (facelab.merge.compose.crop_face), then
merged back into the same frame with the default merge options (overlay, RCT, the mask over the whole
crop) and the given detail transfer. The detail ratio (facelab.evaluate.metrics.detail_ratio: the Laplacian
variance of the result over dst's inside the landmarks' hull) of that merge is the most any model of that
resolution can show on this clip: the face it paints has no finer content than its R pixels hold, and all
the detail above that comes from dst through the detail transfer. ``face_px``: the crop's side in frame
pixels (the enlargement is face_px / R).

The faces are --faces evenly spread over the clip, from the workspace benchmarks/quality.py extracted
(WORKSPACE/PAIR/dst/frames and dst/aligned; a pair not yet extracted is extracted here the same way).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from facelab.evaluate.metrics import detail_ratio  # noqa: E402
from facelab.faceset.folder import scan_faces  # noqa: E402
from facelab.media.frames import list_frames, read_image_rgb  # noqa: E402
from facelab.merge.compose import Prediction, compose_face, crop_face, face_size_px, model_transform  # noqa: E402
from facelab.merge.options import MergeOptions  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from quality import PAIRS, extract_side, resolve_clip  # noqa: E402


def ceiling(ws: Path, resolutions: list[int], transfers: list[float], n_faces: int, face_type: str
            ) -> dict[str, Any]:
    frames_dir, aligned = ws / "dst" / "frames", ws / "dst" / "aligned"
    frames = {p.stem: p for p in list_frames(frames_dir)}
    faces = sorted(((rec.source.frame, rec) for _, rec in scan_faces(aligned).faces if rec.source.frame in frames),
                   key=lambda t: (t[0], t[1].face_index))
    if not faces:
        raise SystemExit(f"no dst faces in {aligned}")
    picked = [faces[int(i)] for i in np.linspace(0, len(faces) - 1, min(n_faces, len(faces)))]
    rows: list[dict[str, Any]] = []
    for r in resolutions:
        for dt in transfers:
            opts = MergeOptions(detail_transfer=dt)
            ratios, sizes = [], []
            for stem, rec in picked:
                frame = read_image_rgb(frames[stem])
                mat = model_transform(rec, face_type, r)
                face = crop_face(frame, mat, r).astype(np.float32) / 255.0
                ones = np.ones((r, r), np.float32)
                merged, _ = compose_face(frame, rec, Prediction(face, ones, ones), face_type, r, opts)
                ratios.append(detail_ratio(merged, frame, rec.source_landmarks_array()))
                sizes.append(face_size_px(mat, r))
            rows.append({"resolution": r, "detail_transfer": dt, "detail_ratio": round(float(np.nanmean(ratios)), 3),
                         "face_px": round(float(np.mean(sizes)), 1)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"faces": len(picked), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="demo,d6-d9,d3-d12,d12-d3")
    ap.add_argument("--workspace", default="quality_workspace")
    ap.add_argument("--resolutions", default="64,96,128,192")
    ap.add_argument("--detail-transfers", default="0,50")
    ap.add_argument("--faces", type=int, default=20)
    ap.add_argument("--face-type", default="full")
    args = ap.parse_args()
    resolutions = [int(v) for v in args.resolutions.split(",")]
    transfers = [float(v) for v in args.detail_transfers.split(",")]
    out: dict[str, Any] = {"face_type": args.face_type, "pairs": {}}
    for pair in args.pairs.split(","):
        if pair not in PAIRS:
            raise SystemExit(f"unknown pair {pair!r}; choose from {', '.join(PAIRS)}")
        ws = Path(args.workspace) / pair
        extract_side(resolve_clip(PAIRS[pair][1]), ws, "dst")
        out["pairs"][pair] = ceiling(ws, resolutions, transfers, args.faces, args.face_type)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
