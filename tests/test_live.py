"""`facelab live`: the pipeline on the bundled dst clip played as a live source, with a tiny model trained
here: frames out (and drops stated), swapped in the face and untouched far from it, the watermark and the
provenance record of the file output, Ctrl+C leaving a valid file, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.core.types import U8
from facelab.provenance.marker import ProvenanceMarker, marker_for
from tests.conftest import SAMPLES

DST = SAMPLES / "dst.mp4"


@pytest.fixture(scope="module")
def tiny_model(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facelab.train.options import TrainOptions
    from facelab.train.trainer import Trainer

    model_dir = tmp_path_factory.mktemp("live_model") / "model"
    opts = TrainOptions(arch="df-ud", resolution=64, face_type="whole_face", ae_dims=64, e_dims=16, d_dims=16,
                        d_mask_dims=8, batch_size=4, workers=0, preview_every=0, backup_hours=0)
    src, dst = sample_faces
    trainer = Trainer(model_dir, opts, src, dst)
    trainer.train(iterations=2)
    trainer.close()
    return model_dir


class _Collect:
    """An output keeping every frame (exact pixels, no codec in between)."""

    name = "memory"
    overlay = False

    def __init__(self) -> None:
        self.frames: dict[int, U8] = {}

    def write(self, rgb: U8, index: int) -> bool:
        self.frames[index] = rgb.copy()
        return True

    def close(self, marker: ProvenanceMarker) -> list[str]:
        self.marker = marker
        return []


def _facelab(*args: str | Path, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "facelab.cli.main", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def test_frames_swapped_in_the_face_and_untouched_far_from_it(tiny_model: Path) -> None:
    from facelab.export.load import load_model
    from facelab.live.capture import VideoFileSource
    from facelab.live.options import LiveOptions
    from facelab.live.pipeline import LivePipeline
    from facelab.media.video import iter_frames
    from facelab.provenance import syncmark

    model = load_model(tiny_model, "cpu")
    # watermark_region "face": the mark too stays in the face (the default marks the whole frame: below)
    opts = LiveOptions(realtime=False, max_frames=24, model_threads=1, detect_every=6, watermark_region="face")
    sink = _Collect()
    marker = marker_for(model.model_id)
    summary = LivePipeline(model, VideoFileSource(DST, realtime=False), sink, opts, marker).run()
    # as fast as possible from a file: every frame comes out, in order, none dropped
    assert summary.frames_out == 24 and summary.dropped == 0 and sorted(sink.frames) == list(range(24))
    assert summary.faces == 24 and 1 <= summary.detections <= 6  # tracked between detections
    assert all(summary.stage_ms[s] > 0 for s in ("detect", "swap", "merge", "output"))
    originals = {i: f for i, f in iter_frames(DST) if i < 24}
    for i, out in sink.frames.items():
        diff = np.abs(out.astype(np.int16) - originals[i].astype(np.int16)).max(axis=2)
        changed = diff > 0
        ys, xs = np.nonzero(changed)
        assert changed.mean() > 0.03, i  # the face was swapped
        # the changes are one blob around the face: the frame's border rows and columns are untouched
        assert ys.min() > 10 and xs.min() > 10 and ys.max() < out.shape[0] - 10 and xs.max() < out.shape[1] - 10
        assert (diff[:, : xs.min()] == 0).all() and (diff[: ys.min()] == 0).all()
    reader = syncmark.VideoReader()
    for f in sink.frames.values():
        reader.add(f)
    reading = reader.read()
    assert reading.found and reading.payload.model_prefix == syncmark.model_prefix(model.model_id)
    # the tiling's phase was chosen on the first frame with a face (as merge chooses it on dst frames), the
    # marker that closed the output names it, and the frames read there (the reader's offset within 2 px)
    phase = sink.marker.phase
    assert marker.phase == (0, 0) and sink.marker.record.watermark["phase"] == list(phase)
    assert all(v % syncmark.WRITTEN.block == 0 and 0 <= v < syncmark.WRITTEN.tile for v in phase)
    tile = syncmark.WRITTEN.tile  # within 2 px around the tile (the code's best fit may lie a pixel off: session 30)
    assert all(min((a - b) % tile, (b - a) % tile) <= 2 for a, b in zip(reading.offset, phase, strict=True)), (
        reading.offset, phase)
    # the default, "frame": the mark covers the frame (its borders change too) and reads from whole frames
    whole = _Collect()
    LivePipeline(model, VideoFileSource(DST, realtime=False), whole,
                 opts.model_copy(update={"watermark_region": "frame", "max_frames": 12}), marker).run()
    reader = syncmark.VideoReader()
    for i, out in whole.frames.items():
        diff = np.abs(out.astype(np.int16) - originals[i].astype(np.int16)).max(axis=2)
        assert diff[:16].any() and diff[-16:].any(), i
        reader.add(out)
    assert reader.read().found


@pytest.mark.parametrize("bf16", [False, True])
def test_frozen_trace_matches_the_eager_model_on_a_real_face(tiny_model: Path, bf16: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The frozen TorchScript trace live runs by default (with and without oneDNN fusion) gives the eager
    model's face and masks on a face aligned from the bundled clip, within bf16 rounding; a trace that fails
    leaves the model eager, still swapping."""
    import torch

    from facelab.export.load import load_model
    from facelab.live.faces import align_faces, freeze_model, predict
    from facelab.live.options import LiveOptions
    from facelab.live.track import FaceTracker
    from facelab.media.video import iter_frames
    from facelab.train.inference import SwapModel

    torch.set_num_threads(1)
    model = load_model(tiny_model, "cpu")
    assert isinstance(model, SwapModel)
    frame = next(f for i, f in iter_frames(DST) if i == 5)
    faces = FaceTracker(LiveOptions(), 30.0).update(frame, 5)
    crops = [f.crop for f in align_faces(frame, faces, 5, model.face_type, model.resolution)]
    assert len(crops) == 1 and crops[0].std() > 20  # a real face, not a flat crop
    for dst_mask in (False, True):
        assert freeze_model(model, "off", dst_mask, bf16) == "eager" and model.frozen is None
        want = predict(model, crops, dst_mask, bf16)[0]
        for how, runs in (("trace", "frozen trace"), ("fused", "frozen trace, oneDNN fusion")):
            assert freeze_model(model, how, dst_mask, bf16) == runs and model.frozen is not None
            got = predict(model, crops, dst_mask, bf16)[0]
            pairs = [(got.face, want.face), (got.mask, want.mask)]
            if dst_mask:
                assert got.dst_mask is not None and want.dst_mask is not None
                pairs.append((got.dst_mask, want.dst_mask))
            else:
                assert got.dst_mask is None
            for g, w in pairs:
                assert g.shape == w.shape and g.dtype == w.dtype == np.float32
                d = np.abs(g - w)
                assert d.max() <= (0.01 if bf16 else 1e-4) and d.mean() <= (1e-3 if bf16 else 1e-5), (how, d.max())
            # a swap asking for the other dst mask than the trace was made for runs eager, as it should
            other = predict(model, crops, not dst_mask, bf16)[0]
            assert (other.dst_mask is None) == dst_mask

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("no tracing here")

    monkeypatch.setattr(torch.jit, "trace", broken)
    runs = freeze_model(model, "fused", False, bf16)
    assert runs.startswith("eager (tracing failed: RuntimeError") and model.frozen is None
    assert np.abs(predict(model, crops, False, bf16)[0].face - want.face).max() == 0


def test_detection_waits_until_just_before_the_model_is_free() -> None:
    """The detection stage starts its next frame when the model is due to be free less the detection's own
    time (and a margin), not at once; never while a swap worker is free, nor when the model is overdue."""
    from facelab.live.pipeline import detection_wait

    # the model took its frame at t=10.000 s and takes 50 ms; detection takes 8 ms (+ a quarter + 2 ms margin)
    assert detection_wait([10.0], 1, 0.050, 0.008, 10.0) == pytest.approx(0.050 - 0.010 - 0.002)
    assert detection_wait([10.0], 1, 0.050, 0.008, 10.030) == pytest.approx(0.008)
    assert detection_wait([10.0], 1, 0.050, 0.008, 10.045) == 0.0  # overdue: at once
    assert detection_wait([], 1, 0.050, 0.008, 10.0) == 0.0  # the model is idle
    assert detection_wait([10.0], 2, 0.050, 0.008, 10.0) == 0.0  # a second worker is free
    assert detection_wait([10.0, 10.020], 2, 0.050, 0.008, 10.020) == pytest.approx(0.018)  # the first one due


def test_two_swap_workers_keep_frames_in_order(tiny_model: Path) -> None:
    """With two swap workers (a live source) frames come out in increasing order, each swapped and marked; a
    frame overtaken by a later one is dropped (counted), never output late."""
    from facelab.export.load import load_model
    from facelab.live.capture import VideoFileSource
    from facelab.live.options import LiveOptions
    from facelab.live.pipeline import LivePipeline
    from facelab.media.video import iter_frames
    from facelab.provenance import syncmark

    model = load_model(tiny_model, "cpu")
    order: list[int] = []

    class Ordered(_Collect):
        def write(self, rgb: U8, index: int) -> bool:
            order.append(index)
            return super().write(rgb, index)

    sink = Ordered()
    opts = LiveOptions(max_frames=12, model_threads=1, swap_workers=2, stats_every=0)
    s = LivePipeline(model, VideoFileSource(DST, realtime=True), sink, opts, marker_for(model.model_id)).run()
    assert s.frames_out == 12 and order == sorted(order) and len(set(order)) == 12
    assert s.dropped == s.source_frames - 12 and s.faces == 12
    originals = {i: f for i, f in iter_frames(DST) if i <= max(order)}
    reader = syncmark.VideoReader()
    for i, out in sink.frames.items():
        assert (out != originals[i]).any(axis=2).mean() > 0.03  # swapped
        reader.add(out)
    assert reader.read().payload.model_prefix == syncmark.model_prefix(model.model_id)


def test_a_dfm_runs_live(tiny_model: Path, tmp_path: Path) -> None:
    """A .dfm (DeepFaceLab's interface, framed as DFL's whole face, here exported from the tiny model) swaps
    the face live as the model folder does: the face changes, the frame's border does not."""
    from facelab.export.exporter import export_model
    from facelab.export.load import load_model
    from facelab.live.capture import VideoFileSource
    from facelab.live.options import LiveOptions
    from facelab.live.pipeline import LivePipeline
    from facelab.media.video import iter_frames

    dfm = export_model(tiny_model, tmp_path / "tiny.dfm").path
    model = load_model(dfm, "cpu")
    assert model.face_type == "dfl_whole_face"
    sink = _Collect()
    opts = LiveOptions(realtime=False, max_frames=4, model_threads=1, watermark_region="face")  # borders exact
    s = LivePipeline(model, VideoFileSource(DST, realtime=False), sink, opts, marker_for(model.model_id)).run()
    assert s.frames_out == 4 and s.faces == 4
    originals = {i: f for i, f in iter_frames(DST) if i < 4}
    for i, out in sink.frames.items():
        diff = np.abs(out.astype(np.int16) - originals[i].astype(np.int16)).max(axis=2)
        assert (diff > 0).mean() > 0.03 and diff[:10].max() == 0 and diff[:, :10].max() == 0


def test_file_output_counts_frames_and_verifies(tiny_model: Path, tmp_path: Path) -> None:
    from facelab.live.options import LiveOptions
    from facelab.live.run import run_live
    from facelab.media.video import probe_video
    from facelab.provenance.credentials import ContentCredentials
    from facelab.provenance.verify import verify

    out = tmp_path / "live.mp4"
    # played as live at 30 fps: what the pipeline cannot keep up with is dropped, and the summary says so
    opts = LiveOptions(realtime=True, max_frames=30, model_threads=1, stats_every=0)
    s = run_live(tiny_model, str(DST), str(out), opts, ContentCredentials())
    info = probe_video(out)
    assert s.frames_out == 30 and s.source_frames == s.frames_out + s.dropped
    # the file keeps the source's timeline at a constant 30 fps: a dropped frame is filled with the frame before
    # it, so the file holds as many frames as were played and says how many were repeats
    assert info.frame_count == s.source_frames and Fraction(info.fps_fraction) == 30 and not info.variable_rate
    assert info.width == 480
    assert any(f"{s.source_frames} frames" in n for n in s.notes)
    assert s.dropped == 0 or any(f"({s.dropped} repeat" in n for n in s.notes)
    report = verify(out, max_frames=20)
    assert report.watermark_found and report.record_matches_watermark
    assert report.record is not None and report.record_source == "metadata"
    # the file's record names the phase the live run chose for the mark (on its first frame with a face)
    phase = report.record.watermark["phase"]
    assert len(phase) == 2 and all(v % 20 == 0 and 0 <= v < 160 for v in phase)
    assert report.c2pa.present
    assert s.latency_ms_median > 0 and s.fps > 0


def test_ctrl_c_leaves_a_valid_marked_file(tiny_model: Path, tmp_path: Path) -> None:
    from facelab.media.video import probe_video
    from facelab.provenance.verify import verify

    out = tmp_path / "stopped.mp4"
    proc = _facelab("live", "--model", tiny_model, "-i", DST, "-o", out, "--stats-every", "0.3",
                    "--model-threads", "1", "--json")
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until frames are coming out (a stats line)
        line = proc.stderr.readline()
        if line.startswith("live:") or not line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert "stopped by Ctrl+C" in summary["notes"]
    assert 0 < summary["frames_out"] < 216
    assert probe_video(out).frame_count == summary["source_frames"]
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    report = verify(out, max_frames=20)
    assert report.watermark_found and report.record is not None


def test_stream_input(tiny_model: Path, tmp_path: Path) -> None:
    """A network stream (here the dst clip as MPEG-TS over HTTP from a local server: a stream format, read
    without seeking) is read through PyAV as a live source."""
    import functools
    import http.server
    import threading

    import av

    from facelab.live.options import LiveOptions
    from facelab.live.run import run_live
    from facelab.media.video import probe_video

    served = tmp_path / "served"
    served.mkdir()
    with av.open(str(DST)) as inp, av.open(str(served / "dst.ts"), "w", format="mpegts") as ts:
        video = ts.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = video
                ts.mux(pkt)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "stream.mp4"
        url = f"http://127.0.0.1:{server.server_address[1]}/dst.ts"
        s = run_live(tiny_model, url, str(out), LiveOptions(max_frames=8, model_threads=1, stats_every=0))
    finally:
        server.shutdown()
    # a stream comes as fast as the server sends it: how many frames the pipeline takes before the clip's 216
    # have arrived depends on the machine's speed (the rest are dropped, as a live source's are); up to 8
    assert s.source == url and 3 <= s.frames_out <= 8 and s.faces == s.frames_out
    assert s.frames_out == 8 or s.dropped > 0
    assert probe_video(out).frame_count == s.source_frames  # a live source: frames it sent too fast were dropped


def test_bad_camera_is_one_line_exit_2(tiny_model: Path, tmp_path: Path) -> None:
    proc = _facelab("live", "--model", tiny_model, "-i", "webcam:57", "-o", tmp_path / "x.mp4")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr + stdout
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "camera 57" in lines[0], stderr
    assert not (tmp_path / "x.mp4").exists()


def _one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_bad_models_and_outputs_are_one_line_errors(tiny_model: Path, tmp_path: Path) -> None:
    from facelab.live.run import run_live

    no_weights = tmp_path / "fresh"
    no_weights.mkdir()
    shutil.copy(tiny_model / "config.json", no_weights / "config.json")
    with pytest.raises(InputError) as exc:
        run_live(no_weights, str(DST), str(tmp_path / "a.mp4"))
    assert "no weights" in _one_line(exc)

    other = tmp_path / "other.onnx"
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    onnx.save(helper.make_model(graph), str(other))
    with pytest.raises(InputError) as exc:
        run_live(other, str(DST), str(tmp_path / "b.mp4"))
    assert str(other) in _one_line(exc)

    with pytest.raises(InputError) as exc:
        run_live(tiny_model, str(DST), str(tmp_path / "c.avi2"))
    assert "unknown output" in _one_line(exc)
    with pytest.raises(InputError) as exc:
        run_live(tiny_model, str(tmp_path / "missing.mp4"), str(tmp_path / "d.mp4"))
    assert "missing.mp4" in _one_line(exc)
    assert not list(tmp_path.glob("*.mp4"))


def test_virtual_cam_without_a_device_says_what_to_install(tiny_model: Path) -> None:
    from facelab.live.run import run_live

    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has video devices: a v4l2loopback device may exist")
    with pytest.raises(InputError) as exc:
        run_live(tiny_model, str(DST), "virtual-cam")
    assert "modprobe v4l2loopback" in _one_line(exc)


def test_window_without_a_display_is_one_line(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facelab.live.run import run_live

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(InputError) as exc:
        run_live(tiny_model, str(DST), "window")
    assert "display" in _one_line(exc)


def test_one_euro_smooths_a_still_face_and_follows_a_moving_one() -> None:
    from facelab.live.smooth import OneEuro

    rng = np.random.default_rng(0)
    base = rng.uniform(100, 200, (68, 2))
    still, f = [], OneEuro(1.0)
    for k in range(60):
        still.append(f(base + rng.normal(0, 1.0, base.shape), k / 30))
    assert np.std([s[0, 0] for s in still[10:]]) < 0.5  # jitter of 1 px reduced
    g = OneEuro(1.0)
    for k in range(30):  # moving at 300 px/s (three face sizes a second)
        out = g(base + np.array([10.0 * k, 0.0]), k / 30)
    assert abs(out[0, 0] - (base[0, 0] + 290)) < 10  # it keeps up


def test_window_shows_the_frames_when_a_display_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a display (here a virtual one, Xvfb, when installed) the window shows each frame's pixels."""
    from facelab.live.outputs import WindowSink

    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb not installed (apt install xvfb): no display to open a window on")
    display = f":{90 + os.getpid() % 100}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "640x480x24"], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        monkeypatch.setenv("DISPLAY", display)
        sink = WindowSink((64, 48))
        frame = np.zeros((48, 64, 3), dtype=np.uint8)
        frame[10, 20] = (200, 100, 50)
        assert sink.write(frame, 0)
        assert tuple(sink._image.get(20, 10)) == (200, 100, 50) and tuple(sink._image.get(0, 0)) == (0, 0, 0)
        sink._closed()  # the user closed the window: the next frame stops the run
        assert not sink.write(frame, 1)
        sink.close(marker_for("0" * 64))
    finally:
        server.terminate()
        server.wait(10)
