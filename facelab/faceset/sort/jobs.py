"""The three folder jobs behind the CLI: sort, dedupe and filter by identity.

Each scans the folder (metadata only), computes the features its method needs (pixels decoded only
then), decides an order and the faces to move out, and applies that as a safe plan (see ``rename``)
unless it is a dry run. Files without face metadata are reported and left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelab.core.errors import InputError
from facelab.core.lock import Want, locked
from facelab.face.identity import SAME_PERSON_THRESHOLD
from facelab.faceset.features import FaceFeatures, compute_features
from facelab.faceset.folder import FaceScan, scan_faces
from facelab.faceset.sort.dedupe import DEFAULT_DEDUPE_THRESHOLD, duplicate_groups, keep_sharpest
from facelab.faceset.sort.identity import main_identity, reference_identity
from facelab.faceset.sort.methods import DEFAULT_BEST_TARGET, SORT_METHODS, SortInput
from facelab.faceset.sort.rename import Plan, apply_plan, journal_request, pending, plan_moves, recover, strip_prefix

Progress = Callable[[int], None]
Total = Callable[[int], None]


@dataclass(slots=True)
class JobReport:
    """What a job did (or, in a dry run, would do)."""

    directory: Path
    plan: Plan
    dry_run: bool
    faces: int = 0
    foreign: list[Path] = field(default_factory=list)  # images without face metadata: skipped
    invalid: list[tuple[Path, str]] = field(default_factory=list)  # unreadable face files: skipped
    recovered: int = 0  # files put right from an interrupted earlier sort
    groups: list[list[Path]] = field(default_factory=list)  # dedupe: the groups of near-identical faces
    distances: dict[Path, float] = field(default_factory=dict)  # filter: identity distance of each face
    scores: dict[Path, float] = field(default_factory=dict)  # sort: the value each face was ranked by, if any


Request = dict[str, object]


def _prepare(directory: Path, dry_run: bool, request: Request) -> tuple[FaceScan, int, bool]:
    """The folder's faces after finishing an interrupted plan, the files that took, and whether that plan
    was this same request's (then the job is done: a killed job run again ends as if never killed)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("folder not found" if not directory.exists() else "not a folder", directory)
    recovered, finished = 0, False
    if pending(directory):
        if dry_run:
            raise InputError("an interrupted sort left a journal here; run once without --dry-run to finish it",
                             directory)
        finished = journal_request(directory) == request
        recovered = recover(directory)
    scan = scan_faces(directory)
    # in the order of the names before any sort: ties and greedy choices then do not depend on an earlier
    # sort's prefixes, so sorting a sorted folder again by the same method keeps its order
    scan.faces.sort(key=lambda face: (strip_prefix(face[0].name), face[0].name))
    return scan, recovered, finished


def _done(directory: Path, scan: FaceScan, recovered: int) -> JobReport:
    """The report of a job whose interrupted plan was just finished."""
    return JobReport(directory=Path(directory), plan=Plan(), dry_run=False, faces=len(scan.faces),
                     foreign=scan.foreign, invalid=scan.invalid, recovered=recovered)


def _features(scan: FaceScan, wanted: frozenset[str], workers: int, progress: Progress | None,
              total: Total | None) -> list[FaceFeatures]:
    if not wanted:
        return []
    if total is not None:
        total(len(scan.faces))
    return compute_features(scan.faces, wanted, workers=workers, progress=progress)


def _finish(directory: Path, scan: FaceScan, plan: Plan, dry_run: bool, recovered: int,
            request: Request) -> JobReport:
    if not dry_run and not plan.empty:
        apply_plan(directory, plan, request)
    return JobReport(directory=Path(directory), plan=plan, dry_run=dry_run, faces=len(scan.faces),
                     foreign=scan.foreign, invalid=scan.invalid, recovered=recovered)



def _faceset_wants(arguments: Mapping[str, Any]) -> list[Want]:
    """A dry run only reads the faceset; a real one renames and moves its faces."""
    return [Want(Path(arguments["directory"]), shared=bool(arguments["dry_run"]), create=False)]


@locked("faceset sort", wants=_faceset_wants)
def sort_faceset(directory: Path, method: str, *, target: int = DEFAULT_BEST_TARGET, dry_run: bool = False,
                 workers: int = 1, progress: Progress | None = None, total: Total | None = None) -> JobReport:
    """Sort the faces of ``directory`` by ``method``: renamed in order (``00000~name``), faces the method
    rejects moved to ``DIR_trash``."""
    spec = SORT_METHODS.get(method)
    if target < 1:
        raise InputError(f"--target must be at least 1, got {target}")
    request: Request = {"job": "sort", "method": method, "target": target}
    scan, recovered, finished = _prepare(directory, dry_run, request)
    if finished:
        return _done(directory, scan, recovered)
    features = _features(scan, spec.features, workers, progress, total)
    result = spec.run(SortInput(faces=scan.faces, features=features, target=target))
    paths = [path for path, _ in scan.faces]
    plan = plan_moves(directory, [paths[i] for i in result.order], [paths[i] for i in result.trash])
    report = _finish(directory, scan, plan, dry_run, recovered, request)
    report.scores = dict(zip(paths, result.scores, strict=True)) if result.scores else {}
    return report


@locked("faceset dedupe", wants=_faceset_wants)
def dedupe_faceset(directory: Path, *, threshold: float = DEFAULT_DEDUPE_THRESHOLD, dry_run: bool = False,
                   workers: int = 1, progress: Progress | None = None, total: Total | None = None) -> JobReport:
    """Move near-identical faces to ``DIR_trash``, keeping the sharpest of each group; names are kept."""
    if threshold < 0:
        raise InputError(f"--threshold must be 0 or more, got {threshold}")
    request: Request = {"job": "dedupe", "threshold": threshold}
    scan, recovered, finished = _prepare(directory, dry_run, request)
    if finished:
        return _done(directory, scan, recovered)
    features = _features(scan, frozenset({"thumb", "sharpness"}), workers, progress, total)
    paths = [path for path, _ in scan.faces]
    groups: list[list[int]] = []
    if features:
        thumbs = np.stack([f.thumb for f in features if f.thumb is not None])
        groups = duplicate_groups(thumbs, threshold)
    _, removed = keep_sharpest(groups, [f.sharpness or 0.0 for f in features])
    plan = Plan(trash=plan_moves(directory, [], [paths[i] for i in removed]).trash)
    report = _finish(directory, scan, plan, dry_run, recovered, request)
    report.groups = [[paths[i] for i in g] for g in groups]
    return report


@locked("faceset filter", wants=_faceset_wants)
def filter_faceset(directory: Path, *, reference: Path | None = None, threshold: float = SAME_PERSON_THRESHOLD,
                   dry_run: bool = False, workers: int = 1, progress: Progress | None = None,
                   total: Total | None = None) -> JobReport:
    """Move faces farther than ``threshold`` from the reference identity (default: the set's main
    identity) to ``DIR_trash``; names are kept."""
    if threshold <= 0:
        raise InputError(f"--threshold must be more than 0, got {threshold}")
    ref = reference_identity(reference) if reference is not None else None
    request: Request = {"job": "filter", "reference": None if reference is None else str(reference),
                        "threshold": threshold}
    scan, recovered, finished = _prepare(directory, dry_run, request)
    if finished:
        return _done(directory, scan, recovered)
    features = _features(scan, frozenset({"identity"}), workers, progress, total)
    paths = [path for path, _ in scan.faces]
    distances: dict[Path, float] = {}
    removed: list[Path] = []
    if features:
        emb = np.stack([f.identity for f in features if f.identity is not None])
        centre = ref if ref is not None else main_identity(emb, threshold)
        for path, d in zip(paths, np.linalg.norm(emb - centre, axis=1), strict=True):
            distances[path] = float(d)
            if d > threshold:
                removed.append(path)
    plan = Plan(trash=plan_moves(directory, [], removed).trash)
    report = _finish(directory, scan, plan, dry_run, recovered, request)
    report.distances = distances
    return report
