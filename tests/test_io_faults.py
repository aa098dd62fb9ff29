"""Disk full (ENOSPC) and I/O errors (EIO) injected into writes and fsyncs (tests/faults_support.py) for
extract, train, merge, faceset pack and video encode: the call stops with a one-line StorageError, what
was written before is intact (read back), nothing half-written is left, and the next run resumes and
ends with the result of an uninterrupted run.

The default suite injects a disk that fills at the third write of each command;
``test_many_fault_points`` (slow) counts each command's writes and fsyncs in a
clean run and injects ENOSPC and EIO at nine points spread over them.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facelab.core import model_folder as ckpt_mod
from facelab.core.errors import StorageError, storage_error
from facelab.core.model_folder import load_checkpoint
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract
from facelab.faceset.folder import list_face_files
from facelab.faceset.pack import PackFile, pack_faceset
from facelab.faceset.record import read_record
from facelab.media.encode import build_video
from facelab.media.frames import list_frames, read_image_rgb
from facelab.media.video import iter_frames
from facelab.merge.options import MergeOptions
from facelab.merge.runner import run_merge
from facelab.train.options import TrainOptions
from facelab.train.trainer import Trainer
from tests.conftest import SAMPLES
from tests.faults_support import FaultyDisk

TINY = {"arch": "df-ud", "resolution": 64, "ae_dims": 64, "e_dims": 16, "d_dims": 16, "d_mask_dims": 8,
        "batch_size": 4, "workers": 0, "preview_every": 0, "backup_hours": 0}
POINTS_SLOW = tuple(i / 10 for i in range(1, 10))  # fractions of a command's operations
FAULTS = [(errno.ENOSPC, False), (errno.EIO, True)]  # (error, one operation only)


def _points(total: int, fractions: tuple[float, ...]) -> list[int]:
    return sorted({max(1, min(total, round(f * total))) for f in fractions})


def _leftovers(folder: Path) -> list[Path]:
    """Temporary or partial files a failed write must not leave behind (and the lock file)."""
    return [p for p in folder.rglob(".*") if p.is_file() and (p.name.endswith(".tmp") or ".partial" in p.name
                                                              or p.name == ".facelab.lock")]


def _pixels(folder: Path) -> dict[str, bytes]:
    return {p.name: read_image_rgb(p).tobytes() for p in list_frames(folder)}


def _faces(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in list_face_files(folder)}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Six dst frames, their faces (64 px), a tiny model trained two iterations, its merged frames."""
    base = tmp_path_factory.mktemp("faults")
    frames = base / "frames"
    frames.mkdir()
    for i, rgb in iter_frames(SAMPLES / "dst.mp4"):
        if i >= 6:
            break
        cv2.imwrite(str(frames / f"{i:06d}.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
    aligned = base / "aligned"
    run_extract(frames, aligned, ExtractOptions(size=64, workers=1))
    model = base / "model"
    torch.manual_seed(0)
    t = Trainer(model, TrainOptions.model_validate(TINY), aligned, aligned)
    t.train(iterations=2)
    t.close()
    merged = base / "merged"
    run_merge(model, frames, aligned, merged, MergeOptions(), workers=1)
    return {"base": base, "frames": frames, "aligned": aligned, "model": model, "merged": merged}


Plan = list[tuple[int, bool, int]]  # (error, one operation only, operation that fails)
QUICK: Plan = [(errno.ENOSPC, False, 3)]  # the default suite: a disk that fills at the third operation


def _plan(run: Callable[[Path], None], tmp: Path, fractions: tuple[float, ...],
          prepare: Callable[[Path], None]) -> Plan:
    """ENOSPC and EIO at ``fractions`` of ``run``'s operations (counted in an unfaulted run)."""
    prepare(tmp / "count")
    with FaultyDisk() as counter:
        run(tmp / "count")
    return [(code, once, at) for code, once in FAULTS for at in _points(counter.ops, fractions)]


def _sweep(run: Callable[[Path], None], check_partial: Callable[[Path], None], check_final: Callable[[Path], None],
           tmp: Path, plan: Plan | tuple[float, ...],
           prepare: Callable[[Path], None] = lambda _: None) -> tuple[int, int]:
    """For each fault of the plan: run into a fresh folder with the fault (a StorageError, or success where
    the fault hit a write that is allowed to fail, such as a folder's fsync), check what is left, run again
    without faults and check the result. Returns (faults injected, runs stopped by a StorageError)."""
    if isinstance(plan, tuple):
        plan = _plan(run, tmp, plan, prepare)
    injected = raised = 0
    for code, once, at in plan:
        target = tmp / f"{errno.errorcode[code]}-{at}"
        prepare(target)
        with FaultyDisk(at=at, code=code, once=once) as disk:
            try:
                run(target)
            except StorageError as exc:
                raised += 1
                assert code != errno.ENOSPC or "No space left on device while writing" in str(exc)
                assert "\n" not in str(exc)
        injected += disk.failed
        assert disk.failed >= 1, f"no fault at operation {at}"
        check_partial(target)
        run(target)  # resume, no faults
        check_final(target)
    return injected, raised


def _extract_case(world: dict[str, Path], tmp: Path, plan: Plan | tuple[float, ...]) -> tuple[int, int]:
    opts = ExtractOptions(size=64, workers=1)
    expected = _faces(world["aligned"])

    def partial(out: Path) -> None:
        if out.exists():
            for name, data in _faces(out).items():  # every face left is whole and the one a clean run writes
                read_record(out / name)
                assert data == expected[name], name
            assert not _leftovers(out)

    def final(out: Path) -> None:
        # the same faces, each valid (a resumed run starts its landmark tracking anew at the first frame
        # it extracts, so the faces after the fault may differ from the uninterrupted run's in a few bits)
        faces = _faces(out)
        assert faces.keys() == expected.keys()
        for name in faces:
            assert read_record(out / name).size == 64
        assert not _leftovers(out)

    return _sweep(lambda out: run_extract(world["frames"], out, opts) and None, partial, final, tmp, plan)


def test_extract_survives_a_full_disk_and_io_errors(world: dict[str, Path], tmp_path: Path) -> None:
    assert _extract_case(world, tmp_path, QUICK) == (1, 1)


def _train_case(world: dict[str, Path], tmp: Path, plan: Plan | tuple[float, ...]) -> tuple[int, int]:
    opts = TrainOptions.model_validate(TINY | {"autosave_iterations": 2})
    aligned = world["aligned"]

    def train_to_6(model: Path) -> None:
        ck = load_checkpoint(model) if (model / "state.json").exists() else None
        done = 0 if ck is None else ck.state.iteration
        t = Trainer(model, opts, aligned, aligned, previous=opts if ck is not None else None)
        try:
            t.train(iterations=6 - done)
        finally:
            t.close()

    def partial(model: Path) -> None:
        ck = load_checkpoint(model) if (model / "state.json").exists() else None  # verifies every SHA-256
        assert ck is None or ck.state.iteration in (2, 4, 6)
        assert not _leftovers(model)

    def final(model: Path) -> None:
        ck = load_checkpoint(model)
        assert ck is not None and ck.state.iteration == 6
        assert not _leftovers(model)

    return _sweep(train_to_6, partial, final, tmp, plan)


def test_train_checkpoint_survives_a_full_disk_and_io_errors(world: dict[str, Path], tmp_path: Path) -> None:
    assert _train_case(world, tmp_path, QUICK) == (1, 1)  # EIO: in the slow sweep


def test_a_failed_second_save_of_one_iteration_keeps_the_first(world: dict[str, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Saving iteration N again (Ctrl+C just after an autosave) writes new files: a failure before the new
    state.json leaves the files the old one names untouched (it used to replace weights-N in place)."""
    model = tmp_path / "model"
    t = Trainer(model, TrainOptions.model_validate(TINY), world["aligned"], world["aligned"])
    try:
        t.train(iterations=2)
        first = load_checkpoint(model)
        assert first is not None and first.state.iteration == 2
        with torch.no_grad():
            next(t.ae.parameters()).add_(1.0)  # the second save's weights differ from the first's
        real = ckpt_mod.write_bytes_atomic

        def full_at_optimizer(path: Path, data: bytes, durable: bool = True) -> None:
            if path.name.startswith("optimizer-"):
                raise storage_error(OSError(errno.ENOSPC, "No space left on device"), path) or AssertionError()
            real(path, data, durable)

        monkeypatch.setattr(ckpt_mod, "write_bytes_atomic", full_at_optimizer)
        with pytest.raises(StorageError):  # the new weights are written, the optimizer's file fails
            t.save()
        monkeypatch.undo()
    finally:
        t.close()
    after = load_checkpoint(model)  # checks every SHA-256 state.json records
    assert after is not None and after.state.iteration == 2
    assert all(torch.equal(v, after.weights[k]) for k, v in first.weights.items())
    assert not _leftovers(model)


def _merge_case(world: dict[str, Path], tmp: Path, plan: Plan | tuple[float, ...]) -> tuple[int, int]:
    expected = _pixels(world["merged"])

    def run(out: Path) -> None:
        run_merge(world["model"], world["frames"], world["aligned"], out, MergeOptions(), workers=1)

    def partial(out: Path) -> None:
        if out.exists():
            for name, data in _pixels(out).items():  # every frame left decodes to the clean run's pixels
                assert data == expected[name], name
            assert not _leftovers(out)

    def final(out: Path) -> None:
        assert _pixels(out) == expected
        assert not _leftovers(out)

    return _sweep(run, partial, final, tmp, plan)


def test_merge_survives_a_full_disk_and_io_errors(world: dict[str, Path], tmp_path: Path) -> None:
    assert _merge_case(world, tmp_path, QUICK) == (1, 1)


def _pack_case(world: dict[str, Path], tmp: Path, plan: Plan | tuple[float, ...]) -> tuple[int, int]:
    reference = tmp / "reference.fpack"
    pack_faceset(world["aligned"], reference)
    previous = b"an older pack, replaced only by a complete new one"

    def prepare(folder: Path) -> None:
        folder.mkdir()
        (folder / "faces.fpack").write_bytes(previous)

    def run(folder: Path) -> None:
        pack_faceset(world["aligned"], folder / "faces.fpack", overwrite=True)

    def partial(folder: Path) -> None:
        data = (folder / "faces.fpack").read_bytes()
        assert data in (previous, reference.read_bytes())  # the old pack, or the whole new one
        assert not _leftovers(folder)

    def final(folder: Path) -> None:
        assert (folder / "faces.fpack").read_bytes() == reference.read_bytes()
        with PackFile(folder / "faces.fpack") as pf:
            assert len(pf) == len(list_face_files(world["aligned"]))

    return _sweep(run, partial, final, tmp, plan, prepare)


def test_pack_survives_a_full_disk_and_io_errors(world: dict[str, Path], tmp_path: Path) -> None:
    assert _pack_case(world, tmp_path, QUICK) == (1, 1)


def _video_case(world: dict[str, Path], tmp: Path, plan: Plan | tuple[float, ...]) -> tuple[int, int]:
    reference = tmp / "reference.mp4"
    build_video(world["merged"], reference, fps=30)
    previous = b"an older video, replaced only by a complete new one"

    def prepare(folder: Path) -> None:
        folder.mkdir()
        (folder / "out.mp4").write_bytes(previous)

    def run(folder: Path) -> None:
        build_video(world["merged"], folder / "out.mp4", fps=30)

    def partial(folder: Path) -> None:
        out = folder / "out.mp4"
        assert out.read_bytes() == previous or same(decoded(out), expected)  # the old file, or a whole new one
        assert not _leftovers(folder)

    def decoded(path: Path) -> list[np.ndarray]:
        return [rgb.astype(np.float32) for _, rgb in iter_frames(path)]

    def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
        """The same frames up to the encoder's own noise (its threads do not give bit-identical output)."""
        return len(a) == len(b) and all(float(np.abs(x - y).mean()) < 1.0 for x, y in zip(a, b, strict=True))

    expected = decoded(reference)
    assert len(expected) == len(list_frames(world["merged"]))

    def final(folder: Path) -> None:
        assert same(decoded(folder / "out.mp4"), expected)

    return _sweep(run, partial, final, tmp, plan, prepare)


def test_video_encode_survives_a_full_disk_and_io_errors(world: dict[str, Path], tmp_path: Path) -> None:
    assert _video_case(world, tmp_path, QUICK) == (1, 1)


CASES = {"extract": _extract_case, "train": _train_case, "merge": _merge_case, "pack": _pack_case,
         "video": _video_case}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(CASES))
def test_many_fault_points(command: str, world: dict[str, Path], tmp_path: Path,
                           record_property: Callable[[str, object], None]) -> None:
    injected, raised = CASES[command](world, tmp_path, POINTS_SLOW)
    record_property("faults_injected", injected)
    print(f"\n{command}: {injected} faults injected, {raised} runs stopped with a one-line error, all resumed")
    assert raised >= len(POINTS_SLOW)


def test_the_cli_reports_a_full_disk_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk below facelab's writers (an OSError from a codec or a library) is one line too: the CLI
    renders any ENOSPC/EIO OSError as a StorageError, and other errors are left alone."""
    from facelab.cli import main as cli

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/full/out.mp4")

    monkeypatch.setattr(cli, "app", full)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr()
    assert err.err.strip() == "error: No space left on device while writing /full/out.mp4" and not err.out

    def other() -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(cli, "app", other)
    with pytest.raises(OSError, match="Bad file descriptor"):
        cli.main()
