"""Safe reordering of a faceset folder: order prefixes, two-phase renames with a journal, and the trash.

Sorted names are ``<rank>~<name>``: the rank zero-padded to 5 digits (more for 100000+ faces), a tilde,
then the name the file had before any sort. The tilde keeps the prefix apart from frame numbers such as
extraction's ``000123_0.jpg``, so re-sorting strips only prefixes a sort added.

Applying a plan: a journal in the folder (``.facelab-sort.json``, written atomically before the first
move and updated between the phases) records the whole plan and the job that made it. Faces for the
trash are moved first, one rename each (a face is either still in the folder or in the trash). The
renames go through temporary names in two phases (all files to ``<name>.facelab-sort``, then all to their
final names), so a file can take a name another file had without either being overwritten. ``recover``
finishes an interrupted plan from the journal, forward: the rest of the trash moves, then the renames,
so a killed job's plan is carried out exactly as decided (deciding again on a half-moved folder could
choose other faces); the job, run again with the same request, then finds its work done
(``journal_request``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelab.core.atomic import count_write, fsync_dir, remove_stale_temps, write_json_atomic
from facelab.core.errors import InputError

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
        count_write()
    except OSError as exc:
        message = f"cannot rename {source.name} to {target.name}: {exc.strerror or exc}"
        raise InputError(message, source.parent) from None


def _write_journal(directory: Path, plan: Plan, phase: int, request: dict[str, Any] | None) -> None:
    write_json_atomic(_journal_path(directory), {
        "schema": JOURNAL_SCHEMA, "version": JOURNAL_VERSION, "phase": phase, "request": request,
        "trash": [[m.source.name, m.target.name] for m in plan.trash],
        "renames": [[m.source.name, m.source.name + TEMP_SUFFIX, m.target.name] for m in plan.renames],
    })


def apply_plan(directory: Path, plan: Plan, request: dict[str, Any] | None = None) -> None:
    """Carry out a plan (see the module's notes on safety). Finishes an interrupted earlier plan first.
    ``request``: what the job was asked (kept in the journal until the plan is done)."""
    directory = Path(directory)
    recover(directory)
    if plan.empty:
        return
    for move in plan.renames:
        if Path(str(move.source) + TEMP_SUFFIX).exists():
            raise InputError(f"a temporary file {move.source.name + TEMP_SUFFIX} is in the way", directory)
    if plan.trash:
        _make_bin(plan.trash[0].target.parent)
    _write_journal(directory, plan, 1, request)
    if plan.trash:
        for move in plan.trash:
            _rename(move.source, move.target)
        fsync_dir(plan.trash[0].target.parent)
        fsync_dir(directory)
    for move in plan.renames:
        _rename(move.source, Path(str(move.source) + TEMP_SUFFIX))
    fsync_dir(directory)
    if plan.renames:
        _write_journal(directory, plan, 2, request)
    for move in plan.renames:
        _rename(Path(str(move.source) + TEMP_SUFFIX), move.target)
    fsync_dir(directory)
    _journal_path(directory).unlink()
    fsync_dir(directory)


def _make_bin(bin_dir: Path) -> None:
    try:
        bin_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the trash folder: {exc.strerror or exc}", bin_dir) from None


def _valid_name(n: object) -> bool:
    return isinstance(n, str) and bool(n) and "/" not in n and "\\" not in n and n not in (".", "..")


def _read_journal(path: Path) -> tuple[int, list[tuple[str, str]], list[tuple[str, str, str]], Any]:
    """(phase, trash moves, renames, request) of a journal; the trash and request are absent (empty,
    None) in a journal written before they were recorded."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable sort journal ({exc}); fix or remove it", path) from None
    ok = (isinstance(data, dict) and data.get("schema") == JOURNAL_SCHEMA and data.get("version") == JOURNAL_VERSION
          and data.get("phase") in (1, 2) and isinstance(data.get("renames"), list))
    entries: list[tuple[str, str, str]] = []
    if ok:
        for entry in data["renames"]:
            valid = isinstance(entry, list) and len(entry) == 3 and all(_valid_name(n) for n in entry)
            if not valid:
                ok = False
                break
            entries.append((entry[0], entry[1], entry[2]))
    trash: list[tuple[str, str]] = []
    moves = data.get("trash", []) if isinstance(data, dict) else []
    if not isinstance(moves, list):
        ok = False
    elif ok:
        for move in moves:
            if not (isinstance(move, list) and len(move) == 2 and all(_valid_name(n) for n in move)):
                ok = False
                break
            trash.append((move[0], move[1]))
    if not ok:
        raise InputError("not a valid sort journal (schema facelab.sort-journal, version 1); fix or remove it", path)
    request = data.get("request")
    return int(data["phase"]), trash, entries, request if isinstance(request, dict) else None


def journal_request(directory: Path) -> dict[str, Any] | None:
    """The request of the job an interrupted plan in ``directory`` belongs to (None: no journal, or none
    recorded). Read it before ``recover``, which removes the journal."""
    journal = _journal_path(directory)
    if not journal.is_file():
        return None
    request: dict[str, Any] | None = _read_journal(journal)[3]
    return request


def pending(directory: Path) -> bool:
    """Whether an interrupted sort left a journal in the folder."""
    return _journal_path(directory).is_file()


def recover(directory: Path) -> int:
    """Finish an interrupted plan from its journal (forward: the trash moves, then the renames); returns the
    number of files moved or renamed."""
    directory = Path(directory)
    remove_stale_temps(directory)  # a journal a killed run was writing
    journal = _journal_path(directory)
    if not journal.is_file():
        return 0
    phase, trash, entries, _ = _read_journal(journal)
    moved = 0
    bin_dir = trash_dir(directory)
    for name, binned in trash:
        if (directory / name).exists() and not (bin_dir / binned).exists():
            _make_bin(bin_dir)
            _rename(directory / name, bin_dir / binned)
            moved += 1
    if phase == 1:  # some files may still have their old names: all to temporary names first
        for original, temp, _final in entries:
            if (directory / original).exists() and not (directory / temp).exists():
                _rename(directory / original, directory / temp)
    for _original, temp, final in entries:
        temp_path = directory / temp
        if temp_path.exists():
            _rename(temp_path, directory / final)
            moved += 1
    fsync_dir(directory)
    journal.unlink()
    fsync_dir(directory)
    return moved
