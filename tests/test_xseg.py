"""XSeg: label files, folder operations, training with resume, inference, and the few-shot occluder test."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from facelab.cli import xseg as xseg_cli
from facelab.core.errors import InputError
from facelab.core.model_folder import load_checkpoint
from facelab.face.masks import face_hull_mask, hull_points
from facelab.faceset.folder import list_face_files
from facelab.faceset.record import XSegPolygon, read_face, read_record, update_record, write_face
from facelab.faceset.xseg_mask import decode_mask
from facelab.train.samples import FaceSampleDataset, FaceSet, SampleOptions
from facelab.xseg.apply import import_labels
from facelab.xseg.infer import XSegModel, load_xseg
from facelab.xseg.labels import label_mask
from facelab.xseg.options import XSegOptions
from facelab.xseg.train import Status, XSegTrainer

runner = CliRunner()
app = typer.Typer()
app.add_typer(xseg_cli.app, name="xseg")
SQUARE = [[20, 20], [100, 20], [100, 110], [20, 110]]


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine, two spin-waiting threads are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _copy_faces(folder: Path, out: Path, n: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = list_face_files(folder)
    step = len(files) // n
    return [Path(shutil.copy2(files[i * step], out / files[i * step].name)) for i in range(n)]


def _invoke(*args: str) -> None:
    result = runner.invoke(app, ["xseg", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)


def _pixels(path: Path) -> bytes:
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR).tobytes()


def _write_labels(path: Path, faces: dict[str, object], **top: object) -> Path:
    path.write_text(json.dumps({"schema": "facelab.xseg_labels", "version": 1, "faces": faces, **top}))
    return path


# ---- labels -----------------------------------------------------------------------------------------

def test_import_labels_sets_polygons_and_keeps_pixels(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    faces = _copy_faces(sample_faces[1], tmp_path / "faces", 3)
    before = [_pixels(p) for p in faces]
    labels = _write_labels(tmp_path / "labels.json", {
        faces[0].name: [{"kind": "include", "points": SQUARE},
                        {"kind": "exclude", "points": [20, 20, 60, 20, 60, 60, 20, 60]}],  # COCO-style flat
        faces[1].name: [{"kind": "include", "points": SQUARE}],
    })
    _invoke("import-labels", str(tmp_path / "faces"), "--labels", str(labels))
    rec0, rec1, rec2 = (read_record(p) for p in faces)
    assert [p.kind for p in rec0.xseg_polygons] == ["include", "exclude"]
    assert rec0.xseg_polygons[1].points[2] == (60.0, 60.0)
    assert len(rec1.xseg_polygons) == 1 and rec2.xseg_polygons == []
    m = label_mask(rec0, faces[0])
    assert m.shape == (128, 128)
    assert m[30:100, 70:95].mean() > 0.97 and m[25:55, 25:55].mean() < 0.03 and m[115:].max() < 0.05
    assert [_pixels(p) for p in faces] == before  # metadata only
    # an empty list removes the labels
    _invoke("import-labels", str(tmp_path / "faces"), "--labels",
            str(_write_labels(tmp_path / "clear.json", {faces[1].name: []})))
    assert read_record(faces[1]).xseg_polygons == []


@pytest.mark.parametrize(("content", "message"), [
    (None, "label file not found"),
    ("{not json", "not a valid JSON label file"),
    ({"schema": "other", "version": 1, "faces": {}}, "not a facelab label file"),
    ({"schema": "facelab.xseg_labels", "version": 9, "faces": {}}, "version 9 is not supported"),
    ({"schema": "facelab.xseg_labels", "version": 1, "faces": []}, '"faces" must be an object'),
    ({"FACE": [{"kind": "keep", "points": SQUARE}]}, r"\[0\]\.kind: must be \"include\" or \"exclude\""),
    ({"FACE": [{"kind": "include", "points": [[1, 2], [3, 4]]}]}, "at least 3 points, got 2"),
    ({"FACE": [{"kind": "include", "points": [1, 2, 3, 4, 5, 6, 7]}]}, "even number of values"),
    ({"FACE": [{"kind": "include", "points": [[1, 2], [3, "x"], [5, 6]]}]}, r"points\[1\]: not an \[x, y\] pair"),
    ({"FACE": [{"kind": "include", "points": SQUARE, "colour": 1}]}, "unknown key 'colour'"),
    ({"FACE": [{"kind": "include", "points": [[0, 0], [5000, 0], [0, 10]]}]}, "far outside the 128x128 face"),
    ({"missing.jpg": [{"kind": "include", "points": SQUARE}]}, "no face file of that name"),
    ({"sub/FACE": []}, "keys are face file names, not paths"),
])
def test_import_labels_bad_files_are_clear_errors(sample_faces: tuple[Path, Path], tmp_path: Path,
                                                   content: object, message: str) -> None:
    faces = _copy_faces(sample_faces[1], tmp_path / "faces", 2)
    path = tmp_path / "labels.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, dict) and "schema" in content:
        path.write_text(json.dumps(content))
    elif isinstance(content, dict):
        good = {faces[1].name: [{"kind": "include", "points": SQUARE}]}  # valid, listed first: must not be written
        _write_labels(path, {**good, **{k.replace("FACE", faces[0].name): v for k, v in content.items()}})
    with pytest.raises(InputError, match=message) as info:
        import_labels(tmp_path / "faces", path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert all(read_record(p).xseg_polygons == [] for p in faces)  # all or nothing
    result = runner.invoke(app, ["xseg", "import-labels", str(tmp_path / "faces"), "--labels", str(path)])
    assert isinstance(result.exception, InputError)


# ---- training, resume, inference, folder commands ---------------------------------------------------

TINY = ["--resolution", "64", "--base-channels", "4", "--batch-size", "2", "--save-every", "2"]


def _label_hulls(faces: list[Path]) -> None:
    for p in faces:
        rec = read_record(p)
        hull = cv2.convexHull(np.round(hull_points(rec.landmarks_array(), rec.face_type)).astype(np.float32))[:, 0]
        poly = XSegPolygon(kind="include", points=[(float(x), float(y)) for x, y in hull])
        update_record(p, rec.model_copy(update={"xseg_polygons": [poly]}))


def test_train_resume_apply_remove_fetch(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    folder, model = tmp_path / "faces", tmp_path / "xseg"
    faces = _copy_faces(sample_faces[0], folder, 6)
    labelled = faces[:3]
    _label_hulls(labelled)
    before = [_pixels(p) for p in faces]

    _invoke("train", "--faces", str(folder), "--model-dir", str(model), "--iterations", "3", *TINY)
    config = json.loads((model / "config.json").read_text())
    assert config["schema"] == "facelab.xseg" and config["options"]["resolution"] == 64
    state = json.loads((model / "state.json").read_text())
    assert state["iteration"] == 3 and (model / state["files"]["weights"]).exists()
    assert (model / "previews" / "latest.png").exists()
    # resume: 3 + 2 more; the network-shaping options are fixed
    _invoke("train", "--faces", str(folder), "--model-dir", str(model), "--iterations", "2")
    assert json.loads((model / "state.json").read_text())["iteration"] == 5
    metrics = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [2, 3, 4, 5] and all(m["loss"] > 0 for m in metrics)
    result = runner.invoke(app, ["xseg", "train", "--faces", str(folder), "--model-dir", str(model),
                                 "--iterations", "1", "--resolution", "128"])
    assert isinstance(result.exception, InputError) and "resolution is fixed" in str(result.exception)

    _invoke("apply", str(folder), "--model-dir", str(model))
    model_obj = load_xseg(model)
    assert model_obj.iteration == 5
    for p, pixels in zip(faces, before, strict=True):
        assert _pixels(p) == pixels
        mask = decode_mask(read_record(p), p)
        assert mask is not None and mask.shape == (128, 128)
        expected = model_obj.predict([read_face(p)[0]])[0]
        assert np.abs(mask - expected).max() <= 1 / 255 + 1e-6  # stored as 8-bit PNG
    # training samples use the applied mask (faces without polygons): the stored mask, seen unwarped
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    shutil.copy2(faces[4], unlabelled / faces[4].name)
    ds = FaceSampleDataset(FaceSet(unlabelled), SampleOptions(128, "whole_face", random_flip=False, random_warp=False,
                                                              scale_range=0.0, rotation_deg=0.0, shift=0.0, seed=0))
    stored = decode_mask(read_record(faces[4]), faces[4])
    assert stored is not None and np.abs(ds[0]["mask"][0].numpy() - stored).mean() < 0.01

    _invoke("fetch", str(folder), "-o", str(tmp_path / "fetched"))
    assert [p.name for p in list_face_files(tmp_path / "fetched")] == [p.name for p in labelled]
    _invoke("remove", str(folder))
    assert all(read_record(p).xseg_mask is None for p in faces)
    assert all(read_record(p).xseg_polygons for p in labelled)
    _invoke("remove-labels", str(folder))
    assert all(read_record(p).xseg_polygons == [] for p in faces)
    assert [_pixels(p) for p in faces] == before

    # user errors: InputError (main() prints it as one line with exit code 2)
    for args in (["train", "--faces", str(folder), "--model-dir", str(tmp_path / "new"), "--iterations", "1"],
                 ["apply", str(folder), "--model-dir", str(tmp_path / "nowhere")],
                 ["apply", str(folder), "--model-dir", str(folder)]):
        result = runner.invoke(app, ["xseg", *args])
        assert isinstance(result.exception, InputError), result.output
    assert "no labelled faces" in str(runner.invoke(app, ["xseg", "train", "--faces", str(folder), "--model-dir",
                                                          str(tmp_path / "new"), "--iterations", "1"]).exception)


def test_resume_equals_uninterrupted_training(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    faces = _copy_faces(sample_faces[0], tmp_path / "faces", 3)
    _label_hulls(faces)
    opts = XSegOptions(resolution=64, base_channels=4, batch_size=2, save_every=100, preview=False, seed=3)
    XSegTrainer(tmp_path / "a", opts, [tmp_path / "faces"], new=True).train(iterations=4)
    XSegTrainer(tmp_path / "b", opts, [tmp_path / "faces"], new=True).train(iterations=2)
    XSegTrainer(tmp_path / "b", opts, [tmp_path / "faces"], new=False).train(iterations=2)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")

    def interrupt(status: Status) -> None:  # Ctrl+C after 5 of 10 iterations: saved at 5
        if status.iteration == 5:
            raise KeyboardInterrupt

    state = XSegTrainer(tmp_path / "c", opts, [tmp_path / "faces"], new=True).train(10, on_status=interrupt)
    saved = load_checkpoint(tmp_path / "c")
    assert state.iteration == 5 and saved is not None and saved.state.iteration == 5
    assert a is not None and b is not None and a.state.iteration == b.state.iteration == 4
    assert a.weights.keys() == b.weights.keys()
    for key, value in a.weights.items():
        torch.testing.assert_close(value, b.weights[key], rtol=1e-5, atol=1e-6)


def test_predict_any_size_batched(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    faces = _copy_faces(sample_faces[0], tmp_path / "faces", 2)
    _label_hulls(faces)
    opts = XSegOptions(resolution=64, base_channels=4, batch_size=2, preview=False)
    XSegTrainer(tmp_path / "m", opts, [tmp_path / "faces"], new=True).train(iterations=1)
    model = load_xseg(tmp_path / "m")
    img = read_face(faces[0])[0]
    inputs = [img, cv2.resize(img, (200, 200)), cv2.resize(img, (50, 50)), img[:, :100].copy()]
    masks = model.predict(inputs, batch_size=3)
    assert [m.shape for m in masks] == [(128, 128), (200, 200), (50, 50), (128, 100)]
    assert all(m.dtype == np.float32 and m.min() >= 0.0 and m.max() <= 1.0 for m in masks)
    one = model.predict([img], batch_size=1)[0]
    np.testing.assert_allclose(one, masks[0], atol=1e-5)
    with pytest.raises(ValueError, match="uint8 BGR"):
        model.predict([img.astype(np.float32)])


def test_face_type_is_recorded_and_other_types_are_converted(sample_faces: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    """The model records the face type it learned; a face of another type is cut to that framing before
    prediction and its mask warped back, so the mask lands on the same pixels of the face."""
    from facelab.face.align import convert_transform

    faces = _copy_faces(sample_faces[0], tmp_path / "faces", 3)
    _label_hulls(faces)
    opts = XSegOptions(resolution=64, base_channels=4, batch_size=2, preview=False)
    XSegTrainer(tmp_path / "m", opts, [tmp_path / "faces"], new=True).train(iterations=2)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["face_type"] == "whole_face"
    model = load_xseg(tmp_path / "m")
    assert model.face_type == "whole_face"

    # the geometry, with a stand-in network that always segments the same disk of its input frame: a face
    # framed as "full" (tighter) must get that disk where it lies on this face, i.e. warped into "full"
    class Disk(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            r = x.shape[-1]
            yy, xx = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
            inside = ((yy - r / 2 + 0.5) ** 2 + (xx - r / 2 + 0.5) ** 2) < (0.3 * r) ** 2
            return (inside.float() * 20 - 10).expand(x.shape[0], 1, r, r)

    disk = XSegModel(Disk(), opts, face_type="whole_face")  # type: ignore[arg-type]
    img = read_face(faces[0])[0]  # whole_face, 128 px
    to_full = convert_transform(np.eye(3)[:2], "whole_face", 128, "full", 128)
    full_img = cv2.warpAffine(img, to_full, (128, 128), flags=cv2.INTER_LINEAR)  # the same face framed as "full"
    expected = cv2.warpAffine(disk.predict([img])[0], to_full, (128, 128), flags=cv2.INTER_LINEAR) > 0.5
    converted = disk.predict([full_img], face_types=["full"])[0] > 0.5
    unconverted = disk.predict([full_img])[0] > 0.5
    assert (converted & expected).sum() / (converted | expected).sum() > 0.97
    assert (unconverted & expected).sum() / (unconverted | expected).sum() < 0.8  # the bug this prevents
    assert np.array_equal(disk.predict([img], face_types=["whole_face"])[0], disk.predict([img])[0])

    # labelled faces of two types: refused (an XSeg model learns one framing) ...
    rec = read_record(faces[1])
    update_record(faces[1], rec.model_copy(update={"face_type": "full"}))
    with pytest.raises(InputError, match="mix face types"):
        XSegTrainer(tmp_path / "m2", opts, [tmp_path / "faces"], new=True)
    # ... and a model is continued only on its own type
    for p in faces:
        update_record(p, read_record(p).model_copy(update={"face_type": "full"}))
    with pytest.raises(InputError, match="trained on whole_face faces"):
        XSegTrainer(tmp_path / "m", opts, [tmp_path / "faces"], new=False)


# ---- the few-shot test: landmark hulls with a synthetic occluder ------------------------------------

def occlude_and_label(paths: list[Path], out: Path, seed: int) -> list[tuple[int, int, int, int]]:
    """Copy faces into ``out`` with a random coloured rectangle painted over part of the face, labelled
    include = landmark hull (facelab.face.masks), exclude = the rectangle. Returns the rectangles."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rects = []
    for k, p in enumerate(paths):  # numbered names: unique across clips, listed in this order
        img, rec = read_face(p)
        hull = cv2.convexHull(np.round(hull_points(rec.landmarks_array(), rec.face_type)).astype(np.float32))[:, 0]
        (x0, y0), (x1, y1) = hull.min(axis=0), hull.max(axis=0)
        w, h = rng.uniform(0.3, 0.5) * (x1 - x0), rng.uniform(0.25, 0.4) * (y1 - y0)
        cx = rng.uniform(x0 + 0.25 * (x1 - x0), x1 - 0.25 * (x1 - x0))
        cy = rng.uniform(y0 + 0.3 * (y1 - y0), y1 - 0.2 * (y1 - y0))
        r = (round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2))
        img = img.copy()
        cv2.rectangle(img, r[:2], (r[2] - 1, r[3] - 1), [int(v) for v in rng.integers(0, 256, 3)], thickness=-1)
        box = [(r[0] - 0.5, r[1] - 0.5), (r[2] - 0.5, r[1] - 0.5), (r[2] - 0.5, r[3] - 0.5), (r[0] - 0.5, r[3] - 0.5)]
        polys = [XSegPolygon(kind="include", points=[(float(x), float(y)) for x, y in hull]),
                 XSegPolygon(kind="exclude", points=box)]
        write_face(out / f"{k:02d}_{p.name}", img, rec.model_copy(update={"xseg_polygons": polys}))
        rects.append(r)
    return rects


ITERATIONS = 1000


def _spread(files: list[Path], n: int, offset: float) -> list[Path]:
    step = len(files) / n
    return [files[int((i + offset) * step)] for i in range(n)]


def test_few_shot_xseg_excludes_occluders(shared_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = (list_face_files(d) for d in shared_faces)
    # 20 training and 20 held-out faces: 10 of each person, from different frames
    occlude_and_label(_spread(src, 10, 0.0) + _spread(dst, 10, 0.0), tmp_path / "train", seed=1)
    rects = occlude_and_label(_spread(src, 10, 0.5) + _spread(dst, 10, 0.5), tmp_path / "test", seed=2)
    # 64 px (the product default is 256) keeps this in the default suite (about 30 s of training on one
    # core); the faces are 128 px and the masks are measured at 128 px
    opts = XSegOptions(resolution=64, batch_size=8, save_every=10_000)
    t0 = time.perf_counter()
    XSegTrainer(tmp_path / "model", opts, [tmp_path / "train"], new=True).train(iterations=ITERATIONS)
    train_s = time.perf_counter() - t0
    model = load_xseg(tmp_path / "model")
    test = [read_face(p) for p in list_face_files(tmp_path / "test")]
    preds = model.predict([img for img, _ in test])
    inter = union = occluded = occluder_px = 0
    for (_, rec), pred, r in zip(test, preds, rects, strict=True):
        truth, face = label_mask(rec, "test") > 0.5, pred > 0.5
        inter += int((truth & face).sum())
        union += int((truth | face).sum())
        box = np.zeros_like(truth)
        box[max(r[1], 0):r[3], max(r[0], 0):r[2]] = True
        region = box & (face_hull_mask(rec.landmarks_array(), truth.shape, rec.face_type) > 0.5)  # over the face
        occluded += int((face & region).sum())
        occluder_px += int(region.sum())
    iou, leak = inter / union, occluded / occluder_px
    print(json.dumps({"iou": round(iou, 4), "occluder_as_face": round(leak, 4), "iterations": ITERATIONS,
                      "resolution": opts.resolution, "train_s": round(train_s, 1)}))
    assert iou >= 0.85
    assert leak < 0.2

