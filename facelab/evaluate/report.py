"""Summaries (mean +- std per metric), the per-frame CSV, the summary JSON and the paper-style tables."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from facelab.core.atomic import write_json_atomic, write_text_atomic
from facelab.core.errors import InputError
from facelab.evaluate.results import Evaluation, FrameMetrics

SCHEMA = "facelab.evaluate"
VERSION = 1

# (key, column title, which way is better, unit): the order of every table.
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("ssim", "SSIM", "higher", ""),
    ("perceptual", "perceptual", "lower", "MobileNetV2 feature distance"),
    ("id_src", "identity to src", "lower", "dlib L2"),
    ("id_dst", "identity to dst", "higher", "dlib L2"),
    ("landmarks", "landmarks", "lower", "inter-ocular distances"),
    ("pose", "pose", "lower", "degrees"),
    ("jitter", "jitter", "lower", "inter-ocular distances / frame"),
    ("flicker", "flicker", "lower", "8-bit levels / frame"),
)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    return {"mean": mean, "std": std, "n": len(vals)}


def summarise(rows: list[FrameMetrics], info: dict[str, Any]) -> dict[str, Any]:
    """The summary JSON object: inputs, frame counts by status, and mean/std/n of each metric."""
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("ok", "no_face_result", "no_face_dst")}
    metrics = {key: _stats([getattr(r, key) for r in rows]) for key, *_ in METRICS}
    for extra in ("yaw", "pitch", "roll"):
        metrics[extra] = _stats([getattr(r, extra) for r in rows])
    return {"schema": SCHEMA, "version": VERSION, **info, "frames": counts, "metrics": metrics}


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


def read_summary(path: Path) -> dict[str, Any]:
    """A summary JSON written by `write_reports`, validated."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read evaluation summary ({exc})", path) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"not a facelab evaluation summary (expected schema {SCHEMA!r})", path)
    if data.get("version") != VERSION:
        raise InputError(f"unsupported evaluation summary version {data.get('version')!r} (reads {VERSION})", path)
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or any(not isinstance(metrics.get(k), dict) for k, *_ in METRICS):
        raise InputError("evaluation summary lacks its metrics", path)
    return data


def cell(stats: dict[str, Any], digits: int = 3) -> str:
    """'mean +- std' of one metric, or 'n/a' when no frame had a value."""
    if stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _frames_text(summary: dict[str, Any]) -> str:
    f = summary["frames"]
    return f"{f['ok']} ok, {f['no_face_result']} without a face in the result, {f['no_face_dst']} without one in dst"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """A plain-text table of one evaluation (metric, mean +- std, frames with a value, direction)."""
    m = summary["metrics"]
    width = max(len(title) for _, title, *_ in METRICS)
    lines = [f"frames: {summary['frames_sampled']} sampled; {_frames_text(summary)}"]
    if summary["result_frames"] != summary["dst_frames"]:
        lines.append(f"note: the result has {summary['result_frames']} frames and dst {summary['dst_frames']}; "
                     f"only the first {min(summary['result_frames'], summary['dst_frames'])} were compared")
    for key, title, better, unit in METRICS:
        note = f"{better} is better" + (f"; {unit}" if unit else "")
        lines.append(f"{title:<{width}}  {cell(m[key]):>17}  n={m[key]['n']:<4} ({note})")
    return lines


def markdown_table(summaries: dict[str, dict[str, Any]], title: str | None = None) -> str:
    """Rows: one per swap (label -> summary); columns: the metrics, mean +- std; as in the paper's tables."""
    head = ["model", *[f"{t} {'↑' if b == 'higher' else '↓'}" for _, t, b, _ in METRICS], "frames (ok / no face)"]
    lines = [] if title is None else [f"**{title}**", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, s in summaries.items():
        f = s["frames"]
        cells = [cell(s["metrics"][k]) for k, *_ in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {f['ok']} / {f['no_face_result']} |")
    return "\n".join(lines) + "\n"
