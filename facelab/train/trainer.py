"""The training loop: one readable class. Data -> forward (AMP) -> losses -> backward -> step, with
discriminators when their powers are on, autosave, backups, previews, metrics and DDP.

Set-up runs in steps (process, data, networks, resume or create, wrappers). The losses of each step stay
tensors on the device (``LossWindow``) and are read on the host only when logged or before a save."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from facelab.core.atomic import append_line, write_text_atomic
from facelab.core.errors import InputError
from facelab.core.lock import Want, hold
from facelab.core.model_folder import (
    ModelState,
    backup,
    load_checkpoint,
    load_modules,
    load_optimizers,
    remove_model_temps,
    save_checkpoint,
)
from facelab.train import losses as L
from facelab.train.average import PREFIX as TRAINING_PREFIX
from facelab.train.average import WeightAverage, saved_count
from facelab.train.checkpoint import write_config
from facelab.train.device import autocast, grad_scaler, resolve_device
from facelab.train.nets import AutoEncoder, Side, create_autoencoder
from facelab.train.nets.discriminators import CodeDiscriminator, PatchDiscriminator
from facelab.train.nets.init import init_weights
from facelab.train.optim import LRDropout, create_optimizer
from facelab.train.options import TrainOptions
from facelab.train.perceptual import FeatureLoss
from facelab.train.preview import loss_plot, preview_grid, read_metrics, write_png
from facelab.train.prior import apply_prior, find_prior
from facelab.train.samples import (
    FaceSampleDataset,
    FaceSet,
    SampleOptions,
    infinite,
    make_loader,
    mouth_gap,
    mouth_match_strength,
)
from facelab.train.step import SideBatch, side_loss, style_terms

PREVIEW_ROWS = 4
LR_DECAY_DROP = 0.9  # lr_decay lowers the learning rate by this share of lr at the end of the budget
# runs.jsonl: one line per start and end of a training run in the model folder (the studio's resume marks
# and its view of a run started in another terminal), and one where warp_off turns random warp off;
# metrics.jsonl keeps its rows of numbers only
RUNS_FILE = "runs.jsonl"
RUNS_VERSION = 1


@dataclass
class Status:
    iteration: int
    losses: dict[str, float]
    it_per_s: float
    samples_per_s: float
    data_wait: float
    eta_s: float | None


def ddp_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    except KeyError:
        raise InputError("--ddp needs the environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR): "
                         "start with `torchrun --nproc_per_node N -m facelab.cli.main train ... --ddp`") from None


def _side(batch: dict[str, Tensor], device: torch.device) -> SideBatch:
    def mv(t: Tensor) -> Tensor:
        return t.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    return SideBatch(mv(batch["warped"]), mv(batch["target"]), mv(batch["mask"]), mv(batch["em_mask"]))


class LossWindow:
    """The losses of the steps since the last log, kept as tensors on the device: they are read on the host
    (one transfer) only when logged, or before a save, so the loop does not wait for the device each step.
    Reading checks every step's losses in order, so a divergence is reported at the iteration it happened."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, dict[str, Tensor]]] = []  # (iteration, losses) not yet read
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, iteration: int, losses: dict[str, Tensor]) -> None:
        self.pending.append((iteration, losses))

    def read(self) -> None:
        """Move the pending losses to the host and add them up; InputError when one is not finite."""
        if not self.pending:
            return
        rows = torch.stack([torch.stack(list(losses.values())) for _, losses in self.pending]).tolist()
        for (iteration, losses), values in zip(self.pending, rows, strict=True):
            if not all(math.isfinite(v) for v in values):
                raise InputError(f"training diverged at iteration {iteration} (loss is not finite); "
                                 "lower --lr, use --clipgrad or --precision fp32")
            for k, v in zip(losses, values, strict=True):
                self.sums[k] = self.sums.get(k, 0.0) + v
            self.count += 1
        self.pending = []

    def mean_and_reset(self) -> tuple[dict[str, float], int]:
        """(the mean of each loss over the window, the number of steps), and a new window."""
        self.read()
        avg, n = {k: v / self.count for k, v in self.sums.items()}, self.count
        self.sums, self.count = {}, 0
        return avg, n


class Trainer:
    def __init__(self, model_dir: Path, opts: TrainOptions, src_dir: Path, dst_dir: Path, *,
                 previous: TrainOptions | None = None, ddp: bool = False) -> None:
        self.model_dir = Path(model_dir)
        self.opts = opts
        self.ddp = ddp
        self._setup_process()
        # one trainer per model folder (DDP: the main rank writes it); the facesets are read, not changed
        wants = [Want(Path(src_dir), shared=True), Want(Path(dst_dir), shared=True)]
        self._locks = hold(self, ([Want(self.model_dir)] if self.is_main else []) + wants, "train")
        try:
            torch.manual_seed(opts.seed)
            self._setup_data(src_dir, dst_dir)
            self._setup_nets()
            self._resume_or_create(previous)
            self._wrap()
        except BaseException:
            self._locks.release()
            raise
        self.preview_batch: tuple[Tensor, Tensor] | None = None  # built on the first preview
        self.losses = LossWindow()
        self._stop = False
        self._budget: tuple[int | None, float | None] = (None, None)  # this run's end: (iteration, elapsed_s)
        self._progress = 0.0  # through the budget, 0..1 (lr_decay)

    # -- setup: process, data, networks, state ------------------------------------------------------

    def _setup_process(self) -> None:
        """Rank, world and device (DDP from torchrun's environment), and the per-process batch."""
        if self.ddp:
            self.rank, self.world, local_rank = ddp_env()
        else:
            self.rank, self.world, local_rank = 0, 1, 0
        self.device = resolve_device(self.opts.device, local_rank)
        if self.ddp and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.is_main = self.rank == 0
        if self.opts.batch_size % self.world:
            raise InputError(f"batch size {self.opts.batch_size} does not split evenly over {self.world} processes")
        self.batch = self.opts.batch_size // self.world

    def _setup_data(self, src_dir: Path, dst_dir: Path) -> None:
        """The face sets, their sample datasets and loaders (pretraining reads src on both sides)."""
        opts = self.opts
        src_set = FaceSet(src_dir)
        dst_set = src_set if opts.pretrain else FaceSet(dst_dir)
        self.src_set, self.dst_set = src_set, dst_set
        # the mouth_match strength this run draws src's faces with (none when pretraining: one set)
        self.mouth_gap = 0.0 if opts.pretrain else mouth_gap(src_set.landmarks, dst_set.landmarks)
        self.mouth_match = 0.0 if opts.pretrain else mouth_match_strength(opts.mouth_match, self.mouth_gap)
        self._make_loaders(warp=opts.random_warp)

    def _make_loaders(self, warp: bool, seed_shift: int = 0) -> None:
        """Each side's sample dataset and endless loader, with or without random warp (``seed_shift`` moves
        the seeds, so loaders made again mid-run do not replay the first batches)."""
        opts = self.opts
        src_set, dst_set = self.src_set, self.dst_set
        self.warping = warp
        self.src_data = FaceSampleDataset(src_set, self._sample_options("src", warp),
                                          ct_reference=dst_set if opts.ct_mode != "none" else None)
        self.dst_data = FaceSampleDataset(dst_set, self._sample_options("dst", warp))
        pin = self.device.type == "cuda"
        dist_arg = (self.rank, self.world) if self.ddp else None
        # src's mouth openings drawn towards dst's proportions (``mouth_match``; not when pretraining: one set)
        match = (dst_set.landmarks, self.mouth_match) if self.mouth_match > 0 else None
        seed = opts.seed + seed_shift
        self.src_loader = make_loader(self.src_data, self.batch, opts.workers, seed, opts.uniform_yaw, pin,
                                      dist_arg, opts.uniform_mouth, match)
        self.dst_loader = make_loader(self.dst_data, self.batch, opts.workers, seed + 7919, opts.uniform_yaw,
                                      pin, dist_arg, opts.uniform_mouth)

    def _setup_nets(self) -> None:
        """The autoencoder (through the architecture registry), the discriminators and losses the options
        switch on, their optimisers and the gradient scaler."""
        opts = self.opts
        self.ae: AutoEncoder = create_autoencoder(opts.arch, opts.resolution, opts.ae_dims, opts.e_dims,
                                                  opts.d_dims, opts.d_mask_dims)
        self.ae.to(self.device)
        self.ae.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.features: FeatureLoss | None = None
        if opts.perceptual_power > 0:
            self.features = FeatureLoss().to(self.device)
            self.features.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.code_d: nn.Module | None = None
        self.gan_d: nn.Module | None = None
        if opts.true_face_power > 0:
            channels, _, side = self.ae.code_shape
            self.code_d = CodeDiscriminator(channels, side).to(self.device)
        if opts.gan_power > 0:
            self.gan_d = PatchDiscriminator(3, opts.resolution, opts.patch_size, opts.gan_dims).to(self.device)
        betas = (opts.beta1, opts.beta2)
        self.opt = create_optimizer(opts.optimizer, self.ae.parameters(), opts.lr, betas)
        self.opt_code = (create_optimizer(opts.optimizer, self.code_d.parameters(), opts.lr, betas)
                         if self.code_d is not None else None)
        self.opt_gan = (create_optimizer(opts.optimizer, self.gan_d.parameters(), opts.lr, betas)
                        if self.gan_d is not None else None)
        self.lr_dropout = LRDropout(list(self.ae.parameters()), opts.lr_dropout)
        self.scaler = grad_scaler(self.device, opts.precision)

    def _resume_or_create(self, previous: TrainOptions | None) -> None:
        """Resume from the folder's checkpoint, or initialise a new model (from a face prior when one fits);
        then (main process) write config.json and drop metrics logged after the checkpoint."""
        opts = self.opts
        self.state = ModelState()
        ckpt = load_checkpoint(self.model_dir)
        where = self.model_dir / "state.json"
        count = 0
        if ckpt is None:
            init_weights(self.ae, opts.init)
            prior = None if opts.from_scratch else find_prior(opts)
            if prior is not None:
                apply_prior(self.ae, prior)
                self.state.prior, self.state.pretrained = f"{prior.name} {prior.sha256}", True
            self.state.last_backup_at = time.time()  # first backup after backup_hours of training
        else:
            load_modules(self.modules(), ckpt.weights, where)
            load_optimizers(self.optimizers(), ckpt.opt_tensors, ckpt.opt_meta, where)
            count = saved_count(ckpt.opt_tensors, where)
            self.state = ckpt.state
            if previous is not None and previous.pretrain and not opts.pretrain:
                # pretraining ends: the swap proper starts counting from zero (as in DFL)
                self.state.iteration, self.state.pretrained = 0, True
        # with weight_average the weights file holds the average and the optimizer file the weights that train
        self.average = (WeightAverage(self.ae, opts.weight_average, count) if opts.weight_average > 0 else None)
        if ckpt is not None:  # the trained weights, where the run kept an average (else nothing is loaded)
            load_modules({f"{TRAINING_PREFIX}.ae": self.ae}, ckpt.opt_tensors, where)
        if self.is_main:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            remove_model_temps(self.model_dir)
            write_config(self.model_dir, opts)
            self._trim_metrics()

    def _wrap(self) -> None:
        """DDP and torch.compile wrappers of the networks that train."""
        self.model: nn.Module = self.ae
        if self.ddp:
            self.model = nn.parallel.DistributedDataParallel(self.ae)
            if self.code_d is not None:
                self.code_d = nn.parallel.DistributedDataParallel(self.code_d)
            if self.gan_d is not None:
                self.gan_d = nn.parallel.DistributedDataParallel(self.gan_d)
        if self.opts.compile:
            self.model = torch.compile(self.model)  # type: ignore[assignment]

    # -- setup helpers ----------------------------------------------------------------------------

    def _sample_options(self, side: Side, warp: bool) -> SampleOptions:
        """src samples flip with random_flip_src and take the colour transfer; each side (and rank) its own seed."""
        o = self.opts
        is_src = side == "src"
        return SampleOptions(resolution=o.resolution, face_type=o.face_type,
                             random_flip=o.random_flip_src if is_src else o.random_flip_dst,
                             random_warp=warp, random_hsv_power=o.random_hsv_power,
                             ct_mode=o.ct_mode if is_src else "none", uniform_yaw=o.uniform_yaw,
                             uniform_mouth=o.uniform_mouth, skin_mask=o.skin_mask,
                             seed=o.seed * 1000 + (1 if is_src else 2) + 100 * self.rank)

    def _preview_batch(self) -> tuple[Tensor, Tensor]:
        plain = SampleOptions(resolution=self.opts.resolution, face_type=self.opts.face_type, random_flip=False,
                              random_warp=False, scale_range=0.0, rotation_deg=0.0, shift=0.0, seed=0)
        out = []
        for faces in (self.src_set, self.dst_set):
            ds = FaceSampleDataset(faces, plain)
            idx = [int(i) for i in torch.linspace(0, len(faces) - 1, PREVIEW_ROWS).round()]
            out.append(torch.stack([ds[i]["target"] for i in idx]))
        return out[0], out[1]

    def modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"ae": self.ae}
        if self.code_d is not None:
            mods["code_d"] = _unwrap(self.code_d)
        if self.gan_d is not None:
            mods["gan_d"] = _unwrap(self.gan_d)
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"opt": self.opt}
        if self.opt_code is not None:
            opts["opt_code"] = self.opt_code
        if self.opt_gan is not None:
            opts["opt_gan"] = self.opt_gan
        return opts

    # -- one step ---------------------------------------------------------------------------------

    def step(self, s: SideBatch, d: SideBatch) -> dict[str, Tensor]:
        """One iteration: forward, losses, backward and the optimiser steps. Returns the losses as detached
        0-d tensors on the device (reading them on the host waits for the device)."""
        o = self.opts
        styled = o.face_style_power > 0 or o.bg_style_power > 0
        if o.lr_warmup or o.lr_decay:
            lr = self.learning_rate()
            for group in self.opt.param_groups:
                group["lr"] = lr
        with autocast(self.device, o.precision):
            out = self.model(s.warped, d.warped, swap=styled)
        src_rec, src_mask = side_loss(out.src_rec.float(), out.src_mask.float(), s, o, self.features)
        dst_rec, dst_mask = side_loss(out.dst_rec.float(), out.dst_mask.float(), d, o, self.features)
        total = src_rec + dst_rec + src_mask + dst_mask
        logs = {"src_loss": _d(src_rec), "dst_loss": _d(dst_rec), "mask_loss": _d(src_mask + dst_mask)}
        if styled:
            assert out.swap is not None
            style = style_terms(out.swap.float(), d, o)
            total = total + style
            logs["style_loss"] = _d(style)
        if self.code_d is not None:
            with autocast(self.device, o.precision):
                g_tf = o.true_face_power * L.gan_generator_loss(self.code_d(out.dst_code).float())
            total = total + g_tf
            logs["true_face_g"] = _d(g_tf)
        m = L.blur_mask(s.mask, o.resolution) if self.gan_d is not None else s.mask
        if self.gan_d is not None:
            with autocast(self.device, o.precision):
                g_gan = o.gan_power * L.gan_generator_loss(self.gan_d(out.src_rec * m).float())
            total = total + g_gan
            logs["gan_g"] = _d(g_gan)
        self._backward_step(total, self.opt, list(self.ae.parameters()), lr_dropout=True)
        if self.average is not None:
            self.average.update(self.ae)
        if self.code_d is not None and self.opt_code is not None:
            with autocast(self.device, o.precision):
                d_tf = L.gan_discriminator_loss(self.code_d(out.src_code.detach()).float(),
                                                self.code_d(out.dst_code.detach()).float())
            self._backward_step(d_tf, self.opt_code, list(self.code_d.parameters()))
            logs["true_face_d"] = _d(d_tf)
        if self.gan_d is not None and self.opt_gan is not None:
            with autocast(self.device, o.precision):
                d_gan = L.gan_discriminator_loss(self.gan_d(s.target * m).float(),
                                                 self.gan_d(out.src_rec.detach() * m).float())
            self._backward_step(d_gan, self.opt_gan, list(self.gan_d.parameters()))
            logs["gan_d"] = _d(d_gan)
        logs["total"] = _d(total)
        return logs

    def _backward_step(self, loss: Tensor, opt: torch.optim.Optimizer, params: list[Tensor],
                       lr_dropout: bool = False) -> None:
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            self.scaler.unscale_(opt)
        else:
            loss.backward()  # type: ignore[no-untyped-call]
        if self.opts.clipgrad:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        if lr_dropout:
            self.lr_dropout.before_step()
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        if lr_dropout:
            self.lr_dropout.after_step()

    # -- the loop ---------------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self._stop = True

    @property
    def interrupted(self) -> bool:
        """The last run stopped on Ctrl+C (or request_stop) rather than by its budget."""
        return self._stop

    def _should_stop(self, run_its: int, iterations: int | None, deadline: float | None) -> bool:
        stop = self._stop
        if iterations is not None and run_its >= iterations:
            stop = True
        if deadline is not None and time.monotonic() >= deadline:
            stop = True
        if self.opts.target_iteration and self.state.iteration >= self.opts.target_iteration:
            stop = True
        progress = self._budget_progress()
        if self.ddp:  # every rank stops at the same iteration, and decays its learning rate alike
            flag = torch.tensor([1.0 if stop else 0.0, progress], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop, progress = bool(flag[0].item() > 0), float(flag[1].item())
        self._progress = progress
        return stop

    def _budget_progress(self) -> float:
        """How far this run is through its budget (0..1): its iterations (the model's own count, so a run
        resumed with the rest of a budget goes on where it stopped) or minutes of training time, whichever
        is further; 0 with no budget."""
        end_it, end_s = self._budget
        done = [self.state.iteration / end_it] if end_it else []
        if end_s:
            done.append(self.state.elapsed_s / end_s)
        return min(1.0, max(done, default=0.0))

    def _warp_due(self) -> bool:
        """Whether this step's samples are randomly warped: ``random_warp``, until the last ``warp_off`` share
        of the run's budget."""
        o = self.opts
        return o.random_warp and not (o.warp_off > 0 and self._progress >= 1.0 - o.warp_off)

    def learning_rate(self) -> float:
        """The learning rate of the next step: ``lr``, raised over the first ``lr_warmup`` iterations and
        lowered linearly to a tenth over the last ``lr_decay`` share of the run's budget."""
        o = self.opts
        scale = min(1.0, (self.state.iteration + 1) / o.lr_warmup) if o.lr_warmup else 1.0
        if o.lr_decay > 0:
            into = (self._progress - (1.0 - o.lr_decay)) / o.lr_decay
            scale *= 1.0 - LR_DECAY_DROP * min(1.0, max(0.0, into))
        return o.lr * scale

    def train(self, iterations: int | None = None, minutes: float | None = None,
              on_status: Callable[[Status], None] | None = None) -> ModelState:
        o = self.opts
        deadline = time.monotonic() + minutes * 60 if minutes is not None else None
        end_it = self.state.iteration + iterations if iterations is not None else o.target_iteration or None
        self._budget = (end_it, self.state.elapsed_s + minutes * 60 if minutes is not None else None)
        old_handler = None
        if self.is_main and _in_main_thread():
            old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        src_it, dst_it = infinite(self.src_loader), infinite(self.dst_loader)
        self.losses = LossWindow()
        last_save = time.monotonic()
        run_its = 0
        wait_s = step_s = 0.0
        self._record_run("start", resumed=self.state.iteration > 0 or self.state.saved_at > 0,
                         mouth_match=self.mouth_match)  # the strength used (mouth_match auto resolves per run)
        try:
            while not self._should_stop(run_its, iterations, deadline):
                warp = self._warp_due()
                if warp != self.warping:  # warp_off: the loaders are made again without warp
                    self._make_loaders(warp, seed_shift=self.state.iteration)
                    src_it, dst_it = infinite(self.src_loader), infinite(self.dst_loader)
                    self._record_run("warp", random_warp=warp)
                t0 = time.perf_counter()
                sb, db = next(src_it), next(dst_it)
                t1 = time.perf_counter()
                self.losses.add(self.state.iteration + 1, self.step(_side(sb, self.device), _side(db, self.device)))
                # the host waits for the device only here, once per log_every iterations
                window = self.losses.mean_and_reset() if (self.state.iteration + 1) % o.log_every == 0 else None
                t2 = time.perf_counter()
                wait_s += t1 - t0
                step_s += t2 - t1
                self.state.iteration += 1
                self.state.elapsed_s += t2 - t0
                run_its += 1
                if window is not None and self.is_main:
                    self._log(*window, run_its, iterations, deadline, wait_s, step_s, on_status)
                if window is not None:
                    wait_s = step_s = 0.0
                if self.is_main and o.preview_every and self.state.iteration % o.preview_every == 0:
                    self.write_preview()
                due = time.monotonic() - last_save >= o.autosave_minutes * 60 or (
                    o.autosave_iterations and self.state.iteration % o.autosave_iterations == 0)
                if due:
                    self.save()
                    last_save = time.monotonic()
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        self.save()
        if self.is_main and o.preview_every:
            self.write_preview()
        self._record_run("end", interrupted=self._stop)
        return self.state

    def _log(self, avg: dict[str, float], n: int, run_its: int, iterations: int | None, deadline: float | None,
             wait_s: float, step_s: float, on_status: Callable[[Status], None] | None) -> None:
        """The mean losses of the last ``n`` steps as a Status: metrics.jsonl, state.last_losses, ``on_status``."""
        elapsed = max(wait_s + step_s, 1e-9)
        status = Status(self.state.iteration, avg, n / elapsed, n * self.opts.batch_size / elapsed,
                        wait_s / elapsed, self._eta(run_its, iterations, deadline, n / elapsed))
        self.state.last_losses = {k: round(v, 6) for k, v in avg.items()}
        self._log_metrics(status)
        if on_status is not None:
            on_status(status)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True

    def _eta(self, run_its: int, iterations: int | None, deadline: float | None, rate: float) -> float | None:
        left: list[float] = []
        if iterations is not None:
            left.append((iterations - run_its) / max(rate, 1e-9))
        if self.opts.target_iteration:
            left.append((self.opts.target_iteration - self.state.iteration) / max(rate, 1e-9))
        if deadline is not None:
            left.append(deadline - time.monotonic())
        return max(0.0, min(left)) if left else None

    # -- output ------------------------------------------------------------------------------------

    def save(self) -> None:
        """Save a checkpoint (main process), and rotate a backup when one is due. The losses not yet read
        are checked first, so diverged weights are never saved."""
        self.losses.read()
        if not self.is_main:
            return
        o = self.opts
        backup_due = o.backup_hours > 0 and time.time() - self.state.last_backup_at >= o.backup_hours * 3600
        if backup_due:
            self.state.last_backup_at = time.time()
        modules, training = self.modules(), None
        if self.average is not None:
            modules["ae"], training = self.average.model, self.average.training_state(self.ae, "ae")
        save_checkpoint(self.model_dir, self.state, modules, self.optimizers(), training)
        if backup_due:
            backup(self.model_dir, self.state, o.backup_keep)

    @torch.no_grad()
    def write_preview(self) -> Path | None:
        if not self.is_main:
            return None
        if self.preview_batch is None:
            self.preview_batch = self._preview_batch()
        src, dst = (t.to(self.device) for t in self.preview_batch)
        net = self.average.model if self.average is not None else self.ae  # what merge will use
        with autocast(self.device, self.opts.precision):
            out = net(src, dst)
        assert out.swap is not None and out.swap_mask is not None
        grid = preview_grid([src, out.src_rec, out.src_mask, dst, out.dst_rec, out.dst_mask, out.swap, out.swap_mask],
                            self.state.iteration)
        folder = self.model_dir / "previews"
        path = folder / f"preview_{self.state.iteration:08d}.png"
        write_png(path, grid)
        write_png(folder / "latest.png", grid)
        write_png(folder / "loss.png", loss_plot(read_metrics(self.model_dir / "metrics.jsonl")))
        return path

    def _log_metrics(self, s: Status) -> None:
        row = {"iteration": s.iteration, "time": round(time.time(), 3), **{k: round(v, 6) for k, v in s.losses.items()},
               "it_per_s": round(s.it_per_s, 4), "samples_per_s": round(s.samples_per_s, 3),
               "data_wait": round(s.data_wait, 4)}
        append_line(self.model_dir / "metrics.jsonl", json.dumps(row))

    def _record_run(self, event: str, **extra: Any) -> None:
        """A line of runs.jsonl: ``{"version", "event": "start"|"end"|"warp", "iteration", "time", "pid", ...}``."""
        if not self.is_main:
            return
        row = {"version": RUNS_VERSION, "event": event, "iteration": self.state.iteration,
               "time": round(time.time(), 3), "pid": os.getpid(), **extra}
        append_line(self.model_dir / RUNS_FILE, json.dumps(row))

    def _trim_metrics(self) -> None:
        """After a crash, drop metrics logged after the checkpoint we resumed from."""
        path = self.model_dir / "metrics.jsonl"
        rows = read_metrics(path)
        kept = [r for r in rows if r["iteration"] <= self.state.iteration]
        if len(kept) != len(rows) or (path.exists() and not path.read_bytes().endswith(b"\n")):
            write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))

    def close(self) -> None:
        if self.ddp and dist.is_initialized():
            dist.destroy_process_group()
        self._locks.release()


def _d(t: Tensor) -> Tensor:
    return t.detach()


def _unwrap(m: nn.Module) -> nn.Module:
    inner = getattr(m, "module", m)
    assert isinstance(inner, nn.Module)
    return inner


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
