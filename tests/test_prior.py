"""Face priors: gather faces of many people, pretrain, export, and start new models from the prior."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from facelab.core.errors import InputError
from facelab.core.model_folder import read_state
from facelab.extract.options import ExtractOptions
from facelab.train import prior as prior_mod
from facelab.train.nets import create_autoencoder
from facelab.train.options import PRESETS, TrainOptions
from facelab.train.perceptual import FeatureLoss
from facelab.train.prior import (
    SourceNote,
    apply_prior,
    export_prior,
    find_prior,
    load_prior_weights,
    read_prior,
)
from facelab.train.trainer import Trainer
from facelab.workflow.pretrain import describe_source, gather_faces, parse_source, read_sources
from tests.conftest import SAMPLES, shared_file

TINY: dict[str, Any] = {"arch": "df-ud", "resolution": 64, "face_type": "full", "ae_dims": 64, "e_dims": 16,
                        "d_dims": 16, "d_mask_dims": 8, "batch_size": 4, "workers": 0, "lr": 2e-4,
                        "preview_every": 0, "log_every": 1, "autosave_minutes": 60, "backup_hours": 0}
NOTES = [SourceNote(name="src", faces=90, licence="test", origin="samples/src.mp4")]


def tiny(**kw: Any) -> TrainOptions:
    return TrainOptions(**(TINY | kw))


def _ae_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.ae.state_dict().items()}


@pytest.fixture()
def priors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "priors"
    root.mkdir()
    monkeypatch.setattr(prior_mod, "PRIORS_DIR", root)
    return root


def test_a_new_model_starts_from_the_prior_of_its_shape(sample_faces: tuple[Path, Path], tmp_path: Path,
                                                        priors: Path) -> None:
    src, dst = sample_faces
    pre = Trainer(tmp_path / "pre", tiny(pretrain=True), src, src)
    pre.train(iterations=3)
    p = export_prior(tmp_path / "pre", priors / "tiny", NOTES, notes="test prior")
    card = json.loads((priors / "tiny" / "card.json").read_text())
    assert card["iterations"] == 3 and card["samples_seen"] == 12 and card["faces"] == 90
    assert card["shape"]["ae_dims"] == 64 and "init" not in card["shape"]
    assert "| src | 90 | test |" in (priors / "tiny" / "MODEL_CARD.md").read_text()
    stored = load_prior_weights(p)
    assert all(v.dtype == torch.float32 for v in stored.values() if v.is_floating_point())

    # same shape: starts from the prior (float16 in the file: equal to within half precision)
    t = Trainer(tmp_path / "pair", tiny(), src, dst)
    assert t.state.prior == f"tiny {p.sha256}" and t.state.pretrained
    weights = _ae_state(t)
    trained = _ae_state(pre)
    for k, v in trained.items():
        assert torch.allclose(weights[k], v, rtol=2e-3, atol=1e-4), k
    t.train(iterations=1)
    assert read_state(tmp_path / "pair")["prior"] == f"tiny {p.sha256}"

    # --from-scratch, or another shape: random weights
    scratch = Trainer(tmp_path / "scratch", tiny(from_scratch=True), src, dst)
    assert scratch.state.prior == ""
    first = next(k for k, v in weights.items() if v.ndim == 4)  # the first convolution's weight
    assert not torch.allclose(_ae_state(scratch)[first], weights[first])
    assert find_prior(tiny(ae_dims=32)) is None and find_prior(tiny(face_type="whole_face")) is None
    assert find_prior(tiny(init="ca")) is not None  # the init does not shape the weights


def test_pretraining_continues_a_shipped_prior_and_counts_its_iterations(sample_faces: tuple[Path, Path],
                                                                         tmp_path: Path, priors: Path) -> None:
    src, _ = sample_faces
    Trainer(tmp_path / "pre1", tiny(pretrain=True), src, src).train(iterations=2)
    first = export_prior(tmp_path / "pre1", priors / "tiny", NOTES)
    second_run = Trainer(tmp_path / "pre2", tiny(pretrain=True), src, src)
    assert second_run.state.prior.endswith(first.sha256)
    second_run.train(iterations=3)
    second = export_prior(tmp_path / "pre2", priors / "tiny", NOTES, started_from=first)
    assert second.iterations == 5 and second.card["lineage"] == [{"sha256": first.sha256, "iterations": 2}]
    assert read_prior(priors / "tiny").sha256 == second.sha256 != first.sha256


def test_damaged_or_foreign_priors_are_refused(sample_faces: tuple[Path, Path], tmp_path: Path,
                                               priors: Path) -> None:
    src, dst = sample_faces
    Trainer(tmp_path / "pre", tiny(pretrain=True), src, src).train(iterations=1)
    export_prior(tmp_path / "pre", priors / "tiny", NOTES)
    weights = priors / "tiny" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        Trainer(tmp_path / "pair", tiny(), src, dst)
    (priors / "tiny" / "card.json").write_text('{"schema": "something else", "version": 1}')
    with pytest.raises(InputError):
        find_prior(tiny())
    with pytest.raises(InputError, match="no trained model"):
        export_prior(tmp_path / "nothing", priors / "x", NOTES)


def test_lr_warmup_rises_linearly_then_holds(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    t = Trainer(tmp_path / "m", tiny(lr_warmup=4, from_scratch=True), src, dst)
    seen = []
    for _ in range(6):
        t.train(iterations=1)
        seen.append(t.opt.param_groups[0]["lr"])
    assert seen == pytest.approx([2e-4 * k / 4 for k in (1, 2, 3, 4)] + [2e-4, 2e-4])


def test_perceptual_loss_sees_blur_and_trains(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    face = cv2.resize(cv2.imread(str(sorted(src.glob("*.jpg"))[10])), (64, 64), interpolation=cv2.INTER_AREA)
    rgb = torch.from_numpy(face[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    blurred = torch.from_numpy(cv2.GaussianBlur(face, (0, 0), 1.5)[..., ::-1].copy()).permute(2, 0, 1)[None]
    brighter = (rgb + 0.03).clamp(0, 1)
    loss = FeatureLoss()
    same, blur, light = (float(loss(x, rgb)) for x in (rgb, blurred.float() / 255, brighter))
    assert same == pytest.approx(0.0, abs=1e-6)
    assert blur > 3 * light > 0, (blur, light)  # a blur costs far more than a small brightness change
    pred = rgb.clone().requires_grad_(True)
    loss(pred * 0.9, rgb).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
    t = Trainer(tmp_path / "m", tiny(perceptual_power=1.0, from_scratch=True), src, dst)
    assert t.train(iterations=2).iteration == 2
    assert all(np.isfinite(v) for v in t.state.last_losses.values())


def test_gather_extracts_every_source_into_one_faceset(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("fr_obama.jpg", "fr_biden.jpg"):
        shutil.copy(SAMPLES / name, photos / name)
    opts = ExtractOptions(size=96, workers=1)
    sources = [parse_source(f"clip={SAMPLES / 'src.mp4'}"), parse_source(str(photos))]
    assert [n for n, _ in sources] == ["clip", "photos"]
    summary = gather_faces(sources, tmp_path / "ws", opts, video_fps=1.0)
    faces = sorted(p.name for p in summary.faces_dir.iterdir())
    assert len([f for f in faces if f.startswith("photos__")]) == 2
    clip_faces = [f for f in faces if f.startswith("clip__")]
    assert 12 <= len(clip_faces) <= 16  # 15 s at 1 frame/s, one face each
    notes = read_sources(tmp_path / "ws" / "sources.json")
    assert [(n.name, n.faces, n.licence) for n in notes] == [("clip", len(clip_faces), "unknown"),
                                                             ("photos", 2, "unknown")]
    again = gather_faces(sources, tmp_path / "ws", opts, video_fps=1.0)  # resumes: nothing new
    assert again.faces == summary.faces
    with pytest.raises(InputError, match="same name"):
        gather_faces([("a", photos), ("a", photos)], tmp_path / "ws2", opts)
    with pytest.raises(InputError, match="not found"):
        gather_faces([("a", tmp_path / "missing")], tmp_path / "ws3", opts)


def test_source_licences_come_from_the_shared_manifests() -> None:
    images = shared_file("pretrain/images").parent / "images"
    licence, origin = describe_source(images)
    assert "MIT" in licence and "Apache-2.0" in licence and "unknown" not in licence
    assert "KwaiVGI/LivePortrait" in origin
    assert describe_source(shared_file("clips/lp_d0.mp4")) == ("MIT", "KwaiVGI/LivePortrait")


def test_pretrain_cli(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "facelab.cli.main", "pretrain"]
    listed = subprocess.run([*run, "list"], capture_output=True, text=True, check=True)
    text = listed.stdout + listed.stderr
    assert "demo-full64:" in text and "face_type=full" in text, text
    bad = subprocess.run([*run, "export", "--model-dir", str(tmp_path), "--sources", str(tmp_path / "s.json"),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_pretraining_keeps_the_random_warp_the_demo_preset_turns_off_at_the_end(tmp_path: Path) -> None:
    """The demo preset trains its last quarter without random warp; a prior pretrained with it keeps the warp
    to the end unless --warp-off is given."""
    from facelab.cli.pretrain import PRETRAIN_DEFAULTS
    from facelab.cli.train import resolve_options

    assert TrainOptions.model_validate(PRESETS["demo"]).warp_off == 0.25
    assert TrainOptions.model_validate(PRESETS["demo"]).mouth_match == "auto"
    base = {**PRETRAIN_DEFAULTS, "pretrain": True}
    opts, stored = resolve_options(tmp_path / "new", "demo", None, base)
    assert stored is None and opts.warp_off == 0.0 and opts.random_warp and opts.resolution == 64
    opts, _ = resolve_options(tmp_path / "new", "demo", None, {**base, "warp_off": 0.1})
    assert opts.warp_off == 0.1


def test_the_demo_preset_has_a_shipped_prior() -> None:
    demo = TrainOptions.model_validate(PRESETS["demo"])
    found = find_prior(demo)
    if found is None:
        pytest.skip("no demo prior shipped yet")
    assert found.iterations > 0 and found.card["faces"] > 500
    assert (found.folder / "MODEL_CARD.md").is_file()
    o = demo
    ae = create_autoencoder(o.arch, o.resolution, o.ae_dims, o.e_dims, o.d_dims, o.d_mask_dims)
    apply_prior(ae, found)  # strict: every tensor of the demo model is in the prior, with its shape
    x = torch.rand(2, 3, o.resolution, o.resolution)
    out = ae(x, x)
    assert out.src_rec.shape == x.shape and torch.isfinite(out.src_rec).all()
