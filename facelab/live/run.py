"""`facelab live` as one call: check the output, load the model, open the source and the output, run the
pipeline. Every problem with the user's input is an InputError raised before the first frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from facelab.export.load import load_model
from facelab.live.capture import VideoFileSource, open_source
from facelab.live.options import LiveOptions
from facelab.live.outputs import check_sink, open_sink
from facelab.live.pipeline import LivePipeline
from facelab.live.stats import LiveSummary
from facelab.provenance.credentials import ContentCredentials
from facelab.provenance.marker import marker_for


def run_live(model_path: Path, input_spec: str, output_spec: str, opts: LiveOptions | None = None,
             credentials: ContentCredentials | None = None, report: Callable[[str], None] | None = None
             ) -> LiveSummary:
    """Swap faces from ``input_spec`` (webcam:N, a video file, a stream URL) into ``output_spec`` (window,
    virtual-cam, a video file) with the model at ``model_path`` (a model folder, a .dfm or .onnx file).

    A video file gets the provenance record and, with ``credentials``, a signed C2PA manifest; every
    swapped face carries the invisible watermark. ``report`` receives the periodic statistics line.
    """
    opts = opts or LiveOptions()
    check_sink(output_spec)
    model = load_model(Path(model_path), opts.device, threads=opts.model_threads)
    source = open_source(input_spec, opts.realtime)
    try:
        marker = marker_for(model.model_id, {"live": source.name}, credentials)
        parent = source.path if isinstance(source, VideoFileSource) else None
        sink = open_sink(output_spec, source.size, source.fps, opts, parent)
        return LivePipeline(model, source, sink, opts, marker, report).run()
    finally:
        source.close()
