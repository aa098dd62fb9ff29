"""One writer per workspace, model folder and faceset (facelab/core/lock.py): a second writer, or a writer
while another process reads, is refused at once with one line naming the holder; readers share; the lock
dies with its process (kill -9 included) and leaves the folder as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from facelab.core.lock import LOCK_NAME, FolderBusy, Want, folder_lock, folder_locks
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract
from facelab.faceset.enhance import enhance_faceset
from facelab.faceset.metadata_io import import_metadata
from facelab.faceset.pack import pack_faceset, unpack_faceset
from facelab.faceset.resize import resize_faceset
from facelab.faceset.sort.jobs import dedupe_faceset, sort_faceset
from facelab.merge.runner import run_merge
from facelab.train.options import TrainOptions
from facelab.train.trainer import Trainer
from facelab.workflow.swap import run_swap
from facelab.xseg.options import XSegOptions
from facelab.xseg.train import XSegTrainer
from tests.conftest import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from facelab.core.lock import Want, take
    folder, mode = Path(sys.argv[1]), sys.argv[2]
    take([Want(folder, shared=mode == "read")], sys.argv[3])
    print("ready", flush=True)
    time.sleep(120)
""")


@contextmanager
def holder(tmp: Path, folder: Path, mode: str = "write", purpose: str = "train") -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``folder`` (its command line: ``holder.py FOLDER MODE PURPOSE``)."""
    script = tmp / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(folder), mode, purpose], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def refused(call: Callable[[], Any], proc: subprocess.Popen[str], folder: Path) -> str:
    with pytest.raises(FolderBusy) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and str(folder) in message
    assert f"pid {proc.pid} (holder.py {folder}" in message  # the holder: pid, command line, start time
    assert " since 20" in message
    return message


def test_second_writer_fails_fast_naming_the_holder_and_kill_9_frees_it(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (tmp_path / "s").mkdir()
    (tmp_path / "d").mkdir()
    with holder(tmp_path, model) as proc:
        message = refused(lambda: folder_lock(model, "train").__enter__(), proc, model)
        assert "train cannot run on it" in message
        # the CLI: one line, exit 2 (the CLI run needs only the lock, so nothing is read or trained)
        res = subprocess.run([sys.executable, "-m", "facelab.cli.main", "train", "--src", str(tmp_path / "s"),
                              "--dst", str(tmp_path / "d"), "--model-dir", str(model), "--preset", "demo",
                              "--iterations", "1"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert res.returncode == 2 and "Traceback" not in res.stderr + res.stdout, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and f"pid {proc.pid}" in lines[0], res.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with folder_lock(model, "train"):  # the kernel dropped the lock with its process
        assert (model / LOCK_NAME).is_file()
    assert not (model / LOCK_NAME).exists()  # the last holder removes the file


def test_readers_share_writers_exclude_and_threads_are_like_processes(tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    with holder(tmp_path, faces, "read", "faceset pack") as proc:
        with folder_lock(faces, "train", shared=True):  # two readers
            pass
        message = refused(lambda: folder_lock(faces, "faceset sort").__enter__(), proc, faces)
        assert "faceset pack since" in message
    errors: list[str] = []
    with folder_lock(faces, "merge"):
        with folder_lock(faces, "nested", shared=True):  # nested in one thread: allowed
            pass

        def other() -> None:
            try:
                with folder_lock(faces, "faceset sort"):
                    pass
            except FolderBusy as exc:
                errors.append(str(exc))

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and f"pid {os.getpid()}" in errors[0] and "merge since" in errors[0]
    assert sorted(os.listdir(faces)) == []  # nothing left behind


def test_a_refused_job_leaves_no_folder_behind(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    with holder(tmp_path, busy) as proc:
        new = tmp_path / "new"
        refused(lambda: folder_locks([Want(new), Want(busy)], "merge").__enter__(), proc, busy)
    assert not new.exists()  # made for its lock, removed when the job was refused


def test_every_phase_entry_point_takes_its_locks(tmp_path: Path) -> None:
    """Each writer is refused while another process holds its output; readers are refused while another
    process writes what they read. None of them writes anything before the refusal."""
    faces, out, model = tmp_path / "faces", tmp_path / "out", tmp_path / "model"
    faces.mkdir()
    tiny = TrainOptions.model_validate({"arch": "df-ud", "resolution": 64, "ae_dims": 64, "e_dims": 16,
                                        "d_dims": 16, "d_mask_dims": 8, "batch_size": 4, "workers": 0})
    writers_of_out: dict[str, Callable[[], Any]] = {
        "extract": lambda: run_extract(SAMPLES / "dst.mp4", out, ExtractOptions()),
        "merge": lambda: run_merge(model, tmp_path / "frames", faces, out),
        "merge shard": lambda: run_merge(model, tmp_path / "frames", faces, out, shard=(0, 2)),
        "faceset unpack": lambda: unpack_faceset(tmp_path / "x.fpack", out),
        "faceset resize": lambda: resize_faceset(faces, out, size=64),
        "faceset enhance": lambda: enhance_faceset(faces, out),
        "swap": lambda: run_swap(SAMPLES / "src.mp4", SAMPLES / "dst.mp4", tmp_path / "o.mp4", out),
        "train": lambda: Trainer(out, tiny, faces, faces),
        "xseg train": lambda: XSegTrainer(out, XSegOptions(), [faces], new=True),
    }
    with holder(tmp_path, out) as proc:
        for purpose, call in writers_of_out.items():
            message = refused(call, proc, out)
            assert message.split("; ")[1].startswith(purpose.removesuffix(" shard")), message
        assert sorted(os.listdir(out)) == [LOCK_NAME]
    writers_of_faces: dict[str, Callable[[], Any]] = {
        "faceset sort": lambda: sort_faceset(faces, "blur"),
        "faceset dedupe": lambda: dedupe_faceset(faces),
        "faceset enhance": lambda: enhance_faceset(faces, None, in_place=True),
        "faceset metadata import": lambda: import_metadata(tmp_path / "m.json", faces),
    }
    readers_of_faces: dict[str, Callable[[], Any]] = {
        "faceset pack": lambda: pack_faceset(faces, tmp_path / "p.fpack"),
        "train": lambda: Trainer(model, tiny, faces, faces),
        "merge": lambda: run_merge(model, tmp_path / "frames", faces, out),
        "xseg train": lambda: XSegTrainer(model, XSegOptions(), [faces], new=True),
    }
    with holder(tmp_path, faces, "read", "faceset pack") as proc:
        for call in writers_of_faces.values():
            refused(call, proc, faces)
    with holder(tmp_path, faces, "write", "faceset sort") as proc:
        for call in readers_of_faces.values():
            refused(call, proc, faces)
    assert not model.exists()
    for folder in (faces, out):
        assert set(os.listdir(folder)) <= {LOCK_NAME}  # at most the file of a killed holder (not its lock)
