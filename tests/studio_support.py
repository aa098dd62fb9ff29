"""Shared fixtures of the studio tests (registered in tests/conftest.py).

- ``studio_workspace`` (session): a real small workspace built once from the bundled samples, the layout
  `facelab swap` makes: dst's frames at 6 fps (44 frames, 480x480), src's faces at 3 fps and dst's faces
  (128 px, full face), a tiny real model (the ``demo`` preset, from its shipped prior) trained 20 iterations
  with a preview every 10, and studio.json naming the src/dst videos. The dst faces of frames 000010 and
  000011 are removed, so the workspace has two frames without a face. Treat it as read-only: tests that
  change files take ``copy_workspace(studio_workspace, tmp_path / "ws")``.
- ``studio_server``: a factory ``start(layout, token=None, host_allowed=()) -> RunningStudio`` that serves
  ``create_app`` with uvicorn on a free loopback port in a thread; every server is stopped at teardown.
- ``browser_page``: a Playwright page in Debian's /usr/bin/chromium (headless); skips with the reason when
  Playwright or Chromium is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
CHROMIUM = Path(os.environ.get("FACELAB_CHROMIUM", "/usr/bin/chromium"))
NO_FACE_FRAMES = ("000010", "000011")  # frames of studio_workspace whose dst face is removed
WORKSPACE_ITERATIONS = 20


def build_workspace(ws: Path) -> None:
    """Build the small real workspace described in the module docstring into ``ws``."""
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract
    from facelab.faceset.folder import scan_faces
    from facelab.media.frames import extract_frames
    from facelab.train.options import PRESETS, TrainOptions
    from facelab.train.trainer import Trainer

    ws.mkdir(parents=True, exist_ok=True)
    (ws / "studio.json").write_text(json.dumps({"inputs": {"src": str(SAMPLES / "src.mp4"),
                                                           "dst": str(SAMPLES / "dst.mp4")}}), encoding="utf-8")
    frames, src_aligned, dst_aligned = ws / "dst" / "frames", ws / "src" / "aligned", ws / "dst" / "aligned"
    extract_frames(SAMPLES / "dst.mp4", frames, fps="6")
    run_extract(SAMPLES / "src.mp4", src_aligned, ExtractOptions(size=128, face_type="full", fps=3, workers=2))
    run_extract(frames, dst_aligned, ExtractOptions(size=128, face_type="full", workers=2))
    for path, rec in scan_faces(dst_aligned).faces:
        if rec.source.frame in NO_FACE_FRAMES:
            path.unlink()
    opts = TrainOptions(**{**PRESETS["demo"], "workers": 0, "preview_every": 10, "backup_hours": 0,
                           "batch_size": 8, "lr_warmup": 0})
    trainer = Trainer(ws / "model", opts, src_aligned, dst_aligned)
    try:
        trainer.train(iterations=WORKSPACE_ITERATIONS)
    finally:
        trainer.close()


def copy_workspace(layout: Any, dest: Path) -> Any:
    """A writable copy of a workspace (a facelab.studio.layout.Layout) at ``dest``; returns its Layout."""
    from facelab.studio.layout import Layout

    shutil.copytree(layout.root, dest, symlinks=True, ignore=lambda d, names: ["studio"] if Path(d) == layout.root
                    else [])
    return Layout.open(dest)


@pytest.fixture(scope="session")
def studio_workspace(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The shared small workspace (a Layout); read-only for tests: see copy_workspace."""
    from facelab.studio.layout import Layout

    ws = tmp_path_factory.mktemp("studio") / "workspace"
    build_workspace(ws)
    return Layout.open(ws)


# ---- server --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningStudio:
    """A studio server running in a thread: ``base`` is http://127.0.0.1:PORT, ``url`` the first-load URL."""

    base: str
    token: str
    layout: Any
    app: Any
    server: Any
    thread: threading.Thread
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"

    @property
    def ctx(self) -> Any:
        """The app's StudioContext (layout, token, jobs, events)."""
        return self.app.state.studio

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_studio(layout: Any, token: str | None = None, host_allowed: Sequence[str] = ()) -> RunningStudio:
    import uvicorn

    from facelab.studio.app import create_app
    from facelab.studio.server import StudioServer

    token = token or secrets.token_urlsafe(16)
    app = create_app(layout, token, host_allowed=host_allowed)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=2)
    server = StudioServer(config)
    thread = threading.Thread(target=server.run, name=f"studio-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the studio server did not start")
        time.sleep(0.02)
    return RunningStudio(f"http://127.0.0.1:{port}", token, layout, app, server, thread,
                         {"X-Studio-Token": token})


@pytest.fixture
def studio_server() -> Iterator[Callable[..., RunningStudio]]:
    """``start(layout, token=None, host_allowed=()) -> RunningStudio``; all are stopped at teardown."""
    started: list[RunningStudio] = []

    def start(layout: Any, token: str | None = None, host_allowed: Sequence[str] = ()) -> RunningStudio:
        s = start_studio(layout, token, host_allowed)
        started.append(s)
        return s

    yield start
    for s in reversed(started):
        s.stop()


# ---- browser -------------------------------------------------------------------------------------

@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A Playwright page (1280x900) in headless Debian chromium; skipped with the reason where unavailable."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright; no `playwright install` "
                    "needed: the tests use the system chromium)")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set FACELAB_CHROMIUM)")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        except Exception as exc:
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {' '.join(str(exc).split())[:300]}")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str, full_page: bool = False) -> None:
    """Save docs/studio_<name>.png when FACELAB_SCREENSHOTS=1 (the viewport by default: the nav and job bars
    are fixed, so a full-page shot draws them mid-page; enlarge the viewport first for a taller shot)."""
    if os.environ.get("FACELAB_SCREENSHOTS") == "1":
        page.screenshot(path=str(REPO / "docs" / f"studio_{name}.png"), full_page=full_page)
