"""The merge tuner: its frame is what `facelab merge --session` writes, pixel for pixel; per-range overrides
land on exactly their range; bad input changes nothing; and the page in a real browser (erode slider,
keyboard, apply to a range, save, start the merge as the studio's job)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from facelab.media.png import decode_png
from facelab.merge.options import MergeOptions
from facelab.merge.session import MergeSession, load_session
from facelab.studio.tuner.plan import merge_batches
from facelab.studio.tuner.service import Tuner

from .studio_support import NO_FACE_FRAMES, copy_workspace, screenshot


def _png(data: bytes) -> np.ndarray:
    return np.asarray(decode_png(data))


def _file_pixels(path: Path) -> np.ndarray:
    from facelab.media.frames import read_image_rgb

    return read_image_rgb(path)


def test_merge_batches_mirror_the_batcher() -> None:
    """Frames with faces in order, a batch closing at 16 faces or more, the rest in the last one."""
    faces = {"a": 10, "b": 0, "c": 5, "d": 3, "e": 16, "f": 1}
    got = merge_batches(["a", "b", "c", "d", "e", "f"], faces)
    assert got == {"a": ("a", "c", "d"), "c": ("a", "c", "d"), "d": ("a", "c", "d"), "e": ("e",), "f": ("f",)}


def test_tuner_frame_equals_batch_merge(studio_workspace: Any, tmp_path: Path) -> None:
    """Library level: the tuner's pixels for every frame equal run_merge's output with a session holding a base,
    a range and a frame override (watermark included); frames without a face pass through."""
    from facelab.merge.runner import run_merge

    layout = studio_workspace
    session = (MergeSession(MergeOptions(color_transfer="mkl", blur=8))
               .with_range("000004", "000020", erode=12, sharpen_mode="unsharp", sharpen_amount=40)
               .with_frame("000006", mode="seamless"))
    out = tmp_path / "merged"
    run_merge(layout.model, layout.dst_frames, layout.dst_aligned, out, session, workers=2)
    tuner = Tuner(layout)
    info = tuner.frames()
    assert info["count"] == 44 and info["without_face"] == len(NO_FACE_FRAMES)
    for i, stem in enumerate(info["stems"]):
        got, got_stem, faces, _ = tuner.pixels(i, session.options_for(stem))
        assert got_stem == stem and faces == info["faces"][i]
        want = _file_pixels(out / f"{stem}.png")
        assert np.array_equal(got, want), (stem, int((got != want).any(axis=2).sum()))
    assert len(tuner.predictor.cache) == info["count"] - info["without_face"]  # each batch predicted once


# ---- background warm-up -----------------------------------------------------------------------------

def _record_batches(tuner: Tuner) -> list[tuple[str, str]]:
    """(first stem of the batch, thread name) of every model call the tuner's predictor makes from now on."""
    import threading

    calls: list[tuple[str, str]] = []
    inner = tuner.predictor._predict_batch

    def recording(model: Any, index: Any, gen: int, batch: tuple[str, ...], direction: str,
                  cold: bool = False) -> Any:
        calls.append((batch[0], threading.current_thread().name))
        return inner(model, index, gen, batch, direction, cold)

    tuner.predictor._predict_batch = recording  # type: ignore[method-assign]
    return calls


def test_warmup_serves_every_frame_from_cache(studio_workspace: Any, tmp_path: Path) -> None:
    """After the warm-up every frame comes from the cache (no model call), the batches were predicted nearest
    first from the user's frame, the pixels are those of frames predicted on demand; new frames start it again."""
    import os

    layout = copy_workspace(studio_workspace, tmp_path / "ws")
    opts = MergeOptions()
    tuner = Tuner(layout, warmup=False)
    calls = _record_batches(tuner)
    stems = tuner.frames()["stems"]
    plan = sorted(set(tuner.index.get().batches.values()))
    assert [b[0] for b in plan] == ["000000", "000018", "000034"]  # 16 + 16 + 10 faces (frames 10, 11: none)
    user = tuner.pixels(20, opts)[0]  # the user on frame 20: its batch 000018..000033
    assert tuner.warmup.status()["state"] == "idle" and tuner.warmup.status()["cached"] == 1
    tuner.warmup.start(force=True)
    assert tuner.warmup.wait() == "done"
    assert [c[0] for c in calls] == ["000018", "000000", "000034"]  # then the nearest batch (ends at 17), then 34..
    assert all(name == "tuner-warmup" for _, name in calls[1:])
    assert tuner.warmup.status() | {"cache_bytes": 0} == {
        "state": "done", "message": "", "cached": 3, "total": 3, "cache_bytes": 0,
        "cache_max_bytes": tuner.predictor.cache.max_bytes}
    misses = tuner.predictor.cache.misses
    shown = {}
    faces = tuner.frames()["faces"]
    for i in range(len(stems)):
        shown[i], _, n, _ = tuner.pixels(i, opts)
        assert n == faces[i]
    assert len(calls) == 3 and tuner.predictor.cache.misses == misses  # every frame from the cache
    assert tuner.warmup.batches_done == 2 and tuner.predictor.cache.evictions == 0
    # the warm-up's predictions are the on-demand ones (same batches as the batch merge), pixel for pixel
    plain = Tuner(layout, warmup=False)
    for i in (0, 17, 20, 40):
        assert np.array_equal(plain.pixels(i, opts)[0], shown[i]), i
    assert np.array_equal(shown[20], user)

    # the frames change (the face folder is touched): the cache is dropped and the warm-up starts again
    st = layout.dst_aligned.stat()
    os.utime(layout.dst_aligned, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert tuner.warmup.status()["cached"] == 0
    tuner.warmup.poke()
    assert tuner.warmup.wait() == "done" and tuner.warmup.status()["cached"] == 3 and len(calls) == 6
    tuner.close()


def test_warmup_stops_at_the_cache_cap(studio_workspace: Any) -> None:
    """The warm-up stops when its next batch would evict anything; the user's frames stay. Near the end of the
    user's batch the next one is still predicted (evicting the warm-up's batches first, not the user's)."""
    opts = MergeOptions()
    tuner = Tuner(studio_workspace, warmup=False)
    calls = _record_batches(tuner)
    tuner.pixels(20, opts)
    one = tuner.predictor.cache.nbytes  # one batch of 16 faces
    tuner.predictor.cache.max_bytes = 2 * one + one // 4  # room for one more 16-face batch, not two
    tuner.warmup.start(force=True)
    assert tuner.warmup.wait() == "full"
    status = tuner.warmup.status()
    assert (status["state"], status["cached"], status["total"]) == ("full", 2, 3)
    assert [c[0] for c in calls] == ["000018", "000000"] and tuner.predictor.cache.evictions == 0
    idx = tuner.index.get()
    model_id = tuner.predictor.loaded.model_id  # type: ignore[union-attr]
    gen = tuner.predictor.sync(idx)
    user_batch, warm_batch = idx.batches["000020"], idx.batches["000000"]
    # frame 30: 4 frames from the end of its batch -> the next batch is predicted, evicting the warm-up's
    tuner.pixels(30, opts)
    assert tuner.warmup.wait() == "full"
    assert [c[0] for c in calls] == ["000018", "000000", "000034"] and tuner.predictor.cache.evictions > 0
    assert tuner.predictor.has_batch(model_id, "src2dst", gen, user_batch)
    assert tuner.predictor.has_batch(model_id, "src2dst", gen, idx.batches["000040"])
    assert not tuner.predictor.has_batch(model_id, "src2dst", gen, warm_batch)
    assert tuner.predictor.cache.nbytes <= tuner.predictor.cache.max_bytes
    tuner.close()


def test_user_request_during_warmup_goes_first(studio_workspace: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the warm-up's batch runs: a cached frame is served at once (it does not wait for that batch), and
    a frame of another uncached batch waits for that batch only, then goes before the warm-up's next one."""
    import threading

    import facelab.studio.tuner.predictor as predictor_mod

    opts = MergeOptions()
    tuner = Tuner(studio_workspace, warmup=False)
    calls = _record_batches(tuner)
    entered, release = threading.Event(), threading.Event()
    real_predict = predictor_mod.predict

    def held_predict(*args: Any) -> Any:  # the warm-up's first batch waits for `release`
        if threading.current_thread().name == "tuner-warmup" and not release.is_set():
            entered.set()
            assert release.wait(120)
        return real_predict(*args)

    monkeypatch.setattr(predictor_mod, "predict", held_predict)
    tuner.pixels(0, opts)  # batch 000000..000017 (the user's)
    tuner.warmup.start(force=True)
    assert entered.wait(120)  # the warm-up is inside batch 000018..000033, holding the model
    assert tuner.predictor.gate.busy

    results: dict[str, Any] = {}

    def ask(name: str, i: int) -> None:
        results[name] = tuner.pixels(i, opts)

    cached = threading.Thread(target=ask, args=("cached", 5))
    cached.start()
    cached.join(60)
    assert not cached.is_alive() and "cached" in results  # served while the warm-up's batch is still running
    # a merged face, from the cache: no model call of its own (the warm-up still holds the model)
    assert results["cached"][2] == 1 and not release.is_set()
    assert calls == [("000000", "MainThread"), ("000018", "tuner-warmup")]
    uncached = threading.Thread(target=ask, args=("uncached", 40), name="user-request")
    uncached.start()
    deadline = time.monotonic() + 60
    while tuner.predictor.gate.users_waiting == 0:
        assert time.monotonic() < deadline and uncached.is_alive()
        time.sleep(0.01)
    assert "uncached" not in results  # it waits for the batch in progress ...
    release.set()
    uncached.join(120)
    assert "uncached" in results and results["uncached"][2] == 1
    # ... and goes first: batch 000034.. is made on the user's thread, not by the warm-up
    assert calls == [("000000", "MainThread"), ("000018", "tuner-warmup"), ("000034", "user-request")]
    assert tuner.warmup.wait() == "done" and tuner.warmup.status()["cached"] == 3
    assert tuner.warmup.batches_done == 1  # it found 000034.. made
    tuner.close()


# ---- the HTTP API ---------------------------------------------------------------------------------

def _client(studio: Any) -> httpx.Client:
    return httpx.Client(base_url=studio.base, headers=studio.headers, timeout=120)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_api_bad_input_changes_nothing(studio_workspace: Any, studio_server: Any, tmp_path: Path) -> None:
    layout = copy_workspace(studio_workspace, tmp_path / "ws")
    studio = studio_server(layout)
    with _client(studio) as c:
        schema = c.get("/api/tuner/schema").json()
        props = schema["schema"]["properties"]
        assert "enum" in props["mode"] and "enum" in props["mask_mode"] and "enum" in props["color_transfer"]
        assert "erode" in schema["frame_keys"] and "super_resolution" in schema["run_keys"]
        assert "workers" not in schema["run_keys"]
        ok = c.get("/api/tuner/frames/3/merged", params={"erode": "5", "fmt": "png"})
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/png" and ok.headers["x-faces"] == "1"
        assert c.get("/api/tuner/frames/3/original").status_code == 200
        frames = c.get("/api/tuner/frames").json()  # the page opening: starts the background warm-up
        assert frames["count"] == 44 and frames["warmup"]["total"] == 3
        deadline = time.monotonic() + 120
        while (w := c.get("/api/tuner/warmup").json())["state"] != "done":
            assert time.monotonic() < deadline and w["state"] in ("idle", "loading", "running"), w
            time.sleep(0.2)
        assert (w["cached"], w["total"]) == (3, 3)

        before = _snapshot(layout.root)
        bad = {
            ("get", "/api/tuner/frames/3/merged", "erode=500"): (422, "erode"),
            ("get", "/api/tuner/frames/3/merged", "mode=bogus"): (422, "mode"),
            ("get", "/api/tuner/frames/3/merged", "nonsense=1"): (400, "unknown option 'nonsense'"),
            ("get", "/api/tuner/frames/44/merged", ""): (404, "frame 44 is past the end: this workspace has 44 frames"),
            ("get", "/api/tuner/frames/999/original", ""): (404, "past the end"),
            ("get", "/api/tuner/frames/3/merged", "xseg_model=../../etc"): (403, "'..' is not allowed"),
        }
        for (_, path, query), (status, message) in bad.items():
            r = c.get(f"{path}?{query}")
            assert r.status_code == status and message in r.json()["detail"], (path, query, r.text)
            assert "\n" not in r.json()["detail"]
        draft = MergeSession().to_json()
        r = c.post("/api/tuner/session/apply", json={"session": draft, "scope": "range", "options": {"erode": 300},
                                                      "first": "000002", "last": "000005"})
        assert r.status_code == 400 and "ranges.0.options.erode" in r.json()["detail"]
        r = c.post("/api/tuner/session/apply", json={"session": draft, "scope": "frame", "options": {"erode": 3},
                                                      "frame": "009999"})
        assert r.status_code == 400 and "not a frame of this workspace" in r.json()["detail"]
        r = c.put("/api/tuner/session", json={"session": draft | {"options": {"blur": -1}}})
        assert r.status_code == 400 and "options.blur" in r.json()["detail"]
        assert _snapshot(layout.root) == before and not layout.session.exists()

        # a corrupt session file: a clear message, and it is not overwritten without asking
        layout.session.write_text('{"schema": "facelab.merge_session", "version": 2, "options": {"erode": ')
        corrupt = layout.session.read_bytes()
        got = c.get("/api/tuner/session").json()
        assert got["error"].startswith("merge_session.json: unreadable merge session") and got["exists"]
        r = c.get("/api/tuner/frames/3/merged")  # options from the (unreadable) session
        assert r.status_code == 400 and "unreadable merge session" in r.json()["detail"]
        r = c.post("/api/tuner/merge", json={})
        assert r.status_code == 400 and "unreadable merge session" in r.json()["detail"]
        r = c.put("/api/tuner/session", json={"session": draft})
        assert r.status_code == 409 and "left as it is" in r.json()["detail"]
        assert layout.session.read_bytes() == corrupt and studio.ctx.jobs.current() is None
        r = c.put("/api/tuner/session", json={"session": draft, "overwrite": True})
        assert r.status_code == 200 and load_session(layout.session) == MergeSession()

        # latest request wins: a request overtaken by a newer one of the same client is dropped
        assert c.get("/api/tuner/frames/5/merged", params={"client": "x", "seq": "7"}).status_code == 200
        r = c.get("/api/tuner/frames/5/merged", params={"client": "x", "seq": "6"})
        assert r.status_code == 409 and "superseded" in r.json()["detail"]


# ---- the page in a real browser ---------------------------------------------------------------------

def _displayed(page: Any) -> np.ndarray:
    """The displayed (after) image's pixels, read back through a canvas."""
    data = page.evaluate("""() => {
        const img = document.getElementById('img-after');
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data);
    }""")
    return np.asarray(data, dtype=np.uint8)


def _wait_painted(page: Any, after: int) -> int:
    page.wait_for_function(f"Number(document.getElementById('viewer').dataset.painted || 0) > {after}", timeout=60_000)
    return int(page.evaluate("Number(document.getElementById('viewer').dataset.painted)"))


def _page_png(page: Any) -> np.ndarray:
    """The tuner's current frame with the page's current settings, as PNG (the pixel-exact view)."""
    b64 = page.evaluate("""async () => {
        const p = renderParams(0); p.set('fmt', 'png'); p.delete('client');
        const r = await fetch(`/api/tuner/frames/${T.idx}/merged?${p}`);
        const buf = new Uint8Array(await r.arrayBuffer());
        let s = ''; for (let i = 0; i < buf.length; i += 1) s += String.fromCharCode(buf[i]);
        return btoa(s);
    }""")
    return _png(base64.b64decode(b64))


def test_tuner_page(studio_workspace: Any, studio_server: Any, browser_page: Any, tmp_path: Path) -> None:
    layout = copy_workspace(studio_workspace, tmp_path / "ws")
    studio = studio_server(layout)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{studio.base}/tuner?token={studio.token}")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    seq = _wait_painted(page, 0)

    # keyboard: next frame, and next frame without a face
    page.keyboard.press("ArrowRight")
    seq = _wait_painted(page, seq)
    assert page.evaluate("T.idx") == 1
    page.keyboard.press("n")
    seq = _wait_painted(page, seq)
    assert page.evaluate("T.idx") == 10 and "no face" in page.inner_text("#t-faces")
    page.fill("#frame-slider", "3")  # the frame slider
    seq = _wait_painted(page, seq)
    assert page.evaluate("T.idx") == 3

    # moving the erode slider changes the displayed frame's pixels
    shown = _displayed(page)
    page.fill("#opt-erode", "25")
    seq = _wait_painted(page, seq)
    eroded = _displayed(page)
    assert shown.shape == eroded.shape and int((shown != eroded).sum()) > 500
    assert page.locator(".ctl[data-key='erode']").get_attribute("class") == "ctl dirty"

    # apply to frames 5..20 (a range), save, merge from the page: the range lands on exactly those frames
    page.fill("#range-first", "5")
    page.fill("#range-last", "20")
    page.click("#apply-range")
    page.wait_for_function("T.draft.ranges.length === 1 && T.dirty.size === 0")
    page.select_option("#opt-color_transfer", "mkl")
    seq = _wait_painted(page, seq)
    page.click("#apply-frame")  # frame 3's own override
    page.wait_for_function("Object.keys(T.draft.frames).length === 1")
    page.click("#save")
    page.wait_for_function("document.getElementById('unsaved').hidden")
    saved = json.loads(layout.session.read_text())
    assert saved["version"] == 2 and saved["ranges"] == [
        {"first": "000005", "last": "000020", "options": {"erode": 25.0}}]
    assert saved["frames"] == {"000003": {"color_transfer": "mkl"}}
    tuner_frame = _page_png(page)  # frame 3 with the page's settings

    # the background warm-up's progress, shown discreetly beside the frame stats
    page.wait_for_function("document.getElementById('t-warmup').dataset.state === 'done'", timeout=60_000)
    assert page.inner_text("#t-warmup") == "predicted 3/3 batches"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.check("input[name=view][value=split]")
    page.wait_for_function("document.getElementById('img-before').complete")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "tuner")
    page.click("#merge")
    deadline = time.monotonic() + 240
    while studio.ctx.jobs.last() is None or studio.ctx.jobs.last().state == "running":
        assert time.monotonic() < deadline, "the merge job did not finish"
        time.sleep(0.5)
    job = studio.ctx.jobs.last()
    assert job.state == "done", (job.to_json(), (layout.root / job.log).read_text()[-2000:])
    assert "--session" in job.args

    # the batch merge's frame 3 is the tuner's frame, pixel for pixel
    assert np.array_equal(_file_pixels(layout.merged / "000003.png"), tuner_frame)
    # every frame: the merged file equals the tuner's frame with the saved session's options; the range's erode
    # shows on frames 5..20 only
    session = load_session(layout.session)
    base = session.options
    with _client(studio) as c:
        for i, stem in enumerate(c.get("/api/tuner/frames").json()["stems"]):
            merged = _file_pixels(layout.merged / f"{stem}.png")
            tuned = _png(c.get(f"/api/tuner/frames/{i}/merged", params={"fmt": "png"}).content)
            assert np.array_equal(merged, tuned), stem
            assert session.options_for(stem).erode == (25 if 5 <= i <= 20 else base.erode), stem
            if stem in NO_FACE_FRAMES:
                assert np.array_equal(merged, _file_pixels(layout.dst_frames / f"{stem}.png"))
            elif stem != "000003":
                plain = _png(c.get(f"/api/tuner/frames/{i}/merged",
                                   params={**base.model_dump(mode="json", exclude={"workers", "xseg_model"}),
                                           "fmt": "png"}).content)
                assert np.array_equal(merged, plain) == (not 5 <= i <= 20), stem
    assert not errors, errors


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The merge job (a subprocess: OMP_NUM_THREADS) and the tuner (in this process) run the model on one torch
    thread each: its last bits depend on the thread count as on the batch (a 2-thread tuner against a 1-thread
    merge moved one pixel of 44 frames by one level; this process's count was whatever earlier tests left)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
