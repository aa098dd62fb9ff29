"""The trainer's loss window: losses stay tensors until read, the logged means are the per-step floats
summed in order, and a divergence is reported at the iteration it happened."""

from __future__ import annotations

import pytest
import torch

from facelab.core.errors import InputError
from facelab.train.trainer import LossWindow


def test_means_match_per_step_floats() -> None:
    g = torch.Generator().manual_seed(0)
    steps = [{"src_loss": torch.rand((), generator=g), "total": torch.rand((), generator=g) * 10} for _ in range(7)]
    window = LossWindow()
    for i, losses in enumerate(steps):
        window.add(i + 1, losses)
    avg, n = window.mean_and_reset()
    assert n == 7 and window.count == 0 and not window.pending
    for key in ("src_loss", "total"):
        total = 0.0
        for losses in steps:
            total += float(losses[key])
        assert avg[key] == total / 7  # bit for bit what a float per step gave


def test_divergence_names_its_iteration() -> None:
    window = LossWindow()
    for it, value in ((11, 1.0), (12, float("nan")), (13, 2.0)):
        window.add(it, {"total": torch.tensor(value)})
    with pytest.raises(InputError, match="diverged at iteration 12"):
        window.read()
