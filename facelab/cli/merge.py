"""`facelab merge`: swap the faces of a frame folder with a trained model, optionally encode the video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facelab.cli.c2pa_options import CertOption, CreditOption, DirOption, KeyOption, credentials
from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import console, progress_bar
from facelab.core.config import build_options
from facelab.merge.options import MergeOptions
from facelab.merge.runner import run_merge
from facelab.merge.session import MergeSession, load_session
from facelab.merge.shard import parse_shard


def merge(
    model_dir: Annotated[Path, typer.Option("--model", "--model-dir",
                                            help="The trained model folder, or an ONNX model file: a .dfm "
                                                 "(DeepFaceLab's or `facelab export`'s) or facelab's own .onnx.",
                                            show_default=False)],
    frames: Annotated[Path, typer.Option(help="Folder of dst frames (facelab video frames).", show_default=False)],
    aligned: Annotated[Path, typer.Option(help="Folder of the dst faces aligned from those frames.",
                                          show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the merged frames.")],
    session: Annotated[Path | None, typer.Option(help="Merge session JSON (options plus per-range and per-frame "
                                                  "overrides, e.g. saved by `facelab studio`); "
                                                  "flags given here override its options.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options (section merge).")] = None,
    video: Annotated[Path | None, typer.Option(help="After merging, encode the frames into this video file, "
                                                "with the dst video's audio.")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: merge only frames whose index % N == I (frames in "
                                               "folder order, from 0), to split one video over N machines.")] = None,
    credit: CreditOption = None,
    c2pa_cert: CertOption = None,
    c2pa_key: KeyOption = None,
    c2pa_dir: DirOption = None,
    **flags: Any,
) -> None:
    """Merge swapped faces into the dst frames (resumable; frames without faces are copied through)."""
    shard_tuple = parse_shard(shard)
    if session is not None:
        loaded = load_session(session)
        base = loaded.options.model_dump()
        given = {k: v for k, v in flags.items() if v is not None}
        opts = build_options(MergeOptions, config, base | given)  # defaults < config < session < flags
        plan: MergeOptions | MergeSession = MergeSession(opts, loaded.frames, loaded.ranges)
    else:
        plan = opts = build_options(MergeOptions, config, flags)
    creds = credentials(credit, c2pa_cert, c2pa_key, c2pa_dir)
    with progress_bar("merging frames") as bar:
        s = run_merge(model_dir, frames, aligned, output, plan, workers=opts.workers, shard=shard_tuple,
                      progress=bar.advance, total=bar.set_total, credentials=creds)
    console.print(f"{s.frames} frames: {s.merged} with faces ({s.faces} faces), {s.passed_through} passed through, "
                  f"{s.resumed} already done -> {output} ({s.frames_per_second} frames/s)")
    if video is not None:
        if shard_tuple is not None and shard_tuple[1] > 1:
            console.print("[yellow]--video skipped: a shard holds only part of the frames; encode after all "
                          "shards finish (facelab video build)")
            return
        from facelab.media.encode import build_video
        from facelab.media.frames import read_frame_info

        info = read_frame_info(frames)
        source = Path(info["source"]) if info is not None and info.get("source") else None
        audio = source if source is not None and source.is_file() else None
        with progress_bar("encoding video") as bar:
            build_video(output, video, fps=info["fps_fraction"] if info is not None else None, audio_from=audio,
                        progress=bar.update)
        from facelab.provenance.credentials import mime_for
        from facelab.provenance.marker import folder_phase, marker_for

        marker = marker_for(s.model_id, {"dst": str(audio) if audio else None}, creds).at_phase(folder_phase(output))
        marker.finish_video(video, parent=source)
        console.print(f"video -> {video}" + (f" (audio from {audio})" if audio is not None else "")
                      + "; provenance record in its metadata and in a .provenance.json sidecar"
                      + ("; signed C2PA manifest" if mime_for(video) else " (C2PA: not possible in this container)"))


with_parameters(merge, model_parameters(MergeOptions, renames={"image_format": "--format"}))
