"""`faceset import-dfl` speed: the pickle reader against pickle.loads, and whole imports. Prints JSON.

    python benchmarks/dfl_import.py [--faces DIR] [--count 2000] [--size 256] [--workdir DIR]

Real faces (``--faces``, else the bundled src clip extracted at 6 fps, ``--size`` px whole_face, not timed)
are written as DFL aligned JPEGs (tests/dfl_support.py: DFL's layout, every other face with XSeg polygons
and an XSeg mask) under new names until there are ``--count``, and packed into a ``faceset.pak``. Timed:
decoding one face's DFL metadata (facelab's reader and, for scale, the unsafe ``pickle.loads``), the pak's
config list, and the import of the folder, of the pak, and of the folder with ``--rewarp``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facelab.faceset.dfl import pickle_data  # noqa: E402
from facelab.faceset.dfl.container import dfl_payload  # noqa: E402
from facelab.faceset.dfl.importer import import_dfl  # noqa: E402
from facelab.faceset.folder import list_face_files  # noqa: E402
from facelab.faceset.record import read_record  # noqa: E402
from facelab.media.metadata import strip_json  # noqa: E402
from tests.dfl_support import dfl_jpeg, dfl_meta, dfl_modules, dfl_pak  # noqa: E402


def per_call(fn: object, repeats: int) -> float:
    """Microseconds per call, best of three runs of ``repeats`` calls."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return round(best / repeats * 1e6, 1)


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="dfl_bench_"))
    folder = args.faces
    if folder is None:
        from facelab.extract.options import ExtractOptions
        from facelab.extract.pipeline import run_extract

        folder = tmp / "extracted"
        run_extract(ROOT / "samples" / "src.mp4", folder, ExtractOptions(size=args.size, fps=6, workers=2))
    sources = [(strip_json(p.read_bytes()), read_record(p)) for p in list_face_files(folder)
               if p.suffix.lower() in (".jpg", ".jpeg")]
    mask = np.zeros((sources[0][1].size,) * 2, np.uint8)
    cv2.circle(mask, (mask.shape[0] // 2,) * 2, mask.shape[0] // 3, 255, -1)
    mask_png = cv2.imencode(".png", mask)[1].tobytes()
    dfl = tmp / "dfl"
    dfl.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(args.count):
        plain, rec = sources[i % len(sources)]
        meta = dfl_meta(rec, polys=i % 2 == 1, mask=mask_png if i % 2 else None)
        data = dfl_jpeg(plain, meta)
        name = f"{i:06d}_0.jpg"
        (dfl / name).write_bytes(data)
        files.append((name, data, None))
    pak_dir = tmp / "pak"
    pak_dir.mkdir(exist_ok=True)
    dfl_pak(pak_dir / "faceset.pak", files)

    payload = dfl_payload(files[1][1])
    assert payload is not None
    with dfl_modules():
        configs = pickle.dumps([{"filename": n, "landmarks": [[1.0, 2.0]] * 68, "person_name": None}
                                for n, _, _ in files], 4)
    out: dict[str, object] = {
        "faces": args.count, "size": sources[0][1].size, "metadata_bytes": len(payload),
        "reader_us_per_face": per_call(lambda: pickle_data.loads(payload), 200),
        "pickle_loads_us_per_face (unsafe, for scale)": per_call(lambda: pickle.loads(payload), 200),
        "pak_config_list_s": round(timed(lambda: pickle_data.loads(configs)), 3),
        "pak_config_list_bytes": len(configs),
    }
    for label, src, rewarp in (("folder", dfl, False), ("pak", pak_dir, False), ("folder_rewarp", dfl, True)):
        t = time.perf_counter()
        import_dfl(src, tmp / f"out_{label}", rewarp=rewarp)
        out[f"import_{label}_faces_per_s"] = round(args.count / (time.perf_counter() - t), 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
