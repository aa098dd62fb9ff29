"""Derive facelab's landmark templates from real faces (run once; the output is committed).

Writes
- facelab/core/templates.py: the canonical 2D mean face (68 points; Procrustes mean of dlib landmarks on
  near-frontal faces) used as the alignment target, and a 3D mean face (same x, y; depth from the face
  mesh) used for head-pose estimation;
- facelab/face/landmarks/mesh_map.py: for each of the 68 iBUG points, the blend of face-mesh vertices
  that best reproduces dlib's point (least squares over the same faces).

Usage: python tools/derive_templates.py [DATA_DIR]   (default ../shared/data/clips)
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.core.geometry import transform_points, umeyama  # noqa: E402
from facelab.face.detect.dlib_hog import DlibHogDetector  # noqa: E402
from facelab.face.landmarks.dlib68 import DlibLandmarker  # noqa: E402
from facelab.face.landmarks.facemesh import FaceMeshLandmarker  # noqa: E402

CLIPS = ["lp_d0", "lp_d3", "lp_d6", "lp_d9", "lp_d10", "lp_d12", "lp_d18", "3ddfa_obama"]
K_NEAREST = 3


def collect(data: Path) -> tuple[np.ndarray, np.ndarray]:
    det, lmk, mesh = DlibHogDetector(), DlibLandmarker(), FaceMeshLandmarker()
    all_lm, all_mesh = [], []
    for clip in CLIPS:
        path = data / f"{clip}.mp4"
        with av.open(str(path)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                if i % 6:
                    continue
                img = frame.to_ndarray(format="rgb24")
                boxes = det.detect(img)
                if not boxes:
                    continue
                lm, _ = lmk.landmarks(img, boxes[0])
                # near-frontal only: nose tip centred between the eyes, eye line level-ish
                eye_r, eye_l = lm[36:42].mean(0), lm[42:48].mean(0)
                iod = np.linalg.norm(eye_l - eye_r)
                asym = abs(lm[30, 0] - (eye_r[0] + eye_l[0]) / 2) / iod
                jaw_asym = abs(np.linalg.norm(lm[0] - lm[30]) - np.linalg.norm(lm[16] - lm[30])) / iod
                if asym > 0.06 or jaw_asym > 0.15:
                    continue
                m, score = mesh.mesh_for_box(img, boxes[0])
                if score < 0.9:
                    continue
                all_lm.append(lm)
                all_mesh.append(m)
        print(clip, len(all_lm), file=sys.stderr)
    return np.array(all_lm), np.array(all_mesh)


def procrustes_mean(lms: np.ndarray, iters: int = 10) -> tuple[np.ndarray, list[np.ndarray]]:
    mean = lms[0].copy()
    mats: list[np.ndarray] = []
    for _ in range(iters):
        mats = [umeyama(lm[17:], mean[17:]) for lm in lms]
        aligned = np.array([transform_points(lm, m) for lm, m in zip(lms, mats, strict=True)])
        new = aligned.mean(0)
        # normalise: inner points' bounding box, longest side 1, centred at (0.5, 0.5)
        inner = new[17:]
        lo, hi = inner.min(0), inner.max(0)
        new = (new - (lo + hi) / 2) / float((hi - lo).max()) + 0.5
        mean = new
    return mean, mats


# the 68-point index of each point's mirror image (left/right swapped)
MIRROR = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + list(range(27, 31)) + list(range(35, 30, -1))
          + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
          + [64, 63, 62, 61, 60, 67, 66, 65])


def symmetrize(points: np.ndarray) -> np.ndarray:
    """Average a template with its mirror image about the vertical line x = 0.5 (a canonical face is symmetric)."""
    mirrored = points[MIRROR].copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    out: np.ndarray = (points + mirrored) / 2
    return out


def fit_map(lms: np.ndarray, meshes: np.ndarray, mats: list[np.ndarray]) -> tuple[list, np.ndarray]:
    # work in the template frame so every face counts equally
    p = np.array([transform_points(lm, m) for lm, m in zip(lms, mats, strict=True)])
    v = np.array([transform_points(ms[:, :2], m) for ms, m in zip(meshes, mats, strict=True)])
    table, errs = [], []
    for j in range(68):
        d = np.linalg.norm(v - p[:, j : j + 1], axis=2).mean(0)
        idx = np.argsort(d)[:K_NEAREST]
        # minimise |sum_i w_i v_i - p|^2 with sum w = 1: w = e0 + N a, N spans the null of 1^T
        base = v[:, idx[0]]
        diffs = np.stack([v[:, i] - base for i in idx[1:]], axis=-1)  # (F, 2, K-1)
        a, *_ = np.linalg.lstsq(diffs.reshape(-1, K_NEAREST - 1), (p[:, j] - base).reshape(-1), rcond=None)
        w = np.concatenate([[1 - a.sum()], a])
        pred = (v[:, idx] * w[None, :, None]).sum(1)
        errs.append(np.linalg.norm(pred - p[:, j], axis=1).mean())
        table.append((tuple(int(i) for i in idx), tuple(round(float(x), 4) for x in w)))
    return table, np.array(errs)


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "clips"
    lms, meshes = collect(data)
    print(f"{len(lms)} near-frontal faces", file=sys.stderr)
    mean2d, mats = procrustes_mean(lms)
    mean2d = symmetrize(mean2d)
    table, errs = fit_map(lms, meshes, mats)
    print(f"mesh->68 mean error (template units, inner box = 1): {errs.mean():.4f}, "
          f"max point {errs.max():.4f}", file=sys.stderr)
    # depth: the mesh z at the mapped vertices, in template units, centred
    zs = []
    for ms, m in zip(meshes, mats, strict=True):
        s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        z = np.array([(ms[list(i), 2] * np.array(w)).sum() for i, w in table]) * s
        zs.append(z - z.mean())
    z = np.array(zs).mean(0)
    z = (z + z[MIRROR]) / 2
    fmt = lambda a: ",\n".join("    (" + ", ".join(f"{x:.5f}" for x in row) + ")" for row in a)  # noqa: E731
    (ROOT / "facelab/core/templates.py").write_text(
        '"""Canonical face templates (68-point iBUG layout), derived by tools/derive_templates.py.\n\n'
        f"MEAN_FACE_2D: Procrustes mean of dlib landmarks on {len(lms)} near-frontal faces from the sample\n"
        "clips, scaled so the inner points (17..67) span a unit box centred at (0.5, 0.5); y points down.\n"
        "MEAN_FACE_3D: the same x, y with depth (z away from the camera) from the face mesh, same units.\n"
        '"""\n\nimport numpy as np\n\n'
        f"MEAN_FACE_2D = np.array([\n{fmt(mean2d)},\n])\n\n"
        f"MEAN_FACE_3D = np.array([\n{fmt(np.hstack([mean2d, z[:, None]]))},\n])\n"
    )
    rows = ",\n".join(f"    ({i}, {w})" for i, w in table)
    (ROOT / "facelab/face/landmarks/mesh_map.py").write_text(
        '"""Face-mesh vertex blends for the 68 iBUG points, derived by tools/derive_templates.py.\n\n'
        "Each entry: (mesh vertex indices, weights summing to 1). Mean error on the derivation faces:\n"
        f"{errs.mean():.4f} of the inner-face size.\n"
        '"""\n\n'
        f"MESH_TO_68: list[tuple[tuple[int, ...], tuple[float, ...]]] = [\n{rows},\n]\n"
    )


if __name__ == "__main__":
    main()
