"""Marking merged output: the invisible watermark on pixels, the provenance record and the signed C2PA
manifest on files.

The merge runner and every other writer of merged output use one ProvenanceMarker, so the mark cannot
be forgotten on one path: `mark` for pixels, `tag` for encoded image bytes (record, then C2PA
signature), `finish_video` and `finish_folder` for the files a run leaves behind. A marker without
``credentials`` (the studio's in-memory previews, tests) writes the record only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facelab.core.atomic import write_json_atomic
from facelab.core.types import U8, BoolArray
from facelab.core.versioned import read_json_file
from facelab.media.metadata import embed_json
from facelab.provenance import syncmark
from facelab.provenance.credentials import ContentCredentials
from facelab.provenance.record import ProvenanceRecord, make_record, parse_record, write_sidecar, write_video_record

SIDECAR_NAME = "provenance.json"


@dataclass(frozen=True)
class ProvenanceMarker:
    record: ProvenanceRecord
    payload: BoolArray = field(repr=False)
    credentials: ContentCredentials | None = None

    def mark(self, rgb: U8, region: NDArray[np.generic] | None = None,
             inplace: bool = False, frame: int = 0, where: Literal["face", "frame"] = "face") -> U8:
        """The frame with the invisible watermark (provenance.syncmark, the version it writes; payload: facelab +
        the model id's first digits). ``where`` (the merge option ``watermark_region``): "face" marks inside
        `region` (the swapped faces) when given, at the same strength everywhere, so the rest of the frame stays exactly
        as it was; "frame" marks the whole frame, each place by its texture (syncmark.texture_gain).
        ``inplace`` marks the given array itself (no copy). ``frame``: the frame's index in its video."""
        if where == "frame":
            return syncmark.embed(rgb, self.payload, inplace=inplace, frame=frame, texture=True, within=region)
        return syncmark.embed(rgb, self.payload, region=region, inplace=inplace, frame=frame)

    @property
    def watermark_claim(self) -> dict[str, Any]:
        """What the C2PA manifest says about the watermark (its ``facelab.watermark`` assertion)."""
        return {**self.record.watermark, "model_id": self.record.model_id}

    def tag(self, encoded: bytes, title: str = "", parent: Path | None = None) -> bytes:
        """Encoded PNG/JPEG bytes with the provenance record in their metadata, then (with credentials) a
        signed C2PA manifest naming ``parent`` (the dst frame file) as the ingredient it was made from."""
        tagged = embed_json(encoded, self.record.to_json())
        if self.credentials is None:
            return tagged
        return self.credentials.sign_bytes(tagged, title, parent, self.watermark_claim)

    def finish_folder(self, folder: Path) -> Path:
        """The sidecar record of a folder of merged frames."""
        path = Path(folder) / SIDECAR_NAME
        write_json_atomic(path, self.record.to_json())
        return path

    def finish_video(self, video: Path, parent: Path | None = None) -> Path:
        """Record in the video container's metadata (remux, no re-encode), a sidecar next to it, and last
        (it hashes the final bytes) the signed C2PA manifest naming ``parent`` (default: the credentials'
        dst video). Matroska cannot carry a C2PA manifest: MKV output keeps the record and watermark only."""
        write_video_record(video, self.record)
        side = write_sidecar(video, self.record)
        if self.credentials is not None:
            self.credentials.sign_file(Path(video), self.watermark_claim, parent)
        return side


def folder_marker(folder: Path, credentials: ContentCredentials | None = None) -> ProvenanceMarker | None:
    """The marker of a folder of merged frames (from its ``provenance.json``); None for any other folder."""
    path = Path(folder) / SIDECAR_NAME
    if not path.is_file():
        return None
    record = parse_record(read_json_file(path, "provenance record"))
    if record is None:
        return None
    return ProvenanceMarker(record, syncmark.make_payload(record.model_id), credentials)


def marker_for(model_id: str, source: dict[str, Any] | None = None,
               credentials: ContentCredentials | None = None) -> ProvenanceMarker:
    """The marker of a run; pass ``credentials`` wherever it writes files (every output is signed)."""
    return ProvenanceMarker(make_record(model_id, source=source), syncmark.make_payload(model_id), credentials)
