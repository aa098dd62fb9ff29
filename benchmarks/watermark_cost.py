"""What the watermark costs against the merge it rides on, by model size. Prints JSON.

    python benchmarks/watermark_cost.py [--presets tiny64 demo quick96] [--frames 40] [--cache DIR]

For each model size (``tiny64``: the 64 px DF model of benchmarks/watermark.py, ae 64 / e 16 / d 16;
``demo`` and ``quick96``: the training presets' shapes), a model trained 1 iteration on the bundled faces
(its weights do not matter to the time) merges the first --frames frames of the bundled 480x480 dst clip
(``--clip``, ``--size WxH``: another clip, its frames cropped at the centre to that aspect and resized; 854x480
and 640x480 are 480p's 16:9 and 4:3 frames)
(overlay, RCT, mask mode ``dst``) without provenance, with one worker. Two clocks:

* CPU time (all threads of the process, ``time.process_time``), per frame: the merge of all --frames
  frames minus the merge of the first half, over the other half (the model load and setup cancel out).
  On a machine shared with other jobs this is the figure to trust: waiting for a core costs no CPU time.
* wall time: the merge's loop time (first frame read to last written) over the frames, best of --repeats.

The marking time is ``syncmark.embed`` on the merged frames as merge.jobs marks them (one OpenCV thread, as
in merge's workers; ``--region``: frame, the default, the whole frame texture-masked; face: inside the
merge's masks), the best of the passes run between the merges, in CPU and wall time. The share is
marking / merge per frame, on each clock.

``--end-to-end``: the cost a user sees. The whole merge runs as ``facelab merge`` runs it (its default
workers: one per CPU, up to 8), alternately with the watermark and without it, --repeats times each; the
marked runs mark exactly as merge does (``ProvenanceMarker.mark`` in the workers) but write no record or C2PA
signature (those are per-file costs, measured in docs/provenance.md). The share is the marked runs' median time
per frame over the unmarked runs' median, minus 1, on the wall clock (the merge loop) and in CPU time; both
halves run in the same conditions, one after the other. Thread pool only (process time misses worker processes).
Those differences move with the thread plan each merge picks and with the machine's other work, by more than the
mark costs; so the marking is also timed inside the marked merges themselves (``in_merge_mark_cpu_ms_per_frame``:
each ``ProvenanceMarker.mark`` call on its worker thread's CPU clock, page faults included) and set against the
unmarked merges' CPU per frame (``in_merge_share_cpu``).
``--plan lockstep|overlap`` makes every merge run that thread plan from its first batch (merge.schedule): merge
picks one from its first batches, and runs that picked differently have incomparable CPU times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facelab.media.frames import frame_name, read_image_rgb  # noqa: E402
from facelab.media.video import iter_frames  # noqa: E402

SHAPES: dict[str, dict[str, Any]] = {
    "tiny64": {"arch": "df-ud", "resolution": 64, "ae_dims": 64, "e_dims": 16, "d_dims": 16, "d_mask_dims": 8},
}


def _shape(name: str) -> dict[str, Any]:
    from facelab.train.options import PRESETS

    return SHAPES[name] if name in SHAPES else dict(PRESETS[name])


def _link_half(cache: Path, n: int) -> None:
    """``frames_half``: the first half of the frames (links)."""
    half = cache / "frames_half"
    if len(list(half.glob("*.png"))) == n // 2:
        return
    half.mkdir(parents=True, exist_ok=True)
    for i in range(n // 2):
        link = half / frame_name(i, "png")
        if not link.exists():
            link.symlink_to(cache / "frames" / frame_name(i, "png"))


CLIP = ROOT / "samples" / "dst.mp4"


def prepare(cache: Path, n: int, presets: list[str], clip: Path = CLIP, size: tuple[int, int] | None = None) -> None:
    """The cache's frames (the first ``n`` of ``clip``, resized to ``size`` (w, h) when given), their faces and a
    model of each preset's shape; a cache made from another clip or size is made again."""
    import shutil

    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract
    from facelab.train.options import TrainOptions
    from facelab.train.trainer import Trainer

    path = Path(clip).resolve()
    source = {"clip": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
              "size": list(size) if size else None}
    made = cache / "source.json"
    if (made.exists() and json.loads(made.read_text()) != source) or (not made.exists() and Path(clip) != CLIP):
        for old in cache.iterdir():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    frames = cache / "frames"
    if len(list(frames.glob("*.png"))) != n:
        frames.mkdir(parents=True, exist_ok=True)
        for old in frames.glob("*.png"):
            old.unlink()
        for index, rgb in iter_frames(clip):
            if index >= n:
                break
            if size is not None:  # cropped at the centre to the size's aspect, then resized
                h, w = rgb.shape[:2]
                ch, cw = min(h, round(w * size[1] / size[0])), min(w, round(h * size[0] / size[1]))
                top, left = (h - ch) // 2, (w - cw) // 2
                rgb = cv2.resize(rgb[top:top + ch, left:left + cw], size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(frames / frame_name(index, "png")), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if len(list(frames.glob("*.png"))) != n:
            raise SystemExit(f"{clip} has fewer than {n} frames")
    made.write_text(json.dumps(source))
    ex = ExtractOptions(size=128, workers=1)
    if not (cache / "aligned").is_dir() or len(list((cache / "aligned").iterdir())) < n:
        run_extract(frames, cache / "aligned", ex)
    for name in presets:
        model = cache / f"model_{name}"
        if (model / "done").exists():
            continue
        opts = TrainOptions.model_validate(_shape(name) | {"batch_size": 4, "workers": 0, "preview_every": 0,
                                                           "backup_hours": 0})
        Trainer(model, opts, cache / "aligned", cache / "aligned").train(iterations=1)
        (model / "done").write_text("1")


def merge_once(cache: Path, name: str, frames: str = "frames") -> tuple[float, float]:
    """(CPU seconds of the whole merge, wall seconds per frame of its loop), one worker, no provenance."""
    import shutil

    from facelab.merge.options import MergeOptions
    from facelab.merge.runner import run_merge

    out = cache / f"merged_{name}"
    shutil.rmtree(out, ignore_errors=True)
    c0 = time.process_time()
    s = run_merge(cache / f"model_{name}", cache / frames, cache / "aligned", out,
                  MergeOptions(mode="overlay", color_transfer="rct", mask_mode="dst"), workers=1, provenance=False)
    return time.process_time() - c0, 1.0 / s.loop_frames_per_second


REGION = "frame"


class _NoSigning:
    """Credentials for the end-to-end runs: nothing is signed (identity() makes no key)."""

    def identity(self) -> None:
        return None


PLAN = "auto"  # --plan: the thread plan every merge runs (merge.schedule.ThreadPlan); "auto": merge's own choice
MARK_CPU: list[float] = []  # the thread CPU seconds of each mark call in the marked merges (in the workers)


def merge_marked(cache: Path, name: str, marked: bool, workers: int | None, frames: str = "frames"
                 ) -> tuple[float, float, str]:
    """(CPU seconds of the whole merge, wall seconds per frame of its loop, the thread plan it chose) at merge's
    default workers, with the watermark marked as merge marks it (``marked``) or without it; no record, no C2PA
    signature."""
    import shutil
    from dataclasses import dataclass

    import facelab.merge.runner as runner
    from facelab.merge.options import MergeOptions
    from facelab.merge.schedule import ThreadPlan
    from facelab.provenance.marker import ProvenanceMarker, marker_for

    class FixedPlan(ThreadPlan):
        """The plan --plan names from the first batch on (a merge with one worker stays in lockstep)."""

        def __init__(self, cores: int, active: bool) -> None:
            super().__init__(cores, active)
            if self.schedule == "probe":
                self.schedule = PLAN

    @dataclass(frozen=True)
    class MarkOnly(ProvenanceMarker):
        def mark(self, *args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()  # the calling worker's own CPU clock (user and system: page faults count)
            out = super().mark(*args, **kwargs)
            MARK_CPU.append(time.thread_time() - t0)  # list.append is atomic under the GIL
            return out

        def tag(self, encoded: bytes, title: str = "", parent: Path | None = None) -> bytes:
            return encoded

        def finish_folder(self, folder: Path) -> Path:
            return Path(folder)

    def mark_only(model_id: str, source: Any = None, credentials: Any = None) -> ProvenanceMarker:
        m = marker_for(model_id, source)
        return MarkOnly(m.record, m.payload)

    out = cache / f"merged_e2e_{name}"
    shutil.rmtree(out, ignore_errors=True)
    opts = MergeOptions(mode="overlay", color_transfer="rct", mask_mode="dst", watermark_region=REGION)
    saved, saved_plan = runner.marker_for, runner.ThreadPlan
    runner.marker_for = mark_only  # type: ignore[assignment]
    if PLAN != "auto":
        runner.ThreadPlan = FixedPlan  # type: ignore[misc,attr-defined]
    try:
        c0 = time.process_time()
        s = runner.run_merge(cache / f"model_{name}", cache / frames, cache / "aligned", out, opts,
                             workers=workers, provenance=marked, credentials=_NoSigning())  # type: ignore[arg-type]
        cpu = time.process_time() - c0
    finally:
        runner.marker_for, runner.ThreadPlan = saved, saved_plan  # type: ignore[misc,attr-defined]
    return cpu, 1.0 / s.loop_frames_per_second, s.schedule


def end_to_end(cache: Path, name: str, n: int, repeats: int, workers: int | None) -> dict[str, Any]:
    """CPU per frame as above (all frames minus the first half, over the other half: setup cancels out), wall
    per frame from the loop of the whole merge; the marked and plain runs alternate, in turns of either order."""
    from facelab.merge.options import MergeOptions

    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    in_merge: list[float] = []  # the marking's thread CPU per frame in each whole marked merge
    schedules: list[str] = []  # the thread plan each merge chose (merge.schedule), in run order
    rest = n - n // 2
    for r in range(repeats):
        for marked in ((False, True) if r % 2 == 0 else (True, False)):
            half, _, plan_half = merge_marked(cache, name, marked, workers, "frames_half")
            MARK_CPU.clear()
            full, wall, plan = merge_marked(cache, name, marked, workers)
            if marked:
                in_merge.append(sum(MARK_CPU) / n)
            runs[marked].append(((full - half) / rest, wall))
            schedules.append(f"{'marked' if marked else 'plain'}: {plan_half} (half), {plan} (all)")
    med = {m: (float(np.median([c for c, _ in v])), float(np.median([w for _, w in v]))) for m, v in runs.items()}
    return {"workers": workers or MergeOptions().workers, "repeats": repeats,
            "plain_cpu_ms_per_frame": round(med[False][0] * 1000, 2),
            "marked_cpu_ms_per_frame": round(med[True][0] * 1000, 2),
            "plain_wall_ms_per_frame": round(med[False][1] * 1000, 2),
            "marked_wall_ms_per_frame": round(med[True][1] * 1000, 2),
            "share_cpu": round(med[True][0] / med[False][0] - 1.0, 3),
            "share_wall": round(med[True][1] / med[False][1] - 1.0, 3),
            # the marking measured inside the marked merges (each ProvenanceMarker.mark call on its worker's thread
            # CPU clock), over the unmarked merges' CPU per frame: no difference of two noisy runs
            "in_merge_mark_cpu_ms_per_frame": round(float(np.median(in_merge)) * 1000, 3),
            "in_merge_share_cpu": round(float(np.median(in_merge)) / med[False][0], 3),
            "wall_ms_per_frame_each_run": {"plain": [round(w * 1000, 2) for _, w in runs[False]],
                                           "marked": [round(w * 1000, 2) for _, w in runs[True]]},
            # the CPU figures move with the schedule each merge picks from its first batches (a model on every
            # thread spins while it waits); a share from runs that picked differently is not comparable
            "schedules": schedules}


def mark_once(cache: Path, name: str) -> tuple[float, float]:
    """(CPU, wall) seconds per frame of syncmark.embed on the merged frames as merge marks them (REGION:
    "frame", the default, the whole frame texture-masked; "face": inside the merge's masks)."""
    from facelab.provenance import syncmark

    out = cache / f"merged_{name}"
    paths = sorted(out.glob("*.png"))
    frames = [read_image_rgb(p) for p in paths]
    masks = [cv2.imread(str(out / "masks" / p.name), cv2.IMREAD_GRAYSCALE) for p in paths]
    payload = syncmark.make_payload("3f9a6c01be" + "5d" * 27)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # as merge.jobs' workers run it
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        for i, (rgb, mask) in enumerate(zip(frames, masks, strict=True)):
            if REGION == "frame":
                syncmark.embed(rgb, payload, frame=i, texture=True, within=mask)
            else:
                syncmark.embed(rgb, payload, region=mask, frame=i)
        return (time.process_time() - c0) / len(frames), (time.perf_counter() - t0) / len(frames)
    finally:
        cv2.setNumThreads(threads)


def _clip_name(clip: Path, size: tuple[int, ...] | None) -> str:
    """The clip as the JSON names it: its path under the repository or the shared data, and its frames' size."""
    path = Path(clip).resolve()
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    if size is None:
        _, first = next(iter_frames(path))
        return f"{name} ({first.shape[1]}x{first.shape[0]})"
    return f"{name} cropped and resized to {size[0]}x{size[1]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["tiny64", "demo", "quick96"])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--region", choices=("frame", "face"), default="frame",
                    help="where merge marks (its watermark_region option)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/facelab_wm_cost"))
    ap.add_argument("--clip", type=Path, default=CLIP, help="the dst clip (default: the bundled 480x480 one)")
    ap.add_argument("--size", default=None,
                    help="crop its frames to WxH's aspect and resize them to it (854x480, 640x480: 480p)")
    ap.add_argument("--end-to-end", action="store_true",
                    help="the whole merge at its default workers, marked and not, alternately (see above)")
    ap.add_argument("--workers", type=int, default=None, help="with --end-to-end: merge workers (default: merge's)")
    ap.add_argument("--plan", choices=("auto", "lockstep", "overlap"), default="auto",
                    help="with --end-to-end: the thread plan every merge runs (default: merge's choice from its first "
                         "batches, which can differ between runs and makes their CPU times incomparable)")
    args = ap.parse_args()
    global REGION, PLAN
    REGION, PLAN = args.region, args.plan
    args.cache.mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    if size is not None and len(size) != 2:
        raise SystemExit(f"--size takes WxH, got {args.size}")
    prepare(args.cache, args.frames, args.presets, args.clip, size)
    _link_half(args.cache, args.frames)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        "frames": args.frames, "clip": _clip_name(args.clip, size), "plan": args.plan, "presets": {}}
    for name in args.presets:
        if args.end_to_end:
            e2e = end_to_end(args.cache, name, args.frames, args.repeats, args.workers)
            result["presets"][name] = {"shape": _shape(name), **e2e}
            print(f"{name}: {result['presets'][name]}", file=sys.stderr, flush=True)
            continue
        cpu_full, cpu_half, wall, mark = [], [], [], []
        for _ in range(args.repeats):
            cpu, _ = merge_once(args.cache, name, "frames_half")
            cpu_half.append(cpu)
            cpu, per_frame = merge_once(args.cache, name)
            cpu_full.append(cpu)
            wall.append(per_frame)
            mark.append(mark_once(args.cache, name))
        rest = args.frames - args.frames // 2
        merge_cpu = (float(np.median(cpu_full)) - float(np.median(cpu_half))) / rest
        mark_cpu, mark_wall = min(m[0] for m in mark), min(m[1] for m in mark)
        result["presets"][name] = {
            "shape": _shape(name), "merge_cpu_ms_per_frame": round(merge_cpu * 1000, 2),
            "merge_wall_ms_per_frame": round(min(wall) * 1000, 2), "mark_cpu_ms_per_frame": round(mark_cpu * 1000, 2),
            "mark_wall_ms_per_frame": round(mark_wall * 1000, 2), "mark_share_cpu": round(mark_cpu / merge_cpu, 3),
            "mark_share_wall": round(mark_wall / min(wall), 3)}
        print(f"{name}: {result['presets'][name]}", file=sys.stderr, flush=True)
    result["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
