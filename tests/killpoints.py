"""Kill -9 harness: run a real `facelab` command in a subprocess, kill it with SIGKILL after its k-th write,
run it again to completion, and compare the result with an uninterrupted run.

The kill comes from facelab's test hook (facelab.core.atomic.count_write): with
FACELAB_KILL_AFTER_WRITES=k the process group kills itself right after the k-th completed write (atomic
renames, journal appends, video encodes, sort renames), so a kill point is reproducible and lands
exactly between two writes, where a crash hurts most. A run that ends first prints its write count,
which spreads the kill points over a run.

Every run of a command happens in the same folder (``root``), cleared and rebuilt by ``prepare``, so
absolute paths recorded in outputs are the same in every run. ``snapshot`` describes the result: for a
deterministic command the SHA-256 of every output file (bit-identical), else whatever the command's
validity check returns (names, iterations, frame counts).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KILL_ENV = "FACELAB_KILL_AFTER_WRITES"
_NEVER = 10**9  # a kill point no run reaches: the run ends and reports its count


@dataclass
class Run:
    returncode: int
    writes: int | None  # the process's write count when it ended by itself
    output: str

    @property
    def killed(self) -> bool:
        return self.returncode == -9


def facelab(args: Sequence[str | Path], kill_after: int | None = None, timeout: float = 900) -> Run:
    """``python -m facelab ARGS`` in its own session (the kill hook kills its whole process group)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", COLUMNS="200")
    env.pop(KILL_ENV, None)
    if kill_after is not None:
        env[KILL_ENV] = str(kill_after)
    proc = subprocess.run([sys.executable, "-m", "facelab", *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, start_new_session=True)
    counts = [int(m) for m in re.findall(r"^facelab-writes: (\d+)$", proc.stderr, flags=re.M)]
    return Run(proc.returncode, max(counts) if counts else None, proc.stdout + proc.stderr)


def file_hashes(folder: Path, skip: Callable[[str], bool] = lambda _: False) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` (``skip(relpath)`` leaves one out)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not skip(rel):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def spread(total: int, n: int) -> list[int]:
    """``n`` kill points spread evenly over writes 1..total-1 (the last write ends the run anyway): from the
    first to the last when ``n`` >= 4, else inside the run (1/3 and 2/3 for two)."""
    last = total - 1
    if last < 1:
        return []
    if n >= last:
        return list(range(1, total))
    if n >= 4:
        points = [1 + i * (last - 1) / (n - 1) for i in range(n)]
    else:
        points = [i * last / (n + 1) for i in range(1, n + 1)]
    return sorted({max(1, min(last, round(p))) for p in points})


@dataclass
class Command:
    """One facelab command under test.

    ``prepare(root)``: clear ``root`` and put the command's inputs there; ``args(root)``: its arguments;
    ``snapshot(root)``: the result to compare (file hashes for a deterministic command, else the facts a
    valid result must share with the uninterrupted run); ``deterministic``: whether equal snapshots mean
    bit-identical output files."""

    name: str
    prepare: Callable[[Path], None]
    args: Callable[[Path], list[str]]
    snapshot: Callable[[Path], Any]
    deterministic: bool
    timeout: float = 900


@dataclass
class KillResult:
    k: int
    killed: bool  # False: the run ended before its k-th write
    equal: bool
    detail: str = ""


@dataclass
class Sweep:
    command: str
    writes: int
    results: list[KillResult] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return sum(r.killed for r in self.results)

    @property
    def failures(self) -> list[KillResult]:
        return [r for r in self.results if not r.equal]


def reference(cmd: Command, root: Path) -> tuple[Any, int]:
    """The uninterrupted run's snapshot and write count."""
    cmd.prepare(root)
    run = facelab(cmd.args(root), kill_after=_NEVER, timeout=cmd.timeout)
    assert run.returncode == 0, f"{cmd.name} failed uninterrupted:\n{run.output[-3000:]}"
    assert run.writes is not None and run.writes > 0, f"{cmd.name}: no write counted"
    return cmd.snapshot(root), run.writes


def kill_and_resume(cmd: Command, root: Path, k: int, expected: Any) -> KillResult:
    """Run until the k-th write kills it, run again to the end, compare with ``expected``."""
    cmd.prepare(root)
    first = facelab(cmd.args(root), kill_after=k, timeout=cmd.timeout)
    if not first.killed:
        assert first.returncode == 0, f"{cmd.name} k={k} failed:\n{first.output[-3000:]}"
    second = facelab(cmd.args(root), timeout=cmd.timeout)
    if second.returncode != 0:
        return KillResult(k, first.killed, False, f"resume failed (exit {second.returncode}): "
                                                  f"{second.output.strip()[-1500:]}")
    got = cmd.snapshot(root)
    return KillResult(k, first.killed, got == expected, "" if got == expected else describe_difference(expected, got))


def describe_difference(expected: Any, got: Any) -> str:
    if isinstance(expected, dict) and isinstance(got, dict):
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        changed = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        return f"missing {missing[:8]}, extra {extra[:8]}, changed {changed[:8]}"
    return f"expected {expected!r}, got {got!r}"


def sweep(cmd: Command, root: Path, points: int | Iterable[int]) -> Sweep:
    """The reference run, then a kill and resume at each kill point (a count: spread over the run)."""
    expected, writes = reference(cmd, root)
    ks = spread(writes, points) if isinstance(points, int) else list(points)
    result = Sweep(cmd.name, writes)
    for k in ks:
        result.results.append(kill_and_resume(cmd, root, k, expected))
    return result


def fresh(root: Path) -> Path:
    """Empty ``root`` (made if missing)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root
