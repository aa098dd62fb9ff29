"""Optimisers (Adam, AdaBelief, RMSprop) and learning-rate dropout."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from facelab.core.choices import OptimizerName


def _evaluate(closure: Callable[[], float] | None) -> float | None:
    """The loss of an optimizer step's closure (re-evaluated with gradients on), if one is given."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class AdaBelief(Optimizer):
    """AdaBelief (Zhuang et al., NeurIPS 2020): Adam whose second moment tracks the variance of the
    gradient around its running mean, the "belief" in the gradient, rather than its raw square."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-16) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = _evaluate(closure)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_var"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, s = state["exp_avg"], state["exp_avg_var"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                diff = g - m
                s.mul_(b2).addcmul_(diff, diff, value=1 - b2).add_(group["eps"])
                bc1, bc2 = 1 - b1**t, 1 - b2**t
                denom = (s / bc2).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / bc1)
        return loss


def _memory_order(t: Tensor) -> Tensor:
    """A 1-D view of a dense tensor in its memory order (contiguous or channels-last), no copy."""
    if t.is_contiguous():
        return t.view(-1)
    return t.permute(0, 2, 3, 1).view(-1)  # channels last: (N, H, W, C) is the memory order


def _dense_like(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` in the memory order of ``ref`` (contiguous or channels-last): a copy only when it is not."""
    fmt = torch.contiguous_format if ref.is_contiguous() else torch.channels_last
    return t if t.is_contiguous(memory_format=fmt) else t.contiguous(memory_format=fmt)


def _channels_last(t: Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


class ChannelsLastAdam(torch.optim.Adam):
    """PyTorch's fused Adam kernel for CPU weights stored channels-last, without layout copies.

    The fused kernel wants contiguous tensors, so ``torch.optim.Adam(fused=True)`` copies every
    channels-last weight, gradient and moment to NCHW and back each step. Adam is elementwise, so here
    the kernel gets 1-D views in memory order instead, with the moments kept in the weight's layout:
    bit for bit the same result as torch's fused Adam (test), without the copies (docs/training.md has
    the measured steps). A gradient in
    another layout than its weight is first copied into the weight's layout: torch 2.13's fused CPU
    kernel mis-updates channels-last weights given NCHW gradients (off by 0.01 after 5 steps against
    the reference Adam, test), which this path avoids. State keys and shapes are torch.optim.Adam's, so
    checkpoints are interchangeable.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, betas: tuple[float, float]) -> None:
        super().__init__(params, lr=lr, betas=betas)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = _evaluate(closure)
        for group in self.param_groups:
            params, grads, avgs, sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                for key in ("exp_avg", "exp_avg_sq"):  # moments loaded from a checkpoint come contiguous
                    state[key] = _dense_like(state[key], p)
                params.append(_memory_order(p))
                grads.append(_memory_order(_dense_like(p.grad, p)))
                avgs.append(_memory_order(state["exp_avg"]))
                sqs.append(_memory_order(state["exp_avg_sq"]))
                steps.append(state["step"])
            if not params:
                continue
            b1, b2 = group["betas"]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, avgs, sqs, [], steps, lr=float(group["lr"]), beta1=b1, beta2=b2,
                               weight_decay=float(group["weight_decay"]), eps=float(group["eps"]), amsgrad=False,
                               maximize=False)
        return loss


def create_optimizer(name: OptimizerName | str, params: Iterable[Tensor], lr: float,
                     betas: tuple[float, float]) -> Optimizer:
    """The optimizer by name. Adam uses PyTorch's fused kernel where the weights are float32 on the CPU or a
    CUDA device (one pass over all weights instead of ~10 small ops per tensor), through ChannelsLastAdam
    for channels-last CPU weights; RMSprop the multi-tensor path."""
    params = list(params)
    if name == "adam":
        fused = bool(params) and all(p.dtype == torch.float32 and p.device.type in ("cpu", "cuda") for p in params)
        if fused and all(p.device.type == "cpu" for p in params) and any(_channels_last(p) for p in params):
            return ChannelsLastAdam(params, lr=lr, betas=betas)
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None, foreach=None if fused else True)
    if name == "adabelief":
        return AdaBelief(params, lr=lr, betas=betas)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=betas[1], foreach=True)
    raise ValueError(f"unknown optimizer {name!r}")


class LRDropout:
    """Learning-rate dropout (Lin et al. 2019, as DFL's lr_dropout): each weight's update is kept with
    probability 1 - p, so every step moves a random subset of the weights."""

    def __init__(self, params: list[Tensor], p: float, generator: torch.Generator | None = None) -> None:
        self.params = params
        self.p = p
        self.generator = generator
        self._before: list[Tensor] = []

    def before_step(self) -> None:
        if self.p > 0:
            self._before = [q.detach().clone() for q in self.params]

    @torch.no_grad()
    def after_step(self) -> None:
        if self.p <= 0:
            return
        for q, old in zip(self.params, self._before, strict=True):
            keep = torch.rand(q.shape, generator=self.generator, device="cpu").to(q.device) >= self.p
            q.copy_(torch.where(keep, q, old))
        self._before = []
