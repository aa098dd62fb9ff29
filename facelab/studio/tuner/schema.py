"""The merge options as the tuner page shows them: MergeOptions' JSON schema (registered choices are
``enum``s there) with the per-frame / per-run split of facelab.merge.options."""

from __future__ import annotations

from typing import Any

from facelab.merge.options import EXECUTION_KEYS, FrameOptions, MergeOptions, RunOptions


def options_schema() -> dict[str, Any]:
    """``schema``: the JSON schema; ``frame_keys`` (may change per frame or range) and ``run_keys`` (hold
    for a whole run) in declaration order, without the options that do not change the output (workers);
    ``defaults``: the default values."""
    defaults = MergeOptions().model_dump(mode="json")
    return {
        "schema": MergeOptions.model_json_schema(),
        "frame_keys": list(FrameOptions.model_fields),
        "run_keys": [k for k in RunOptions.model_fields if k not in EXECUTION_KEYS],
        "defaults": {k: v for k, v in defaults.items() if k not in EXECUTION_KEYS},
    }
