"""The `facelab` command end to end in a subprocess: real output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLES


def facelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facelab.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def assert_one_line_error(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_frames_then_extract_from_the_frame_folder(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    res = facelab("video", "frames", SAMPLES / "dst.mp4", "-o", frames, "--format", "jpg")
    assert res.returncode == 0, res.stderr
    info = json.loads((frames / "video.json").read_text())
    assert info["frame_count"] == 216 and info["has_audio"] is True
    cfg = tmp_path / "extract.toml"
    cfg.write_text('[extract]\nsize = 128\nface-type = "full"\nworkers = 2\n')
    res = facelab("extract", frames, "-o", tmp_path / "aligned", "--config", cfg, "--size", "96")
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "aligned" / "_extract" / "summary.json").read_text())
    assert summary["frames"] == 216 and summary["frames_with_faces"] >= 212
    from facelab.faceset.record import read_record

    rec = read_record(tmp_path / "aligned" / "000100_0.jpg")
    assert rec.size == 96 and rec.face_type == "full"  # the flag beats the file, the file beats the default
    # a re-run has nothing left to do
    res = facelab("extract", frames, "-o", tmp_path / "aligned", "--config", cfg, "--size", "96")
    assert res.returncode == 0
    assert json.loads((tmp_path / "aligned" / "_extract" / "summary.json").read_text())["resumed_frames"] == 216


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_one_line_error(facelab("extract", tmp_path / "missing.mp4", "-o", out), "missing.mp4", "no such")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert_one_line_error(facelab("extract", text, "-o", out), "notes.mp4", "not a video")
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes((SAMPLES / "dst.mp4").read_bytes()[:60000])
    assert_one_line_error(facelab("extract", trunc, "-o", out), "trunc.mp4", "truncated")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(facelab("extract", empty, "-o", out), "empty", "no frame images")
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[extract]\nsize = 5000\n")
    assert_one_line_error(facelab("extract", SAMPLES / "dst.mp4", "-o", out, "--config", bad_cfg), "size")
    assert not list(out.glob("*.jpg")) if out.exists() else True


def test_unreadable_frame_stops_with_an_error_and_keeps_finished_work(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    assert facelab("video", "frames", SAMPLES / "dst.mp4", "-o", frames, "--fps", "2").returncode == 0
    files = sorted(frames.glob("*.png"))
    out = tmp_path / "aligned"
    # a first run finishes every frame but the last few
    for f in files[-4:]:
        f.rename(f.with_suffix(".hold"))
    assert facelab("extract", frames, "-o", out, "--workers", "1").returncode == 0
    done = sorted(out.glob("*.jpg"))
    assert len(done) == len(files) - 4
    for f in files[-4:]:
        f.with_suffix(".hold").rename(f)
    files[-2].write_bytes(b"this is not a png")
    res = facelab("extract", frames, "-o", out, "--workers", "1")
    assert_one_line_error(res, files[-2].name, "unreadable")
    assert all(p.exists() for p in done)  # nothing already written is lost


@pytest.mark.parametrize("args", [["--face-type", "quarter"], ["--detector", "nope"]])
def test_bad_choices_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    res = facelab("extract", SAMPLES / "dst.mp4", "-o", tmp_path / "o", *args)
    assert res.returncode == 2 and "Traceback" not in res.stderr


@pytest.mark.parametrize("value", ["often", "1.5", "nan"])
def test_a_number_or_word_option_names_what_it_takes(value: str, tmp_path: Path) -> None:
    """--mouth-match takes a number from 0 to 1 or auto (one flag for a union, checked by the options model)."""
    res = facelab("train", "--src", tmp_path, "--dst", tmp_path, "--model-dir", tmp_path / "m", "--mouth-match", value)
    assert_one_line_error(res, "mouth_match", "from 0 to 1 or auto")
    assert not (tmp_path / "m").exists()
