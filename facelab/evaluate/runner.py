"""Evaluate a swap: the result video against dst and the src faces, on uniformly sampled frames.

For each sampled frame i the largest face in dst's frame is the reference; the result's face is the
one whose detector box overlaps it most (IoU >= 0.3). SSIM and the perceptual distance compare the
face region of both frames (dst's aligned whole_face crop, 224 px, the same transform for both), so
they exist even when no face is found in the result. Identity, landmark and pose distances need the
result's face: frames without one are counted (`no_face_result`) and their values left empty, never
dropped silently. Frames without a face in dst are counted too (`no_face_dst`) and carry no values.
The detail ratio compares both crops inside the hull of dst's landmarks, so it exists with SSIM; the
mouth and eye openings are measured on each face's own landmarks. The temporal measures compare frame i
with frame i + 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facelab.core.errors import InputError
from facelab.core.geometry import transform_points
from facelab.core.types import F64, Image
from facelab.evaluate import metrics
from facelab.evaluate.frames import frame_count, frame_size, iter_selected, sample_indices
from facelab.evaluate.identity import faceset_embedding
from facelab.evaluate.options import EvaluateOptions
from facelab.evaluate.perceptual import perceptual_distance
from facelab.evaluate.report import summarise
from facelab.evaluate.results import Evaluation, FrameMetrics
from facelab.extract.analyze import DetectedFace, FrameAnalyzer
from facelab.extract.options import ExtractOptions
from facelab.face import expression
from facelab.face.align import face_transform, warp_face
from facelab.face.identity import Embedder, Embedding, create_embedder, distance
from facelab.face.pose import estimate_pose
from facelab.face.types import iou

Progress = Callable[[int, int], None]
MIN_IOU = 0.3


@dataclass
class _Analysed:
    """What frame i of both videos needs to be compared with frame i + 1."""

    dst_face: DetectedFace
    result_face: DetectedFace | None
    crop_mat: F64
    crops: tuple[Image, Image]


def _match(faces: list[DetectedFace], ref: DetectedFace) -> DetectedFace | None:
    best = max(faces, key=lambda f: iou(f.box, ref.box), default=None)
    return best if best is not None and iou(best.box, ref.box) >= MIN_IOU else None


class SwapEvaluator:
    """Holds the models; `compare` measures one pair of frames."""

    def __init__(self, options: EvaluateOptions, src_identity: Embedding | None) -> None:
        self.options = options
        self.analyzer = FrameAnalyzer(ExtractOptions(detector=options.detector, landmarks=options.landmarks,
                                                     workers=1))
        self.embedder: Embedder = create_embedder()
        self.src_identity = src_identity

    def analyse(self, result: Image, dst: Image) -> _Analysed | None:
        dst_faces = self.analyzer.analyze(dst)
        if not dst_faces:
            return None
        d = dst_faces[0]
        r = _match(self.analyzer.analyze(result), d)
        mat = face_transform(d.landmarks, metrics.CROP_FACE_TYPE, metrics.CROP_SIZE)
        crops = (warp_face(result, mat, metrics.CROP_SIZE), warp_face(dst, mat, metrics.CROP_SIZE))
        return _Analysed(d, r, mat, crops)

    def compare(self, index: int, result: Image, dst: Image, a: _Analysed | None) -> FrameMetrics:
        if a is None:
            return FrameMetrics(index, "no_face_dst")
        row = self._region(index, a)
        if a.result_face is not None:
            self._faces(row, result, dst, a.result_face, a.dst_face)
        return row

    @staticmethod
    def _region(index: int, a: _Analysed) -> FrameMetrics:
        """What needs only dst's face: the face-region measures (both crops, dst's transform) and dst's openings."""
        rc, dc = a.crops
        d = a.dst_face.landmarks
        return FrameMetrics(index, "ok" if a.result_face is not None else "no_face_result",
                            ssim=metrics.ssim(rc, dc), perceptual=float(perceptual_distance(rc, dc)[0]),
                            detail=metrics.detail_ratio(rc, dc, transform_points(d, a.crop_mat)),
                            mouth_open_dst=expression.mouth_opening(d), eye_open_dst=expression.eye_opening(d))

    def _faces(self, row: FrameMetrics, result: Image, dst: Image, r: DetectedFace, d: DetectedFace) -> None:
        """What needs the result's face too: identity, landmark and pose distances, the result's openings."""
        emb = self.embedder.embed(result, r.landmarks)
        row.id_dst = distance(emb, self.embedder.embed(dst, d.landmarks))
        if self.src_identity is not None:
            row.id_src = distance(emb, self.src_identity)
        row.landmarks = metrics.landmark_distance(r.landmarks, d.landmarks)
        size = (dst.shape[1], dst.shape[0])
        row.yaw, row.pitch, row.roll, row.pose = metrics.pose_difference(estimate_pose(r.landmarks, size),
                                                                         estimate_pose(d.landmarks, size))
        row.mouth_open_result = expression.mouth_opening(r.landmarks)
        row.eye_open_result = expression.eye_opening(r.landmarks)

    def temporal(self, row: FrameMetrics, a: _Analysed, result_next: Image, dst_next: Image,
                 b: _Analysed | None) -> None:
        """Jitter and flicker of frame i (`row`, `a`) against frame i + 1 (`b` its analysis)."""
        size = metrics.CROP_SIZE
        rn, dn = warp_face(result_next, a.crop_mat, size), warp_face(dst_next, a.crop_mat, size)
        row.flicker = metrics.flicker(a.crops[0], rn, a.crops[1], dn)
        if a.result_face is not None and b is not None and b.result_face is not None:
            row.jitter = metrics.landmark_jitter(a.result_face.landmarks, b.result_face.landmarks,
                                                 a.dst_face.landmarks, b.dst_face.landmarks)


def check_inputs(result: Path, dst: Path) -> tuple[int, int]:
    """Frame counts of result and dst; raises InputError when they cannot be compared."""
    for path, what in ((result, "result"), (dst, "dst")):
        if not path.exists():
            raise InputError(f"no such {what} video or frame folder", path)
    r_size, d_size = frame_size(result), frame_size(dst)
    if r_size != d_size:
        raise InputError(f"the result's frames are {r_size[0]}x{r_size[1]} but dst's are {d_size[0]}x{d_size[1]}: "
                         "give the dst the result was merged onto", result)
    return frame_count(result), frame_count(dst)


def evaluate_swap(result: Path, dst: Path, src_faces: Path | None, options: EvaluateOptions | None = None,
                  progress: Progress | None = None) -> Evaluation:
    """Measure a swap on `options.frames` frames spread evenly over the shorter of result and dst."""
    opts = options or EvaluateOptions()
    result, dst = Path(result), Path(dst)
    n_result, n_dst = check_inputs(result, dst)
    count = min(n_result, n_dst)
    evaluator = SwapEvaluator(opts, None)
    src_n = 0
    if src_faces is not None:
        evaluator.src_identity, src_n = faceset_embedding(Path(src_faces), evaluator.embedder, opts.src_limit)
    sampled = sample_indices(count, opts.frames)
    is_sampled = set(sampled)
    wanted = set(sampled)
    if opts.temporal:
        wanted |= {i + 1 for i in sampled if i + 1 < count}
    rows: dict[int, FrameMetrics] = {}
    held: dict[int, _Analysed] = {}  # analysis of sampled frame i, until frame i + 1 is read
    done = 0
    pairs = zip(iter_selected(result, wanted), iter_selected(dst, wanted), strict=False)
    for (i, r_img), (j, d_img) in pairs:
        if i != j:
            raise InputError(f"could not read frame {min(i, j)} of both videos", result if i > j else dst)
        a = evaluator.analyse(r_img, d_img)
        prev = held.pop(i - 1, None)
        if prev is not None:
            evaluator.temporal(rows[i - 1], prev, r_img, d_img, a)
        if i in is_sampled:
            rows[i] = evaluator.compare(i, r_img, d_img, a)
            if a is not None and opts.temporal and i + 1 < count:
                held[i] = a
            done += 1
            if progress is not None:
                progress(done, len(sampled))
    ordered = [rows[i] for i in sorted(rows)]
    info = {"result": str(result), "dst": str(dst), "src_faces": None if src_faces is None else str(src_faces),
            "src_faces_used": src_n, "result_frames": n_result, "dst_frames": n_dst, "frames_sampled": len(ordered),
            "options": opts.model_dump()}
    return Evaluation(ordered, info, summarise(ordered, info))
