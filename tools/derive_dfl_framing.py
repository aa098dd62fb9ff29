"""Derive the ``dfl_whole_face`` entry of facelab.face.align.FACE_TYPE_GEOMETRY from real faces (run once; the
printed numbers are committed there).

For each face, facelab's canonical transform (51 landmarks onto its mean face) and FaceFusion's
``dfl_whole_face`` five-point fit (facelab.export.framing.template_transform) give one similarity from
canonical units to the unit DFL crop; their median scale and offsets are the framing: crop side
(1 + 2 padding) canonical units, centre (0.5 + shift_x, 0.5 - shift_up).

Usage: python tools/derive_dfl_framing.py ALIGNED_DIR [ALIGNED_DIR ...]   (facelab aligned face folders)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.core.geometry import invert_affine  # noqa: E402
from facelab.export.framing import template_transform  # noqa: E402
from facelab.face.align import canonical_transform, compose  # noqa: E402
from facelab.faceset.folder import scan_faces  # noqa: E402


def main(folders: list[Path]) -> None:
    scales, cx, cy, rot = [], [], [], []
    for folder in folders:
        for _, rec in scan_faces(folder).faces:
            lm = rec.source_landmarks_array()
            m = compose(template_transform(lm, 1), invert_affine(canonical_transform(lm)))  # canonical -> unit crop
            s = float(np.hypot(m[0, 0], m[1, 0]))
            centre = invert_affine(m) @ np.array([0.5, 0.5, 1.0])
            scales.append(s)
            cx.append(centre[0])
            cy.append(centre[1])
            rot.append(float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))))
    s, x, y = float(np.median(scales)), float(np.median(cx)), float(np.median(cy))
    print(json.dumps({"faces": len(scales), "padding": round(1 / (2 * s) - 0.5, 4), "shift_up": round(0.5 - y, 4),
                      "shift_x": round(x - 0.5, 4), "rotation_deg_median": round(float(np.median(rot)), 3),
                      "scale_iqr": [round(float(q), 4) for q in np.percentile(scales, [25, 75])]}))


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
