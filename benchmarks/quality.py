"""Swap quality of DF, LIAE, LIAE + TrueFace and LIAE + GAN at the same training budget. Prints JSON.

    python benchmarks/quality.py [--iterations 1000] [--preset demo] [--src samples/src.mp4]
        [--dst samples/dst.mp4] [--workspace quality_workspace] [--frames 100] [--models df,liae,...]
        [--table docs/quality_table.md]

The budget is a number of iterations (not minutes), so tables from different machines compare. Frames
and faces are extracted once and shared by the runs; each model is trained with the preset plus its
variant's options, merged onto every dst frame (default merge options), encoded with dst's audio and
evaluated against dst and the src faces (facelab.evaluate). Every step resumes: a model already at the
budget is not trained again, a finished merge or evaluation is reused. Writes, in the workspace,
`quality.md` (the table in the DeepFaceLab paper's form: mean +- std over the sampled frames),
`quality.json`, per model `eval/<model>.csv|json`, and `previews/` (dst next to each model's result on
a few frames, and each model's training preview).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from facelab.core.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from facelab.extract.options import ExtractOptions  # noqa: E402
from facelab.extract.pipeline import run_extract  # noqa: E402
from facelab.media.encode import build_video  # noqa: E402
from facelab.media.frames import extract_frames, list_frames, read_image_rgb  # noqa: E402
from facelab.media.video import probe_video  # noqa: E402
from facelab.merge.options import MergeOptions  # noqa: E402
from facelab.merge.runner import run_merge  # noqa: E402
from facelab.provenance.marker import marker_for  # noqa: E402
from facelab.train.checkpoint import read_state  # noqa: E402
from facelab.train.options import PRESETS, TrainOptions  # noqa: E402
from facelab.train.trainer import Trainer  # noqa: E402

# The paper's Table 2 rows. TrueFace and GAN powers are DeepFaceLab's suggested starting values.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "df": ("DF", {"arch": "df-ud"}),
    "liae": ("LIAE", {"arch": "liae-ud"}),
    "liae-tf": ("LIAE + TrueFace", {"arch": "liae-ud", "true_face_power": 0.01}),
    "liae-gan": ("LIAE + GAN", {"arch": "liae-ud", "gan_power": 0.1}),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def train_variant(model_dir: Path, opts: TrainOptions, src: Path, dst: Path, budget: int) -> dict[str, Any]:
    state = read_state(model_dir)
    done = int(state["iteration"]) if state else 0
    t0 = time.perf_counter()
    if done < budget:
        trainer = Trainer(model_dir, opts, src, dst)
        try:
            trainer.train(iterations=budget - done)
        finally:
            trainer.close()
    state = read_state(model_dir) or {}
    return {"iteration": int(state.get("iteration", 0)), "train_s_this_run": round(time.perf_counter() - t0, 1),
            "train_s_total": round(float(state.get("elapsed_s", 0.0)), 1), "losses": state.get("last_losses", {})}


def merge_variant(model_dir: Path, frames: Path, dst_aligned: Path, ws: Path, name: str, iteration: int,
                  dst: Path) -> Path:
    merged = ws / "merged" / f"{name}-it{iteration}"
    video = ws / "results" / f"{name}-it{iteration}.mp4"
    if video.is_file():
        return video
    summary = run_merge(model_dir, frames, dst_aligned, merged, MergeOptions())
    video.parent.mkdir(parents=True, exist_ok=True)
    build_video(merged, video, fps=probe_video(dst).fps_fraction, audio_from=dst)
    marker_for(summary.model_id, {"src": "benchmark", "dst": dst.name}).finish_video(video)
    return video


def preview_grid(frames: Path, merged: dict[str, Path], out: Path, rows: int = 3) -> None:
    """dst | model 1 | model 2 | ... for a few frames spread over the clip, half size."""
    import cv2

    paths = list_frames(frames)
    picks = np.linspace(0, len(paths) - 1, rows + 2)[1:-1].round().astype(int)
    lines = []
    for k in picks:
        row = [read_image_rgb(paths[k])]
        for folder in merged.values():
            row.append(read_image_rgb(folder / f"{paths[k].stem}.png"))
        lines.append(np.concatenate([cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2)) for im in row], axis=1))
    grid = np.concatenate(lines, axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=1000, help="training budget per model")
    ap.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    ap.add_argument("--src", type=Path, default=ROOT / "samples" / "src.mp4")
    ap.add_argument("--dst", type=Path, default=ROOT / "samples" / "dst.mp4")
    ap.add_argument("--workspace", type=Path, default=ROOT / "quality_workspace")
    ap.add_argument("--frames", type=int, default=100, help="frames evaluated per result")
    ap.add_argument("--models", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--table", type=Path, help="also copy the Markdown table here")
    args = ap.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in VARIANTS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    ws: Path = args.workspace
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    frames, src_aligned, dst_aligned = ws / "dst" / "frames", ws / "src" / "aligned", ws / "dst" / "aligned"
    extract_frames(args.dst, frames)
    ext = ExtractOptions(workers=2)
    run_extract(args.src, src_aligned, ext)
    run_extract(frames, dst_aligned, ext)
    seconds["frames_and_extract"] = round(time.perf_counter() - t0, 1)
    log(f"extraction ready ({seconds['frames_and_extract']} s)")

    runs: dict[str, dict[str, Any]] = {}
    for name in names:
        label, overrides = VARIANTS[name]
        opts = TrainOptions.model_validate({**PRESETS[args.preset], **overrides, "device": args.device,
                                            "backup_hours": 0})
        model_dir = ws / "models" / f"{args.preset}-{name}"
        log(f"{label}: training to {args.iterations} iterations")
        info = train_variant(model_dir, opts, src_aligned, dst_aligned, args.iterations)
        t0 = time.perf_counter()
        video = merge_variant(model_dir, frames, dst_aligned, ws, name, info["iteration"], args.dst)
        info["merge_and_encode_s"] = round(time.perf_counter() - t0, 1)
        runs[name] = {"label": label, "options": overrides, "model_dir": str(model_dir), "result": str(video), **info}
        log(f"{label}: at iteration {info['iteration']}, result {video}")

    # -- evaluation (imported here: training and merging do not need it) --
    from facelab.evaluate.options import EvaluateOptions
    from facelab.evaluate.report import markdown_table, read_summary, write_reports
    from facelab.evaluate.runner import evaluate_swap

    summaries = {}
    for name, run in runs.items():
        out_json = ws / "eval" / f"{name}-it{run['iteration']}.json"
        if out_json.is_file():
            summaries[name] = read_summary(out_json)
        else:
            log(f"{run['label']}: evaluating {args.frames} frames")
            t0 = time.perf_counter()
            ev = evaluate_swap(Path(run["result"]), args.dst, src_aligned, EvaluateOptions(frames=args.frames))
            write_reports(ev, out_json.with_suffix(".csv"), out_json)
            summaries[name] = ev.summary
            run["evaluate_s"] = round(time.perf_counter() - t0, 1)
        run["summary"] = summaries[name]

    merged = {n: ws / "merged" / f"{n}-it{r['iteration']}" for n, r in runs.items()}
    preview_grid(frames, merged, ws / "previews" / "frames.png")
    for name, run in runs.items():
        latest = Path(run["model_dir"]) / "previews" / "latest.png"
        if latest.is_file():
            shutil.copyfile(latest, ws / "previews" / f"train-{name}.png")

    iters = {r["iteration"] for r in runs.values()}
    title = (f"{args.src.name} -> {args.dst.name}, preset {args.preset}, "
             f"{'/'.join(str(i) for i in sorted(iters))} iterations, {args.frames} sampled frames")
    table = markdown_table({runs[n]["label"]: s for n, s in summaries.items()}, title)
    write_text_atomic(ws / "quality.md", table)
    if args.table:
        write_text_atomic(args.table, table)
    seconds["total"] = round(time.perf_counter() - t_start, 1)
    report = {"benchmark": "quality", "preset": args.preset, "iterations": args.iterations,
              "src": str(args.src), "dst": str(args.dst), "frames": args.frames, "seconds": seconds, "runs": runs,
              "table": str(ws / "quality.md"), "previews": str(ws / "previews")}
    write_json_atomic(ws / "quality.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
