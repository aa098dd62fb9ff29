"""The shared mechanisms in facelab.core: registries, the resumable journal, the bounded worker pool, scratch arrays."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from facelab.cli.options import model_parameters
from facelab.core.errors import InputError
from facelab.core.journal import Journal
from facelab.core.pool import WorkerPool
from facelab.core.registry import Registry
from facelab.core.scratch import MOST_BYTES, scratch


def test_registry_choice_validates_at_validation_time_and_lists_names() -> None:
    reg: Registry[int] = Registry("toy thing")
    reg.register("a", 1)
    reg.register("b", 2)

    class Opts(BaseModel):
        thing: Annotated[str, reg.choice()] = "a"

    assert Opts(thing="b").thing == "b"
    with pytest.raises(ValidationError, match="unknown toy thing 'c'; choose one of a, b"):
        Opts(thing="c")
    reg.register("c", 3)  # registered after the model was made: accepted from now on
    assert Opts(thing="c").thing == "c"
    assert Opts.model_json_schema()["properties"]["thing"]["enum"] == ["a", "b", "c"]
    assert reg.where(lambda v: v >= 2) == {"b", "c"}
    with pytest.raises(ValueError, match="registered already"):
        reg.register("a", 9)
    with pytest.raises(InputError, match="choose one of a, b, c"):
        reg.get("zz")
    (param,) = model_parameters(Opts)
    assert param.annotation.__metadata__[0].metavar == "<a|b|c>"
    reg.unregister("c")
    assert reg.names() == ("a", "b")


def test_journal_resumes_ignores_torn_lines_and_applies_the_settings_policy(tmp_path: Path) -> None:
    path = tmp_path / "j" / "journal.jsonl"
    j = Journal(path, "facelab.test", {"size": 1})
    j.append({"frame": "a", "n": 1})
    j.append({"frame": "b", "n": 2})
    j.append({"frame": "a", "n": 3})
    j.close()
    with path.open("a") as f:
        f.write('{"frame": "c", "n"')  # killed mid-line
    again = Journal(path, "facelab.test", {"size": 1})
    assert set(again.latest) == {"a", "b"} and again.latest["a"]["n"] == 3
    assert [e["n"] for e in again.history["a"]] == [1, 3]
    again.append({"frame": "c", "n": 4})  # starts on a new line after the torn one
    again.close()
    assert set(Journal(path, "facelab.test", {"size": 1}).latest) == {"a", "b", "c"}
    # other settings: the job decides (restart by default, keep, or refuse)
    assert "a" in Journal(path, "facelab.test", {"size": 2}, on_change=lambda old: "keep")
    restarted = Journal(path, "facelab.test", {"size": 2})
    assert not restarted.latest
    restarted.append({"frame": "z"})
    restarted.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"journal": "facelab.test", "version": 1, "settings": {"size": 2}} and len(lines) == 2

    def refuse(old: dict[str, Any] | None) -> Any:
        raise InputError(f"was {old}")

    with pytest.raises(InputError, match=re.escape("was {'size': 2}")):
        Journal(path, "facelab.test", {"size": 3}, on_change=refuse)
    with pytest.raises(InputError, match=r"not a facelab\.other journal"):
        Journal(path, "facelab.other", {"size": 2})


def _square(x: int) -> int:
    return x * x


def test_pool_is_bounded_and_returns_every_result() -> None:
    for workers, kind in ((1, "thread"), (3, "thread"), (2, "process")):
        with WorkerPool[int](workers, kind) as pool:  # type: ignore[arg-type]
            got = [r for i in range(10) for r in pool.submit(_square, i)]
            assert len(pool.pending) < pool.backlog
            got += list(pool.drain())
            assert sorted(got) == [i * i for i in range(10)]
            assert list(pool.map(_square, range(5), chunksize=2)) == [0, 1, 4, 9, 16]
            assert pool.separate_processes == (kind == "process" and workers > 1)
    seen: list[str] = []
    WorkerPool(2, "thread", initializer=lambda: seen.append(threading.current_thread().name)).close()
    assert seen == [threading.current_thread().name]  # threads: the initializer runs once, here


def test_scratch_arrays_are_kept_per_thread_name_and_shape() -> None:
    """The same name, shape and dtype give the same array again in a thread (no allocation a frame); another shape
    or dtype replaces it; another thread has its own; a request past the thread's byte limit is a fresh array."""
    a = scratch("test.a", (48, 64), np.float32)
    a[...] = 7.0
    again = scratch("test.a", (48, 64), np.float32)
    assert again is a and again.dtype == np.float32 and float(again[5, 5]) == 7.0
    b = scratch("test.b", (48, 64), np.float32)
    assert b is not a and not np.shares_memory(a, b)
    other = scratch("test.a", (48, 65), np.float32)
    assert other.shape == (48, 65) and other is not a
    as_bytes = scratch("test.a", (48, 65), np.uint8)
    assert as_bytes.dtype == np.uint8 and as_bytes is not other and scratch("test.a", (48, 65), np.uint8) is as_bytes
    seen: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: seen.append(scratch("test.b", (48, 64), np.float32)))
    worker.start()
    worker.join()
    assert seen[0] is not b and scratch("test.b", (48, 64), np.float32) is b
    side = int((MOST_BYTES // 4) ** 0.5) + 1  # one float32 plane past the limit alone
    big = scratch("test.big", (side, side), np.float32)
    assert big.shape == (side, side) and scratch("test.big", (side, side), np.float32) is not big
