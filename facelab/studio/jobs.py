"""Background jobs: one ``python -m facelab ARGS...`` subprocess at a time per workspace.

A job is exactly the command a user would type (so it resumes like the CLI: run it again after a kill).
Its output goes to ``WORKSPACE/studio/jobs/<id>.log`` and, line by line, to the ``job`` event topic:
``{"id", "kind", "state", "rc", "line"}`` plus ``"progress": {"done", "total", "description"}`` when the
command reports progress (``FACELAB_PROGRESS=json``, see facelab.cli.progress). ``<id>.json`` records
each job, so the history survives a restart.

The workspace lock (``fcntl.flock`` on ``WORKSPACE/studio/lock``) is held by the server for its lifetime;
a second server on the same workspace runs read-only: it may browse but refuses to start jobs.
Job processes are started from one long-lived thread with PR_SET_PDEATHSIG = SIGINT (Linux), so a job
gets Ctrl+C when the server dies, even by kill -9 (training saves; extraction and merging resume from
their journals). ``stop()`` sends SIGINT to the job's process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from facelab.core.atomic import write_json_atomic
from facelab.core.errors import FacelabError
from facelab.core.versioned import json_loads
from facelab.studio.events import EventBus
from facelab.studio.layout import Layout

JobState = Literal["running", "done", "failed", "stopped"]
PROGRESS_PREFIX = "facelab-progress "  # facelab.cli.progress writes these lines under FACELAB_PROGRESS=json
PR_SET_PDEATHSIG = 1
HISTORY_LIMIT = 50


class JobBusy(FacelabError):
    """A job is already running in this workspace (HTTP 409)."""


class JobRefused(FacelabError):
    """This server does not hold the workspace lock: another studio server does (HTTP 409)."""


@dataclass
class JobInfo:
    id: str
    kind: str
    args: list[str]
    state: JobState = "running"
    rc: int | None = None
    pid: int | None = None
    started: float = 0.0
    ended: float | None = None
    log: str = ""  # relative to the workspace
    progress: dict[str, Any] | None = None
    message: str = ""
    shown: str = ""  # the command as the page shows it (workspace paths relative)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def command(self) -> str:
        return "facelab " + " ".join(self.args)


@dataclass
class _Running:
    info: JobInfo
    proc: subprocess.Popen[bytes]
    stop_requested: bool = False
    lines: list[str] = field(default_factory=list)


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass


class JobManager:
    """One job at a time for one workspace; see the module docstring."""

    def __init__(self, layout: Layout, events: EventBus, stop_timeout_s: float = 60.0) -> None:
        self.layout, self.events, self.stop_timeout_s = layout, events, stop_timeout_s
        self.dir = layout.root / "studio" / "jobs"
        self._lock = threading.RLock()
        self._running: _Running | None = None
        self._last: JobInfo | None = None
        self._lock_file: IO[str] | None = None
        self.holder_pid: int | None = None  # the server holding the lock when this one does not
        self._spawn_q: queue.Queue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
                                   | None] = queue.Queue()
        self._spawner: threading.Thread | None = None
        self._counter = 0

    # ---- the workspace lock ------------------------------------------------------------------------

    def open(self) -> None:
        """Take the workspace lock (or note its holder) and start the spawner thread; at server start."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.layout.root / "studio" / "lock"
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the server's lifetime
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            text = f.read().strip()
            f.close()
            self.holder_pid = int(text) if text.isdigit() else None
        else:
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            self._lock_file = f
            self._mark_orphans()
        if self._spawner is None:
            self._spawner = threading.Thread(target=self._spawn_loop, name="studio-jobs", daemon=True)
            self._spawner.start()

    @property
    def read_only(self) -> bool:
        return self._lock_file is None

    def lock_message(self) -> str:
        if not self.read_only:
            return ""
        who = f"pid {self.holder_pid}" if self.holder_pid else "another process"
        return (f"another studio server ({who}) holds this workspace: this one is read-only and starts no jobs; "
                "use that server, or stop it and restart this one")

    def close(self) -> None:
        """Stop a running job (SIGINT, then SIGKILL) and release the lock; at server shutdown."""
        job = self.stop(wait=True)
        if job is not None:
            self._finish_wait(job)
        self._spawn_q.put(None)
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _mark_orphans(self) -> None:
        """Jobs recorded as running by a server that died: their process got SIGINT with it (PDEATHSIG): stopped.

        (No signal is sent by pid here: after a restart the pid may belong to another process.)"""
        for path in self.dir.glob("*.json"):
            info = _read_info(path)
            if info is None or info.state != "running":
                continue
            info.state, info.message = "stopped", "interrupted: the studio server stopped; start it again to resume"
            info.ended = info.ended or time.time()
            write_json_atomic(path, info.to_json())

    # ---- jobs ----------------------------------------------------------------------------------------

    def current(self) -> JobInfo | None:
        with self._lock:
            return self._running.info if self._running is not None else None

    def last(self) -> JobInfo | None:
        """The running job, else the last one this server ran."""
        with self._lock:
            return self._running.info if self._running is not None else self._last

    def history(self) -> list[JobInfo]:
        """The workspace's jobs, newest first (read from WORKSPACE/studio/jobs, so restarts keep them)."""
        infos = [i for i in (_read_info(p) for p in self.dir.glob("*.json")) if i is not None]
        infos.sort(key=lambda i: i.started, reverse=True)
        with self._lock:
            if self._running is not None:
                infos = [self._running.info] + [i for i in infos if i.id != self._running.info.id]
        return infos[:HISTORY_LIMIT]

    def log_path(self, job_id: str) -> Path | None:
        if not job_id.replace("-", "").replace("_", "").isalnum():
            return None
        path = self.dir / f"{job_id}.log"
        return path if path.is_file() else None

    def start(self, kind: str, args: list[str]) -> JobInfo:
        """Start ``python -m facelab ARGS`` as the workspace's job; JobBusy/JobRefused when it cannot."""
        if self.read_only:
            raise JobRefused(self.lock_message())
        with self._lock:
            if self._running is not None:
                cur = self._running.info
                since = time.strftime("%H:%M:%S", time.localtime(cur.started))
                raise JobBusy(f"a job is already running ({cur.kind}, started {since}); stop it or wait for it "
                              "to finish")
            self._counter += 1
            job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._counter:02d}-{kind}"
            log = self.dir / f"{job_id}.log"
            root = str(self.layout.root) + os.sep
            shown = "facelab " + " ".join(a[len(root):] if a.startswith(root) else a for a in args)
            info = JobInfo(job_id, kind, list(args), started=time.time(),
                           log=log.relative_to(self.layout.root).as_posix(), shown=shown)
            env = dict(os.environ, FACELAB_PROGRESS="json", PYTHONUNBUFFERED="1", COLUMNS="160",
                       NO_COLOR="1", TERM="dumb")
            cmd = [sys.executable, "-m", "facelab", *args]

            def spawn() -> subprocess.Popen[bytes]:
                return subprocess.Popen(cmd, cwd=self.layout.root, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None)

            log.write_text(f"$ {info.command}\n", encoding="utf-8")
            fut: Future[subprocess.Popen[bytes]] = Future()
            self._spawn_q.put((spawn, fut))
            proc = fut.result(timeout=60)
            info.pid = proc.pid
            run = _Running(info, proc)
            self._running = run
            self._save(info)
        self.events.publish("job", {**info.to_json(), "line": f"$ {info.command}"})
        threading.Thread(target=self._read, args=(run, log), name=f"job-{job_id}", daemon=True).start()
        return info

    def stop(self, wait: bool = False) -> JobInfo | None:
        """Ask the running job to stop (SIGINT, like Ctrl+C; SIGKILL after stop_timeout_s); None if none."""
        with self._lock:
            run = self._running
            if run is None:
                return None
            run.stop_requested = True
            pid = run.proc.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGINT)
        self.events.publish("job", {**run.info.to_json(), "line": "stop requested: SIGINT sent"})

        def kill_later() -> None:
            try:
                run.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                self.events.publish("job", {**run.info.to_json(), "line": "did not stop in time: SIGKILL sent"})

        if wait:
            kill_later()
        else:
            threading.Thread(target=kill_later, name="job-stop", daemon=True).start()
        return run.info

    def wait(self, timeout: float | None = None) -> JobInfo | None:
        """Wait for the running job to finish (tests, shutdown); the finished job's info."""
        with self._lock:
            run = self._running
        if run is None:
            return self._last
        return self._finish_wait(run.info, timeout)

    def _finish_wait(self, info: JobInfo, timeout: float | None = None) -> JobInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._running is None or self._running.info.id != info.id:
                    return self._last or info
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {info.id} still running")
            time.sleep(0.05)

    # ---- internals ---------------------------------------------------------------------------------

    def _spawn_loop(self) -> None:
        """Start every job from this one long-lived thread: PDEATHSIG fires when the spawning thread ends."""
        while True:
            item = self._spawn_q.get()
            if item is None:
                return
            fn, fut = item
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def _save(self, info: JobInfo) -> None:
        with contextlib.suppress(OSError):
            write_json_atomic(self.dir / f"{info.id}.json", info.to_json())

    def _read(self, run: _Running, log_path: Path) -> None:
        info, proc = run.info, run.proc
        assert proc.stdout is not None
        last_progress = 0.0
        with open(log_path, "ab") as log:
            for raw in proc.stdout:
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                for line in text.split("\r"):
                    if line.startswith(PROGRESS_PREFIX):
                        progress = _parse_progress(line[len(PROGRESS_PREFIX):])
                        if progress is None:
                            continue
                        with self._lock:
                            info.progress = progress
                        now = time.monotonic()
                        if now - last_progress >= 0.2 or progress.get("done") == progress.get("total"):
                            last_progress = now
                            self.events.publish("job", {**info.to_json(), "line": None})
                        continue
                    if not line.strip():
                        continue
                    log.write((line + "\n").encode())
                    log.flush()
                    self.events.publish("job", {**info.to_json(), "line": line})
            rc = proc.wait()
            with self._lock:
                info.rc, info.ended = rc, time.time()
                if run.stop_requested:  # even when it exits 0: a CLI stopped by Ctrl+C may exit cleanly
                    info.state, info.message = "stopped", "stopped from the studio; start it again to resume"
                elif rc == 0:
                    info.state = "done"
                else:
                    info.state, info.message = "failed", f"exited with code {rc}"
                log.write(f"[{info.state}, exit code {rc}]\n".encode())
                self._running, self._last = None, info
                self._save(info)
        self.events.publish("job", {**info.to_json(), "line": None})


def _parse_progress(text: str) -> dict[str, Any] | None:
    try:
        data = json_loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    done, total = data.get("done"), data.get("total")
    if not isinstance(done, int | float) or not (total is None or isinstance(total, int | float)):
        return None
    return {"done": done, "total": total, "description": str(data.get("description", ""))}


def _read_info(path: Path) -> JobInfo | None:
    try:
        data = json_loads(path.read_bytes())
        return JobInfo(**{k: v for k, v in data.items() if k in JobInfo.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None
