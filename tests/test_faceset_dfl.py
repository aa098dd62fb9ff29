"""`faceset import-dfl`: DeepFaceLab faces (JPEG APP15, PNG fcWp, faceset.pak) read without running pickles.

The DFL files are built from the bundled sample faces by tests/dfl_support.py, in DFL's layout.
"""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facelab.core.errors import InputError
from facelab.face.masks import decode_stored_mask
from facelab.faceset.dfl import pickle_data
from facelab.faceset.dfl.container import dfl_payload, strip_dfl
from facelab.faceset.dfl.importer import import_dfl
from facelab.faceset.dfl.pak import read_pak_index
from facelab.faceset.folder import list_face_files, scan_faces
from facelab.faceset.record import FaceRecord, read_face, read_record
from facelab.media.metadata import PNG_SIGNATURE, strip_json
from tests.dfl_support import dfl_jpeg, dfl_meta, dfl_pak, dfl_png

MASK = np.zeros((128, 128), np.uint8)
cv2.circle(MASK, (64, 64), 40, 255, -1)
MASK_PNG = cv2.imencode(".png", MASK)[1].tobytes()


@pytest.fixture(scope="module")
def dfl_set(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A DFL aligned folder from five bundled src faces: 3 JPEG (one with XSeg polygons and mask), 1 PNG,
    plus a JPEG without DFL metadata and a text file; and the originals' pixels and records."""
    folder = tmp_path_factory.mktemp("dfl") / "aligned"
    folder.mkdir()
    sources = list_face_files(sample_faces[0])[:4]
    originals: dict[str, tuple[bytes, FaceRecord]] = {}
    for i, path in enumerate(sources):
        data = path.read_bytes()
        rec = read_record(path)
        plain = strip_json(data)  # the JPEG as an encoder wrote it
        name = f"{rec.source.frame}_{rec.face_index}"
        if i == 3:
            png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()
            (folder / f"{name}.png").write_bytes(dfl_png(png, dfl_meta(rec, arrays=False)))
            originals[f"{name}.png"] = (png, rec)
        else:
            meta = dfl_meta(rec, polys=i == 1, mask=MASK_PNG if i == 1 else None)
            (folder / f"{name}.jpg").write_bytes(dfl_jpeg(plain, meta))
            originals[f"{name}.jpg"] = (plain, rec)
    cv2.imwrite(str(folder / "preview.jpg"), np.full((80, 80, 3), 90, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return {"folder": folder, "originals": originals}


def test_layout_round_trip(dfl_set: dict[str, Any]) -> None:
    """The builder's files hold DFL's metadata where DFL puts it; stripping it gives the image back."""
    for name, (plain, _) in dfl_set["originals"].items():
        data = (dfl_set["folder"] / name).read_bytes()
        payload = dfl_payload(data)
        assert payload is not None and payload[0] == 0x80
        assert strip_dfl(data) == plain
        assert pickle_data.loads(payload)["face_type"] == "whole_face"


def test_numpy1_pickles() -> None:
    """DFL's files were written with numpy 1.x, whose pickles name ``numpy.core.multiarray``: read alike."""
    meta = {"landmarks": np.arange(136, dtype=np.float32).reshape(68, 2), "k": np.float64(2.5),
            "mask": np.frombuffer(MASK_PNG, np.uint8).reshape(-1, 1)}
    two = pickle.dumps(meta, 2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    four = pickle.dumps(meta, 4).replace(b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray")
    for blob in (two, four):
        assert b"numpy.core.multiarray" in blob and b"_core" not in blob
        got = pickle_data.loads(blob)
        assert np.array_equal(got["landmarks"], meta["landmarks"]) and got["landmarks"].dtype == np.float32
        assert got["k"] == 2.5 and np.array_equal(got["mask"], meta["mask"])
    for proto in range(6):  # DFL's Pythons wrote protocol 3 (3.6, 3.7) or 4; the others are read too
        got = pickle_data.loads(pickle.dumps({**meta, "t": (1, None, True, "é", b"\x00")}, proto))
        assert np.array_equal(got["mask"], meta["mask"]) and got["t"] == (1, None, True, "é", b"\x00")


def test_import_folder(dfl_set: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = import_dfl(dfl_set["folder"], out)
    assert result.imported == 4 and result.foreign == ["preview.jpg"] and not result.invalid
    assert result.face_types == {"whole_face": 4}
    assert result.notes == {"1 XSeg polygon(s) with fewer than 3 points or bad values: dropped": 1}
    scan = scan_faces(out)
    assert len(scan.faces) == 4 and not scan.foreign and not scan.invalid
    for name, (plain, orig) in dfl_set["originals"].items():
        data = (out / name).read_bytes()
        assert strip_json(data) == plain  # the encoded pixels, byte for byte
        image, rec = read_face(out / name)
        assert np.array_equal(image, cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR))
        assert rec.face_type == "whole_face" and rec.size == orig.size == 128
        assert np.allclose(rec.landmarks_array(), orig.landmarks_array(), atol=1e-4)  # float32 in the DFL file
        assert np.allclose(rec.source_landmarks_array(), orig.source_landmarks_array())
        assert np.allclose(rec.affine(), orig.affine())
        assert rec.source.frame == orig.source.frame and rec.source.index == orig.source.index
        assert rec.face_index == orig.face_index
        assert rec.pose is not None and abs(rec.pose.yaw - (orig.pose.yaw if orig.pose else 0)) < 15
        lm_in_frame = rec.source_landmarks_array()
        assert rec.source.width >= lm_in_frame[:, 0].max() and rec.source.height >= lm_in_frame[:, 1].max()
    labelled = next(rec for _, rec in scan.faces if rec.xseg_polygons)
    assert [p.kind for p in labelled.xseg_polygons] == ["include", "exclude"]  # DFL's order: includes first
    assert labelled.xseg_polygons[1].points == [(40.0, 40.0), (60.0, 40.0), (50.0, 60.0)]
    assert labelled.xseg_mask is not None
    assert np.array_equal(decode_stored_mask(labelled.xseg_mask) * 255, MASK.astype(np.float32))


def test_imported_faces_work_downstream(dfl_set: dict[str, Any], tmp_path: Path) -> None:
    """`faceset info` reads the output, and training samples load from it."""
    from facelab.faceset.info import faceset_info
    from facelab.train.samples import FaceSampleDataset, FaceSet, SampleOptions

    out = tmp_path / "out"
    import_dfl(dfl_set["folder"], out)
    info = faceset_info(out)
    assert info.count == 4 and info.face_types == {"whole_face": 4} and info.with_pose == 4
    faces = FaceSet(out)
    sample = FaceSampleDataset(faces, SampleOptions(64, "whole_face", seed=0))[1]
    assert tuple(sample["target"].shape) == (3, 64, 64) and float(sample["mask"].mean()) > 0.05


def test_import_pak(dfl_set: dict[str, Any], tmp_path: Path) -> None:
    folder = dfl_set["folder"]
    names = sorted(dfl_set["originals"])
    files = [(n, (folder / n).read_bytes(), "anna" if i == 0 else None) for i, n in enumerate(names)]
    files.append(("bad/../name.jpg", (folder / names[1]).read_bytes(), None))  # an unsafe name: renamed
    pak_dir = tmp_path / "pakset"
    pak_dir.mkdir()
    dfl_pak(pak_dir / "faceset.pak", files)
    entries = read_pak_index(pak_dir / "faceset.pak")
    assert [e.size for e in entries] == [len(d) for _, d, _ in files]
    result = import_dfl(pak_dir, tmp_path / "out")
    assert result.imported == 5 and result.source.name == "faceset.pak"
    got = sorted(p.name for p in list_face_files(tmp_path / "out"))
    assert got == sorted([f"anna_{names[0]}", *names[1:], "000004.jpg"])
    for name, data, _ in files[1:4]:
        assert strip_json((tmp_path / "out" / name).read_bytes()) == strip_dfl(data)


def test_bad_pak_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "faceset.pak"
    path.write_bytes(struct.pack("<QQ", 1, 10**12) + b"\x80\x04")
    with pytest.raises(InputError, match=r"claims \d+ bytes of face configs"):
        read_pak_index(path)
    path.write_bytes(struct.pack("<QQ", 2, 0))
    with pytest.raises(InputError, match="version 1"):
        read_pak_index(path)
    blob = pickle.dumps([{"filename": "a.jpg"}], 4)
    path.write_bytes(struct.pack("<QQ", 1, len(blob)) + blob + struct.pack("<QQ", 0, 10**9))
    with pytest.raises(InputError, match="bad byte range"):
        read_pak_index(path)


def test_resume_after_interruption(dfl_set: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill after k faces leaves k complete faces; the re-run finishes with the same files as one full run."""
    import facelab.faceset.dfl.importer as importer

    full = tmp_path / "full"
    import_dfl(dfl_set["folder"], full)
    out = tmp_path / "out"
    real = importer.write_bytes_atomic
    calls = {"n": 0}

    def dying(path: Path, data: bytes, durable: bool = True) -> None:
        if calls["n"] == 2:
            raise KeyboardInterrupt  # stands in for a kill between two faces
        calls["n"] += 1
        real(path, data, durable=durable)

    monkeypatch.setattr(importer, "write_bytes_atomic", dying)
    with pytest.raises(KeyboardInterrupt):
        import_dfl(dfl_set["folder"], out)
    assert len(list_face_files(out)) == 2 and not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(importer, "write_bytes_atomic", real)
    result = import_dfl(dfl_set["folder"], out)
    assert result.resumed == 2 and result.imported == 2
    assert {p.name: p.read_bytes() for p in list_face_files(out)} == {p.name: p.read_bytes()
                                                                       for p in list_face_files(full)}
    shutil.copy(dfl_set["folder"] / "preview.jpg", out / "preview.jpg")
    with pytest.raises(InputError, match="not a facelab face"):  # OUT holds someone else's image
        import_dfl(dfl_set["folder"], out)


def test_rewarp_to_facelab_crop(dfl_set: dict[str, Any], tmp_path: Path) -> None:
    """A DFL face whose crop is wider than facelab's (zoomed out 1.25x) comes back as facelab's own crop."""
    from facelab.core.geometry import invert_affine, transform_points
    from facelab.face.align import compose, warp_face

    _, (plain, rec) = next((n, v) for n, v in dfl_set["originals"].items() if n.endswith(".jpg"))
    original = cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR)
    k = 1 / 1.25
    zoom = np.array([[k, 0.0, 64 * (1 - k)], [0.0, k, 64 * (1 - k)]])  # about the centre of the 128 px crop
    wide = cv2.imencode(".jpg", warp_face(original, zoom, 128), [cv2.IMWRITE_JPEG_QUALITY, 98])[1].tobytes()
    meta = dfl_meta(rec, polys=True)
    meta["landmarks"] = transform_points(rec.landmarks_array(), zoom)
    meta["image_to_face_mat"] = compose(zoom, rec.affine())
    src = tmp_path / "wide"
    src.mkdir()
    (src / "w_0.jpg").write_bytes(dfl_jpeg(wide, meta))
    out = tmp_path / "out"
    result = import_dfl(src, out, rewarp=True)
    assert result.imported == 1
    image, got = read_face(out / "w_0.jpg")
    assert np.allclose(got.affine(), rec.affine(), atol=1e-6)  # facelab's own crop of the face
    assert np.allclose(got.landmarks_array(), rec.landmarks_array(), atol=1e-3)
    drawn = np.array([(40, 40), (60, 40), (50, 60)], np.float64)  # in the wide crop's pixels
    assert np.allclose(got.xseg_polygons[1].points, transform_points(drawn, invert_affine(zoom)), atol=1e-3)
    inner = (slice(16, 112), slice(16, 112))  # the part the wide crop held at full detail
    diff = np.abs(image[inner].astype(np.float32) - original[inner].astype(np.float32)).mean()
    assert diff < 8.0, diff
    with pytest.raises(InputError, match="was imported with"):  # a re-run may not mix crops
        import_dfl(src, out)


@pytest.mark.slow
def test_kill_9_anywhere(dfl_set: dict[str, Any], tmp_path: Path) -> None:
    """A real SIGKILL at several points of a 300-face import; the re-run gives exactly the uninterrupted result."""
    import signal
    import subprocess
    import time

    src = tmp_path / "many"
    src.mkdir()
    jpgs = [n for n in dfl_set["originals"] if n.endswith(".jpg")]
    for i in range(300):
        shutil.copy(dfl_set["folder"] / jpgs[i % len(jpgs)], src / f"{i:05d}_0.jpg")
    full = tmp_path / "full"
    import_dfl(src, full)
    expected = {p.name: p.read_bytes() for p in list_face_files(full)}
    code = "import sys; from facelab.faceset.dfl.importer import import_dfl; import_dfl(sys.argv[1], sys.argv[2])"
    for k, at in enumerate((1, 60, 200)):
        out = tmp_path / f"out{k}"
        proc = subprocess.Popen([sys.executable, "-c", code, str(src), str(out)], env={**os.environ})
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and len(list(out.glob("*.jpg"))) >= at:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = list_face_files(out)
        print(f"killed after {len(done)} of 300 faces")
        assert all(read_record(p) for p in done)  # every face there is complete
        result = import_dfl(src, out)
        assert result.resumed + result.imported == 300
        assert {p.name: p.read_bytes() for p in list_face_files(out)} == expected


def test_face_types(dfl_set: dict[str, Any], tmp_path: Path) -> None:
    _, (plain, rec) = next((n, v) for n, v in dfl_set["originals"].items() if n.endswith(".jpg"))
    src = tmp_path / "types"
    src.mkdir()
    kinds = {"a_0.jpg": "full_face_no_align", "b_0.jpg": "mark_only", "c_0.jpg": "half_face", "d_0.jpg": "odd"}
    for fname, kind in kinds.items():
        (src / fname).write_bytes(dfl_jpeg(plain, dfl_meta(rec, face_type=kind)))
    meta = dfl_meta(rec)
    del meta["face_type"], meta["source_landmarks"]  # DFL's default type; the frame landmarks from the matrix
    (src / "e_0.jpg").write_bytes(dfl_jpeg(plain, meta))
    result = import_dfl(src, tmp_path / "out")
    assert result.imported == 3 and result.approximate == 1
    reasons = dict(result.invalid)
    assert "mark_only" in reasons["b_0.jpg"] and "unknown face type 'odd'" in reasons["d_0.jpg"]
    got = {p.name: read_record(p) for p in list_face_files(tmp_path / "out")}
    assert got["a_0.jpg"].face_type == "full" and got["c_0.jpg"].face_type == "half"
    assert got["e_0.jpg"].face_type == "full"
    assert np.allclose(got["e_0.jpg"].source_landmarks_array(), rec.source_landmarks_array(), atol=1e-3)


# ----------------------------------------------------------------------------------------------------
# files that would run code


class Call:
    """Pickles as a call of ``func(*args)``: what a hostile DFL file holds."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _hostile(marker: Path) -> dict[str, Any]:
    """Payloads that each write ``marker`` (or would run a command) if unpickled."""
    import posix
    import subprocess as sp

    touch = f"open({str(marker)!r}, 'w').write('ran')"
    return {
        "os.system": Call(os.system, f"touch {marker}"),
        "posix.system": Call(posix.system, f"touch {marker}"),
        "builtins.exec": Call(builtins.exec, touch),
        "builtins.eval": Call(builtins.eval, touch),
        "subprocess.Popen": Call(sp.Popen, ["touch", str(marker)]),
        "numpy runstring": Call(np.testing._private.utils.runstring, touch, {}),  # a numpy function that execs
        "numpy.load": Call(np.load, str(marker)),
    }


@pytest.mark.parametrize("proto", [2, 4])
def test_code_is_never_run(dfl_set: dict[str, Any], tmp_path: Path, proto: int) -> None:
    marker = tmp_path / "ran"
    # the payloads are live: the real unpickler runs one (and writes the marker)
    pickle.loads(pickle.dumps(Call(builtins.exec, f"open({str(marker)!r}, 'w').write('x')"), proto))
    assert marker.exists()
    marker.unlink()
    _, (plain, rec) = next((n, v) for n, v in dfl_set["originals"].items() if n.endswith(".jpg"))
    src = tmp_path / "hostile"
    src.mkdir()
    for i, (label, payload) in enumerate(_hostile(marker).items()):
        meta = dfl_meta(rec)
        meta["seg_ie_polys"] = {"polys": [{"type": 1, "pts": payload}]}  # nested inside valid metadata
        blob = pickle.dumps(meta, proto)
        with pytest.raises(pickle_data.UnsafePickleError, match="refused: pickle global") as err:
            pickle_data.loads(blob, label)
        assert "\n" not in str(err.value)
        data = plain[:2] + b"\xff\xef" + (len(blob) + 2).to_bytes(2, "big") + blob + plain[2:]
        (src / f"f{i}_0.jpg").write_bytes(data)
    (src / "good_0.jpg").write_bytes(dfl_jpeg(plain, dfl_meta(rec)))
    result = import_dfl(src, tmp_path / "out")
    assert result.imported == 1 and result.unsafe == len(_hostile(marker)) == len(result.invalid)
    assert not marker.exists()
    with pytest.raises(InputError, match="refused") as err:
        import_dfl(src, tmp_path / "out2", strict=True)
    assert "\n" not in str(err.value) and not marker.exists()


def _p(*ops: bytes) -> bytes:
    return b"\x80\x04" + b"".join(ops) + b"."


def test_refused_shapes_and_sizes() -> None:
    """Streams that claim more than they hold, unfold into huge structures, or build objects are refused."""
    ndarray = pickle.dumps(np.zeros(3, np.float32), 4)
    # the shape (3,) rewritten to (10**6, 10**6): an array far larger than its 12 bytes of data
    big = ndarray.replace(b"K\x03\x85", b"J\x40\x42\x0f\x00J\x40\x42\x0f\x00\x86", 1)
    assert big != ndarray
    with pytest.raises(InputError, match="numpy array of shape"):
        pickle_data.loads(big)
    # a bytes value claiming 2**40 bytes (BINBYTES8), in a 20-byte stream
    with pytest.raises(InputError, match="not valid DFL pickle"):
        pickle_data.loads(b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc.")
    # "billion laughs": each level a list holding the previous one ten times; 9 levels = 10**9 leaves
    ops = [b"]", b"\x94"]  # EMPTY_LIST, MEMOIZE
    for level in range(9):  # POP MARK GET DUP*9 LIST MEMOIZE
        ops += [b"0", b"(", b"h" + bytes([level])] + [b"2"] * 9 + [b"l", b"\x94"]
    with pytest.raises(InputError, match="expand beyond"):
        pickle_data.loads(_p(*ops))
    # 300 arrays whose data is one shared 1 MiB bytes object (memo): 300 MiB from a 1 MiB stream
    big = bytes(1 << 20)

    class SharedData:
        def __reduce__(self) -> tuple[Any, ...]:
            return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                    (1, (len(big),), np.dtype("u1"), False, big))

    stream = pickle.dumps([SharedData() for _ in range(300)], 4)
    assert len(stream) < 2 << 20
    assert len(pickle_data.loads(pickle.dumps([SharedData() for _ in range(1)], 4))[0]) == len(big)
    with pytest.raises(InputError, match="arrays of"):
        pickle_data.loads(stream)
    # a list that contains itself
    with pytest.raises(InputError, match=r"(cycle|expand beyond)"):
        pickle_data.loads(_p(b"]", b"\x94", b"h\x00", b"a"))  # EMPTY_LIST MEMOIZE GET APPEND
    # nesting deeper than any DFL file: refused, not a RecursionError
    with pytest.raises(InputError, match="nested deeper"):
        pickle_data.loads(_p(*[b"]"] * 100_000, *[b"a"] * 99_999))
    # object-building opcodes and object arrays
    with pytest.raises(pickle_data.UnsafePickleError, match="opcode NEWOBJ"):
        pickle_data.loads(_p(b"N", b")", b"\x81"))  # NONE EMPTY_TUPLE NEWOBJ
    with pytest.raises(pickle_data.UnsafePickleError, match="dtype 'O"):
        pickle_data.loads(pickle.dumps(np.array([1, "a"], dtype=object), 4))
    with pytest.raises(pickle_data.UnsafePickleError, match="opcode EMPTY_SET"):
        pickle_data.loads(pickle.dumps({1, 2}, 4))
    with pytest.raises(InputError, match="an integer of"):
        pickle_data.loads(pickle.dumps(2**100, 4))


def _examples(n: int) -> int:
    """Fuzz cases per run: ``n`` in the default suite, scaled by FACELAB_FUZZ_SCALE for long runs."""
    return max(1, round(n * float(os.environ.get("FACELAB_FUZZ_SCALE", "1"))))


VALID = pickle.dumps({"face_type": "whole_face", "landmarks": np.arange(136, dtype=np.float32).reshape(68, 2),
                      "source_rect": (1, 2, 30, 40), "image_to_face_mat": np.eye(2, 3), "name": "0001.png",
                      "seg_ie_polys": {"polys": [{"type": 1, "pts": np.zeros((3, 2), np.float32)}]}}, 4)


@settings(max_examples=_examples(400), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(VALID)))
def test_fuzz_pickle_reader(edits: list[tuple[int, int]], cut: int) -> None:
    """Mutated and truncated DFL pickles parse or raise the one-line InputError: nothing else."""
    data = bytearray(VALID)
    for pos, value in edits:
        data[pos] = value
    for blob in (bytes(data), bytes(data[:cut])):
        try:
            pickle_data.loads(blob)
        except InputError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=_examples(150), deadline=None, database=None)
@given(st.binary(max_size=64))
def test_fuzz_containers(junk: bytes) -> None:
    """A DFL JPEG/PNG with junk in place of its metadata block: no metadata, or a one-line error."""
    jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for data in (jpeg[:2] + b"\xff\xef" + (len(junk) + 2).to_bytes(2, "big") + junk + jpeg[2:],
                 png[:-12] + len(junk).to_bytes(4, "big") + b"fcWp" + junk + b"\0\0\0\0" + png[-12:],
                 PNG_SIGNATURE + junk, b"\xff\xd8" + junk):
        try:
            payload = dfl_payload(data)
            if payload is not None:
                pickle_data.loads(payload)
        except InputError as exc:
            assert "\n" not in str(exc)


_NUMBERS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.integers(-(2**70), 2**70)


def _arrays(shape: tuple[int, ...]) -> st.SearchStrategy[Any]:
    def build(values: list[float]) -> Any:
        return np.array(values, dtype=np.float64).reshape(shape)

    n = int(np.prod(shape))
    plausible = st.lists(st.floats(-50, 300), min_size=n, max_size=n).map(build)
    return plausible | st.lists(st.floats(allow_nan=True, width=64), min_size=n, max_size=n).map(build) | \
        st.lists(_NUMBERS, max_size=8) | st.text(max_size=5) | st.none()


_GRID = np.stack(np.meshgrid(np.linspace(20, 108, 17), np.linspace(30, 100, 4)), -1).reshape(-1, 2)[:68]
_VALID_META = {"face_type": "whole_face", "landmarks": _GRID, "image_to_face_mat": np.array([[0.5, 0.1, 3.0],
                                                                                            [-0.1, 0.5, 7.0]])}


@settings(max_examples=_examples(120), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={
    "face_type": st.sampled_from(["whole_face", "head", "mark_only", "x"]) | st.integers(-2, 12) | _NUMBERS,
    "landmarks": _arrays((68, 2)), "source_landmarks": _arrays((68, 2)), "image_to_face_mat": _arrays((2, 3)),
    "source_rect": _arrays((4,)), "source_filename": st.text(max_size=300) | _NUMBERS,
    "seg_ie_polys": st.dictionaries(st.just("polys"), st.lists(st.fixed_dictionaries(
        {"type": st.integers(-1, 2) | _NUMBERS, "pts": _arrays((3, 2))}), max_size=3))
    | st.lists(st.tuples(st.integers(0, 1), _arrays((4, 2))), max_size=3) | st.text(max_size=3),
    "xseg_mask": st.binary(max_size=40) | st.sampled_from([np.frombuffer(MASK_PNG, np.uint8)]) | _NUMBERS}),
    st.integers(0, 1100), st.text(min_size=1, max_size=20))
def test_fuzz_convert(meta: dict[str, Any], size: int, name: str) -> None:
    """A valid metadata dict with any of its fields replaced or added converts to a valid record or raises
    the one-line error: nothing else."""
    from facelab.faceset.dfl.convert import convert

    try:
        converted = convert({**_VALID_META, **meta}, name, (size, size), 3)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert converted.record.size == size


@settings(max_examples=_examples(100), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(1, 1 << 16), st.booleans())
def test_fuzz_whole_files(dfl_set: dict[str, Any], edits: list[tuple[int, int]], cut: int, rewarp: bool) -> None:
    """A DFL face file damaged in its header and metadata (and cut short): one face file out, or the
    one-line error, nothing else."""
    from facelab.faceset.dfl.importer import DflImportResult, _convert_one

    name = next(n for n in dfl_set["originals"] if n.endswith(".jpg"))
    data = bytearray((dfl_set["folder"] / name).read_bytes())
    for pos, value in edits:
        data[pos % len(data)] = value
    try:
        out = _convert_one(bytes(data[:cut]), name, 0, DflImportResult(Path(".")), 90 if rewarp else None)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert out is None or read_record_bytes(out).size == 128


def read_record_bytes(data: bytes) -> FaceRecord:
    from facelab.faceset.record import record_from_bytes

    return record_from_bytes(data, "fuzzed.jpg")


def test_cli(dfl_set: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from facelab.cli.main import app, main

    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["faceset", "import-dfl", str(dfl_set["folder"]), "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "Imported 4 faces" in run.output and "whole_face 4" in run.output
    assert "skipped 1 image(s) without DFL metadata" in run.output
    info = CliRunner().invoke(app, ["faceset", "info", str(out)])
    assert info.exit_code == 0 and "4 faces" in info.output and "whole_face 4" in info.output
    # a user error: one line on stderr and exit code 2, through the entry point's wrapper
    monkeypatch.setattr(sys, "argv", ["facelab", "faceset", "import-dfl", str(tmp_path / "nope"), "-o", str(out)])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.strip().count("\n") == 0 and "not found" in err
