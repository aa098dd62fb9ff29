"""Packed vs folder facesets: load time at 5,000 faces, and a 100,000-face pack feeding training. Prints JSON.

    python benchmarks/faceset.py [--faces DIR] [--folder-count 5000] [--pack-count 100000] [--workdir DIR]

Real faces (``--faces``, else the bundled src clip extracted at 6 fps, ``--size`` px whole_face, not timed)
are repeated under new names to make a folder of ``--folder-count`` faces and a pack of it; "load" is
``FaceSet(path)`` (what training does at start: every record for a folder, the index for a pack), best of
``--repeats`` with a warm page cache. The big pack (``--pack-count`` faces) is written straight from the
repeated face files, then measured in a fresh process: open time, random ``read_bytes`` rate over the
whole pack, random training-sample rate (one process, and through ``make_loader`` with ``--workers``
forked workers), and resident memory (VmRSS, split into anonymous and file-backed, and the peak VmHWM)
before opening, after opening and after sampling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from facelab.faceset.folder import list_face_files  # noqa: E402
from facelab.faceset.pack import pack_faceset, write_pack  # noqa: E402
from facelab.faceset.record import record_from_bytes  # noqa: E402


def memory() -> dict[str, float]:
    """This process's resident memory in MiB (Linux /proc)."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def source_faces(args: argparse.Namespace, tmp: Path) -> list[tuple[bytes, Any, str]]:
    folder = args.faces
    if folder is None:
        from facelab.extract.options import ExtractOptions
        from facelab.extract.pipeline import run_extract

        folder = tmp / "extracted"
        run_extract(ROOT / "samples" / "src.mp4", folder, ExtractOptions(size=args.size, fps=6, workers=2))
    faces = []
    for path in list_face_files(folder):
        data = path.read_bytes()
        faces.append((data, record_from_bytes(data, path), path.suffix.lower()))
    if not faces:
        raise SystemExit(f"no faces in {folder}")
    return faces


def best_of(repeats: int, fn: Any) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(pack: Path, seconds: float, workers: int, resolution: int) -> dict[str, Any]:
    """In a fresh process: open, sample randomly, feed a loader; with memory at each stage."""
    import cv2
    import torch

    from facelab.train.samples import FaceSampleDataset, FaceSet, SampleOptions, make_loader

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    out: dict[str, Any] = {"rss_mib_before_open": memory()}
    t0 = time.perf_counter()
    faces = FaceSet(pack)
    out["open_s"] = round(time.perf_counter() - t0, 3)
    out["faces"] = len(faces)
    out["rss_mib_after_open"] = memory()
    rng = np.random.default_rng(0)
    n, nbytes, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for i in rng.integers(len(faces), size=64):
            nbytes += len(faces.store.read_bytes(int(i)))
            n += 1
    dt = time.perf_counter() - t0
    out["random_read_faces_per_s"] = round(n / dt, 1)
    out["random_read_mib_per_s"] = round(nbytes / dt / 2**20, 1)
    ds = FaceSampleDataset(faces, SampleOptions(resolution, faces.face_type, seed=0))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ds[int(rng.integers(len(faces)))]
        n += 1
    out[f"random_samples_per_s_one_process_{resolution}px"] = round(n / (time.perf_counter() - t0), 1)
    loader = make_loader(ds, 16, workers=workers, seed=0)
    it = iter(loader)
    for _ in range(2 * workers + 1):
        next(it)
    n, seen, t0 = 0, set(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        batch = next(it)
        seen.update(batch["index"].tolist())
        n += 16
    out[f"loader_samples_per_s_{workers}_workers"] = round(n / (time.perf_counter() - t0), 1)
    out["loader_distinct_faces_seen"] = len(seen)
    del it, loader
    out["rss_mib_after_sampling"] = memory()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=Path, help="a folder of real aligned faces to repeat")
    ap.add_argument("--size", type=int, default=256, help="face size when extracting the bundled clip")
    ap.add_argument("--folder-count", type=int, default=5000)
    ap.add_argument("--pack-count", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--workdir", type=Path, help="where to build the sets (default: a temporary folder)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.seconds, args.workers, args.resolution)))
        return

    from facelab.train.samples import FaceSet

    tmp_root = tempfile.mkdtemp(prefix="facelab-bench-", dir=args.workdir)
    tmp = Path(tmp_root)
    try:
        faces = source_faces(args, tmp)
        result: dict[str, Any] = {"source_faces": len(faces), "face_size": faces[0][1].size,
                                  "mean_face_file_bytes": int(np.mean([len(d) for d, _, _ in faces]))}
        # -- 5,000 faces: folder vs pack --
        folder = tmp / "folder"
        folder.mkdir()
        for k in range(args.folder_count):
            data, _, ext = faces[k % len(faces)]
            (folder / f"{k:06d}_0{ext}").write_bytes(data)
        pack = tmp / "folder.fpack"
        t0 = time.perf_counter()
        pack_faceset(folder, pack)
        pack_s = time.perf_counter() - t0
        folder_s = best_of(args.repeats, lambda: FaceSet(folder))
        packed_s = best_of(args.repeats, lambda: FaceSet(pack))
        result[f"load_{args.folder_count}"] = {
            "folder_s": round(folder_s, 4), "pack_s": round(packed_s, 4), "speedup": round(folder_s / packed_s, 1),
            "pack_build_s": round(pack_s, 2), "pack_mib": round(pack.stat().st_size / 2**20, 1),
        }

        def read_all(path: Path) -> None:
            fs = FaceSet(path)
            for i in range(len(fs)):
                fs.store.read_bytes(i)

        read_folder = best_of(args.repeats, lambda: read_all(folder))
        read_pack = best_of(args.repeats, lambda: read_all(pack))
        result[f"load_and_read_every_face_{args.folder_count}"] = {
            "folder_s": round(read_folder, 4), "pack_s": round(read_pack, 4),
            "speedup": round(read_folder / read_pack, 1)}
        shutil.rmtree(folder)
        # -- 100,000 faces: one pack, measured in a fresh process --
        big = tmp / "big.fpack"
        t0 = time.perf_counter()
        with write_pack(big) as writer:
            for k in range(args.pack_count):
                data, record, ext = faces[k % len(faces)]
                writer.add(f"{k:06d}_0{ext}", data, record)
        result[f"pack_{args.pack_count}"] = {"build_s": round(time.perf_counter() - t0, 1),
                                             "pack_gib": round(big.stat().st_size / 2**30, 2)}
        cmd = [sys.executable, __file__, "--measure", str(big), "--seconds", str(args.seconds),
               "--workers", str(args.workers), "--resolution", str(args.resolution)]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(run.stderr)
        result[f"pack_{args.pack_count}"].update(json.loads(run.stdout.strip().splitlines()[-1]))
        result["cpu_count"] = os.cpu_count()
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
