"""Fuzzing every parser of outside data (hypothesis): valid files from facelab's writers, mutated.

Property (tests/fuzz_support.py ``check``): each input parses to a valid object or is refused with
facelab's one-line input error (FacelabError family): no other exception, no hang, no allocation beyond
the cap. The default suite runs a modest, derandomized number of examples per parser; the slow test runs
many more (``make test-slow``; ``HYPOTHESIS_PROFILE=big`` scales the default ones too) and writes the count
per parser to ``$FACELAB_FUZZ_REPORT`` when set. Inputs that once failed live in tests/fuzz_corpus/ and
are replayed by ``test_corpus``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save
from torch import nn

from facelab.core.config import build_options, read_config_file
from facelab.core.errors import FacelabError
from facelab.core.journal import Journal
from facelab.core.model_folder import (
    ModelState,
    load_checkpoint,
    load_modules,
    load_optimizers,
    save_checkpoint,
)
from facelab.faceset import pack as fpack
from facelab.faceset.metadata_io import read_export
from facelab.faceset.record import FaceRecord, Pose, SourceInfo, XSegPolygon, read_face, record_from_bytes, write_face
from facelab.faceset.sort.rename import _read_journal as read_sort_journal
from facelab.media import metadata as md
from facelab.media.frames import read_frame_info, read_image_rgb
from facelab.media.png import decode_png
from facelab.merge.options import MergeOptions
from facelab.merge.session import MergeSession, read_session_text
from facelab.provenance.record import make_record, read_image_record, read_sidecar, write_image_record
from facelab.studio.training import _parse_lines as studio_metric_lines
from facelab.studio.training import read_runs
from facelab.train.checkpoint import MODEL_FOLDER
from facelab.train.options import TrainOptions
from facelab.train.preview import loss_plot, read_metrics
from facelab.xseg.labels import read_label_file
from facelab.xseg.model import read_face_type
from facelab.xseg.options import XSegOptions

from .fuzz_support import (
    BIG_EXAMPLES,
    CASES,
    check,
    dumps,
    examples,
    json_bytes,
    json_text,
    mutated_bytes,
    mutated_json,
)

CORPUS = Path(__file__).parent / "fuzz_corpus"
SIZE = 64


# ----------------------------------------------------------------------------------------------------
# valid seeds, made by facelab's writers


def _record(**changes: Any) -> FaceRecord:
    rng = np.random.default_rng(3)
    lm = rng.uniform(8, SIZE - 8, size=(68, 2))
    fields: dict[str, Any] = {
        "face_type": "whole_face", "size": SIZE, "face_index": 0, "landmarks": lm,
        "source": SourceInfo(frame="000007", index=7, width=320, height=240), "rect": [10.0, 12.0, 90.0, 100.0],
        "source_landmarks": lm * 2 + 5, "image_to_face": [[0.5, 0.0, -2.0], [0.0, 0.5, -3.0]],
        "pose": Pose(yaw=3.0, pitch=-2.0, roll=1.0), "identity": rng.normal(size=128), "sharpness": 12.5,
        "detector": "dlib", "landmarker": "dlib", "tool_version": "0.1.0",
        "xseg_polygons": [XSegPolygon(kind="include", points=[(4.0, 4.0), (60.0, 4.0), (30.0, 60.0)])],
    }
    return FaceRecord.model_validate(fields | changes)


def _image() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return np.dstack([x * 4, y * 4, (x + y) * 2]).astype(np.uint8)


_SEEDS: dict[str, Any] = {}


def _seed_dir() -> Path:
    if "dir" not in _SEEDS:
        _SEEDS["dir"] = Path(tempfile.mkdtemp(prefix="facelab-fuzz-seeds-"))
    return Path(_SEEDS["dir"])


def face_bytes(ext: str) -> bytes:
    key = f"face{ext}"
    if key not in _SEEDS:
        path = _seed_dir() / f"seed{ext}"
        write_face(path, _image(), _record(), jpeg_quality=50)
        _SEEDS[key] = path.read_bytes()
    return bytes(_SEEDS[key])


def pack_bytes() -> bytes:
    if "pack" not in _SEEDS:
        folder = _seed_dir() / "faces"
        folder.mkdir(exist_ok=True)
        for i, ext in enumerate([".jpg", ".png", ".jpg"]):
            write_face(folder / f"{i:06d}_0{ext}", _image(), _record(face_index=0), jpeg_quality=50)
        out = _seed_dir() / "seed.fpack"
        fpack.pack_faceset(folder, out)
        _SEEDS["pack"] = out.read_bytes()
    return bytes(_SEEDS["pack"])


def _pack_index(data: bytes) -> tuple[int, dict[str, Any], bytes]:
    """(index offset, index JSON, the arrays' bytes) of a valid pack."""
    offset, length, _crc, _v, _end = fpack._FOOTER.unpack(data[-fpack._FOOTER.size:])
    (json_len,) = fpack._JSON_LEN.unpack(data[offset:offset + 8])
    meta = json.loads(data[offset + 8:offset + 8 + json_len])
    head = 8 + json_len
    head += -head % 8
    return offset, meta, data[offset + head:offset + length]


def rebuild_pack(data: bytes, meta_text: bytes, arrays: bytes) -> bytes:
    """A pack with another index (JSON and arrays) and a correct CRC: what a careful attacker writes."""
    offset, _, _ = _pack_index(data)
    head = fpack._JSON_LEN.pack(len(meta_text)) + meta_text
    head += b"\x00" * (-len(head) % 8)
    index = head + arrays
    footer = fpack._FOOTER.pack(offset, len(index), zlib.crc32(index), fpack.FORMAT_VERSION, fpack.END_MAGIC)
    return data[:offset] + index + footer


def session_seed(version: int) -> dict[str, Any]:
    session = MergeSession(MergeOptions(erode=4, blur=8)).with_range("000010", "000020", erode=12)
    session = session.with_frame("000015", blur=30).with_frame("cover", erode=2)
    obj = session.to_json()
    if version == 1:
        obj = {k: v for k, v in obj.items() if k != "ranges"} | {"version": 1}
    return json.loads(json.dumps(obj))


LABELS_SEED = {"schema": "facelab.xseg_labels", "version": 1, "faces": {
    "000012_0.jpg": [{"kind": "include", "points": [[10, 20], [118, 20], [118, 120], [10, 120]]},
                     {"kind": "exclude", "points": [40, 60, 80, 60, 80, 90]}],
    "000013_0.png": []}}

CONFIG_SEED = {"train": {"arch": "df-ud", "resolution": 64, "batch_size": 4, "face_type": "whole_face"},
               "merge": {"erode": 3, "mode": "overlay"}, "extract": {"size": 256}}


def _toml(obj: Any) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not isinstance(v, float) or math.isfinite(v) else ("nan" if v != v else
                                                                                    ("inf" if v > 0 else "-inf"))
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(str(k))} = {value(x)}" for k, x in v.items()) + "}"
        return '""'

    lines = []
    for k, v in (obj.items() if isinstance(obj, dict) else [("x", obj)]):
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(str(k))}]")
            lines += [f"{json.dumps(str(kk))} = {value(vv)}" for kk, vv in v.items()]
        else:
            lines.insert(0, f"{json.dumps(str(k))} = {value(v)}")
    return "\n".join(lines) + "\n"


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.norm(self.fc(x)))


def model_seed() -> dict[str, bytes]:
    """A model folder's files after one save: config.json, state.json, weights and optimizer."""
    if "model" not in _SEEDS:
        folder = _seed_dir() / "model"
        folder.mkdir(exist_ok=True)
        torch.manual_seed(0)
        net = _Tiny()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        net(torch.randn(4, 3)).sum().backward()
        opt.step()
        MODEL_FOLDER.write_config(folder, TrainOptions.model_validate({"resolution": 64, "arch": "df-ud"}))
        save_checkpoint(folder, ModelState(iteration=5, last_losses={"src": 0.5}), {"ae": net}, {"opt": opt})
        _SEEDS["model"] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return dict(_SEEDS["model"])


def provenance_seed() -> dict[str, Any]:
    return make_record("ab" * 32, source={"video": "dst.mp4", "frames": 10}, created="2026-01-31T12:00:00Z").to_json()


def provenance_image(ext: str) -> bytes:
    key = f"prov{ext}"
    if key not in _SEEDS:
        path = _seed_dir() / f"prov{ext}"
        ok, enc = cv2.imencode(ext, _image())
        assert ok
        path.write_bytes(enc.tobytes())
        write_image_record(path, make_record("cd" * 32))
        _SEEDS[key] = path.read_bytes()
    return bytes(_SEEDS[key])


def journal_seed() -> str:
    lines = [{"journal": "merge", "version": 1, "settings": {"model": "x", "erode": 3}}]
    lines += [{"frame": f"{i:06d}", "faces": i % 2, "ok": True} for i in range(4)]
    return "".join(json.dumps(x) + "\n" for x in lines)


METRICS_SEED = "".join(json.dumps({"iteration": i, "time": 1e9 + i, "src_loss": 0.5 / i, "dst_loss": 0.4 / i,
                                   "it_per_s": 3.0}) + "\n" for i in range(1, 5))
RUNS_SEED = "".join(json.dumps(x) + "\n" for x in [
    {"version": 1, "event": "start", "iteration": 0, "time": 1e9, "pid": 123},
    {"version": 1, "event": "end", "iteration": 40, "time": 1e9 + 60, "pid": 123, "reason": "done"}])
FRAME_INFO_SEED = {"schema": "facelab.video", "version": 1, "source": "dst.mp4", "width": 320, "height": 240,
                   "frame_count": 10, "format": "png", "fps_fraction": "30000/1001"}
SORT_JOURNAL_SEED = {"schema": "facelab.sort-journal", "version": 1, "phase": 1,
                     "renames": [["a.jpg", "a.jpg.tmp", "00000_a.jpg"], ["b.jpg", "b.jpg.tmp", "00001_b.jpg"]]}


# ----------------------------------------------------------------------------------------------------
# the parsers, each taking the mutated input and a scratch folder


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    path.write_bytes(data)
    return path


def parse_face(data: bytes, folder: Path, ext: str) -> None:
    """The face-file record and the container readers it uses, the pixels too."""
    for fn in (md.extract_json, md.strip_json, md.image_size, md.check_complete):
        with contextlib.suppress(md.MetadataError):
            fn(data)
    record_from_bytes(data, f"face{ext}")
    read_face(_write(folder, f"face{ext}", data))


def embed_text(image: bytes, text: str) -> bytes:
    """``image`` carrying ``text`` as its metadata payload, as is (embed_json would refuse NaN, a non-object)."""
    raw = text.encode("utf-8", errors="surrogateescape")
    return md._png_rebuild(image, raw) if image.startswith(md.PNG_SIGNATURE) else md._jpeg_rebuild(image, raw)


def parse_face_payload(text: str, folder: Path, ext: str) -> None:
    """A record payload (mutated JSON text) embedded in a valid image: the record validation."""
    record_from_bytes(embed_text(face_bytes(ext), text), f"face{ext}")


def parse_image(data: bytes, folder: Path, ext: str) -> None:
    """Frames and images facelab decodes (the fast PNG reader, then OpenCV)."""
    decode_png(data)
    read_image_rgb(_write(folder, f"frame{ext}", data))


def parse_pack(data: bytes, folder: Path) -> None:
    path = _write(folder, "faces.fpack", data)
    with fpack.PackFile(path) as pf:
        for i in range(len(pf)):
            record_from_bytes(pf.read_bytes(i), pf.index.names[i])


def parse_model(files: dict[str, bytes], folder: Path) -> None:
    """A model folder: config, state, weights and optimizer, loaded the way training resumes."""
    for p in folder.iterdir():
        p.unlink()
    for name, data in files.items():
        _write(folder, name, data)
    MODEL_FOLDER.read_config(folder)
    ckpt = load_checkpoint(folder)
    if ckpt is None:
        return
    net = _Tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    load_modules({"ae": net}, ckpt.weights, folder / "state.json")
    load_optimizers({"opt": opt}, ckpt.opt_tensors, ckpt.opt_meta, folder)
    net(torch.randn(4, 3)).sum().backward()  # a training step on what was loaded
    opt.step()


def parse_xseg_config(data: bytes, folder: Path) -> None:
    from facelab.xseg.model import read_config as read_xseg_config

    _write(folder, "config.json", data)
    read_xseg_config(folder)
    read_face_type(folder)


def parse_jsonl(text: str, folder: Path) -> None:
    path = _write(folder, "x.jsonl", text)
    journal = Journal(path, "merge", {"model": "x", "erode": 3}, key="frame")
    assert all(isinstance(e, dict) for e in journal.latest.values())
    rows = read_metrics(path)
    assert all(isinstance(r.get("iteration"), (int, float)) for r in rows)
    loss_plot(rows)
    studio_metric_lines(text)
    _write(folder, "runs.jsonl", text)
    read_runs(folder)


@dataclass(frozen=True)
class Target:
    name: str
    strategy: Callable[[], st.SearchStrategy[Any]]
    parse: Callable[[Any, Path], None]
    default: int  # examples in the default suite


def _face_hot(ext: str) -> list[int]:
    data = face_bytes(ext)
    return [i for i in range(min(len(data), 4096)) if data[i] == 0xFF] if ext == ".jpg" else [8, 12, 33, 37, 41]


def _utf8(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _model_files() -> st.SearchStrategy[dict[str, bytes]]:
    seed = model_seed()
    state = json.loads(seed["state.json"])
    names = [n for n in seed if n.endswith(".safetensors")]

    @st.composite
    def files(draw: st.DrawFn) -> dict[str, bytes]:
        out = dict(seed)
        which = draw(st.sampled_from(["config.json", "state.json", "weights", "weights", "tensors"]))
        if which in ("config.json", "state.json"):
            out[which] = draw(json_bytes(json.loads(seed[which])))
        elif which == "weights":  # a damaged safetensors file whose checksum state.json records
            name = draw(st.sampled_from(names))
            hdr = int.from_bytes(seed[name][:8], "little")
            hot = list(range(0, 8)) + list(range(8, 8 + hdr, 7))
            out[name] = draw(mutated_bytes(seed[name], hot=hot))
            st_obj = json.loads(json.dumps(state))
            st_obj["sha256"][name] = hashlib.sha256(out[name]).hexdigest()
            out["state.json"] = json.dumps(st_obj).encode()
        else:  # a well-formed safetensors file with other tensors: wrong names, shapes, dtypes, metadata
            name = draw(st.sampled_from(names))
            key = draw(st.sampled_from(["ae.fc.weight", "ae.fc.bias", "ae.norm.running_mean", "opt.0.exp_avg",
                                        "opt.0.step", "rng.torch", "ae.x", "opt.x.y", "opt.0"]))
            shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
            dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.int64, torch.uint8, torch.bool,
                                          torch.complex64, torch.float64]))
            tensors = {key: torch.zeros(shape, dtype=dtype)}
            meta = {"format": "pt"}
            if draw(st.booleans()):
                mkey = draw(st.sampled_from(["opt.param_groups", "opt.scalars"]))
                meta[mkey] = _utf8(draw(json_text([{"lr": 0.001, "params": [0, 1, 2, 3]}] if "groups" in mkey
                                            else {"0": {"step": 1}})))
            out[name] = st_save(tensors, metadata=meta)
            st_obj = json.loads(json.dumps(state))
            st_obj["sha256"][name] = hashlib.sha256(out[name]).hexdigest()
            out["state.json"] = json.dumps(st_obj).encode()
        return out

    return files()


def _pack_inputs() -> st.SearchStrategy[bytes]:
    seed = pack_bytes()
    offset, meta, arrays = _pack_index(seed)

    @st.composite
    def index_edit(draw: st.DrawFn) -> bytes:
        if draw(st.booleans()):
            text = json_text(meta)
            return rebuild_pack(seed, draw(text).encode("utf-8", errors="surrogateescape"), arrays)
        return rebuild_pack(seed, json.dumps(meta).encode(), draw(mutated_bytes(arrays)))

    hot = list(range(16)) + list(range(len(seed) - 32, len(seed))) + list(range(offset, offset + 8))
    return st.one_of(mutated_bytes(seed, hot=hot), index_edit())


def _provenance_image(ext: str) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_bytes(provenance_image(ext)),
                     json_text(provenance_seed()).map(lambda t: embed_text(provenance_image(ext), t)))


def jsonl_text(rows: list[Any]) -> st.SearchStrategy[str]:
    """JSON lines: the rows mutated as one JSON array, then written one per line."""
    def lines(obj: Any) -> str:
        return "".join(dumps(x) + "\n" for x in obj) if isinstance(obj, list) else dumps(obj) + "\n"

    return mutated_json(rows).map(lines)


def _config_text() -> st.SearchStrategy[tuple[str, str]]:
    return st.one_of(json_text(CONFIG_SEED).map(lambda t: (".json", t)),
                     mutated_json(CONFIG_SEED).map(lambda o: (".toml", _toml(o))),
                     mutated_bytes(_toml(CONFIG_SEED).encode()).map(
                         lambda b: (".toml", b.decode("utf-8", errors="surrogateescape"))))


def _parse_config(arg: tuple[str, str], folder: Path) -> None:
    ext, text = arg
    path = _write(folder, f"config{ext}", text)
    read_config_file(path, "train")
    for model, flags in ((TrainOptions, {}), (MergeOptions, {"erode": 5})):  # each section on its own
        with contextlib.suppress(FacelabError):
            build_options(model, path, flags)


def _parse_session(text: str, folder: Path) -> None:
    session = read_session_text(text, folder / "session.json")
    for stem in ("000001", "000015", "cover", "²"):
        session.options_for(stem)
    json.dumps(session.to_json())


def _parse_provenance_sidecar(data: bytes, folder: Path) -> None:
    _write(folder, "out.mp4.provenance.json", data)
    read_sidecar(folder / "out.mp4")


def _parse_enhance_settings(data: bytes, folder: Path) -> None:
    from facelab.faceset.enhance import _check_settings

    work = folder / "w"
    work.mkdir(exist_ok=True)
    _write(work, "settings.json", data)
    _check_settings(work, {"model": "realesrgan-x4", "strength": 1.0})


def _parse_swap_state(data: bytes, folder: Path) -> None:
    from facelab.workflow.swap import _Steps

    _write(folder, "swap.json", data)
    steps = _Steps(folder, {"src": "a.mp4", "dst": "b.mp4"})
    steps.done("extract_src")


TARGETS: list[Target] = [
    Target("face-record-jpeg", lambda: mutated_bytes(face_bytes(".jpg"), hot=_face_hot(".jpg")),
           lambda d, f: parse_face(d, f, ".jpg"), 60),
    Target("face-record-png", lambda: mutated_bytes(face_bytes(".png"), hot=_face_hot(".png")),
           lambda d, f: parse_face(d, f, ".png"), 60),
    Target("face-record-json", lambda: json_text(_record().to_payload()),
           lambda d, f: parse_face_payload(d, f, ".png"), 80),
    Target("image-decode", lambda: st.one_of(mutated_bytes(face_bytes(".png")).map(lambda b: (".png", b)),
                                             mutated_bytes(face_bytes(".jpg")).map(lambda b: (".jpg", b))),
           lambda d, f: parse_image(d[1], f, d[0]), 40),
    Target("metadata-export", lambda: json_bytes({"schema": "facelab.faceset.metadata", "version": 1,
                                                  "faces": {"000001_0.jpg": _record().to_payload()}}),
           lambda d, f: read_export(_write(f, "export.json", d)), 40),
    Target("fpack", _pack_inputs, parse_pack, 80),
    Target("merge-session-v1", lambda: json_text(session_seed(1)), _parse_session, 50),
    Target("merge-session-v2", lambda: json_text(session_seed(2)), _parse_session, 60),
    Target("xseg-labels", lambda: json_bytes(LABELS_SEED),
           lambda d, f: read_label_file(_write(f, "labels.json", d)), 50),
    Target("config-file", _config_text, _parse_config, 60),
    Target("model-folder", _model_files, parse_model, 80),
    Target("xseg-config", lambda: json_bytes(json.loads(json.dumps(
        {"schema": "facelab.xseg", "version": 1, "tool_version": "0.1.0", "immutable": ["base_channels"],
         "options": XSegOptions().model_dump(mode="json"), "face_type": "whole_face"}))),
           parse_xseg_config, 30),
    Target("provenance-sidecar", lambda: json_bytes(provenance_seed()), _parse_provenance_sidecar, 40),
    Target("provenance-image", lambda: st.one_of(_provenance_image(".png").map(lambda b: (".png", b)),
                                                 _provenance_image(".jpg").map(lambda b: (".jpg", b))),
           lambda d, f: read_image_record(_write(f, f"img{d[0]}", d[1])), 40),
    Target("jsonl", lambda: st.one_of(
        jsonl_text([json.loads(ln) for ln in journal_seed().splitlines()]),
        jsonl_text([json.loads(ln) for ln in METRICS_SEED.splitlines()]),
        mutated_bytes(journal_seed().encode()).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
        mutated_bytes(METRICS_SEED.encode()).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
        mutated_bytes(RUNS_SEED.encode()).map(lambda b: b.decode("utf-8", errors="surrogateescape"))),
           parse_jsonl, 60),
    Target("frame-info", lambda: json_bytes(FRAME_INFO_SEED),
           lambda d, f: read_frame_info(_write(f, "video.json", d).parent), 30),
    Target("sort-journal", lambda: json_bytes(SORT_JOURNAL_SEED),
           lambda d, f: read_sort_journal(_write(f, "sort.json", d)), 30),
    Target("enhance-settings", lambda: json_bytes({"schema": "facelab.enhance", "version": 1,
                                                   "model": "realesrgan-x4", "strength": 1.0}),
           _parse_enhance_settings, 20),
    Target("swap-state", lambda: json_bytes({"schema": "facelab.swap", "version": 1,
                                             "inputs": {"src": "a.mp4", "dst": "b.mp4"},
                                             "done": {"extract_src": {"seconds": 1.0}}}),
           _parse_swap_state, 20),
]
BY_NAME = {t.name: t for t in TARGETS}


def run_target(target: Target, n: int, **extra: Any) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"facelab-fuzz-{target.name}-"))

    @settings(max_examples=n, **extra)
    @given(target.strategy())
    def prop(value: Any) -> None:
        check(target.name, lambda: target.parse(value, folder), trace_memory=True)

    prop()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", [t.name for t in TARGETS])
def test_fuzz(name: str) -> None:
    """Each parser on a modest number of mutated inputs (derandomized: the same cases every run)."""
    target = BY_NAME[name]
    before = CASES[name]
    run_target(target, examples(target.default))
    assert CASES[name] > before


@pytest.mark.slow
def test_fuzz_big() -> None:
    """Every parser on many mutated inputs (random, a new sample each run); counts (and any failure, shrunk)
    to $FACELAB_FUZZ_REPORT. One parser failing does not stop the others."""
    import os
    import time

    counts: dict[str, Any] = {}
    failures: dict[str, str] = {}
    only = [n for n in os.environ.get("FACELAB_FUZZ_TARGETS", "").split(",") if n]  # default: every parser
    for target in [t for t in TARGETS if not only or t.name in only]:
        before, start = CASES[target.name], time.monotonic()
        try:
            run_target(target, BIG_EXAMPLES, derandomize=False)
        except Exception as exc:  # hypothesis has shrunk it: report, go on with the next parser
            failures[target.name] = " ".join(str(exc).split())[:2000]
        counts[target.name] = {"cases": CASES[target.name] - before, "seconds": round(time.monotonic() - start, 1)}
    report = os.environ.get("FACELAB_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({"cases": counts, "failures": failures}, indent=1) + "\n", encoding="utf-8")
    assert not failures, failures
    assert all(v["cases"] >= BIG_EXAMPLES // 2 for v in counts.values()), counts


# ----------------------------------------------------------------------------------------------------
# the regression corpus: tests/fuzz_corpus/<target>/<file>, each once made a parser fail


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*/*") if p.is_file() and p.name != "README.md")


def corpus_input(path: Path) -> Any:
    """The input a corpus file stands for: its bytes, decoded as each target takes them."""
    target, data = path.parent.name, path.read_bytes()
    if target in ("face-record-jpeg", "face-record-png", "fpack", "metadata-export", "xseg-labels",
                  "xseg-config", "provenance-sidecar", "frame-info", "sort-journal", "enhance-settings",
                  "swap-state"):
        return data
    if target in ("merge-session-v1", "merge-session-v2", "jsonl", "face-record-json"):
        return data.decode("utf-8", errors="surrogateescape")
    if target == "face-record-json":
        return data.decode("utf-8", errors="surrogateescape")
    if target in ("image-decode", "provenance-image"):
        return (path.suffix, data)
    if target == "config-file":
        return (path.suffix, data.decode("utf-8", errors="surrogateescape"))
    if target == "model-folder":  # a JSON object of file name -> latin-1 text of the bytes
        return {k: v.encode("latin-1") for k, v in json.loads(data).items()}
    raise AssertionError(f"unknown corpus folder {target}")


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus(path: Path, tmp_path: Path) -> None:
    """Inputs that once broke a parser: each is now parsed or refused with a one-line error."""
    target = BY_NAME[path.parent.name]
    outcome = check(target.name, lambda: target.parse(corpus_input(path), tmp_path))
    assert outcome in ("ok", "refused")


def test_corpus_is_not_empty() -> None:
    assert len(_corpus_files()) >= 10


# ----------------------------------------------------------------------------------------------------
# headers that claim more than the file holds: refused before anything that size is allocated


@contextlib.contextmanager
def _allocates_under(limit: int) -> Iterator[None]:
    """Python/numpy allocations (traced) and the process's peak resident size grow by less than ``limit``."""
    import resource
    import tracemalloc

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < limit, f"allocated {peak / 2**20:.0f} MiB"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss < limit


def test_safetensors_claims_are_refused(tmp_path: Path) -> None:
    from facelab.core.errors import InputError
    from facelab.core.model_folder import read_tensors

    header = json.dumps({"w": {"dtype": "F32", "shape": [1_000_000, 1_000_000], "data_offsets": [0, 4 * 10**12]}})
    cases = {
        "huge-header-length": (10**12).to_bytes(8, "little") + b"{}",
        "huge-tensor": len(header).to_bytes(8, "little") + header.encode() + b"\0" * 16,
        "shape-disagrees": (lambda h: len(h).to_bytes(8, "little") + h.encode() + b"\0" * 16)(
            json.dumps({"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 16]}})),
        "unknown-dtype": (lambda h: len(h).to_bytes(8, "little") + h.encode() + b"\0" * 16)(
            json.dumps({"w": {"dtype": "Q99", "shape": [4], "data_offsets": [0, 16]}})),
    }
    for name, data in cases.items():
        path = _write(tmp_path, f"{name}.safetensors", data)
        with _allocates_under(64 * 2**20), pytest.raises(InputError, match="corrupted"):
            read_tensors(path, None)


def test_pack_claims_are_refused(tmp_path: Path) -> None:
    from facelab.core.errors import InputError

    seed = pack_bytes()
    offset, meta, arrays = _pack_index(seed)
    footer = fpack._FOOTER
    _, length, crc, version, end = footer.unpack(seed[-footer.size:])
    json_len = len(json.dumps(meta).encode())
    cases = {
        "index-length": seed[:-footer.size] + footer.pack(offset, 10**12, crc, version, end),
        "index-offset": seed[:-footer.size] + footer.pack(2**63, length, crc, version, end),
        "json-length": rebuild_pack(seed, json.dumps(meta).encode(), arrays)[:offset]
        + fpack._JSON_LEN.pack(10**12) + seed[offset + 8:],
        "count": rebuild_pack(seed, json.dumps(meta | {"count": 10**12}).encode(), arrays),
        "shape": rebuild_pack(seed, json.dumps(meta | {"arrays": meta["arrays"] | {
            "landmarks": meta["arrays"]["landmarks"] | {"shape": [10**9, 68, 2]}}}).encode(), arrays),
        "face-length": rebuild_pack(seed, json.dumps(meta).encode(),
                                    arrays[:meta["arrays"]["length"]["start"]] + (2**63 - 1).to_bytes(8, "little")
                                    + arrays[meta["arrays"]["length"]["start"] + 8:]),
    }
    assert json_len > 0
    for name, data in cases.items():
        path = _write(tmp_path, f"{name}.fpack", data)
        with _allocates_under(64 * 2**20), pytest.raises(InputError):
            parse_pack(path.read_bytes(), tmp_path)


def test_image_claims_are_refused() -> None:
    """A PNG whose metadata inflates past the cap, an IDAT that inflates past its header's size, an
    IHDR claiming 60,000 x 60,000 pixels, a JPEG claiming 65,535 metadata segments."""
    from facelab.media.png import SIGNATURE, _chunk

    def deflate(head: bytes, fill: int, mib: int, tail: bytes = b"") -> bytes:
        z = zlib.compressobj(6)
        out = [z.compress(head)] + [z.compress(bytes([fill]) * 2**20) for _ in range(mib)]
        return b"".join([*out, z.compress(tail), z.flush()])

    bomb = deflate(b"{", 32, 2 * md._INFLATE_MAX // 2**20, b"}")  # twice the cap of JSON, in about 100 KB
    body = b"facelab\x00\x01\x00\x00\x00" + bomb
    png = face_bytes(".png")
    itxt = len(body).to_bytes(4, "big") + b"iTXt" + body + zlib.crc32(b"iTXt" + body).to_bytes(4, "big")
    with _allocates_under(3 * md._INFLATE_MAX), pytest.raises(md.MetadataError, match="too large"):
        md.extract_json(md.strip_json(png)[:33] + itxt + md.strip_json(png)[33:])

    def png_of(w: int, h: int, payload: bytes) -> bytes:
        header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
        return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", payload) + _chunk(b"IEND", b"")

    idat_bomb = deflate(b"", 0, 200)
    with _allocates_under(100 * 2**20):
        assert decode_png(png_of(100, 100, idat_bomb)) is None
        assert decode_png(png_of(60_000, 60_000, idat_bomb)) is None
    jpg = md.strip_json(face_bytes(".jpg"))
    seg_body = md.SIGNATURE + (0).to_bytes(2, "big") + (65535).to_bytes(2, "big") + b"{}"
    forged = jpg[:2] + b"\xff\xeb" + (len(seg_body) + 2).to_bytes(2, "big") + seg_body + jpg[2:]
    with pytest.raises(md.MetadataError, match="header says 65535"):
        md.extract_json(forged)
