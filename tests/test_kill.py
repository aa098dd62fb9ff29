"""Kill -9 anywhere (issue 17): each long command, killed with SIGKILL after its k-th write and run again,
ends with the result of an uninterrupted run: bit-identical files where the command is deterministic,
else the same files, each valid. The harness is tests/killpoints.py; docs/reliability.md has the figures.

The default suite tries two or three kill points per cheap command; ``-m slow`` sweeps many per command
(and the commands too slow for the default suite: xseg train, enhance, swap).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.killpoints import REPO, Command, Sweep, facelab, file_hashes, fresh, sweep

SAMPLES = REPO / "samples"

TRAIN_TINY = ["--arch", "df", "--resolution", "64", "--face-type", "whole_face", "--ae-dims", "16", "--e-dims", "8",
              "--d-dims", "8", "--d-mask-dims", "4", "--batch-size", "2", "--workers", "0", "--from-scratch",
              "--backup-hours", "0", "--log-every", "1", "--device", "cpu", "--seed", "3"]
TRAIN_TARGET = 6


def _state_skip(rel: str) -> bool:
    """Files whose bytes record the run itself (timings, journals in completion order), not its result."""
    name = rel.rsplit("/", 1)[-1]
    return name in ("journal.jsonl", "summary.json") or name.startswith("journal-") or name.startswith("merge-shard")


# ---- inputs, made once -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """src faces (2 fps), dst frames (4 fps) with their faces, all 64 px, XSeg-labelled dst faces and a tiny
    trained model."""
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract
    from facelab.media.frames import extract_frames

    base = tmp_path_factory.mktemp("kill_inputs")
    opts = ExtractOptions(size=64, workers=1)
    run_extract(SAMPLES / "src.mp4", base / "src", opts.model_copy(update={"fps": 2.0}))
    extract_frames(SAMPLES / "dst.mp4", base / "dst_frames", fps=4, fmt="jpg")
    run_extract(base / "dst_frames", base / "dst", opts)
    labels = {p.name: [{"kind": "include", "points": [[12, 10], [52, 10], [56, 60], [8, 60]]}]
              for p in sorted((base / "dst").glob("*.jpg"))[:6]}
    shutil.copytree(base / "dst", base / "xseg_faces", ignore=shutil.ignore_patterns("_extract"))
    (base / "labels.json").write_text(json.dumps({"schema": "facelab.xseg_labels", "version": 1, "faces": labels}))
    assert facelab(["xseg", "import-labels", base / "xseg_faces", "--labels", base / "labels.json"]).returncode == 0
    run = facelab(["train", "--src", base / "src", "--dst", base / "dst", "--model-dir", base / "model",
                   *TRAIN_TINY, "--target-iteration", "2", "--preview-every", "0"])
    assert run.returncode == 0, run.output
    return base


# ---- the commands ----------------------------------------------------------------------------------------

def _copy_input(inputs: Path, name: str) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        fresh(root)
        shutil.copytree(inputs / name, root / name, ignore=shutil.ignore_patterns("_extract"))
    return prepare


def _hashes(sub: str) -> Callable[[Path], dict[str, str]]:
    return lambda root: file_hashes(root / sub, _state_skip)


def _model_facts(sub: str, schema_state: str = "state.json") -> Callable[[Path], dict[str, Any]]:
    """A trained model folder's facts: its files (by name), its iteration, and that it loads."""
    def snapshot(root: Path) -> dict[str, Any]:
        folder = root / sub
        state = json.loads((folder / schema_state).read_text())
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        from facelab.core.model_folder import load_checkpoint

        ckpt = load_checkpoint(folder)
        assert ckpt is not None and ckpt.state.iteration == state["iteration"]
        return {"files": files, "iteration": state["iteration"], "tensors": sorted(ckpt.weights)}
    return snapshot


def commands(inputs: Path) -> dict[str, Command]:
    return {c.name: c for c in [
        Command("extract", fresh, lambda r: ["extract", SAMPLES / "dst.mp4", "-o", r / "out", "--size", "64",
                                             "--fps", "4", "--workers", "1"],
                _hashes("out"), deterministic=True),
        Command("train", fresh, lambda r: ["train", "--src", inputs / "src", "--dst", inputs / "dst",
                                           "--model-dir", r / "model", *TRAIN_TINY,
                                           "--target-iteration", str(TRAIN_TARGET), "--autosave-iterations", "2",
                                           "--preview-every", "3"],
                _model_facts("model"), deterministic=False),
        Command("merge", fresh, lambda r: ["merge", "--model-dir", inputs / "model", "--frames", inputs / "dst_frames",
                                           "--aligned", inputs / "dst", "-o", r / "merged", "--workers", "1",
                                           "--format", "jpg"],
                _hashes("merged"), deterministic=True),
        Command("sort", _copy_input(inputs, "dst"), lambda r: ["faceset", "sort", r / "dst", "--by", "best-fast",
                                                                "--target", "12", "--workers", "1"],
                lambda r: file_hashes(r), deterministic=True),
        Command("pack", _copy_input(inputs, "dst"), lambda r: ["faceset", "pack", r / "dst", "-o", r / "dst.fpack"],
                lambda r: file_hashes(r), deterministic=True),
        Command("resize", fresh, lambda r: ["faceset", "resize", inputs / "dst", "-o", r / "out", "--size", "96",
                                            "--face-type", "full"],
                lambda r: file_hashes(r), deterministic=True),
        Command("enhance", fresh, lambda r: ["faceset", "enhance", inputs / "dst", "-o", r / "out", "--tile", "64"],
                lambda r: file_hashes(r), deterministic=True),
        Command("xseg-train", fresh, lambda r: ["xseg", "train", "--faces", inputs / "xseg_faces", "--model-dir",
                                                r / "xseg", "--resolution", "64", "--base-channels", "4",
                                                "--batch-size", "2", "--save-every", "2", "--target-iteration", "6"],
                _model_facts("xseg"), deterministic=False),
    ]}


def _check(result: Sweep) -> None:
    assert result.tried > 0, f"{result.command}: no kill point was reached ({result.writes} writes)"
    assert not result.failures, "\n".join(f"{result.command} killed after write {r.k}: {r.detail}"
                                          for r in result.failures)


@pytest.mark.parametrize("name,points", [("extract", 3), ("merge", 2), ("sort", 3), ("pack", 2), ("resize", 2),
                                         ("train", 2)])
def test_killed_command_resumes_to_the_same_result(inputs: Path, tmp_path: Path, name: str, points: int) -> None:
    _check(sweep(commands(inputs)[name], tmp_path / "run", points))
