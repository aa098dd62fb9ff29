"""Marking merged output: the invisible watermark on pixels, the provenance record and the signed C2PA
manifest on files.

The merge runner and every other writer of merged output use one ProvenanceMarker, so the mark cannot
be forgotten on one path: `mark` for pixels, `tag` for encoded image bytes (record, then C2PA
signature), `finish_video` and `finish_folder` for the files a run leaves behind. A marker without
``credentials`` (the studio's in-memory previews, tests) writes the record only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facelab.core.atomic import write_json_atomic
from facelab.core.errors import MetadataError
from facelab.core.types import U8, BoolArray
from facelab.core.versioned import read_json_file
from facelab.media.frames import read_image_rgb
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
    phase: tuple[int, int] = (0, 0)
    """Where the watermark's tiling starts (pixels, y and x): ``placed`` chooses it for a video's frames."""

    def placed(self, frames: Sequence[U8]) -> ProvenanceMarker:
        """This marker with the tiling's phase chosen on a few of the output's frames (``syncmark.choose_phase``:
        the phase whose host already agrees best with the payload), recorded in the record's ``watermark.phase``
        (a resumed run, a comparison video or a later ``video build`` marks at the same phase)."""
        return self.at_phase(syncmark.choose_phase(frames, self.payload))

    def at_phase(self, phase: tuple[int, int]) -> ProvenanceMarker:
        """This marker at a given phase (pixels, multiples of the block), recorded as ``placed`` records it."""
        mark = {**self.record.watermark, "phase": [int(phase[0]), int(phase[1])]}
        return replace(self, record=self.record.model_copy(update={"watermark": mark}), phase=(phase[0], phase[1]))

    def mark(self, rgb: U8, region: NDArray[np.generic] | None = None,
             inplace: bool = False, frame: int = 0, where: Literal["face", "frame"] = "face") -> U8:
        """The frame with the invisible watermark (provenance.syncmark, the version it writes; payload: facelab +
        the model id's first digits). ``where`` (the merge option ``watermark_region``): "face" marks inside
        `region` (the swapped faces) when given, at the same strength everywhere, so the rest of the frame stays exactly
        as it was; "frame" marks the whole frame, each place by its texture (syncmark.texture_gain).
        ``inplace`` marks the given array itself (no copy). ``frame``: the frame's index in its video."""
        if where == "frame":
            return syncmark.embed(rgb, self.payload, inplace=inplace, frame=frame, texture=True, within=region,
                                  phase=self.phase)
        return syncmark.embed(rgb, self.payload, region=region, inplace=inplace, frame=frame, phase=self.phase)

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
    return ProvenanceMarker(record, syncmark.make_payload(record.model_id), credentials, record_phase(record))


def phase_sample(frames: Sequence[Path], by_frame: Mapping[str, Sequence[object]]) -> list[U8]:
    """The dst frames a merge chooses the watermark's phase on (``ProvenanceMarker.placed``): PHASE_FRAMES of
    those holding faces (``by_frame``: stem -> faces; the frames merge marks), spread over the whole video, all of
    the first one's size. `facelab merge` (every shard, a resumed run) and the studio's tuner pick the same."""
    with_faces = [p for p in frames if by_frame.get(p.stem)]
    if not with_faces:
        return []
    n = syncmark.PHASE_FRAMES
    picks = [with_faces[round(i * (len(with_faces) - 1) / max(n - 1, 1))] for i in range(n)]
    images = [read_image_rgb(p) for p in dict.fromkeys(picks)]
    return [f for f in images if f.shape == images[0].shape]


def folder_phase(folder: Path) -> tuple[int, int]:
    """The watermark phase of a folder of merged frames (its ``provenance.json``; (0, 0) without one)."""
    marker = folder_marker(folder)
    return (0, 0) if marker is None else marker.phase


def record_phase(record: ProvenanceRecord) -> tuple[int, int]:
    """The watermark tiling's phase a record names (``watermark.phase``; (0, 0) in records from before it was
    chosen, 2026-12-03); a malformed one raises MetadataError."""
    value = record.watermark.get("phase", [0, 0])
    block = syncmark.WRITTEN.block

    def fits(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < syncmark.WRITTEN.tile and v % block == 0

    if not isinstance(value, list) or len(value) != 2 or not all(fits(v) for v in value):
        raise MetadataError(f"invalid provenance record: watermark.phase must be two multiples of {block} "
                            f"below {syncmark.WRITTEN.tile}, got {value!r}")
    return value[0], value[1]


def marker_for(model_id: str, source: dict[str, Any] | None = None,
               credentials: ContentCredentials | None = None) -> ProvenanceMarker:
    """The marker of a run; pass ``credentials`` wherever it writes files (every output is signed)."""
    return ProvenanceMarker(make_record(model_id, source=source), syncmark.make_payload(model_id), credentials)
