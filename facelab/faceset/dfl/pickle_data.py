"""Read the data in a pickle stream without unpickling it: plain types and numeric numpy arrays only.

DeepFaceLab stores its face metadata as ``pickle.dumps`` of plain dicts, lists, tuples, strings, numbers
and numpy arrays. ``pickle.loads`` on such a file from a stranger runs whatever the file names (a
``__reduce__`` to ``os.system`` is a few bytes), so facelab never unpickles. Two ways were open:

- a ``pickle.Unpickler`` whose ``find_class`` allows a list of names. The allowed numpy callables still
  run with the file's arguments: ``_reconstruct(ndarray, (10**10,), b"b")`` allocates what the file
  claims, ``numpy.dtype`` accepts object and structured types, and ``ndarray.__setstate__`` accepts
  object arrays whose items come from the stream. Each would need its own guard inside numpy's code.
- an interpreter of the opcodes (``pickletools.genops`` parses them) that builds every object itself.

This module is the second, the safer one: nothing named in the file is imported or called. A global is
only a tag compared against a short list of names (numpy's array and scalar reconstructors, ``numpy.dtype``
with numeric types, ``_codecs.encode`` and an argument-less ``bytes()`` for protocol 0-2 bytes, and DFL's
two IntEnum classes, read as their int value); calling anything else, and every opcode that builds
arbitrary objects (NEWOBJ, INST, OBJ, persistent ids, extension codes, sets), is refused with a one-line
InputError. Arrays are made by ``numpy.frombuffer`` from bytes present in the stream, after the shape,
dtype and size are checked, so a file cannot claim more memory than it holds (arrays sharing one bytes
object through the memo count once each: all arrays together may not exceed the stream's size by more
than 1 MiB). Shared references (memo) are expanded at the end under a budget proportional to the
stream's size, so a small stream cannot unfold into a huge structure, and
reference cycles are refused.
"""

from __future__ import annotations

import pickletools
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facelab.core.errors import InputError

MAX_PROTOCOL = 5
MAX_DEPTH = 64  # nesting of containers in the result
MAX_ARRAY_DIMS = 8
MAX_ARRAY_BYTES = 256 * 1024 * 1024  # one array
_ARRAY_SLACK = 1024 * 1024  # all arrays of a stream together: at most the stream's size plus this
MAX_INT_BITS = 64
MAX_BYTES_LEN = 256 * 1024 * 1024  # one bytes or str value
_NODE_BUDGET_BASE = 10_000  # expanded nodes allowed beyond 2 per byte of stream

# numeric dtypes DFL's arrays use (landmarks, matrices, polygons, encoded masks); no object/struct/str types
_DTYPES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "?"})
_BYTE_ORDERS = frozenset({"<", ">", "|", "=", None})

# The names pickled by numpy 1.x ("numpy.core") and 2.x ("numpy._core"), by Python for protocol 0-2 bytes,
# and by DeepFaceLab for its IntEnums (samplelib/Sample.py SampleType, facelib/FaceType.py FaceType; both
# are pickled as class(value), and this reader keeps the int).
_RECONSTRUCT = frozenset({"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"})
_SCALAR = frozenset({"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"})
_FROMBUFFER = frozenset({"numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer"})
_NDARRAY = "numpy.ndarray"
_DTYPE = "numpy.dtype"
_CODECS_ENCODE = "_codecs.encode"
_EMPTY_BYTES = frozenset({"builtins.bytes", "__builtin__.bytes"})  # protocol 0-2 b"": bytes() with no argument
_INT_ENUMS = frozenset({"samplelib.Sample.SampleType", "facelib.FaceType.FaceType"})
ALLOWED_GLOBALS = frozenset(
    _RECONSTRUCT | _SCALAR | _FROMBUFFER | _INT_ENUMS | _EMPTY_BYTES | {_NDARRAY, _DTYPE, _CODECS_ENCODE}
)

_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                      "BINUNICODE8"})
_BYTES = frozenset({"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"})
_INTS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PLAIN_KEYS = (str, int, float, bytes, bool, type(None))


class UnsafePickleError(InputError):
    """The stream asks for something other than plain data and numeric arrays (e.g. a function call)."""


@dataclass(frozen=True)
class _Global:
    name: str


@dataclass
class _Dtype:
    code: str
    order: str | None = None
    built: bool = False

    def dtype(self) -> np.dtype[Any]:
        dt = np.dtype(self.code)
        if self.order == "<":
            dt = dt.newbyteorder("<")
        elif self.order == ">":
            dt = dt.newbyteorder(">")
        return dt


@dataclass
class _Array:
    value: np.ndarray[Any, Any] | None = None


@dataclass
class _State:
    array_bytes: int = 0
    array_limit: int = 0
    memo: dict[int, Any] = field(default_factory=dict)


def _unsafe(message: str, what: str) -> UnsafePickleError:
    return UnsafePickleError(f"{what}: refused: {message} (DFL metadata is plain data and numeric arrays)")


def _bad(message: str, what: str) -> InputError:
    return InputError(f"{what}: not valid DFL pickle data: {message}")


def loads(data: bytes, what: str = "pickle") -> Any:
    """The object a pickle stream describes, built from plain types and numpy arrays only.

    Raises UnsafePickleError (an InputError) for anything else, InputError for a malformed stream; nothing
    in the stream is imported or executed. ``what`` names the stream in the error line.
    """
    try:
        raw = _run(bytes(data), what)
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError, struct.error,
            UnicodeError, RecursionError) as exc:
        raise _bad(f"{type(exc).__name__}: {_short(exc)}", what) from None
    budget = [2 * len(data) + _NODE_BUDGET_BASE]
    return _expand(raw, what, budget, 0, set())


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _run(data: bytes, what: str) -> Any:
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    state = _State(array_limit=len(data) + _ARRAY_SLACK)
    for op, parsed, _pos in pickletools.genops(data):
        name = op.name
        arg: Any = parsed
        # the branches in order of how often DFL's pickles use them
        if name in ("FLOAT", "BINFLOAT"):
            stack.append(float(arg))
        elif name == "MEMOIZE":
            state.memo[len(state.memo)] = stack[-1]
        elif name in _PUTS:
            state.memo[int(arg)] = stack[-1]
        elif name == "MARK":
            metastack.append(stack)
            stack = []
        elif name == "APPENDS":
            items, stack = stack, metastack.pop()
            _list_at(stack, what).extend(items)
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name in _INTS:
            if not isinstance(arg, bool) and abs(arg).bit_length() > MAX_INT_BITS:
                raise _bad(f"an integer of {abs(arg).bit_length()} bits", what)
            stack.append(arg)
        elif name in _GETS:
            stack.append(state.memo[int(arg)])
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise _bad(f"{name} on a short stack", what)
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name in _STRINGS:
            stack.append(str(arg))
        elif name == "SETITEMS":
            items, stack = stack, metastack.pop()
            _dict_from(items, _dict_at(stack, what), what)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "TUPLE":
            items, stack = stack, metastack.pop()
            stack.append(tuple(items))
        elif name == "APPEND":
            value = stack.pop()
            _list_at(stack, what).append(value)
        elif name == "SETITEM":
            value = stack.pop()
            key = stack.pop()
            _dict_from([key, value], _dict_at(stack, what), what)
        elif name == "NONE":
            stack.append(None)
        elif name == "NEWTRUE":
            stack.append(True)
        elif name == "NEWFALSE":
            stack.append(False)
        elif name in _BYTES:
            stack.append(bytes(arg))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "LIST":
            items, stack = stack, metastack.pop()
            stack.append(items)
        elif name == "DICT":
            items, stack = stack, metastack.pop()
            stack.append(_dict_from(items, {}, what))
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                stack = metastack.pop()
        elif name == "POP_MARK":
            stack = metastack.pop()
        elif name == "FRAME":
            pass
        elif name == "PROTO":
            if not isinstance(arg, int) or arg > MAX_PROTOCOL:
                raise _bad(f"unknown protocol {arg!r}", what)
        elif name == "STOP":
            if len(stack) != 1 or metastack:
                raise _bad("the stream ends with a malformed stack", what)
            return stack[0]
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            stack.append(_global(module, attr, what))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if not isinstance(module, str) or not isinstance(attr, str):
                raise _bad("STACK_GLOBAL on non-strings", what)
            stack.append(_global(module, attr, what))
        elif name == "REDUCE":
            args = stack.pop()
            func = stack.pop()
            stack.append(_call(func, args, state, what))
        elif name == "BUILD":
            setstate = stack.pop()
            _build(stack[-1], setstate, state, what)
        else:
            # NEWOBJ, NEWOBJ_EX, OBJ, INST, PERSID, BINPERSID, EXT1/2/4, EMPTY_SET, ADDITEMS, FROZENSET,
            # NEXT_BUFFER, READONLY_BUFFER: they build arbitrary objects or reach outside the stream
            raise _unsafe(f"pickle opcode {name}", what)
    raise _bad("no STOP opcode", what)


def _global(module: str, attr: str, what: str) -> _Global:
    full = f"{module}.{attr}"
    if full not in ALLOWED_GLOBALS:
        shown = full if len(full) <= 80 and full.isprintable() else repr(full[:80])
        raise _unsafe(f"pickle global {shown}", what)
    return _Global(full)


def _list_at(stack: list[Any], what: str) -> list[Any]:
    target = stack[-1]
    if type(target) is not list:
        raise _bad(f"append to a {type(target).__name__}", what)
    return target


def _dict_at(stack: list[Any], what: str) -> dict[Any, Any]:
    target = stack[-1]
    if type(target) is not dict:
        raise _bad(f"set an item of a {type(target).__name__}", what)
    return target


def _is_plain_key(key: Any) -> bool:
    if isinstance(key, tuple):
        return all(_is_plain_key(k) for k in key)
    return isinstance(key, _PLAIN_KEYS)


def _dict_from(items: list[Any], target: dict[Any, Any], what: str) -> dict[Any, Any]:
    if len(items) % 2:
        raise _bad("odd number of dict items", what)
    for i in range(0, len(items), 2):
        key = items[i]
        if not _is_plain_key(key):
            raise _bad(f"a dict key of type {type(key).__name__}", what)
        target[key] = items[i + 1]
    return target


def _call(func: Any, args: Any, state: _State, what: str) -> Any:
    if not isinstance(func, _Global):
        raise _unsafe(f"a call of a {type(func).__name__}", what)
    if not isinstance(args, tuple):
        raise _bad("call arguments are not a tuple", what)
    name = func.name
    if name in _RECONSTRUCT:
        # numpy's ndarray.__reduce__: _reconstruct(ndarray, (0,), b"b"), then BUILD with the state
        if len(args) != 3 or args[0] != _Global(_NDARRAY) or args[1] != (0,) or not isinstance(args[2], bytes):
            raise _unsafe("numpy _reconstruct with other arguments than ndarray, (0,), b'b'", what)
        return _Array()
    if name == _DTYPE:
        if len(args) != 3 or not isinstance(args[0], str) or args[0] not in _DTYPES:
            code = args[0] if args and isinstance(args[0], str) else "?"
            raise _unsafe(f"numpy dtype {code[:20]!r} (only numeric dtypes are read)", what)
        return _Dtype(args[0])
    if name in _SCALAR:
        if len(args) != 2 or not isinstance(args[1], bytes):
            raise _bad("numpy scalar with unexpected arguments", what)
        dt = _finished_dtype(args[0], what)
        if len(args[1]) != dt.itemsize:
            raise _bad(f"numpy scalar of {len(args[1])} bytes for dtype {dt.str}", what)
        return np.frombuffer(args[1], dtype=dt)[0].item()
    if name in _FROMBUFFER:
        # protocol 5: _frombuffer(buffer, dtype, shape, order)
        if len(args) != 4 or not isinstance(args[0], bytes) or args[3] not in ("C", "F"):
            raise _bad("numpy _frombuffer with unexpected arguments", what)
        return _Array(_make_array(args[0], args[1], args[2], args[3] == "F", state, what))
    if name == _CODECS_ENCODE:
        # protocol 0-2 bytes: _codecs.encode(text, "latin1")
        if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
            raise _unsafe("_codecs.encode with other arguments than (str, 'latin1')", what)
        return args[0].encode("latin-1")
    if name in _EMPTY_BYTES:
        if args:
            raise _unsafe(f"{name} with arguments", what)
        return b""
    if name in _INT_ENUMS:
        if len(args) != 1 or type(args[0]) is not int:
            raise _bad(f"{name} with other arguments than one int", what)
        return args[0]
    raise _unsafe(f"a call of {name} as a function", what)  # e.g. numpy.ndarray(...) directly


def _finished_dtype(obj: Any, what: str) -> np.dtype[Any]:
    if not isinstance(obj, _Dtype):
        raise _bad(f"a dtype argument of type {type(obj).__name__}", what)
    return obj.dtype()


def _build(obj: Any, setstate: Any, state: _State, what: str) -> None:
    if isinstance(obj, _Dtype):
        # numpy dtype state: (version, byte order, subarray, names, fields, elsize, alignment, flags[, ...])
        if obj.built or not isinstance(setstate, tuple) or len(setstate) < 5:
            raise _bad("malformed numpy dtype state", what)
        if setstate[1] not in _BYTE_ORDERS or any(s is not None for s in setstate[2:5]):
            raise _unsafe("a structured or sub-array numpy dtype", what)
        obj.order, obj.built = setstate[1], True
        return
    if isinstance(obj, _Array):
        # ndarray state: (version, shape, dtype, is_fortran, raw bytes)
        if obj.value is not None or not isinstance(setstate, tuple) or len(setstate) != 5:
            raise _bad("malformed numpy array state", what)
        _version, shape, dtype, fortran, raw = setstate
        if not isinstance(raw, bytes):
            raise _unsafe(f"numpy array data of type {type(raw).__name__} (object arrays are not read)", what)
        if type(fortran) is not bool:
            raise _bad("malformed numpy array state", what)
        obj.value = _make_array(raw, dtype, shape, fortran, state, what)
        return
    raise _unsafe(f"setting the state of a {type(obj).__name__}", what)


def _make_array(raw: bytes, dtype: Any, shape: Any, fortran: bool, state: _State, what: str) -> np.ndarray[Any, Any]:
    dt = _finished_dtype(dtype, what)
    if not isinstance(shape, tuple) or len(shape) > MAX_ARRAY_DIMS or not all(
        type(n) is int and n >= 0 for n in shape
    ):
        raise _bad(f"numpy array shape {str(shape)[:60]}", what)
    count = 1
    for n in shape:
        count *= n
        if count * dt.itemsize > MAX_ARRAY_BYTES:
            raise _bad(f"a numpy array of shape {str(shape)[:60]} (over {MAX_ARRAY_BYTES >> 20} MiB)", what)
    if count * dt.itemsize != len(raw):
        raise _bad(f"a numpy array of shape {shape} {dt.str} with {len(raw)} bytes of data", what)
    state.array_bytes += len(raw)
    if state.array_bytes > state.array_limit:  # only when many arrays share one bytes object
        raise _bad(f"arrays of {state.array_bytes} bytes from a stream of {state.array_limit - _ARRAY_SLACK}", what)
    flat = np.frombuffer(raw, dtype=dt).copy()
    return flat.reshape(shape, order="F" if fortran else "C")


def _expand(obj: Any, what: str, budget: list[int], depth: int, active: set[int]) -> Any:
    """The finished value: pending arrays resolved, shared references expanded under the node budget."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _bad("shared references expand beyond the stream's size", what)
    if depth > MAX_DEPTH:
        raise _bad(f"nested deeper than {MAX_DEPTH} levels", what)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, _Array):
        if obj.value is None:
            raise _bad("a numpy array without data", what)
        return obj.value
    if isinstance(obj, (list, tuple, dict)):
        key = id(obj)
        if key in active:
            raise _bad("a reference cycle", what)
        active.add(key)
        try:
            if isinstance(obj, dict):
                return {k: _expand(v, what, budget, depth + 1, active) for k, v in obj.items()}
            items = [_expand(v, what, budget, depth + 1, active) for v in obj]
            return items if isinstance(obj, list) else tuple(items)
        finally:
            active.discard(key)
    if isinstance(obj, _Global):
        raise _unsafe(f"a bare reference to {obj.name}", what)
    raise _bad(f"a leftover {type(obj).__name__}", what)
