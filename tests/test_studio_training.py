"""The studio's training dashboard on a real model: status, loss history (downsampled for long runs), resume
marks, options, start/stop/backup, a CLI run seen from the studio, and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from facelab.studio.layout import Layout
from facelab.studio.training import MetricsFile, Training, downsample, watch_once
from facelab.train.checkpoint import read_config
from facelab.train.trainer import Trainer
from tests.studio_support import WORKSPACE_ITERATIONS, copy_workspace, screenshot

RESUMED_ITERATIONS = 10


def resume_in_process(layout: Layout, iterations: int = RESUMED_ITERATIONS) -> None:
    """Resume the workspace's model for a few iterations, as `facelab train` would (a resume mark)."""
    opts = read_config(layout.model)
    assert opts is not None
    trainer = Trainer(layout.model, opts, layout.src_aligned, layout.dst_aligned, previous=opts)
    try:
        trainer.train(iterations=iterations)
    finally:
        trainer.close()


@pytest.fixture(scope="module")
def resumed_workspace(studio_workspace: Layout, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """A copy of the studio workspace whose model was resumed once (read-only: copy it to change it)."""
    layout = copy_workspace(studio_workspace, tmp_path_factory.mktemp("training") / "ws")
    resume_in_process(layout)
    return layout


def _state_iteration(layout: Layout) -> int:
    return int(json.loads((layout.model / "state.json").read_text())["iteration"])


def _wait(cond: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# ---- the backend on real model folders ---------------------------------------------------------------

def test_status_series_and_resume_mark_of_a_real_run(resumed_workspace: Layout) -> None:
    view = Training(resumed_workspace)
    total = WORKSPACE_ITERATIONS + RESUMED_ITERATIONS
    st = view.status(target=1000)
    assert st["model_exists"] and st["iteration"] == total and st["saved_iteration"] == total
    assert st["weights"] == f"weights-{total:08d}.safetensors"
    assert st["run"] is None  # both runs ended
    assert st["rates"]["it_per_s"] > 0 and st["rates"]["samples_per_s"] > 0 and 0 <= st["rates"]["data_wait"] <= 1
    assert st["eta_s"] == pytest.approx((1000 - total) / st["rates"]["it_per_s"], rel=0.01)
    assert st["preview"]["path"] == "model/previews/latest.png" and st["preview"]["iteration"] == total
    assert [m["iteration"] for m in st["resumes"]] == [WORKSPACE_ITERATIONS]
    series = view.series()
    assert {"src_loss", "dst_loss", "mask_loss", "total"} <= set(series["series"])
    assert series["iterations"][-1] == total and not series["downsampled"]
    assert all(v is not None and v > 0 for v in series["series"]["src_loss"])
    # the runs record: a new model's start, then a resumed start at 20, each with its end, and where the demo
    # preset's warp_off (0.25) turned the random warp off in each run's last quarter (from 15 of 20; from 23
    # of 30, the resumed run's budget counted on the model's iterations)
    runs = [json.loads(line) for line in (resumed_workspace.model / "runs.jsonl").read_text().splitlines()]
    assert [(r["event"], r["iteration"], r.get("resumed")) for r in runs] == [
        ("start", 0, False), ("warp", 15, None), ("end", WORKSPACE_ITERATIONS, None),
        ("start", WORKSPACE_ITERATIONS, True), ("warp", 23, None), ("end", total, None)]


def test_long_history_is_read_incrementally_and_downsampled(resumed_workspace: Layout, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A million iterations logged every 10 (1e5 rows, faceswap #375): read once, then only what is appended;
    the chart gets a bounded number of points, averaged per bucket, and zooming gives the rows themselves.
    What is parsed is counted (the lines each refresh hands to the parser), not timed."""
    import facelab.studio.training as training_mod

    parsed: list[int] = []
    real_parse = training_mod._parse_lines

    def counting_parse(text: str) -> Any:
        parsed.append(text.count("\n"))
        return real_parse(text)

    monkeypatch.setattr(training_mod, "_parse_lines", counting_parse)
    real = [json.loads(line) for line in (resumed_workspace.model / "metrics.jsonl").read_text().splitlines()]
    template = real[-1]
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps(template | {"iteration": i, "src_loss": 1.0 + (i // 10 % 20) / 10})
             for i in range(10, 1_000_001, 10)]
    path.write_text("\n".join(lines) + "\n")
    mf = MetricsFile(path)
    cols = mf.refresh()
    assert len(cols) == 100_000 and parsed == [100_000]
    assert len(mf.refresh()) == 100_000 and parsed == [100_000]  # nothing new: nothing parsed
    out = downsample(cols, None, None, 1500)
    assert out["downsampled"] and len(out["iterations"]) <= 1500 and out["rows"] == 100_000
    assert out["series"]["src_loss"][0] == pytest.approx(1.95, abs=0.1)  # bucket means of the 1.0..2.9 saw
    zoom = downsample(cols, 500_000, 500_990, 1500)
    assert not zoom["downsampled"] and zoom["iterations"] == list(range(500_000, 501_000, 10))
    # appended rows are read alone (a partial line waits for its end)
    with open(path, "a") as fh:
        fh.write(json.dumps(template | {"iteration": 1_000_010}) + "\n" + '{"iteration": 1000')
    assert len(mf.refresh()) == 100_001 and parsed[1:] == [1]
    # a rewritten (trimmed) file is read again from its start
    path.write_text("\n".join(lines[:50]) + "\n")
    assert len(mf.refresh()) == 50 and parsed[2:] == [50]


def test_options_fixed_refused_bad_value_refused_good_value_saved(resumed_workspace: Layout, tmp_path: Path) -> None:
    from facelab.core.errors import InputError

    layout = copy_workspace(resumed_workspace, tmp_path / "ws")
    view = Training(layout)
    opts = view.options()
    assert opts["exists"] and "resolution" in opts["readonly"] and "batch_size" not in opts["readonly"]
    assert opts["schema"]["properties"]["ct_mode"]["enum"][0] == "none"
    before = (layout.model / "config.json").read_bytes()
    for bad, words in (({"resolution": 128}, "fixed"), ({"batch_size": 0}, "batch_size"),
                       ({"ct_mode": "nope"}, "ct_mode"), ({"no_such": 1}, "unknown option")):
        with pytest.raises(InputError, match=words):
            view.set_options(bad)
        assert (layout.model / "config.json").read_bytes() == before
    view.set_options({"batch_size": 4, "target_iteration": 500})
    stored = read_config(layout.model)
    assert stored is not None and stored.batch_size == 4 and stored.target_iteration == 500
    assert stored.resolution == 64
    assert view.status()["target_iteration"] == 500
    # the backup button: facelab's rotating backup of the current checkpoint
    assert view.make_backup() == f"model/backups/it_{WORKSPACE_ITERATIONS + RESUMED_ITERATIONS:08d}"
    assert view.status()["backups"] == [f"it_{WORKSPACE_ITERATIONS + RESUMED_ITERATIONS:08d}"]


def test_watcher_reports_changes(resumed_workspace: Layout, tmp_path: Path) -> None:
    layout = copy_workspace(resumed_workspace, tmp_path / "ws")
    view = Training(layout)
    last: dict[str, Any] = {}
    watch_once(view, last)
    assert watch_once(view, last) is None
    row = json.loads((layout.model / "metrics.jsonl").read_text().splitlines()[-1])
    with open(layout.model / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(row | {"iteration": row["iteration"] + 10}) + "\n")
    event = watch_once(view, last)
    assert event is not None and event["changed"] == ["metrics"] and event["iteration"] == row["iteration"] + 10


# ---- the HTTP API: a run started in another terminal -----------------------------------------------------

def test_cli_run_in_another_terminal_shows_and_stops_from_the_studio(
        resumed_workspace: Layout, tmp_path: Path, studio_server: Any) -> None:
    layout = copy_workspace(resumed_workspace, tmp_path / "ws")
    studio = studio_server(layout)
    start_it = _state_iteration(layout)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "facelab", "train", "--src", str(layout.src_aligned),
                             "--dst", str(layout.dst_aligned), "--model-dir", str(layout.model), "--workers", "0",
                             "--no-preview", "--log-every", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=studio.base, headers=studio.headers, timeout=30) as client:
            st = _wait(lambda: (s := client.get("/api/training/status").json())["run"] and s["iteration"] > start_it
                       and s, 180, "the CLI run in the status")
            assert st["run"]["pid"] == proc.pid and st["job"] is None
            # a second run on the same model is refused while this one trains
            assert client.post("/api/training/start", json={}).status_code == 409
            res = client.post("/api/training/stop")
            assert res.status_code == 200 and res.json() == {"stopped": "process", "pid": proc.pid}
            assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
            saved = _state_iteration(layout)
            assert saved > start_it and (layout.model / f"weights-{saved:08d}.safetensors").exists()
            assert _wait(lambda: client.get("/api/training/status").json()["run"] is None, 10, "the run's end")
            assert client.post("/api/training/stop").status_code == 409
            # the preview route serves only the model's previews, inside the workspace
            assert client.get("/api/training/preview").headers["content-type"] == "image/png"
            assert client.get("/api/training/preview", params={"path": "../x.png"}).status_code == 403
            assert client.get("/api/training/preview", params={"path": "studio.json"}).status_code == 403
            bad = client.put("/api/training/options", json={"options": {"lr": -1}})
            assert bad.status_code == 422 and "lr" in bad.json()["detail"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


# ---- the page in a real browser ---------------------------------------------------------------------------

def test_dashboard_page_shows_run_and_start_stop_saves(resumed_workspace: Layout, tmp_path: Path,
                                                       studio_server: Any, browser_page: Any) -> None:
    layout = copy_workspace(resumed_workspace, tmp_path / "ws")
    studio = studio_server(layout)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{studio.base}/training?token={studio.token}")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    total = WORKSPACE_ITERATIONS + RESUMED_ITERATIONS

    # the preview grid and the loss curves of the real run, with the resume mark
    page.wait_for_function("document.getElementById('tr-preview').naturalWidth > 0", timeout=15_000)
    assert page.eval_on_selector("#tr-preview", "img => img.naturalWidth") > 0
    chart = page.locator("#tr-chart")
    assert int(chart.get_attribute("data-series") or 0) >= 4  # src, dst, mask, total
    assert int(chart.get_attribute("data-points") or 0) >= 4 * (total // 10)
    assert chart.get_attribute("data-marks") == "1"
    assert page.locator("#tr-iteration").inner_text() == str(total)
    # log scale off and smoothing still draw; hovering gives a readout
    page.locator("#tr-log").uncheck()
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    assert "iteration" in (chart.get_attribute("data-readout") or "")
    page.locator("#tr-log").check()
    # drag to zoom to a range, then reset
    page.mouse.move(box["x"] + 80, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 120, steps=5)
    page.mouse.up()
    page.wait_for_function("document.getElementById('tr-chart').dataset.view !== ''", timeout=10_000)
    page.locator("#tr-reset").click()
    page.wait_for_function("document.getElementById('tr-chart').dataset.view === ''", timeout=10_000)

    # fixed options are read-only; a bad value shows a message and changes nothing
    assert page.locator("#tr-options-body [name=resolution]").is_disabled()
    before = (layout.model / "config.json").read_bytes()
    page.locator("#tr-options-body [name=batch_size]").fill("0")
    page.locator("#tr-options-save").click()
    msg = page.locator("#tr-options-msg")
    page.wait_for_function("document.getElementById('tr-options-msg').classList.contains('error')", timeout=10_000)
    assert "batch_size" in msg.inner_text()
    assert (layout.model / "config.json").read_bytes() == before
    # good values are saved for the next start (workers 0: a quick start on this small machine)
    page.locator("#tr-options-body [name=batch_size]").fill("8")
    page.locator("#tr-options-body [name=workers]").fill("0")
    page.locator("#tr-options-body [name=preview_every]").fill("4")
    page.locator("#tr-options-body [name=log_every]").fill("2")
    page.locator("#tr-options-save").click()
    page.wait_for_function("document.getElementById('tr-options-msg').classList.contains('ok')", timeout=10_000)
    stored = read_config(layout.model)
    assert stored is not None and stored.workers == 0 and stored.preview_every == 4

    # Start from the page; the run shows up live; Stop saves a checkpoint
    page.locator("#tr-start").click()
    page.wait_for_selector("body[data-training='running']", timeout=120_000)
    page.wait_for_function(f"Number(document.getElementById('tr-iteration').textContent) > {total}",
                           timeout=120_000)
    page.wait_for_function(f"/iteration (\\d+)/.test(document.getElementById('tr-preview-it').textContent) && "
                           f"Number(document.getElementById('tr-preview-it').textContent.match(/\\d+/)[0]) > {total}",
                           timeout=120_000)
    page.locator("#tr-stop").click()
    page.wait_for_selector("body[data-training='stopped']", timeout=120_000)
    job = studio.ctx.jobs.wait(timeout=60)
    assert job is not None and job.state in ("stopped", "done"), job
    saved = _state_iteration(layout)
    assert saved > total and (layout.model / f"weights-{saved:08d}.safetensors").exists()
    # the resumed run adds its mark
    page.wait_for_function("document.getElementById('tr-chart').dataset.marks === '2'", timeout=15_000)
    page.wait_for_function(f"document.getElementById('tr-saved').textContent === '{saved}'", timeout=15_000)
    screenshot(page, "training")
    assert not errors, errors
