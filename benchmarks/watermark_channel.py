"""What the watermark's channel carries after each attack, read where the mark is (no synchronisation). Prints JSON.

    python benchmarks/watermark_channel.py [--clips NAME ...] [--attacks NAME ...] [--repeats 1] [--payloads 1]
                                           [--cache DIR]

The swapped frames of benchmarks/watermark.py's ``--host swap`` (60 a clip, made on first use in --cache), marked
as ``facelab merge`` marks them (syncmark's written version, the whole frame, texture-masked, at the phase merge
chooses), attacked (watermark.py's ATTACKS), then read at the true tile offset: the whole frames folded and summed
as the reader sums them, at the offset within 3 px of the phase (a resampling shifts the mark by a pixel or two)
whose soft values the code fits best, as the reader chooses among its candidates. Per clip and attack:

- ``coded_accuracy``: the share of the coded bits whose summed soft value has the right sign;
- ``snr``: (mean / spread)**2 of soft value x coded sign over the coded bits;
- ``capacity_bits``: what that many uses of a binary-input Gaussian channel at that SNR could carry (the coded
  bits x the channel's capacity per use): the payload and the code's tail need fewer, and a practical code some
  margin (version 3 decoded where this was about 55-58 bits or more, for 48 + 6: docs/provenance.md, session 29);
- ``decodes``: the Viterbi decode there gives the payload; ``decodes_at_phase``: at the phase itself (a
  block-aligned offset, which the reader also weighs: near the threshold one of the two can decode alone).

It isolates the mark and the code from the reader's search: a change to the embedding can be judged in minutes,
and a pair that ``watermark.py`` fails with ``coded_accuracy`` near 0.5 here is lost to the channel, not to the
synchronisation. ``--repeats``: that many encodes of each attack (x264's output varies: watermark.py's
ENCODER_PARAMS), each reported; ``--payloads``: that many model ids marked on each clip (``model_ids``), each
reported, and a summary per attack over the clips, ids and encodes (reads, decodes, the capacity's mean and
minimum).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import watermark as bench  # noqa: E402

from facelab.provenance import syncmark as sm  # noqa: E402

HARD = ("h264_crf32", "downscale_1/3", "combo_downscale_1/2+crf28")
SEARCH = 3  # px around the phase among which the code's best fit is read
_NOISE = np.random.default_rng(0).standard_normal(200_000)


def biawgn_capacity(snr: float) -> float:
    """Bits per use of a binary-input channel with Gaussian noise at ``snr`` (mean**2 / variance): 1 - E[log2(1 +
    exp(-2 y mu))] over y ~ N(mu, 1), mu = sqrt(snr) (Monte Carlo on a fixed sample, about 1e-3)."""
    if snr <= 0:
        return 0.0
    mu = float(np.sqrt(snr))
    y = mu + _NOISE
    return float(1.0 - np.mean(np.logaddexp(0.0, -2.0 * y * mu)) / np.log(2.0))


def channel(frames: list[np.ndarray], payload: np.ndarray, phase: tuple[int, int], lay: sm.Layout) -> dict[str, Any]:
    """The channel's figures (module docstring) of attacked frames marked at ``phase``."""
    reader = sm.VideoReader(lay)
    for rgb in frames:  # added with a region, as verify adds frames holding faces: the whole frames are then folded
        reader.add(rgb, np.ones(rgb.shape[:2], dtype=np.bool_))  # from the stored 8-bit luma, as read_whole reads
    folded = reader._whole_frames(len(frames))
    total = (np.sum([f[0] for f in folded], axis=0), np.sum([f[1] for f in folded], axis=0))
    near = [((phase[0] + dy) % lay.tile, (phase[1] + dx) % lay.tile)
            for dy in range(-SEARCH, SEARCH + 1) for dx in range(-SEARCH, SEARCH + 1)]
    softs = np.stack([sm._folded_soft(total, o, lay) for o in near])
    best = int(np.argmax(sm.decode_scores(softs, lay)))  # as the reader chooses among its candidates: the code's fit
    offset, soft = near[best], softs[best]
    signed = soft * np.where(sm.encode_bits(payload, lay), -1.0, 1.0)
    spread = float(signed.std())
    snr = float(signed.mean()) ** 2 / spread**2 if spread > 0 else 0.0
    at_phase = near.index((phase[0] % lay.tile, phase[1] % lay.tile))
    decoded = sm.decode_soft_many(softs[[best, at_phase]], lay)  # at the best fit and at the phase itself
    return {"offset": list(offset), "coded_accuracy": round(float((signed > 0).mean()), 3), "snr": round(snr, 3),
            "capacity_bits": round(lay.coded_bits * biawgn_capacity(snr), 1),
            "needed_bits": lay.payload_bits + sm.CONSTRAINT - 1,
            "decodes": bool(np.array_equal(decoded[0], payload)),
            "decodes_at_phase": bool(np.array_equal(decoded[1], payload))}


def model_ids(count: int) -> list[str]:
    """The benchmark's model id and count - 1 more (hex digests of "model1", "model2", ...): near the channel's
    capacity a pair's result depends on the payload, through the codeword and the phase merge chooses for it
    (docs/provenance.md, session 30), so an embedding is judged on several."""
    return [bench.MODEL_ID] + [hashlib.sha256(f"model{i}".encode()).hexdigest() for i in range(1, count)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", nargs="+", default=list(bench.CLIPS), choices=list(bench.CLIPS))
    ap.add_argument("--attacks", nargs="+", default=list(HARD), choices=list(bench.ATTACKS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--payloads", type=int, default=1, help="mark each clip with this many model ids (model_ids)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/facelab_wm_bench"))
    args = ap.parse_args()
    bench.prepare(args.cache, 60, args.clips)
    bench.prepare_swap(args.cache, args.clips)
    lay = sm.WRITTEN
    started = time.perf_counter()
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
                                      f"{os.getloadavg()[0]:.1f} at start",
                           "layout": lay.name, "clips": {}}
    summary: dict[str, dict[str, list[Any]]] = {a: {"capacity_bits": [], "decodes": []} for a in args.attacks}
    for name in args.clips:
        frames, masks = bench.merged_clip(args.cache, name, "swapped")
        rows = []
        for model_id in model_ids(args.payloads):
            payload = sm.make_payload(model_id, lay)
            phase = bench.choose_phase(args.cache, name, masks, payload)
            marked, _ = bench.mark(3, frames, masks, payload, phase)
            row: dict[str, Any] = {"model_id": model_id, "phase": list(phase), "attacks": {}}
            for attack in args.attacks:
                reads = [channel(bench.ATTACKS[attack](marked), payload, phase, lay) for _ in range(args.repeats)]
                row["attacks"][attack] = reads
                summary[attack]["capacity_bits"] += [r["capacity_bits"] for r in reads]
                summary[attack]["decodes"] += [r["decodes"] or r["decodes_at_phase"] for r in reads]
                print(f"{name} {model_id[:6]} {attack}: " + ", ".join(
                    f"{r['coded_accuracy']:.3f} {r['capacity_bits']:.0f} bits"
                    f"{' decodes' if r['decodes'] else ''}{' decodes at the phase' if r['decodes_at_phase'] else ''}"
                    for r in reads), file=sys.stderr, flush=True)
            rows.append(row)
        out["clips"][name] = rows
    out["summary"] = {a: {"reads": len(v["decodes"]), "decode": int(sum(v["decodes"])),
                          "capacity_bits_mean": round(float(np.mean(v["capacity_bits"])), 1),
                          "capacity_bits_min": float(min(v["capacity_bits"]))} for a, v in summary.items()}
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
