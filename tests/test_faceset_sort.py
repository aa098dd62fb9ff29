"""facelab faceset sort / dedupe / filter on real aligned faces (the bundled clips, and the shared data
where a test needs head turns or several faces in one frame)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.faceset.features import compute_features
from facelab.faceset.folder import list_face_files, scan_faces
from facelab.faceset.record import read_face, read_record, write_face
from facelab.faceset.sort import dedupe_faceset, filter_faceset, sort_faceset
from facelab.faceset.sort import rename as rename_mod
from facelab.faceset.sort.methods import SORT_METHODS, bin_quotas, pose_bins
from facelab.faceset.sort.rename import recover, strip_prefix, trash_dir
from tests.conftest import SAMPLES, shared_file


def _copy(files: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, folder / f.name)) for f in files]


def _names(folder: Path) -> list[str]:
    return [p.name for p in list_face_files(folder)]


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _write_variant(src: Path, dst: Path, change: str) -> Path:
    """A copy of a face with its pixels changed and the same metadata (so only pixels tell them apart)."""
    bgr, record = read_face(src)
    if change == "blur":
        out = cv2.GaussianBlur(bgr, (0, 0), 2.0)
    elif change == "soft":
        out = cv2.GaussianBlur(bgr, (0, 0), 1.0)
    elif change == "motion":
        kernel = np.zeros((9, 9), np.float32)
        kernel[4, :] = 1.0 / 9.0  # horizontal motion over 9 pixels
        out = cv2.filter2D(bgr, -1, kernel)
    elif change == "dark":
        out = (bgr.astype(np.float32) * 0.6).astype(np.uint8)
    elif change == "blue":
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 90) % 180  # skin (about 15 degrees) to blue (195)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    elif change == "black":
        out = bgr.copy()
        out[:, : bgr.shape[1] // 3] = 0  # a third of the crop black, as where a face leaves the frame
    else:
        raise ValueError(change)
    write_face(dst, np.ascontiguousarray(out), record)
    return dst


@pytest.fixture(scope="module")
def woman(sample_faces: tuple[Path, Path]) -> list[Path]:
    return list_face_files(sample_faces[0])


@pytest.fixture(scope="module")
def man(sample_faces: tuple[Path, Path]) -> list[Path]:
    return list_face_files(sample_faces[1])


@pytest.fixture(scope="module")
def head_turn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every face of the shared 2.2 s Obama clip (yaw about -29 to +23 degrees)."""
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract

    clip = shared_file("clips/3ddfa_obama.mp4")
    out = tmp_path_factory.mktemp("head_turn") / "aligned"
    run_extract(clip, out, ExtractOptions(size=128, workers=2))
    return out


# ----------------------------------------------------------------------------------------------------
# pixel-feature methods


def test_blur_and_motion_blur_rank_degraded_copies_below_their_originals(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    originals = _copy(woman[::15][:6], folder)
    for change in ("blur", "motion"):
        for f in originals[:3]:
            _write_variant(f, folder / f"{change}_{f.name}", change)
    for method, prefix in (("blur", "blur_"), ("motion-blur", "motion_")):
        sort_faceset(folder, method)
        names = [strip_prefix(n) for n in _names(folder)]
        for f in originals[:3]:
            assert names.index(prefix + f.name) > names.index(f.name), (method, names)
    # the motion measure singles out the direction: a horizontal smear hurts it more than blur's Laplacian
    faces = scan_faces(folder).faces
    by_name = {strip_prefix(p.name): i for i, (p, _) in enumerate(faces)}
    feats = compute_features(faces, {"sharpness", "motion"})
    f0 = originals[0].name
    sharp = [feats[by_name[n]].sharpness for n in (f0, "motion_" + f0)]
    motion = [feats[by_name[n]].motion for n in (f0, "motion_" + f0)]
    assert all(v is not None for v in sharp + motion)
    assert motion[1] < motion[0] and sharp[1] < sharp[0]  # type: ignore[operator]


def test_brightness_hue_black_and_hist_dissim(woman: list[Path], man: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    originals = _copy(woman[::20][:4], folder)
    dark = _write_variant(originals[0], folder / "dark.jpg", "dark")
    patched = _write_variant(originals[1], folder / "patched.jpg", "black")
    blue = _write_variant(originals[2], folder / "blue.jpg", "blue")
    sort_faceset(folder, "brightness")
    names = [strip_prefix(n) for n in _names(folder)]
    assert names.index(dark.name) > names.index(originals[0].name)
    sort_faceset(folder, "hue")  # hue descending: the blue copy before every skin-coloured face
    assert strip_prefix(_names(folder)[0]) == blue.name
    sort_faceset(folder, "black")
    assert strip_prefix(_names(folder)[-1]) == patched.name  # black: fewest black pixels first
    others = tmp_path / "others"
    _copy(woman[::10][:6], others)
    shutil.copy2(man[0], others / "man.jpg")
    sort_faceset(others, "hist-dissim")  # the one face of another scene is the most unusual
    assert strip_prefix(_names(others)[0]) == "man.jpg"


@pytest.mark.parametrize("method", ["hist", "absdiff"])
def test_hist_and_absdiff_chain_each_clip_together(method: str, woman: list[Path], man: list[Path],
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    faces = [(f, "w") for f in woman[::9][:8]] + [(f, "m") for f in man[::6][:6]]
    random.Random(3).shuffle(faces)
    for i, (f, who) in enumerate(faces):
        shutil.copy2(f, folder / f"{i:02d}{who}.jpg")  # shuffled, and the names say which clip
    sort_faceset(folder, method)
    clips = "".join(strip_prefix(n)[2] for n in _names(folder))
    assert clips.count("wm") + clips.count("mw") == 1, clips  # one run of each person


def test_identity_sort_puts_the_other_person_last(woman: list[Path], man: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    _copy(woman[::8][:10], folder)
    others = {f.name for f in _copy(man[::10][:3], folder)}
    # same stems in both clips: keep the man's apart by name
    for name in others:
        (folder / name).rename(folder / f"man_{name}")
    sort_faceset(folder, "identity")
    last = {strip_prefix(n) for n in _names(folder)[-3:]}
    assert last == {f"man_{n}" for n in others}


# ----------------------------------------------------------------------------------------------------
# metadata methods


def test_yaw_orders_a_head_turn_monotonically(head_turn: Path, tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    _copy(list_face_files(head_turn), folder)
    sort_faceset(folder, "face-yaw")
    records = [read_record(p) for p in list_face_files(folder)]
    # independent of the pose solver: where the nose tip sits between the jaw ends (0: at the image-left
    # end, 1: at the image-right end), in the aligned crop
    offsets = []
    for r in records:
        lm = r.landmarks_array()
        offsets.append((lm[30, 0] - lm[0, 0]) / (lm[16, 0] - lm[0, 0]))
    ranks = np.argsort(np.argsort(offsets))
    rho = np.corrcoef(ranks, np.arange(len(ranks)))[0, 1]  # 0.92 measured (near frontal, expressions add noise)
    assert len(records) > 40 and rho > 0.85, rho  # yaw ascending: the nose moves towards the image's right
    thirds = [float(np.mean(part)) for part in np.array_split(np.array(offsets), 3)]
    assert thirds[0] < thirds[1] < thirds[2] and max(offsets[:8]) < min(offsets[-8:]), thirds
    yaws = [r.pose.yaw for r in records if r.pose is not None]
    assert yaws == sorted(yaws) and yaws[-1] - yaws[0] > 30
    sort_faceset(folder, "face-pitch")
    pitches = [r.pose.pitch for r in (read_record(p) for p in list_face_files(folder)) if r.pose is not None]
    assert pitches == sorted(pitches, reverse=True)
    sort_faceset(folder, "source-rect-size")
    areas = [(r.rect[2] - r.rect[0]) * (r.rect[3] - r.rect[1]) for r in map(read_record, list_face_files(folder))]
    assert areas == sorted(areas, reverse=True)


def test_origname_restores_frame_order_after_shuffling_names(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    chosen = woman[:12]
    names = [f"face_{i}.jpg" for i in random.Random(1).sample(range(100), len(chosen))]
    for f, name in zip(chosen, names, strict=True):
        shutil.copy2(f, folder / name)
    sort_faceset(folder, "origname")
    indices = [read_record(p).source.index for p in list_face_files(folder)]
    assert indices == sorted(indices) and len(set(indices)) == len(chosen)
    assert sorted(strip_prefix(n) for n in _names(folder)) == sorted(names)  # the names survive, prefixed


def test_oneface_moves_out_frames_with_several_faces(tmp_path: Path) -> None:
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract

    stills = tmp_path / "stills"
    stills.mkdir()
    shutil.copy2(shared_file("images/fr_two_people.jpg"), stills / "two.jpg")
    shutil.copy2(SAMPLES / "fr_obama.jpg", stills / "one.jpg")
    folder = tmp_path / "faces"
    run_extract(stills, folder, ExtractOptions(size=128, workers=1))
    assert sorted(_names(folder)) == ["one_0.jpg", "two_0.jpg", "two_1.jpg"]
    report = sort_faceset(folder, "oneface")
    assert _names(folder) == ["00000~one_0.jpg"]
    assert sorted(p.name for p in trash_dir(folder).iterdir()) == ["two_0.jpg", "two_1.jpg"]
    assert len(report.plan.trash) == 2


def test_best_keeps_the_target_covering_every_yaw_bin(head_turn: Path, tmp_path: Path) -> None:
    faces = scan_faces(head_turn).faces
    poses = [(r.pose.yaw, r.pose.pitch) for _, r in faces if r.pose is not None]
    assert len(poses) == len(faces)
    yaw_bins = {b[0] for b in pose_bins(poses)}
    assert len(yaw_bins) >= 6
    for method in ("best", "best-fast"):
        folder = tmp_path / method
        _copy([p for p, _ in faces], folder)
        sort_faceset(folder, method, target=12)
        kept = scan_faces(folder).faces
        assert len(kept) == 12 and len(list(trash_dir(folder).iterdir())) == len(faces) - 12
        bins = dict(zip([p.name for p, _ in faces], pose_bins(poses), strict=True))
        covered = {bins[strip_prefix(p.name)][0] for p, _ in kept}
        assert covered == yaw_bins, (method, covered, yaw_bins)


def test_bin_quotas_spread_the_target_evenly() -> None:
    assert bin_quotas([10, 10, 10], 9) == [3, 3, 3]
    assert bin_quotas([1, 10, 10], 9) == [1, 4, 4]
    assert sum(bin_quotas([5, 0, 2, 40], 20)) == 20 and bin_quotas([5, 0, 2, 40], 20)[1] == 0
    assert bin_quotas([3, 2], 100) == [3, 2]


# ----------------------------------------------------------------------------------------------------
# dedupe and filter


def test_dedupe_finds_exact_and_near_copies_and_keeps_the_sharpest(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    originals = _copy(woman[::10][:8], folder)
    shutil.copy2(originals[0], folder / "exact_copy.jpg")
    bgr, record = read_face(originals[1])
    _, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    write_face(folder / "near_copy.jpg", cv2.imdecode(enc, cv2.IMREAD_COLOR), record, jpeg_quality=90)
    blurred = _write_variant(originals[2], folder / "soft_copy.jpg", "soft")
    report = dedupe_faceset(folder, threshold=3.0)
    groups = sorted(sorted(p.name for p in g) for g in report.groups)
    assert groups == sorted([sorted([originals[0].name, "exact_copy.jpg"]),
                             sorted([originals[1].name, "near_copy.jpg"]),
                             sorted([originals[2].name, blurred.name])])
    trashed = sorted(p.name for p in trash_dir(folder).iterdir())
    assert len(trashed) == 3 and "soft_copy.jpg" in trashed and originals[2].name not in trashed
    everything = {f.name for f in originals} | {"exact_copy.jpg", "near_copy.jpg", "soft_copy.jpg"}
    assert sorted(_names(folder)) == sorted(everything - set(trashed))  # one of each group kept, names unchanged


def test_filter_moves_out_the_other_person(woman: list[Path], man: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    _copy(woman[::9][:8], folder)
    for f in man[::15][:2]:
        shutil.copy2(f, folder / f"man_{f.name}")
    report = filter_faceset(folder)  # default reference: the set's main identity
    assert sorted(p.name for p in trash_dir(folder).iterdir()) == sorted(f"man_{f.name}" for f in man[::15][:2])
    assert max(report.distances[p] for p in report.distances if not p.name.startswith("man_")) < 0.6
    # a still of the man (a frame of his clip) as the reference keeps him and moves her out
    from facelab.media.video import iter_frames

    for f in trash_dir(folder).iterdir():
        shutil.move(f, folder / f.name)
    frame = next(img for _, img in iter_frames(SAMPLES / "dst.mp4"))
    still = tmp_path / "him.png"
    cv2.imwrite(str(still), frame[:, :, ::-1])
    filter_faceset(folder, reference=still)
    assert sorted(_names(folder)) == sorted(f"man_{f.name}" for f in man[::15][:2])
    # an aligned face as the reference (one of hers, from outside the set) brings her back and moves him out
    for f in trash_dir(folder).iterdir():
        shutil.move(f, folder / f.name)
    filter_faceset(folder, reference=woman[1])
    assert sorted(p.name for p in trash_dir(folder).iterdir()) == sorted(f"man_{f.name}" for f in man[::15][:2])
    with pytest.raises(InputError, match="not found"):
        filter_faceset(folder, reference=tmp_path / "missing.jpg")


# ----------------------------------------------------------------------------------------------------
# safety


def test_dry_run_changes_nothing(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    originals = _copy(woman[:6], folder)
    shutil.copy2(originals[0], folder / "copy.jpg")
    before = _snapshot(folder)
    for method in SORT_METHODS.names():
        if method == "identity":
            continue  # slow (embeddings), and renames the same way as the others
        report = sort_faceset(folder, method, target=3, dry_run=True)
        assert report.dry_run and report.faces == 7
    assert dedupe_faceset(folder, dry_run=True).plan.trash
    assert sort_faceset(folder, "best-fast", target=3, dry_run=True).plan.trash
    assert _snapshot(folder) == before and not trash_dir(folder).exists()


def test_foreign_and_broken_files_are_listed_and_left_alone(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    _copy(woman[:5], folder)
    shutil.copy2(SAMPLES / "fr_obama.jpg", folder / "photo.jpg")
    (folder / "broken.jpg").write_bytes(woman[0].read_bytes()[:2000])
    (folder / "notes.txt").write_text("not an image")
    before = {n: _snapshot(folder)[n] for n in ("photo.jpg", "broken.jpg", "notes.txt")}
    for method in ("blur", "origname", "best", "hist"):
        report = sort_faceset(folder, method, target=3)
        assert [p.name for p in report.foreign] == ["photo.jpg"]
        assert [p.name for p, _ in report.invalid] == ["broken.jpg"]
    report = dedupe_faceset(folder)
    assert [p.name for p in report.foreign] == ["photo.jpg"]
    after = _snapshot(folder)
    assert all(after[n] == h for n, h in before.items())


def test_resorting_keeps_one_prefix_and_every_file(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    originals = _copy(woman[:10], folder)
    contents = sorted(hashlib.sha256(f.read_bytes()).hexdigest() for f in originals)
    for method in ("blur", "hist", "origname", "blur"):
        sort_faceset(folder, method)
        names = _names(folder)
        assert sorted(strip_prefix(n) for n in names) == sorted(f.name for f in originals)
        assert all(n[:6].rstrip("~").isdigit() and n.count("~") == 1 for n in names)
    assert sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in list_face_files(folder)) == contents


@pytest.mark.parametrize("fail_at", [3, 14])  # 10 files: call 3 is in phase 1, call 14 in phase 2
def test_an_interrupted_sort_loses_nothing_and_is_finished_by_the_next_run(
        fail_at: int, woman: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "faces"
    originals = _copy(woman[:10], folder)
    contents = {hashlib.sha256(f.read_bytes()).hexdigest(): f.name for f in originals}
    calls = {"n": 0}
    real_rename = os.rename

    def crashing_rename(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt  # a kill in the middle of the renames
        real_rename(src, dst)

    monkeypatch.setattr(rename_mod.os, "rename", crashing_rename)
    with pytest.raises(KeyboardInterrupt):
        sort_faceset(folder, "blur")
    monkeypatch.setattr(rename_mod.os, "rename", real_rename)
    assert rename_mod.pending(folder)
    every = {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if not p.name.startswith(".")}
    assert every == set(contents)  # nothing lost or overwritten, some under temporary names
    with pytest.raises(InputError, match="interrupted"):
        sort_faceset(folder, "blur", dry_run=True)
    assert recover(folder) > 0
    names = _names(folder)
    assert len(names) == 10 and not rename_mod.pending(folder)
    assert all("~" in n for n in names)  # finished forward from the journal (phase 1 or 2): the sorted names
    sort_faceset(folder, "blur")
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in list_face_files(folder)} == set(contents)


def test_a_name_taken_by_a_file_outside_the_sort_stops_before_any_change(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    _copy(woman[:3], folder)
    (folder / f"00000~{woman[0].name}").write_bytes(b"not a face")  # foreign, and in the way
    before = _snapshot(folder)
    with pytest.raises(InputError, match="not being sorted"):
        sort_faceset(folder, "origname")
    assert _snapshot(folder) == before


def test_cli_sort_dry_run_and_errors(woman: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    _copy(woman[:4], folder)
    shutil.copy2(SAMPLES / "fr_obama.jpg", folder / "photo.jpg")
    run = [sys.executable, "-m", "facelab.cli.main", "faceset"]
    res = subprocess.run([*run, "sort", str(folder), "--by", "origname", "--dry-run"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"{woman[0].name} -> 00000~{woman[0].name}" in res.stdout
    assert "photo.jpg" in res.stderr and "dry run" in res.stderr
    assert sorted(_names(folder)) == sorted([*(f.name for f in woman[:4]), "photo.jpg"])
    res = subprocess.run([*run, "filter", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "folder not found" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([*run, "sort", str(folder), "--by", "sideways"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "sideways" in res.stderr


def test_metadata_methods_never_decode_pixels(woman: list[Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "faces"
    _copy(woman[:8], folder)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    for method in ("face-yaw", "face-pitch", "source-rect-size", "origname", "oneface"):
        assert sort_faceset(folder, method).faces == 8
    with pytest.raises(AssertionError, match="pixels decoded"):
        sort_faceset(folder, "blur")


def test_features_in_worker_processes_equal_the_serial_ones(woman: list[Path]) -> None:
    faces = scan_faces(woman[0].parent).faces[:50]
    wanted = {"sharpness", "motion", "hist", "black", "thumb"}
    serial = compute_features(faces, wanted, workers=1)
    done: list[int] = []
    pooled = compute_features(faces, wanted, workers=2, progress=done.append)
    assert len(pooled) == len(serial) == 50 and sum(done) == 50
    for a, b in zip(serial, pooled, strict=True):
        assert a.sharpness == b.sharpness and a.motion == b.motion and a.black == b.black
        assert a.hist is not None and b.hist is not None and np.array_equal(a.hist, b.hist)
        assert a.thumb is not None and b.thumb is not None and np.array_equal(a.thumb, b.thumb)
