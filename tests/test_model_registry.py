"""Architectures by registry and the one model-folder type: a toy architecture registered in a test runs
through CLI validation, training and the swap model; fixed options come from the option fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from facelab.cli.main import app
from facelab.core.errors import InputError
from facelab.core.model_folder import FIXED, ModelFolder, fixed_options, load_checkpoint
from facelab.train.checkpoint import MODEL_FOLDER
from facelab.train.inference import load_swap_model
from facelab.train.nets import ARCHITECTURES, Architecture, DFAutoEncoder, create_autoencoder, parse_arch
from facelab.train.options import TrainOptions
from facelab.train.prior import SHAPE_KEYS
from facelab.xseg.model import XSEG_FOLDER
from facelab.xseg.options import XSegOptions

SMALL = {"ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}


class ToyAutoEncoder(DFAutoEncoder):
    """A toy architecture: DF's networks, registered without a reverse path."""


@pytest.fixture
def toy() -> Iterator[str]:
    ARCHITECTURES.register("toy", Architecture(ToyAutoEncoder, reverse=False, summary="a test architecture"))
    try:
        yield "toy"
    finally:
        ARCHITECTURES.unregister("toy")


def test_builtin_architectures_and_capabilities() -> None:
    assert ARCHITECTURES.names()[:2] == ("df", "liae")
    assert ARCHITECTURES.where(lambda a: a.reverse) == {"df"}
    for arch in ("df-ud", "liae-ud"):
        model = create_autoencoder(arch, 64, **SMALL)
        assert model.spec.architecture is ARCHITECTURES.get(arch.split("-")[0])
        assert "swap" in model.spec.architecture.outputs


def test_unknown_architecture_lists_the_registered_ones(toy: str) -> None:
    with pytest.raises(InputError, match="'df' or 'liae' or 'toy'"):
        parse_arch("sae-ud")
    with pytest.raises(Exception, match="toy"):
        TrainOptions(arch="sae")


def test_toy_architecture_trains_through_the_cli_and_swaps(toy: str, sample_faces: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    assert parse_arch("toy-ud").kind == "toy"
    assert TrainOptions(arch="toy-ud", resolution=64).arch == "toy-ud"  # the options validate through the registry
    src, dst = sample_faces
    model = tmp_path / "model"
    args = ["train", "--src", str(src), "--dst", str(dst), "--model-dir", str(model), "--arch", "toy-ud",
            "--resolution", "64", "--ae-dims", "16", "--e-dims", "8", "--d-dims", "8", "--d-mask-dims", "4",
            "--batch-size", "2", "--workers", "0", "--iterations", "2", "--from-scratch", "--no-preview",
            "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(model)
    assert ckpt is not None and ckpt.state.iteration == 2
    swap = load_swap_model(model, device="cpu")
    assert isinstance(swap.ae, ToyAutoEncoder) and not swap.supports_reverse
    face, mask, own = swap.swap(torch.rand(1, 3, 64, 64))
    assert face.shape == (1, 3, 64, 64) and mask.shape == own.shape == (1, 1, 64, 64)  # type: ignore[union-attr]
    with pytest.raises(InputError, match="dst2src needs a DF model: TOY's swap path"):
        swap.swap_reverse(torch.rand(1, 3, 64, 64))
    # a wrong architecture on resume is refused by the fixed options
    res = CliRunner().invoke(app, [*args[:8], "df-ud", *args[9:]])
    assert isinstance(res.exception, InputError) and "fixed when a model is created" in str(res.exception)


def test_supports_reverse_from_the_registry(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    from facelab.train.trainer import Trainer

    src, dst = sample_faces
    for arch, reverse in (("df", True), ("liae", False)):
        opts = TrainOptions(arch=arch, resolution=64, batch_size=2, workers=0, preview_every=0, from_scratch=True,
                            backup_hours=0, **SMALL)
        Trainer(tmp_path / arch, opts, src, dst).train(iterations=1)
        swap = load_swap_model(tmp_path / arch, device="cpu")
        assert swap.supports_reverse is reverse
        if not reverse:
            with pytest.raises(InputError, match="dst2src needs a DF model: LIAE's swap path only renders"):
                swap.swap_reverse(torch.zeros(1, 3, 64, 64))


def test_fixed_options_are_declared_on_the_fields() -> None:
    assert MODEL_FOLDER.fixed == ("arch", "resolution", "face_type", "ae_dims", "e_dims", "d_dims", "d_mask_dims",
                                  "init")
    assert MODEL_FOLDER.fixed[:-1] == SHAPE_KEYS
    assert XSEG_FOLDER.fixed == fixed_options(XSegOptions) == ("resolution", "base_channels")
    schema = TrainOptions.model_json_schema()["properties"]
    assert schema["arch"]["fixed"] is True and "fixed" not in schema["lr"]


def test_model_folder_config_round_trip(tmp_path: Path) -> None:
    from pydantic import BaseModel, Field

    class Toy(BaseModel):
        width: int = Field(4, ge=1, json_schema_extra=FIXED)
        lr: float = 0.1

    kind: ModelFolder[Toy] = ModelFolder("facelab.toy", Toy, "toy model", "a toy model")
    assert kind.read_config(tmp_path) is None
    kind.write_config(tmp_path, Toy(width=8), note="extra")
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["schema"] == "facelab.toy" and data["immutable"] == ["width"] and data["note"] == "extra"
    stored = kind.read_config(tmp_path)
    assert stored == Toy(width=8)
    assert kind.resolve(stored, {"width": 8, "lr": 0.5}, {"width", "lr"}) == Toy(width=8, lr=0.5)
    assert kind.resolve(stored, {"width": 2, "lr": 0.5}, {"lr"}) == Toy(width=8, lr=0.5)  # not given: kept
    with pytest.raises(InputError, match="option width is fixed when a toy model is created"):
        kind.resolve(stored, {"width": 2}, {"width"})
    with pytest.raises(InputError, match="invalid option lr"):
        kind.resolve(stored, {"lr": "fast"}, {"lr"})
    (tmp_path / "config.json").write_text(json.dumps({**data, "options": {"width": 0}}))
    with pytest.raises(InputError, match="invalid toy model config"):
        kind.read_config(tmp_path)
