"""Packed facesets (.fpack): byte-exact round trip, damaged packs, and training from a pack."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from facelab.core.errors import InputError
from facelab.faceset.folder import list_face_files
from facelab.faceset.pack import MAGIC, PackFile, pack_faceset, unpack_faceset
from facelab.faceset.store import FolderStore, PackStore, open_store
from facelab.train.options import TrainOptions
from facelab.train.samples import FaceSampleDataset, FaceSet, SampleOptions, make_loader
from facelab.train.trainer import Trainer

_FOOTER = struct.Struct("<QQII8s")


@pytest.fixture(scope="module")
def packed(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder, pack): the bundled src faces plus a foreign image and a malformed face file, and its pack."""
    src, _ = sample_faces
    base = tmp_path_factory.mktemp("packed")
    folder = base / "faces"
    folder.mkdir()
    for p in list_face_files(src):
        shutil.copy(p, folder / p.name)
    shutil.copy(Path(__file__).parents[1] / "samples" / "NOTICE", folder / "notes.txt")  # not an image: ignored
    ok = cv2_write_plain(folder / "holiday.jpg")  # a photo without facelab metadata: foreign
    assert ok
    face = list_face_files(src)[0].read_bytes()
    (folder / "cut.jpg").write_bytes(face[: len(face) // 2])  # a face file cut short: invalid
    pack = base / "faces.fpack"
    result = pack_faceset(folder, pack)
    assert result.count == len(list_face_files(src))
    assert [p.name for p in result.foreign] == ["holiday.jpg"]
    assert [p.name for p, _ in result.invalid] == ["cut.jpg"]
    return folder, pack


def cv2_write_plain(path: Path) -> bool:
    import cv2

    img = np.full((80, 120, 3), 127, np.uint8)
    return bool(cv2.imwrite(str(path), img))


def test_unpack_restores_every_byte(packed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, pack = packed
    out = tmp_path / "out"
    n = unpack_faceset(pack, out)
    faces = [p for p in list_face_files(folder) if p.name not in ("holiday.jpg", "cut.jpg")]
    assert n == len(faces) > 50
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in faces)
    for p in faces:
        assert (out / p.name).read_bytes() == p.read_bytes(), p.name
    with pytest.raises(InputError, match="already holds face files"):
        unpack_faceset(pack, out)
    with pytest.raises(InputError, match="already exists"):
        pack_faceset(folder, pack)


def test_pack_store_matches_folder_store(packed: tuple[Path, Path]) -> None:
    folder, pack = packed
    a, b = FolderStore(folder), open_store(pack)
    assert isinstance(b, PackStore)
    assert list(a.names) == list(b.names) and len(a) == len(b)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.yaws, b.yaws)
    np.testing.assert_array_equal(a.pitches, b.pitches)
    np.testing.assert_array_equal(a.sizes, b.sizes)
    np.testing.assert_array_equal(a.type_codes, b.type_codes)
    assert list(a.records) == list(b.records)
    assert all(a.read_bytes(i) == b.read_bytes(i) for i in range(len(a)))
    assert a.nbytes() == b.nbytes() and b.paths[2] == pack / b.names[2]
    assert [p.name for p in a.foreign] == ["holiday.jpg"] and b.foreign == []


def test_faceset_reads_a_pack_like_its_folder(packed: tuple[Path, Path]) -> None:
    folder, pack = packed
    fa, fb = FaceSet(folder), FaceSet(pack)
    assert len(fa) == len(fb) and (fa.face_type, fa.size) == (fb.face_type, fb.size) == ("whole_face", 128)
    assert [p.name for p in fa.foreign] == ["holiday.jpg"] and [p.name for p, _ in fa.invalid] == ["cut.jpg"]
    for i in (0, 7, len(fa) - 1):
        np.testing.assert_array_equal(fa.read_bgr(i), fb.read_bgr(i))
        assert fa.records[i] == fb.records[i]
    opts = SampleOptions(64, "full", seed=3, ct_mode="rct")
    da, db = FaceSampleDataset(fa, opts, fa), FaceSampleDataset(fb, opts, fb)
    for i in (1, 5):
        aug = da.draw(np.random.default_rng(i))
        xa, xb = da.render(i, aug), db.render(i, aug)
        for key in xa:
            assert torch.equal(xa[key], xb[key]), key
    # picklable (a spawned DataLoader worker reopens the pack)
    fc = pickle.loads(pickle.dumps(fb))
    np.testing.assert_array_equal(fc.read_bgr(3), fb.read_bgr(3))


def test_loader_workers_read_a_pack(packed: tuple[Path, Path]) -> None:
    _, pack = packed
    faces = FaceSet(pack)
    faces.read_bgr(0)  # the parent has opened its descriptor before the workers fork
    ds = FaceSampleDataset(faces, SampleOptions(64, "whole_face", seed=0))
    loader = make_loader(ds, 4, workers=2, seed=0)
    it = iter(loader)
    try:
        seen: set[int] = set()
        for _ in range(6):
            batch = next(it)
            assert batch["target"].shape == (4, 3, 64, 64)
            assert float(batch["target"].std()) > 0.05  # real pixels, not a blank
            seen.update(int(i) for i in batch["index"])
        assert len(seen) > 8
    finally:
        del it, loader
    faces.read_bgr(1)  # the parent's reads still work after the workers


# ----------------------------------------------------------------------------------------------------
# damaged packs: one clear error each


def _footer(data: bytes) -> tuple[int, int, int, int, bytes]:
    return _FOOTER.unpack(data[-_FOOTER.size:])  # type: ignore[return-value]


@pytest.mark.parametrize("cut", [0.3, 0.97, 0.9999])
def test_truncated_pack(packed: tuple[Path, Path], tmp_path: Path, cut: float) -> None:
    data = packed[1].read_bytes()
    bad = tmp_path / "cut.fpack"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError, match=r"truncated or damaged pack file \(no end marker"):
        PackFile(bad)


def test_damaged_index_and_data(packed: tuple[Path, Path], tmp_path: Path) -> None:
    data = packed[1].read_bytes()
    index_offset, index_length, _, _, _ = _footer(data)
    bad = tmp_path / "bad.fpack"
    for pos in (index_offset + 3, index_offset + 200, index_offset + index_length - 5):
        flipped = bytearray(data)
        flipped[pos] ^= 0x40
        bad.write_bytes(bytes(flipped))
        with pytest.raises(InputError, match=r"index checksum mismatch"):
            PackFile(bad)
    # a flipped byte in a face's data is caught when that face is read
    flipped = bytearray(data)
    flipped[100] ^= 0x01
    bad.write_bytes(bytes(flipped))
    with PackFile(bad) as pf:
        with pytest.raises(InputError, match=r"fails its checksum"):
            pf.read_bytes(0)
        assert pf.read_bytes(1)
    # footer pointing elsewhere
    bad.write_bytes(data[: -_FOOTER.size] + _FOOTER.pack(index_offset + 8, index_length, 0, 1, b"FLFPEND\x00"))
    with pytest.raises(InputError, match=r"points outside the file"):
        PackFile(bad)


def test_wrong_magic_and_version(packed: tuple[Path, Path], tmp_path: Path) -> None:
    data = packed[1].read_bytes()
    bad = tmp_path / "bad.fpack"
    bad.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(InputError, match=r"not a facelab pack \(wrong magic"):
        PackFile(bad)
    bad.write_bytes(MAGIC + struct.pack("<I", 2) + data[12:])
    with pytest.raises(InputError, match=r"unsupported pack format version 2 \(this facelab reads version 1\)"):
        PackFile(bad)
    bad.write_bytes(b"")
    with pytest.raises(InputError, match="empty pack file"):
        PackFile(bad)
    with pytest.raises(InputError, match="pack file not found"):
        FaceSet(tmp_path / "missing.fpack")


def test_index_content_is_validated_beyond_its_checksum(packed: tuple[Path, Path], tmp_path: Path) -> None:
    """An index with a correct checksum but a path-like name (unpack would escape the folder) is refused."""
    data = bytearray(packed[1].read_bytes())
    index_offset, index_length, _, version, end = _footer(bytes(data))
    (json_len,) = struct.unpack_from("<Q", data, index_offset)
    start = index_offset + 8
    meta = json.loads(data[start : start + json_len])
    first = meta["names"][0]
    evil = ("../" + first)[: len(first)]
    text = data[start : start + json_len].replace(json.dumps(first).encode(), json.dumps(evil).encode(), 1)
    assert len(text) == json_len
    data[start : start + json_len] = text
    crc = zlib.crc32(bytes(data[index_offset : index_offset + index_length]))
    data[-_FOOTER.size:] = _FOOTER.pack(index_offset, index_length, crc, version, end)
    bad = tmp_path / "evil.fpack"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"damaged pack file \(face file name .* is not a plain file name\)"):
        PackFile(bad)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facelab.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_cli_pack_unpack(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = sample_faces
    res = _cli("faceset", "pack", src, "-o", tmp_path / "src.fpack")
    assert res.returncode == 0 and "Packed" in res.stdout, res.stderr
    res = _cli("faceset", "unpack", tmp_path / "src.fpack", "-o", tmp_path / "back")
    assert res.returncode == 0, res.stderr
    assert [p.read_bytes() for p in list_face_files(tmp_path / "back")] == [p.read_bytes()
                                                                         for p in list_face_files(src)]
    (tmp_path / "junk.fpack").write_bytes(b"not a pack at all, just text" * 4)
    res = _cli("faceset", "unpack", tmp_path / "junk.fpack", "-o", tmp_path / "x")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "not a facelab pack" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_training_from_packs_with_workers(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    """The trainer takes packs wherever it takes folders; forked DataLoader workers read them."""
    src, dst = sample_faces
    pack_faceset(src, tmp_path / "src.fpack")
    pack_faceset(dst, tmp_path / "dst.fpack")
    opts = TrainOptions(arch="df-ud", resolution=64, ae_dims=32, e_dims=16, d_dims=16, d_mask_dims=8, batch_size=4,
                        workers=2, preview_every=0, log_every=1, autosave_minutes=60, backup_hours=0)
    trainer = Trainer(tmp_path / "model", opts, tmp_path / "src.fpack", tmp_path / "dst.fpack")
    assert len(trainer.src_set) == len(list_face_files(src))
    assert trainer.train(iterations=3).iteration == 3
    assert json.loads((tmp_path / "model" / "state.json").read_text())["iteration"] == 3


def test_mixed_face_types_in_a_pack_are_refused_by_training(packed: tuple[Path, Path], tmp_path: Path) -> None:
    from facelab.faceset.record import read_record, update_record

    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in list_face_files(packed[0])[:3]:  # digit names sort before holiday.jpg and cut.jpg
        shutil.copy(p, folder / p.name)
    odd = list_face_files(folder)[1]
    update_record(odd, read_record(odd).model_copy(update={"face_type": "full"}))
    pack_faceset(folder, tmp_path / "mixed.fpack")
    store = open_store(tmp_path / "mixed.fpack")
    assert [store.face_type(i) for i in range(len(store))] == ["whole_face", "full", "whole_face"]
    with pytest.raises(InputError, match=rf"mixed face types in .*mixed\.fpack.*full \(e\.g\. {odd.name}\)"):
        FaceSet(tmp_path / "mixed.fpack")
