"""The workspace page's model: what a workspace holds, which step comes next, and each step's command.

Every step runs as the `facelab` command a user would type (so a killed step resumes like the CLI):

    frames       facelab video frames DST_VIDEO -o WS/dst/frames
    extract_src  facelab extract SRC_VIDEO -o WS/src/aligned
    extract_dst  facelab extract WS/dst/frames -o WS/dst/aligned
    train        facelab train --src WS/src/aligned --dst WS/dst/aligned --model-dir WS/model [--preset P]
    merge        facelab merge --model-dir WS/model --frames WS/dst/frames --aligned WS/dst/aligned -o WS/merged
                 [--session WS/merge_session.json]
    video        the merge command with --video WS/result.mp4 (finished frames are kept; the video gets dst's
                 audio and the provenance mark)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facelab.core.config import option_error
from facelab.core.errors import FacelabError, InputError
from facelab.core.model_folder import read_state
from facelab.extract.options import ExtractOptions
from facelab.faceset.folder import list_face_files, scan_faces
from facelab.media.frames import list_frames, read_frame_info
from facelab.media.video import probe_video
from facelab.studio.layout import Layout
from facelab.train.checkpoint import read_config
from facelab.train.options import PRESETS

STEPS = ("frames", "extract_src", "extract_dst", "train", "merge", "video")
LABELS = {"frames": "Frames", "extract_src": "Extract src faces", "extract_dst": "Extract dst faces",
          "train": "Train", "merge": "Merge", "video": "Video"}
StepState = Literal["done", "partial", "ready", "blocked"]


# ---- the page's requests --------------------------------------------------------------------------

class FramesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fps: str | None = Field(None, max_length=20, description="resample dst to this frame rate (default: the video's)")


class ExtractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    options: dict[str, Any] = Field(default_factory=dict, description="extract options (facelab extract flags)")


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str = Field("demo", description="preset of a new model (ignored when the model exists)")
    iterations: int | None = Field(None, ge=1, le=10_000_000, description="train this many iterations")
    minutes: float | None = Field(None, gt=0, le=100_000, description="train this many minutes")
    from_scratch: bool = Field(False, description="a new model from random weights, not the preset's prior")


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    use_session: bool = Field(True, description="merge with WORKSPACE/merge_session.json when it exists")


def option_flags(model: type[BaseModel], values: dict[str, Any], renames: dict[str, str] | None = None
                 ) -> list[str]:
    """``values`` checked against ``model`` (the CLI's options model) as the command's flags."""
    try:
        checked = model.model_validate(values)
    except ValidationError as exc:
        raise option_error(exc) from None
    renames = renames or {}
    flags: list[str] = []
    for name in sorted(values):
        value = getattr(checked, name)
        flag = renames.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            flags += [flag, str(value)]
    return flags


# ---- status ---------------------------------------------------------------------------------------

@dataclass
class _Cached:
    key: tuple[Any, ...]
    value: Any


_cache: dict[str, _Cached] = {}
_cache_lock = threading.Lock()


def _cached(name: str, key: tuple[Any, ...], compute: Any) -> Any:
    with _cache_lock:
        hit = _cache.get(name)
        if hit is not None and hit.key == key:
            return hit.value
    value = compute()
    with _cache_lock:
        _cache[name] = _Cached(key, value)
    return value


def _dir_key(path: Path) -> tuple[Any, ...]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_ino)


def _rel(layout: Layout, path: Path) -> str:
    try:
        return path.resolve().relative_to(layout.root).as_posix()
    except ValueError:
        return str(path)


def _video_status(layout: Layout, side: str) -> dict[str, Any]:
    path = layout.video(side)
    if path is None:
        return {"path": None, "exists": False, "note": "not named: add it to studio.json (inputs." + side + ")"}
    out: dict[str, Any] = {"path": _rel(layout, path), "name": path.name, "exists": path.is_file()}
    if not out["exists"]:
        return out
    st = path.stat()

    def probe() -> dict[str, Any]:
        try:
            info = probe_video(path)
        except FacelabError as exc:
            return {"error": str(exc)}
        return {"width": info.width, "height": info.height, "fps": info.fps_fraction, "frames": info.frame_count,
                "duration_s": round(info.duration_s, 2), "audio": info.has_audio}

    out.update(_cached(f"video:{path}", (st.st_size, st.st_mtime_ns), probe))
    return out


def _faces(folder: Path) -> int:
    try:
        return len(list_face_files(folder))
    except InputError:
        return 0


def _frames_without_face(frames: list[str], aligned: Path) -> list[str]:
    def compute() -> list[str]:
        with_face = {rec.source.frame for _, rec in scan_faces(aligned).faces}
        return [f for f in frames if f not in with_face]

    return list(_cached(f"noface:{aligned}", (*_dir_key(aligned), tuple(frames)), compute))


def _extract_state(folder: Path) -> StepState:
    if (folder / "_extract" / "summary.json").is_file():
        return "done"
    return "partial" if folder.is_dir() and any(folder.iterdir()) else "ready"


def workspace_status(layout: Layout) -> dict[str, Any]:
    """Everything the workspace page shows: inputs, counts, and each step's state (done/partial/ready/blocked)."""
    videos = {side: _video_status(layout, side) for side in ("src", "dst")}
    frame_paths = list_frames(layout.dst_frames) if layout.dst_frames.is_dir() else []
    stems = [p.stem for p in frame_paths]
    frames_error: str | None = None
    try:
        info = read_frame_info(layout.dst_frames)
    except InputError as exc:
        info, frames_error = None, str(exc)
    expected = int(info["frame_count"]) if info is not None else None
    faces = {"src": _faces(layout.src_aligned), "dst": _faces(layout.dst_aligned)}
    no_face = _frames_without_face(stems, layout.dst_aligned) if faces["dst"] and stems else []
    model_error: str | None = None
    try:
        state = read_state(layout.model)
        config = read_config(layout.model)
    except FacelabError as exc:
        state, config, model_error = None, None, str(exc)
    iteration = int(state.get("iteration", 0)) if state else 0
    merged = len(list_frames(layout.merged)) if layout.merged.is_dir() else 0
    result = layout.result_video
    merge_json = layout.merged / "merge.json"
    result_fresh = result.is_file() and (not merge_json.is_file()
                                         or result.stat().st_mtime >= merge_json.stat().st_mtime)

    steps: dict[str, StepState] = {}
    steps["frames"] = ("done" if expected is not None and len(stems) >= expected and stems else
                       "partial" if stems else "ready" if videos["dst"]["exists"] else "blocked")
    steps["extract_src"] = (_extract_state(layout.src_aligned) if videos["src"]["exists"] or faces["src"]
                            else "blocked")
    if steps["extract_src"] == "blocked" and faces["src"]:
        steps["extract_src"] = "done"
    steps["extract_dst"] = _extract_state(layout.dst_aligned) if stems else "blocked"
    can_train = faces["src"] > 0 and faces["dst"] > 0
    steps["train"] = "partial" if iteration > 0 else "ready" if can_train else "blocked"
    can_merge = iteration > 0 and bool(stems) and faces["dst"] > 0
    steps["merge"] = ("done" if can_merge and merged >= len(stems) else "partial" if can_merge and merged else
                      "ready" if can_merge else "blocked")
    steps["video"] = ("done" if result_fresh and steps["merge"] == "done" else
                      "ready" if steps["merge"] == "done" or (can_merge and merged) else "blocked")
    nxt = next((s for s in STEPS if steps[s] == "ready" or (steps[s] == "partial" and s != "train")), None)
    return {
        "root": str(layout.root),
        "videos": videos,
        "frames": {"count": len(stems), "expected": expected, "fps": info.get("fps_fraction") if info else None,
                   "size": [info["width"], info["height"]] if info else None, "error": frames_error},
        "faces": faces,
        "frames_without_face": {"count": len(no_face), "first": no_face[:20]},
        "model": {"exists": state is not None or config is not None, "iteration": iteration,
                  "arch": config.arch if config else None, "resolution": config.resolution if config else None,
                  "face_type": config.face_type if config else None,
                  "elapsed_s": round(float(state.get("elapsed_s", 0.0)), 1) if state else 0.0,
                  "preview": (layout.model / "previews" / "latest.png").is_file(), "error": model_error},
        "merged": {"count": merged, "of": len(stems), "session": layout.session.is_file()},
        "result": {"exists": result.is_file(), "path": _rel(layout, result),
                   "size": result.stat().st_size if result.is_file() else None,
                   "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.stat().st_mtime))
                   if result.is_file() else None, "current": result_fresh},
        "steps": [{"name": s, "label": LABELS[s], "state": steps[s]} for s in STEPS],
        "next": nxt,
        "presets": sorted(PRESETS),
    }


# ---- commands -------------------------------------------------------------------------------------

def _need(path: Path | None, what: str) -> Path:
    if path is None or not path.exists():
        raise InputError(f"{what} not found: run the step before it first" if path is not None else
                         f"{what} is not named: add it to studio.json (\"inputs\": {{\"src\": ..., \"dst\": ...}})")
    return path


def step_command(layout: Layout, step: str, body: dict[str, Any]) -> list[str]:
    """The `facelab` arguments of a step, with the page's options (validated: InputError on bad ones)."""
    try:
        if step == "frames":
            req_f = FramesRequest.model_validate(body)
            args = ["video", "frames", str(_need(layout.video("dst"), "the dst video")), "-o", str(layout.dst_frames)]
            return args + (["--fps", req_f.fps] if req_f.fps else [])
        if step in ("extract_src", "extract_dst"):
            req_e = ExtractRequest.model_validate(body)
            flags = option_flags(ExtractOptions, req_e.options, {"image_format": "--format"})
            if step == "extract_src":
                return ["extract", str(_need(layout.video("src"), "the src video")), "-o", str(layout.src_aligned),
                        *flags]
            return ["extract", str(_need(layout.dst_frames, "dst frames folder")), "-o", str(layout.dst_aligned),
                    *flags]
        if step == "train":
            req_t = TrainRequest.model_validate(body)
            if req_t.preset not in PRESETS:
                raise InputError(f"unknown preset {req_t.preset!r}; choose one of {', '.join(sorted(PRESETS))}")
            args = ["train", "--src", str(_need(layout.src_aligned, "src faces folder")),
                    "--dst", str(_need(layout.dst_aligned, "dst faces folder")), "--model-dir", str(layout.model)]
            if read_config(layout.model) is None:
                args += ["--preset", req_t.preset] + (["--from-scratch"] if req_t.from_scratch else [])
            if req_t.iterations is not None:
                args += ["--iterations", str(req_t.iterations)]
            elif req_t.minutes is not None:
                args += ["--minutes", f"{req_t.minutes:g}"]
            return args
        if step in ("merge", "video"):
            req_m = MergeRequest.model_validate(body)
            if read_state(layout.model) is None:
                raise InputError("the model has no saved weights yet: train it first", layout.model)
            args = ["merge", "--model-dir", str(layout.model), "--frames", str(_need(layout.dst_frames, "dst frames")),
                    "--aligned", str(_need(layout.dst_aligned, "dst faces folder")), "-o", str(layout.merged)]
            if req_m.use_session and layout.session.is_file():
                args += ["--session", str(layout.session)]
            return args + (["--video", str(layout.result_video)] if step == "video" else [])
    except ValidationError as exc:
        raise option_error(exc) from None
    raise InputError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")


def relative_args(layout: Layout, args: list[str]) -> list[str]:
    """The arguments as shown in the page (workspace paths relative; JobInfo.shown is the same, joined)."""
    root = str(layout.root) + "/"
    return [a[len(root):] if a.startswith(root) else a for a in args]
