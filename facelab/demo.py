"""The bundled demo: what exists of the pipeline, run on the sample clips (src: samples/src.mp4,
dst: samples/dst.mp4) in a workspace folder. Re-running resumes; finished steps are not redone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import ExtractSummary, run_extract
from facelab.media.frames import FrameFolderInfo, extract_frames

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@dataclass
class DemoSide:
    name: str
    frames: FrameFolderInfo
    aligned: Path
    summary: ExtractSummary


def run_demo(workspace: Path, workers: int | None = None) -> list[DemoSide]:
    sides = []
    for name in ("src", "dst"):
        video = SAMPLES / f"{name}.mp4"
        base = Path(workspace) / name
        frames = extract_frames(video, base / "frames")
        opts = ExtractOptions() if workers is None else ExtractOptions(workers=workers)
        aligned = base / "aligned"
        summary = run_extract(base / "frames", aligned, opts)
        sides.append(DemoSide(name, frames, aligned, summary))
    return sides
