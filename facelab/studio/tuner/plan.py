"""Which frames the batch merge puts through the model together.

The model's output for a face depends, in its last bits, on the other faces of its batch (measured on a
CPU: batches of 1 to 3 faces differ from larger ones by about 1e-7, enough to move a pixel by one level
after rounding). So that the tuner's frame is the merge's frame pixel for pixel, the tuner predicts each
face in the batch the merge would use: facelab.merge.batches.Batcher collects frames with faces, in
frame order, until the batch holds BATCH_FACES faces or more, and the last batch takes the rest. This
mirrors a whole run from the first frame (a resumed or sharded run batches the remaining frames
differently, and may differ from a whole run by a level here and there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from facelab.merge.batches import BATCH_FACES


def merge_batches(order: Sequence[str], faces: Mapping[str, int],
                  batch_faces: int = BATCH_FACES) -> dict[str, tuple[str, ...]]:
    """Frame stem -> the stems of its model batch (frames with faces only), for a whole run over ``order``;
    ``faces``: the number of faces per frame stem."""
    out: dict[str, tuple[str, ...]] = {}
    pending: list[str] = []
    count = 0
    for stem in order:
        n = faces.get(stem, 0)
        if n <= 0:
            continue
        pending.append(stem)
        count += n
        if count >= batch_faces:
            batch = tuple(pending)
            out.update((s, batch) for s in batch)
            pending, count = [], 0
    if pending:
        batch = tuple(pending)
        out.update((s, batch) for s in batch)
    return out
