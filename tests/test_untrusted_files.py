"""No file facelab reads can run code.

A pickle can run any function while it is loaded (its REDUCE opcode calls a callable the file names:
``os.system``, ``exec``, ...). DeepFaceLab's facesets and models are pickles, so files traded between users
are a way in. facelab reads none: every format is JSON, safetensors, JPEG/PNG or a media container, and the
one PyTorch ``.pth`` it reads (the packaged MobileNetV2 weights) goes through ``torch.load(weights_only=True)``,
the restricted unpickler that builds tensors and plain containers only.

These tests hold that by proof, not by inspection: a payload that writes a marker file when unpickled is
first shown to work (an unrestricted ``torch.load``/``pickle.loads`` does write the marker), then handed to
every reader of outside data, in the place each format would carry it; each must refuse it with a one-line
InputError, and the marker must never appear. ``test_no_code_loading_calls`` checks the source: facelab never
calls pickle/marshal/shelve loaders, ``torch.load`` without ``weights_only=True``, ``numpy.load`` with
``allow_pickle=True``, ``yaml.load``, ``torch.jit.load`` or ``eval``/``exec``/``compile``.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import facelab
from facelab.core.errors import FacelabError, InputError
from facelab.core.model_folder import read_tensors
from facelab.face.mobilenet import load_mobilenet_v2
from facelab.media import metadata as md
from facelab.media.frames import read_image_rgb
from facelab.media.video import iter_frames, probe_video
from facelab.provenance.record import read_image_record

from . import test_fuzz as fz

ROOT = Path(facelab.__file__).parent


class _Payload:
    """Pickles to ``os.system("touch MARKER")``: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


class _ExecPayload:
    """Pickles to ``exec(...)`` of Python source that writes the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload ran"


def _pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps({"weights": _Payload(marker), "exec": _ExecPayload(marker)}, protocol=2)


def _pth_bytes(marker: Path) -> bytes:
    """A PyTorch checkpoint (zip with data.pkl) whose state dict holds the payloads beside a real tensor."""
    buf = io.BytesIO()
    torch.save({"features.0.0.weight": torch.zeros(2), "evil": _Payload(marker), "evil2": _ExecPayload(marker)}, buf)
    return buf.getvalue()


def test_the_payloads_do_run_when_unpickled(tmp_path: Path) -> None:
    """The tests below mean something: loaded without restriction, each payload writes its marker."""
    for make, load in ((_pickle_bytes, pickle.loads),
                       (_pth_bytes, lambda b: torch.load(io.BytesIO(b), weights_only=False))):
        marker = tmp_path / f"ran-{make.__name__}"
        load(make(marker))
        assert marker.exists()


def test_mobilenet_pth_refuses_a_pickle_payload(tmp_path: Path, marker: Path) -> None:
    """The MobileNetV2 ``.pth`` goes through the restricted loader: a payload is refused, nothing runs."""
    for name, data in (("evil.pth", _pth_bytes(marker)), ("evil_legacy.pth", _pickle_bytes(marker))):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError) as err:
            load_mobilenet_v2(path)
        assert "\n" not in str(err.value) and "weights" in str(err.value)
        assert not marker.exists()


def test_the_packaged_mobilenet_still_loads() -> None:
    """The restricted loader reads the real weights: the refusal above is not a refusal of everything."""
    net = load_mobilenet_v2()
    assert sum(p.numel() for p in net.parameters()) > 3_000_000


def _payload_inputs(marker: Path) -> dict[str, list[Any]]:
    """For each fuzzed parser, the inputs that carry the payload where its format would."""
    pk, pth = _pickle_bytes(marker), _pth_bytes(marker)
    raw = [pk, pth]
    # the payload inside a face file's metadata slot, in a pack's index, in a JSON string value
    as_text = pk.decode("latin-1")
    face_jpg = [fz.embed_text(fz.face_bytes(".jpg"), as_text),
                fz.embed_text(fz.face_bytes(".jpg"), pth.decode("latin-1"))]
    face_png = [fz.embed_text(fz.face_bytes(".png"), as_text)]
    seed = fz.pack_bytes()
    _, _, arrays = fz._pack_index(seed)
    pack = [*raw, fz.rebuild_pack(seed, pk, arrays), seed[:16] + pth]
    model = fz.model_seed()
    weights = next(n for n in model if n.startswith("weights-"))
    model_inputs: list[Any] = [
        model | {"state.json": pk},
        model | {"config.json": pth},
        model | {weights: pth},  # a .pth where safetensors belong (the checksum in state.json is not the guard)
        model | {weights: pk},
    ]
    for files in model_inputs[2:]:
        state = fz.json.loads(model["state.json"])
        state["sha256"][weights] = fz.hashlib.sha256(files[weights]).hexdigest()
        files["state.json"] = fz.json.dumps(state).encode()
    return {
        "face-record-jpeg": raw + face_jpg,
        "face-record-png": raw + face_png,
        "face-record-json": [as_text],
        "image-decode": [(".png", pk), (".jpg", pth), (".png", pth)],
        "metadata-export": raw,
        "fpack": pack,
        "merge-session-v1": [as_text],
        "merge-session-v2": [as_text],
        "xseg-labels": raw,
        "config-file": [(".toml", as_text), (".json", as_text), (".toml", pth.decode("latin-1"))],
        "model-folder": model_inputs,
        "xseg-config": raw,
        "provenance-sidecar": raw,
        "provenance-image": [(".png", pk), (".jpg", face_jpg[0])],
        "jsonl": [as_text, pth.decode("latin-1")],
        "frame-info": raw,
        "sort-journal": raw,
        "enhance-settings": raw,
        "swap-state": raw,
    }


def test_every_parser_refuses_pickle_payloads(tmp_path: Path, marker: Path) -> None:
    """Each reader of outside data, given the payload where its format would carry it: refused or read as
    inert data (a JSON-lines reader skips the lines; an image without a record has no provenance), and the
    marker never appears."""
    inputs = _payload_inputs(marker)
    assert set(inputs) == {t.name for t in fz.TARGETS}, "a new fuzz target needs its payload case here"
    for name, cases in inputs.items():
        target = fz.BY_NAME[name]
        for i, case in enumerate(cases):
            folder = tmp_path / f"{name}-{i}"
            folder.mkdir()
            outcome = fz.check(name, lambda t=target, c=case, f=folder: t.parse(c, f))
            if name not in ("jsonl", "provenance-image"):  # every other format refuses it outright
                assert outcome == "refused", (name, i)
            assert not marker.exists(), (name, i)


def test_safetensors_reader_refuses_a_pth(tmp_path: Path, marker: Path) -> None:
    """Weights are read with safetensors only: a pickled checkpoint under a .safetensors name is refused."""
    for name, data in (("a.safetensors", _pth_bytes(marker)), ("b.safetensors", _pickle_bytes(marker))):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError, match="corrupted"):
            read_tensors(path, None)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".png", ".jpg"])
def test_media_decoders_refuse_a_pickle(tmp_path: Path, marker: Path, suffix: str) -> None:
    """Videos and images are decoded by FFmpeg (PyAV) and OpenCV, which hold no interpreter: a pickle named
    as a video or an image is refused with a one-line error."""
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(_pth_bytes(marker))
    with pytest.raises(FacelabError):
        probe_video(path)
    with pytest.raises(FacelabError):
        next(iter_frames(path))
    with pytest.raises(FacelabError):
        read_image_rgb(path)
    assert md.extract_json(path.read_bytes()) is None
    assert read_image_record(path) is None


# ----------------------------------------------------------------------------------------------------
# the source never loads code


_BANNED_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("_pickle", "load"), ("_pickle", "loads"),
    ("cPickle", "load"), ("cPickle", "loads"), ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"),
    ("dill", "load"), ("dill", "loads"), ("joblib", "load"), ("jsonpickle", "decode"), ("yaml", "load"),
    ("yaml", "unsafe_load"), ("yaml", "full_load"), ("jit", "load"),
    ("package", "PackageImporter"),
}
_BANNED_BUILTINS = {"eval", "exec", "compile", "__import__"}
_BANNED_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "jsonpickle", "joblib", "yaml"}
# Restricted pickle decoders that build plain data only, each with its own payload tests (module: reason).
ALLOWED_PICKLE_READERS: dict[str, str] = {}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _problems(tree: ast.AST, rel: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        # `import pickle` is fine (its calls are checked below), under another name or its loaders imported
        # by name are not; its exception classes may be imported (to catch what torch.load raises)
        if isinstance(node, ast.Import) and rel not in ALLOWED_PICKLE_READERS:
            found += [f"{rel}:{node.lineno}: imports {a.name} as {a.asname}" for a in node.names
                      if a.name.split(".")[0] in _BANNED_MODULES and a.asname]
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _BANNED_MODULES \
                and rel not in ALLOWED_PICKLE_READERS:
            found += [f"{rel}:{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if not a.name.endswith("Error")]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        parts = name.rsplit(".", 1)
        where = f"{rel}:{node.lineno}: {name}(...)"
        if name in _BANNED_BUILTINS:
            found.append(where)
        elif len(parts) == 2 and (parts[0].split(".")[-1], parts[1]) in _BANNED_CALLS:
            if rel not in ALLOWED_PICKLE_READERS:
                found.append(where)
        elif name == "torch.load" or name.endswith(".torch.load"):
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append(where + " without weights_only=True")
        elif name in ("np.load", "numpy.load"):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                found.append(where + " with allow_pickle")
    return found


def test_no_code_loading_calls() -> None:
    problems: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        problems += _problems(ast.parse(path.read_text(encoding="utf-8")), rel)
    assert not problems, "calls that can run code from a file:\n" + "\n".join(problems)


def test_the_source_check_catches_each_pattern() -> None:
    """The checker above is not vacuous: each banned pattern in a snippet is reported."""
    bad = {
        "import pickle\npickle.loads(b'')": 1,
        "from pickle import loads": 1,
        "import pickle as p": 1,
        "torch.load('x.pth')": 1,
        "torch.load('x.pth', weights_only=False)": 1,
        "np.load('x.npy', allow_pickle=True)": 1,
        "import yaml\nyaml.load(s)": 1,
        "eval(text)": 1,
        "exec(text)": 1,
        "torch.jit.load('m.pt')": 1,
        "import marshal\nmarshal.loads(b'')": 1,
    }
    for src, count in bad.items():
        assert len(_problems(ast.parse(src), "snippet.py")) == count, src
    good = ("torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p)\nnp.load(p, allow_pickle=False)\n"
            "m.eval()\nimport pickle\nfrom pickle import UnpicklingError\nre.compile('x')")
    assert _problems(ast.parse(good), "snippet.py") == []


def test_zip_checkpoints_are_what_the_payload_uses() -> None:
    """The crafted .pth is a real PyTorch zip checkpoint (data.pkl inside), not a file torch rejects for its form."""
    data = _pth_bytes(Path("/nonexistent/marker"))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert any(n.endswith("data.pkl") for n in zf.namelist())
