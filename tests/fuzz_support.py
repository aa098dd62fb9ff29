"""The fuzzing harness of tests/test_fuzz.py: mutation strategies, the property, and the profiles.

Inputs are VALID files made by facelab's own writers, mutated: bit flips, truncations, splices, length
fields set to edge values, plus structure-aware JSON mutations (a value anywhere in the object replaced by
one of the wrong type, a key removed, a huge or non-finite number, deep nesting, odd strings). The
property: the parser returns a valid object or raises facelab's one-line input error (FacelabError and
its family); any other exception, an example running past its deadline (a hang) or an allocation beyond
the cap fails.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default: a modest number of examples per parser,
derandomized, so every run tries the same cases), ``dev`` (random, with hypothesis's example database in
``.hypothesis/``, outside git) and ``big`` (many examples; what ``make test-slow`` runs through the slow
tests). Examples per parser: ``examples(n)`` scales the parser's default count by the profile.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from facelab.core.errors import FacelabError

_COMMON: dict[str, Any] = {
    "deadline": timedelta(seconds=10),  # generous: six jobs share two cores; the alarm below catches hangs
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                              HealthCheck.function_scoped_fixture],
    "print_blob": True,
}
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("dev", **_COMMON)
settings.register_profile("big", derandomize=False, database=None, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
_SCALE = float(os.environ.get("FACELAB_FUZZ_SCALE", {"ci": 1.0, "dev": 1.0, "big": 40.0}.get(PROFILE, 1.0)))
BIG_EXAMPLES = int(os.environ.get("FACELAB_FUZZ_BIG", "500"))  # per parser, in the slow test

HANG_SECONDS = 20  # one example running longer than this is a hang
ALLOC_CAP = 256 * 1024 * 1024  # Python/numpy allocations one example may make (traced), in bytes

CASES: Counter[str] = Counter()  # examples run per parser, in this process


def examples(n: int) -> int:
    return max(1, round(n * _SCALE))


# ----------------------------------------------------------------------------------------------------
# the property


class Hang(Exception):
    pass


@contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def _raise(signum: int, frame: Any) -> None:
        raise Hang(f"example ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check(name: str, parse: Callable[[], object], *, trace_memory: bool = False) -> str:
    """Run ``parse``: "ok" when it returns, "refused" when it raises a FacelabError; anything else
    propagates (the failure hypothesis shrinks). With ``trace_memory`` the traced peak must stay under
    ALLOC_CAP."""
    CASES[name] += 1
    if trace_memory:
        tracemalloc.start()
    try:
        with _alarm(HANG_SECONDS):
            try:
                parse()
            except FacelabError as exc:
                line = str(exc)
                assert "\n" not in line, f"a multi-line error: {line!r}"
                return "refused"
        return "ok"
    finally:
        if trace_memory:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak < ALLOC_CAP, f"{name}: one example allocated {peak / 2**20:.0f} MiB"


# ----------------------------------------------------------------------------------------------------
# byte mutations

_EDGE_INTS = [0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1, 10**12]


def _flip(data: bytes, positions: list[int], bits: list[int]) -> bytes:
    out = bytearray(data)
    for p, b in zip(positions, bits, strict=False):
        out[p % len(out)] ^= 1 << b
    return bytes(out)


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes, *, hot: list[int] | None = None) -> bytes:
    """``seed`` with one to three mutations. ``hot``: offsets of length fields and headers (where edits matter
    most), drawn more often than uniformly."""
    data = seed
    for _ in range(draw(st.integers(1, 3))):
        n = len(data)
        if n == 0:
            data = draw(st.binary(max_size=64))
            continue
        where = st.integers(0, n - 1)
        if hot:
            where = st.one_of(where, st.sampled_from([h for h in hot if h < n] or [0]))
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "insert", "delete", "field", "dup"]))
        if kind == "flip":
            k = draw(st.integers(1, 8))
            data = _flip(data, draw(st.lists(where, min_size=k, max_size=k)),
                         draw(st.lists(st.integers(0, 7), min_size=k, max_size=k)))
        elif kind == "truncate":
            data = data[: draw(where)]
        elif kind == "splice":  # a piece of the file copied over another place
            a, b, c = draw(where), draw(where), draw(where)
            lo, hi = min(a, b), max(a, b)
            piece = data[lo:hi][:4096]
            data = data[:c] + piece + data[c + len(piece):]
        elif kind == "insert":
            c = draw(where)
            data = data[:c] + draw(st.binary(min_size=1, max_size=32)) + data[c:]
        elif kind == "delete":
            c = draw(where)
            data = data[:c] + data[c + draw(st.integers(1, 64)):]
        elif kind == "dup":  # a stretch repeated (duplicate segments, chunks, lines)
            a, b = sorted((draw(where), draw(where)))
            data = data[:b] + data[a:b][:4096] + data[b:]
        else:  # a length/offset field set to an edge value, 1-8 bytes, either byte order
            c = draw(where)
            width = draw(st.sampled_from([1, 2, 4, 8]))
            value = draw(st.one_of(st.sampled_from(_EDGE_INTS), st.integers(0, 2**64 - 1))) % (1 << (8 * width))
            order = draw(st.sampled_from(["big", "little"]))
            data = data[:c] + value.to_bytes(width, order) + data[c + width:]
    return data


# ----------------------------------------------------------------------------------------------------
# JSON mutations

_ODD_STRINGS = ["", " ", "\x00", "../../etc/passwd", "/abs/path", "a" * 300, "²³", "٣", "9" * 5000, "NaN",
                "\ud800", "é", "nan", "1e309", "-1", "0x10", "true", "🙂", "C:\\x", ".hidden.jpg"]
_ODD_NUMBERS: list[Any] = [0, -1, 1, 2**31, 2**63, 2**64, 10**30, -(10**30), 1e308, -1e308, 1e-320, 0.5, -0.0,
                           math.nan, math.inf, -math.inf, True, False, 3.0]

_leaf = st.one_of(st.none(), st.booleans(), st.sampled_from(_ODD_NUMBERS), st.integers(), st.floats(),
                  st.sampled_from(_ODD_STRINGS), st.text(max_size=20))
ANY_JSON = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):  # long arrays (landmarks): the first few stand for the rest
            yield from _paths(v, (*prefix, i))


def _replace(obj: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        if delete and not rest:
            out.pop(head, None)
        else:
            out[head] = _replace(obj[head], rest, value, delete)
        return out
    out_list = list(obj)
    if delete and not rest:
        del out_list[head]
    else:
        out_list[head] = _replace(obj[head], rest, value, delete)
    return out_list


@st.composite
def mutated_json(draw: st.DrawFn, seed: Any) -> Any:
    """``seed`` (a JSON value) with one to three structure-aware edits."""
    obj = seed
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(obj))))
        kind = draw(st.sampled_from(["value", "value", "delete", "number", "string", "deep", "extra", "wrap"]))
        if kind == "delete" and path:
            obj = _replace(obj, path, None, delete=True)
            continue
        if kind == "number":
            new: Any = draw(st.sampled_from(_ODD_NUMBERS))
        elif kind == "string":
            new = draw(st.sampled_from(_ODD_STRINGS))
        elif kind == "deep":  # expanded by dumps(): hypothesis cannot print a deeply nested value
            new = f"{DEEP}{draw(st.sampled_from([50, 500, 990, 3000, 100_000]))}"
        elif kind == "extra":  # a key added to an object (unknown keys)
            target = _get(obj, path)
            if isinstance(target, dict):
                new = {**target, draw(st.sampled_from(["x", "__class__", "options", "schema", ""])): draw(ANY_JSON)}
            else:
                new = draw(ANY_JSON)
        elif kind == "wrap":  # the right value in the wrong container
            target = _get(obj, path)
            new = draw(st.sampled_from([[target], {"value": target}, str(target)[:64]]))
        else:
            new = draw(ANY_JSON)
        obj = _replace(obj, path, new)
    return obj


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


DEEP = "\x00deep:"
_DEEP_TEXT = re.compile(r'"\\u0000deep:(\d+)"')


def dumps(obj: Any) -> str:
    """JSON text of a mutated object: NaN/Infinity written as Python does (facelab must refuse or accept
    them), each deep-nesting marker replaced by that many nested arrays."""
    return _DEEP_TEXT.sub(lambda m: "[" * int(m.group(1)) + "0" + "]" * int(m.group(1)), json.dumps(obj))


@st.composite
def json_text(draw: st.DrawFn, seed: Any) -> str:
    """A mutated JSON file's text: structure-aware edits, sometimes followed by byte-level damage."""
    text = dumps(draw(mutated_json(seed)))
    if draw(st.integers(0, 3)) == 0:
        raw = draw(mutated_bytes(text.encode("utf-8")))
        text = raw.decode("utf-8", errors="surrogateescape")
    return text


def json_bytes(seed: Any) -> st.SearchStrategy[bytes]:
    """A mutated JSON file's bytes (may be invalid UTF-8)."""
    return st.one_of(json_text(seed).map(lambda t: t.encode("utf-8", errors="surrogateescape")),
                     mutated_bytes(json.dumps(seed).encode("utf-8")))
