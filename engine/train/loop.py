"""The training loop: one :class:`Trainer` owns the model, optimizer, schedule, precision,
EMA, augmentations and meters, and can save and restore all of it (``checkpoint.py``).

    trainer = Trainer(cfg, info, model, train_loader, eval_loader, num_classes, run_dir)
    trainer.restore(checkpoint)          # optional: an exact resume
    summary = trainer.fit()

Per optimizer step: ``accum_steps`` micro-batches (augment on the device -> forward under
``dual_bn_split`` and autocast -> the λ loss / accum -> backward, DDP-synchronised on the
last), then unscale + clip, step, EMA update, LR for the next step. Checkpoints every
``checkpoint_every`` steps and at epoch ends; metrics every ``log_every`` steps.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass

import torch

from engine.config import to_dict
from engine.errors import ConfigError
from engine.train import checkpoint as ckpt_io
from engine.train.augment import BatchRandAugment, DomainMixup, MultiCrop, batch_keys
from engine.train.config import TrainConfig
from engine.train.distributed import DistInfo, all_gather_object, all_reduce_sum, barrier
from engine.train.evaluate import evaluate
from engine.train.loss import DomainMeter, multi_view_loss
from engine.train.metrics import MetricsLog, ProgressBar, StepClock
from engine.ops.dual_bn import dual_bn_split
from engine.train.optim import LRSchedule, build_optimizer, resolution_at


@dataclass
class Progress:
    epoch: int = 0
    """Current epoch (0-based)."""
    batch: int = 0
    """Micro-batches of this epoch already trained on (the loader position)."""
    step: int = 0
    """Optimizer steps done (the schedule position)."""
    images: int = 0
    """Training rows seen, all processes together."""


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: fp32). See ``RunConfig.amp``."""
    amp = cfg.run.amp
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("run.amp=fp16 needs CUDA; use bf16 or off on the CPU")
        return torch.float16
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


class Trainer:
    def __init__(self, cfg: TrainConfig, info: DistInfo, model: torch.nn.Module, train_loader,
                 eval_loader=None, num_classes: int = 1000, run_dir: str | None = None,
                 callbacks=()):
        self.cfg, self.info, self.num_classes = cfg, info, num_classes
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.run_dir = run_dir if info.is_main else None
        self.callbacks = list(callbacks)
        self.device = info.device
        self.accum = cfg.optim.accum_steps
        self.steps_per_epoch = len(train_loader) // self.accum
        if self.steps_per_epoch < 1:
            raise ConfigError(f"an epoch of {len(train_loader)} batches makes no optimizer step "
                              f"with optim.accum_steps={self.accum}: use more data or a smaller "
                              "data.batch_size")
        self.total_steps = cfg.schedule.epochs * self.steps_per_epoch
        self.stop_step = min(self.total_steps, cfg.run.max_steps or self.total_steps)
        # 1. the model on its device, in its memory format, wrapped for DDP / compile
        self.channels_last = (cfg.run.channels_last if cfg.run.channels_last is not None
                              else self.device.type == "cuda")
        self.core = model.to(self.device)
        if self.channels_last:
            self.core = self.core.to(memory_format=torch.channels_last)
        self.model = self.core
        if info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.core, device_ids=ids)
        if cfg.run.compile:
            self.model = torch.compile(self.model)
        # 2. optimizer, schedule, precision, EMA
        self.optimizer = build_optimizer(cfg.optim, self.core)
        self.schedule = LRSchedule(cfg.schedule, cfg.optim.lr, self.steps_per_epoch)
        self.amp = amp_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp == torch.float16)
        self.ema = None
        if cfg.run.ema:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.core, decay=cfg.run.ema_decay)
        # 3. augmentations on the device
        a = cfg.augment
        self.randaug = BatchRandAugment(a.randaugment_ops, a.randaugment_magnitude) \
            if a.randaugment_ops else None
        self.mixup = DomainMixup(num_classes, a.mixup_alpha, a.cutmix_alpha, a.mixup_prob,
                                 a.mixup_switch_prob, cfg.loss.label_smoothing) if a.mixing else None
        self.multicrop = MultiCrop(a.local_crops, a.global_crop_size, a.local_crop_size,
                                   a.global_crop_scale, a.local_crop_scale) if a.local_crops else None
        # 4. bookkeeping
        self.synthetic_weight = cfg.synthetic_weight
        self.progress = Progress()
        self.log_meter = DomainMeter(self.synthetic_weight, self.device)
        self.epoch_meter = DomainMeter(self.synthetic_weight, self.device)
        self.clock = StepClock()
        self.log = MetricsLog(self.run_dir, cfg.run.tensorboard)
        self.last_checkpoint_step: int | None = None
        self.last_eval: dict | None = None

    # ------------------------------------------------------------------ helpers
    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _emit(self, event: str) -> None:
        for cb in self.callbacks:
            cb(event, self)

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.core

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything an exact resume needs (all ranks call this: RNG states are gathered)."""
        rng = all_gather_object(ckpt_io.rng_state(), self.info)
        return {
            "config": to_dict(self.cfg),
            "num_classes": self.num_classes,
            "world_size": self.info.world_size,
            "progress": asdict(self.progress),
            "model": self.core.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "meters": {"log": self.log_meter.totals.cpu(), "epoch": self.epoch_meter.totals.cpu()},
            "rng": rng,
            "last_eval": self.last_eval,
        }

    def save_checkpoint(self) -> None:
        state = self.state_dict()
        if self.run_dir:
            ckpt_io.save(os.path.join(self.run_dir, ckpt_io.CHECKPOINT), state,
                         previous_step=self.last_checkpoint_step)
        self.last_checkpoint_step = self.progress.step
        barrier(self.info)
        self._emit("checkpoint")

    def restore(self, ckpt: dict, path: str = ckpt_io.CHECKPOINT) -> None:
        """Load a checkpoint of this run (the config must match; see ``RESUME_MAY_CHANGE``)."""
        ckpt_io.check_compatible(ckpt["config"], to_dict(self.cfg), path)
        if ckpt["world_size"] != self.info.world_size:
            raise ckpt_io.CheckpointError(
                f"{path} was written by {ckpt['world_size']} processes; resume it with the same "
                f"number (now {self.info.world_size}) so the data order continues exactly")
        self.core.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            self.ema.module.load_state_dict(ckpt["ema"])
        self.log_meter.totals.copy_(ckpt["meters"]["log"])
        self.epoch_meter.totals.copy_(ckpt["meters"]["epoch"])
        self.progress = Progress(**ckpt["progress"])
        self.last_checkpoint_step = self.progress.step
        self.last_eval = ckpt.get("last_eval")
        self._rng_to_restore = ckpt["rng"][self.info.rank]
        self.log.truncate_after(self.progress.step)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        p = self.progress
        bar = ProgressBar(self.cfg.run.progress and self.info.is_main, self.stop_step, p.step)
        t0, images0 = time.perf_counter(), p.images
        try:
            while p.step < self.stop_step:
                self._train_epoch(bar)
                if p.batch == 0:  # the epoch ran to its end
                    self._end_of_epoch()
        finally:
            bar.close()
        elapsed = time.perf_counter() - t0
        if self.eval_loader is not None and (self.last_eval is None
                                             or self.last_eval.get("step") != p.step):
            self._evaluate()
        return {"steps": p.step, "epochs_done": p.epoch, "images": p.images,
                "images_per_s": (p.images - images0) / max(elapsed, 1e-9),
                "seconds": elapsed, "eval": self.last_eval,
                "train": self.epoch_meter.compute(all_reduce_sum(self.epoch_meter.totals,
                                                                 self.info))}

    def _train_epoch(self, bar: ProgressBar) -> None:
        p = self.progress
        loader = self.train_loader
        loader.set_epoch(p.epoch, p.batch)
        res = resolution_at(self.cfg.data, p.epoch)
        if self.cfg.data.min_resolution is not None:
            if not hasattr(loader, "set_image_size"):
                raise ConfigError("progressive resizing (data.min_resolution) needs a loader "
                                  "that can change its image size")
            loader.set_image_size(res)
        it = iter(loader)
        if getattr(self, "_rng_to_restore", None) is not None:
            ckpt_io.set_rng_state(self._rng_to_restore)  # after the fast-forward: exact resume
            self._rng_to_restore = None
        self.model.train()
        end = self.steps_per_epoch * self.accum
        self.clock.reset()
        while p.batch < end and p.step < self.stop_step:
            self.train_step(self._micro_batches(it))
            self._emit("step")
            if p.step % self.cfg.run.log_every == 0 or p.step == self.stop_step:
                self._log_train(bar)
            else:
                bar.update(1)
            every = self.cfg.run.checkpoint_every
            if (every and p.step % every == 0) or p.step == self.stop_step:
                if p.batch == end:
                    break  # the epoch end writes this one
                self.save_checkpoint()
        if p.batch == end:
            p.epoch, p.batch = p.epoch + 1, 0

    def _micro_batches(self, it):
        """The next ``accum_steps`` batches of ``it``, timing the wait for each (fetched one at
        a time: FFCV reuses a batch's memory two batches later)."""
        for _ in range(self.accum):
            t = time.perf_counter()
            batch = next(it)
            self.clock.waited(time.perf_counter() - t, len(batch[1]) * self.info.world_size)
            self.progress.batch += 1
            yield batch

    def train_step(self, batches) -> None:
        """One optimizer step over ``batches``: ``accum_steps`` micro-batches (an iterable,
        consumed one at a time; DDP synchronises gradients on the last)."""
        for i, batch in enumerate(batches):
            self._forward_backward(batch, last=i == self.accum - 1)
        self._optimizer_step()

    def _prepare(self, batch):
        """Device, augmentations, views: ``[(images, targets, num_real)], labels, num_real``."""
        images, labels, k = batch
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        if self.randaug is not None:
            images = self.randaug(images)
        targets = labels
        if self.mixup is not None:
            images, targets = self.mixup(images, labels, k)
        if self.multicrop is not None:  # crops keyed by (seed, epoch, sample): see augment.py
            keys = batch_keys(batch, self.cfg.run.seed, self.progress.epoch,
                              (self.progress.batch - 1) * len(labels), self.info.rank)
            views = self.multicrop(images, labels, k, keys)
        else:
            views = [(images, targets, k)]
        return [(x.contiguous(memory_format=fmt), t, n) for x, t, n in views], labels, k

    def _forward_backward(self, batch, last: bool) -> None:
        views, labels, k = self._prepare(batch)
        self.image_size = int(batch[0].shape[-1])
        sync = contextlib.nullcontext()
        if self.info.enabled and not last:
            sync = self.model.no_sync()
        with sync:
            with self.autocast():
                outs = []
                for x, t, n in views:
                    with dual_bn_split(self.core, n):
                        outs.append((self.model(x), t, n))
                out = multi_view_loss(outs, self.synthetic_weight, self.cfg.loss.label_smoothing)
            self.scaler.scale(out.loss / self.accum).backward()
        logits0 = outs[0][0].detach()
        for meter in (self.log_meter, self.epoch_meter):
            meter.update(out.per_sample[0], logits0, labels, k)
        self.progress.images += len(labels) * self.info.world_size

    def _optimizer_step(self) -> None:
        p = self.progress
        self.lr = self.schedule.apply(self.optimizer, p.step)
        if self.cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.core.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        p.step += 1
        if self.ema is not None:
            self.ema.update(self.core, step=p.step)

    # ------------------------------------------------------------------ reporting
    def _log_train(self, bar: ProgressBar) -> None:
        p = self.progress
        stats = self.log_meter.compute(all_reduce_sum(self.log_meter.totals, self.info))
        self.log_meter.reset()
        speed = self.clock.report()
        rec = {"kind": "train", "step": p.step, "epoch": p.epoch,
               "epoch_float": p.epoch + p.batch / max(1, len(self.train_loader)),
               "lr": self.lr, "image_size": self.image_size, **stats, **speed}
        if self.info.is_main:
            self.log.write(rec)
        n = p.step - bar.bar.n if bar.bar is not None else 0
        bar.update(n, loss=stats["objective"], img_s=speed["images_per_s"],
                   data=f"{100 * speed['data_wait_share']:.0f}%")

    def _end_of_epoch(self) -> None:
        p = self.progress
        done = p.epoch  # epochs completed
        stats = self.epoch_meter.compute(all_reduce_sum(self.epoch_meter.totals, self.info))
        if self.info.is_main:
            self.log.write({"kind": "epoch", "step": p.step, "epoch": done, **stats})
        every = self.cfg.run.eval_every
        last = p.step >= self.stop_step
        if self.eval_loader is not None and ((every and done % every == 0) or last):
            self._evaluate()
        if not last:
            self.epoch_meter.reset()
        self.save_checkpoint()

    def _evaluate(self) -> None:
        ev = evaluate(self.eval_model, self.eval_loader, self.device, self.info,
                      autocast=self.autocast, channels_last=self.channels_last,
                      num_classes=self.num_classes)
        self.last_eval = {"step": self.progress.step, "epoch": self.progress.epoch, **ev}
        if self.info.is_main:
            self.log.write({"kind": "eval", **self.last_eval,
                            "ema": self.ema is not None})

