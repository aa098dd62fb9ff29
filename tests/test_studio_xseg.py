"""The studio's XSeg editor (issue 15): the API on a real workspace, and the page in headless Chromium.

- A polygon drawn with mouse events (after zooming to the cursor, with a drag, an inserted point, undo/redo)
  is saved into the face file's record within 1 px of the clicked points, survives a reload, and the
  `facelab xseg train` job started from the page trains on it.
- Polygons seeded from a trained XSeg model fill a mask with IoU >= 0.9 against the model's own mask;
  copying the previous face's polygons maps them through both faces' transforms; `facelab xseg apply`
  from the page stores masks that the "masked" filter and the overlay show.
- Bad input (paths leaving the workspace, unknown faces, bad polygons, options) changes nothing; a pack
  is read-only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import torch

from facelab.core.geometry import transform_points
from facelab.face.masks import hull_points, polygon_mask
from facelab.faceset.folder import scan_faces
from facelab.faceset.pack import pack_faceset
from facelab.faceset.record import XSegPolygon, read_face, read_record, update_record
from facelab.studio.layout import Layout
from facelab.studio.xseg_editor.polygons import mask_iou, seed_from_mask
from facelab.xseg.infer import load_xseg
from facelab.xseg.options import XSegOptions
from facelab.xseg.train import XSegTrainer
from tests.studio_support import copy_workspace, screenshot

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
SEED_ITERATIONS = 60


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _label_hulls(paths: list[Path]) -> None:
    for p in paths:
        rec = read_record(p)
        hull = cv2.convexHull(np.round(hull_points(rec.landmarks_array(), rec.face_type)).astype(np.float32))[:, 0]
        poly = XSegPolygon(kind="include", points=[(float(x), float(y)) for x, y in hull])
        update_record(p, rec.model_copy(update={"xseg_polygons": [poly]}))


@pytest.fixture(scope="module")
def xseg_workspace(studio_workspace: Layout, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """The studio workspace with an XSeg model in WORKSPACE/xseg trained on hull labels of 8 dst faces
    (a copy; the labels are then removed again, so the faces start unlabelled)."""
    layout = copy_workspace(studio_workspace, tmp_path_factory.mktemp("xseg") / "ws")
    train = layout.root / "xseg_train"
    train.mkdir()
    faces = [p for p, _ in scan_faces(layout.dst_aligned).faces]
    picked = [Path(shutil.copy2(p, train / p.name)) for p in faces[:: max(1, len(faces) // 8)][:8]]
    _label_hulls(picked)
    torch.set_num_threads(1)
    opts = XSegOptions(resolution=64, base_channels=8, batch_size=4, save_every=10_000, seed=1)
    XSegTrainer(layout.root / "xseg", opts, [train], new=True).train(iterations=SEED_ITERATIONS)
    shutil.rmtree(train)
    return layout


def _client(studio: Any) -> httpx.Client:
    return httpx.Client(base_url=studio.base, headers=studio.headers, timeout=60)


# ---- the API ------------------------------------------------------------------------------------------------

def test_api_browse_filter_save_and_refuse_bad_input(xseg_workspace: Layout, tmp_path: Path,
                                                    studio_server: Any) -> None:
    layout = copy_workspace(xseg_workspace, tmp_path / "ws")
    pack = layout.root / "packs" / "dst.fpack"
    pack.parent.mkdir()
    pack_faceset(layout.dst_aligned, pack)
    studio = studio_server(layout)
    with _client(studio) as c:
        sets = c.get("/api/xseg/facesets").json()
        paths = [s["path"] for s in sets["facesets"]]
        assert paths[:2] == ["src/aligned", "dst/aligned"] and "packs/dst.fpack" in paths
        assert next(s for s in sets["facesets"] if s["path"] == "packs/dst.fpack")["read_only"]
        assert sets["models"] == ["xseg"]

        listed = c.get("/api/xseg/faces", params={"set": "dst/aligned"}).json()
        names = [f["name"] for f in listed["faces"]]
        assert listed["total"] == len(names) > 10 and listed["labelled"] == 0 and not listed["read_only"]
        by_yaw = c.get("/api/xseg/faces", params={"set": "dst/aligned", "sort": "yaw"}).json()["faces"]
        yaws = [f["yaw"] for f in by_yaw if f["yaw"] is not None]
        assert yaws == sorted(yaws) and len(yaws) == len(by_yaw)

        # save a polygon: the labelled/unlabelled filters follow; pixels are kept byte for byte
        name = names[3]
        path = layout.dst_aligned / name
        pixels = read_face(path)[0].tobytes()
        square = [[20.5, 20], [100, 20.25], [100, 110], [20, 110]]
        out = c.put("/api/xseg/polygons", json={"set": "dst/aligned", "name": name,
                                                 "polygons": [{"kind": "include", "points": square}]})
        assert out.status_code == 200, out.text
        rec = read_record(path)
        assert [list(p) for p in rec.xseg_polygons[0].points] == square and read_face(path)[0].tobytes() == pixels
        labelled = c.get("/api/xseg/faces", params={"set": "dst/aligned", "filter": "labelled"}).json()["faces"]
        assert [f["name"] for f in labelled] == [name]
        unlabelled = c.get("/api/xseg/faces", params={"set": "dst/aligned", "filter": "unlabelled"}).json()["faces"]
        assert name not in [f["name"] for f in unlabelled] and len(unlabelled) == len(names) - 1
        assert c.get("/api/xseg/faces", params={"set": "dst/aligned", "filter": "masked"}).json()["faces"] == []

        # the pack: browsable, read-only with the note
        packed = c.get("/api/xseg/faces", params={"set": "packs/dst.fpack"}).json()
        assert packed["read_only"] and "read-only" in packed["note"] and len(packed["faces"]) == len(names)
        assert c.get("/api/xseg/image", params={"set": "packs/dst.fpack", "name": names[0]}).content == \
            (layout.dst_aligned / names[0]).read_bytes()  # the packed file, byte for byte
        before_pack = pack.read_bytes()
        refused = c.put("/api/xseg/polygons", json={"set": "packs/dst.fpack", "name": name,
                                                     "polygons": [{"kind": "include", "points": square}]})
        assert refused.status_code == 400 and "read-only" in refused.json()["detail"]
        assert pack.read_bytes() == before_pack
        assert c.post("/api/xseg/apply", json={"set": "packs/dst.fpack", "model": "xseg"}).status_code == 400

        # bad input: one-line message, nothing written, nothing started
        before = path.read_bytes()
        bad: list[tuple[str, str, dict[str, Any], int, str]] = [
            ("GET", "/api/xseg/faces", {"set": "../outside"}, 403, "'..'"),
            ("GET", "/api/xseg/faces", {"set": "/etc"}, 403, "absolute"),
            ("GET", "/api/xseg/face", {"set": "dst/aligned", "name": "../../studio.json"}, 404, "no face"),
            ("PUT", "/api/xseg/polygons", {"set": "dst/aligned", "name": name,
                                           "polygons": [{"kind": "include", "points": [[1, 2], [3, 4]]}]}, 400,
             "at least 3 points"),
            ("PUT", "/api/xseg/polygons", {"set": "dst/aligned", "name": name,
                                           "polygons": [{"kind": "keep", "points": square}]}, 400, "include"),
            ("PUT", "/api/xseg/polygons", {"set": "dst/aligned", "name": name,
                                           "polygons": [{"kind": "include", "points": [[0, 0], [9000, 0], [0, 9]]}]},
             400, "far outside"),
            ("PUT", "/api/xseg/polygons", {"set": "../x", "name": name, "polygons": []}, 403, "'..'"),
            ("POST", "/api/xseg/seed", {"set": "dst/aligned", "name": name, "model": "../m"}, 403, "'..'"),
            ("POST", "/api/xseg/seed", {"set": "dst/aligned", "name": name, "model": "model"}, 400, "XSeg"),
            ("POST", "/api/xseg/train", {"faces": ["dst/aligned"], "model": "xseg", "iterations": 2,
                                         "options": {"resolution": 128}}, 400, "resolution is fixed"),
            ("POST", "/api/xseg/train", {"faces": ["dst/aligned"], "model": "new", "iterations": 2,
                                         "options": {"batch_size": 0}}, 400, "batch_size"),
            ("POST", "/api/xseg/train", {"faces": ["dst/aligned"], "model": "new", "iterations": 2,
                                         "options": {"colour": 1}}, 400, "unknown XSeg option"),
            ("POST", "/api/xseg/train", {"faces": ["/tmp"], "model": "new", "iterations": 2}, 403, "absolute"),
            ("POST", "/api/xseg/train", {"faces": ["dst/aligned"], "model": "new"}, 400, "iterations or minutes"),
        ]
        for method, url, payload, status, text in bad:
            r = c.get(url, params=payload) if method == "GET" else c.request(method, url, json=payload)
            assert r.status_code == status, (url, payload, r.status_code, r.text)
            detail = r.json()["detail"]
            assert text in detail and "\n" not in detail, (url, detail)
        assert path.read_bytes() == before
        assert not (layout.root / "new").exists() and studio.ctx.jobs.last() is None


def test_seeded_polygons_match_the_model_mask(xseg_workspace: Layout, studio_server: Any) -> None:
    """Seeding traces the model's mask: IoU >= 0.9 (the filled polygons, as training rasterises them)."""
    model = load_xseg(xseg_workspace.root / "xseg")
    studio = studio_server(xseg_workspace)
    faces = scan_faces(xseg_workspace.dst_aligned).faces
    ious = []
    with _client(studio) as c:
        for path, rec in faces[::6]:
            out = c.post("/api/xseg/seed", json={"set": "dst/aligned", "name": path.name, "model": "xseg"})
            assert out.status_code == 200, out.text
            seeded = out.json()
            polys = [XSegPolygon(kind=p["kind"], points=[tuple(pt) for pt in p["points"]]) for p in seeded["polygons"]]
            assert polys and polys[0].kind == "include"
            predicted = model.predict([read_face(path)[0]], face_types=[rec.face_type])[0]
            iou = mask_iou(polygon_mask(polys, IDENTITY, rec.size), predicted)
            assert iou >= 0.9 and abs(iou - seeded["iou"]) < 1e-3, (path.name, iou, seeded)
            assert seeded["points"] < 4 * rec.size  # simplified, not every boundary pixel
            ious.append((round(iou, 4), seeded["points"]))
    # a mask with a hole and an island in it: include, exclude, include, in that order
    m = np.zeros((128, 128), np.float32)
    cv2.circle(m, (64, 64), 50, 1.0, -1)
    cv2.circle(m, (64, 64), 25, 0.0, -1)
    cv2.circle(m, (64, 64), 10, 1.0, -1)
    seed = seed_from_mask(m)
    assert [p.kind for p in seed.polygons] == ["include", "exclude", "include"] and seed.iou >= 0.95
    assert mask_iou(polygon_mask(seed.polygons, IDENTITY, 128), m) == pytest.approx(seed.iou)
    print(json.dumps({"seed_iou_points": ious}))


# ---- the page in a real browser ----------------------------------------------------------------------------------

def _screen(page: Any, pt: tuple[float, float]) -> tuple[float, float]:
    """Page coordinates of aligned-face point ``pt`` under the canvas's current view."""
    box = page.locator("#xs-canvas").bounding_box()
    view = page.eval_on_selector("#xs-canvas", "c => [Number(c.dataset.scale), Number(c.dataset.ox), "
                                 "Number(c.dataset.oy)]")
    s, ox, oy = view
    return box["x"] + (pt[0] + 0.5) * s + ox, box["y"] + (pt[1] + 0.5) * s + oy


def _face_at(page: Any, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#xs-canvas").bounding_box()
    s, ox, oy = page.eval_on_selector("#xs-canvas", "c => [Number(c.dataset.scale), Number(c.dataset.ox), "
                                      "Number(c.dataset.oy)]")
    return (x - box["x"] - ox) / s - 0.5, (y - box["y"] - oy) / s - 0.5


def _open(page: Any, studio: Any, query: str = "set=dst/aligned") -> None:
    page.goto(f"{studio.base}/xseg?token={studio.token}&{query}")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_selector("body[data-face]", timeout=30_000)


def test_draw_save_reload_and_train_from_the_page(xseg_workspace: Layout, tmp_path: Path, studio_server: Any,
                                                   browser_page: Any) -> None:
    layout = copy_workspace(xseg_workspace, tmp_path / "ws")
    shutil.rmtree(layout.root / "xseg")  # train a new model from the page
    studio = studio_server(layout)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _open(page, studio)
    name = page.evaluate("document.body.dataset.face")
    path = layout.dst_aligned / name
    size = read_record(path).size

    # zoom in at a point: the face point under the cursor stays there
    cx, cy = (round(v) for v in _screen(page, (64.0, 60.0)))  # mouse events carry whole CSS pixels
    under = _face_at(page, cx, cy)
    fitted = float(page.eval_on_selector("#xs-canvas", "c => c.dataset.scale"))
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"Number(document.getElementById('xs-canvas').dataset.scale) > {fitted * 1.4}",
                           timeout=5_000)
    fx, fy = _face_at(page, cx, cy)
    assert abs(fx - under[0]) < 0.01 and abs(fy - under[1]) < 0.01
    # pan with the middle button, then fit again
    page.mouse.down(button="middle")
    page.mouse.move(cx - 40, cy - 25, steps=3)
    page.mouse.up(button="middle")
    fx, fy = _face_at(page, cx - 40, cy - 25)
    assert abs(fx - under[0]) < 0.01 and abs(fy - under[1]) < 0.01
    page.keyboard.press("f")

    # click a polygon (the clicks land on fractional face pixels), close it on its first point
    wanted = [(30.3, 28.6), (97.2, 31.4), (101.7, 104.9), (64.4, 118.2), (27.8, 99.1)]
    clicks = [_screen(page, p) for p in wanted]
    for x, y in clicks:
        page.mouse.click(x, y)
    page.mouse.click(*clicks[0])
    assert page.eval_on_selector("#xs-canvas", "c => c.dataset.polygons") == "1"
    # drag the third point, then undo and redo the drag
    moved = (108.6, 96.3)
    page.mouse.move(*clicks[2])
    page.mouse.down()
    page.mouse.move(*_screen(page, moved), steps=4)
    page.mouse.up()
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+y")
    wanted[2] = moved
    # insert a point on the edge between the first two points, dragged outward
    mid = ((wanted[0][0] + wanted[1][0]) / 2, (wanted[0][1] + wanted[1][1]) / 2)
    inserted = (mid[0] + 0.4, mid[1] - 6.2)
    page.mouse.move(*_screen(page, mid))
    page.mouse.down()
    page.mouse.move(*_screen(page, inserted), steps=3)
    page.mouse.up()
    wanted.insert(1, inserted)
    # an extra point deleted with a right click
    page.keyboard.press("e")
    for p in [(50.0, 60.0), (70.0, 60.0), (60.0, 80.0), (58.0, 70.0)]:
        page.mouse.click(*_screen(page, p))
    page.mouse.click(*_screen(page, (58.0, 70.0)), button="right")
    page.keyboard.press("Enter")
    exclude = [(50.0, 60.0), (70.0, 60.0), (60.0, 80.0)]
    assert page.eval_on_selector("#xs-canvas", "c => c.dataset.polygons") == "2"
    # a third polygon (Tab back to include), deleted whole with Shift+Delete under the cursor
    page.keyboard.press("Tab")
    for p in [(8.0, 8.0), (24.0, 9.0), (14.0, 22.0)]:
        page.mouse.click(*_screen(page, p))
    page.keyboard.press("Enter")
    assert page.eval_on_selector("#xs-canvas", "c => c.dataset.polygons") == "3"
    assert "drawing include" in page.locator("#xs-facehead").inner_text()
    page.mouse.move(*_screen(page, (15.0, 13.0)))
    page.keyboard.press("Shift+Delete")
    assert page.eval_on_selector("#xs-canvas", "c => c.dataset.polygons") == "2"
    page.keyboard.press("s")
    page.wait_for_selector("body[data-saved='1'][data-dirty='0']", timeout=10_000)

    def check(rec_polys: list[XSegPolygon]) -> None:
        assert [p.kind for p in rec_polys] == ["include", "exclude"]
        for poly, expect in zip(rec_polys, [wanted, exclude], strict=True):
            got = np.array(poly.points)
            assert got.shape == (len(expect), 2), got
            assert np.abs(got - np.array(expect)).max() <= 1.0, (got, expect)

    rec = read_record(path)
    check(rec.xseg_polygons)
    assert read_record(path).size == size

    # a reload shows the saved polygons
    _open(page, studio)
    assert page.evaluate("document.body.dataset.face") == name
    assert page.eval_on_selector("#xs-canvas", "c => c.dataset.polygons") == "2"
    assert "2 polygon(s)" in page.locator("#xs-facehead").inner_text()
    page.select_option("#xs-filter", "labelled")
    page.wait_for_function("document.querySelectorAll('#xs-grid .xs-thumb').length === 1", timeout=10_000)

    # train from the page: `facelab xseg train` on the labelled face, progress and preview shown
    page.fill("#xs-iterations", "4")
    page.locator("#xs-options-box summary").click()
    for opt, value in [("resolution", "64"), ("base_channels", "4"), ("batch_size", "2"), ("save_every", "2")]:
        page.fill(f"#xs-options [data-opt={opt}]", value)
        page.dispatch_event(f"#xs-options [data-opt={opt}]", "change")
    page.locator("#xs-train").click()
    page.wait_for_selector("body[data-job='xseg-train:done']", timeout=180_000)
    job = studio.ctx.jobs.wait(timeout=60)
    assert job is not None and job.state == "done" and job.args[:2] == ["xseg", "train"]
    assert job.progress is not None and job.progress["done"] == job.progress["total"] == 4  # the job's progress
    log = " ".join((layout.root / job.log).read_text().split())
    assert "1 labelled faces" in log, log
    state = json.loads((layout.root / "xseg" / "state.json").read_text())
    assert state["iteration"] == 4
    page.wait_for_function("document.getElementById('xs-preview').naturalWidth > 0", timeout=15_000)
    page.wait_for_function("document.getElementById('xs-model-state').textContent.includes('iteration 4')",
                           timeout=15_000)
    # the model was trained on exactly the drawn polygons
    from facelab.xseg.labels import label_mask
    from facelab.xseg.train import load_labelled
    trained = load_labelled([layout.dst_aligned])
    assert len(trained) == 1 and np.array_equal(trained[0].mask, label_mask(read_record(path), path))
    assert errors == []


def test_seed_copy_apply_and_overlay_in_the_page(xseg_workspace: Layout, tmp_path: Path, studio_server: Any,
                                                 browser_page: Any) -> None:
    layout = copy_workspace(xseg_workspace, tmp_path / "ws")
    studio = studio_server(layout)
    page = browser_page
    page.set_viewport_size({"width": 1500, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _open(page, studio)
    first = page.evaluate("document.body.dataset.face")

    # seed from the model, save: the stored polygons fill the model's mask (IoU >= 0.9)
    page.keyboard.press("m")
    page.wait_for_selector("body[data-seeded]", timeout=30_000)
    page.keyboard.press("s")
    page.wait_for_selector("body[data-saved='1'][data-dirty='0']", timeout=10_000)
    path = layout.dst_aligned / first
    image, rec = read_face(path)
    predicted = load_xseg(layout.root / "xseg").predict([image], face_types=[rec.face_type])[0]
    assert rec.xseg_polygons and mask_iou(polygon_mask(rec.xseg_polygons, IDENTITY, rec.size), predicted) >= 0.9

    # next face, copy the previous one's polygons: mapped aligned -> frame -> aligned
    page.keyboard.press("d")
    page.wait_for_function(f"document.body.dataset.face !== {json.dumps(first)}", timeout=10_000)
    second = page.evaluate("document.body.dataset.face")
    page.keyboard.press("c")
    page.wait_for_function("document.getElementById('xs-canvas').dataset.polygons !== '0'", timeout=10_000)
    page.keyboard.press("Control+s")
    page.wait_for_selector("body[data-saved='2'][data-dirty='0']", timeout=10_000)
    rec2 = read_record(layout.dst_aligned / second)
    for a, b in zip(rec.xseg_polygons, rec2.xseg_polygons, strict=True):
        expect = transform_points(transform_points(np.array(a.points), rec.inverse_affine()), rec2.affine())
        assert a.kind == b.kind and np.abs(np.array(b.points) - expect).max() < 0.01

    # apply the model to the faceset from the page: every face gets a stored mask
    page.locator("#xs-apply").click()
    page.wait_for_selector("body[data-job='xseg-apply:done']", timeout=180_000)
    faces = scan_faces(layout.dst_aligned).faces
    assert faces and all(r.xseg_mask is not None for _, r in faces)
    page.select_option("#xs-filter", "masked")
    page.wait_for_function(f"document.querySelectorAll('#xs-grid .xs-thumb').length === {len(faces)}",
                           timeout=10_000)
    page.select_option("#xs-overlay", "stored")
    page.wait_for_selector("body[data-overlay='stored']", timeout=10_000)
    page.select_option("#xs-overlay", "model")
    page.wait_for_selector("body[data-overlay='model']", timeout=10_000)
    page.fill("#xs-opacity", "35")
    page.keyboard.press("a")
    page.wait_for_function(f"document.body.dataset.face === {json.dumps(first)}", timeout=10_000)
    page.wait_for_timeout(300)
    screenshot(page, "xseg")
    assert errors == []
