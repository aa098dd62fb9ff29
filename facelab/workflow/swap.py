"""`facelab swap SRC DST -o OUT`: frames, extraction, training, merging and video in one workspace.

Every step writes into the workspace and is resumable: a re-run skips finished steps (recorded in
WORKSPACE/swap.json) and resumes an unfinished one where it stopped. A user can stop after any step,
inspect or clean the aligned faces, and run the command again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelab.core.atomic import write_json_atomic
from facelab.core.errors import InputError
from facelab.core.lock import locked
from facelab.core.versioned import json_loads
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract
from facelab.faceset.coverage import faceset_coverage
from facelab.media.encode import build_video
from facelab.media.frames import extract_frames
from facelab.media.video import probe_video
from facelab.merge.options import MergeOptions
from facelab.merge.runner import run_merge
from facelab.provenance.credentials import ContentCredentials
from facelab.provenance.marker import folder_phase, marker_for
from facelab.train.checkpoint import merge_options, read_config
from facelab.train.options import TrainOptions, preset_values
from facelab.train.trainer import Status, Trainer
from facelab.workflow.compare import side_by_side

STEPS = ("frames", "extract_src", "extract_dst", "train", "merge", "video")
Say = Callable[[str], None]


@dataclass
class SwapResult:
    video: Path
    comparison: Path
    preview: Path
    workspace: Path
    iterations: int
    seconds: dict[str, float] = field(default_factory=dict)


class _Steps:
    """WORKSPACE/swap.json: which steps are done, and with which inputs."""

    def __init__(self, workspace: Path, inputs: dict[str, Any]) -> None:
        self.path = workspace / "swap.json"
        self.data: dict[str, Any] = {"schema": "facelab.swap", "version": 1, "inputs": inputs, "done": {}}
        if self.path.exists():
            try:
                old = json_loads(self.path.read_bytes())
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"unreadable swap state ({exc}); delete it to start over", self.path) from None
            old_inputs, done = (old.get("inputs", {}), old.get("done", {})) if isinstance(old, dict) else (None, None)
            if not isinstance(old_inputs, dict) or not isinstance(done, dict):
                raise InputError("not a facelab swap state; delete it to start over", self.path)
            if old_inputs.get("src") not in (None, inputs["src"]) or old_inputs.get("dst") not in (None, inputs["dst"]):
                raise InputError("this workspace belongs to another src/dst pair; use another --workspace",
                                 workspace)
            self.data["done"] = dict(done)

    def done(self, step: str) -> bool:
        return step in self.data["done"]

    def finish(self, step: str, seconds: float, **info: Any) -> None:
        self.data["done"][step] = {"seconds": round(seconds, 2), **info}
        write_json_atomic(self.path, self.data)

    def reopen(self, *steps: str) -> None:
        for s in steps:
            self.data["done"].pop(s, None)
        write_json_atomic(self.path, self.data)


@locked("swap", write=("workspace",))
def run_swap(src: Path, dst: Path, out: Path, workspace: Path, preset: str = "demo", minutes: float | None = 15.0,
             iterations: int | None = None, merge: MergeOptions | None = None, workers: int | None = None,
             from_scratch: bool = False, say: Say = lambda _: None,
             on_status: Callable[[Status], None] | None = None,
             credentials: ContentCredentials | None = None) -> SwapResult:
    src, dst, out, ws = Path(src), Path(dst), Path(out), Path(workspace)
    for clip in (src, dst):
        probe_video(clip)  # clear errors for missing or unreadable inputs, before any work
    if minutes is None and iterations is None:
        raise InputError("give a training budget: --minutes or --iterations")
    ws.mkdir(parents=True, exist_ok=True)
    steps = _Steps(ws, {"src": str(src.resolve()), "dst": str(dst.resolve()), "preset": preset})
    seconds: dict[str, float] = {}
    ext = ExtractOptions() if workers is None else ExtractOptions(workers=workers)
    frames, src_aligned, dst_aligned = ws / "dst" / "frames", ws / "src" / "aligned", ws / "dst" / "aligned"
    model_dir, merged = ws / "model", ws / "merged"
    creds = credentials or ContentCredentials()

    def step(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        if steps.done(name):
            say(f"{name}: done before, skipped")
            return
        say(f"{name}...")
        t0 = time.perf_counter()
        info = fn()
        seconds[name] = time.perf_counter() - t0
        steps.finish(name, seconds[name], **info)
        say(f"{name}: {seconds[name]:.1f} s")

    step("frames", lambda: {"frames": extract_frames(dst, frames).frame_count})
    step("extract_src", lambda: {"faces": run_extract(src, src_aligned, ext).faces})
    step("extract_dst", lambda: {"faces": run_extract(frames, dst_aligned, ext).faces})
    if not steps.done("train"):  # what src does not show, the swap can only guess
        flips = TrainOptions.model_validate(preset_values(preset)).random_flip_src
        try:
            gaps = faceset_coverage(src_aligned, dst_aligned, mirror_src=flips).gaps()
        except InputError:  # a side without faces: training says so, with the details
            gaps = []
        for line in gaps:
            say(f"note: {line} (facelab faceset coverage)")

    def train() -> dict[str, Any]:
        stored = read_config(model_dir)
        requested = {**preset_values(preset), "from_scratch": from_scratch}
        opts = merge_options(stored, requested, set(requested) if stored is None else set())
        trainer = Trainer(model_dir, opts, src_aligned, dst_aligned, previous=stored)
        # an iteration budget is the model's total: a run killed after a checkpoint trains only the rest
        left = None if iterations is None else max(0, iterations - trainer.state.iteration)
        try:
            state = trainer.train(iterations=left, minutes=minutes, on_status=on_status)
        finally:
            trainer.close()
        if trainer.interrupted:  # Ctrl+C: saved; the next run resumes training instead of skipping it
            raise KeyboardInterrupt
        return {"iteration": state.iteration}

    before = steps.done("train")
    step("train", train)
    if not before and steps.done("train"):
        steps.reopen("merge", "video")  # a newly trained model: merge again

    def do_merge() -> dict[str, Any]:
        s = run_merge(model_dir, frames, dst_aligned, merged, merge or MergeOptions(), workers=workers,
                      credentials=creds)
        return {"merged": s.merged, "passed_through": s.passed_through, "model_id": s.model_id}

    step("merge", do_merge)
    model_id = steps.data["done"]["merge"]["model_id"]
    comparison = out.with_name(out.stem + "_compare" + out.suffix)

    def video() -> dict[str, Any]:
        out.parent.mkdir(parents=True, exist_ok=True)
        info = probe_video(dst)
        # src's file name may name a person: the record, like the C2PA manifest, says only "source identity"
        # unless the user credits someone (--credit)
        source = f"source identity, credited as: {creds.credit}" if creds.credit else "source identity"
        # the comparison marks its merged half again: at the phase the merge chose (MERGED/provenance.json)
        marker = marker_for(model_id, {"src": source, "dst": dst.name}, creds).at_phase(folder_phase(merged))
        build_video(merged, out, fps=info.fps_fraction, audio_from=dst)
        marker.finish_video(out, parent=dst)
        side_by_side(frames, merged, comparison, info.fps_fraction, dst, marker)
        return {"video": str(out), "comparison": str(comparison)}

    if not out.exists() or not comparison.exists():
        steps.reopen("video")
    step("video", video)
    it = int(steps.data["done"]["train"].get("iteration", 0))
    return SwapResult(out, comparison, model_dir / "previews" / "latest.png", ws, it, seconds)
