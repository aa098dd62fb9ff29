"""C2PA Content Credentials: signed manifests on merged images and videos, read back, validated, tampering
caught; the key made on first use in a temporary config folder; nothing fetched from the network."""

from __future__ import annotations

import json
import os
import socket
import struct
import zlib
from pathlib import Path
from typing import Any

import c2pa
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facelab.core.errors import InputError
from facelab.media.encode import build_video
from facelab.media.frames import encode_image, frame_name
from facelab.media.video import iter_frames
from facelab.provenance import credentials as cr
from facelab.provenance import signing
from facelab.provenance.credentials import DIGITAL_SOURCE_TYPE, ContentCredentials, read_credentials
from facelab.provenance.marker import ProvenanceMarker, marker_for
from facelab.provenance.record import read_image_record, read_video_record
from facelab.provenance.signing import SigningOptions, load_identity, make_chain
from facelab.provenance.verify import report_lines, verify

REPO = Path(__file__).parents[1]
DST = REPO / "samples" / "dst.mp4"
MODEL_ID = "7c1e00aa42" + "9b" * 27
N_FRAMES = 24


@pytest.fixture(autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and XDG_CONFIG_HOME in one temporary folder for the whole module (one key, made on first use)."""
    home = tmp_path_factory.getbasetemp() / "c2pa_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for key in (signing.ENV_DIR, signing.ENV_CERT, signing.ENV_KEY):
        monkeypatch.delenv(key, raising=False)
    return home


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt from Python fails the test (the Rust library is held offline by its settings,
    checked in test_offline_settings)."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [rgb for index, rgb in iter_frames(DST) if index < N_FRAMES]


@pytest.fixture()
def marker() -> ProvenanceMarker:
    return marker_for(MODEL_ID, {"frames": "frames"}, ContentCredentials())


def _signed_image(tmp_path: Path, marker: ProvenanceMarker, rgb: np.ndarray, fmt: str) -> tuple[Path, Path]:
    parent = tmp_path / f"dst_frame.{fmt}"
    parent.write_bytes(encode_image(rgb, fmt))
    out = tmp_path / f"merged.{fmt}"
    out.write_bytes(marker.tag(encode_image(marker.mark(rgb), fmt), out.name, parent))
    return out, parent


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for ctype, body in chunks:
        out += struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
    return bytes(out)


def _top_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Top-level MP4 boxes: type -> (offset, size)."""
    pos, boxes = 0, {}
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8:pos + 16])
        size = size or len(data) - pos
        boxes.setdefault(kind, (pos, size))
        pos += size
    return boxes


# ----------------------------------------------------------------------------------------------------
# images


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_image_manifest_written_read_validated(tmp_path: Path, marker: ProvenanceMarker, frames: list[np.ndarray],
                                               fmt: str) -> None:
    out, parent = _signed_image(tmp_path, marker, frames[3], fmt)
    rep = read_credentials(out)
    assert rep.state == "trusted" and not rep.tampered and rep.failures == []  # trusted: the user's own root
    assert rep.claim_generator is not None and rep.claim_generator.startswith("facelab ")
    assert rep.digital_source_types == ["compositeWithTrainedAlgorithmicMedia"]
    assert rep.signer == "facelab signer"
    assert rep.watermark == {**marker.record.watermark, "model_id": MODEL_ID}
    digest = cr.file_sha256(parent)
    assert rep.ingredients == [f"{parent.name} (parentOf, sha256:{digest})", "source identity (componentOf)"]
    # facelab's own record and the watermark are still there, next to the manifest
    assert read_image_record(out) == marker.record
    report = verify(out)
    assert report.watermark_found and report.record_source == "metadata" and report.c2pa.state == "trusted"
    text = "\n".join(report_lines(report))
    assert "C2PA manifest: VALID" in text and "compositeWithTrainedAlgorithmicMedia" in text
    assert json.loads(json.dumps(report.to_json()))["c2pa"]["state"] == "trusted"


def test_image_one_edit_is_tampered(tmp_path: Path, marker: ProvenanceMarker, frames: list[np.ndarray]) -> None:
    """Pixels edited after signing, the manifest left in place: the data hash no longer matches."""
    out, _ = _signed_image(tmp_path, marker, frames[5], "png")
    chunks = _png_chunks(out.read_bytes())
    edited = frames[5].copy()
    edited[100:140, 100:140] = 255 - edited[100:140, 100:140]
    new_idat = [c for c in _png_chunks(encode_image(edited, "png")) if c[0] == b"IDAT"]
    first = next(i for i, c in enumerate(chunks) if c[0] == b"IDAT")
    rest = [c for c in chunks if c[0] != b"IDAT"]
    out.write_bytes(_png_bytes(rest[:first] + new_idat + rest[first:]))
    rep = read_credentials(out)
    assert rep.tampered and rep.state == "invalid"
    assert any(f.startswith("assertion.dataHash.mismatch") for f in rep.failures)
    assert "TAMPERED" in "\n".join(report_lines(verify(out)))


def test_jpeg_bytes_edited_is_tampered(tmp_path: Path, marker: ProvenanceMarker, frames: list[np.ndarray]) -> None:
    out, _ = _signed_image(tmp_path, marker, frames[5], "jpg")
    data = bytearray(out.read_bytes())
    data[-200] ^= 0x55  # inside the entropy-coded scan, before the EOI marker
    out.write_bytes(bytes(data))
    rep = read_credentials(out)
    assert rep.tampered and rep.state == "invalid"


def test_other_verifier_sees_valid_but_untrusted(tmp_path: Path, marker: ProvenanceMarker,
                                                 frames: list[np.ndarray]) -> None:
    """Anyone without this user's root: intact and valid, signer not on their trust list, not tampered."""
    out, _ = _signed_image(tmp_path, marker, frames[0], "png")
    rep = read_credentials(out, signing=SigningOptions(dir=tmp_path / "someone_else"))
    assert rep.state == "valid" and not rep.tampered
    assert [f.split(":")[0] for f in rep.failures] == ["signingCredential.untrusted"]


def test_unsigned_image(tmp_path: Path, frames: list[np.ndarray]) -> None:
    path = tmp_path / "plain.png"
    path.write_bytes(encode_image(frames[0], "png"))
    assert read_credentials(path).state == "absent"
    assert "C2PA manifest: none" in report_lines(verify(path))


# ----------------------------------------------------------------------------------------------------
# videos


@pytest.fixture()
def signed_video(tmp_path: Path, marker: ProvenanceMarker, frames: list[np.ndarray]) -> Path:
    folder = tmp_path / "merged"
    folder.mkdir()
    for index, rgb in enumerate(frames):
        (folder / frame_name(index, "png")).write_bytes(encode_image(marker.mark(rgb), "png"))
    out = tmp_path / "out.mp4"
    build_video(folder, out, fps=30, audio_from=DST, crf=18)
    marker.finish_video(out, parent=DST)
    return out


def test_video_manifest_written_read_validated(signed_video: Path, marker: ProvenanceMarker) -> None:
    rep = read_credentials(signed_video)
    assert rep.state == "trusted" and not rep.tampered
    assert rep.digital_source_types == ["compositeWithTrainedAlgorithmicMedia"]
    assert rep.ingredients == [f"dst.mp4 (parentOf, sha256:{cr.file_sha256(DST)})", "source identity (componentOf)"]
    assert read_video_record(signed_video) == marker.record  # the container record survives the signing
    report = verify(signed_video, max_frames=8)
    assert report.watermark_found and report.record_source == "metadata" and report.c2pa.state == "trusted"


def test_video_mdat_edit_is_tampered(signed_video: Path) -> None:
    data = bytearray(signed_video.read_bytes())
    offset, size = _top_boxes(bytes(data))[b"mdat"]
    for i in range(offset + size // 2, offset + size // 2 + 64):  # bytes of a frame in the middle
        data[i] ^= 0xFF
    signed_video.write_bytes(bytes(data))
    rep = read_credentials(signed_video)
    assert rep.tampered and rep.state == "invalid"
    assert any(f.startswith("assertion.bmffHash.mismatch") for f in rep.failures)
    assert "TAMPERED" in "\n".join(report_lines(verify(signed_video, max_frames=2)))


def test_matroska_keeps_record_without_manifest(tmp_path: Path, marker: ProvenanceMarker,
                                               frames: list[np.ndarray]) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for index, rgb in enumerate(frames[:6]):
        (folder / frame_name(index, "png")).write_bytes(encode_image(rgb, "png"))
    out = tmp_path / "out.mkv"
    build_video(folder, out, fps=30)
    marker.finish_video(out)
    assert read_video_record(out) == marker.record
    assert read_credentials(out).state == "unsupported"


# ----------------------------------------------------------------------------------------------------
# manifest content, signing material, offline


def test_src_is_named_only_as_source_identity(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = REPO / "samples" / "src.mp4"
    plain = marker_for(MODEL_ID, {"src": src.name}, ContentCredentials())
    credited = marker_for(MODEL_ID, None, ContentCredentials(credit="Jane Example"))
    for name, m in (("plain", plain), ("credited", credited)):
        (tmp_path / name).mkdir()
        out, _ = _signed_image(tmp_path / name, m, frames[0], "png")
        with out.open("rb") as fh:
            store = c2pa.Reader("image/png", fh, context=c2pa.Context(
                settings=c2pa.Settings.from_dict(cr.offline_settings()))).json()
        manifest = json.loads(store)
        active = manifest["manifests"][manifest["active_manifest"]]
        src_ing = [i for i in active["ingredients"] if i["relationship"] == "componentOf"]
        assert len(src_ing) == 1 and src_ing[0]["title"] == "source identity"
        assert "src.mp4" not in store and cr.file_sha256(src) not in store
        if name == "plain":
            assert "description" not in src_ing[0] and "Jane" not in store
        else:
            assert "Jane Example" in src_ing[0]["description"]
        actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
        assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
        assert actions[1]["digitalSourceType"] == DIGITAL_SOURCE_TYPE


def test_key_made_on_first_use_in_config_folder(_home: Path, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    folder = signing.c2pa_dir()
    assert folder == _home / ".config" / "facelab" / "c2pa"
    ident = load_identity()
    assert ident.self_made and ident.alg == "es256"
    assert (folder / signing.KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert load_identity() == ident  # made once, then reused
    assert "PRIVATE" not in repr(ident)
    monkeypatch.setenv(signing.ENV_DIR, str(tmp_path / "elsewhere"))
    other = load_identity()
    assert other.fingerprint != ident.fingerprint and (tmp_path / "elsewhere" / signing.CERT_FILE).is_file()


def test_users_own_certificate(tmp_path: Path, frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    _ca, chain, key = make_chain()
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    own = SigningOptions(cert=tmp_path / "chain.pem", key=tmp_path / "key.pem")
    ident = load_identity(own)
    assert not ident.self_made and ident.chain_pem == chain
    m = marker_for(MODEL_ID, None, ContentCredentials(own))
    out, _ = _signed_image(tmp_path, m, frames[1], "png")
    rep = read_credentials(out)
    assert rep.state == "valid" and not rep.tampered  # not this user's facelab root: untrusted, but intact
    monkeypatch.setenv(signing.ENV_CERT, str(tmp_path / "chain.pem"))
    monkeypatch.setenv(signing.ENV_KEY, str(tmp_path / "key.pem"))
    assert load_identity().chain_pem == chain  # the environment names it too
    monkeypatch.delenv(signing.ENV_KEY)
    with pytest.raises(InputError, match="give both"):
        load_identity()
    _, _, other_key = make_chain()
    (tmp_path / "other.key").write_bytes(other_key)
    with pytest.raises(InputError, match="does not belong"):
        load_identity(SigningOptions(cert=tmp_path / "chain.pem", key=tmp_path / "other.key"))
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(InputError, match="PEM"):
        load_identity(SigningOptions(cert=tmp_path / "bad.pem", key=tmp_path / "key.pem"))


def test_offline_settings() -> None:
    """The C2PA library is told never to reach the network: no hosts allowed, no OCSP, no remote manifests,
    no timestamp authority (signing passes None as its URL)."""
    settings = cr.offline_settings()
    assert settings["core"]["allowed_network_hosts"] == []
    assert settings["verify"]["ocsp_fetch"] is False and settings["verify"]["remote_manifest_fetch"] is False
    c2pa.Settings.from_dict(settings)  # the library accepts every key
    assert os.environ["XDG_CONFIG_HOME"].startswith(str(Path(os.environ["HOME"])))


def test_verify_cli_json(tmp_path: Path, marker: ProvenanceMarker, frames: list[np.ndarray]) -> None:
    from facelab.cli.main import app

    out, _ = _signed_image(tmp_path, marker, frames[2], "png")
    result = CliRunner().invoke(app, ["verify", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["c2pa"]["state"] == "trusted" and data["c2pa"]["tampered"] is False
    assert data["watermark_found"] is True


def test_cv2_reads_signed_frames(tmp_path: Path, marker: ProvenanceMarker, frames: list[np.ndarray]) -> None:
    """The manifest is invisible to decoders: a signed frame decodes to the same pixels."""
    out, _ = _signed_image(tmp_path, marker, frames[4], "png")
    back = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, marker.mark(frames[4]))


# ----------------------------------------------------------------------------------------------------
# end to end: facelab merge --video on the bundled samples (the path the studio's video step takes)


@pytest.fixture(scope="module")
def tiny_model(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facelab.train.options import TrainOptions
    from facelab.train.trainer import Trainer

    model_dir = tmp_path_factory.mktemp("c2pa_model") / "model"
    opts = TrainOptions(arch="df-ud", resolution=64, ae_dims=64, e_dims=16, d_dims=16, d_mask_dims=8, batch_size=4,
                        workers=0, preview_every=0, backup_hours=0)
    trainer = Trainer(model_dir, opts, *sample_faces)
    trainer.train(iterations=2)
    trainer.close()
    return model_dir


def test_merge_cli_signs_frames_and_video(tmp_path: Path, sample_faces: tuple[Path, Path], tiny_model: Path) -> None:
    from facelab.cli.main import app
    from facelab.media.frames import extract_frames

    frames_dir = tmp_path / "frames"
    extract_frames(DST, frames_dir, fps=6)
    out, video = tmp_path / "merged", tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["merge", "--model-dir", str(tiny_model), "--frames", str(frames_dir),
                                      "--aligned", str(sample_faces[1]), "-o", str(out), "--video", str(video),
                                      "--credit", "Jane Example", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "signed C2PA manifest" in result.output
    merged = [p for p in sorted(out.glob("*.png")) if read_image_record(p) is not None]
    assert merged, "no merged frame carries a record"
    for path in merged[:3]:
        rep = read_credentials(path)
        assert rep.state == "trusted" and not rep.tampered
        assert rep.ingredients[0].startswith(f"{path.name} (parentOf, sha256:{cr.file_sha256(frames_dir / path.name)}")
    rep = read_credentials(video)
    assert rep.state == "trusted" and not rep.tampered
    assert rep.ingredients[0] == f"dst.mp4 (parentOf, sha256:{cr.file_sha256(DST)})"
    text = "\n".join(report_lines(verify(video, max_frames=4)))
    assert "C2PA manifest: VALID" in text and "provenance record (metadata)" in text
    built = tmp_path / "built.mp4"
    result = CliRunner().invoke(app, ["video", "build", str(out), "-o", str(built), "--audio-from", str(DST)])
    assert result.exit_code == 0, result.output
    rep = read_credentials(built)
    assert rep.state == "trusted" and rep.ingredients[0].startswith("dst.mp4 (parentOf")
    assert read_video_record(built) is not None
