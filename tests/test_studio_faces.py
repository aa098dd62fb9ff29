"""The studio's face fixing page: faces written by hand are the faces extraction writes; the suspicious list;
bad input changes nothing; in the browser, a box placed with the mouse on a frame whose face was removed gives
landmarks within 5% of the inter-ocular distance of the extraction's, and `facelab merge` then swaps that frame."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.extract.analyze import DetectedFace, FrameAnalyzer
from facelab.extract.manual import delete_face, folder_options, frame_faces, journal_path, read_journal, save_face
from facelab.face.types import FaceBox
from facelab.faceset.record import XSegPolygon, read_face, read_record, update_record
from facelab.media.frames import list_frames, read_image_rgb
from facelab.studio.face_fix.suspicious import FaceInfo, check_frames, mean_error_iod
from tests.studio_support import NO_FACE_FRAMES, copy_workspace, screenshot

TOL_IOD = 0.05


def _original(layout: Any, stem: str) -> dict[str, Any]:
    """The face extraction found in frame ``stem`` (the journal's first entry: the studio workspace removed the
    face files of NO_FACE_FRAMES, not their journal entries)."""
    path = journal_path(layout.dst_aligned)
    from facelab.core.journal import Journal
    from facelab.extract.journal import JOURNAL_NAME

    entry = Journal(path, JOURNAL_NAME).history[stem][0]
    assert entry["faces"], f"extraction found no face in {stem}"
    face: dict[str, Any] = entry["faces"][0]
    return face


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_manual_face_is_the_extracted_face(studio_workspace: Any, tmp_path: Path) -> None:
    """Library level: save_face from a face's own box and landmarks writes the very file extraction wrote (pixels
    and record); a box placed on a frame without a face gives the extraction's landmarks within 5% IOD; the
    journal and the summary follow; a replaced face keeps its XSeg polygons (moved through the frame)."""
    layout = copy_workspace(studio_workspace, tmp_path / "ws")
    aligned = layout.dst_aligned
    opts = folder_options(aligned)
    assert (opts.face_type, opts.size, opts.image_format, opts.landmarks) == ("full", 128, "jpg", "auto")
    frames = list_frames(layout.dst_frames)

    # an existing face, written again from its record's box and landmarks: the same file
    path, rec = frame_faces(aligned, "000020")[0]
    before_img, before_rec = read_face(path)
    score = read_journal(aligned)["000020"]["faces"][0]["score"]
    image = read_image_rgb(frames[20])
    face = DetectedFace(FaceBox(*rec.rect, score, rec.detector), rec.source_landmarks_array(), rec.landmarker)
    written = save_face(aligned, image, "000020", 20, face, opts, face_index=0)
    assert written == path
    after_img, after_rec = read_face(path)
    assert after_rec == before_rec
    assert np.array_equal(after_img, before_img)

    # frame 000010 lost its face: the landmark model in the box extraction had found gives its landmarks back
    stem = NO_FACE_FRAMES[0]
    orig = _original(layout, stem)
    assert frame_faces(aligned, stem) == []
    analyzer = FrameAnalyzer(opts)
    image = read_image_rgb(frames[10])
    rect = orig["rect"]
    placed = FaceBox(rect[0] + 6, rect[1] - 5, rect[2] - 4, rect[3] + 7, 1.0, "manual")  # a box roughly as drawn
    found = analyzer.face_in_box(image, placed)
    assert found is not None
    written = save_face(aligned, image, stem, 10, found, opts)
    assert written.name == f"{stem}_0.jpg"
    rec = read_record(written)
    err = mean_error_iod(rec.source_landmarks_array(), np.array(orig["landmarks"]))
    assert err < TOL_IOD, err
    assert (rec.source.frame, rec.source.index, rec.face_type, rec.size) == (stem, 10, "full", 128)
    assert rec.detector == "manual"
    entry = read_journal(aligned)[stem]
    assert entry["manual"] is True and [f["file"] for f in entry["faces"]] == [written.name]

    # XSeg polygons of a replaced face are carried over through the frame
    poly = [(30.0, 30.0), (90.0, 30.0), (60.0, 100.0)]
    update_record(written, rec.model_copy(update={"xseg_polygons": [XSegPolygon(kind="include", points=poly)]}))
    shifted = DetectedFace(found.box, found.landmarks + np.array([4.0, -3.0]), found.landmarker)
    save_face(aligned, image, stem, 10, shifted, opts, face_index=0)
    rec2 = read_record(written)
    assert len(rec2.xseg_polygons) == 1
    in_frame = [tuple(rec.inverse_affine() @ np.array([x, y, 1.0])) for x, y in poly]
    back = [tuple(rec2.inverse_affine() @ np.array([x, y, 1.0])) for x, y in rec2.xseg_polygons[0].points]
    assert np.allclose(in_frame, back, atol=1e-6)

    # a false detection removed: the file, the journal's faces and the summary's list
    removed = delete_face(aligned, "000005", 0)
    assert not removed.exists() and frame_faces(aligned, "000005") == []
    assert read_journal(aligned)["000005"]["faces"] == []
    assert "000005" in (aligned / "_extract" / "frames_without_faces.txt").read_text().split()
    with pytest.raises(InputError, match="has no face 3"):
        delete_face(aligned, "000006", 3)


def test_suspicious_frames(studio_workspace: Any) -> None:
    """No face, a low detector score and a one-frame landmark glitch are flagged with the reason; the clip's
    own faces are not."""
    journal = read_journal(studio_workspace.dst_aligned)
    stems = sorted(journal, key=lambda s: int(journal[s]["index"]))
    faces = {s: [FaceInfo(0, np.array(f["landmarks"]), f["score"], f["detector"]) for f in journal[s]["faces"]]
             for s in stems}
    assert not any(c.reasons for c in check_frames(stems, faces))  # the extracted clip: nothing suspicious
    faces["000003"] = []
    faces["000020"][0].score = 0.2
    glitch = faces["000030"][0].landmarks.copy()
    glitch[0:17] += np.array([50.0, 20.0])  # the jaw line thrown off in one frame, the rest a little
    glitch[17:] += np.array([8.0, 5.0])
    faces["000030"] = [FaceInfo(0, glitch, 1.5, "dlib")]
    checks = {c.stem: c for c in check_frames(stems, faces)}
    flagged = {s: [r.kind for r in c.reasons] for s, c in checks.items() if c.reasons}
    assert flagged == {"000003": ["no_face"], "000020": ["low_score"], "000030": ["jump"]}
    assert "low dlib score 0.20" in checks["000020"].reasons[0].text
    assert "IOD" in checks["000030"].reasons[0].text


def test_faces_api_bad_input_changes_nothing(studio_workspace: Any, studio_server: Any, tmp_path: Path) -> None:
    layout = copy_workspace(studio_workspace, tmp_path / "ws")
    s = studio_server(layout)
    before = _tree(layout.root)
    with httpx.Client(base_url=s.base, headers=s.headers, timeout=60) as c:
        over = c.get("/api/faces/frames").json()
        assert over["count"] == 44 and over["no_face"] == [10, 11]
        assert [r["i"] for r in over["suspicious"]] == [10, 11]
        assert over["suspicious"][0]["reasons"][0]["text"] == "no face"
        fr = c.get("/api/faces/frames/12").json()
        assert fr["stem"] == "000012" and len(fr["faces"]) == 1 and len(fr["faces"][0]["landmarks"]) == 68
        assert c.get("/api/faces/frames/12/image").content[:4] == b"\x89PNG"
        cases = [
            (c.post("/api/faces/frames/10/save", json={"box": [500, 10, 600, 120]}), 400, "outside the frame"),
            (c.post("/api/faces/frames/10/save", json={"box": [-300, -300, -100, -100]}), 400, "outside the frame"),
            (c.post("/api/faces/frames/10/fit", json={"box": [10, 10, 12, 12]}), 400, "too small"),
            (c.post("/api/faces/frames/44/save", json={"box": [100, 100, 300, 300]}), 404, "past the end"),
            (c.get("/api/faces/frames/99"), 404, "past the end"),
            (c.post("/api/faces/frames/12/save", json={"face_index": 4, "box": [100, 100, 300, 300]}), 400,
             "has no face 4"),
            (c.post("/api/faces/frames/12/save", json={"box": [100, 100, 300, 300], "landmarks": [[1, 2]] * 5}), 400,
             "68 finite"),
            (c.post("/api/faces/frames/12/save", json={"box": [100, 100, 300, 300], "detector": "x"}), 422,
             "unknown detector"),
            (c.delete("/api/faces/frames/10/faces/0"), 400, "has no face 0"),
            (c.post("/api/faces/frames/11/track", json={"source": 10, "face_index": 0}), 400, "has no face 0"),
            (c.get("/api/faces/aligned", params={"path": "../outside.jpg"}), 403, "'..'"),
            (c.get("/api/faces/aligned", params={"path": "/etc/passwd"}), 403, "absolute"),
            (c.get("/api/faces/aligned", params={"path": "src/aligned/" + sorted(
                p.name for p in layout.src_aligned.glob("*.jpg"))[0]}), 403, "only the dst faces"),
        ]
        for r, code, text in cases:
            assert r.status_code == code, (r.status_code, r.text)
            detail = r.json()["detail"]
            assert text in detail and "\n" not in detail, detail
        assert _tree(layout.root) == before  # nothing written
        name = f"dst/aligned/{fr['faces'][0]['file'].split('/')[-1]}"
        assert c.get("/api/faces/aligned", params={"path": name}).status_code == 200

        # tracking into a frame without a face: the neighbour's face followed by the detector
        tr = c.post("/api/faces/frames/11/track", json={"source": 12, "face_index": 0}).json()
        assert tr["tracked"] is True and len(tr["landmarks"]) == 68
        assert mean_error_iod(np.array(tr["landmarks"]), np.array(_original(layout, "000011")["landmarks"])) < TOL_IOD
        # delete a (pretend) false detection: merge will pass the frame through
        r = c.delete("/api/faces/frames/5/faces/0")
        assert r.status_code == 200 and r.json()["faces"] == []
        assert 5 in c.get("/api/faces/frames").json()["no_face"]


def test_place_box_in_browser_then_merge_swaps(studio_workspace: Any, studio_server: Any, browser_page: Any,
                                              tmp_path: Path) -> None:
    """The issue's check: on a dst frame whose face was removed, a box dragged with the mouse and saved gives an
    aligned face whose landmarks are within 5% IOD of the extraction's, and `facelab merge` swaps the frame."""
    layout = copy_workspace(studio_workspace, tmp_path / "ws")
    stem = NO_FACE_FRAMES[0]
    orig = _original(layout, stem)
    s = studio_server(layout)
    page = browser_page
    page.goto(s.url)
    page.goto(f"{s.base}/faces")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    # the page opens on the first suspicious frame: 000010, listed as "no face"
    assert page.inner_text("#fx-frame-label").endswith(stem)
    assert "no face" in page.inner_text("#fx-list")
    assert page.inner_text("#fx-faces") == "no face"

    # drag a box around the face (roughly where extraction's detector had it) with mouse events
    box = page.locator("#fx-canvas").bounding_box()
    width = page.evaluate("document.getElementById('fx-canvas').width")
    k = box["width"] / width
    left, top, right, bottom = orig["rect"]
    x0, y0 = box["x"] + (left + 5) * k, box["y"] + (top - 4) * k
    x1, y1 = box["x"] + (right - 3) * k, box["y"] + (bottom + 6) * k
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()
    page.wait_for_function("document.getElementById('fx-status').textContent.includes('unsaved')", timeout=60_000)
    page.keyboard.press("s")
    page.wait_for_function("document.getElementById('fx-status').textContent.startsWith('saved')", timeout=60_000)
    assert page.inner_text("#fx-faces") == "1 face"
    assert "000010" not in page.inner_text("#fx-list")  # off the no-face list
    screenshot(page, "faces")

    files = frame_faces(layout.dst_aligned, stem)
    assert len(files) == 1
    path, rec = files[0]
    assert path.name == f"{stem}_0.jpg" and rec.source.index == 10
    err = mean_error_iod(rec.source_landmarks_array(), np.array(orig["landmarks"]))
    assert err < TOL_IOD, f"landmarks {err:.3f} IOD from the extraction's"
    with httpx.Client(base_url=s.base, headers=s.headers, timeout=60) as c:
        assert c.get("/api/faces/frames").json()["no_face"] == [11]

    # a point moved by hand on another frame: the saved face has it where it was dropped
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.getElementById('fx-frame-label').textContent.endsWith('000012')")
    page.wait_for_selector(".face-row.selected")
    before = frame_faces(layout.dst_aligned, "000012")[0][1].source_landmarks_array()
    px, py = before[8]
    target = (px + 9.0, py + 6.0)
    page.mouse.move(box["x"] + px * k, box["y"] + py * k)
    page.mouse.down()
    page.mouse.move(box["x"] + target[0] * k, box["y"] + target[1] * k, steps=5)
    page.mouse.up()
    page.wait_for_function("document.getElementById('fx-status').textContent.includes('point 8 moved')")
    page.click("#fx-save")
    page.wait_for_function("document.getElementById('fx-status').textContent.startsWith('saved')", timeout=60_000)
    moved = read_record(frame_faces(layout.dst_aligned, "000012")[0][0])
    pts = moved.source_landmarks_array()
    assert np.hypot(*(pts[8] - np.array(target))) < 1.5 / k + 0.5
    assert np.allclose(np.delete(pts, 8, axis=0), np.delete(before, 8, axis=0), atol=1e-3)
    assert moved.landmarker.endswith("+edited")

    # `facelab merge` (the command the studio's merge step runs) now swaps that frame
    from facelab.studio.workspace import step_command

    args = step_command(layout, "merge", {})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "facelab", *args, "--workers", "2"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dst = read_image_rgb(list_frames(layout.dst_frames)[10]).astype(np.int16)
    merged = read_image_rgb(next(layout.merged.glob(f"{stem}.*"))).astype(np.int16)
    x0, y0, x1, y1 = (round(v) for v in rec.rect)
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
    assert np.abs(merged[inner] - dst[inner]).mean() > 3.0  # swapped inside the face
    other = read_image_rgb(next(layout.merged.glob(f"{NO_FACE_FRAMES[1]}.*"))).astype(np.int16)
    assert np.array_equal(other, read_image_rgb(list_frames(layout.dst_frames)[11]).astype(np.int16))  # passed through
