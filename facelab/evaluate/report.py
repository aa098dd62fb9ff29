"""Summaries (mean +- std per metric, and the per-video values), the per-frame CSV, the summary JSON and
the paper-style tables."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from facelab.core.atomic import write_json_atomic, write_text_atomic
from facelab.core.errors import InputError
from facelab.core.versioned import read_json_file
from facelab.evaluate import metrics as measures
from facelab.evaluate.results import Evaluation, FrameMetrics

SCHEMA = "facelab.evaluate"
# The summary's format version. It goes up when a key that readers rely on is added, removed or changes
# meaning; `read_summary` reads every version in READS, an older one with the columns it predates empty.
# Version 2 added metrics.detail and the "video" section (mouth_corr, eye_corr, id_share); version 3 added
# video.mouth_err.
VERSION = 3
READS = (1, 2, 3)


class Column(NamedTuple):
    """One metric of the tables. Per-frame metrics are summarised as mean +- std over the frames (the
    summary's "metrics" section); per-video ones are one value for the whole video ("video" section)."""

    key: str
    title: str
    better: str  # "higher" or "lower"
    unit: str
    per_video: bool = False
    since: int = 1  # the summary version that introduced it

    @property
    def section(self) -> str:
        return "video" if self.per_video else "metrics"


# The order of every table.
METRICS: tuple[Column, ...] = (
    Column("ssim", "SSIM", "higher", ""),
    Column("perceptual", "perceptual", "lower", "MobileNetV2 feature distance"),
    Column("id_src", "identity to src", "lower", "dlib L2"),
    Column("id_dst", "identity to dst", "higher", "dlib L2"),
    Column("landmarks", "landmarks", "lower", "inter-ocular distances"),
    Column("pose", "pose", "lower", "degrees"),
    Column("jitter", "jitter", "lower", "inter-ocular distances / frame"),
    Column("flicker", "flicker", "lower", "8-bit levels / frame"),
    Column("mouth_corr", "mouth corr", "higher", "Pearson r of mouth opening, result vs dst, over the frames",
           per_video=True, since=2),
    Column("mouth_err", "mouth error", "lower", "mean |mouth opening, result - dst|, inter-ocular distances",
           per_video=True, since=3),
    Column("eye_corr", "eye corr", "higher", "Pearson r of eye opening, result vs dst, over the frames",
           per_video=True, since=2),
    Column("detail", "detail", "higher", "result / dst sharpness; 1 = as sharp as dst", since=2),
    Column("id_share", "id share", "higher", "share of frames closer to src than to dst", per_video=True, since=2),
)

# Per-video values: key -> (the two per-frame columns it pairs, frame by frame, and what it makes of them).
PerVideo = Callable[[Sequence[float], Sequence[float]], float | None]
VIDEO: dict[str, tuple[str, str, PerVideo]] = {
    "mouth_corr": ("mouth_open_result", "mouth_open_dst", measures.correlation),
    "mouth_err": ("mouth_open_result", "mouth_open_dst", measures.mean_abs_difference),
    "eye_corr": ("eye_open_result", "eye_open_dst", measures.correlation),
    "id_share": ("id_src", "id_dst", measures.closer_share),
}


def _stats(values: list[float]) -> dict[str, float | int | None]:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    return {"mean": mean, "std": std, "n": len(vals)}


def _per_video(rows: list[FrameMetrics], a: str, b: str, fn: PerVideo) -> dict[str, float | int | None]:
    """`fn` of columns a and b over the frames where both have a value; n counts those frames."""
    pairs = [(x, y) for x, y in ((getattr(r, a), getattr(r, b)) for r in rows) if math.isfinite(x) and math.isfinite(y)]
    return {"value": fn([x for x, _ in pairs], [y for _, y in pairs]), "n": len(pairs)}


def summarise(rows: list[FrameMetrics], info: dict[str, Any]) -> dict[str, Any]:
    """The summary JSON object: inputs, frame counts by status, mean/std/n of each per-frame metric, and
    value/n of each per-video one."""
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("ok", "no_face_result", "no_face_dst")}
    per_frame = [c.key for c in METRICS if not c.per_video] + ["yaw", "pitch", "roll"]
    metrics = {key: _stats([getattr(r, key) for r in rows]) for key in per_frame}
    video = {key: _per_video(rows, a, b, fn) for key, (a, b, fn) in VIDEO.items()}
    return {"schema": SCHEMA, "version": VERSION, **info, "frames": counts, "metrics": metrics, "video": video}


def csv_text(rows: list[FrameMetrics]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FrameMetrics.columns(), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else
                             f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.values().items()})
    return buf.getvalue()


def write_reports(ev: Evaluation, csv_path: Path | None, json_path: Path | None) -> None:
    """The per-frame CSV and the summary JSON, each written atomically (either may be None)."""
    if csv_path is not None:
        write_text_atomic(csv_path, csv_text(ev.rows))
    if json_path is not None:
        write_json_atomic(json_path, ev.summary)


def _no_value(col: Column) -> dict[str, Any]:
    return {"value": None, "n": 0} if col.per_video else {"mean": None, "std": None, "n": 0}


def read_summary(path: Path) -> dict[str, Any]:
    """A summary JSON written by `write_reports` (any version in READS), validated; the columns an older
    version predates read as without a value ('n/a' in the tables)."""
    data = read_json_file(path, "evaluation summary")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"not a facelab evaluation summary (expected schema {SCHEMA!r})", path)
    version = data.get("version")
    if version not in READS:
        raise InputError(f"unsupported evaluation summary version {version!r} "
                         f"(reads {', '.join(map(str, READS))})", path)
    for col in METRICS:
        section = data.setdefault(col.section, {})
        if col.since > version and isinstance(section, dict):
            section.setdefault(col.key, _no_value(col))
    if any(not isinstance(data.get(c.section), dict) or not isinstance(data[c.section].get(c.key), dict)
           for c in METRICS):
        raise InputError("evaluation summary lacks its metrics", path)
    return data


def cell(stats: dict[str, Any], digits: int = 3) -> str:
    """'mean +- std' of a per-frame metric, the value of a per-video one, or 'n/a' when there is none."""
    if "value" in stats:
        return "n/a" if stats["value"] is None else f"{stats['value']:.{digits}f}"
    if stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _of(summary: dict[str, Any], col: Column) -> dict[str, Any]:
    stats: dict[str, Any] = summary[col.section][col.key]
    return stats


def _frames_text(summary: dict[str, Any]) -> str:
    f = summary["frames"]
    return f"{f['ok']} ok, {f['no_face_result']} without a face in the result, {f['no_face_dst']} without one in dst"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """A plain-text table of one evaluation (metric, mean +- std, frames with a value, direction)."""
    width = max(len(c.title) for c in METRICS)
    lines = [f"frames: {summary['frames_sampled']} sampled; {_frames_text(summary)}"]
    if summary["result_frames"] != summary["dst_frames"]:
        lines.append(f"note: the result has {summary['result_frames']} frames and dst {summary['dst_frames']}; "
                     f"only the first {min(summary['result_frames'], summary['dst_frames'])} were compared")
    for col in METRICS:
        stats = _of(summary, col)
        note = f"{col.better} is better" + (f"; {col.unit}" if col.unit else "")
        lines.append(f"{col.title:<{width}}  {cell(stats):>17}  n={stats['n']:<4} ({note})")
    return lines


def markdown_table(summaries: dict[str, dict[str, Any]], title: str | None = None) -> str:
    """Rows: one per swap (label -> summary); columns: the metrics (mean +- std, or the per-video value); as in
    the paper's tables."""
    head = ["model", *[f"{c.title} {'↑' if c.better == 'higher' else '↓'}" for c in METRICS], "frames (ok / no face)"]
    lines = [] if title is None else [f"**{title}**", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, s in summaries.items():
        f = s["frames"]
        cells = [cell(_of(s, c)) for c in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {f['ok']} / {f['no_face_result']} |")
    return "\n".join(lines) + "\n"
