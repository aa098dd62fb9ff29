"""The face fixing page's backend: the dst frames and their faces, the suspicious list, the landmark model
on a box, tracking from a neighbouring frame, and saving or removing a face through facelab.extract.manual.

Frames are addressed by their position in the dst frame folder (``list_frames`` order, which is also the
frame number extraction gives them); faces by their face index within the frame. The landmark model is the
extraction's own (``FrameAnalyzer`` with the folder's extraction options: detector and landmark backend),
loaded once per studio.

After a change, the merged frame of that frame (``merged/<stem>.*`` and its mask) is removed when there is
one: it shows the old face, and `facelab merge` skips frames its journal has done unless their files are
missing, so removing them makes the next merge (a resumed one too) do that frame again.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from facelab.core.errors import InputError
from facelab.core.types import Image, Points
from facelab.extract.analyze import DetectedFace, FrameAnalyzer
from facelab.extract.manual import MANUAL, delete_face, folder_options, read_journal, save_face
from facelab.extract.options import ExtractOptions
from facelab.face.types import FaceBox
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord
from facelab.media.frames import list_frames, read_image_rgb
from facelab.merge.jobs import MASKS_DIR
from facelab.studio.face_fix.suspicious import JUMP_IOD, LOW_SCORE, FaceInfo, check_frames
from facelab.studio.layout import Layout

MIN_BOX = 8.0  # pixels


class FramePastEnd(InputError):
    """A frame index outside the dst frames (HTTP 404)."""


def _stat_key(path: Path) -> tuple[Any, ...]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)


def check_box(box: tuple[float, float, float, float], width: int, height: int) -> FaceBox:
    """The box (left, top, right, bottom) as a FaceBox placed by hand; InputError when it is empty or not on
    the frame (its centre and at least half of it must be inside)."""
    left, top, right, bottom = (float(v) for v in box)
    if not all(np.isfinite([left, top, right, bottom])):
        raise InputError("the box must be four finite numbers: left, top, right, bottom")
    if right - left < MIN_BOX or bottom - top < MIN_BOX:
        raise InputError(f"the box is too small ({right - left:.0f}x{bottom - top:.0f} px; at least {MIN_BOX:.0f} px "
                         "a side)")
    cx, cy = (left + right) / 2, (top + bottom) / 2
    inside = max(0.0, min(right, width) - max(left, 0.0)) * max(0.0, min(bottom, height) - max(top, 0.0))
    if not (0 <= cx <= width and 0 <= cy <= height) or inside < 0.5 * (right - left) * (bottom - top):
        raise InputError(f"the box ({left:.0f}, {top:.0f}, {right:.0f}, {bottom:.0f}) is outside the frame "
                         f"({width}x{height}): place it on the face")
    return FaceBox(left, top, right, bottom, 1.0, MANUAL)


def check_landmarks(points: list[tuple[float, float]], box: FaceBox, width: int, height: int) -> Points:
    """68 finite points, each within the frame grown by the box's size; InputError otherwise."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
        raise InputError(f"landmarks must be 68 finite (x, y) points, got {len(points)}")
    margin = max(box.width, box.height)
    if (pts[:, 0] < -margin).any() or (pts[:, 0] > width + margin).any() or (pts[:, 1] < -margin).any() \
            or (pts[:, 1] > height + margin).any():
        raise InputError(f"landmarks lie outside the frame ({width}x{height})")
    return pts


def _face_json(layout: Layout, path: Path, rec: FaceRecord, score: float | None) -> dict[str, Any]:
    return {"face_index": rec.face_index, "file": path.relative_to(layout.root).as_posix(), "rect": list(rec.rect),
            "landmarks": [[round(x, 3), round(y, 3)] for x, y in rec.source_landmarks],
            "score": score, "detector": rec.detector, "landmarker": rec.landmarker,
            "xseg_polygons": len(rec.xseg_polygons)}


def _detected_json(face: DetectedFace, tracked: bool | None = None) -> dict[str, Any]:
    b = face.box
    out: dict[str, Any] = {"box": [b.left, b.top, b.right, b.bottom], "score": b.score, "detector": b.detector,
                           "landmarker": face.landmarker,
                           "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in face.landmarks]}
    if tracked is not None:
        out["tracked"] = tracked
    return out


class FaceFixer:
    """One per studio app; thread-safe (one lock around the models and every write)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._lock = threading.RLock()
        self._analyzer: FrameAnalyzer | None = None
        self._analyzer_opts: ExtractOptions | None = None
        self._scan_key: tuple[Any, ...] | None = None
        self._scan: tuple[dict[str, list[tuple[Path, FaceRecord]]], dict[str, dict[str, Any]]] = ({}, {})

    # ---- reading -------------------------------------------------------------------------------

    def frame_paths(self) -> list[Path]:
        if not self.layout.dst_frames.is_dir():
            raise InputError("no dst frames yet: run the frames step first (facelab video frames)")
        return list_frames(self.layout.dst_frames)

    def frame_path(self, i: int) -> Path:
        frames = self.frame_paths()
        if not 0 <= i < len(frames):
            raise FramePastEnd(f"frame {i} is past the end: this workspace has {len(frames)} frames "
                               f"(0 to {len(frames) - 1})")
        return frames[i]

    def options(self) -> ExtractOptions:
        """The dst folder's extraction options (face type, size, format, detector, landmark backend)."""
        if not self.layout.dst_aligned.is_dir():
            raise InputError("no dst faces yet: run the dst extraction first (facelab extract)")
        return folder_options(self.layout.dst_aligned)

    def faces(self) -> tuple[dict[str, list[tuple[Path, FaceRecord]]], dict[str, dict[str, Any]]]:
        """(frame stem -> its face files by face index, frame stem -> journal entry), cached on the folder."""
        aligned = self.layout.dst_aligned
        key = (_stat_key(aligned), _stat_key(aligned / "_extract" / "journal.jsonl"))
        with self._lock:
            if key == self._scan_key:
                return self._scan
        by_frame: dict[str, list[tuple[Path, FaceRecord]]] = {}
        if aligned.is_dir():
            for path, rec in scan_faces(aligned).faces:
                by_frame.setdefault(rec.source.frame, []).append((path, rec))
        for faces in by_frame.values():
            faces.sort(key=lambda pr: pr[1].face_index)
        journal = read_journal(aligned) if aligned.is_dir() else {}
        with self._lock:
            self._scan_key, self._scan = key, (by_frame, journal)
        return by_frame, journal

    @staticmethod
    def _score(entry: dict[str, Any] | None, path: Path) -> float | None:
        for f in (entry or {}).get("faces", []):
            if isinstance(f, dict) and f.get("file") == path.name and isinstance(f.get("score"), int | float):
                return float(f["score"])
        return None

    def overview(self) -> dict[str, Any]:
        stems = [p.stem for p in self.frame_paths()]
        by_frame, journal = self.faces()
        infos = {stem: [FaceInfo(r.face_index, r.source_landmarks_array(), self._score(journal.get(stem), p),
                                 r.detector) for p, r in faces] for stem, faces in by_frame.items()}
        checks = check_frames(stems, infos)
        suspicious = [{"i": i, "stem": c.stem, "faces": c.faces, "reasons": [r.to_json() for r in c.reasons]}
                      for i, c in enumerate(checks) if c.reasons]
        try:
            opts: dict[str, Any] = self.options().model_dump(mode="json", include={"face_type", "size", "detector",
                                                                                   "landmarks", "image_format"})
            opts_error = None
        except InputError as exc:
            opts, opts_error = {}, str(exc).replace(f"{self.layout.root}/", "")
        return {"count": len(stems), "stems": stems, "faces": [c.faces for c in checks],
                "no_face": [i for i, c in enumerate(checks) if not c.faces], "suspicious": suspicious,
                "thresholds": {"jump_iod": JUMP_IOD, "low_score": LOW_SCORE}, "options": opts,
                "options_error": opts_error}

    def frame(self, i: int) -> dict[str, Any]:
        path = self.frame_path(i)
        stems = [p.stem for p in self.frame_paths()]
        by_frame, journal = self.faces()
        faces = by_frame.get(path.stem, [])
        width, height = _image_size(path, faces)
        infos = {s: [FaceInfo(r.face_index, r.source_landmarks_array(), self._score(journal.get(s), p), r.detector)
                     for p, r in by_frame.get(s, [])] for s in stems[max(0, i - 1):i + 2]}
        reasons = check_frames(stems[max(0, i - 1):i + 2], infos)[min(i, 1)].reasons
        return {"i": i, "stem": path.stem, "count": len(stems), "width": width, "height": height,
                "faces": [_face_json(self.layout, p, r, self._score(journal.get(path.stem), p)) for p, r in faces],
                "reasons": [r.to_json() for r in reasons]}

    def _image(self, i: int) -> tuple[Path, Image]:
        path = self.frame_path(i)
        return path, read_image_rgb(path)

    def _model(self) -> FrameAnalyzer:
        opts = self.options()
        if self._analyzer is None or self._analyzer_opts != opts:
            self._analyzer, self._analyzer_opts = FrameAnalyzer(opts), opts
        return self._analyzer

    # ---- the landmark model ----------------------------------------------------------------------

    def fit(self, i: int, box: tuple[float, float, float, float]) -> dict[str, Any]:
        """The landmark model's 68 points in a box placed by hand (nothing is written)."""
        _, image = self._image(i)
        h, w = image.shape[:2]
        fbox = check_box(box, w, h)
        with self._lock:
            face = self._model().face_in_box(image, fbox)
        if face is None:
            raise InputError("the landmark model found no face in this box")
        return _detected_json(face)

    def track(self, i: int, source: int, face_index: int) -> dict[str, Any]:
        """Face ``face_index`` of frame ``source`` followed into frame ``i`` as extraction tracks a face: the
        detector in a window around the source face's box, then the landmark model on the box found; where
        the detector finds nothing there, the landmark model on the source face's box (nothing is written)."""
        src_path = self.frame_path(source)
        if source == i:
            raise InputError("copy a face from another frame (the previous or the next)")
        by_frame, journal = self.faces()
        found = [(p, r) for p, r in by_frame.get(src_path.stem, []) if r.face_index == face_index]
        if not found:
            raise InputError(f"frame {source} ({src_path.stem}) has no face {face_index}")
        p, rec = found[0]
        score = self._score(journal.get(src_path.stem), p)
        _, image = self._image(i)
        h, w = image.shape[:2]
        prev = FaceBox(*rec.rect, score if score is not None else 1.0, rec.detector)
        with self._lock:
            model = self._model()
            near = model.detect_near(image, prev)
            tracked = near is not None and near.size >= model.opts.min_face_size
            box = near if near is not None and tracked else check_box(rec.rect, w, h)
            face = model.face_in_box(image, box)
        if face is None:
            raise InputError(f"the landmark model found no face where face {face_index} of frame {source} was")
        return _detected_json(face, tracked)

    # ---- writing ---------------------------------------------------------------------------------

    def save(self, i: int, face_index: int | None, box: tuple[float, float, float, float],
             landmarks: list[tuple[float, float]] | None, detector: str | None = None, score: float | None = None,
             landmarker: str | None = None) -> dict[str, Any]:
        """Write a face of frame ``i`` through the library (a new one when ``face_index`` is None) from ``box``
        and ``landmarks`` (None: the landmark model's in the box). Checks everything before writing."""
        path, image = self._image(i)
        h, w = image.shape[:2]
        fbox = check_box(box, w, h)
        if detector is not None:
            fbox = FaceBox(fbox.left, fbox.top, fbox.right, fbox.bottom, 1.0 if score is None else float(score),
                           detector)
        by_frame, _ = self.faces()
        existing = [r.face_index for _, r in by_frame.get(path.stem, [])]
        if face_index is not None and face_index not in existing:
            raise InputError(f"frame {i} ({path.stem}) has no face {face_index} (faces: "
                             f"{', '.join(map(str, existing)) or 'none'})")
        with self._lock:
            opts = self.options()
            if landmarks is None:
                face = self._model().face_in_box(image, fbox)
                if face is None:
                    raise InputError("the landmark model found no face in this box")
            else:
                face = DetectedFace(fbox, check_landmarks(landmarks, fbox, w, h), landmarker or MANUAL)
            written = save_face(self.layout.dst_aligned, image, path.stem, i, face, opts, face_index)
            dropped = self._drop_merged(path.stem)
        return self.frame(i) | {"written": written.relative_to(self.layout.root).as_posix(), "merged_dropped": dropped}

    def delete(self, i: int, face_index: int) -> dict[str, Any]:
        """Remove face ``face_index`` of frame ``i`` (a false detection)."""
        path = self.frame_path(i)
        with self._lock:
            removed = delete_face(self.layout.dst_aligned, path.stem, face_index)
            dropped = self._drop_merged(path.stem)
        return self.frame(i) | {"removed": removed.relative_to(self.layout.root).as_posix(), "merged_dropped": dropped}

    def _drop_merged(self, stem: str) -> list[str]:
        merged = self.layout.merged
        out = []
        for p in [*(merged / f"{stem}.{ext}" for ext in ("png", "jpg")), merged / MASKS_DIR / f"{stem}.png"]:
            if p.is_file():
                p.unlink()
                out.append(p.relative_to(self.layout.root).as_posix())
        return out


def _image_size(path: Path, faces: list[tuple[Path, FaceRecord]]) -> tuple[int, int]:
    if faces:
        src = faces[0][1].source
        return src.width, src.height
    img = read_image_rgb(path)
    return int(img.shape[1]), int(img.shape[0])
