"""`facelab export` and ONNX models in merge: the .dfm contract (names, order, shapes, dtypes, IR version and
opset), onnxruntime against PyTorch on real aligned faces for DF and LIAE at every preset's shape, the
dfl_whole_face framing against FaceFusion's template, DeepFaceLab AMP files (morph input), renamed exports
merging with provenance, and one-line errors.

Full-size presets are exported in a slow test; the default suite exports their graphs at reduced
dimensions (same architecture string, resolution and face type). onnxruntime 1.15.1 (DeepFaceLive's) is
checked when FACELAB_ORT115_PYTHON names a Python that has it (tools/ort_check.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from facelab.cli.main import app
from facelab.core.errors import InputError
from facelab.export import contract
from facelab.export.exporter import build_graph, export_model, to_onnx_bytes
from facelab.export.framing import (
    DFL_FRAMING,
    corner_displacement,
    dfl_resolution,
    resampling,
    template_transform,
)
from facelab.export.load import load_model
from facelab.export.options import ExportOptions
from facelab.export.runtime import DfmModel
from facelab.face.align import convert_transform, face_transform
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import read_face
from facelab.media.frames import extract_frames, read_image_rgb
from facelab.merge.options import MergeOptions
from facelab.merge.runner import run_merge
from facelab.train.inference import SwapModel
from facelab.train.nets import create_autoencoder, init_weights
from facelab.train.options import PRESETS, TrainOptions

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY = {"ae_dims": 32, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}


# ---- fixtures and helpers ----------------------------------------------------------------------

def _swap_model(arch: str, resolution: int, face_type: str, dims: dict[str, int], seed: int = 0,
                init: str = "he") -> SwapModel:
    """A model of this shape with random He-initialised weights: its outputs span 0..1 (PyTorch's default
    init leaves them all near 0.5, which would hide a wrong graph), and export fidelity does not depend on
    training."""
    torch.manual_seed(seed)
    opts = TrainOptions(arch=arch, resolution=resolution, face_type=face_type, **dims)  # type: ignore[arg-type]
    ae = create_autoencoder(opts.arch, opts.resolution, opts.ae_dims, opts.e_dims, opts.d_dims, opts.d_mask_dims)
    if init != "default":
        init_weights(ae, init)  # type: ignore[arg-type]
    return SwapModel(opts, ae.eval(), torch.device("cpu"), 0, "0" * 64)


@pytest.fixture(scope="module")
def real_faces(sample_faces: tuple[Path, Path]) -> list[tuple[np.ndarray, Any]]:
    """Four aligned dst faces (RGB uint8, whole_face 128) and their records."""
    faces = scan_faces(sample_faces[1]).faces
    out = []
    for path, _ in faces[::max(1, len(faces) // 4)][:4]:
        bgr, rec = read_face(path)
        out.append((np.ascontiguousarray(bgr[..., ::-1]), rec))
    return out


def _crops(real_faces: list[tuple[np.ndarray, Any]], face_type: str, size: int) -> np.ndarray:
    """The real faces re-cut to a face type / framing (edges repeated where it reaches past the aligned crop)."""
    out = []
    for img, rec in real_faces:
        mat = convert_transform(np.eye(3)[:2], rec.face_type, rec.size, face_type, size)
        out.append(cv2.warpAffine(img, mat, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out).astype(np.float32) / 255.0


def _ort(data: bytes) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _check_contract(proto: onnx.ModelProto, res: int, opset: int = contract.OPSET) -> None:
    """Names, order, shapes and dtypes exactly the .dfm contract; IR version and opset loadable by ORT 1.15."""
    assert proto.ir_version <= contract.MAX_IR_VERSION
    opsets = {o.domain: o.version for o in proto.opset_import}
    assert opsets.get("", 0) == opset <= contract.MAX_OPSET and set(opsets) <= {"", "ai.onnx"}

    def dims(v: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]

    inputs = [(i.name, dims(i), i.type.tensor_type.elem_type) for i in proto.graph.input]
    outputs = [(o.name, dims(o), o.type.tensor_type.elem_type) for o in proto.graph.output]
    f32 = onnx.TensorProto.FLOAT
    assert inputs == [("in_face:0", ["N", res, res, 3], f32)]
    assert outputs == [("out_face_mask:0", ["N", res, res, 1], f32), ("out_celeb_face:0", ["N", res, res, 3], f32),
                       ("out_celeb_face_mask:0", ["N", res, res, 1], f32)]


def _parity(model: SwapModel, real_faces: list[tuple[np.ndarray, Any]], fp16: bool = False,
            spread: bool = True) -> dict[str, float]:
    """Export in both formats; onnxruntime's outputs against PyTorch's on real faces (max abs per format)."""
    out: dict[str, float] = {}
    for fmt in ("dfm", "onnx"):
        graph, res, _ = build_graph(model, fmt, fp16)  # type: ignore[arg-type]
        data = to_onnx_bytes(graph, res, fmt)  # type: ignore[arg-type]
        if fmt == "dfm":
            _check_contract(onnx.load_from_string(data), res)
            x = _crops(real_faces, DFL_FRAMING, res)[..., ::-1].copy()  # NHWC BGR
        else:
            x = _crops(real_faces, model.face_type, res).transpose(0, 3, 1, 2).copy()  # NCHW RGB
        got = _ort(data).run(None, {_ort(data).get_inputs()[0].name: x})
        with torch.no_grad():
            want = graph(torch.from_numpy(x))
        if fmt == "onnx" and not fp16:  # facelab's interface is exactly the merge's PyTorch path
            face, mask, own = model.swap(torch.from_numpy(x))
            assert own is not None
            want = (face, mask, own)
        assert not spread or all(float(w.std()) > 0.05 for w in want), "outputs without spread test nothing"
        out[fmt] = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))
    return out


# ---- the contract and onnxruntime against PyTorch ---------------------------------------------------

CASES = [(preset, kind) for preset in sorted(PRESETS) for kind in ("df", "liae")]


@pytest.mark.parametrize(("preset", "kind"), CASES)
def test_onnxruntime_equals_pytorch_at_every_preset_shape(preset: str, kind: str,
                                                          real_faces: list[tuple[np.ndarray, Any]]) -> None:
    p = PRESETS[preset]
    mods = str(p["arch"]).partition("-")[2]
    model = _swap_model(f"{kind}-{mods}" if mods else kind, int(p["resolution"]), str(p["face_type"]), TINY)
    diffs = _parity(model, real_faces)
    assert max(diffs.values()) < 1e-3, diffs


@pytest.mark.parametrize("arch", ["df-t", "liae-udt", "liae-udtc"])
def test_modifiers_export(arch: str, real_faces: list[tuple[np.ndarray, Any]]) -> None:
    """The residual (-t) and x*cos(x) (-c) layers too, with and without -d. x*cos(x) on He-initialised
    random weights is chaotic (activations in the hundreds: float rounding changes the cosine's sign), so
    -c keeps PyTorch's default init, whose outputs have little spread: it checks the operators export."""
    cos = arch.endswith("c")
    model = _swap_model(arch, 64, "whole_face", TINY, init="default" if cos else "he")
    diffs = _parity(model, real_faces, spread=not cos)
    assert max(diffs.values()) < 1e-3, diffs


def test_fp16_keeps_float32_io(real_faces: list[tuple[np.ndarray, Any]], tmp_path: Path) -> None:
    model = _swap_model("liae-ud", 64, "whole_face", TINY)
    g32, res, _ = build_graph(model, "dfm", False)
    x = torch.from_numpy(_crops(real_faces, DFL_FRAMING, res)[..., ::-1].copy())
    with torch.no_grad():
        want = [t.numpy() for t in g32(x)]
    model16 = _swap_model("liae-ud", 64, "whole_face", TINY)
    g16, res16, _ = build_graph(model16, "dfm", True)
    data16 = to_onnx_bytes(g16, res16, "dfm")
    _check_contract(onnx.load_from_string(data16), res16)  # float32 in and out
    got = _ort(data16).run(None, {"in_face:0": x.numpy()})
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)) < 2e-2
    n16 = len(data16)
    n32 = len(to_onnx_bytes(g32, res, "dfm"))
    assert n16 < 0.6 * n32, (n16, n32)


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "kind"), CASES)
def test_full_size_presets(preset: str, kind: str, real_faces: list[tuple[np.ndarray, Any]]) -> None:
    p = PRESETS[preset]
    mods = str(p["arch"]).partition("-")[2]
    dims = {k: int(p[k]) for k in ("ae_dims", "e_dims", "d_dims", "d_mask_dims")}
    model = _swap_model(f"{kind}-{mods}", int(p["resolution"]), str(p["face_type"]), dims)
    diffs = _parity(model, real_faces)
    assert max(diffs.values()) < 1e-3, diffs


# ---- framing -------------------------------------------------------------------------------------------

def test_dfl_framing_matches_facefusions_template(sample_faces: tuple[Path, Path]) -> None:
    """On real faces, facelab's dfl_whole_face crop lands within a few pixels (at 224) of FaceFusion's
    five-point crop; facelab's whole_face is far off (the difference the export closes)."""
    before, after = [], []
    for folder in sample_faces:
        for _, rec in scan_faces(folder).faces:
            lm = rec.source_landmarks_array()
            ff = template_transform(lm, 224)
            before.append(corner_displacement(face_transform(lm, "whole_face", 224), ff, 224))
            after.append(corner_displacement(face_transform(lm, DFL_FRAMING, 224), ff, 224))
    assert len(after) > 100
    assert np.mean(after) < 7.0 and np.mean(before) > 15.0, (np.mean(after), np.mean(before))


def test_in_graph_resampling_equals_a_warp(real_faces: list[tuple[np.ndarray, Any]]) -> None:
    """The separable matrices cut the same crop as cv2.warpAffine of the composed transform (bicubic)."""
    img, rec = real_faces[0]
    dfl_r = dfl_resolution("full", 96)
    dfl = _crops([(img, rec)], DFL_FRAMING, dfl_r)[0]
    rows, cols, inside = resampling(DFL_FRAMING, dfl_r, "full", 96)
    got = np.stack([rows @ dfl[..., c] @ cols.T for c in range(3)], axis=-1)
    mat = convert_transform(np.eye(3)[:2], DFL_FRAMING, dfl_r, "full", 96)
    want = cv2.warpAffine(dfl, mat, (96, 96), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    assert inside.all()  # a full crop lies inside DFL's whole face
    # OpenCV quantises sample positions to 1/32 px: differences within 1.5 levels of 255, 0.1 on average
    assert np.abs(got - want).max() < 6 / 255 * 1.2 and np.abs(got - want).mean() < 0.1 / 255
    assert dfl_r == 144 and dfl_resolution("whole_face", 128) == 160 and dfl_resolution("whole_face", 64) == 80


# ---- DfmModel, merge, CLI ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_trained(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facelab.train.trainer import Trainer

    model_dir = tmp_path_factory.mktemp("export_model") / "model"
    opts = TrainOptions(arch="df-ud", resolution=64, batch_size=4, workers=0, preview_every=0, backup_hours=0,
                        **TINY)  # type: ignore[arg-type]
    trainer = Trainer(model_dir, opts, *sample_faces)
    trainer.train(iterations=2)
    trainer.close()
    return model_dir


@pytest.fixture(scope="module")
def few_frames(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three dst frames (6 fps) that have a face."""
    base = tmp_path_factory.mktemp("export_frames")
    extract_frames(ROOT / "samples" / "dst.mp4", base / "all", fps=6)
    stems = sorted({rec.source.frame for _, rec in scan_faces(sample_faces[1]).faces})[:3]
    (base / "frames").mkdir()
    for s in stems:
        (base / "frames" / f"{s}.png").symlink_to(base / "all" / f"{s}.png")
    return base / "frames"


class _AmpToy(nn.Module):
    """A DeepFaceLab AMP-like .dfm: in_face:0 and morph_value:0; the face is blended towards its negative by
    the morph value, the masks are a centred square."""

    def __init__(self, res: int) -> None:
        super().__init__()
        m = torch.zeros(1, res, res, 1)
        m[:, res // 4: 3 * res // 4, res // 4: 3 * res // 4] = 1.0
        self.square: Tensor
        self.register_buffer("square", m)

    def forward(self, face: Tensor, morph: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mask = self.square.expand(face.shape[0], -1, -1, -1)
        return mask, face * (1 - morph) + (1 - face) * morph, mask


def _amp_dfm(path: Path, res: int = 64) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_AmpToy(res), (torch.rand(1, res, res, 3), torch.tensor([0.5])), path, dynamo=False,
                          opset_version=12, input_names=["in_face:0", "morph_value:0"],
                          output_names=list(contract.DFM_OUTPUTS),
                          dynamic_axes={n: {0: "N"} for n in ["in_face:0", *contract.DFM_OUTPUTS]})
    return path


def test_amp_morph_input_runs_in_dfm_model_and_merge(few_frames: Path, sample_faces: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    path = _amp_dfm(tmp_path / "amp.dfm")
    x = torch.rand(2, 3, 64, 64)
    full = DfmModel(path, "cpu", morph_value=1.0)
    assert full.interface.morph and full.resolution == 64 and full.face_type == DFL_FRAMING
    assert full.model_id == hashlib.sha256(path.read_bytes()).hexdigest()
    face, mask, own = full.swap(x)
    assert torch.allclose(face, 1 - x, atol=1e-6) and own is not None and float(mask.mean()) == pytest.approx(0.25)
    none_face, _, _ = DfmModel(path, "cpu", morph_value=0.0).swap(x)
    assert torch.allclose(none_face, x, atol=1e-6)
    # merge through the AMP file: the morph value is a merge option
    out = tmp_path / "merged"
    s = run_merge(path, few_frames, sample_faces[1], out, MergeOptions(morph_value=0.5, mask_mode="dst"), workers=1)
    assert s.merged == 3 and s.model_id == full.model_id
    for p in few_frames.iterdir():  # morph 0.5: the square is mid-grey inside the face
        got, dst = read_image_rgb(out / p.name).astype(int), read_image_rgb(p).astype(int)
        assert np.abs(got - dst).max() > 40


def test_renamed_facelab_export_merges_with_provenance(tiny_trained: Path, few_frames: Path,
                                                       sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--model-dir", str(tiny_trained), "-o", str(tmp_path / "a.dfm")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    renamed = tmp_path / "someone.dfm"
    (tmp_path / "a.dfm").rename(renamed)
    model = load_model(renamed, "cpu")
    assert isinstance(model, DfmModel) and model.face_type == DFL_FRAMING and model.resolution == 80
    result = runner.invoke(app, ["merge", "--model", str(renamed), "--frames", str(few_frames), "--aligned",
                                 str(sample_faces[1]), "-o", str(tmp_path / "merged"), "--workers", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((tmp_path / "merged" / "merge.json").read_text())
    sha = hashlib.sha256(renamed.read_bytes()).hexdigest()
    assert summary["model_id"] == sha and summary["merged"] == 3
    from facelab.provenance.syncmark import VideoReader, model_prefix

    name = sorted(p.name for p in few_frames.iterdir())[0]
    reader = VideoReader()
    reader.add(read_image_rgb(tmp_path / "merged" / name))
    found = reader.read()
    assert found.found and found.payload.model_prefix == model_prefix(sha)
    # the facelab interface too, and its face type comes from the file's metadata
    runner.invoke(app, ["export", "--model-dir", str(tiny_trained), "-o", str(tmp_path / "b.onnx"),
                        "--format", "onnx", "--fp16"])
    own = load_model(tmp_path / "b.onnx", "cpu")
    assert own.face_type == "whole_face" and own.resolution == 64
    # dst2src needs a model folder
    with pytest.raises(InputError, match="dst2src"):
        run_merge(renamed, few_frames, sample_faces[1], tmp_path / "rev", MergeOptions(direction="dst2src"))


def _other_interface(path: Path) -> Path:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 64, 64])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3, 64, 64])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 12)])
    proto.ir_version = 7
    path.write_bytes(proto.SerializeToString())
    return path


def test_bad_models_are_one_line_errors(tmp_path: Path, sample_faces: tuple[Path, Path], few_frames: Path) -> None:
    other = _other_interface(tmp_path / "other.dfm")
    with pytest.raises(InputError, match="another interface"):
        load_model(other, "cpu")
    (tmp_path / "junk.dfm").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="not a loadable ONNX model"):
        load_model(tmp_path / "junk.dfm", "cpu")
    # a model folder without weights: export and merge refuse it
    no_weights = tmp_path / "model"
    from facelab.train.checkpoint import write_config

    no_weights.mkdir()
    write_config(no_weights, TrainOptions(arch="df-ud", resolution=64, **TINY))  # type: ignore[arg-type]
    for args in (["export", "--model-dir", str(no_weights), "-o", str(tmp_path / "x.dfm")],
                 ["merge", "--model", str(no_weights), "--frames", str(few_frames), "--aligned",
                  str(sample_faces[1]), "-o", str(tmp_path / "out")]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, InputError), result.output
    # through the real entry point: exit 2 and one line on stderr
    proc = subprocess.run([sys.executable, "-m", "facelab", "merge", "--model", str(other), "--frames",
                           str(few_frames), "--aligned", str(sample_faces[1]), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "another interface" in lines[0], proc.stderr


def test_export_writes_atomically_and_names_what_it_made(tiny_trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.dfm"
    r = export_model(tiny_trained, out, ExportOptions())
    assert out.stat().st_size == r.bytes and sorted(p.name for p in tmp_path.iterdir()) == ["m.dfm"]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta[contract.METADATA_FACE_TYPE] == DFL_FRAMING and meta[contract.METADATA_FORMAT] == "dfm"
    assert meta[contract.METADATA_MODEL_ID] == r.model_id and len(r.model_id) == 64
    with pytest.raises(InputError, match="folder does not exist"):
        export_model(tiny_trained, tmp_path / "nowhere" / "m.dfm")


# ---- int8 ---------------------------------------------------------------------------------------------------

# int8 against fp32 on src faces when calibrated on dst's (0..1 scale). Measured: the 2-iteration test model
# max 0.0015 / mean 0.0003 (its outputs have little spread); a 411-iteration quick96 model on faces of another
# clip max 0.05 / mean 0.0045 (docs/export.md); He-initialised random weights (outputs spanning 0..1, activations
# far from a trained model's) mean 0.010-0.020.
INT8_MAX_ABS = 0.02
INT8_MEAN_ABS = 0.005
INT8_RANDOM_MEAN_ABS = 0.03
INT8_IDENTITY = 0.02  # the swapped face's dlib distance to src, mean change from the fp32 file's (criterion: 0.05)


def test_int8_export_keeps_the_contract_and_the_face(tiny_trained: Path, sample_faces: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    """--quantize int8, calibrated on the dst faces: the contract (at QUANT_OPSET, float32 in and out), int8
    convolutions, a smaller file, and on src faces it never saw, outputs and the swapped face's identity close to
    the fp32 file's."""
    from facelab.face.identity import create_embedder, distance

    r32 = export_model(tiny_trained, tmp_path / "fp32.dfm", ExportOptions())
    r8 = export_model(tiny_trained, tmp_path / "int8.dfm", ExportOptions(quantize="int8",
                                                                         calibration=sample_faces[1]))
    assert (r8.quantize, r8.calibration, r8.resolution) == ("int8", sample_faces[1], r32.resolution)
    proto = onnx.load(str(r8.path))
    _check_contract(proto, r8.resolution, contract.QUANT_OPSET)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") >= ops.count("Conv") > 0 and "MatMul" in ops  # the resampling stays float
    assert r8.bytes < 0.5 * r32.bytes, (r8.bytes, r32.bytes)
    faces = scan_faces(sample_faces[0]).faces[::6][:8]
    records = [read_face(p) for p, _ in faces]
    x = _crops([(np.ascontiguousarray(b[..., ::-1]), rec) for b, rec in records], DFL_FRAMING, r8.resolution)
    x_bgr = np.ascontiguousarray(x[..., ::-1])
    outs = [_ort(r.path.read_bytes()).run(None, {contract.DFM_INPUT: x_bgr}) for r in (r32, r8)]
    diff = [np.abs(a - b) for a, b in zip(*outs, strict=True)]
    assert max(float(d.max()) for d in diff) < INT8_MAX_ABS and max(float(d.mean()) for d in diff) < INT8_MEAN_ABS, \
        [(float(d.max()), float(d.mean())) for d in diff]
    embedder = create_embedder()
    src = np.mean([embedder.embed(np.ascontiguousarray(b[..., ::-1]), rec.landmarks_array()) for b, rec in
                   (read_face(p) for p, _ in scan_faces(sample_faces[0]).faces[::3])], axis=0)
    change = []
    for k, (_, rec) in enumerate(records):
        mat = convert_transform(np.eye(3)[:2], rec.face_type, rec.size, DFL_FRAMING, r8.resolution)
        lm = rec.landmarks_array() @ mat[:, :2].T + mat[:, 2]
        d = [distance(embedder.embed((np.clip(o[1][k, ..., ::-1], 0, 1) * 255 + 0.5).astype(np.uint8), lm), src)
             for o in outs]
        change.append(d[1] - d[0])
    assert abs(float(np.mean(change))) < INT8_IDENTITY, change
    # DfmModel (merge, live) runs it through the same interface
    face, _mask, own = DfmModel(r8.path, "cpu").swap(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    assert face.shape == (len(x), 3, r8.resolution, r8.resolution) and own is not None


@pytest.mark.parametrize(("arch", "resolution", "face_type"), [("df-ud", 96, "full"), ("liae-ud", 64, "whole_face")])
def test_int8_of_random_weights_stays_close(arch: str, resolution: int, face_type: str,
                                            sample_faces: tuple[Path, Path]) -> None:
    """Outputs that span 0..1 (He-initialised weights), calibrated on dst faces, run on src faces."""
    from facelab.export.quantize import calibration_inputs, float_nodes, quantize_int8

    graph, res, _ = build_graph(_swap_model(arch, resolution, face_type, TINY), "dfm")
    data = to_onnx_bytes(graph, res, "dfm")
    int8 = quantize_int8(data, calibration_inputs(sample_faces[1], DFL_FRAMING, res, "dfm"), "dfm")
    proto = onnx.load_from_string(int8)
    _check_contract(proto, res, contract.QUANT_OPSET)
    kept = set(float_nodes(onnx.load_from_string(data).graph))
    weights = {i.name for i in proto.graph.initializer}
    float_convs = [n.name for n in proto.graph.node if n.op_type == "Conv" and n.input[1] in weights]
    assert sorted(float_convs) == sorted(c for c in kept if c.endswith("Conv"))
    assert len(float_convs) == 4, float_convs  # the first, face out, src mask out, dst mask out
    x = calibration_inputs(sample_faces[0], DFL_FRAMING, res, "dfm", count=8)
    want = _ort(data).run(None, {contract.DFM_INPUT: x})
    got = _ort(int8).run(None, {contract.DFM_INPUT: x})
    assert all(float(w.std()) > 0.2 for w in want)
    means = [float(np.abs(g - w).mean()) for g, w in zip(got, want, strict=True)]
    assert max(means) < INT8_RANDOM_MEAN_ABS, means


def test_int8_options_are_checked(tiny_trained: Path, sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--calibration FOLDER"):
        export_model(tiny_trained, tmp_path / "m.dfm", ExportOptions(quantize="int8"))  # no workspace around it
    with pytest.raises(InputError, match="exclude each other"):
        export_model(tiny_trained, tmp_path / "m.dfm", ExportOptions(quantize="int8", fp16=True,
                                                                     calibration=sample_faces[1]))
    with pytest.raises(InputError, match="no aligned faces"):
        export_model(tiny_trained, tmp_path / "m.dfm", ExportOptions(quantize="int8", calibration=tmp_path))
    workspace = tmp_path / "ws"
    (workspace / "dst").mkdir(parents=True)
    (workspace / "dst" / "aligned").symlink_to(sample_faces[1], target_is_directory=True)
    (workspace / "model").symlink_to(tiny_trained, target_is_directory=True)
    out = tmp_path / "cli.dfm"
    res = runner.invoke(app, ["export", "--model-dir", str(workspace / "model"), "-o", str(out),
                              "--quantize", "int8"])
    assert res.exit_code == 0, res.output
    assert "int8" in res.output and out.is_file()
    assert {o.version for o in onnx.load(str(out)).opset_import} == {contract.QUANT_OPSET}


@pytest.mark.skipif(not os.environ.get("FACELAB_ORT115_PYTHON"),
                    reason="set FACELAB_ORT115_PYTHON to a Python with onnxruntime 1.15.1 (see tools/ort_check.py)")
def test_loads_in_onnxruntime_1_15(tiny_trained: Path, sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    int8 = ExportOptions(quantize="int8", calibration=sample_faces[1])
    for k, opts in enumerate((ExportOptions(), ExportOptions(fp16=True), int8)):
        path = export_model(tiny_trained, tmp_path / f"m{k}.dfm", opts).path
        proc = subprocess.run([os.environ["FACELAB_ORT115_PYTHON"], str(ROOT / "tools" / "ort_check.py"),
                               str(path)], capture_output=True, text=True, check=True)
        report = json.loads(proc.stdout)
        assert report["onnxruntime"] == "1.15.1"
        assert [i["name"] for i in report["inputs"]] == [contract.DFM_INPUT]
        assert [o["name"] for o in report["outputs"]] == list(contract.DFM_OUTPUTS)
        assert [r["shape"] for r in report["results"]] == [[2, 80, 80, 1], [2, 80, 80, 3], [2, 80, 80, 1]]
        assert all(r["min"] >= 0.0 and r["max"] <= 1.0 for r in report["results"])

