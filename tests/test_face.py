"""Face primitives on real faces: detection, landmarks, alignment, masks, pose, identity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.core.geometry import invert_affine, transform_points, umeyama
from facelab.face.align import FACE_TYPE_ORDER, check_size, convert_transform, face_transform, warp_face
from facelab.face.detect import create_detector
from facelab.face.identity import SAME_PERSON_THRESHOLD, create_embedder, distance
from facelab.face.landmarks import create_landmarker
from facelab.face.masks import eyes_mouth_mask, face_hull_mask
from facelab.face.pose import estimate_pose
from facelab.face.types import eye_centers
from tests.conftest import SAMPLES, read_rgb, shared_file


def test_umeyama_recovers_similarity() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 2)) * 50
    ang, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = (src @ rot.T) * s + t
    m = umeyama(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    back = transform_points(transform_points(src, m), invert_affine(m))
    np.testing.assert_allclose(back, src, atol=1e-9)


@pytest.fixture(scope="module")
def frontal(sample_frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    img = sample_frames[10]
    box = create_detector("dlib").detect(img)[0]
    lm, used = create_landmarker("dlib").landmarks(img, box)
    assert used == "dlib"
    return img, lm


@pytest.mark.parametrize("name", ["dlib", "blazeface"])
def test_detectors_find_the_face(name: str, sample_frames: list[np.ndarray]) -> None:
    det = create_detector(name)
    for img in sample_frames[::10]:
        boxes = det.detect(img)
        assert len(boxes) == 1
        b = boxes[0]
        # the bundled dst clip: one man, face roughly in the middle third of the 480x480 frame
        assert 100 < b.width < 350 and 100 < (b.left + b.right) / 2 < 380 and 150 < (b.top + b.bottom) / 2 < 400


def test_blazeface_boxes_feed_the_landmark_predictor(sample_frames: list[np.ndarray]) -> None:
    img = sample_frames[0]
    lmk = create_landmarker("dlib")
    a, _ = lmk.landmarks(img, create_detector("dlib").detect(img)[0])
    b, _ = lmk.landmarks(img, create_detector("blazeface").detect(img)[0])
    iod = np.linalg.norm(np.subtract(*eye_centers(a)))
    assert np.linalg.norm(a - b, axis=1).mean() < 0.05 * iod


def test_facemesh_landmarks_agree_with_dlib_on_a_frontal_face(frontal: tuple[np.ndarray, np.ndarray]) -> None:
    img, lm = frontal
    box = create_detector("dlib").detect(img)[0]
    mesh, used = create_landmarker("facemesh").landmarks(img, box)
    assert used == "facemesh" and mesh.shape == (68, 2)
    iod = np.linalg.norm(np.subtract(*eye_centers(lm)))
    # the 468->68 mapping is fitted on frontal faces: mean disagreement well under a tenth of the eye distance
    assert np.linalg.norm(mesh - lm, axis=1).mean() < 0.1 * iod


def test_auto_landmarks_switch_to_the_mesh_at_large_yaw() -> None:
    img = read_rgb(shared_file("images/3ddfa_emma_input.jpg"))  # three panels, the right one turned away
    box = max(create_detector("blazeface").detect(img), key=lambda b: b.left)
    lm, used = create_landmarker("auto").landmarks(img, box)
    assert used == "facemesh"
    assert abs(estimate_pose(lm, (img.shape[1], img.shape[0])).yaw) > 40


def test_auto_landmarks_agree_across_detectors_on_a_three_quarter_view() -> None:
    img = read_rgb(shared_file("images/lp_s10.jpg"))  # a painting, face turned about 25 degrees
    size = (img.shape[1], img.shape[0])
    auto = create_landmarker("auto")
    yaws = [estimate_pose(auto.landmarks(img, create_detector(d).detect(img)[0])[0], size).yaw
            for d in ("dlib", "blazeface")]
    assert abs(yaws[0]) > 15 and abs(yaws[0] - yaws[1]) < 8


def test_alignment_every_face_type_and_size(frontal: tuple[np.ndarray, np.ndarray]) -> None:
    img, lm = frontal
    widths = []
    for ft in FACE_TYPE_ORDER:
        for size in (64, 256, 1024):
            m = face_transform(lm, ft, size)
            face = warp_face(img, m, size)
            assert face.shape == (size, size, 3)
            alm = transform_points(lm, m)
            # eyes level and centred horizontally in every crop
            r, le = eye_centers(alm)
            assert abs(r[1] - le[1]) < 0.03 * size
            assert abs((r[0] + le[0]) / 2 - size / 2) < 0.05 * size
        widths.append(np.linalg.norm(np.subtract(*eye_centers(transform_points(lm, face_transform(lm, ft, 256))))))
    # larger face types show more around the face: the eyes get smaller in the crop, type by type
    assert all(a > b for a, b in itertools.pairwise(widths))
    with pytest.raises(InputError):
        check_size(32)


def test_convert_transform_matches_direct_alignment(frontal: tuple[np.ndarray, np.ndarray]) -> None:
    _, lm = frontal
    m = face_transform(lm, "whole_face", 256)
    conv = convert_transform(m, "whole_face", 256, "full", 128)
    np.testing.assert_allclose(conv, face_transform(lm, "full", 128), atol=1e-9)


def test_masks(frontal: tuple[np.ndarray, np.ndarray]) -> None:
    img, lm = frontal
    shape = img.shape[:2]
    full = face_hull_mask(lm, shape, "full")
    whole = face_hull_mask(lm, shape, "whole_face")
    brow_y = lm[17:27, 1].min()
    assert whole.sum() > full.sum() * 1.15
    assert full[: int(brow_y) - 5].sum() == 0  # full stops at the brows
    assert whole[: int(brow_y) - 5].sum() > 0.1 * whole.sum()  # whole_face reaches over the forehead
    em = eyes_mouth_mask(lm, shape)
    for c in (*eye_centers(lm), lm[48:60].mean(axis=0)):
        assert em[int(c[1]), int(c[0])] == 1.0
    assert em[int(lm[30, 1]), int(lm[30, 0])] == 0.0  # nose tip is outside
    assert 0 < em.sum() < 0.4 * full.sum()


def test_pose_sign_and_mirror(frontal: tuple[np.ndarray, np.ndarray]) -> None:
    img, lm = frontal
    h, w = img.shape[:2]
    p = estimate_pose(lm, (w, h))
    assert abs(p.yaw) < 15 and abs(p.pitch) < 20 and abs(p.roll) < 10
    mirrored = lm.copy()
    mirrored[:, 0] = w - 1 - mirrored[:, 0]
    # mirror the point order too (the iBUG layout is left/right specific)
    order = list(range(16, -1, -1)) + list(range(26, 16, -1)) + list(range(27, 31)) + list(range(35, 30, -1)) \
        + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] \
        + [64, 63, 62, 61, 60, 67, 66, 65]
    q = estimate_pose(mirrored[order], (w, h))
    assert q.yaw == pytest.approx(-p.yaw, abs=1.0)
    assert q.roll == pytest.approx(-p.roll, abs=1.0)


def test_pose_follows_a_head_turn() -> None:
    from facelab.media.video import iter_frames

    det, lmk = create_detector("dlib"), create_landmarker("dlib")
    yaws = []
    for i, img in iter_frames(shared_file("clips/3ddfa_obama.mp4")):
        if i in (8, 48):  # looking to one side, then to the other (seen in the clip)
            box = det.detect(img)[0]
            yaws.append(estimate_pose(lmk.landmarks(img, box)[0], (img.shape[1], img.shape[0])).yaw)
    assert yaws[0] < -15 and yaws[1] > 15


def test_identity_separates_people() -> None:
    det, lmk, emb = create_detector("dlib"), create_landmarker("dlib"), create_embedder()

    def embed(img: np.ndarray) -> np.ndarray:
        box = det.detect(img)[0]
        return emb.embed(img, lmk.landmarks(img, box)[0])

    obama = read_rgb(SAMPLES / "fr_obama.jpg")
    biden = read_rgb(SAMPLES / "fr_biden.jpg")
    e_o, e_b = embed(obama), embed(biden)
    e_o2 = embed(np.ascontiguousarray(obama[:, ::-1]))  # the same person, mirrored
    assert e_o.shape == (128,)
    assert distance(e_o, e_o2) < SAME_PERSON_THRESHOLD
    assert distance(e_o, e_b) > SAME_PERSON_THRESHOLD
