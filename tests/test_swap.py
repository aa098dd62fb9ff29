"""The one-command swap on the bundled sample: a result that matches dst, marked, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from facelab.core.errors import InputError
from facelab.media.video import probe_video
from facelab.provenance.verify import verify
from facelab.workflow.swap import run_swap
from tests.conftest import SAMPLES


def _audio_bytes(path: Path) -> bytes:
    with av.open(str(path)) as c:
        return b"".join(bytes(p) for p in c.demux(audio=0) if p.size)


def test_swap_end_to_end(tmp_path: Path) -> None:
    out, ws = tmp_path / "result.mp4", tmp_path / "ws"
    said: list[str] = []
    r = run_swap(SAMPLES / "src.mp4", SAMPLES / "dst.mp4", out, ws, preset="demo", minutes=None, iterations=4,
                 workers=2, say=said.append)
    a, b = probe_video(out), probe_video(SAMPLES / "dst.mp4")
    assert (a.frame_count, a.fps_fraction, a.width, a.height) == (b.frame_count, b.fps_fraction, b.width, b.height)
    assert a.has_audio and a.audio_duration_s == pytest.approx(b.audio_duration_s, abs=0.05)
    assert _audio_bytes(out) == _audio_bytes(SAMPLES / "dst.mp4")  # the audio stream is copied, not re-encoded
    for video in (r.video, r.comparison):
        report = verify(video, max_frames=12)
        assert report.watermark_found and report.record is not None and report.record.synthetic
        assert Path(str(video) + ".provenance.json").exists()
    assert r.preview.exists() and r.iterations == 4
    # src shows every mouth opening dst makes (faceset coverage): no note about it
    assert not any(m.startswith("note:") for m in said)
    # the demo preset starts from the shipped face prior (docs/prior.md)
    state = json.loads((ws / "model" / "state.json").read_text())
    assert state["prior"].startswith("demo-full64 ") and state["pretrained"]
    done = json.loads((ws / "swap.json").read_text())["done"]
    assert set(done) == {"frames", "extract_src", "extract_dst", "train", "merge", "video"}
    # a re-run finds every step done and redoes none
    said.clear()
    run_swap(SAMPLES / "src.mp4", SAMPLES / "dst.mp4", out, ws, preset="demo", minutes=None, iterations=4,
             say=said.append)
    assert said and all("skipped" in m for m in said)


def test_swap_notes_what_src_does_not_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import facelab.workflow.swap as swap_module

    seen: list[tuple[Path, Path, bool]] = []

    class _Gappy:
        def gaps(self) -> list[str]:
            return ["dst's mouth is open in 40.0% of its faces, src in 0 (0.0%): ..."]

    def fake(src: Path, dst: Path, mirror_src: bool = True) -> _Gappy:
        seen.append((src, dst, mirror_src))
        return _Gappy()

    def stop(*_: object, **__: object) -> None:
        raise KeyboardInterrupt  # the notes come before training; no need to train here

    monkeypatch.setattr(swap_module, "faceset_coverage", fake)
    monkeypatch.setattr(swap_module.Trainer, "__init__", stop)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_swap(SAMPLES / "src.mp4", SAMPLES / "dst.mp4", tmp_path / "o.mp4", tmp_path / "ws", iterations=1,
                 workers=2, say=said.append)
    ws = tmp_path / "ws"
    assert seen == [(ws / "src" / "aligned", ws / "dst" / "aligned", True)]
    assert "note: dst's mouth is open in 40.0% of its faces, src in 0 (0.0%): ... (facelab faceset coverage)" in said


def test_swap_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.mp4"):
        run_swap(tmp_path / "missing.mp4", SAMPLES / "dst.mp4", tmp_path / "o.mp4", tmp_path / "ws")
    ws = tmp_path / "ws2"
    ws.mkdir()
    (ws / "swap.json").write_text(json.dumps({"schema": "facelab.swap", "version": 1,
                                              "inputs": {"src": "/elsewhere/a.mp4", "dst": "/elsewhere/b.mp4"},
                                              "done": {}}))
    with pytest.raises(InputError, match="another src/dst pair"):
        run_swap(SAMPLES / "src.mp4", SAMPLES / "dst.mp4", tmp_path / "o.mp4", ws)
