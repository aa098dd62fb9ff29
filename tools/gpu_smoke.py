"""GPU checks of the training engine, for a machine with CUDA (see docs/gpu.md). Prints JSON.

    python tools/gpu_smoke.py --src SRC_ALIGNED --dst DST_ALIGNED [--device cuda] [--iterations 40]

For each precision (fp32, bf16 autocast, fp16 autocast with loss scaling) a demo-preset model trains
``--iterations`` steps with two DataLoader workers (pinned memory on CUDA): the reconstruction losses
must be finite and fall. Then save, reload and one more step must be reproducible: a resumed model
holds the saved weights bit for bit. Last, DDP with the NCCL backend (gloo on the CPU) in one process
group of one rank, the code path `torchrun ... --ddp` takes. Runs on the CPU too (`--device cpu`), to
check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from facelab.core.model_folder import load_checkpoint  # noqa: E402
from facelab.train.options import PRESETS, TrainOptions  # noqa: E402
from facelab.train.trainer import Trainer  # noqa: E402


def _options(precision: str, device: str, **extra: Any) -> TrainOptions:
    return TrainOptions(**(PRESETS["demo"] | {"precision": precision, "device": device, "workers": 2,
                                               "preview_every": 0, "backup_hours": 0, "log_every": 1} | extra))


def _losses(model_dir: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]


def train_check(src: Path, dst: Path, precision: str, device: str, iterations: int, tmp: Path) -> dict[str, Any]:
    model = tmp / f"model-{precision}"
    t0 = time.perf_counter()
    trainer = Trainer(model, _options(precision, device), src, dst)
    state = trainer.train(iterations=iterations)
    trainer.close()
    seconds = time.perf_counter() - t0
    rows = _losses(model)
    head = sum(r["src_loss"] + r["dst_loss"] for r in rows[:5]) / 5
    tail = sum(r["src_loss"] + r["dst_loss"] for r in rows[-5:]) / 5
    finite = all(torch.isfinite(torch.tensor([r["src_loss"], r["dst_loss"]])).all() for r in rows)
    # resume: the reloaded weights are the saved ones, bit for bit
    saved = load_checkpoint(model)
    again = Trainer(model, _options(precision, device), src, dst)
    same = saved is not None and all(
        torch.equal(again.ae.state_dict()[k.split(".", 1)[1]].cpu(), v.cpu())
        for k, v in saved.weights.items() if k.startswith("ae."))
    again.close()
    return {"precision": precision, "iterations": state.iteration, "seconds": round(seconds, 2),
            "it_per_s_last": rows[-1].get("it_per_s"), "loss_first5": round(head, 4), "loss_last5": round(tail, 4),
            "losses_finite": bool(finite), "loss_fell": bool(tail < head), "resume_bit_identical": bool(same)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ddp_check(src: Path, dst: Path, device: str, tmp: Path) -> dict[str, Any]:
    os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(_free_port())})
    trainer = Trainer(tmp / "model-ddp", _options("bf16", device, workers=0), src, dst, ddp=True)
    state = trainer.train(iterations=3)
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
    trainer.close()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return {"iterations": state.iteration, "backend": backend}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--dst", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--precisions", default="fp32,bf16,fp16")
    args = ap.parse_args()
    out: dict[str, Any] = {"torch": torch.__version__, "device": args.device, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out["train"] = [train_check(args.src, args.dst, p, args.device, args.iterations, tmp)
                        for p in args.precisions.split(",")]
        out["ddp"] = ddp_check(args.src, args.dst, args.device, tmp)
    if torch.cuda.is_available():
        out["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    out["ok"] = all(r["losses_finite"] and r["loss_fell"] and r["resume_bit_identical"] for r in out["train"]) \
        and out["ddp"]["iterations"] == 3
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
