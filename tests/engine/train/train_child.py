"""Child process for the resume and DDP tests: a tiny dual-domain run on tensors in memory.

usage: python -m tests.engine.train.train_child OUT [--resume] [--lockstep] [--plain]
                                                   [--betons REAL SYN]
  --lockstep: after each optimizer step print "step N" and wait for a line on stdin, so the
              parent can SIGKILL the run at an exact step
  --plain:    no random augmentation/dropout (the DDP-vs-one-process comparison)
  --betons:   train on these .beton files through the FFCV dual-domain loader that
              ``synthclone train`` builds (default random-resized crop and flip, 16 px)
Under torchrun each rank trains its shard and saves its final weights to OUT/rank<R>.pt.
"""
import os
import sys

import torch


def make_data(n_real=32, n_syn=48, size=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    yr = torch.arange(n_real) % classes
    ys = torch.arange(n_syn) % classes
    # class-dependent means, so the model learns something
    xr = torch.randn(n_real, 3, size, size, generator=g) + yr.view(-1, 1, 1, 1) * 0.5
    xs = torch.randn(n_syn, 3, size, size, generator=g) * 1.5 + ys.view(-1, 1, 1, 1) * 0.5
    return (xr, yr), (xs, ys)


def child_config(plain: bool = False, **run):
    from engine.train.config import (AugmentConfig, DataConfig, ModelConfig, OptimConfig,
                                     RunConfig, ScheduleConfig, TrainConfig)

    augment = AugmentConfig() if plain else AugmentConfig(randaugment_ops=2, mixup_alpha=0.8,
                                                          cutmix_alpha=1.0)
    return TrainConfig(
        model=ModelConfig(name="resnet18", dual_bn=True, dropout=0.0 if plain else 0.25,
                          sync_bn=True),
        data=DataConfig(real="mem", synthetic="mem", batch_size=8),
        optim=OptimConfig(lr=0.05, accum_steps=1 if plain else 2, no_wd_bn_bias=True),
        schedule=ScheduleConfig(epochs=2, warmup_epochs=0.5),
        augment=augment,
        run=RunConfig(device="cpu", threads=1, log_every=2, checkpoint_every=2, progress=False,
                      ema=not plain, ema_decay=0.9, seed=7, **run))


def beton_config(cfg, real: str, syn: str):
    """``cfg`` reading ``real`` and ``syn`` through the loaders (crop and flip left at their
    defaults: RandomResizedCrop 8-100 %, flip p 0.5)."""
    import dataclasses

    from engine.train.config import DataConfig

    data = DataConfig(real=real, synthetic=syn, batch_size=8, resolution=16, eval_resolution=16,
                      workers=1)
    assert (data.crop_scale, data.flip) == ((0.08, 1.0), True)
    return dataclasses.replace(cfg, data=data)


def main(argv):
    from engine.train.data import EvalTensorSource, TensorSource
    from engine.train.distributed import launcher_env
    from engine.train.runner import micro_batch_size, train

    out = argv[0]
    plain = "--plain" in argv
    cfg = child_config(plain)
    rank, world, _ = launcher_env() or (0, 1, 0)
    if "--betons" in argv:
        at = argv.index("--betons")
        cfg = beton_config(cfg, argv[at + 1], argv[at + 2])
        loaders = None  # built by engine.train.data.build_loaders, as `synthclone train` does
    else:
        real, syn = make_data()
        src = TensorSource(real, syn, batch_size=micro_batch_size(cfg, world),
                           synthetic_share=0.5, seed=cfg.run.seed, rank=rank, world_size=world)
        ev = EvalTensorSource(real[0][:16], real[1][:16], 8, rank=rank, world_size=world)
        loaders = (src, ev)

    def lockstep(event, trainer):
        if event == "step":
            print(f"step {trainer.progress.step}", flush=True)
            sys.stdin.readline()

    callbacks = [lockstep] if "--lockstep" in argv else []
    captured = {}
    callbacks.append(lambda event, t: captured.setdefault("trainer", t))
    train(cfg, out, resume="--resume" in argv, loaders=loaders, callbacks=callbacks)
    core = captured["trainer"].core
    torch.save({k: v.clone() for k, v in core.state_dict().items()},
               os.path.join(out, f"rank{rank}.pt"))
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
