"""Shards: N machines split one frame folder and write into one output folder.

Shard ``(I, N)`` holds the frames whose position in the frame folder (0-based, frame order) satisfies
``position % N == I``; each shard keeps its own journal and summary (named with ``shard_suffix``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facelab.core.errors import InputError

Shard = tuple[int, int]


def parse_shard(text: str | None) -> Shard | None:
    """"I/N" -> (I, N) with 0 <= I < N."""
    if text is None:
        return None
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise InputError(f"--shard must look like I/N (e.g. 0/2), got {text!r}") from None
    return check_shard((i, n))


def check_shard(shard: Shard) -> Shard:
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise InputError(f"shard {i}/{n}: need N >= 1 and 0 <= I < N")
    return i, n


def shard_frames(frames: Sequence[Path], shard: Shard | None) -> list[Path]:
    """The frames of the shard (all of them without one), in frame order."""
    return [p for i, p in enumerate(frames) if shard is None or i % shard[1] == shard[0]]


def shard_suffix(shard: Shard | None) -> str:
    """What names the shard's own journal and summary: "" for a full run, "-shard-I-of-N" for a shard."""
    return "" if shard is None else f"-shard-{shard[0]}-of-{shard[1]}"
