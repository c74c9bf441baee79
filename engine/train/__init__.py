"""Training on real + synthetic data (``synthclone train``), read top to bottom:

* ``config``      — ``TrainConfig``: model, data, optim, schedule, loss, augment, run sections
* ``models``      — torchvision/timm models by name, DualBN conversion (seed 003 §3.3)
* ``data``        — the loader contract the loop needs, the real loaders, tensors in memory
* ``augment``     — on-device RandAugment, per-domain mixup/cutmix (timm), DINO multi-crop
* ``loss``        — ``(Σ_real CE + λ·Σ_syn CE) / B`` with real/synthetic metrics
* ``optim``       — optimizers (timm's SGD/LARS/AdamW/LAMB) and per-step LR schedules
* ``loop``        — the training loop (AMP, accumulation, EMA, progressive resizing)
* ``checkpoint``  — atomic checkpoints, exact resume, real-branch export
* ``distributed`` — DDP under torchrun/SLURM, rank-0 writes
* ``metrics``     — JSONL, TensorBoard when installed, the progress bar, the plot
* ``evaluate``    — top-1 on a held-out loader
* ``plots``       — ``curves.png``: loss and accuracy per domain, held-out top-1
* ``runner``      — ``train(cfg, out)``: one run, top to bottom
* ``cli``         — ``synthclone train CONFIG.yaml [key=value ...]``
* ``toydata``     — procedurally drawn fish: the demo's stand-in for real photos
"""
