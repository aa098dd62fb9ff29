"""A running average of the autoencoder's weights (``weight_average``: an exponential moving average).

A short run at a high learning rate ends on weights that still jump from step to step; their exponential
moving average over the last hundreds of steps keeps what the steps agree on (image generators are sampled from
averaged weights for the same reason). The average is a second copy of the autoencoder. The model folder's weights
file holds the average, so merge, export, previews and ``facelab pretrain export`` use it with no change; the
weights that train go into the optimizer file under ``train.`` (training state, like Adam's moments), so a
resumed run continues both. A folder whose optimizer file has no ``train.`` tensors (averaging switched on
later) starts its average at the saved weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from facelab.core.errors import InputError
from facelab.core.model_folder import modules_state

PREFIX = "train"
"""The optimizer file's keys of the weights that train (``train.ae.<tensor>``) and of the average's update count
start with this and a dot."""
COUNT_KEY = PREFIX + ".average_count"
WARMUP = 10
"""After n updates the decay is min(decay, (1 + n) / (WARMUP + n)): the first steps away from the start are
not held back by an average that has seen nothing else."""


class WeightAverage:
    """The exponential moving average (decay ``decay`` per step) of a module's parameters; buffers copied."""

    def __init__(self, model: nn.Module, decay: float, count: int = 0) -> None:
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self.count = count

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.count) / (WARMUP + self.count))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s weights by one step."""
        weight = 1.0 - self.current_decay()
        for avg, new in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(new.detach(), weight)
        for avg_b, new_b in zip(self.model.buffers(), model.buffers(), strict=True):
            avg_b.copy_(new_b)
        self.count += 1

    def training_state(self, model: nn.Module, name: str) -> dict[str, Tensor]:
        """The optimizer-file tensors that resume a run: ``model``'s weights (the ones that train) under
        ``train.<name>.`` (read back with ``load_modules({"train.<name>": model}, ...)``) and the update count."""
        out = modules_state({f"{PREFIX}.{name}": model})
        out[COUNT_KEY] = torch.tensor([self.count], dtype=torch.int64)
        return out


def saved_count(tensors: dict[str, Tensor], path: Path | None = None) -> int:
    """The average's update count an optimizer file records (0 when none). InputError (naming ``path``) for
    anything but one non-negative integer."""
    count = tensors.get(COUNT_KEY)
    if count is None:
        return 0
    integer = not (count.dtype.is_floating_point or count.dtype.is_complex or count.dtype == torch.bool)
    value = int(count.reshape(-1)[0]) if integer and count.numel() == 1 else -1
    if value < 0:
        raise InputError(f"the optimizer file's {COUNT_KEY} is not a count ({count.dtype}, {count.numel()} values)",
                         path)
    return value
