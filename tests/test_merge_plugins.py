"""Merge plugins: a colour transfer and a mask mode added by registering them (no other edit) are offered by
the CLI, config files and the training option, and a real merge on a bundled frame uses them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import ArrayLike
from typer.testing import CliRunner

from facelab.core.color import COLOR_TRANSFERS, ColorTransfer, FitInput
from facelab.core.config import build_options
from facelab.core.errors import InputError
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord
from facelab.media.frames import extract_frames, read_image_rgb
from facelab.merge.batches import needs_dst_mask
from facelab.merge.color import MERGE_COLOR_TRANSFERS, MergeColor
from facelab.merge.compose import FaceInput, Prediction, compose_face, crop_face, merge_frame, model_transform
from facelab.merge.masks import (
    HULL,
    LEARNED_DST,
    LEARNED_DST_MODES,
    LEARNED_PRD,
    MASK_MODES,
    XSEG_MASK_MODES,
    MaskSpec,
    union,
)
from facelab.merge.options import MergeOptions
from facelab.merge.session import MergeSession
from facelab.train.options import TrainOptions

from .conftest import SAMPLES

R = 64
FT = "whole_face"
GRAY = "toy-gray"
PRD_HULL = "toy-prd*hull"


class _GrayMap:
    """Every pixel to mid gray."""

    def apply(self, img: ArrayLike) -> np.ndarray:
        return np.full(np.asarray(img).shape, 0.5, dtype=np.float32)


def _fit_gray(x: FitInput) -> _GrayMap:
    return _GrayMap()


@pytest.fixture
def plugins() -> Iterator[None]:
    """The toy plugins: one function (or spec) plus one register line each; unregistered afterwards."""
    COLOR_TRANSFERS.register(GRAY, ColorTransfer(_fit_gray))
    MERGE_COLOR_TRANSFERS.register(GRAY, MergeColor(GRAY))
    MASK_MODES.register(PRD_HULL, MaskSpec(prd=LEARNED_PRD, dst=HULL))
    try:
        yield
    finally:
        MASK_MODES.unregister(PRD_HULL)
        MERGE_COLOR_TRANSFERS.unregister(GRAY)
        COLOR_TRANSFERS.unregister(GRAY)


def test_options_and_cli_accept_registered_plugins(plugins: None, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import facelab.cli.merge
    from facelab.cli.main import app

    opts = build_options(MergeOptions, None, {"color_transfer": GRAY, "mask_mode": PRD_HULL})
    assert (opts.color_transfer, opts.mask_mode) == (GRAY, PRD_HULL)
    config = tmp_path / "merge.toml"
    config.write_text(f'[merge]\ncolor_transfer = "{GRAY}"\nmask_mode = "{PRD_HULL}"\n')
    assert build_options(MergeOptions, config, {}).mask_mode == PRD_HULL
    assert TrainOptions(ct_mode=GRAY).ct_mode == GRAY  # the training option offers every core colour transfer
    # derived from the spec: a hull and the learned prd mask, no dst mask from the model, no XSeg
    spec = MASK_MODES.get(PRD_HULL)
    assert spec.needs_hull and not spec.learned_dst
    assert PRD_HULL not in LEARNED_DST_MODES and PRD_HULL not in XSEG_MASK_MODES
    assert not needs_dst_mask(MergeSession(opts))

    seen: list[MergeOptions] = []

    def fake_run_merge(*args: Any, **kw: Any) -> None:
        seen.append(args[4])
        raise InputError("stopped before merging")

    monkeypatch.setattr(facelab.cli.merge, "run_merge", fake_run_merge)
    base = ["merge", "--model-dir", str(tmp_path), "--frames", str(tmp_path), "--aligned", str(tmp_path),
            "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*base, "--color-transfer", GRAY, "--mask-mode", PRD_HULL])
    assert isinstance(result.exception, InputError) and "stopped" in str(result.exception), result.output
    assert seen and (seen[0].color_transfer, seen[0].mask_mode) == (GRAY, PRD_HULL)
    result = CliRunner().invoke(app, [*base, "--color-transfer", "toy-bogus"])
    assert isinstance(result.exception, InputError) and "unknown colour transfer" in str(result.exception)
    assert len(seen) == 1


def test_unregistered_plugins_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown mask mode"):
        build_options(MergeOptions, None, {"mask_mode": PRD_HULL})
    with pytest.raises(InputError, match="unknown colour transfer"):
        build_options(MergeOptions, None, {"color_transfer": GRAY})


def test_a_mode_that_uses_the_learned_dst_mask_asks_the_model_for_it() -> None:
    MASK_MODES.register("toy-union", MaskSpec(LEARNED_PRD, LEARNED_DST, union))
    try:
        assert "toy-union" in LEARNED_DST_MODES
        assert needs_dst_mask(MergeSession(MergeOptions(mask_mode="learned-prd")).with_frame("000001",
                                                                                              mask_mode="toy-union"))
    finally:
        MASK_MODES.unregister("toy-union")
    assert "toy-union" not in LEARNED_DST_MODES


@pytest.fixture(scope="module")
def dst_face(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray,
                                                                                                FaceRecord]:
    """A bundled dst frame and the record of its face."""
    frames = tmp_path_factory.mktemp("plugin_frames") / "frames"
    extract_frames(SAMPLES / "dst.mp4", frames, fps=6)
    _, rec = scan_faces(sample_faces[1]).faces[5]
    return read_image_rgb(frames / f"{rec.source.frame}.png"), rec


def _prediction(frame: np.ndarray, rec: FaceRecord) -> Prediction:
    """The dst face itself, darkened, as the 'prediction'; its learned mask a disk left of the crop's centre,
    so that it and the dst hull each cut the other."""
    face = crop_face(frame, model_transform(rec, FT, R), R).astype(np.float32) / 255.0 * 0.7
    disk = np.zeros((R, R), np.float32)
    cv2.circle(disk, (R // 2 - 8, R // 2), R // 3, 1.0, -1)
    return Prediction(face, disk, None)


def test_a_merge_uses_the_registered_plugins(plugins: None, dst_face: tuple[np.ndarray, FaceRecord]) -> None:
    frame, rec = dst_face
    pred = _prediction(frame, rec)
    kw: dict[str, Any] = {"blur": 0.0, "detail_transfer": 0.0}

    def merge(p: Prediction, **more: Any) -> tuple[np.ndarray, np.ndarray]:
        return compose_face(frame, rec, p, FT, R, MergeOptions(**kw, **more), rng=np.random.default_rng(0))

    out, mask = merge(pred, mask_mode=PRD_HULL, color_transfer=GRAY)
    # the colour transfer: every fully blended pixel is the toy's gray, the rest of the frame is untouched
    full = mask >= 1.0
    assert full.sum() > 500 and (out[full] == 128).all()
    assert np.array_equal(out[mask == 0], frame[mask == 0])
    # the mask mode: the product of the learned prd mask and the dst hull, taken in crop space ...
    _, m_prd = merge(pred, mask_mode="learned-prd")
    _, m_hull = merge(pred, mask_mode="dst")
    assert mask.sum() < 0.9 * min(m_prd.sum(), m_hull.sum())
    assert np.abs(mask - m_prd * m_hull).sum() < 0.05 * mask.sum()  # up to the bilinear warp along the edges
    # ... exactly what learned-prd gives for a learned mask that is that product
    hull_crop = _hull_crop(rec)
    _, m_product = merge(Prediction(pred.face, pred.mask * hull_crop, None), mask_mode="learned-prd",
                         color_transfer=GRAY)
    assert np.array_equal(mask, m_product)
    # merge_frame, the runner's entry, takes the same path
    merged, _ = merge_frame(frame, [FaceInput(rec, pred)], FT, R,
                            MergeOptions(**kw, mask_mode=PRD_HULL, color_transfer=GRAY))
    assert np.array_equal(merged, out)


def _hull_crop(rec: FaceRecord) -> np.ndarray:
    from facelab.face.masks import face_hull_mask

    mat = model_transform(rec, FT, R)
    lm = cv2.transform(rec.source_landmarks_array().reshape(-1, 1, 2), mat).reshape(-1, 2)
    return face_hull_mask(lm.astype(np.float64), (R, R), FT)
