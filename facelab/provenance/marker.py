"""Marking merged output: the invisible watermark on pixels and the provenance record on files.

The merge runner and every other writer of merged output use one ProvenanceMarker, so the mark cannot
be forgotten on one path: `mark` for pixels, `tag` for encoded image bytes, `finish_video` and
`finish_folder` for the files a run leaves behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelab.core.atomic import write_json_atomic
from facelab.core.types import U8, BoolArray
from facelab.media.metadata import embed_json
from facelab.provenance.record import ProvenanceRecord, make_record, write_sidecar, write_video_record
from facelab.provenance.watermark import embed, make_payload

SIDECAR_NAME = "provenance.json"


@dataclass(frozen=True)
class ProvenanceMarker:
    record: ProvenanceRecord
    payload: BoolArray = field(repr=False)

    def mark(self, rgb: U8, region: NDArray[np.generic] | None = None,
             inplace: bool = False) -> U8:
        """The frame with the invisible watermark (payload: facelab + the model id), inside `region`
        (the swapped faces) when given, so the rest of the frame stays exactly as it was; ``inplace``
        marks the given array itself (no copy)."""
        return embed(rgb, self.payload, region=region, inplace=inplace)

    def tag(self, encoded: bytes) -> bytes:
        """Encoded PNG/JPEG bytes with the provenance record in their metadata."""
        return embed_json(encoded, self.record.to_json())

    def finish_folder(self, folder: Path) -> Path:
        """The sidecar record of a folder of merged frames."""
        path = Path(folder) / SIDECAR_NAME
        write_json_atomic(path, self.record.to_json())
        return path

    def finish_video(self, video: Path) -> Path:
        """Record in the video container's metadata (remux, no re-encode) and a sidecar next to it."""
        write_video_record(video, self.record)
        return write_sidecar(video, self.record)


def marker_for(model_id: str, source: dict[str, Any] | None = None) -> ProvenanceMarker:
    return ProvenanceMarker(make_record(model_id, source=source), make_payload(model_id))
