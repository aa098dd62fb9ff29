"""Pretraining a face prior: gather many people's faces into one faceset, train, export.

``gather_faces`` extracts every source (a video, or a folder of photos or frames) into
``OUT/sources/<name>/`` (each resumable through extraction's own journal) and hard-links every face
into ``OUT/faces/<name>__<face>`` (copies where links are impossible): one folder the trainer reads
as one faceset. ``OUT/sources.json`` records each source's face count and, where a ``manifest.tsv``
beside it says so, its licence and origin, for the prior's model card.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from facelab.core.atomic import write_json_atomic
from facelab.core.choices import IMAGE_EXTENSIONS
from facelab.core.errors import InputError
from facelab.core.versioned import read_versioned_json
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract
from facelab.train.prior import SourceNote

SOURCES_SCHEMA = "facelab.pretrain_sources"
SOURCES_VERSION = 1
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
Say = Callable[[str], None]


@dataclass
class GatherSummary:
    faces_dir: Path
    sources: list[SourceNote]

    @property
    def faces(self) -> int:
        return sum(s.faces for s in self.sources)


def parse_source(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after the file's stem or the folder's name)."""
    name, sep, rest = text.partition("=")
    if sep and name and "/" not in name:
        return name, Path(rest)
    path = Path(text)
    return (path.stem if path.suffix else path.name), path


@cache
def _manifest(path: Path) -> dict[str, dict[str, str]]:
    """A manifest.tsv's rows by their `file` column (read once per gather, however many files it names)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return {row.get("file") or "": row for row in csv.DictReader(fh, delimiter="\t")}


def _manifest_row(file: Path) -> dict[str, str] | None:
    """The row naming this file in the nearest manifest.tsv (its folder, then up to two parents)."""
    file = file.resolve()
    for folder in (file.parent, file.parent.parent, file.parent.parent.parent):
        manifest = folder / "manifest.tsv"
        if manifest.is_file():
            row = _manifest(manifest).get(file.relative_to(folder).as_posix())
            if row is not None:
                return row
    return None


def describe_source(path: Path) -> tuple[str, str]:
    """(licence, origin) of a source from the manifest.tsv files beside its files (links followed), or
    ("unknown", "") where no manifest names them."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    rows = [r for r in (_manifest_row(f) for f in files) if r is not None]
    licences = sorted({(r.get("licence") or r.get("license") or "").split(" (")[0] for r in rows} - {""})
    origins = sorted({r.get("repo") or r.get("source_repo") or "" for r in rows} - {""})
    if rows and len(rows) < len(files):
        licences.append(f"unknown for {len(files) - len(rows)} files")
    return (", ".join(licences) or "unknown", ", ".join(origins))


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def gather_faces(sources: list[tuple[str, Path]], out: Path, opts: ExtractOptions, video_fps: float | None = 10.0,
                 say: Say = lambda _: None) -> GatherSummary:
    """Extract every (name, path) source and collect its faces into ``out/faces``; re-running resumes."""
    out = Path(out)
    names = [n for n, _ in sources]
    if len(set(names)) != len(names):
        raise InputError("two sources have the same name; name them with NAME=PATH: " + ", ".join(sorted(names)))
    for _, path in sources:
        if not path.exists():
            raise InputError("pretraining source not found", path)
    faces_dir = out / "faces"
    faces_dir.mkdir(parents=True, exist_ok=True)
    notes: list[SourceNote] = []
    for name, src in sources:
        is_video = src.is_file() and src.suffix.lower() in VIDEO_EXTENSIONS
        per = opts.model_copy(update={"fps": video_fps if is_video else None})
        target = out / "sources" / name
        summary = run_extract(src, target, per)
        say(f"{name}: {summary.faces} faces from {summary.frames} {'frames' if is_video else 'images'}")
        faces = sorted(p for p in target.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        for face in faces:
            _link(face, faces_dir / f"{name}__{face.name}")
        licence, origin = describe_source(src)
        notes.append(SourceNote(name=name, faces=len(faces), licence=licence, origin=origin))
    write_json_atomic(out / "sources.json", {"schema": SOURCES_SCHEMA, "version": SOURCES_VERSION,
                                             "sources": [vars(n) for n in notes]})
    return GatherSummary(faces_dir, notes)


def read_sources(path: Path) -> list[SourceNote]:
    """The source notes ``gather_faces`` wrote (``OUT/sources.json``)."""
    data = read_versioned_json(path, SOURCES_SCHEMA, SOURCES_VERSION, "pretraining sources")
    if data is None:
        raise InputError("no sources.json: run `facelab pretrain gather` first", path)
    try:
        return [SourceNote(name=str(s["name"]), faces=int(s["faces"]), licence=str(s["licence"]),
                           origin=str(s["origin"])) for s in data["sources"]]
    except (KeyError, TypeError, ValueError):
        raise InputError("invalid sources.json", path) from None
