"""Read back the provenance marks of an image or video: the invisible watermark, facelab's own record and
the signed C2PA manifest (validated offline: intact, tampered, or signed by whom)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from facelab.core.errors import InputError
from facelab.core.types import BoolArray, FloatArray, Image
from facelab.media.limits import decode_image
from facelab.media.metadata import detect_format
from facelab.media.video import iter_frames, probe_video
from facelab.provenance import syncmark
from facelab.provenance import watermark as wm
from facelab.provenance.credentials import C2paReport, read_credentials
from facelab.provenance.faces import FaceRegions, hulls
from facelab.provenance.record import ProvenanceRecord, read_image_record, read_sidecar, read_video_record

DEFAULT_MAX_FRAMES = 60
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

RecordSource = Literal["metadata", "sidecar"]


@dataclass
class VerifyReport:
    path: Path
    kind: Literal["image", "video"]
    watermark_found: bool
    """The payload (voted over the checked frames for a video) passed the magic and CRC check."""
    confidence: float
    """Scheme 2: the pilot's voted soft value in [0, 1] (~0 unmarked, up to ~0.8 clean); scheme 1 (or
    nothing found): mean magnitude of the voted soft bit values (~1 clean, ~0.04 unmarked)."""
    frames_checked: int
    frames_marked: int
    """Frames whose own watermark decodes (magic and CRC) on its own."""
    payload_model_prefix: str | None
    """The model-id prefix the watermark carries (None when no watermark was found)."""
    payload_hex: str | None
    record: ProvenanceRecord | None
    record_source: RecordSource | None
    notes: list[str] = field(default_factory=list)
    c2pa: C2paReport = field(default_factory=lambda: C2paReport("absent"))
    watermark_scheme: str | None = None
    """"facelab-sync-blocks/3" (what facelab writes now), "facelab-sync-blocks/2" or "facelab-dct-qim/1" (older
    outputs); None when no watermark was found."""

    @property
    def record_matches_watermark(self) -> bool | None:
        """Whether the record's model id agrees with the watermark's (None when either is missing)."""
        if self.record is None or self.payload_model_prefix is None:
            return None
        digits = len(self.payload_model_prefix)  # 6 (syncmark version 3) or 10 (older schemes)
        return wm.model_prefix(self.record.model_id, digits) == self.payload_model_prefix

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "watermark_found": self.watermark_found,
            "watermark_scheme": self.watermark_scheme,
            "confidence": round(self.confidence, 4),
            "frames_checked": self.frames_checked,
            "frames_marked": self.frames_marked,
            "payload_model_prefix": self.payload_model_prefix,
            "payload_hex": self.payload_hex,
            "record": None if self.record is None else self.record.to_json(),
            "record_source": self.record_source,
            "record_matches_watermark": self.record_matches_watermark,
            "c2pa": self.c2pa.to_json(),
            "notes": list(self.notes),
        }


def _is_image(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path) from exc
    return detect_format(head) is not None or path.suffix.lower() in _IMAGE_SUFFIXES


def _sample_indices(count: int, max_frames: int) -> set[int]:
    if count <= 0:
        return set()
    n = max(1, min(max_frames, count))
    return {int(i) for i in np.linspace(0, count - 1, n).round()}


def _frame_soft(rgb: Image, regions: list[BoolArray]) -> FloatArray:
    """Scheme 1's soft bits read where merge put the mark: inside a swapped face. Each face is read on its
    own (a frame may hold swapped and untouched faces, e.g. a side-by-side comparison); the first that
    decodes wins, then the whole frame (e.g. a frame marked all over); failing both, the strongest."""
    candidates = [wm.soft_bits(rgb, region=r) for r in regions] + [wm.soft_bits(rgb)]
    for soft in candidates:
        if wm.detection_from_soft(soft).found:
            return soft
    return max(candidates, key=wm.confidence_from_soft)


MAX_FACE_READERS = 3


def _how_read(reading: syncmark.Reading) -> str | None:
    """A note for the report when the mark was found only after undoing a change the file went through."""
    if reading.rotation:
        return (f"watermark read after turning the frames back by {abs(reading.rotation):g} degrees "
                f"({'counter-' if reading.rotation > 0 else ''}clockwise): the video was rotated after marking")
    if reading.scale != 1.0:
        return (f"watermark read after enlarging the frames {reading.scale:.3g} times: the video was scaled down "
                "after marking")
    if reading.located is not None:
        return (f"watermark read where it was located ({reading.located:.0%} of the frame): the video was "
                "cropped, shifted or partly covered after marking")
    if reading.rank:
        return (f"watermark decoded from a weak reading (Viterbi path {reading.rank + 1} of the "
                f"{syncmark.WRITTEN.whole_list} checked): the mark is facelab's; the model id is less certain")
    return None


class _Reading:
    """Every scheme's reading of a file's frames: scheme 1 (each frame's soft bits, voted: already summed, so read
    first), then syncmark, version 3 (what facelab writes) then version 2 (all
    frames' faces together, synchronised, the whole frame where no face is found; failing that, the whole frames;
    then read where the pilot locates the mark, blind; then the whole frames turned back by the angle the pilot
    prefers (a rotated video); then, for version 3 only, the whole frames enlarged by the factor the code fits
    best (a video scaled down and kept small: a search of several seconds, not spent on version 2, whose files
    predate it); then each of the first MAX_FACE_READERS faces from the left on its own, for frames holding
    swapped and untouched faces, e.g. a side-by-side comparison).

    Decodes that could pass the magic and CRC check by chance (2**-24 each): the reading of all faces at most 10
    in version 3 and 8 in version 2 (best offset and offset 0, each in the faces, in the whole frames (merge's
    default mark covers the frame), located, turned back, and in version 3 enlarged), each single-face reading at
    most 2; scheme 1's 1; and version 3's whole frames' reading at the pilot's offset checks its 16 best paths
    (list decoding, session 33: 15 more): at most 31 + 15 = 46 per file, 19 + 15 = 34 for a file with at most one
    face per frame (2.0e-6); ``thorough`` reads up to SCALE_DECODES_THOROUGH factors, 4 more (50 and 38)."""

    def __init__(self, thorough: bool = False) -> None:
        self.thorough = thorough  # the scale search's thorough choice (verify --thorough: 4 more decodes)
        self.faces = FaceRegions()
        self.sync = {lay: syncmark.VideoReader(lay) for lay in syncmark.LAYOUTS}
        self.sync_faces = {lay: [syncmark.VideoReader(lay) for _ in range(MAX_FACE_READERS)]
                           for lay in syncmark.LAYOUTS}
        self.v1: list[FloatArray] = []
        self.how: str | None = None  # a note on how the syncmark was found, when not in the usual place

    def add(self, rgb: Image) -> None:
        landmarks = sorted(self.faces.landmarks(rgb), key=lambda pts: float(np.mean(pts[:, 0])))
        inside = hulls(rgb, landmarks, syncmark.READ_FACE_TYPE)
        for lay in syncmark.LAYOUTS:
            self.sync[lay].add(rgb, np.any(inside, axis=0) if inside else None)
            if len(inside) > 1:
                for reader, region in zip(self.sync_faces[lay], inside, strict=False):
                    reader.add(rgb, region)
        self.v1.append(_frame_soft(rgb, hulls(rgb, landmarks, "full")))

    def result(self, step: Callable[[], None] | None = None) -> tuple[bool, float, int, str | None, str | None,
                                                                    str | None]:
        """(found, confidence, frames marked on their own, model prefix, payload hex, scheme). Scheme 1 is checked
        first: its soft bits are already voted (a sum), while a syncmark version that is not there costs its whole
        search (tens of seconds for 60 frames); the order changes no decode count."""
        det = wm.detection_from_soft(wm.mean_soft(self.v1))
        marked = sum(wm.detection_from_soft(s).found for s in self.v1)
        if det.found:
            return (True, det.confidence, marked, det.payload.model_prefix, wm.payload_hex(det.bits),
                    f"{wm.SCHEME}/{wm.SCHEME_VERSION}")
        for lay in syncmark.LAYOUTS:
            main = self.sync[lay]
            for reader in [main, *self.sync_faces[lay]]:
                if not reader.frames:
                    continue
                new = (reader.read_best(scaled=lay is syncmark.WRITTEN, thorough=self.thorough, step=step)
                       if reader is main else reader.read())
                if new.found:
                    self.how = _how_read(new)
                    return (True, new.confidence, sum(new.frames_found), new.payload.model_prefix,
                            wm.payload_hex(new.bits), lay.name)
        return False, det.confidence, marked, None, None, None


def verify(path: Path | str, max_frames: int = DEFAULT_MAX_FRAMES, thorough: bool = False,
           progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check a merged image or video for facelab's watermark and provenance record.

    Videos: up to ``max_frames`` frames spread evenly over the video are decoded and read together (both
    watermark schemes: 1, whose reading costs nothing once the frames are read, then 2, what facelab writes
    now), and each frame is also checked on its own. ``thorough``: the scale search tries every factor on every
    frame (``syncmark.VideoReader.read_scaled``). ``progress(done, total)``: the frames read, then the searches'
    readings (READ_STAGES a syncmark version), ending at (total, total).
    Raises InputError when the file is missing or cannot be read as an image or a video.
    """
    stages = syncmark.READ_STAGES * len(syncmark.LAYOUTS)
    steps = {"done": 0, "total": stages + 1}

    def tick() -> None:
        steps["done"] += 1
        if progress is not None:
            progress(min(steps["done"], steps["total"]), steps["total"])

    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_dir():
        raise InputError("is a folder, not an image or video file", path)
    if max_frames < 1:
        raise InputError(f"max_frames must be at least 1, got {max_frames}")
    notes: list[str] = []
    reading = _Reading(thorough)
    if _is_image(path):
        kind: Literal["image", "video"] = "image"
        data = path.read_bytes()
        bgr = decode_image(data, cv2.IMREAD_COLOR, path) if data else None
        if bgr is None:
            raise InputError("cannot decode this image (corrupt or unsupported format)", path)
        rgb: Image = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        if min(rgb.shape[:2]) < wm.MIN_SIDE:
            notes.append(f"image smaller than {wm.MIN_SIDE}x{wm.MIN_SIDE}: too small to carry a watermark")
        else:
            reading.add(rgb)
        tick()
    else:
        kind = "video"
        info = probe_video(path)
        if min(info.width, info.height) < wm.MIN_SIDE:
            notes.append(f"video smaller than {wm.MIN_SIDE}x{wm.MIN_SIDE}: too small to carry a watermark")
        else:
            wanted = _sample_indices(info.frame_count, max_frames)
            steps["total"] = len(wanted) + stages
            last = max(wanted) if wanted else -1
            try:
                for index, rgb in iter_frames(path):
                    if index > last:
                        break
                    if index not in wanted:
                        continue
                    reading.add(rgb)
                    tick()
            except InputError as exc:  # a damaged (e.g. tampered) video: report on the frames read
                notes.append(f"video decoding stopped: {exc}")
    found, confidence, marked, prefix, hex_payload, scheme = False, 0.0, 0, None, None, None
    checked = len(reading.v1)
    if checked:
        found, confidence, marked, prefix, hex_payload, scheme = reading.result(tick)
        if reading.how is not None:
            notes.append(reading.how)
    record: ProvenanceRecord | None = None
    source: RecordSource | None = None
    try:
        record = read_image_record(path) if kind == "image" else read_video_record(path)
        source = "metadata" if record is not None else None
    except InputError as exc:
        notes.append(f"embedded record unreadable: {exc}")
    if record is None:
        try:
            record = read_sidecar(path)
            source = "sidecar" if record is not None else None
        except InputError as exc:
            notes.append(f"sidecar unreadable: {exc}")
    try:
        c2pa = read_credentials(path)
    except InputError as exc:
        c2pa = C2paReport("unreadable", error=str(exc))
    report = VerifyReport(
        path=path,
        kind=kind,
        watermark_found=found,
        confidence=confidence,
        frames_checked=checked,
        frames_marked=marked,
        payload_model_prefix=prefix,
        payload_hex=hex_payload,
        record=record,
        record_source=source,
        notes=notes,
        c2pa=c2pa,
        watermark_scheme=scheme,
    )
    if report.record_matches_watermark is False:
        notes.append("the record's model id does not match the watermark's")
    claimed = (c2pa.watermark or {}).get("model_id")
    if isinstance(claimed, str) and prefix is not None and wm.model_prefix(claimed, len(prefix)) != prefix:
        notes.append("the C2PA manifest's model id does not match the watermark's")
    if record is not None and not found and checked:
        notes.append("a provenance record is present but no watermark was found (the mark may have been destroyed)")
    if progress is not None:
        progress(steps["total"], steps["total"])
    return report


def report_lines(report: VerifyReport) -> list[str]:
    """The report as lines of plain text."""
    lines = [f"{report.path} ({report.kind})"]
    if report.watermark_found:
        lines.append(
            f"watermark: FOUND (facelab, model {report.payload_model_prefix}…, confidence {report.confidence:.2f}, "
            f"scheme {report.watermark_scheme})"
        )
    else:
        lines.append(f"watermark: not found (confidence {report.confidence:.2f})")
    if report.kind == "video":
        lines.append(f"frames: {report.frames_marked} of {report.frames_checked} checked carry the mark on their own")
    rec = report.record
    if rec is None:
        lines.append("provenance record: none")
    else:
        lines.append(
            f"provenance record ({report.record_source}): {rec.tool} {rec.tool_version}, created {rec.created}"
        )
        lines.append(f"  model: {rec.model_id}")
        if rec.source:
            lines.append(f"  source: {', '.join(f'{k}={v}' for k, v in rec.source.items())}")
        lines.append(f"  synthetic: {rec.statement}")
    lines.extend(c2pa_lines(report.c2pa))
    lines.extend(f"note: {note}" for note in report.notes)
    return lines


_C2PA_STATES = {
    "trusted": "VALID, signed with this user's own facelab certificate (trusted here only)",
    "valid": "VALID signature and hashes; the signer is not on any trust list here",
    "invalid": "INVALID",
    "absent": "none",
    "unreadable": "UNREADABLE",
    "unsupported": "not supported for this file format",
}


def c2pa_lines(c2pa: C2paReport) -> list[str]:
    """The C2PA part of the report."""
    state = _C2PA_STATES[c2pa.state]
    if c2pa.tampered:
        state += ": TAMPERED (the file changed after signing; its hashes no longer match)"
    lines = [f"C2PA manifest: {state}"]
    if c2pa.present and c2pa.state != "unreadable":
        lines.append(f"  signed by: {c2pa.signer} (issuer {c2pa.issuer}); generator: {c2pa.claim_generator}")
        if c2pa.digital_source_types:
            lines.append(f"  digital source type: {', '.join(c2pa.digital_source_types)}")
        if c2pa.ingredients:
            lines.append(f"  ingredients: {'; '.join(c2pa.ingredients)}")
    shown = [f for f in c2pa.failures if not f.startswith("signingCredential.untrusted")]  # said above
    lines.extend(f"  failure: {failure}" for failure in shown)
    if c2pa.error:
        lines.append(f"  error: {c2pa.error}")
    return lines
