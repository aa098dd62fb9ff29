"""Facesets for the XSeg editor: the workspace's face folders and ``.fpack`` files, listed with what the
grid filters on, one face's pixels and record, and saving polygons into a face file's record.

Folders are rescanned cheaply: a face's record is read again only when its file's (mtime, size) changed.
A pack is read-only (its files cannot be rewritten in place): saving there is refused with a clear note.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from facelab.core.errors import InputError
from facelab.faceset.folder import list_face_files
from facelab.faceset.pack import PACK_SUFFIX
from facelab.faceset.record import FaceRecord, NotAFaceError, XSegPolygon, read_record, update_record
from facelab.faceset.store import PackStore

SKIP_DIRS = frozenset({"studio", "frames", "merged", "previews", "backups", "__pycache__"})
SEARCH_DEPTH = 3
Filter = Literal["all", "labelled", "unlabelled", "masked", "unmasked"]
Sort = Literal["name", "yaw", "pitch", "frame"]
PACK_NOTE = (f"this faceset is a {PACK_SUFFIX} pack: read-only in the editor (a pack's face files cannot be "
             "rewritten in place). Unpack it (`facelab faceset unpack PACK -o FOLDER`) to label its faces.")


@dataclass
class Faceset:
    """The faces of one folder or pack: names in natural order, records, and where they come from."""

    path: Path
    read_only: bool
    names: list[str]
    records: dict[str, FaceRecord]
    invalid: list[tuple[str, str]] = field(default_factory=list)
    pack: PackStore | None = None

    def record(self, name: str) -> FaceRecord:
        rec = self.records.get(name)
        if rec is None:
            raise KeyError(name)
        return rec

    def read_bytes(self, name: str) -> bytes:
        if self.pack is not None:
            return self.pack.read_bytes(self.names.index(name))
        return (self.path / name).read_bytes()

    def file(self, name: str) -> Path:
        return self.path / name


class FacesetCache:
    """Scanned facesets by path; a folder's unchanged files are not read again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[Path, dict[str, tuple[int, int, FaceRecord | str]]] = {}
        self._packs: dict[Path, tuple[int, int, Faceset]] = {}

    def open(self, path: Path) -> Faceset:
        """The faceset at ``path`` (a folder of face files or a ``.fpack``). InputError when it is neither."""
        if path.is_file():
            return self._open_pack(path)
        if not path.is_dir():
            raise InputError("not a faceset folder or pack", path)
        files = list_face_files(path)
        with self._lock:
            known = self._folders.get(path, {})
        fresh: dict[str, tuple[int, int, FaceRecord | str]] = {}
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            old = known.get(f.name)
            if old is not None and old[0] == st.st_mtime_ns and old[1] == st.st_size:
                fresh[f.name] = old
                continue
            entry: FaceRecord | str
            try:
                entry = read_record(f)
            except NotAFaceError:
                entry = ""  # a foreign image: not listed
            except InputError as exc:
                entry = str(exc).removeprefix(f"{f}: ")
            fresh[f.name] = (st.st_mtime_ns, st.st_size, entry)
        with self._lock:
            self._folders[path] = fresh
        names = [n for n, (_, _, e) in fresh.items() if isinstance(e, FaceRecord)]
        records = {n: e for n, (_, _, e) in fresh.items() if isinstance(e, FaceRecord)}
        invalid = [(n, e) for n, (_, _, e) in fresh.items() if isinstance(e, str) and e]
        return Faceset(path, False, names, records, invalid)

    def _open_pack(self, path: Path) -> Faceset:
        st = path.stat()
        with self._lock:
            cached = self._packs.get(path)
        if cached is not None and cached[0] == st.st_mtime_ns and cached[1] == st.st_size:
            return cached[2]
        store = PackStore(path)
        records = {name: store.record(i) for i, name in enumerate(store.names)}
        fs = Faceset(path, True, list(store.names), records, pack=store)
        with self._lock:
            self._packs[path] = (st.st_mtime_ns, st.st_size, fs)
        return fs


def _has_faces(folder: Path) -> bool:
    for f in list_face_files(folder)[:3]:
        try:
            read_record(f)
        except InputError:
            continue
        return True
    return False


def find_facesets(root: Path) -> list[dict[str, Any]]:
    """The workspace's facesets: src/aligned and dst/aligned first (when present), then every other folder
    holding face files and every ``.fpack`` up to three levels down (the studio's own folders skipped)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(path: Path, pack: bool) -> None:
        rel = path.relative_to(root).as_posix()
        if rel not in seen:
            seen.add(rel)
            out.append({"path": rel, "pack": pack, "read_only": pack})

    for rel in ("src/aligned", "dst/aligned"):
        if (root / rel).is_dir():
            add(root / rel, False)

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_file() and entry.suffix.lower() == PACK_SUFFIX:
                add(entry, True)
            elif entry.is_dir() and not entry.is_symlink() and entry.name not in SKIP_DIRS:
                rel = entry.relative_to(root).as_posix()
                if rel not in seen and _has_faces(entry):
                    add(entry, False)
                if depth < SEARCH_DEPTH:
                    walk(entry, depth + 1)

    walk(root, 1)
    return out


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 2)


def face_summary(name: str, rec: FaceRecord) -> dict[str, Any]:
    return {
        "name": name,
        "polygons": len(rec.xseg_polygons),
        "includes": sum(p.kind == "include" for p in rec.xseg_polygons),
        "excludes": sum(p.kind == "exclude" for p in rec.xseg_polygons),
        "masked": rec.xseg_mask is not None,
        "yaw": _num(rec.pose.yaw) if rec.pose is not None else None,
        "pitch": _num(rec.pose.pitch) if rec.pose is not None else None,
        "frame": rec.source.frame,
        "frame_index": rec.source.index,
        "face_index": rec.face_index,
    }


def list_faces(fs: Faceset, filt: Filter = "all", sort: Sort = "name",
               descending: bool = False) -> list[dict[str, Any]]:
    """The faces passing ``filt`` (labelled: has polygons; masked: has a stored XSeg mask), sorted by
    ``sort`` (name: natural order; yaw/pitch: faces without a pose last; frame: frame number, face)."""
    items = [face_summary(n, fs.records[n]) for n in fs.names]
    wanted = {"labelled": ("polygons", True), "unlabelled": ("polygons", False), "masked": ("masked", True),
              "unmasked": ("masked", False)}.get(filt)
    if wanted is not None:
        key, want = wanted
        items = [f for f in items if bool(f[key]) is want]
    if sort in ("yaw", "pitch"):
        present = sorted((f for f in items if f[sort] is not None), key=lambda f: f[sort], reverse=descending)
        items = present + [f for f in items if f[sort] is None]
    elif sort == "frame":
        items.sort(key=lambda f: (f["frame_index"], f["face_index"]), reverse=descending)
    elif descending:
        items.reverse()
    return items


def save_polygons(fs: Faceset, name: str, polygons: list[XSegPolygon]) -> FaceRecord:
    """Write ``polygons`` as the face's ``xseg_polygons`` (the file's record re-read first, pixels kept byte
    for byte, atomic replace: ``update_record``). Refused for a pack."""
    if fs.read_only:
        raise InputError(PACK_NOTE)
    path = fs.file(name)
    current = read_record(path)
    updated = current.model_copy(update={"xseg_polygons": list(polygons)})
    update_record(path, updated)
    return updated
