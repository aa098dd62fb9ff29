"""The training dashboard's view of a model folder: status, loss history, resume marks, options, backups.

Everything is read from the files the trainer writes (config.json, state.json, metrics.jsonl, runs.jsonl,
previews/), so a run started from the CLI in another terminal shows up as well as one the studio started.
metrics.jsonl is read incrementally (only the bytes appended since the last look) into numpy columns, and
served downsampled to a bounded number of points per range, so a run of a million iterations stays fast.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from facelab.core.atomic import pid_alive, write_json_atomic
from facelab.core.config import marked_fields, option_error
from facelab.core.errors import InputError
from facelab.core.model_folder import ModelState, backup, read_state
from facelab.core.versioned import json_loads
from facelab.studio.context import StudioContext
from facelab.studio.layout import Layout
from facelab.train.checkpoint import MODEL_FOLDER, read_config, write_config
from facelab.train.options import TrainOptions, preset_values
from facelab.train.trainer import RUNS_FILE

# columns of a metrics row that are not losses
RATE_KEYS = ("it_per_s", "samples_per_s", "data_wait")
NOT_LOSSES = frozenset({"iteration", "time", *RATE_KEYS})
LOSS_ORDER = ("src_loss", "dst_loss", "mask_loss", "style_loss", "gan_g", "gan_d", "true_face_g", "true_face_d",
              "total")
NEW_MODEL_PRESET = "demo"  # the options a new model starts from in the studio (a CPU-sized model)
PENDING_FILE = "train_options.json"  # WORKSPACE/studio/: options for a model not created yet
RATE_ROWS = 5  # the rates shown are the mean of the newest rows
MAX_POINTS = 4000


# ---- metrics.jsonl, read incrementally --------------------------------------------------------------

@dataclass
class _Columns:
    iterations: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    times: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, np.float64))
    values: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.iterations)

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        n_old, n_new = len(self), len(rows)
        keys = set(self.values)
        for r in rows:
            keys.update(k for k, v in r.items() if k not in ("iteration", "time") and _is_number(v))
        its = np.array([int(r["iteration"]) for r in rows], np.int64)
        times = np.array([float(r.get("time", math.nan)) if _is_number(r.get("time")) else math.nan for r in rows])
        self.iterations = np.concatenate([self.iterations, its])
        self.times = np.concatenate([self.times, times])
        for k in keys:
            col = np.array([float(r[k]) if _is_number(r.get(k)) else math.nan for r in rows], np.float64)
            old = self.values.get(k, np.full(n_old, math.nan))
            self.values[k] = np.concatenate([old, col])
        assert all(len(v) == n_old + n_new for v in self.values.values())

    def keep_from(self, start: int) -> None:
        self.iterations = self.iterations[start:]
        self.times = self.times[start:]
        self.values = {k: v[start:] for k, v in self.values.items()}


def _is_number(v: Any) -> bool:
    """A finite JSON number (an integer too large for a float is not one)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _parse_lines(text: str) -> list[dict[str, Any]]:
    """The metric rows of complete JSONL lines (rows without an iteration and broken lines are skipped)."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return []
    try:  # one parse for the whole chunk: much faster than a parse per line for long histories
        objs = json_loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        objs = []
        for ln in lines:
            try:
                objs.append(json_loads(ln))
            except json.JSONDecodeError:
                continue
    return [o for o in objs if isinstance(o, dict) and _is_number(o.get("iteration")) and abs(o["iteration"]) < 2**62]


class MetricsFile:
    """metrics.jsonl as numpy columns, refreshed from the bytes appended since the last refresh (a file that
    shrank or was replaced, as the trainer's trim after a crash does, is read again from the start)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cols = _Columns()
        self._key: tuple[int, int] | None = None  # (device, inode)
        self._offset = 0
        self._lock = threading.Lock()

    def refresh(self) -> _Columns:
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self.cols, self._key, self._offset = _Columns(), None, 0
                return self.cols
            key = (st.st_dev, st.st_ino)
            if key != self._key or st.st_size < self._offset:
                self.cols, self._key, self._offset = _Columns(), key, 0
            if st.st_size > self._offset:
                with open(self.path, "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read(st.st_size - self._offset)
                end = data.rfind(b"\n") + 1  # only complete lines; a line being written waits
                if end:
                    self._offset += end
                    self.cols.append(_parse_lines(data[:end].decode("utf-8", errors="replace")))
                    self._monotonic()
            return self.cols

    def _monotonic(self) -> None:
        """Keep the history from the last time the iteration went back (a pretraining that ended: the swap
        counts from zero again), so the iterations are sorted for the range look-ups."""
        its = self.cols.iterations
        if len(its) > 1:
            back = np.nonzero(np.diff(its) < 0)[0]
            if len(back):
                self.cols.keep_from(int(back[-1]) + 1)


def _clean(v: float) -> float | None:
    return None if not math.isfinite(v) else round(float(v), 6)


def downsample(cols: _Columns, start: int | None, end: int | None, points: int) -> dict[str, Any]:
    """The loss series between iterations ``start`` and ``end`` (inclusive; None: the ends), at most
    ``points`` points: above that, the rows are averaged in equal iteration buckets."""
    points = max(16, min(points, MAX_POINTS))
    its = cols.iterations
    losses = sorted((k for k in cols.values if k not in NOT_LOSSES), key=_loss_rank)
    if not len(its):
        return {"iterations": [], "series": {k: [] for k in losses}, "first": None, "last": None, "rows": 0,
                "downsampled": False}
    lo = int(np.searchsorted(its, start, "left")) if start is not None else 0
    hi = int(np.searchsorted(its, end, "right")) if end is not None else len(its)
    sel_its = its[lo:hi]
    n = len(sel_its)
    out: dict[str, Any] = {"first": int(its[0]), "last": int(its[-1]), "rows": n}
    if n <= points:
        out["iterations"] = sel_its.tolist()
        out["series"] = {k: [_clean(v) for v in cols.values[k][lo:hi]] for k in losses}
        out["downsampled"] = False
        return out
    # equal iteration buckets; each point is the mean of the rows in its bucket, at their mean iteration
    edges = np.linspace(float(sel_its[0]), float(sel_its[-1]) + 1, points + 1)
    bucket = np.clip(np.searchsorted(edges, sel_its, "right") - 1, 0, points - 1)
    counts = np.bincount(bucket, minlength=points)
    filled = counts > 0
    mean_it = np.bincount(bucket, weights=sel_its.astype(np.float64), minlength=points)[filled] / counts[filled]
    out["iterations"] = np.rint(mean_it).astype(np.int64).tolist()
    series: dict[str, list[float | None]] = {}
    for k in losses:
        vals = cols.values[k][lo:hi]
        ok = np.isfinite(vals)
        sums = np.bincount(bucket[ok], weights=vals[ok], minlength=points)[filled]
        cnt = np.bincount(bucket[ok], minlength=points)[filled]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / cnt
        series[k] = [_clean(v) for v in means]
    out["series"] = series
    out["downsampled"] = True
    return out


def _loss_rank(key: str) -> tuple[int, str]:
    return (LOSS_ORDER.index(key) if key in LOSS_ORDER else len(LOSS_ORDER), key)


# ---- runs.jsonl: resume marks and the live run --------------------------------------------------------

def read_runs(model: Path) -> list[dict[str, Any]]:
    """The start/end records of runs.jsonl (version 1; other versions and broken lines are skipped)."""
    path = model / RUNS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    out = []
    for ln in text.splitlines():
        try:
            obj = json_loads(ln)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("version") == 1 and obj.get("event") in ("start", "end") \
                and _is_number(obj.get("iteration")):
            out.append(obj)
    return out


def resume_marks(runs: list[dict[str, Any]], last_iteration: int | None) -> list[dict[str, Any]]:
    """Where a run resumed a saved model: its starts marked ``resumed``, up to the newest logged iteration
    (a start after a crash is at the checkpoint it resumed from; pretraining's restart at zero ends the list)."""
    marks: list[dict[str, Any]] = []
    for r in runs:
        if r["event"] != "start":
            continue
        if marks and int(r["iteration"]) < marks[-1]["iteration"]:
            marks = []  # the iteration count restarted: earlier marks belong to another history
        if r.get("resumed"):
            marks.append({"iteration": int(r["iteration"]), "time": r.get("time")})
    if last_iteration is not None:
        marks = [m for m in marks if m["iteration"] <= last_iteration]
    return marks


def _pid_is_facelab(pid: int) -> bool:
    if not pid_alive(pid):
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the signal check
    if b"facelab" not in cmd and b"torchrun" not in cmd:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) trains no more
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def live_run(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run training now (the newest start without an end whose process is alive), or None."""
    if not runs or runs[-1]["event"] != "start":
        return None
    start = runs[-1]
    pid = start.get("pid")
    if not isinstance(pid, int) or not _pid_is_facelab(pid):
        return None
    return {"pid": pid, "since_iteration": int(start["iteration"]), "since": start.get("time")}


# ---- the dashboard ------------------------------------------------------------------------------------

class Training:
    """The training view of one workspace's model folder."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.model = layout.model
        self.metrics = MetricsFile(self.model / "metrics.jsonl")

    @property
    def pending_file(self) -> Path:
        return self.layout.root / "studio" / PENDING_FILE

    # -- reading --

    def stored_options(self) -> TrainOptions | None:
        return read_config(self.model)

    def status(self, target: int | None = None) -> dict[str, Any]:
        """Where training stands: iterations (logged and saved), newest losses, rates, ETA to ``target``
        (default: the model's target_iteration), the live run, the newest preview, the backups."""
        state = read_state(self.model)
        try:
            opts = self.stored_options()
        except InputError:
            opts = None
        cols = self.metrics.refresh()
        saved = int(state["iteration"]) if state else 0
        logged = int(cols.iterations[-1]) if len(cols) else None
        iteration = max(saved, logged or 0)
        latest: dict[str, float | None] = {}
        rates: dict[str, float | None] = {k: None for k in RATE_KEYS}
        if len(cols):
            latest = {k: _clean(v[-1]) for k, v in cols.values.items() if k not in NOT_LOSSES}
            for k in RATE_KEYS:
                if k in cols.values:
                    tail = cols.values[k][-RATE_ROWS:]
                    tail = tail[np.isfinite(tail)]
                    rates[k] = _clean(float(tail.mean())) if len(tail) else None
        runs = read_runs(self.model)
        run = live_run(runs)
        if target is None and opts is not None and opts.target_iteration:
            target = opts.target_iteration
        eta = None
        if target and rates["it_per_s"]:
            eta = max(0.0, (target - iteration) / rates["it_per_s"])
        return {
            "model_exists": state is not None or opts is not None,
            "iteration": iteration, "saved_iteration": saved if state else None,
            "saved_at": state.get("saved_at") if state else None,
            "elapsed_s": state.get("elapsed_s") if state else None,
            "weights": (state.get("files") or {}).get("weights") if state else None,
            "latest": latest, "rates": rates, "target_iteration": target or None,
            "eta_s": None if eta is None else round(eta, 1),
            "run": run, "preview": self.preview_info(), "backups": self.backups(),
            "rows": len(cols), "resumes": resume_marks(runs, logged),
        }

    def series(self, start: int | None = None, end: int | None = None, points: int = 1500) -> dict[str, Any]:
        cols = self.metrics.refresh()
        out = downsample(cols, start, end, points)
        out["resumes"] = resume_marks(read_runs(self.model), out["last"])
        return out

    def preview_info(self) -> dict[str, Any] | None:
        path = self.model / "previews" / "latest.png"
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        numbered = sorted((self.model / "previews").glob("preview_*.png"))
        it = None
        if numbered:
            try:
                it = int(numbered[-1].stem.split("_")[-1])
            except ValueError:
                it = None
        return {"path": path.relative_to(self.layout.root).as_posix(), "mtime": st.st_mtime, "iteration": it,
                "history": len(numbered)}

    def backups(self) -> list[str]:
        folder = self.model / "backups"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))

    # -- options --

    def options(self) -> dict[str, Any]:
        """The options for the next start: the model's (fixed ones read-only), or for a model not created yet
        the ones saved from the page (else the studio's preset) with nothing fixed yet."""
        stored = self.stored_options()
        schema = TrainOptions.model_json_schema()
        fixed = list(marked_fields(TrainOptions, "fixed"))
        if stored is not None:
            return {"exists": True, "options": stored.model_dump(mode="json"), "fixed": fixed, "readonly": fixed,
                    "schema": schema}
        pending = self._pending()
        return {"exists": False, "options": pending.model_dump(mode="json"), "fixed": fixed, "readonly": [],
                "schema": schema}

    def _pending(self) -> TrainOptions:
        try:
            data = json_loads(self.pending_file.read_bytes())
            if isinstance(data, dict) and isinstance(data.get("train"), dict):
                return TrainOptions.model_validate(data["train"])
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, ValidationError, InputError):
            pass
        return TrainOptions.model_validate(preset_values(NEW_MODEL_PRESET))

    def set_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate ``values`` (changed options) and save them for the next start: into the model's
        config.json (fixed options refused), or for a new model into WORKSPACE/studio/train_options.json.
        InputError (one line) and nothing written when a value is bad."""
        unknown = sorted(set(values) - set(TrainOptions.model_fields))
        if unknown:
            raise InputError(f"unknown option {unknown[0]}")
        stored = self.stored_options()
        if stored is not None:
            opts = MODEL_FOLDER.resolve(stored, values, set(values))
            write_config(self.model, opts)
        else:
            try:
                opts = TrainOptions.model_validate(self._pending().model_dump() | values)
            except ValidationError as exc:
                raise option_error(exc) from None
            self.pending_file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.pending_file, {"train": opts.model_dump(mode="json")})
        return self.options()

    # -- actions --

    def start_args(self, iterations: int | None = None, minutes: float | None = None) -> list[str]:
        """The `facelab train` command line (after ``facelab``) that starts or resumes this model."""
        args = ["train", "--src", str(self.layout.src_aligned), "--dst", str(self.layout.dst_aligned),
                "--model-dir", str(self.model)]
        if self.stored_options() is None:
            if self.pending_file.exists():
                args += ["--config", str(self.pending_file)]
            else:
                args += ["--preset", NEW_MODEL_PRESET]
        if iterations is not None:
            args += ["--iterations", str(iterations)]
        if minutes is not None:
            args += ["--minutes", f"{minutes:g}"]
        return args

    def stop_external(self) -> dict[str, Any] | None:
        """SIGINT (the trainer saves and exits) to a run started outside the studio; None when none runs."""
        run = live_run(read_runs(self.model))
        if run is None:
            return None
        os.kill(run["pid"], signal.SIGINT)
        return run

    def make_backup(self) -> str:
        """Copy the current checkpoint to backups/it_N (facelab's rotating backup, keeping backup_keep)."""
        for attempt in range(3):
            data = read_state(self.model)
            if data is None:
                raise InputError("no checkpoint to back up yet: train the model first")
            opts = self.stored_options()
            keep = opts.backup_keep if opts is not None else TrainOptions.model_fields["backup_keep"].default
            try:
                dst = backup(self.model, ModelState(iteration=int(data["iteration"])), keep)
                return dst.relative_to(self.layout.root).as_posix()
            except FileNotFoundError:
                if attempt == 2:  # the trainer saved a newer checkpoint while we copied: try that one
                    raise InputError("the checkpoint changed during the backup; try again") from None
                time.sleep(0.2)
        raise AssertionError("unreachable")


_VIEWS: dict[Path, Training] = {}
_VIEWS_LOCK = threading.Lock()


def training_for(layout: Layout) -> Training:
    """The (cached) training view of a workspace: its metrics are read incrementally across requests."""
    with _VIEWS_LOCK:
        view = _VIEWS.get(layout.root)
        if view is None or view.layout != layout:
            view = _VIEWS[layout.root] = Training(layout)
        return view


# ---- live updates ---------------------------------------------------------------------------------------

WATCH_INTERVAL_S = 1.0


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def watch_once(view: Training, last: dict[str, Any]) -> dict[str, Any] | None:
    """One look at the model folder: the ``training`` event to publish when a file changed, else None.
    ``last`` holds the previous stamps (updated)."""
    model = view.model
    stamps = {"metrics": _stamp(model / "metrics.jsonl"), "preview": _stamp(model / "previews" / "latest.png"),
              "state": _stamp(model / "state.json"), "runs": _stamp(model / RUNS_FILE),
              "config": _stamp(model / "config.json")}
    changed = [k for k, v in stamps.items() if last.get(k) != v]
    last.update(stamps)
    if not changed:
        return None
    cols = view.metrics.refresh()
    event: dict[str, Any] = {"changed": changed}
    if len(cols):
        event["iteration"] = int(cols.iterations[-1])
        event["latest"] = {k: _clean(v[-1]) for k, v in cols.values.items()}
    if "preview" in changed and stamps["preview"] is not None:
        event["preview_mtime"] = stamps["preview"][2] / 1e9
    return event


async def watch(ctx: StudioContext, interval: float = WATCH_INTERVAL_S) -> None:
    """Publish a ``training`` event on ``ctx.events`` whenever metrics.jsonl, the newest preview, state.json,
    runs.jsonl or config.json change (polled: works for runs started anywhere, on any file system)."""
    view = training_for(ctx.layout)
    last: dict[str, Any] = {}
    await asyncio.to_thread(watch_once, view, last)  # the files as they are now: no event at start
    while True:
        await asyncio.sleep(interval)
        try:
            event = await asyncio.to_thread(watch_once, view, last)
        except (OSError, InputError):
            continue
        if event is not None:
            ctx.events.publish("training", event)


def start_watcher(ctx: StudioContext) -> asyncio.Task[None]:
    """Start the watcher as a task of the running event loop (call from the app's lifespan; cancel the task
    at shutdown)."""
    return asyncio.get_running_loop().create_task(watch(ctx), name="facelab-training-watcher")
