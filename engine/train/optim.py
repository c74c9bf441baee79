"""Optimizers (timm's factory) and the per-step schedules: learning rate and resolution.

Schedules are pure functions of the optimizer step, so a resumed run needs only the step to
continue them exactly (no scheduler object state to restore).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from engine.train.config import DataConfig, OptimConfig, ScheduleConfig

# our name -> timm's (timm's "sgd" is Nesterov SGD, "momentum" plain momentum SGD)
_TIMM_NAMES = {"lars": "lars", "adamw": "adamw", "lamb": "lamb"}


def build_optimizer(cfg: OptimConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD-momentum / LARS / AdamW / LAMB from ``timm.optim.create_optimizer_v2``; with
    ``no_wd_bn_bias`` the 1-D parameters (norm weights, biases) get no weight decay."""
    from timm.optim import create_optimizer_v2

    if cfg.name == "sgd":
        opt, extra = ("sgd" if cfg.nesterov else "momentum"), {}
    else:
        opt = _TIMM_NAMES[cfg.name]
        extra = {"betas": tuple(cfg.betas), "eps": cfg.eps} if cfg.name in ("adamw", "lamb") else {}
    return create_optimizer_v2(model, opt=opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                               momentum=cfg.momentum, filter_bias_and_bn=cfg.no_wd_bn_bias,
                               **extra)


class LRSchedule:
    """Learning-rate factor for optimizer step ``s`` (0-based) of ``epochs * steps_per_epoch``.

    * ``cosine``: linear warmup from ``warmup_start_factor`` to 1, then a half cosine to
      ``final_lr_factor`` at the last step (seed 003 Tables 5/6, seed 002 §5);
    * ``step``: warmup, then ``gamma ** (epoch // step_epochs)`` (torchvision's StepLR);
    * ``cyclic``: ffcv-imagenet's triangle, ``np.interp(epoch, [0, peak, epochs],
      [cyclic_start_factor, 1, 0])`` at fractional epochs (ffcv interpolates per iteration);
    * ``constant``: warmup, then 1.
    """

    def __init__(self, cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.cfg, self.base_lr, self.steps_per_epoch = cfg, base_lr, steps_per_epoch
        self.total_steps = cfg.epochs * steps_per_epoch
        if cfg.warmup_fraction is not None:
            warmup = cfg.warmup_fraction * self.total_steps
        else:
            warmup = cfg.warmup_epochs * steps_per_epoch
        self.warmup_steps = int(round(warmup)) if cfg.name != "cyclic" else 0

    def factor(self, step: int) -> float:
        c, w = self.cfg, self.warmup_steps
        if step < w:
            return c.warmup_start_factor + (1 - c.warmup_start_factor) * step / w
        epoch = step / self.steps_per_epoch
        if c.name == "cosine":
            progress = min(1.0, (step - w) / max(1, self.total_steps - w))
            return c.final_lr_factor + (1 - c.final_lr_factor) * 0.5 * (1 + math.cos(
                math.pi * progress))
        if c.name == "step":
            return c.gamma ** (int(epoch) // c.step_epochs)
        if c.name == "cyclic":
            return float(np.interp(epoch, [0, c.peak_epoch, c.epochs],
                                   [c.cyclic_start_factor, 1.0, 0.0]))
        return 1.0

    def lr(self, step: int) -> float:
        return self.base_lr * self.factor(step)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every param group's lr for ``step`` (timm's ``lr_scale`` honoured); returns it."""
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr


def resolution_at(cfg: DataConfig, epoch: int) -> int:
    """Training resolution of ``epoch`` (ffcv-imagenet ``get_resolution``): ``min_resolution``
    until ``ramp_start_epoch``, ``resolution`` from ``ramp_end_epoch``, linear in between,
    rounded to a multiple of 32. Without ``min_resolution``: always ``resolution``."""
    lo, hi = cfg.min_resolution, cfg.resolution
    if lo is None:
        return hi
    if epoch <= cfg.ramp_start_epoch:
        return lo
    if epoch >= cfg.ramp_end_epoch:
        return hi
    res = np.interp(epoch, [cfg.ramp_start_epoch, cfg.ramp_end_epoch], [lo, hi])
    return int(np.round(res / 32)) * 32
