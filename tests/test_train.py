"""The training engine on real faces: learning, resume after kill -9, crash-safe saves, options, DDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facelab.core import model_folder as ckpt_mod
from facelab.core.errors import InputError
from facelab.core.model_folder import load_checkpoint
from facelab.train import device as device_mod
from facelab.train.checkpoint import merge_options, read_config
from facelab.train.options import PRESETS, TrainOptions, preset_values
from facelab.train.samples import InfiniteSampler, sampling_weights
from facelab.train.trainer import Trainer

TINY: dict[str, Any] = {"arch": "df-ud", "resolution": 64, "ae_dims": 64, "e_dims": 16, "d_dims": 16,
                        "d_mask_dims": 8, "batch_size": 4, "workers": 0, "lr": 2e-4, "preview_every": 0,
                        "log_every": 1, "autosave_minutes": 60, "backup_hours": 0}


T = TypeVar("T")


def tiny(**kw: Any) -> TrainOptions:
    return TrainOptions(**(TINY | kw))


def facelab_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "facelab.cli.main", *map(str, args)]


def test_three_hundred_iterations_learn_real_faces(shared_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = shared_faces
    torch.set_num_threads(2)
    # a tiny DF with every default augmentation (random warp, flips, affine); measured: -36% on both sides
    opts = tiny(arch="df-u", lr=5e-4, batch_size=8, workers=1)
    trainer = Trainer(tmp_path / "model", opts, src, dst)
    trainer.train(iterations=300)
    rows = [json.loads(line) for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["iteration"] == 300
    for side in ("src_loss", "dst_loss"):
        first = sum(r[side] for r in rows[:5]) / 5  # the untrained model
        last = sum(r[side] for r in rows[-20:]) / 20
        assert last < 0.7 * first, f"{side}: {first:.3f} -> {last:.3f}"


def test_every_option_trains_a_step(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    opts = tiny(arch="liae-udtc", true_face_power=0.1, gan_power=0.1, face_style_power=10, bg_style_power=10,
                eyes_mouth_prio=True, blur_out_mask=True, lr_dropout=0.3, optimizer="adabelief", clipgrad=True,
                ct_mode="rct", random_hsv_power=0.1, uniform_yaw=True, mouth_match=0.5, precision="bf16", init="ca",
                preview_every=2, weight_average=0.99)
    t = Trainer(tmp_path / "m", opts, src, dst)
    sampler = t.src_loader.sampler
    assert isinstance(sampler, InfiniteSampler) and sampler.weights is not None  # yaw x src's mouths matched to dst
    yaw_only = sampling_weights(t.src_set, uniform_yaw=True, uniform_mouth=False)
    assert yaw_only is not None and not np.allclose(sampler.weights.numpy(), yaw_only)  # mouth_match reached it
    state = t.train(iterations=3)
    assert state.iteration == 3
    weights = load_file(tmp_path / "m" / "weights-00000003.safetensors")
    assert any(k.startswith("code_d.") for k in weights) and any(k.startswith("gan_d.") for k in weights)
    assert (tmp_path / "m" / "previews" / "latest.png").stat().st_size > 1000
    row = json.loads((tmp_path / "m" / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("true_face_g", "true_face_d", "gan_g", "gan_d", "style_loss", "samples_per_s", "data_wait"):
        assert key in row
    # rmsprop, fp16 with loss scaling
    t2 = Trainer(tmp_path / "m2", tiny(optimizer="rmsprop", precision="fp16"), src, dst)
    assert t2.train(iterations=2).iteration == 2


def _wait_for_iteration(model: Path, at_least: int, proc: subprocess.Popen[str], timeout: float = 240) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            it = int(json.loads((model / "state.json").read_text())["iteration"])
            if it >= at_least:
                return it
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError("no checkpoint in time")


def test_kill_9_then_resume_continues_from_the_last_save(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    model = tmp_path / "model"
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items()) + "\n")
    proc = subprocess.Popen(facelab_cmd("train", "--src", src, "--dst", dst, "--model-dir", model, "--config", cfg,
                                        "--autosave-iterations", "10", "--iterations", "100000"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_iteration(model, 20, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ck = load_checkpoint(model)
    assert ck is not None and ck.state.iteration % 10 == 0 and ck.state.iteration >= 20
    saved = ck.state.iteration
    opts = read_config(model)
    assert opts is not None
    t = Trainer(model, opts, src, dst, previous=opts)
    assert t.state.iteration == saved
    for k, v in t.ae.state_dict().items():
        assert torch.equal(v, ck.weights[f"ae.{k}"]), k  # bit-identical
    t.train(iterations=3)
    assert load_checkpoint(model).state.iteration == saved + 3  # type: ignore[union-attr]


def test_a_save_interrupted_mid_write_leaves_the_previous_checkpoint(sample_faces: tuple[Path, Path],
                                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    src, dst = sample_faces
    model = tmp_path / "model"
    t = Trainer(model, tiny(), src, dst)
    t.train(iterations=2)
    before = load_checkpoint(model)
    assert before is not None and before.state.iteration == 2

    def crash(*_: Any, **__: Any) -> None:
        raise OSError("disk full (simulated) while writing state.json")

    monkeypatch.setattr(ckpt_mod, "write_json_atomic", crash)
    with pytest.raises(OSError):
        t.train(iterations=2)  # the final save dies after writing the new weight files
    monkeypatch.undo()
    assert (model / "weights-00000004.safetensors").exists()  # written, but never committed
    after = load_checkpoint(model)
    assert after is not None and after.state.iteration == 2
    for k, v in before.weights.items():
        assert torch.equal(v, after.weights[k])
    # a torn weights file is detected, and reported clearly
    wfile = model / json.loads((model / "state.json").read_text())["files"]["weights"]
    data = wfile.read_bytes()
    wfile.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupted"):
        load_checkpoint(model)


def test_options_fixed_at_creation_refuse_to_change(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    model = tmp_path / "model"
    Trainer(model, tiny(), src, dst).train(iterations=1)
    stored = read_config(model)
    assert stored is not None
    with pytest.raises(InputError, match="resolution"):
        merge_options(stored, {"resolution": 96}, {"resolution"})
    changed = merge_options(stored, {"lr": 1e-5, "gan_power": 0.1}, {"lr", "gan_power"})
    assert changed.lr == 1e-5 and changed.resolution == 64
    # through the CLI: a one-line error, and the model untouched
    before = (model / "state.json").read_bytes()
    res = subprocess.run(facelab_cmd("train", "--src", src, "--dst", dst, "--model-dir", model, "--resolution", "96",
                                     "--iterations", "1"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "fixed when a model is created" in res.stderr and "Traceback" not in res.stderr
    assert (model / "state.json").read_bytes() == before


def test_a_new_model_notes_what_src_does_not_show(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    # the demo pair the other way round: the man (as src) is hardly ever slightly open-mouthed, the woman mostly is
    woman, man = sample_faces
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items()) + "\n")
    args = ("train", "--src", man, "--dst", woman, "--model-dir", tmp_path / "m", "--config", cfg, "--iterations", "1",
            "--mouth-match", "auto")
    res = subprocess.run(facelab_cmd(*args), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    notes = [line for line in res.stderr.splitlines() if line.startswith("note:")]  # the status console
    assert notes and "mouth is slightly open" in notes[0] and notes[0].endswith("(facelab faceset coverage)")
    # mouth_match auto is kept as such and resolved per run: these two open their mouths alike on average
    assert read_config(tmp_path / "m").mouth_match == "auto"
    auto = [line for line in res.stderr.splitlines() if line.startswith("mouth-match auto:")]
    assert len(auto) == 1 and auto[0].startswith("mouth-match auto: 0 (src's mean mouth opening"), res.stderr
    start = json.loads((tmp_path / "m" / "runs.jsonl").read_text().splitlines()[0])
    assert start["event"] == "start" and start["mouth_match"] == 0.0  # recorded for every path that trains
    again = subprocess.run(facelab_cmd(*args), capture_output=True, text=True, timeout=300)  # resumed: said once
    assert again.returncode == 0 and "note:" not in again.stderr


def test_bad_inputs(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no aligned faces"):
        Trainer(tmp_path / "m", tiny(), empty, dst)
    res = subprocess.run(facelab_cmd("train", "--src", tmp_path / "nope", "--dst", dst, "--model-dir", tmp_path / "m2",
                                     "--iterations", "1"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "nope" in res.stderr and "Traceback" not in res.stderr
    model = tmp_path / "m3"
    Trainer(model, tiny(), src, dst).train(iterations=1)
    cfg = json.loads((model / "config.json").read_text())
    cfg["version"] = 99
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="version 99"):
        read_config(model)


def _ddp_worker(rank: int, world: int, port: int, src: str, dst: str, model: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    t = Trainer(Path(model), tiny(batch_size=4), Path(src), Path(dst), ddp=True)
    t.train(iterations=2)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in t.ae.state_dict().items()}, f"{out}/rank{rank}.safetensors")
    t.close()


def test_ddp_two_processes_keep_identical_weights(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(src), str(dst), str(tmp_path / "model"),
                                                   str(tmp_path)), nprocs=2, join=True)
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ck = load_checkpoint(tmp_path / "model")
    assert ck is not None and ck.state.iteration == 2  # rank 0 wrote the model folder
    start = TrainOptions(**TINY)
    t0 = Trainer(tmp_path / "fresh", start, src, dst)  # weights moved: the step changed them
    assert any(not torch.equal(v, a[k]) for k, v in t0.ae.state_dict().items())


def test_rotating_backups_and_target_iteration(sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = sample_faces
    model = tmp_path / "model"
    # a backup at every save (backup_hours ~ 0), saves every iteration, keep 2; stop at iteration 4
    opts = tiny(backup_hours=1e-9, backup_keep=2, autosave_iterations=1, target_iteration=4)
    state = Trainer(model, opts, src, dst).train(iterations=100)
    assert state.iteration == 4
    backups = sorted(p.name for p in (model / "backups").iterdir())
    assert backups == ["it_00000003", "it_00000004"]
    restored = load_checkpoint(model / "backups" / "it_00000003")
    assert restored is not None and restored.state.iteration == 3


def watch_steps(model: Path, opts: TrainOptions, src: Path, dst: Path, iterations: int,
                probe: Callable[[Trainer, Any, Any], T]) -> list[T]:
    """Train ``iterations`` in ``model`` (new or resumed) and return ``probe(trainer, src batch, dst batch)``
    read right after each step."""
    t = Trainer(model, opts, src, dst)
    seen: list[T] = []
    step = t.step

    def spy(s: Any, d: Any) -> Any:
        out = step(s, d)
        seen.append(probe(t, s, d))
        return out

    t.step = spy  # type: ignore[method-assign]
    try:
        t.train(iterations=iterations)
    finally:
        t.close()
    return seen


def test_warp_off_trains_the_budgets_last_share_on_unwarped_faces_and_a_resumed_run_goes_on(
        sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    """warp_off 0.5: the network sees randomly warped faces over the first half of the budget and the faces
    as they are (input = target) over the last half, counted on the model's own iterations; runs.jsonl notes
    the switch."""
    src, dst = sample_faces

    def warped(t: Trainer, s: Any, d: Any) -> bool:
        return not torch.equal(s.warped, s.target) and not torch.equal(d.warped, d.target)

    opts = tiny(warp_off=0.5)
    # the budget ends at 4: progress 0, 1/4, 1/2, 3/4 at the four steps
    assert watch_steps(tmp_path / "m", opts, src, dst, 4, warped) == [True, True, False, False]
    # resumed at 4 with 4 more: the budget ends at 8, progress 1/2 .. 7/8 from the first step
    assert watch_steps(tmp_path / "m", opts, src, dst, 4, warped) == [False, False, False, False]
    events = [json.loads(line)["event"] for line in (tmp_path / "m" / "runs.jsonl").read_text().splitlines()]
    assert events == ["start", "warp", "end", "start", "warp", "end"]


def test_lr_decay_lowers_the_rate_over_the_budget_and_a_resumed_run_goes_on(sample_faces: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    """lr_decay 0.5: the rate falls linearly to a tenth over the last half of the budget, measured on the
    model's own iterations, so a run resumed with the rest of a budget continues the schedule."""
    src, dst = sample_faces

    def rates(iterations: int) -> list[float]:
        return watch_steps(tmp_path / "m", tiny(lr_decay=0.5), src, dst, iterations,
                           lambda t, s, d: float(t.opt.param_groups[0]["lr"]))

    lr = TINY["lr"]
    # the budget ends at 4: progress 0, 1/4, 1/2, 3/4 at the four steps
    assert rates(4) == pytest.approx([lr, lr, lr, lr * (1 - 0.9 * 0.5)])
    # resumed at 4 with 4 more: the budget ends at 8, progress 1/2 .. 7/8
    assert rates(4) == pytest.approx([lr * (1 - 0.9 * f) for f in (0.0, 0.25, 0.5, 0.75)])


@pytest.mark.parametrize("native", [True, False])
def test_the_demo_batch_follows_the_precision(sample_faces: tuple[Path, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """The demo preset trains at batch 16 where its precision (auto) resolves to bf16, at 8 where it resolves to
    fp32 (more, cheaper steps in the same time: docs/quality.md); the batch is written into the model's config,
    and a batch asked for on the command line stands."""
    from facelab.cli.train import resolve_options

    monkeypatch.setattr(device_mod, "native_bf16", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    batch = 16 if native else 8
    assert preset_values("demo")["batch_size"] == batch and PRESETS["demo"]["batch_size"] == 16
    assert preset_values("quick96")["batch_size"] == PRESETS["quick96"]["batch_size"]
    with pytest.raises(InputError, match="unknown preset"):
        preset_values("nope")
    opts, stored = resolve_options(tmp_path / "m", "demo", None, {"workers": 0, "preview_every": 0})
    assert stored is None and opts.batch_size == batch
    assert resolve_options(tmp_path / "m", "demo", None, {"batch_size": 4})[0].batch_size == 4
    if not native:  # a step at that batch (bf16 would take this CPU's slow path)
        t = Trainer(tmp_path / "m", opts, *sample_faces)
        try:
            assert (t.batch, t.src_loader.batch_size) == (8, 8)
            assert t.train(iterations=1).iteration == 1
        finally:
            t.close()
        written = read_config(tmp_path / "m")
        assert written is not None and written.batch_size == 8


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """The demo preset's precision is auto: bf16 on a CPU with native bf16, fp32 on one without (an AVX2-only CPU
    ran a bf16 convolution about 100 times slower than fp32: facelab/train/device.py); an explicit choice stands,
    and bf16 asked for on such a CPU is reported with a warning. The autocast a run enters follows."""
    monkeypatch.setattr(device_mod, "native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert PRESETS["demo"]["precision"] == "auto"
    assert device_mod.resolve_precision(cpu, "auto") == ("bf16" if native else "fp32")
    for asked in ("fp32", "bf16", "fp16"):
        assert device_mod.resolve_precision(cpu, asked) == asked
    assert device_mod.slow_bf16(cpu, "bf16") is not native and not device_mod.slow_bf16(cpu, "auto")
    assert device_mod.precision_note(cpu, "auto") == f"{'bf16' if native else 'fp32'} (auto)"
    assert ("warning" in device_mod.precision_note(cpu, "bf16")) is not native
    with device_mod.autocast(cpu, "auto"):
        out = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    assert device_mod.grad_scaler(cpu, "auto") is None
    # a model trained in bf16 elsewhere predicts in fp32 on a CPU without native bf16
    assert device_mod.inference_precision(cpu, "bf16") == ("bf16" if native else "fp32")
    assert device_mod.inference_precision(cpu, "fp16") == "fp16"
    # live's choice for a PyTorch model on the CPU resolves the same way
    from types import SimpleNamespace

    from facelab.live.faces import cpu_bf16
    model: Any = SimpleNamespace(device=cpu)
    assert cpu_bf16(model, "auto") is native and cpu_bf16(model, "bf16") and not cpu_bf16(model, "fp32")


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in module.parameters()])


def test_weight_average_is_what_the_folder_saves_and_a_resumed_run_continues_both(
        sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    """weight_average 0.9: after each step the average moves towards the trained weights by 1 - min(0.9,
    (1 + n) / (10 + n)); the weights file (what merge loads) holds the average, the optimizer file the weights
    that train, and a resumed run goes on from both; switched off, training resumes from the trained weights."""
    from facelab.train.average import COUNT_KEY, saved_count

    src, dst = sample_faces
    model = tmp_path / "m"
    t = Trainer(model, tiny(weight_average=0.9), src, dst)
    expected = _flat(t.ae)
    assert t.average is not None and torch.equal(_flat(t.average.model), expected)
    raw: list[torch.Tensor] = []
    step = t.step

    def spy(s: Any, d: Any) -> Any:
        out = step(s, d)
        raw.append(_flat(t.ae))
        return out

    t.step = spy  # type: ignore[method-assign]
    try:
        t.train(iterations=3)
    finally:
        t.close()
    for n, w in enumerate(raw):
        decay = min(0.9, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * w
    assert not torch.allclose(raw[-1], expected, atol=1e-6)  # the average is not the last step's weights
    assert torch.allclose(_flat(t.average.model), expected, atol=1e-6)

    ckpt = load_checkpoint(model, optimizer=False)
    assert ckpt is not None and ckpt.state.iteration == 3
    names = [k for k, _ in t.ae.named_parameters()]
    saved = torch.cat([ckpt.weights[f"ae.{k}"].reshape(-1) for k in names])
    assert torch.allclose(saved, expected, atol=1e-6)
    trained = raw[-1]
    full = load_checkpoint(model)
    assert full is not None and int(full.opt_tensors[COUNT_KEY][0]) == 3
    assert torch.equal(torch.cat([full.opt_tensors[f"train.ae.{k}"].reshape(-1) for k in names]), trained)

    resumed = Trainer(model, tiny(weight_average=0.9), src, dst)
    try:
        assert resumed.average is not None and resumed.average.count == 3
        assert torch.equal(_flat(resumed.ae), raw[-1]) and torch.allclose(_flat(resumed.average.model), expected)
        resumed.train(iterations=1)
        assert resumed.average.count == 4
    finally:
        resumed.close()
    trained = _flat(resumed.ae)
    with pytest.raises(InputError, match="not a count"):
        saved_count({COUNT_KEY: torch.tensor([1.5])})
    off = Trainer(model, tiny(weight_average=0.0), src, dst)
    try:
        assert off.average is None and torch.equal(_flat(off.ae), trained)
    finally:
        off.close()
