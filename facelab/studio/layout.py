"""Where things are in a studio workspace: the folder layout `facelab swap` makes.

    WORKSPACE/swap.json          the src/dst videos (inputs) and the finished steps (written by `facelab swap`)
    WORKSPACE/studio.json        the src/dst videos for a workspace made by hand (optional)
    WORKSPACE/dst/frames/        dst's frames
    WORKSPACE/src/aligned/       src's aligned faces
    WORKSPACE/dst/aligned/       dst's aligned faces
    WORKSPACE/model/             the model folder
    WORKSPACE/merged/            merged frames
    WORKSPACE/merge_session.json the merge tuner's session (replayed by `facelab merge --session`)
    WORKSPACE/result.mp4         the result video made from the studio
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelab.core.errors import InputError
from facelab.core.versioned import json_loads


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json_loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable workspace file: {' '.join(str(exc).split())}", path) from None
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Layout:
    """The paths of one workspace (nothing is created by building it)."""

    root: Path

    @classmethod
    def open(cls, root: Path) -> Layout:
        root = Path(root).resolve()
        if not root.is_dir():
            raise InputError("workspace folder not found", root)
        return cls(root)

    @property
    def dst_frames(self) -> Path:
        return self.root / "dst" / "frames"

    @property
    def src_aligned(self) -> Path:
        return self.root / "src" / "aligned"

    @property
    def dst_aligned(self) -> Path:
        return self.root / "dst" / "aligned"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def session(self) -> Path:
        return self.root / "merge_session.json"

    @property
    def result_video(self) -> Path:
        return self.root / "result.mp4"

    @property
    def studio_file(self) -> Path:
        return self.root / "studio.json"

    def _inputs(self) -> dict[str, Any]:
        inputs = _read_json(self.root / "swap.json").get("inputs", {})
        own = _read_json(self.studio_file).get("inputs", {})
        out = dict(inputs) if isinstance(inputs, dict) else {}
        return out | (dict(own) if isinstance(own, dict) else {})

    def video(self, side: str) -> Path | None:
        """The src or dst video named by swap.json or studio.json (relative names are under the workspace)."""
        value = self._inputs().get(side)
        if not isinstance(value, str) or not value:
            return None
        path = Path(value)
        return path if path.is_absolute() else self.root / path
