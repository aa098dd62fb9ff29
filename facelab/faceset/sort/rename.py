"""Safe reordering of a faceset folder: order prefixes, two-phase renames with a journal, and the trash.

Sorted names are ``<rank>~<name>``: the rank zero-padded to 5 digits (more for 100000+ faces), a tilde,
then the name the file had before any sort. The tilde keeps the prefix apart from frame numbers such as
extraction's ``000123_0.jpg``, so re-sorting strips only prefixes a sort added.

Applying a plan: faces for the trash are moved first, one rename each (a face is either still in the
folder or in the trash). The renames go through temporary names in two phases (all files to
``<name>.facelab-sort``, then all to their final names), so a file can take a name another file had
without either being overwritten. A journal in the folder (``.facelab-sort.json``, written atomically
before the first rename and updated between the phases) lets ``recover`` finish an interrupted sort:
before phase two it puts the files back, after it goes forward.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelab.core.atomic import fsync_dir, write_json_atomic
from facelab.core.errors import InputError
from facelab.core.versioned import json_loads

PREFIX = re.compile(r"^\d{5,}~")
JOURNAL_NAME = ".facelab-sort.json"
JOURNAL_SCHEMA = "facelab.sort-journal"
JOURNAL_VERSION = 1
TEMP_SUFFIX = ".facelab-sort"


def strip_prefix(name: str) -> str:
    """The name without an order prefix added by a sort."""
    return PREFIX.sub("", name, count=1)


def sorted_name(rank: int, count: int, name: str) -> str:
    width = max(5, len(str(max(count - 1, 0))))
    return f"{rank:0{width}d}~{strip_prefix(name)}"


def trash_dir(directory: Path) -> Path:
    """Where moved-out faces go: ``DIR_trash`` beside ``DIR``."""
    directory = Path(directory).resolve()
    return directory.with_name(directory.name + "_trash")


@dataclass(frozen=True, slots=True)
class Move:
    source: Path
    target: Path


@dataclass(slots=True)
class Plan:
    renames: list[Move] = field(default_factory=list)  # within the folder; already-right names left out
    trash: list[Move] = field(default_factory=list)  # into DIR_trash
    unchanged: list[Path] = field(default_factory=list)  # kept faces whose name is already right

    @property
    def empty(self) -> bool:
        return not self.renames and not self.trash


def _unique_in(folder: Path, name: str, taken: set[str]) -> str:
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 1
    while candidate in taken or (folder / candidate).exists():
        candidate = f"{stem}_{n}{suffix}"
        n += 1
    taken.add(candidate)
    return candidate


def plan_moves(directory: Path, order: list[Path], trash: list[Path], prefix: bool = True) -> Plan:
    """The renames that put ``order`` in that order (with order prefixes, or without any when ``prefix``
    is False) and the moves of ``trash`` into DIR_trash. Raises InputError when a final name is taken by
    a file that is not part of the sort."""
    directory = Path(directory)
    plan = Plan()
    moving = {p.name for p in order} | {p.name for p in trash}
    finals: set[str] = set()
    for rank, path in enumerate(order):
        name = sorted_name(rank, len(order), path.name) if prefix else strip_prefix(path.name)
        if name in finals:
            raise InputError(f"two faces would both be named {name!r}; rename one by hand", directory)
        finals.add(name)
        target = directory / name
        if name not in moving and target.exists():
            raise InputError(f"cannot rename {path.name} to {name}: a file not being sorted has that name", directory)
        if name == path.name:
            plan.unchanged.append(path)
        else:
            plan.renames.append(Move(path, target))
    bin_dir = trash_dir(directory)
    taken: set[str] = set()
    for path in trash:
        plan.trash.append(Move(path, bin_dir / _unique_in(bin_dir, strip_prefix(path.name), taken)))
    return plan


def _journal_path(directory: Path) -> Path:
    return Path(directory) / JOURNAL_NAME


def _rename(source: Path, target: Path) -> None:
    if target.exists():
        raise InputError(f"refusing to overwrite {target.name} (renaming {source.name})", target.parent)
    try:
        os.rename(source, target)
    except OSError as exc:
        message = f"cannot rename {source.name} to {target.name}: {exc.strerror or exc}"
        raise InputError(message, source.parent) from None


def _write_journal(directory: Path, renames: list[Move], phase: int) -> None:
    write_json_atomic(_journal_path(directory), {
        "schema": JOURNAL_SCHEMA, "version": JOURNAL_VERSION, "phase": phase,
        "renames": [[m.source.name, m.source.name + TEMP_SUFFIX, m.target.name] for m in renames],
    })


def apply_plan(directory: Path, plan: Plan) -> None:
    """Carry out a plan (see the module's notes on safety). Finishes an interrupted earlier sort first."""
    directory = Path(directory)
    recover(directory)
    if plan.trash:
        bin_dir = plan.trash[0].target.parent
        try:
            bin_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot make the trash folder: {exc.strerror or exc}", bin_dir) from None
        for move in plan.trash:
            _rename(move.source, move.target)
        fsync_dir(bin_dir)
        fsync_dir(directory)
    if not plan.renames:
        return
    for move in plan.renames:
        if Path(str(move.source) + TEMP_SUFFIX).exists():
            raise InputError(f"a temporary file {move.source.name + TEMP_SUFFIX} is in the way", directory)
    _write_journal(directory, plan.renames, phase=1)
    for move in plan.renames:
        _rename(move.source, Path(str(move.source) + TEMP_SUFFIX))
    fsync_dir(directory)
    _write_journal(directory, plan.renames, phase=2)
    for move in plan.renames:
        _rename(Path(str(move.source) + TEMP_SUFFIX), move.target)
    fsync_dir(directory)
    _journal_path(directory).unlink()
    fsync_dir(directory)


def _read_journal(path: Path) -> tuple[int, list[tuple[str, str, str]]]:
    try:
        data: Any = json_loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable sort journal ({exc}); fix or remove it", path) from None
    ok = (isinstance(data, dict) and data.get("schema") == JOURNAL_SCHEMA and data.get("version") == JOURNAL_VERSION
          and data.get("phase") in (1, 2) and isinstance(data.get("renames"), list))
    entries: list[tuple[str, str, str]] = []
    if ok:
        for entry in data["renames"]:
            valid = (isinstance(entry, list) and len(entry) == 3
                     and all(isinstance(n, str) and n and "/" not in n and "\\" not in n and n not in (".", "..")
                             for n in entry))
            if not valid:
                ok = False
                break
            entries.append((entry[0], entry[1], entry[2]))
    if not ok:
        raise InputError("not a valid sort journal (schema facelab.sort-journal, version 1); fix or remove it", path)
    return int(data["phase"]), entries


def pending(directory: Path) -> bool:
    """Whether an interrupted sort left a journal in the folder."""
    return _journal_path(directory).is_file()


def recover(directory: Path) -> int:
    """Finish or undo an interrupted sort from its journal; returns the number of files renamed."""
    directory = Path(directory)
    journal = _journal_path(directory)
    if not journal.is_file():
        return 0
    phase, entries = _read_journal(journal)
    moved = 0
    for original, temp, final in entries:
        temp_path = directory / temp
        if temp_path.exists():
            _rename(temp_path, directory / (original if phase == 1 else final))
            moved += 1
    fsync_dir(directory)
    journal.unlink()
    fsync_dir(directory)
    return moved
