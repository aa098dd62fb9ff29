"""`facelab live`: swap faces in real time from a camera, a video file or a stream into a window, a video
file or a virtual camera."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from facelab.cli.c2pa_options import CertOption, CreditOption, DirOption, KeyOption, credentials
from facelab.cli.options import model_parameters, with_parameters
from facelab.core.config import build_options
from facelab.live.options import LiveOptions
from facelab.live.outputs import check_sink


def _stderr(line: str) -> None:
    print(f"live: {line}", file=sys.stderr, flush=True)


def live(
    model: Annotated[Path, typer.Option("--model", help="A model folder (facelab train) or a .dfm / .onnx file.",
                                        show_default=False)],
    input_spec: Annotated[str, typer.Option("--input", "-i", help="webcam:N (a camera), a video file, or a stream "
                                            "URL (rtsp://...).")] = "webcam:0",
    output: Annotated[str, typer.Option("--output", "-o", help="window, virtual-cam (v4l2loopback) or a video file "
                                        "(out.mp4).")] = "window",
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options (section live).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary at the end as JSON.")] = False,
    credit: CreditOption = None,
    c2pa_cert: CertOption = None,
    c2pa_key: KeyOption = None,
    c2pa_dir: DirOption = None,
    **flags: Any,
) -> None:
    """Swap faces live: fps and per-stage milliseconds on stderr (and in the window); Ctrl+C stops cleanly
    (a video file is finished and carries the provenance record; every swapped face the watermark)."""
    from facelab.live.run import run_live

    opts = build_options(LiveOptions, config, flags)
    check_sink(output)
    creds = None
    if output not in ("window", "virtual-cam"):  # only a file carries a C2PA manifest
        creds = credentials(credit, c2pa_cert, c2pa_key, c2pa_dir)
    s = run_live(model, input_spec, output, opts, creds, report=_stderr)
    if json_out:
        typer.echo(json.dumps(s.to_json(), indent=2))
        return
    for note in s.notes:
        typer.echo(note)
    typer.echo(f"{s.frames_out} frames out of {s.source_frames} ({s.dropped} dropped), {s.fps} fps, latency median "
               f"{s.latency_ms_median} ms / p95 {s.latency_ms_p95} ms; ms per frame: "
               + ", ".join(f"{k} {v}" for k, v in s.stage_ms.items()) + f"; model: {s.model_runs}")


with_parameters(live, model_parameters(LiveOptions))
