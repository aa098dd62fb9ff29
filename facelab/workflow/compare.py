"""Side-by-side comparison video (dst | result) with dst's audio, the provenance record and the C2PA manifest."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from facelab.core.atomic import write_bytes_atomic
from facelab.media.encode import build_video
from facelab.media.frames import encode_image, frame_number, list_frames, read_image_rgb
from facelab.provenance.marker import ProvenanceMarker


def side_by_side(left_dir: Path, right_dir: Path, out: Path, fps: str | float | None, audio_from: Path | None,
                 marker: ProvenanceMarker) -> Path:
    """Frames of `left_dir` and `right_dir` (same names) next to each other, encoded to `out`. The right
    half is merged output: its faces are watermarked (again) in the right half's own coordinates, where the
    merged frame's mark already lies, so the two agree (the reader finds the half's offset), and the file
    gets the provenance record like any other output."""
    right = {p.stem: p for p in list_frames(right_dir)}
    masks = right_dir / "masks"
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        folder = Path(tmp)
        for p in list_frames(left_dir):
            a = read_image_rgb(p)
            b = read_image_rgb(right[p.stem]) if p.stem in right else a
            mask_file = masks / f"{p.stem}.png"
            if p.stem in right and mask_file.exists():
                m = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
                if m is not None and m.any():
                    b = marker.mark(b, region=m > 0, frame=frame_number(p.stem) or 0)
            frame = np.hstack([a, b])
            write_bytes_atomic(folder / f"{p.stem}.png", encode_image(frame), durable=False)
        build_video(folder, out, fps=fps, audio_from=audio_from)
    marker.finish_video(out, parent=audio_from)
    return out
