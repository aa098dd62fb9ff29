"""Provenance marking: the invisible watermark on real frames, records in PNG/JPEG/MP4/sidecar, verify."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from facelab.cli.verify import verify as verify_command
from facelab.core.errors import InputError
from facelab.media.encode import build_video
from facelab.media.frames import frame_name
from facelab.media.metadata import embed_json
from facelab.media.video import iter_frames, probe_video
from facelab.provenance import syncmark as sm
from facelab.provenance import watermark as wm
from facelab.provenance.faces import FaceRegions
from facelab.provenance.record import (
    STATEMENT,
    ProvenanceRecord,
    make_record,
    read_image_record,
    read_sidecar,
    read_video_record,
    sidecar_path,
    write_image_record,
    write_sidecar,
    write_video_record,
)
from facelab.provenance.verify import _how_read, report_lines, verify

REPO = Path(__file__).parents[1]
DST = REPO / "samples" / "dst.mp4"
MODEL_ID = "3f9a6c01be" + "5d" * 27
N_FRAMES = 60


def _bit_accuracy(bits: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean(np.asarray(bits) == np.asarray(expected)))


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def payload() -> np.ndarray:
    return wm.make_payload(MODEL_ID)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [rgb for index, rgb in iter_frames(DST) if index < N_FRAMES]


@pytest.fixture(scope="module")
def marked(frames: list[np.ndarray], payload: np.ndarray) -> list[np.ndarray]:
    return [wm.embed(rgb, payload) for rgb in frames]


@pytest.fixture(scope="module")
def marked_video(tmp_path_factory: pytest.TempPathFactory, marked: list[np.ndarray]) -> Path:
    """The marked frames encoded with H.264 at CRF 23 (yuv420p), with dst.mp4's audio."""
    root = tmp_path_factory.mktemp("marked")
    folder = root / "frames"
    folder.mkdir()
    for index, rgb in enumerate(marked):
        cv2.imwrite(str(folder / frame_name(index, "png")), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = root / "marked.mp4"
    build_video(folder, out, fps=30, audio_from=DST, crf=23)
    return out


# ----------------------------------------------------------------------------------------------------
# payload


def test_payload_round_trip(payload: np.ndarray) -> None:
    assert payload.shape == (64,) and payload.dtype == np.bool_
    info = wm.parse_payload(payload)
    assert info.valid and info.model_prefix == MODEL_ID[:10]
    assert wm.parse_payload(wm.make_payload("sha256:" + MODEL_ID)).model_prefix == MODEL_ID[:10]
    for flip in (0, 20, 60):
        bad = payload.copy()
        bad[flip] = not bad[flip]
        assert not wm.parse_payload(bad).valid
    with pytest.raises(ValueError):
        wm.make_payload("not-hex")


# ----------------------------------------------------------------------------------------------------
# watermark on real frames


def test_invisible_psnr(frames: list[np.ndarray], marked: list[np.ndarray]) -> None:
    values = [wm.psnr(a, b) for a, b in zip(frames, marked, strict=True)]
    print(f"PSNR: min {min(values):.2f} dB, mean {np.mean(values):.2f} dB")
    assert min(values) >= 40.0
    assert all(m.shape == f.shape and m.dtype == np.uint8 for f, m in zip(frames, marked, strict=True))


def test_clean_extraction(marked: list[np.ndarray], payload: np.ndarray) -> None:
    for rgb in marked[::6]:
        bits, confidence, soft = wm.extract(rgb)
        assert _bit_accuracy(bits, payload) == 1.0
        assert 0.5 < confidence <= 1.0 and soft.shape == (64,)
        det = wm.detect(rgb)
        assert det.found and det.payload.model_prefix == MODEL_ID[:10]


def test_jpeg_q75(marked: list[np.ndarray], payload: np.ndarray) -> None:
    accs = [_bit_accuracy(wm.extract(_jpeg(rgb, 75))[0], payload) for rgb in marked[::3]]
    print(f"JPEG q75 bit accuracy: mean {np.mean(accs):.4f}, min {min(accs):.4f}")
    assert np.mean(accs) >= 0.99


def test_h264_crf23(marked_video: Path, payload: np.ndarray) -> None:
    decoded = [rgb for _, rgb in iter_frames(marked_video)]
    assert len(decoded) == N_FRAMES
    softs, accs, found = [], [], 0
    for rgb in decoded:
        bits, _, soft = wm.extract(rgb)
        softs.append(soft)
        accs.append(_bit_accuracy(bits, payload))
        found += int(wm.detect(rgb).found)
    voted = wm.vote(softs)
    print(f"H.264 CRF 23: per-frame bit accuracy mean {np.mean(accs):.4f} min {min(accs):.4f}, {found}/{len(decoded)}")
    assert _bit_accuracy(voted, payload) == 1.0
    assert wm.parse_payload(voted).valid
    assert np.mean(accs) >= 0.95


def test_unmarked_frames_not_detected(frames: list[np.ndarray]) -> None:
    softs = []
    for rgb in frames:
        det = wm.detect(rgb)
        assert not det.found
        softs.append(wm.extract(rgb)[2])
    assert not wm.parse_payload(wm.vote(softs)).valid


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (641, 361), (128, 128)])
def test_frame_sizes(frames: list[np.ndarray], payload: np.ndarray, size: tuple[int, int]) -> None:
    rgb = cv2.resize(frames[10], size, interpolation=cv2.INTER_CUBIC)
    out = wm.embed(rgb, payload)
    assert out.shape == rgb.shape
    assert wm.psnr(rgb, out) >= 40.0
    assert _bit_accuracy(wm.extract(out)[0], payload) == 1.0
    # yuv420p encoders pad odd sizes by a row/column: the layout does not depend on the frame size.
    padded = np.pad(out, ((0, 1), (0, 1), (0, 0)), mode="edge")
    assert wm.detect(padded).found


def test_bad_frames(payload: np.ndarray) -> None:
    with pytest.raises(ValueError):
        wm.embed(np.zeros((100, 300, 3), np.uint8), payload)
    with pytest.raises(ValueError):
        wm.embed(np.zeros((200, 300), np.uint8), payload)
    with pytest.raises(ValueError):
        wm.embed(np.zeros((200, 300, 3), np.uint8), payload[:10])


# ----------------------------------------------------------------------------------------------------
# records


def test_record_fields() -> None:
    rec = make_record(MODEL_ID, source={"dst": "dst.mp4"})
    data = rec.to_json()
    assert data["schema"] == "facelab.provenance" and data["version"] == 1 and data["tool"] == "facelab"
    assert data["synthetic"] is True and data["statement"] == STATEMENT
    assert data["created"].endswith("Z")
    payload = wm.payload_hex(sm.make_payload(MODEL_ID))
    assert data["watermark"] == {"scheme": sm.SCHEME, "version": 3, "payload": payload}
    assert len(data["watermark"]["payload"]) == 12  # 48 bits
    assert ProvenanceRecord.model_validate(data) == rec
    with pytest.raises(ValueError):
        ProvenanceRecord.model_validate({**data, "extra": 1})
    with pytest.raises(ValueError):
        ProvenanceRecord.model_validate({**data, "synthetic": False})


def test_record_phase(tmp_path: Path) -> None:
    """A folder's record names the watermark's phase (``ProvenanceMarker.placed``); records from before it read as
    (0, 0); a phase off the block grid or out of the tile is one clear error."""
    from facelab.core.errors import MetadataError
    from facelab.provenance.marker import SIDECAR_NAME, folder_marker, folder_phase, marker_for

    marker = marker_for(MODEL_ID).at_phase((40, 120))
    assert marker.phase == (40, 120) and marker.record.watermark["phase"] == [40, 120]
    assert marker.watermark_claim["phase"] == [40, 120]  # the C2PA assertion carries it too
    marker.finish_folder(tmp_path)
    again = folder_marker(tmp_path)
    assert again is not None and again.phase == (40, 120) and folder_phase(tmp_path) == (40, 120)
    assert folder_phase(tmp_path / "nothing") == (0, 0)
    old = marker_for(MODEL_ID).record.to_json()
    (tmp_path / SIDECAR_NAME).write_text(json.dumps(old))
    assert folder_phase(tmp_path) == (0, 0)
    for bad in ([5, 0], [0, 160], [20], "0,0", [True, 0]):
        (tmp_path / SIDECAR_NAME).write_text(json.dumps({**old, "watermark": {**old["watermark"], "phase": bad}}))
        with pytest.raises(MetadataError, match=r"watermark\.phase"):
            folder_marker(tmp_path)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_image_record_round_trip(tmp_path: Path, marked: list[np.ndarray], ext: str) -> None:
    path = tmp_path / f"frame.{ext}"
    cv2.imwrite(str(path), cv2.cvtColor(marked[0], cv2.COLOR_RGB2BGR))
    assert read_image_record(path) is None
    rec = make_record(MODEL_ID, source={"dst": "dst.mp4", "frame": 0})
    write_image_record(path, rec)
    assert read_image_record(path) == rec
    # a face record in the same slot is not a provenance record
    face = tmp_path / f"face.{ext}"
    face.write_bytes(embed_json(path.read_bytes(), {"schema": "facelab.face", "version": 1}))
    assert read_image_record(face) is None
    report = verify(path)
    assert report.kind == "image" and report.record == rec and report.record_source == "metadata"
    assert report.watermark_found and report.payload_model_prefix == MODEL_ID[:10]
    assert report.record_matches_watermark


def test_sidecar_round_trip(tmp_path: Path) -> None:
    media = tmp_path / "out.mp4"
    rec = make_record(MODEL_ID)
    side = write_sidecar(media, rec)
    assert side == sidecar_path(media) == tmp_path / "out.mp4.provenance.json"
    assert json.loads(side.read_text())["schema"] == "facelab.provenance"
    assert read_sidecar(media) == rec
    assert read_sidecar(tmp_path / "other.mp4") is None


def test_video_record_and_verify(tmp_path: Path, marked_video: Path) -> None:
    video = tmp_path / "out.mp4"
    shutil.copy(marked_video, video)
    before = probe_video(video)
    assert read_video_record(video) is None
    rec = make_record(MODEL_ID, source={"dst": "dst.mp4"})
    write_video_record(video, rec)
    assert read_video_record(video) == rec
    after = probe_video(video)
    assert (after.frame_count, after.width, after.height, after.has_audio) == (
        before.frame_count,
        before.width,
        before.height,
        before.has_audio,
    )
    assert sum(1 for _ in iter_frames(video)) == N_FRAMES
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left behind

    report = verify(video)
    assert report.kind == "video" and report.watermark_found
    assert report.payload_model_prefix == MODEL_ID[:10]
    assert report.frames_checked == N_FRAMES and report.frames_marked >= N_FRAMES * 0.9
    assert report.record == rec and report.record_source == "metadata"
    assert report.record_matches_watermark
    print(f"verify: {report.frames_marked}/{report.frames_checked} frames marked, confidence {report.confidence:.3f}")
    assert any("FOUND" in line for line in report_lines(report))


def test_video_record_matroska(tmp_path: Path, marked_video: Path) -> None:
    video = tmp_path / "out.mkv"
    shutil.copy(marked_video, video)  # MP4 content under a .mkv name: the remux writes Matroska
    rec = make_record(MODEL_ID)
    write_video_record(video, rec)
    assert video.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
    assert read_video_record(video) == rec
    assert sum(1 for _ in iter_frames(video)) == N_FRAMES


def test_verify_original_video_unmarked() -> None:
    report = verify(DST, max_frames=12)
    assert report.kind == "video" and not report.watermark_found
    assert report.frames_checked == 12 and report.frames_marked == 0
    assert report.record is None and report.record_source is None and report.payload_model_prefix is None


def test_verify_sidecar_only(tmp_path: Path, marked_video: Path) -> None:
    video = tmp_path / "v.mp4"
    shutil.copy(marked_video, video)
    rec = make_record(MODEL_ID)
    write_sidecar(video, rec)
    report = verify(video, max_frames=8)
    assert report.watermark_found and report.record == rec and report.record_source == "sidecar"


def test_verify_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        verify(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(InputError):
        verify(junk)
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(InputError):
        verify(bad_png)


def test_cli(tmp_path: Path, marked_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []  # what --thorough reaches: the scale search's argument
    read_scaled = sm.VideoReader.read_scaled

    def spy(self: sm.VideoReader, first: int | None = None, per_frame: bool = True,
            thorough: bool = False) -> sm.Reading:
        asked.append(thorough)
        return read_scaled(self, first, per_frame, thorough)

    monkeypatch.setattr(sm.VideoReader, "read_scaled", spy)
    app = typer.Typer()
    app.command("verify")(verify_command)
    app.command("other")(lambda: None)  # keep "verify" a subcommand, as in facelab's app
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(marked_video), "--json", "--frames", "6"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["watermark_found"] and data["payload_model_prefix"] == MODEL_ID[:10]
    result = runner.invoke(app, ["verify", str(DST), "--frames", "4", "--thorough"])
    assert result.exit_code == 0 and "not found" in result.output
    assert asked == [True]  # version 3's search only, told to be thorough
    result = runner.invoke(app, ["verify", str(tmp_path / "missing.mp4")])
    assert isinstance(result.exception, InputError)


# ----------------------------------------------------------------------------------------------------
# syncmark (scheme 2; version 3 written, version 2 read): what survives what on a real clip; the full attack
# suite is `make test-slow`


def _bench(name: str = "watermark") -> Any:
    """A script of benchmarks/ (default watermark.py) as a module."""
    spec = importlib.util.spec_from_file_location(f"facelab_bench_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _attacks() -> Any:
    """benchmarks/watermark.py's attack suite (one definition for the benchmark and the tests)."""
    return _bench().ATTACKS


def test_attack_frames_have_every_byte_set() -> None:
    """The benchmark's (and these tests') encodes take frames with every byte set (session 29: PyAV leaves the bytes
    past each row's end uninitialised, and the colour conversion read some of them at widths like 170 px, so the
    same frames converted differently from run to run): an RGB image at 154 px (77 px chroma rows, which do not
    fill their aligned lines) converts to the same yuv420p planes every time, the bytes past each row zero, the
    picture itself the conversion's; a frame's copy (``_padded``) keeps its picture."""
    bench = _bench()
    rgb = cv2.resize(next(rgb for _, rgb in iter_frames(DST)), (154, 154), interpolation=cv2.INTER_AREA)
    frames = [bench._yuv_frame(rgb) for _ in range(5)]
    assert all(plane.line_size > plane.width for plane in frames[0].planes)  # every plane has bytes past its rows
    for frame in frames:
        for plane, first in zip(frame.planes, frames[0].planes, strict=True):
            rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
            assert not rows[:, plane.width:].any()
            assert bytes(plane) == bytes(first)
    back = frames[0].to_ndarray(format="rgb24")
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).mean() < 3  # the same picture, converted
    assert np.array_equal(bench._padded(frames[0]).to_ndarray(format="yuv420p"), frames[0].to_ndarray(format="yuv420p"))


def test_channel_benchmark_reads_where_the_mark_is(frame_clip: Any) -> None:
    """benchmarks/watermark_channel.py (the channel at the true offset, session 29) on the bundled clip marked as merge
    marks it (phase 0): through H.264 CRF 28 most coded bits are right (0.91 measured), the channel carries several
    times the payload and it decodes; the unmarked frames give about half right, a channel of almost nothing, no
    decode. The binary-input Gaussian capacity is 0 at SNR 0, rises with it and stays under 1 bit a use."""
    channel = _bench("watermark_channel")
    caps = [channel.biawgn_capacity(x) for x in (0.0, 0.1, 0.5, 2.0, 20.0)]
    assert caps[0] == 0.0 and caps == sorted(caps) and 0.9 < caps[-1] <= 1.0
    payload = sm.make_payload(MODEL_ID)
    marked = channel.channel(_attacks()["h264_crf28"](frame_clip[:V2_FRAMES]), payload, (0, 0), sm.WRITTEN)
    assert marked["coded_accuracy"] > 0.8 and marked["decodes"] and marked["decodes_at_phase"]
    tile = sm.WRITTEN.tile
    assert marked["capacity_bits"] > 2 * marked["needed_bits"]
    assert all(min(o % tile, -o % tile) <= 3 for o in marked["offset"])  # within 3 px of the phase, (0, 0)
    plain = channel.channel([rgb for index, rgb in iter_frames(DST) if index < V2_FRAMES], payload, (0, 0),
                            sm.WRITTEN)
    assert 0.35 < plain["coded_accuracy"] < 0.65 and not plain["decodes"] and not plain["decodes_at_phase"]
    assert plain["capacity_bits"] < 10


def test_reader_reads_where_the_code_fits_best(frame_clip: Any, sync_payload: np.ndarray) -> None:
    """Session 30: the reader's offset is moved to where the code fits best near its best-fitting candidates (a
    downscale leaves the soft values' strength peaking a pixel or two away from it). On the bundled clip marked as
    merge marks it, scaled to a third and back: it decodes, and no offset within SYNC_FIT px of the one read fits
    the code better."""
    attacked = _attacks()["downscale_1/3"](frame_clip[:V2_FRAMES])
    reader = sm.VideoReader()
    for rgb in attacked:
        reader.add(rgb)
    res = reader.read_whole(per_frame=False)
    assert res.found and np.array_equal(res.bits, sync_payload)
    whole = reader._whole_frames(len(attacked))
    total = (np.sum([f[0] for f in whole], axis=0), np.sum([f[1] for f in whole], axis=0))
    tile, steps = sm.WRITTEN.tile, range(-sm.SYNC_FIT, sm.SYNC_FIT + 1)
    near = [((res.offset[0] + dy) % tile, (res.offset[1] + dx) % tile) for dy in steps for dx in steps]
    fits = sm.decode_scores(np.stack([sm._folded_soft(total, o, sm.WRITTEN) for o in near]))
    assert fits.max() == pytest.approx(sm.decode_score(sm._folded_soft(total, res.offset, sm.WRITTEN)))


def test_reader_keeps_the_pilots_peaks_where_the_strength_points_away(frame_clip: Any, sync_payload: np.ndarray,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Session 34: each candidate is moved within SYNC_REFINE px to where the soft values are strongest, which can
    lie off the true offset where the pilot's own peak does not (lp_d0 at a third); the peaks as found stay
    candidates. The bundled clip marked as merge marks it, cropped by 3 and 5 px (an offset off the block grid),
    read with the strength made to grow away from the true offset (where the code fits best): every moved candidate
    lands SYNC_REFINE px or more off it, out of the fit search's reach, and the reader still reads there (a pilot
    peak lies within SYNC_FIT px of it) and decodes."""
    shifted = [np.ascontiguousarray(rgb[3:, 5:]) for rgb in frame_clip[:V2_FRAMES]]
    reader = sm.VideoReader()
    for rgb in shifted:
        reader.add(rgb)
    whole = reader._whole_frames(len(shifted))
    smoothed = reader._smoothed(whole)
    true = reader._best_offset(whole, smoothed)
    assert true[0] % sm.WRITTEN.block and true[1] % sm.WRITTEN.block  # off the grid: no aligned candidate is it
    peaks = reader._candidates(smoothed)
    assert any(abs(p[0] - true[0]) <= sm.SYNC_FIT and abs(p[1] - true[1]) <= sm.SYNC_FIT for p in peaks)
    tile = sm.WRITTEN.tile

    def away(total: Any, lay: sm.Layout = sm.WRITTEN) -> Any:
        ys, xs = np.mgrid[:tile, :tile]
        dy, dx = np.abs(ys - true[0]), np.abs(xs - true[1])
        return (np.minimum(dy, tile - dy) + np.minimum(dx, tile - dx)).astype(np.float64)  # a window's farthest wins

    monkeypatch.setattr(sm, "soft_strength", away)
    assert reader._best_offset(whole, smoothed) == true
    res = reader.read_whole(per_frame=False)
    assert res.found and np.array_equal(res.bits, sync_payload) and res.offset == true


V2_FRAMES = 20
FP_FRAMES = 12  # the unmarked clips' frames in the tests that no reading decodes them
# the default suite: a codec, a crop, a colour change, a rescale, and both combinations (on the mark merge writes
# by default: the whole frame, texture-masked)
V2_DEFAULT = ("h264_crf28", "crop_10%_each_border", "contrast_-20%", "downscale_1/2", "combo_downscale_1/2+crf28",
              "combo_crop_10%+crf28")


@pytest.fixture(scope="module")
def attacks() -> Any:
    return _attacks()


@pytest.fixture(scope="module")
def faces() -> FaceRegions:
    return FaceRegions(sm.READ_FACE_TYPE)


@pytest.fixture(scope="module")
def sync_payload() -> np.ndarray:
    """The payload syncmark writes (version 3: 48 bits)."""
    return sm.make_payload(MODEL_ID)


@pytest.fixture(scope="module")
def v2_clip(faces: FaceRegions, sync_payload: np.ndarray
            ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(frames, face regions, marked frames) of the bundled dst clip, marked inside the faces as merge marks
    with ``--watermark-region face``."""
    frames = [rgb for index, rgb in iter_frames(DST) if index < 60]
    regions = [np.any(faces(rgb), axis=0) for rgb in frames]
    marked = [sm.embed(rgb, sync_payload, region=r, frame=i)
              for i, (rgb, r) in enumerate(zip(frames, regions, strict=True))]
    return frames, regions, marked


@pytest.fixture(scope="module")
def frame_clip(v2_clip: Any, sync_payload: np.ndarray) -> list[np.ndarray]:
    """The same frames marked as merge marks them by default: whole, texture-masked, the faces capped."""
    frames, regions, _ = v2_clip
    return [sm.embed(rgb, sync_payload, frame=i, texture=True, within=r)
            for i, (rgb, r) in enumerate(zip(frames, regions, strict=True))]


def _read_v2(frames: list[np.ndarray], faces: FaceRegions, lay: sm.Layout = sm.WRITTEN,
             scaled: bool = True) -> sm.Reading:
    """Syncmark read as verify reads it: in the faces (the whole frame where none is found), then located;
    ``scaled``: the scale search last (about 10 s a read where every reading before it fails)."""
    reader = sm.VideoReader(lay)
    for rgb in frames:
        found = faces(rgb)
        reader.add(rgb, np.any(found, axis=0) if found else None)
    return reader.read_best(scaled=scaled)


def test_v2_invisible_and_round_trip(v2_clip: Any, sync_payload: np.ndarray, faces: FaceRegions) -> None:
    frames, regions, marked = v2_clip
    values = [_region_psnr(a, b, r) for a, b, r in zip(frames, marked, regions, strict=True)]
    print(f"syncmark face-region PSNR: min {min(values):.2f} dB, mean {np.mean(values):.2f} dB")
    assert min(values) >= 42.0
    outside = ~np.any(regions, axis=0)
    assert all(np.array_equal(a[outside], b[outside]) for a, b in zip(frames, marked, strict=True))
    res = _read_v2(marked[:V2_FRAMES], faces)
    assert res.found and np.array_equal(res.bits, sync_payload)
    assert all(min(o, sm.WRITTEN.tile - o) <= 1 for o in res.offset)  # the geometry intact (within a pixel)
    assert sum(res.frames_found) == V2_FRAMES  # every clean frame decodes on its own


def _region_psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    diff = a[region].astype(np.float64) - b[region].astype(np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def test_v2_mark_follows_the_texture(v2_clip: Any, sync_payload: np.ndarray, faces: FaceRegions) -> None:
    """Texture masking: the bundled clip with its faces smoothed as a short training paints them (Gaussian,
    sigma 3 px, inside the face), marked whole as merge marks by default: on the smooth face the mark is a
    fraction of what the real skin of the same frames gets (a uniform mark showed as a mottled texture there),
    within a level or two, the gain's mean square is at most 1 (and the real face's PSNR >= 42 dB), and the
    frames still decode through H.264 CRF 28."""
    frames, regions, _ = v2_clip
    diffs_real, diffs_smooth, marked = [], [], []
    for i in range(V2_FRAMES):
        rgb, region = frames[i], regions[i]
        smooth = np.where(region[:, :, None], cv2.GaussianBlur(rgb, (0, 0), 3.0), rgb)
        out = sm.embed(smooth, sync_payload, frame=i, texture=True)
        marked.append(out)
        diffs_smooth.append(np.abs(out.astype(np.int16) - smooth.astype(np.int16))[region])
        real = sm.embed(rgb, sync_payload, frame=i, texture=True, within=region)
        diffs_real.append(np.abs(real.astype(np.int16) - rgb.astype(np.int16))[region])
        assert _region_psnr(rgb, real, region) >= 42.0  # no more energy in the face than a uniform mark
        lum = sm.luma_half(smooth)
        half = sm.WRITTEN.half
        inside = np.ones((lum.shape[0] // half, lum.shape[1] // half), dtype=np.bool_)
        assert np.sqrt(np.mean(sm.texture_gain(lum, inside) ** 2)) <= 1.0 + 1e-9
    real_d, smooth_d = np.concatenate(diffs_real), np.concatenate(diffs_smooth)
    print(f"mean |change| in the face: real skin {real_d.mean():.2f}, smoothed {smooth_d.mean():.2f} levels")
    assert smooth_d.mean() < 0.6 * real_d.mean()
    assert np.percentile(smooth_d, 90) <= 2
    res = _read_v2(_attacks()["h264_crf28"](marked), faces)
    assert res.found and np.array_equal(res.bits, sync_payload)


def test_blocks_outside_the_faces_spend_a_uniform_marks_energy(v2_clip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions 29-30: where texture masking leaves the blocks outside the faces under REST_ENERGY times a uniform
    mark's energy (a plain wall), the blocks textured all over are raised, by one factor of at most FILL_MOST, until
    it is spent or they can rise no further; the faces' blocks, the flat ones, the smooth ones and those across an
    edge keep their gains. On frames of the bundled clip with their right half painted one plain colour, against the
    same with the fill off."""
    frames, regions, _ = v2_clip
    half = sm.WRITTEN.half
    for rgb, region in list(zip(frames, regions, strict=True))[:5]:
        flat = rgb.copy()
        flat[:, rgb.shape[1] // 2:] = rgb[:, rgb.shape[1] // 2:].mean(axis=(0, 1)).astype(np.uint8)  # a plain wall
        lum = sm.luma_half(flat)
        nby, nbx = lum.shape[0] // half, lum.shape[1] // half
        inside = np.ones((nby, nbx), dtype=np.bool_)
        face = sm._blocks_inside(region, 0, 0, nby, nbx, sm.WRITTEN.block, wholly=False)
        filled = sm.texture_gain(lum, inside, face)
        with monkeypatch.context() as m:
            m.setattr(sm, "REST_ENERGY", 0.0)
            plain = sm.texture_gain(lum, inside, face)
        rest = inside & ~face
        assert float(np.mean(plain[rest] ** 2)) < 0.9  # texture masking alone leaves energy unspent here
        raised = filled > plain + 1e-12
        most = np.minimum(sm.FILL_MOST * plain, np.maximum(sm.GAIN_MAX, plain))  # as far as a block may rise
        assert (abs(float(np.mean(filled[rest] ** 2)) - sm.REST_ENERGY) < 1e-6
                or np.allclose(filled[raised], most[raised]))  # the rest reaches REST_ENERGY, or the raised their most
        assert np.array_equal(filled[face], plain[face])
        assert raised.any() and not (raised & face).any()
        assert filled.max() <= sm.GAIN_MAX + 1e-12 and np.all(filled <= sm.FILL_MOST * plain + 1e-12)
        assert np.all(plain[raised] >= sm.FILL_FROM / 2)  # real texture only (the gains before the faces' cap)
        assert not raised[:, nbx // 2 + 1:].any()  # the flattened half: nothing raised
        assert float(np.mean(filled[inside] ** 2)) <= sm.REST_ENERGY + 1e-9  # the whole frame's budget holds


def test_fill_factor_is_solved_exactly() -> None:
    """Session 33: the fill's factor is solved piece by piece (the energy is quadratic in it until a block reaches
    its cap): the raised gains spend the wanted energy to 1e-9, all by one factor of at most FILL_MOST, none past its
    cap; where even FILL_MOST falls short every block is at its most, and gains already spending enough stay."""
    rng = np.random.default_rng(11)
    for trial in range(200):
        n = int(rng.integers(1, 300))
        gain = rng.uniform(sm.GAIN_MIN, sm.GAIN_MAX, n)
        share = rng.uniform(0.3, 1.0, n) if trial % 2 else np.ones(n)
        energy = float(rng.uniform(0.05, 5.0))
        out = sm._filled(gain, share, energy)
        most = np.minimum(sm.FILL_MOST * gain, np.maximum(sm.GAIN_MAX, gain))
        spent = float(np.mean(out**2 * share))
        if float(np.mean(gain**2 * share)) >= energy:
            assert np.array_equal(out, gain)
        elif float(np.mean(most**2 * share)) < energy:
            assert np.allclose(out, most)
        else:
            assert abs(spent - energy) < 1e-9 * energy
            ratio = (out / gain)[out < most - 1e-12]  # the blocks below their cap share one factor
            assert ratio.size == 0 or np.allclose(ratio, ratio[0])
        assert np.all(out <= most + 1e-12) and np.all(out >= gain - 1e-12)


def test_faces_cap_lowers_only_the_faces_blocks(v2_clip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Session 30: the swapped faces' energy cap (the layout's within_energy) lowers the faces' blocks alone; the
    rest of the frame keeps what texture masking gives it (it was lowered with the faces before). A cap of 0.05
    binds on every frame of the bundled clip."""
    frames, regions, _ = v2_clip
    lay = replace(sm.WRITTEN, within_energy=0.05)
    monkeypatch.setattr(sm, "REST_ENERGY", 0.0)  # the fill off: the cap alone
    for rgb, region in list(zip(frames, regions, strict=True))[:5]:
        lum = sm.luma_half(rgb)
        nby, nbx = lum.shape[0] // lay.half, lum.shape[1] // lay.half
        inside = np.ones((nby, nbx), dtype=np.bool_)
        face = sm._blocks_inside(region, 0, 0, nby, nbx, lay.block, wholly=False)
        capped = sm.texture_gain(lum, inside, face, lay)
        free = sm.texture_gain(lum, inside, None, lay)
        assert float(np.mean(free[face] ** 2)) > 0.05  # the cap binds
        assert abs(float(np.mean(capped[face] ** 2)) - 0.05) < 1e-9
        assert np.allclose(capped[face] / free[face], capped[face][0] / free[face][0])  # one factor
        assert np.array_equal(capped[~face], free[~face])


def test_edge_blocks_keep_their_change_off_the_flat_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Session 31: a block across an edge takes its gain from its mean texture; its change on the flat side is
    lowered towards what a flat block gets (a pale blotch at 4x before) and moved to its textured side (the block's
    energy kept). A frame half noise, half flat grey, the edge through the middle of a block column."""
    rng = np.random.default_rng(3)
    rgb = np.full((320, 320, 3), 128, dtype=np.uint8)
    rgb[:, :170] = np.clip(128 + rng.normal(0, 24, (320, 170, 1)), 0, 255).astype(np.uint8)
    payload = sm.make_payload(MODEL_ID)
    changes = {}
    for ratio in (0.0, sm.EDGE_RATIO):
        monkeypatch.setattr(sm, "EDGE_RATIO", ratio)
        changes[ratio] = np.abs(sm.embed(rgb, payload, texture=True).astype(np.int16) - rgb)[..., 0].astype(float)
    before, now = changes[0.0], changes[sm.EDGE_RATIO]
    flat_side = (slice(20, 300), slice(174, 180))  # the straddling column's flat pixels, 4-10 px from the edge
    textured = (slice(20, 300), slice(20, 150))
    assert before[flat_side].mean() > 1.0  # the textured side's gain drawn over the flat side
    assert now[flat_side].mean() < 0.4 * before[flat_side].mean()
    assert now[textured].mean() > 0.9 * before[textured].mean()
    edge_textured = (slice(20, 300), slice(160, 170))  # the straddling column's textured side takes the energy
    assert now[edge_textured].mean() > 1.1 * before[edge_textured].mean()
    assert abs(float(np.mean(now**2)) / float(np.mean(before**2)) - 1.0) < 0.03
    far_flat = (slice(20, 300), slice(200, 300))  # flat blocks: texture masking's GAIN_MIN either way
    assert abs(now[far_flat].mean() - before[far_flat].mean()) < 0.1


@pytest.mark.parametrize(("lay", "bits", "coded"), [(sm.V3, 48, 216), (sm.V2, 64, 210)])
def test_v2_code_corrects_errors(lay: sm.Layout, bits: int, coded: int) -> None:
    payload = sm.make_payload(MODEL_ID, lay)
    assert payload.size == lay.payload_bits == bits
    info = wm.parse_payload(payload)
    assert info.valid and info.model_prefix == MODEL_ID[: (bits - 24) // 4]
    out = sm.encode_bits(payload, lay)
    assert out.size == lay.coded_bits == coded and lay.n_pilot == 256 - coded
    rng = np.random.default_rng(5)
    soft = np.where(out, -1.0, 1.0)
    flip = rng.choice(out.size, 20, replace=False)  # 20 coded bits wrong
    soft[flip] *= -1.0
    assert np.array_equal(sm.decode_soft(soft + rng.normal(0, 0.3, soft.size), lay), payload)


def test_list_decoding_ranks_paths_and_finds_a_payload_viterbi_misses() -> None:
    """Session 33: decode_soft_list gives distinct paths, best first (each path's metric, its code word's
    correlation with the soft values, never rising), the first being decode_soft's; on a weak channel where the
    best path fails the check, _decision with 16 paths returns the sent payload at its rank, and with 1 path
    reports it not found."""
    lay = sm.V3
    payload = sm.make_payload(MODEL_ID, lay)
    sent = np.where(sm.encode_bits(payload, lay), -1.0, 1.0)
    rng = np.random.default_rng(21)
    rescued = 0
    for _ in range(60):
        soft = 0.55 * sent + rng.normal(0, 1, sent.size)
        paths = sm.decode_soft_list(soft, 16, lay)
        assert len(paths) == 16 and np.array_equal(paths[0], sm.decode_soft(soft, lay))
        assert len({p.tobytes() for p in paths}) == 16
        metrics = [float(np.where(sm.encode_bits(p, lay), -1.0, 1.0) @ soft) for p in paths]
        assert np.all(np.diff(metrics) <= 1e-9)
        ranks = [i for i, p in enumerate(paths) if np.array_equal(p, payload)]
        if ranks and ranks[0] > 0 and not any(wm.parse_payload(p).valid for p in paths[: ranks[0]]):
            bits, info, rank = sm._decision(soft, lay, 16)
            assert info.valid and rank == ranks[0] and np.array_equal(bits, payload)
            assert not sm._decision(soft, lay, 1)[1].valid
            rescued += 1
            reading = sm.Reading(found=True, soft=soft, bits=bits, payload=info, offset=(0, 0), pilot=0.2, rank=rank)
            note = _how_read(reading)  # what verify's report says of such a reading
            assert note is not None and f"path {rank + 1} of the 16" in note and "less certain" in note
    assert rescued >= 3  # about a third of these channels: Viterbi misses the payload, the list holds it


def _viterbi_reference(soft: np.ndarray, lay: sm.Layout) -> np.ndarray:
    """A plain one-vector soft Viterbi (syncmark's own until session 28, kept here as the oracle): the best path's
    input bits, ties going to the later transition in the order of source state, then input bit."""
    n_out, n_steps = len(lay.generators), lay.payload_bits + sm.CONSTRAINT - 1
    sv = np.asarray(soft, dtype=np.float64).reshape(n_steps, n_out)
    states = 1 << (sm.CONSTRAINT - 1)
    metric = np.full(states, -np.inf)
    metric[0] = 0.0
    signs = 1.0 - 2.0 * lay.outs
    back = np.zeros((n_steps, states), dtype=np.intp)
    src, inp = np.repeat(np.arange(states), 2), np.tile(np.arange(2), states)
    dst = lay.next_state[src, inp]
    for t in range(n_steps):
        cand = metric[src] + signs[src, inp] @ sv[t]
        new = np.full(states, -np.inf)
        np.maximum.at(new, dst, cand)
        winner = np.full(states, -1, dtype=np.intp)
        hit = cand >= new[dst]
        winner[dst[hit]] = (src * 2 + inp)[hit]
        back[t] = winner
        metric = new
    state, bits = 0, []
    for t in range(n_steps - 1, -1, -1):
        code = back[t, state]
        bits.append(code & 1)
        state = code >> 1
    return np.array(bits[::-1][: lay.payload_bits], dtype=np.bool_)


def _encode_reference(bits: np.ndarray, lay: sm.Layout) -> np.ndarray:
    state, out = 0, []
    for b in [*np.asarray(bits, dtype=np.intp), *[0] * (sm.CONSTRAINT - 1)]:
        out.extend(lay.outs[state, b])
        state = int(lay.next_state[state, b])
    return np.array(out, dtype=np.bool_)


@pytest.mark.parametrize("lay", [sm.V3, sm.V2])
def test_batched_decoding_equals_one_at_a_time(lay: sm.Layout) -> None:
    """The reader decodes and scores many vectors at once (its ~140 synchronisation candidates, every frame;
    session 28): the batched Viterbi, encoder and fit give what a plain one-vector Viterbi and encoder give, ties
    included (soft values of -1, 0, 1 tie paths everywhere: the later transition wins in both), and the
    one-vector functions are the batch of one."""
    rng = np.random.default_rng(3)
    softs = np.concatenate([rng.normal(0, 1, (60, lay.coded_bits)), rng.choice([-1.0, 0.0, 1.0], (60, lay.coded_bits)),
                            np.zeros((1, lay.coded_bits))])
    one = np.array([_viterbi_reference(x, lay) for x in softs])
    assert np.array_equal(sm.decode_soft_many(softs, lay), one)
    assert all(np.array_equal(sm.decode_soft(x, lay), b) for x, b in zip(softs, one, strict=True))
    words = np.array([_encode_reference(b, lay) for b in one])
    assert np.array_equal(sm.encode_bits_many(one, lay), words)
    assert all(np.array_equal(sm.encode_bits(b, lay), w) for b, w in zip(one, words, strict=True))
    fit = (np.where(words, -1.0, 1.0) * softs).sum(axis=1) / np.maximum(np.abs(softs).sum(axis=1), 1e-12)
    assert np.allclose(sm.decode_scores(softs, lay), fit, rtol=0, atol=1e-12)
    assert np.allclose([sm.decode_score(x, lay) for x in softs], fit, rtol=0, atol=1e-12)
    payload = sm.make_payload(MODEL_ID, lay)  # and a clean codeword decodes to its payload
    clean = np.where(sm.encode_bits(payload, lay), -1.0, 1.0)[None]
    assert np.array_equal(sm.decode_soft_many(clean, lay)[0], payload)


def test_soft_strength_at_every_offset_equals_one_offset_at_a_time(v2_clip: Any) -> None:
    """The reader's refinement looks the soft values' strength up in one map of every tile offset (session 28):
    on frames of the bundled clip marked inside the faces, the map equals the mean square of the soft values read
    at each offset (read in the faces, as verify reads them), and near the tiling's true offset it peaks within
    2 px of it (what the refinement uses it for)."""
    _, regions, marked = v2_clip
    reader = sm.VideoReader()
    for rgb, region in zip(marked[:8], regions[:8], strict=True):
        reader.add(rgb, region)
    total = (np.sum([f[0] for f in reader.frames], axis=0), np.sum([f[1] for f in reader.frames], axis=0))
    strength = sm.soft_strength(total)
    assert strength.shape == (sm.WRITTEN.tile, sm.WRITTEN.tile)
    rng = np.random.default_rng(4)
    for oy, ox in [(0, 0), *[tuple(int(v) for v in rng.integers(0, sm.WRITTEN.tile, 2)) for _ in range(40)]]:
        one = float(np.mean(sm._folded_soft(total, (oy, ox), sm.WRITTEN) ** 2))
        assert strength[oy, ox] == pytest.approx(one, rel=1e-9)
    window = np.roll(strength, (6, 6), axis=(0, 1))[:13, :13]  # offsets within 6 px of the true one, (0, 0)
    peak = np.unravel_index(int(np.argmax(window)), window.shape)
    assert abs(int(peak[0]) - 6) <= 2 and abs(int(peak[1]) - 6) <= 2, peak
    print(f"strength near the true offset {window.max():.3f}, percentile {np.mean(strength < window.max()) * 100:.1f}")
    assert window.max() > np.percentile(strength, 95)


@pytest.mark.parametrize("block", [16, 20, 15])
def test_blocks_inside_matches_a_direct_reduction(block: int) -> None:
    """The blocks lying wholly inside a region, and those touching it, as OpenCV's rounded area means find them
    (halving first where the block is even) equal numpy's exact reductions over each block, on soft masks with
    single stray pixels (the cases a rounded mean could miss) and hard edges."""
    rng = np.random.default_rng(11)
    nby, nbx = 7, 9
    for trial in range(20):
        mask = np.zeros((nby * block + 5, nbx * block + 3), dtype=np.uint8)
        y, x = rng.integers(0, nby * block // 2, 2)
        mask[y:y + rng.integers(block, 4 * block), x:x + rng.integers(block, 5 * block)] = rng.integers(1, 256)
        for _ in range(3):  # stray pixels of the smallest value
            mask[rng.integers(nby * block), rng.integers(nbx * block)] = 1
        if trial % 2:
            mask[:] = (mask > 0).astype(np.uint8)  # a 0/1 mask, as merge's regions are
        cells = mask[: nby * block, : nbx * block].reshape(nby, block, nbx, block) != 0
        assert np.array_equal(sm._blocks_inside(mask, 0, 0, nby, nbx, block), cells.all(axis=(1, 3)))
        assert np.array_equal(sm._blocks_inside(mask, 0, 0, nby, nbx, block, wholly=False), cells.any(axis=(1, 3)))


def test_informed_pushes_spend_a_uniform_marks_energy() -> None:
    """Version 3's moves: each region's energy is a uniform mark's (sum of squared gains), a slot whose host
    already lies beyond the margin its bit's way or opposes it beyond HOPELESS does not move, none moves more
    than PUSH_MOST x its gain, and every moved slot ends at the region's common margin."""
    rng = np.random.default_rng(3)
    host = rng.normal(0.0, 0.8, 4000)
    gain = rng.uniform(0.25, 2.0, 4000)
    labels = (np.arange(4000) % 3 == 0).astype(np.intp)
    push = sm.informed_pushes(host * gain, gain, labels)
    for label in (0, 1):
        sel = labels == label
        assert np.sum(push[sel] ** 2) == pytest.approx(np.sum(gain[sel] ** 2), rel=1e-4)
    assert np.all(push >= 0) and np.all(push <= sm.PUSH_MOST * gain + 1e-9)
    assert not push[host < -sm.HOPELESS].any()
    moved = (push > 1e-9) & (push < sm.PUSH_MOST * gain - 1e-9)
    final = host[moved] + push[moved] / gain[moved]  # in units of each slot's uniform push
    for label in (0, 1):
        m = final[labels[moved] == label]
        assert m.size and np.ptp(m) < 1e-4
        assert not push[(labels == label) & (host > m[0] + 1e-6)].any()


def test_v2_embed_saturates_at_the_range(sync_payload: np.ndarray) -> None:
    """The mark is added with saturation: on a flat frame (no host content) the change is the same at any
    grey level, clipped to 0..255 near the ends, and only inside the region."""
    payload = sync_payload
    region = np.zeros((160, 192), dtype=np.uint8)
    region[16:144, 32:176] = 1
    mid = np.full((160, 192, 3), 128, dtype=np.uint8)
    step = sm.embed(mid, payload, region=region).astype(np.int16) - 128
    assert step.any() and step.min() < 0 < step.max()
    assert not step[region == 0].any()
    for level in (0, 3, 250, 255):
        flat = np.full_like(mid, level)
        marked = sm.embed(flat, payload, region=region)
        assert np.array_equal(marked, np.clip(level + step, 0, 255).astype(np.uint8)), level
    # the uint8 offset step (change + 128) holds every change the embed can make at strength 1; stronger ones are
    # clipped at +-127 first (version 2's largest, at strength 4, fitted)
    assert sm.WRITTEN.most_change < 128 and 4 * sm.V2.most_change < 128 <= 4 * sm.WRITTEN.most_change
    assert 0 < np.abs(step).max() <= sm.WRITTEN.most_change
    strong = sm.embed(mid, sync_payload, region=region, strength=4.0).astype(np.int16) - 128
    assert np.abs(strong).max() <= 127 and np.abs(strong).max() > np.abs(step).max()


def test_embed_in_place_matches_the_copy_on_any_view(v2_clip: Any, sync_payload: np.ndarray) -> None:
    """The embed's sum is written straight into the output (session 18): marking in place gives the copy's pixels
    for the whole-frame mark, for a face region whose box is a strided view of the frame, and for views OpenCV
    cannot write through (a channel-flipped frame), frame after frame (the per-thread scratch planes are reused
    and their old contents never leak); the input of a copy is left untouched."""
    frames, regions, _ = v2_clip
    for i in range(3):
        rgb, region = frames[i], regions[i]
        assert region.any() and not region.all()
        for kwargs in ({"texture": True, "within": region}, {"region": region}):
            before = rgb.copy()
            copied = sm.embed(rgb, sync_payload, frame=i, **kwargs)
            assert np.array_equal(rgb, before) and not np.array_equal(copied, rgb)
            in_place = rgb.copy()
            assert sm.embed(in_place, sync_payload, frame=i, inplace=True, **kwargs) is in_place
            assert np.array_equal(in_place, copied), (i, kwargs.keys())
            flipped = np.ascontiguousarray(rgb[:, :, ::-1])[:, :, ::-1]  # rgb's pixels through a negative stride
            sm.embed(flipped, sync_payload, frame=i, inplace=True, **kwargs)
            assert np.array_equal(flipped, copied), (i, kwargs.keys())
            if "region" in kwargs:  # the face-only mark leaves every pixel outside the region as it was
                assert np.array_equal(copied[region == 0], rgb[region == 0])


@pytest.mark.parametrize("attack", V2_DEFAULT)
def test_v2_survives(attack: str, attacks: Any, frame_clip: Any, sync_payload: np.ndarray, faces: FaceRegions) -> None:
    res = _read_v2(attacks[attack](frame_clip[:V2_FRAMES]), faces)
    assert res.found and np.array_equal(res.bits, sync_payload), (attack, res.pilot, res.offset)


def test_phase_chosen_on_the_host_reads_back(attacks: Any, v2_clip: Any, sync_payload: np.ndarray) -> None:
    """choose_phase (merge's choice of where a video's tiling starts) takes the block-aligned phase whose host agrees
    best with the payload's coded signs, on real frames; the frames marked there, as merge marks them, read back
    as verify reads the whole frames (the reader weighs every block-aligned offset), plain and through H.264 at
    CRF 28; a phase off the block grid is refused."""
    frames = v2_clip[0]
    picks = frames[:: len(frames) // sm.PHASE_FRAMES][: sm.PHASE_FRAMES]
    phase = sm.choose_phase(picks, sync_payload)
    block = sm.WRITTEN.block
    assert phase[0] % block == 0 and phase[1] % block == 0 and max(phase) < sm.WRITTEN.tile
    wanted = sm._wanted_signs_cached(np.packbits(sync_payload).tobytes(), sm.WRITTEN)
    agree = sum(sm._phase_agreement(sm.block_coefficients(sm._luma(f), (0, 0)), wanted, sm.WRITTEN) for f in picks)
    assert agree[phase[0] // block, phase[1] // block] == agree.max() > agree[0, 0]  # (0, 0): merge's phase before
    assert sm.choose_phase(picks, sync_payload) == phase and sm.choose_phase([], sync_payload) == (0, 0)
    assert sm.choose_phase([picks[0][:100, :100]], sync_payload) == (0, 0)  # too small to mark: nothing to choose on
    regions = v2_clip[1]
    marked = [sm.embed(rgb, sync_payload, frame=i, texture=True, within=r, phase=phase)
              for i, (rgb, r) in enumerate(zip(frames[:V2_FRAMES], regions, strict=False))]
    plain = _whole_reader(marked).read()
    assert plain.found and np.array_equal(plain.bits, sync_payload)
    assert all(abs(a - b) <= 2 for a, b in zip(plain.offset, phase, strict=True)), (plain.offset, phase)
    coded = _whole_reader(attacks["h264_crf28"](marked)).read()
    assert coded.found and np.array_equal(coded.bits, sync_payload), (coded.offset, phase)
    with pytest.raises(ValueError, match="multiple of the block"):
        sm.embed(frames[0], sync_payload, phase=(10, 0))


def test_v2_unmarked_never_detected(attacks: Any, faces: FaceRegions) -> None:
    """Unmarked frames (the bundled src and dst, and noise), plain and attacked, never decode. (A few reads guard
    against a systematic fault; the false-positive rate is measured by benchmarks/watermark.py on 20 clips. The
    scale search's reads of unmarked clips: the next test and the verify tests.)"""
    rng = np.random.default_rng(11)
    noise = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(8)]
    clips = [[rgb for i, rgb in iter_frames(p) if i < FP_FRAMES] for p in (DST, REPO / "samples" / "src.mp4")]
    for clip in [*clips, noise]:
        for attack in ("none (PNG)", "h264_crf28", "crop_5%_left"):
            res = _read_v2(attacks[attack](clip), faces, scaled=False)
            assert not res.found and not any(res.frames_found), attack


def _whole_reader(frames: list[np.ndarray], lay: sm.Layout = sm.WRITTEN) -> sm.VideoReader:
    """A reader given the whole frames (no face regions: as verify reads frames where dlib finds no face)."""
    reader = sm.VideoReader(lay)
    for rgb in frames:
        reader.add(rgb)
    return reader


LOCATED_FRAMES = 12


def test_v2_located_reading_finds_what_the_whole_frame_misses(attacks: Any, v2_clip: Any) -> None:
    """The bundled clip marked in its face hull with version 2 (16 px blocks), through H.264 CRF 28, read without
    its faces: the whole frame (the face about a quarter of it) does not decode, the located reading does, from
    blocks that lie in the face, and every frame decodes on its own in them. (Version 3's face-only mark is read
    by the whole frames already here, so the located reading is checked on version 2, whose files verify still
    reads: docs/provenance.md, session 17.) On LOCATED_FRAMES frames: on 20 the whole frames decode too since the
    reader moves to where the code fits best (session 30)."""
    frames, regions, _ = v2_clip
    payload = sm.make_payload(MODEL_ID, sm.V2)
    marked = [sm.embed(rgb, payload, region=r, frame=i, lay=sm.V2)
              for i, (rgb, r) in enumerate(zip(frames[:LOCATED_FRAMES], regions, strict=False))]
    reader = _whole_reader(attacks["h264_crf28"](marked), sm.V2)
    assert not reader.read().found
    res = reader.read_located()
    assert res.found and np.array_equal(res.bits, payload) and res.offset == (0, 0)
    assert res.located is not None and 0.05 < res.located < 0.3
    assert sum(res.frames_found) == LOCATED_FRAMES
    offsets, chosen = reader.locate(offset=res.offset)
    assert offsets == [(0, 0)] * LOCATED_FRAMES
    ny, nx = chosen.shape
    b = sm.V2.block
    face = regions[0][: ny * b, : nx * b].reshape(ny, b, nx, b).mean(axis=(1, 3))
    assert face[chosen].mean() > 0.8  # the chosen blocks are (almost all) the face's
    best = reader.read_best()
    assert best.found and best.located is not None and np.array_equal(best.bits, payload)


def test_v2_located_reading_never_decodes_unmarked(attacks: Any) -> None:
    """Unmarked frames (the bundled src and dst, one segment each, and noise), plain and attacked, read
    whole: the located reading chooses blocks and decodes, and never passes the magic and CRC check; nor does any
    other reading verify makes, the scale search included (on the real clips halved and kept small)."""
    rng = np.random.default_rng(12)
    noise = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(8)]
    clips = [noise]
    for path, start in ((DST, 0.5), (REPO / "samples" / "src.mp4", 0.0)):
        frames = [rgb for _, rgb in iter_frames(path)]
        clips.append(frames[int(len(frames) * start):][:FP_FRAMES])
    for clip in clips:
        kept = ("downscale_1/2_kept",) if clip is not noise else ()  # (noise halved: below the smallest frame read)
        for attack in ("none (PNG)", "h264_crf28", "downscale_1/2", "crop_5%_left", *kept):
            reader = _whole_reader(attacks[attack](clip))
            assert reader.locate()[1].any()
            res = reader.read_located()
            assert not res.found and not any(res.frames_found), attack
            assert not reader.read_best(scaled=False).found, attack
        if kept:  # read_best's last try, the scale search (several seconds a read), on the video kept small
            for thorough in (False, True) if clip is clips[1] else (False,):
                scaled = reader.read_scaled(thorough=thorough)
                assert not scaled.found and not any(scaled.frames_found)
                assert scaled.scale in reader.scale_factors() and scaled.scale > 1.0


def test_v2_read_best_reads_the_whole_frames_every_time(v2_clip: Any, sync_payload: np.ndarray) -> None:
    """Frames marked whole but for their faces (the faces put back unmarked), read with the face regions: the
    faces' reading fails, the whole frames' decodes, and a second reading (the whole frames now cached, as
    the benchmark's frames-needed votes read) still reads them."""
    frames, regions, _ = v2_clip
    reader = sm.VideoReader()
    for i, (rgb, region) in enumerate(zip(frames[:V2_FRAMES], regions, strict=False)):
        marked = sm.embed(rgb, sync_payload, frame=i)
        marked[region] = rgb[region]
        reader.add(marked, region)
    assert not reader.read().found
    for _ in range(2):
        for per_frame in (True, False):
            res = reader.read_best(per_frame=per_frame)
            assert res.found and np.array_equal(res.bits, sync_payload) and res.located is None, per_frame


def test_v2_rotation_search_reads_a_turned_video(attacks: Any, v2_clip: Any, frame_clip: Any,
                                                 sync_payload: np.ndarray) -> None:
    """The bundled clip marked as merge marks it (the whole frame, texture-masked), turned about its centre
    and through H.264 CRF 23: the synchronisation (shifts only) and the located reading miss it, the
    rotation search finds it at the nearest searched angle."""
    frames = v2_clip[0]
    marked = frame_clip[:V2_FRAMES]
    h, w = frames[0].shape[:2]
    for degrees, expected in ((2.0, 2.0), (-2.6, -3.0)):
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        turned = [cv2.warpAffine(m, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for m in marked]
        reader = _whole_reader(attacks["h264_crf23"](turned))
        assert not reader.read().found and not reader.read_located().found, degrees
        res = reader.read_best()
        assert res.found and np.array_equal(res.bits, sync_payload), degrees
        assert res.rotation == expected and res.located is None, degrees
        how = _how_read(res)  # what verify's report says
        assert how is not None and f"back by {abs(expected):g} degrees" in how, how


@pytest.mark.parametrize("factor", [2, 3])
def test_scale_search_reads_a_video_kept_small(attacks: Any, frame_clip: Any, sync_payload: np.ndarray,
                                               factor: int) -> None:
    """The bundled clip marked as merge marks it, scaled down to a half or a third (area) and encoded at CRF 23 at
    that size, kept small as a platform delivers it (240 or 160 px): every reading at the file's own size misses
    the mark (its blocks are a half or a third of their size), the scale search enlarges the frames back by the
    right factor and decodes, and verify's note says so."""
    small = attacks[f"downscale_1/{factor}_kept"](frame_clip[:V2_FRAMES])
    assert small[0].shape == (480 // factor, 480 // factor, 3)
    reader = _whole_reader(small)
    assert float(factor) in reader.scale_factors()
    assert not reader.read_best(scaled=False).found
    res = reader.read_best()
    assert res.found and np.array_equal(res.bits, sync_payload) and res.scale == factor
    assert sum(res.frames_found) >= V2_FRAMES // 2  # most frames decode on their own once enlarged
    how = _how_read(res)
    assert how is not None and f"enlarging the frames {factor} times" in how, how
    if factor == 3:  # the thorough search (every factor's fit on every frame, the best three read) agrees
        thorough = reader.read_scaled(thorough=True)
        assert thorough.found and np.array_equal(thorough.bits, sync_payload) and thorough.scale == factor


def test_frames_turned_or_enlarged_are_folded_on_threads_alike(attacks: Any, frame_clip: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The readings that turn or enlarge the whole frames fold them on READ_THREADS threads (session 28): on the
    bundled clip marked, halved and kept small (the scale search reads it) and on it unmarked (every reading,
    the rotations' too), three threads give one thread's reading exactly."""
    small = attacks["downscale_1/2_kept"](frame_clip[:8])
    unmarked = [rgb for index, rgb in iter_frames(DST) if index < 8]
    for frames in (small, unmarked):
        readings = []
        for threads in (1, 3):
            monkeypatch.setattr(sm, "READ_THREADS", threads)
            readings.append(_whole_reader(frames).read_best())
        one, three = readings
        assert (one.found, one.offset, one.scale, one.rotation, one.frames_found) == (
            three.found, three.offset, three.scale, three.rotation, three.frames_found)
        assert np.array_equal(one.soft, three.soft)
    assert readings[0].found is False  # the unmarked clip (its every reading made)


def test_verify_finds_the_mark_in_a_video_kept_small(tmp_path: Path, frame_clip: Any) -> None:
    """What a user verifies: the bundled clip marked as merge marks it, halved and written at CRF 23 as a 240 px
    MP4. verify finds version 3's mark, names the model, and notes the enlargement; the same frames unmarked
    (halved, the same encode) are not found."""
    for name, frames in (("marked", frame_clip[:V2_FRAMES]), ("unmarked", [rgb for index, rgb in iter_frames(DST)
                                                                         if index < V2_FRAMES])):
        folder = tmp_path / name
        folder.mkdir()
        for index, rgb in enumerate(frames):
            small = cv2.resize(rgb, (240, 240), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(folder / frame_name(index, "png")), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        out = tmp_path / f"{name}.mp4"
        build_video(folder, out, fps=30, crf=23)
        assert probe_video(out).width == 240
        calls: list[tuple[int, int]] = []
        report = verify(out, progress=lambda done, total, calls=calls: calls.append((done, total)))
        # the progress: each frame read, then the searches' readings (read_best's stages, each version), to the end
        total = V2_FRAMES + sm.READ_STAGES * len(sm.LAYOUTS)
        assert calls[:V2_FRAMES] == [(k, total) for k in range(1, V2_FRAMES + 1)]
        assert calls[-1] == (total, total) and [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert len(calls) > V2_FRAMES + 1  # the searches reported steps too
        if name == "marked":
            assert report.watermark_found and report.watermark_scheme == sm.V3.name
            assert report.payload_model_prefix is not None and MODEL_ID.startswith(report.payload_model_prefix)
            assert any("enlarging the frames 2 times" in note for note in report.notes), report.notes
        else:
            assert not report.watermark_found and not any("enlarging" in note for note in report.notes)


@pytest.mark.parametrize("lay", [sm.V3, sm.V2])
def test_verify_reads_v2_video(tmp_path: Path, v2_clip: Any, lay: sm.Layout) -> None:
    """A video marked as merge marks it, H.264 CRF 28: verify reads what facelab writes (version 3) and what it
    wrote before (version 2), says which, and matches the shorter model id of version 3 against the record's."""
    frames, regions, _ = v2_clip
    payload = sm.make_payload(MODEL_ID, lay)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, (rgb, region) in enumerate(zip(frames[:V2_FRAMES], regions, strict=False)):
        marked = sm.embed(rgb, payload, frame=index, texture=True, within=region, lay=lay)
        cv2.imwrite(str(folder / frame_name(index, "png")), cv2.cvtColor(marked, cv2.COLOR_RGB2BGR))
    out = tmp_path / "v2.mp4"
    build_video(folder, out, fps=30, crf=28)
    write_sidecar(out, make_record(MODEL_ID))
    report = verify(out)
    assert report.watermark_found and report.watermark_scheme == f"{sm.SCHEME}/{lay.version}" == lay.name
    assert report.payload_hex == wm.payload_hex(payload)
    assert report.payload_model_prefix == MODEL_ID[: lay.model_bits // 4]
    assert report.record_matches_watermark is True
    assert any(f"scheme facelab-sync-blocks/{lay.version}" in line for line in report_lines(report))


def test_verify_locates_a_mark_away_from_the_faces(tmp_path: Path, v2_clip: Any, faces: FaceRegions) -> None:
    """A version 2 mark where no face is (a 208 px square of the bundled clip's top left corner, less the face
    hull that reaches into it), H.264 CRF 28: the reading in the faces dlib finds and the whole frames' miss it,
    verify (having read version 3 first, in vain) finds it through version 2's located reading."""
    payload = sm.make_payload(MODEL_ID, sm.V2)
    frames, faces_in, _ = v2_clip
    square = np.zeros(frames[0].shape[:2], dtype=np.bool_)
    square[16:224, 16:224] = True
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, rgb in enumerate(frames[:V2_FRAMES]):
        region = square & ~faces_in[index]
        marked = sm.embed(rgb, payload, region=region, frame=index, lay=sm.V2)
        assert np.array_equal(marked[faces_in[index]], rgb[faces_in[index]])  # the face is untouched
        cv2.imwrite(str(folder / frame_name(index, "png")), cv2.cvtColor(marked, cv2.COLOR_RGB2BGR))
    out = tmp_path / "corner.mp4"
    build_video(folder, out, fps=30, crf=28)
    decoded = [rgb for _, rgb in iter_frames(out)]
    in_faces = sm.VideoReader(sm.V2)
    for rgb in decoded:
        found = faces(rgb)
        in_faces.add(rgb, np.any(found, axis=0) if found else None)
    assert not in_faces.read().found and not _whole_reader(decoded, sm.V2).read().found
    report = verify(out)
    assert report.watermark_found and report.payload_hex == wm.payload_hex(payload)
    assert report.watermark_scheme == sm.V2.name
    assert any(note.startswith("watermark read where it was located") for note in report.notes), report.notes


# not met by syncmark version 3 (the whole-frame mark merge writes) on this clip's own faces, 60 frames: none
# since session 17 (version 2 missed the 1/3 downscale and the 1/2 downscale + CRF 28); an attack added here is
# an expected failure, strict, so a fix shows. docs/provenance.md, What survives what
V2_NOT_MET: frozenset[str] = frozenset()


@pytest.mark.slow
@pytest.mark.parametrize("attack", [
    pytest.param(a, marks=pytest.mark.xfail(reason="target not met (docs/provenance.md)", strict=True))
    if a in V2_NOT_MET else a for a in _attacks()])
def test_v2_survives_full_suite(attack: str, attacks: Any, frame_clip: Any, sync_payload: np.ndarray,
                                faces: FaceRegions) -> None:
    """Every attack of the benchmark on 60 frames of the bundled clip marked as merge marks it."""
    res = _read_v2(attacks[attack](frame_clip), faces)
    assert res.found and np.array_equal(res.bits, sync_payload), (attack, res.pilot, res.offset)


def test_compiled_edge_weights_match_their_numpy_formula() -> None:
    """Session 35: kernels.drawn is the edge weights' numpy formula compiled (each cell at most what its texture
    allows, min(most / gain, 1); each block's cells scaled to a mean square of 1, none past EDGE_BOOST; the share is
    the block's mean square after that cap): the same values to float32 rounding on random planes."""
    from facelab.provenance import kernels

    rng = np.random.default_rng(8)
    side, nby, nbx = 5, 7, 9
    most = rng.uniform(0.05, 3.0, (nby * side, nbx * side)).astype(np.float32)
    most[:, :side] = 0.01  # the first block column flat but for one row of cells a block: those reach EDGE_BOOST
    most[::side, :side] = 3.0
    gain = rng.uniform(0.25, 2.0, (nby, nbx))
    out, share = kernels.drawn(most, gain, side, sm.EDGE_BOOST)
    w = np.minimum(most.reshape(nby, side, nbx, side) / gain.astype(np.float32)[:, None, :, None], np.float32(1.0))
    scale = 1.0 / np.sqrt(np.maximum((w.astype(np.float64) ** 2).mean(axis=(1, 3)), 1e-12))
    want = np.minimum(w * scale.astype(np.float32)[:, None, :, None], np.float32(sm.EDGE_BOOST))
    assert np.allclose(out.reshape(want.shape), want, rtol=1e-6, atol=0)
    assert np.allclose(share, (want.astype(np.float64) ** 2).mean(axis=(1, 3)), rtol=1e-6)
    assert share[:, 0].max() < 1.0 and np.allclose(share[:, 1:], 1.0, rtol=1e-5)  # capped blocks draw less
