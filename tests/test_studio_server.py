"""The studio server: token, Host/Origin checks, path confinement, the CLI's bind rule, the job manager
(one job at a time, the workspace lock, a job killed with the server resumes), and the workspace page in a
real headless browser."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import HTTPException

from facelab.studio.security import confine
from tests.studio_support import (
    NO_FACE_FRAMES,
    REPO,
    WORKSPACE_ITERATIONS,
    copy_workspace,
    free_port,
    screenshot,
)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                OMP_NUM_THREADS="1")


# ---- token ------------------------------------------------------------------------------------------

def test_every_request_needs_the_token_and_the_first_load_sets_a_cookie(studio_workspace: Any,
                                                                      studio_server: Any) -> None:
    s = studio_server(studio_workspace)
    for path in ("/", "/training", "/api/workspace/status", "/static/style.css", "/api/events?topics=job",
                 "/api/workspace/file?path=studio.json"):
        r = httpx.get(s.base + path, timeout=10)
        assert r.status_code == 401, (path, r.status_code)
        assert "token" in r.json()["detail"]
        r = httpx.get(s.base + path, headers={"X-Studio-Token": s.token + "x"}, timeout=10)
        assert r.status_code == 403, (path, r.status_code)
    r = httpx.post(s.base + "/api/workspace/steps/merge", json={}, timeout=10)
    assert r.status_code == 401 and s.ctx.jobs.current() is None
    r = httpx.get(s.base + "/api/workspace/status?token=wrong", timeout=10)
    assert r.status_code == 403

    with httpx.Client(base_url=s.base, timeout=10) as c:
        r = c.get(f"/?token={s.token}")  # the printed URL: a cookie, and the token leaves the address bar
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert s.token in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        r = c.get("/")
        assert r.status_code == 200 and 'data-page="workspace"' in r.text
        r = c.get("/api/workspace/status")
        assert r.status_code == 200 and r.json()["model"]["iteration"] == WORKSPACE_ITERATIONS
        assert c.get("/static/common.js").status_code == 200
    # a script may send the header instead
    r = httpx.get(s.base + "/api/workspace/status", headers=s.headers, timeout=10)
    assert r.status_code == 200


# ---- Host and Origin --------------------------------------------------------------------------------

def test_host_header_and_origin_are_checked(studio_workspace: Any, studio_server: Any) -> None:
    s = studio_server(studio_workspace, host_allowed=["studio.lan"])
    port = s.base.rsplit(":", 1)[1]
    with httpx.Client(base_url=s.base, headers=s.headers, timeout=10) as c:
        # DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends its own Host
        for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}", "", "a b"):
            r = c.get("/api/workspace/status", headers={"Host": host})
            assert r.status_code == 403, host
            assert "Host" in r.json()["detail"]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"studio.lan:{port}", f"[::1]:{port}"):
            assert c.get("/api/workspace/status", headers={"Host": host}).status_code == 200, host
        # Origin: another site's script (even with a stolen token) and a websocket/SSE from elsewhere: 403
        for origin in ("http://evil.example", f"http://evil.example:{port}", "null",
                       f"http://localhost:{int(port) + 1}"):
            r = c.get("/api/events?topics=job", headers={"Origin": origin})
            assert r.status_code == 403, origin
            r = c.post("/api/workspace/steps/merge", json={}, headers={"Origin": origin})
            assert r.status_code == 403, origin
        assert s.ctx.jobs.current() is None
        # the page's own origin streams events
        with c.stream("GET", "/api/events?topics=job", headers={"Origin": s.base}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            first = next(r.iter_lines())
            assert first.startswith("retry:")


# ---- path confinement ---------------------------------------------------------------------------------

def test_paths_from_the_browser_stay_inside_the_workspace(studio_workspace: Any, studio_server: Any,
                                                         tmp_path: Path) -> None:
    lay = copy_workspace(studio_workspace, tmp_path / "ws")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (lay.root / "escape").symlink_to(outside)
    (lay.root / "escape_dir").symlink_to(tmp_path)
    (lay.root / "inside").symlink_to(lay.root / "studio.json")
    s = studio_server(lay)
    with httpx.Client(base_url=s.base, headers=s.headers, timeout=10) as c:
        def get(rel: str) -> httpx.Response:
            return c.get("/api/workspace/file", params={"path": rel})

        ok = get("studio.json")
        assert ok.status_code == 200 and ok.content == (lay.root / "studio.json").read_bytes()
        assert get("inside").status_code == 200  # a link that stays inside is fine
        png = get("model/previews/latest.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        for rel in ("../secret.txt", "dst/../../secret.txt", str(outside), "/etc/passwd", "escape",
                    "escape_dir/secret.txt", "~/.bashrc", "..", "dst\\..\\..\\secret.txt"):
            r = get(rel)
            assert r.status_code == 403, (rel, r.status_code)
            assert b"secret" not in r.content
        assert get("no/such/file.png").status_code == 404
        assert get("dst/frames").status_code == 404  # a folder is not a file
        # encoded traversal in the URL path of the static files does not leave the package either
        r = c.get("/static/..%2f..%2fcli%2fmain.py")
        assert r.status_code == 404
    # confine itself
    assert confine(lay, "dst/frames/000000.png") == lay.dst_frames / "000000.png"
    assert confine(lay, "new/file.json", must_exist=False) == lay.root / "new" / "file.json"
    for rel, code in (("a\x00b", 403), ("../x", 403), ("/tmp", 403), ("escape", 403), ("missing.png", 404)):
        with pytest.raises(HTTPException) as err:
            confine(lay, rel)
        assert err.value.status_code == code, rel


# ---- the command line ---------------------------------------------------------------------------------

def test_cli_refuses_a_non_local_bind_without_a_token(studio_workspace: Any) -> None:
    for host in ("0.0.0.0", "192.168.1.20"):
        r = subprocess.run([sys.executable, "-m", "facelab", "studio", str(studio_workspace.root), "--host", host,
                            "--no-open", "--port", str(free_port())],
                           capture_output=True, text=True, env=_env(), timeout=60)
        assert r.returncode == 2, (host, r.stdout, r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "--token" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_cli_prints_the_url_with_its_token_and_serves_it(studio_workspace: Any, tmp_path: Path) -> None:
    lay = copy_workspace(studio_workspace, tmp_path / "ws")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelab", "studio", str(lay.root), "--no-open", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        url = _read_url(proc)
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        token = url.split("token=", 1)[1]
        assert len(token) >= 24
        _wait_up(url)
        with httpx.Client(timeout=10) as c:
            assert c.get(url.replace(token, "nope")).status_code == 403
            r = c.get(url, follow_redirects=True)
            assert r.status_code == 200 and 'data-page="workspace"' in r.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    # a fresh start makes a fresh token
    proc = subprocess.Popen([sys.executable, "-m", "facelab", "studio", str(lay.root), "--no-open", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        assert _read_url(proc).split("token=", 1)[1] != token
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _read_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if "token=" in line:
            return str(line.split()[-1])
    raise AssertionError("no URL printed: " + "".join(seen))


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url.split("/?")[0] + "/", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


# ---- jobs -----------------------------------------------------------------------------------------------

def test_one_job_at_a_time_and_a_second_server_starts_none(studio_workspace: Any, studio_server: Any,
                                                           tmp_path: Path) -> None:
    lay = copy_workspace(studio_workspace, tmp_path / "ws")
    a = studio_server(lay)
    b = studio_server(lay)  # a second studio on the same workspace: read-only
    with httpx.Client(base_url=b.base, headers=b.headers, timeout=30) as cb:
        st = cb.get("/api/workspace/status").json()
        assert st["read_only"] is True and f"pid {os.getpid()}" in st["lock_message"]
        r = cb.post("/api/workspace/steps/merge", json={})
        assert r.status_code == 409 and "holds this workspace" in r.json()["detail"]
        assert cb.get("/api/workspace/file", params={"path": "studio.json"}).status_code == 200  # browsing works
    with httpx.Client(base_url=a.base, headers=a.headers, timeout=30) as ca:
        assert ca.get("/api/workspace/status").json()["read_only"] is False
        r = ca.post("/api/workspace/steps/merge", json={})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["state"] == "running" and job["kind"] == "merge" and job["args"][0] == "merge"
        for step in ("video", "merge", "train"):
            r = ca.post(f"/api/workspace/steps/{step}", json={})
            assert r.status_code == 409 and "already running" in r.json()["detail"], r.text
        r = ca.post("/api/workspace/stop")
        assert r.json()["stopping"] is True
        done = a.ctx.jobs.wait(60)
        assert done.id == job["id"] and done.state == "stopped"
        hist = ca.get("/api/workspace/jobs").json()
        assert hist[0]["id"] == job["id"] and hist[0]["state"] == "stopped"
        log = ca.get(f"/api/workspace/jobs/{job['id']}/log").text
        assert log.startswith("$ facelab merge") and "[stopped" in log
        # bad input from the page: one clear line, nothing started
        for step, body, code in (("train", {"preset": "nope"}, 400), ("train", {"iterations": 0}, 400),
                                 ("extract_src", {"options": {"size": 5}}, 400), ("bogus", {}, 404),
                                 ("frames", {"fps": "x" * 50}, 400), ("merge", {"unknown": 1}, 400)):
            r = ca.post(f"/api/workspace/steps/{step}", json=body)
            assert r.status_code == code, (step, r.status_code, r.text)
            detail = r.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail and detail, detail
        assert a.ctx.jobs.current() is None
    # when the first server stops, the lock is free: a new server may start jobs
    a.stop()
    c = studio_server(lay)
    assert c.ctx.jobs.read_only is False


def _studio_process(ws: Path, port: int, token: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "facelab", "studio", str(ws), "--no-open", "--port", str(port),
                             "--token", token], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), start_new_session=True)


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie is gone too
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_a_job_killed_with_the_server_resumes(studio_workspace: Any, studio_server: Any, tmp_path: Path) -> None:
    """kill -9 of the server: the job gets SIGINT (PDEATHSIG) and stops; started again, it resumes."""
    lay = copy_workspace(studio_workspace, tmp_path / "ws")
    out = lay.src_aligned
    import shutil

    shutil.rmtree(out)
    port, token = free_port(), "t0ken-for-the-kill-test"
    proc = _studio_process(lay.root, port, token)
    base, headers = f"http://127.0.0.1:{port}", {"X-Studio-Token": token}
    try:
        _wait_up(base + "/")
        r = httpx.post(base + "/api/workspace/steps/extract_src", headers=headers, timeout=30,
                       json={"options": {"fps": 8, "size": 128, "face_type": "full", "workers": 1}})
        assert r.status_code == 200, r.text
        job = r.json()
        deadline = time.monotonic() + 240  # generous: CI machines may be loaded
        while time.monotonic() < deadline and len(list(out.glob("*.jpg"))) < 20:
            time.sleep(0.2)
        assert len(list(out.glob("*.jpg"))) >= 20
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert _gone(job["pid"], 120), "the job outlived its server"
    before = len(list(out.glob("*.jpg")))
    assert not (out / "_extract" / "summary.json").exists()  # interrupted, not finished

    s = studio_server(lay)  # the server again: the killed job is recorded as stopped, the step as partial
    with httpx.Client(base_url=s.base, headers=s.headers, timeout=30) as c:
        hist = c.get("/api/workspace/jobs").json()
        assert hist[0]["id"] == job["id"] and hist[0]["state"] == "stopped"
        st = c.get("/api/workspace/status").json()
        assert {x["name"]: x["state"] for x in st["steps"]}["extract_src"] == "partial"
        r = c.post("/api/workspace/steps/extract_src",
                   json={"options": {"fps": 8, "size": 128, "face_type": "full", "workers": 1}})
        assert r.status_code == 200, r.text
        done = s.ctx.jobs.wait(600)
        assert done.state == "done", c.get(f"/api/workspace/jobs/{done.id}/log").text
    summary = json.loads((out / "_extract" / "summary.json").read_text())
    # the frames done before the kill were not redone, but for the tracking run (8 frames) in progress, whose
    # faces may be written but not yet journaled: it is done again, whole (docs/reliability.md, Kill -9)
    assert summary["resumed_frames"] % 8 == 0 and summary["resumed_frames"] >= before - 15 > 0
    assert summary["faces"] == len(list(out.glob("*.jpg"))) > before


# ---- progress lines --------------------------------------------------------------------------------------

def test_progress_lines_reach_the_job_topic(studio_workspace: Any, studio_server: Any, tmp_path: Path) -> None:
    lay = copy_workspace(studio_workspace, tmp_path / "ws")
    s = studio_server(lay)
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", s.base + "/api/events?topics=job", headers=s.headers, timeout=120) as r:
            for line in r.iter_lines():
                ready.set()
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1]["data"].get("state") in ("done", "failed", "stopped"):
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(10)
    r = httpx.post(s.base + "/api/workspace/steps/video", headers=s.headers, json={}, timeout=30)
    assert r.status_code == 200, r.text
    assert s.ctx.jobs.wait(180).state == "done"
    t.join(10)
    data = [e["data"] for e in events if e["topic"] == "job"]
    merging = [d["progress"] for d in data if d["progress"] and d["progress"]["description"] == "merging frames"]
    assert merging and merging[-1]["done"] == merging[-1]["total"] == 44
    assert [p["done"] for p in merging] == sorted(p["done"] for p in merging)
    assert any(d["progress"] and d["progress"]["description"] == "encoding video" for d in data)
    lines = [d["line"] for d in data if d["line"]]
    assert lines[0].startswith("$ facelab merge") and any("passed through" in x for x in lines)
    assert not any(x.startswith("facelab-progress") for x in lines)
    assert data[-1]["state"] == "done" and data[-1]["rc"] == 0
    # the video step: WORKSPACE/result.mp4 with dst's audio and the provenance mark
    from facelab.media.video import probe_video

    info = probe_video(lay.result_video)
    assert info.frame_count == 44 and info.has_audio
    from facelab.provenance.record import read_video_record

    record = read_video_record(lay.result_video)
    model_id = json.loads((lay.merged / "merge.json").read_text())["model_id"]
    assert record is not None and record.synthetic and record.model_id == model_id
    st = httpx.get(s.base + "/api/workspace/status", headers=s.headers, timeout=10).json()
    assert st["result"]["exists"] and st["result"]["current"] and st["merged"]["count"] == 44
    assert st["next"] is None


# ---- the page in a browser -------------------------------------------------------------------------------

def test_workspace_page_in_a_browser(studio_workspace: Any, studio_server: Any, browser_page: Any,
                                     tmp_path: Path) -> None:
    lay = copy_workspace(studio_workspace, tmp_path / "ws")
    s = studio_server(lay)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(s.url)
    assert page.url == s.base + "/"  # the token went into the cookie
    page.wait_for_function("document.getElementById('ws-iter').textContent !== '–'")
    assert page.text_content("#ws-iter") == str(WORKSPACE_ITERATIONS)
    assert page.text_content("#ws-frames") == "44"
    assert page.text_content("#ws-faces-dst") == "42" and page.text_content("#ws-faces-src") == "45"
    assert page.text_content("#ws-noface") == "2"
    assert all(f in page.text_content("#ws-noface-list") for f in NO_FACE_FRAMES)
    assert "dst.mp4" in page.text_content("#ws-video-dst") and "src.mp4" in page.text_content("#ws-video-src")
    assert page.text_content("#ws-merged") == "0"
    assert "next: Merge" in page.text_content("#ws-next")
    assert page.get_attribute("#step-merge", "class") == "next"
    assert page.is_disabled("#step-video button")  # nothing merged yet
    assert page.eval_on_selector("#ws-preview", "img => img.complete && img.naturalWidth > 0")

    page.click("#step-merge button")
    page.wait_for_function("document.getElementById('job-state').textContent === 'running'", timeout=30_000)
    assert page.is_visible("#jobbar") and page.is_visible("#job-stop")
    assert page.is_disabled("#step-video button")  # one job at a time
    page.wait_for_function("document.getElementById('job-state').textContent === 'done'", timeout=120_000)
    assert "merging frames: 44 / 44 (100%)" in page.text_content("#job-progress-text")
    assert page.eval_on_selector("#job-progress", "p => p.value === p.max && p.max === 44")
    log = page.text_content("#job-log")
    assert log.startswith("$ facelab merge") and "44 frames: 42 with faces" in log and "2 passed through" in log
    page.wait_for_function("document.getElementById('ws-merged').textContent === '44'", timeout=30_000)

    page.click("#step-video button")  # the video: merged frames are kept, the encoding runs
    page.wait_for_function("document.getElementById('job-state').textContent === 'running'", timeout=30_000)
    page.wait_for_function("document.getElementById('job-state').textContent === 'done'", timeout=120_000)
    page.wait_for_selector("#ws-result video", timeout=30_000)
    page.wait_for_function("document.querySelector('#ws-result video').readyState >= 2", timeout=30_000)
    assert page.eval_on_selector("#ws-result video", "v => Math.round(v.duration)") == 7
    assert "all steps done" in page.text_content("#ws-next")
    assert "video" in page.text_content("#job-history") and "merge" in page.text_content("#job-history")
    assert lay.result_video.is_file()
    assert not errors, errors
    assert page.text_content("#job-command").startswith("facelab merge --model-dir model --frames dst/frames")
    page.set_viewport_size({"width": 1280, "height": 1240})
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "workspace")

