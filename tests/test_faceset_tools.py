"""faceset info, coverage, resize and metadata export/import on the bundled faces (whole_face, 128 px)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.core.geometry import transform_points
from facelab.face.align import warp_face
from facelab.face.expression import MOUTH_BIN_EDGES, mouth_opening
from facelab.face.pose import estimate_pose
from facelab.faceset.coverage import (
    GAP_DST_FACES,
    GAP_DST_SHARE,
    GAP_SRC_FACES,
    GAP_SRC_SHARE,
    REACH_MARGIN,
    YAW_EDGES,
    Bin,
    faceset_coverage,
    store_coverage,
)
from facelab.faceset.folder import list_face_files, scan_faces
from facelab.faceset.info import faceset_info, pose_histogram, write_pose_histogram
from facelab.faceset.metadata_io import export_metadata, import_metadata, read_export
from facelab.faceset.pack import pack_faceset
from facelab.faceset.record import NotAFaceError, XSegPolygon, read_face, read_record, update_record
from facelab.faceset.resize import resize_faceset
from facelab.faceset.store import open_store
from facelab.media.video import iter_frames
from tests.conftest import SAMPLES


@pytest.fixture()
def faces(sample_faces: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the dst faces plus a foreign image."""
    folder = tmp_path / "faces"
    shutil.copytree(sample_faces[1], folder, ignore=shutil.ignore_patterns("_extract"))
    cv2.imwrite(str(folder / "zz_photo.png"), np.full((50, 60, 3), 200, np.uint8))
    return folder


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facelab.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_info_folder_and_pack(faces: Path, tmp_path: Path) -> None:
    scan = scan_faces(faces)
    info = faceset_info(faces)
    assert info.kind == "folder" and info.count == len(scan.faces) > 20
    assert info.face_types == {"whole_face": info.count} and info.sizes == {128: info.count}
    assert [p.name for p in info.foreign] == ["zz_photo.png"]
    assert info.bytes == sum(p.stat().st_size for p, _ in scan.faces)
    yaws = [r.pose.yaw for _, r in scan.faces if r.pose is not None]
    assert info.with_pose == len(yaws) and info.yaw_range == (round(min(yaws), 2), round(max(yaws), 2))
    hist = pose_histogram(info.yaws, info.pitches)
    assert sum(hist["yaw"]) == sum(hist["pitch"]) == info.with_pose and len(hist["yaw"]) == 36
    png = tmp_path / "hist.png"
    write_pose_histogram(info, png)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 760 and (img < 128).any()
    pack = tmp_path / "faces.fpack"
    pack_faceset(faces, pack)
    packed = faceset_info(pack)
    assert packed.kind == "pack" and packed.to_dict() | {"location": "", "kind": "", "foreign": []} == \
        info.to_dict() | {"location": "", "kind": "", "foreign": []}
    with pytest.raises(InputError, match=r"\.png"):
        write_pose_histogram(info, tmp_path / "hist.jpg")


def _bin_counts(folder: Path) -> tuple[list[int], list[int]]:
    """Mouth-opening and yaw bin counts of a faceset, counted here from each face's own record."""
    records = [r for _, r in scan_faces(folder).faces]
    mouth = [0] * (len(MOUTH_BIN_EDGES) + 1)
    yaw = [0] * (len(YAW_EDGES) + 1)
    for r in records:
        opening = mouth_opening(r.landmarks_array())
        mouth[sum(opening >= e for e in MOUTH_BIN_EDGES)] += 1
        if r.pose is not None:
            yaw[sum(r.pose.yaw >= e for e in YAW_EDGES)] += 1
    return mouth, yaw


def test_coverage_counts_each_sides_mouths_and_yaws_and_names_the_gaps(sample_faces: tuple[Path, Path],
                                                                       tmp_path: Path) -> None:
    src, dst = sample_faces  # the demo pair: the woman talks with her mouth half open, the man often shuts it
    cov = faceset_coverage(src, dst, mirror_src=False)
    for side, folder in (("src", src), ("dst", dst)):
        mouth, yaw = _bin_counts(folder)
        assert [getattr(b, side) for b in cov.mouth] == mouth and sum(mouth) == getattr(cov, f"{side}_faces") > 30
        assert [getattr(b, side) for b in cov.yaw] == yaw and sum(yaw) == getattr(cov, f"{side}_posed") > 30
    # training flips src at random (its default): src's yaws then count on both sides, half a face each
    mirrored = faceset_coverage(src, dst)
    yaw_src = _bin_counts(src)[1]
    assert [b.src_share for b in mirrored.yaw] == pytest.approx(
        [(a + b) / 2 / cov.src_faces for a, b in zip(yaw_src, yaw_src[::-1], strict=True)])
    assert [b.dst for b in mirrored.yaw] == [b.dst for b in cov.yaw] and mirrored.mouth == cov.mouth
    assert abs(sum(b.src_share for b in cov.mouth) - 1) < 1e-9 and abs(sum(b.dst_share for b in cov.mouth) - 1) < 1e-9
    # the woman as dst, the man as src: she is slightly open far more often than he ever is
    back = faceset_coverage(dst, src)
    slightly = back.mouth[1]
    assert slightly.name == "slightly open" and slightly.dst_share >= GAP_DST_SHARE and slightly.gap
    assert slightly.src < GAP_SRC_FACES or slightly.src_share < GAP_SRC_SHARE
    assert any("slightly open" in line and "src in" in line for line in back.gaps())
    assert all(b.gap == (b.dst_share >= GAP_DST_SHARE and b.dst >= GAP_DST_FACES
                         and (b.src_share < GAP_SRC_SHARE or b.src < GAP_SRC_FACES)) for b in back.mouth + back.yaw)
    # packs read the same as folders
    pack = tmp_path / "man.fpack"
    pack_faceset(dst, pack)
    assert faceset_coverage(pack, src).to_dict() | {"src": ""} == back.to_dict() | {"src": ""}
    out = _cli("faceset", "coverage", dst, src, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["gaps"] == back.gaps() and [r["dst"] for r in data["mouth"]] == [b.dst for b in back.mouth]
    text = _cli("faceset", "coverage", dst, src)
    assert text.returncode == 0 and "<- gap" in text.stdout and "slightly open" in text.stdout
    missing = _cli("faceset", "coverage", tmp_path / "nothing", src)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "nothing" in missing.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no faces"):
        faceset_coverage(tmp_path / "empty", src)


def test_coverage_leaves_yaw_out_when_one_side_has_no_pose(sample_faces: tuple[Path, Path]) -> None:
    src, dst = (open_store(p) for p in sample_faces)
    try:
        posed = store_coverage(src, dst, sample_faces[0], sample_faces[1])
        src.yaws = np.full(len(src), np.nan)  # as faces imported without a pose
        unposed = store_coverage(src, dst, sample_faces[0], sample_faces[1])
    finally:
        src.close()
        dst.close()
    assert posed.yaw and unposed.yaw == () and unposed.mouth == posed.mouth
    assert [r.name for r in posed.reach] == ["yaw", "pitch"] and [r.name for r in unposed.reach] == ["pitch"]
    assert unposed.src_posed == 0 and unposed.dst_posed == posed.dst_posed == posed.dst_faces
    assert not any("yaw" in line for line in unposed.gaps())
    assert faceset_coverage(sample_faces[0], sample_faces[1]).yaw  # both sides posed: compared


def test_coverage_names_head_turns_and_tilts_beyond_src_s_reach(sample_faces: tuple[Path, Path]) -> None:
    """Reach: dst faces more than REACH_MARGIN degrees beyond src's farthest yaw (mirrored) or pitch; the demo
    pair has none, a dst turned further than src ever is has a gap the yaw bins may not show."""
    src, dst = (open_store(p) for p in sample_faces)
    try:
        cov = store_coverage(src, dst, sample_faces[0], sample_faces[1])
        yaw, pitch = cov.reach
        ys, yd = (np.asarray(x.yaws, np.float64) for x in (src, dst))
        pd = np.array([estimate_pose(lm).pitch for lm in np.asarray(dst.landmarks, np.float64)])  # in the crop
        assert yaw.src_high == pytest.approx(np.abs(ys).max()) and yaw.src_low == -yaw.src_high  # mirrored
        assert (yaw.dst_low, yaw.dst_high) == pytest.approx((yd.min(), yd.max()))
        assert (pitch.dst_low, pitch.dst_high) == pytest.approx((pd.min(), pd.max()))
        out = ((pd < pitch.src_low - REACH_MARGIN) | (pd > pitch.src_high + REACH_MARGIN)).sum()
        assert pitch.beyond == out and not yaw.gap and not pitch.gap and not cov.gaps()
        dst.yaws = np.asarray(dst.yaws, np.float64) + np.abs(ys).max() + 2 * REACH_MARGIN  # dst turned further
        turned = store_coverage(src, dst, sample_faces[0], sample_faces[1])
    finally:
        src.close()
        dst.close()
    far = turned.reach[0]
    assert far.beyond == turned.dst_posed and far.beyond_share == 1.0 and far.gap
    assert any(line.startswith("dst's head turns (yaw)") and f"{far.beyond} of its faces" in line
               for line in turned.gaps())
    assert turned.to_dict()["reach"][0]["gap"] is True


def test_a_gap_needs_dst_often_there_and_src_rarely() -> None:
    assert Bin("open", src=4, dst=30, src_share=0.04, dst_share=0.3).gap  # too few src faces
    assert Bin("open", src=40, dst=30, src_share=0.01, dst_share=0.3).gap  # too small a share of src
    assert not Bin("open", src=40, dst=30, src_share=0.04, dst_share=0.3).gap
    assert not Bin("open", src=0, dst=3, src_share=0.0, dst_share=0.05).gap  # dst hardly goes there
    assert not Bin("open", src=0, dst=4, src_share=0.0, dst_share=0.2).gap  # a few frames of a short dst
    assert Bin("open", src=0, dst=5, src_share=0.0, dst_share=0.2).gap


def test_resize_to_smaller_type_matches_a_warp_from_the_frame(faces: Path, tmp_path: Path) -> None:
    # one face gets XSeg polygons, to check they follow the warp
    first = list_face_files(faces)[0]
    rec0 = read_record(first)
    poly = XSegPolygon(kind="include", points=[(30.0, 30.0), (90.0, 30.0), (60.0, 100.0)])
    update_record(first, rec0.model_copy(update={"xseg_polygons": [poly]}))
    out = tmp_path / "full64"
    result = resize_faceset(faces, out, size=64, face_type="full")
    assert result.count == len(scan_faces(faces).faces) and [p.name for p in result.foreign] == ["zz_photo.png"]
    wanted = {}
    for path in list_face_files(out)[::8]:
        wanted[read_record(path).source.index] = path
    checked = 0
    for index, frame in iter_frames(SAMPLES / "dst.mp4", fps=6):
        if index not in wanted:
            continue
        old_img, old = read_face(faces / wanted[index].name)
        new_img, new = read_face(wanted[index])
        assert (new.face_type, new.size, new.source, new.pose) == ("full", 64, old.source, old.pose)
        mat = new.affine()
        # landmarks: the frame's landmarks through the new transform, as extraction makes them
        np.testing.assert_allclose(new.landmarks_array(), transform_points(old.source_landmarks_array(), mat),
                                   atol=0.05)
        # pixels: as warping the original frame with the new transform, up to resampling and JPEG (compared
        # blurred: the direct warp aliases, the resize area-averages); half a pixel off is clearly worse
        errs = [_blurred_error(new_img, frame, mat, dx) for dx in (0.0, 0.5, -0.5)]
        assert errs[0] < 2.0 and min(errs[1:]) > errs[0] + 0.5, errs
        assert old_img.shape == (128, 128, 3) and new.sharpness is not None
        checked += 1
    assert checked == len(wanted) >= 3
    moved = read_record(out / first.name).xseg_polygons[0].points
    expected = transform_points(np.asarray(poly.points), read_record(out / first.name).affine() @
                                np.vstack([rec0.inverse_affine(), [0, 0, 1]]))
    np.testing.assert_allclose(np.asarray(moved), expected, atol=1e-6)


def _blurred_error(face: np.ndarray, frame: np.ndarray, mat: np.ndarray, dx: float) -> float:
    m = mat.copy()
    m[0, 2] += dx
    direct = warp_face(frame, m, face.shape[0])[:, :, ::-1].astype(np.float64)
    diff = cv2.GaussianBlur(face.astype(np.float64), (5, 5), 1.0) - cv2.GaussianBlur(direct, (5, 5), 1.0)
    return float(np.abs(diff)[4:-4, 4:-4].mean())


def test_resize_refusals_and_pack_output(faces: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot make head faces from whole_face"):
        resize_faceset(faces, tmp_path / "head", face_type="head")
    assert not (tmp_path / "head").exists()
    with pytest.raises(InputError, match="nothing to do"):
        resize_faceset(faces, tmp_path / "same")
    with pytest.raises(InputError, match="out of range"):
        resize_faceset(faces, tmp_path / "tiny", size=16)
    with pytest.raises(InputError, match="already holds face files"):
        resize_faceset(faces, _nonempty(tmp_path), size=96)
    # same size and type: the identity, so pixels stay within JPEG re-encoding noise
    res = resize_faceset(faces, tmp_path / "same.fpack", size=128)
    pack_scan = faceset_info(tmp_path / "same.fpack")
    assert pack_scan.count == res.count and pack_scan.sizes == {128: res.count}
    from facelab.train.samples import FaceSet

    a, b = FaceSet(faces), FaceSet(tmp_path / "same.fpack")
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-9)
    assert np.abs(a.read_bgr(5).astype(int) - b.read_bgr(5).astype(int)).mean() < 2.0


def _nonempty(tmp_path: Path) -> Path:
    folder = tmp_path / "nonempty"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    return folder


def _edit(path: Path, out: Path, scale: float = 1.0) -> None:
    """What an image editor does: decode, change pixels, save without facelab's metadata."""
    img = cv2.imread(str(path))
    img = cv2.rectangle(img, (10, 10), (30, 30), (0, 0, 255), -1)
    if scale != 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale)
    cv2.imwrite(str(out), img)


def test_metadata_export_edit_import(faces: Path, tmp_path: Path) -> None:
    export = tmp_path / "meta.json"
    n = export_metadata(faces, export)
    originals = {p.name: r for p, r in scan_faces(faces).faces}
    assert n == len(originals)
    data = json.loads(export.read_text())
    assert data["schema"] == "facelab.faceset.metadata" and data["version"] == 1
    assert read_export(export) == originals
    edited = tmp_path / "edited"
    edited.mkdir()
    names = sorted(originals)[:6]
    for name in names[:5]:
        _edit(faces / name, edited / name)
    _edit(faces / names[5], edited / (Path(names[5]).stem + ".png"))  # the editor saved it as PNG
    with pytest.raises(NotAFaceError):
        read_record(edited / names[0])
    pixels_before = cv2.imread(str(edited / names[0]))
    result = import_metadata(export, edited)
    assert len(result.updated) == 6 and len(result.missing) == n - 6 and result.unmatched == []
    for name in names[:5]:
        assert read_record(edited / name) == originals[name]
    assert read_record(edited / (Path(names[5]).stem + ".png")) == originals[names[5]]
    np.testing.assert_array_equal(cv2.imread(str(edited / names[0])), pixels_before)  # pixels untouched
    # a face scaled in the editor: refused, and nothing written
    scaled = tmp_path / "scaled"
    scaled.mkdir()
    _edit(faces / names[0], scaled / names[0])
    _edit(faces / names[1], scaled / names[1], scale=0.5)
    with pytest.raises(InputError, match=rf"1 of 2 files cannot take their metadata back.*{names[1]} is 64x64"):
        import_metadata(export, scaled)
    with pytest.raises(NotAFaceError):
        read_record(scaled / names[0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "version": 7}))
    with pytest.raises(InputError, match="unsupported export version 7"):
        import_metadata(bad, edited)


def test_cli_tools(faces: Path, tmp_path: Path) -> None:
    res = _cli("faceset", "info", faces, "--json", "--histogram", tmp_path / "h.png")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["count"] > 20 and data["foreign"] == [str(faces / "zz_photo.png")] and (tmp_path / "h.png").exists()
    res = _cli("faceset", "metadata", "export", faces, "-o", tmp_path / "m.json")
    assert res.returncode == 0 and "Exported the metadata of" in res.stdout, res.stderr
    res = _cli("faceset", "resize", faces, "-o", tmp_path / "r", "--face-type", "head")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "cannot make head faces" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
