"""The inputs of a merge, read and checked before any work: the frames, the model, the dst faces grouped
by frame, the options against what is available, and the XSeg model when a mask mode needs one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from facelab.core.errors import InputError
from facelab.export.load import FaceSwapper, load_model
from facelab.face.align import framing_rank
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord
from facelab.media.frames import list_frames
from facelab.merge.options import check_supported
from facelab.merge.session import MergeSession
from facelab.merge.xseg_masks import has_stored_mask
from facelab.train.inference import SwapModel
from facelab.xseg.infer import XSegModel, load_xseg


@dataclass(frozen=True)
class MergeInputs:
    frames: list[Path]  # the frame folder, in frame order
    model: FaceSwapper
    faces: int  # dst faces in the aligned folder
    by_frame: dict[str, list[FaceRecord]]  # frame stem -> its faces, by face index
    unmatched: int  # faces whose source frame is not in the frame folder
    xseg: XSegModel | None

    @property
    def order(self) -> list[str]:
        return [p.stem for p in self.frames]


def load_inputs(model_path: Path, frames_dir: Path, aligned_dir: Path, out_dir: Path, session: MergeSession,
                device: str) -> MergeInputs:
    """Read and check everything a merge needs (InputError naming the problem); writes nothing. The model
    is a model folder or an ONNX file (.dfm or facelab's own: facelab.export.load)."""
    frames = list_frames(frames_dir)
    model = load_model(model_path, device, session.options.morph_value)
    scan = scan_faces(aligned_dir)
    if not scan.faces:
        raise InputError("no aligned faces in this folder: extract the dst faces first (facelab extract)",
                         aligned_dir)
    _check_face_types(scan.faces, model.face_type)
    _check_options(session, model, all(has_stored_mask(r) for _, r in scan.faces))
    xseg_model = session.options.xseg_model
    xseg = load_xseg(xseg_model) if xseg_model is not None else None
    by_frame = group_by_frame(rec for _, rec in scan.faces)
    known = {p.stem for p in frames}
    unmatched = sum(len(v) for k, v in by_frame.items() if k not in known)
    if unmatched == len(scan.faces):
        raise InputError(f"none of the {len(scan.faces)} faces in {aligned_dir} comes from a frame of this folder "
                         "(were they extracted from another video?)", frames_dir)
    if out_dir.resolve() == frames_dir.resolve():
        raise InputError("the output folder must not be the frame folder", out_dir)
    return MergeInputs(frames, model, len(scan.faces), by_frame, unmatched, xseg)


def group_by_frame(records: Iterable[FaceRecord]) -> dict[str, list[FaceRecord]]:
    """Frame stem -> its faces, by face index."""
    by_frame: dict[str, list[FaceRecord]] = {}
    for rec in records:
        by_frame.setdefault(rec.source.frame, []).append(rec)
    for recs in by_frame.values():
        recs.sort(key=lambda r: r.face_index)
    return by_frame


def _check_face_types(faces: Sequence[tuple[Path, FaceRecord]], model_type: str) -> None:
    need = framing_rank(model_type)
    for path, rec in faces:
        if framing_rank(rec.face_type) < need:
            raise InputError(f"face extracted as {rec.face_type}, but the model sees {model_type} faces (a larger "
                             f"crop): extract the dst faces again with --face-type "
                             f"{model_type if model_type != 'dfl_whole_face' else 'whole_face'}", path)


def _check_options(session: MergeSession, model: FaceSwapper, dst_masks: bool) -> None:
    for opts in session.variants():  # the base options, and with each range's or frame's overrides
        check_supported(opts, dst_masks)
    if session.options.direction == "dst2src":
        if not isinstance(model, SwapModel):
            raise InputError("--direction dst2src needs a model folder: an ONNX file has only the src2dst path")
        model.check_reverse()
