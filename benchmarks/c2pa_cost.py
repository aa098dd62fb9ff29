"""Cost of signing merged output with a C2PA manifest, per frame at 480p (854x480) and per video.

    PYTHONPATH=. python benchmarks/c2pa_cost.py [--frames 60] [--out c2pa_cost.json]

Frames are real (samples/dst.mp4, resized to 854x480) and go through what a merge job does after the
watermark: PNG (or JPEG) encode, facelab's record (``tag`` without credentials), then the C2PA signature
(``tag`` with credentials). The key lives in a temporary config folder. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="c2pa_cost_"))
    os.environ["FACELAB_C2PA_DIR"] = str(tmp / "c2pa")  # never the user's own key folder

    from facelab.media.encode import build_video
    from facelab.media.frames import encode_image, frame_name
    from facelab.media.video import iter_frames
    from facelab.provenance.credentials import ContentCredentials
    from facelab.provenance.marker import marker_for

    model_id = "ab" * 32
    frames = [cv2.resize(rgb, (854, 480), interpolation=cv2.INTER_AREA)
              for i, rgb in iter_frames(REPO / "samples" / "dst.mp4") if i < args.frames]
    plain = marker_for(model_id)
    signed = marker_for(model_id, None, ContentCredentials())
    parent = tmp / "dst_frame.png"
    parent.write_bytes(encode_image(frames[0], "png"))
    signed.tag(encode_image(frames[0], "png"), "warm.png", parent)  # key made, signer set up: not timed
    result: dict[str, object] = {"resolution": "854x480", "frames": len(frames)}
    for fmt in ("png", "jpg"):
        enc, tag, sign, extra = [], [], [], []
        for rgb in frames:
            t0 = time.perf_counter()
            data = encode_image(rgb, fmt)
            t1 = time.perf_counter()
            tagged = plain.tag(data)
            t2 = time.perf_counter()
            out = signed.tag(data, "x." + fmt, parent)
            t3 = time.perf_counter()
            enc.append(t1 - t0)
            tag.append(t2 - t1)
            sign.append(t3 - t2 - (t2 - t1))
            extra.append(len(out) - len(tagged))
        result[fmt] = {"encode_ms_median": round(1000 * statistics.median(enc), 2),
                       "record_ms_median": round(1000 * statistics.median(tag), 2),
                       "c2pa_sign_ms_median": round(1000 * statistics.median(sign), 2),
                       "c2pa_sign_ms_p95": round(1000 * sorted(sign)[int(0.95 * (len(sign) - 1))], 2),
                       "manifest_bytes": int(statistics.median(extra))}
    folder = tmp / "frames"
    folder.mkdir()
    for i, rgb in enumerate(frames):
        (folder / frame_name(i, "png")).write_bytes(encode_image(rgb, "png"))
    video = tmp / "out.mp4"
    build_video(folder, video, fps=30)
    t0 = time.perf_counter()
    ContentCredentials().sign_file(video, {"model_id": model_id}, REPO / "samples" / "dst.mp4")
    result["video"] = {"frames": len(frames), "bytes": video.stat().st_size,
                       "c2pa_sign_ms": round(1000 * (time.perf_counter() - t0), 1)}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
