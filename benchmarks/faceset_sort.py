"""Faceset sorting speed (facelab faceset sort / dedupe / filter). Prints JSON.

    python benchmarks/faceset_sort.py [--faces DIR] [--size 256] [--workers 1 2] [--identity-faces 40]

Every sort method is timed as ``sort --dry-run`` (scan, features, order, plan; nothing on disk changes),
so the figures are the whole job less the renames. The pixel features are also timed alone with each
``--workers`` count, and the identity embedding (the slow feature) on ``--identity-faces`` faces.
The quadratic steps (nearest-neighbour chains, dissimilarity, duplicate pairs, the main identity) are
also timed alone on ``--scale`` faces: the real faces' features repeated, with a little noise.
Without --faces, every frame of the bundled src and dst clips is extracted first (``--size`` px, not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from facelab.faceset.features import FEATURES, FaceFeatures, compute_features  # noqa: E402
from facelab.faceset.folder import scan_faces  # noqa: E402
from facelab.faceset.sort import SORT_METHODS, dedupe_faceset, sort_faceset  # noqa: E402
from facelab.faceset.sort.dedupe import DEFAULT_DEDUPE_THRESHOLD, duplicate_groups  # noqa: E402
from facelab.faceset.sort.identity import main_identity  # noqa: E402
from facelab.faceset.sort.methods import SortInput, by_absdiff, by_hist, by_hist_dissim  # noqa: E402


def extract_bundled(base: Path, size: int) -> Path:
    """All faces of both bundled clips in one folder."""
    import shutil

    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract

    out = base / "faces"
    out.mkdir()
    for side in ("src", "dst"):
        run_extract(ROOT / "samples" / f"{side}.mp4", base / side, ExtractOptions(size=size, workers=2))
        for f in (base / side).glob("*.jpg"):
            shutil.copy2(f, out / f"{side}_{f.name}")
    return out


def timed(fn: object, *args: object, **kwargs: object) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - t0


def quadratic_steps(feats: list[FaceFeatures], identities: list[NDArray[np.float64]], n: int) -> dict[str, object]:
    """Seconds of each O(n^2) ordering step on n faces made by repeating the real ones with noise."""
    rng = np.random.default_rng(0)
    reps = -(-n // len(feats))
    hists = np.tile(np.stack([f.hist for f in feats if f.hist is not None]), (reps, 1))[:n]
    hists = np.abs(hists + rng.normal(0, 0.01, hists.shape))
    thumbs = np.tile(np.stack([f.thumb for f in feats if f.thumb is not None]), (reps, 1))[:n]
    thumbs = np.clip(thumbs + rng.normal(0, 2.0, thumbs.shape), 0, 255).astype(np.uint8)
    emb = np.tile(np.stack(identities), (-(-n // len(identities)), 1))[:n] + rng.normal(0, 0.02, (n, 128))
    features = [FaceFeatures(hist=h, thumb=t) for h, t in zip(hists, thumbs, strict=True)]
    data = SortInput(faces=[(Path("x"), None)] * n, features=features)  # type: ignore[list-item]  # no records needed
    out: dict[str, object] = {"faces": n}
    out["hist_chain_s"] = round(timed(by_hist, data), 2)
    out["hist_dissim_s"] = round(timed(by_hist_dissim, data), 2)
    out["absdiff_chain_s"] = round(timed(by_absdiff, data), 2)
    out["dedupe_pairs_s"] = round(timed(duplicate_groups, thumbs, DEFAULT_DEDUPE_THRESHOLD), 2)
    out["main_identity_s"] = round(timed(main_identity, emb, 0.6), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, help="a faceset folder (default: extract the bundled clips)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--identity-faces", type=int, default=40)
    ap.add_argument("--scale", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.faces or extract_bundled(Path(tmp), args.size)
        t0 = time.perf_counter()
        faces = scan_faces(folder).faces
        scan_s = time.perf_counter() - t0
        n = len(faces)
        pixel = frozenset(FEATURES) - {"identity"}
        features = {}
        for w in args.workers:
            s = timed(compute_features, faces, pixel, workers=w)
            features[f"workers_{w}"] = {"seconds": round(s, 3), "faces_per_s": round(n / s, 1)}
        subset = faces[: args.identity_faces]
        identity = {}
        for w in args.workers:
            s = timed(compute_features, subset, {"identity"}, workers=w)
            identity[f"workers_{w}"] = {"faces": len(subset), "seconds": round(s, 2),
                                        "faces_per_s": round(len(subset) / s, 2)}
        methods = {}
        for method in SORT_METHODS.names():
            if method == "identity":
                continue  # the embedding dominates: see identity_embedding
            s = timed(sort_faceset, folder, method, dry_run=True, target=max(1, n // 4))
            methods[method] = {"seconds": round(s, 3), "faces_per_s": round(n / s, 1),
                               "decodes_pixels": bool(SORT_METHODS.get(method).features)}
        methods["dedupe"] = {"seconds": round(timed(dedupe_faceset, folder, dry_run=True), 3)}
        feats = compute_features(faces, {"hist", "thumb"})
        ids = compute_features(subset, {"identity"})
        scaling = quadratic_steps(feats, [f.identity for f in ids if f.identity is not None], args.scale)
    print(json.dumps({
        "faces": n, "face_size": faces[0][1].size if faces else None, "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "metadata_scan": {"seconds": round(scan_s, 3), "faces_per_s": round(n / scan_s, 1)},
        "pixel_features": features, "identity_embedding": identity, "sort_dry_run": methods,
        "quadratic_steps": scaling,
    }, indent=2))


if __name__ == "__main__":
    main()
