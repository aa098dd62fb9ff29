"""Training feedback images: the preview grid and the loss-history plot (PNG, drawn with OpenCV)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import Tensor

from facelab.core.atomic import write_bytes_atomic
from facelab.core.types import Image
from facelab.core.versioned import json_loads

COLUMNS = ("src", "src rec", "src mask", "dst", "dst rec", "dst mask", "swap", "swap mask")


def _to_img(t: Tensor) -> Image:
    """(C,H,W) tensor in [0,1] -> HxWx3 uint8 RGB."""
    a = t.detach().float().clamp(0, 1).cpu().numpy()
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    out: Image = (a.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    return out


MIN_CELL = 128


def preview_grid(columns: list[Tensor], iteration: int) -> Image:
    """Rows of samples; columns as COLUMNS (each a (B,C,H,W) tensor), with a header line. Cells are shown
    at least MIN_CELL pixels wide (small models are enlarged) so the preview stays readable."""
    res = columns[0].shape[-1]
    cell = max(res, MIN_CELL)

    def show(t: Tensor) -> Image:
        img = _to_img(t)
        if cell == res:
            return img
        return np.asarray(cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)

    rows = [np.hstack([show(c[b]) for c in columns]) for b in range(columns[0].shape[0])]
    grid = np.vstack(rows)
    header = np.full((40, grid.shape[1], 3), 255, np.uint8)
    cv2.putText(header, f"iteration {iteration}", (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 0, 0), 1,
                cv2.LINE_AA)
    for i, name in enumerate(COLUMNS[: len(columns)]):
        cv2.putText(header, name, (i * cell + 4, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    out: Image = np.vstack([header, grid])
    return out


def write_png(path: Path, rgb: Image) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if ok:
        write_bytes_atomic(path, buf.tobytes())


def _number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of metrics.jsonl with a numeric iteration, each keeping its finite numeric values only
    (torn lines, lines that are not UTF-8 and other values are skipped)."""
    rows = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                obj = json_loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and _number(obj.get("iteration")):
                rows.append({str(k): v for k, v in obj.items() if _number(v)})
    return rows


def loss_plot(rows: list[dict[str, float]], keys: tuple[str, ...] = ("src_loss", "dst_loss"),
              size: tuple[int, int] = (640, 300)) -> Image:
    """Loss history on a log scale, one line per key (src blue-ish, dst orange)."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    pad_l, pad_r, pad_t, pad_b = 50, 10, 20, 25
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    series = [(k, [(r["iteration"], r[k]) for r in rows if k in r and r[k] > 0]) for k in keys]
    pts_all = [p for _, s in series for p in s]
    if len(pts_all) < 2:
        return img
    its = [p[0] for p in pts_all]
    vals = [math.log10(p[1]) for p in pts_all]
    x0, x1 = min(its), max(its) or 1
    y0, y1 = min(vals), max(vals)
    if y1 - y0 < 1e-6:
        y1 = y0 + 1
    cv2.rectangle(img, (pad_l, pad_t), (w - pad_r, h - pad_b), (180, 180, 180), 1)

    def xy(it: float, v: float) -> tuple[int, int]:
        x = pad_l + (it - x0) / max(x1 - x0, 1) * (w - pad_l - pad_r)
        y = h - pad_b - (math.log10(v) - y0) / (y1 - y0) * (h - pad_t - pad_b)
        return int(x), int(y)

    for ci, (key, s) in enumerate(series):
        if len(s) < 2:
            continue
        poly = np.array([xy(i, v) for i, v in s], np.int32)
        cv2.polylines(img, [poly], False, colours[ci % len(colours)], 1, cv2.LINE_AA)
        cv2.putText(img, key, (pad_l + 8 + 110 * ci, pad_t + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    colours[ci % len(colours)], 1, cv2.LINE_AA)
    cv2.putText(img, f"{10 ** y1:.3g}", (2, pad_t + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    cv2.putText(img, f"{10 ** y0:.3g}", (2, h - pad_b), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    cv2.putText(img, f"iteration {x0} .. {x1}", (pad_l, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return img
