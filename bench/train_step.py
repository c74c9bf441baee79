"""``python -m bench train_step [--quick]``: what a training step costs on the CPU.

* ``loader_vs_in_memory`` (target >= 0.9): training images/s of the ``tiny`` recipe (ResNet-18,
  64 px, batch 32, DualBN, 50/50 real/synthetic, λ 0.6) fed by the real dual-domain FFCV
  loader (``loaders.mixing.DualDomainLoader`` over two .beton files written here) over the same
  recipe fed batches already in memory (the model's limit). A speed ratio: 1.0 means the loader
  costs the step nothing.
* ``dual_bn_step_vs_bn_step`` (target <= 1.10): a ResNet-50 train step (forward + backward +
  SGD step, small batch) with DualBN (the registry's default backend) over the same step with
  plain batch norm. A cost ratio: 1.0 means dual batch norm is free.

Methods run interleaved (``bench.common.measure``); each call is ``--steps`` optimizer steps.
"""
from __future__ import annotations

import os
import tempfile

from bench.common import Method, bench_args, measure, pin_threads, ratio, report, speedup


def write_betons(folder: str, images: int, size: int, classes: int = 10) -> tuple[str, str]:
    """A real and a synthetic .beton of ``images`` JPEGs each (smooth class-coloured noise)."""
    import numpy as np
    from ffcv.fields import IntField, RGBImageField

    from loaders.beton import BetonWriter

    paths = []
    for domain, seed in (("real", 0), ("synthetic", 1)):
        path = os.path.join(folder, f"{domain}.beton")
        fields = {"image": RGBImageField(write_mode="jpg", jpeg_quality=90),
                  "label": IntField(), "sample_id": IntField()}
        rng = np.random.default_rng(seed)
        with BetonWriter(path, images, fields, num_workers=2, durable=False) as w:
            for i in range(images):
                label = i % classes
                base = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.float32)
                img = np.kron(base, np.ones((8, 8, 1)))[:size, :size] * 0.7 + label * 7
                w.append(i, {"image": np.clip(img, 0, 255).astype(np.uint8), "label": label,
                             "sample_id": i})
        paths.append(path)
    return paths[0], paths[1]


def _tiny_trainer(train_loader, classes: int):
    from engine.config import load_config
    from engine.train.config import TrainConfig
    from engine.train.distributed import DistInfo
    from engine.train.loop import Trainer
    from engine.train.models import build_model

    import torch

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_config(TrainConfig, os.path.join(here, "engine", "configs", "train_tiny.yaml"),
                      section="train",
                      overrides={"run.progress": False, "run.tensorboard": False,
                                 "run.device": "cpu"})
    torch.manual_seed(0)
    model = build_model(cfg.model, classes)
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    return Trainer(cfg, info, model, train_loader, None, classes), cfg


def loader_methods(args, folder: str) -> list[Method]:
    """The tiny recipe fed by the FFCV dual-domain loader vs by the same batches in memory."""
    from loaders.config import LoaderConfig, MixConfig
    from loaders.mixing import DualDomainLoader

    classes, steps = 10, args.steps
    real, syn = write_betons(folder, args.images, args.image_px, classes)
    loader = DualDomainLoader(real, syn, LoaderConfig(
        backend="ffcv", batch_size=32, image_size=64, workers=args.workers or 0, seed=0,
        crop_scale=(0.35, 1.0)), MixConfig(synthetic_share=0.5))
    trainer, _ = _tiny_trainer(loader, classes)
    state = {"it": iter(loader), "epoch": 0}

    def next_batch():
        try:
            return next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            loader.set_epoch(state["epoch"])
            state["it"] = iter(loader)
            return next(state["it"])

    memory = []
    for _ in range(min(len(loader), 8)):  # the same kind of batches, decoded once, kept
        images, labels, k = next_batch()
        memory.append((images.clone(), labels.clone(), k))
    pos = {"i": 0}

    def from_loader():
        for _ in range(steps):
            trainer.train_step([next_batch()])

    def from_memory():
        for _ in range(steps):
            trainer.train_step([memory[pos["i"] % len(memory)]])
            pos["i"] += 1

    n = 32 * steps
    return [Method("tiny_ffcv_loader", from_loader, items_per_call=n),
            Method("tiny_in_memory", from_memory, items_per_call=n)]


def dual_bn_methods(args) -> list[Method]:
    """ResNet-50 fwd + bwd + SGD step: DualBN (50/50 split) vs plain batch norm."""
    import torch

    from engine.train.config import ModelConfig
    from engine.train.loss import dual_domain_loss
    from engine.ops.dual_bn import dual_bn_split
    from engine.train.models import build_model

    b, px = args.batch, args.size
    torch.manual_seed(0)
    x = torch.randn(b, 3, px, px)
    y = torch.randint(0, 1000, (b,))
    steps = []
    for dual in (True, False):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name=args.arch, dual_bn=dual), 1000).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def step(model=model, opt=opt, dual=dual):
            with dual_bn_split(model, b // 2):
                loss = dual_domain_loss(model(x), y, b // 2, 0.6 if dual else 1.0)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps.append(step)
    return [Method("resnet50_dual_bn_step", steps[0], items_per_call=b),
            Method("resnet50_bn_step", steps[1], items_per_call=b)]


def main(argv=None) -> dict:
    p = bench_args("train_step", __doc__)
    p.add_argument("--arch", default="resnet50", help="model of the DualBN comparison [resnet50]")
    p.add_argument("--batch", type=int, help="ResNet-50 batch [16; quick 8]")
    p.add_argument("--size", type=int, help="ResNet-50 input px [128; quick 64]")
    p.add_argument("--steps", type=int, default=None, help="tiny-recipe steps per call [4; quick 2]")
    p.add_argument("--images", type=int, default=None,
                   help="images per .beton for the loader comparison [1024; quick 256]")
    p.add_argument("--image-px", type=int, default=80, help="stored image size [80]")
    p.add_argument("--workers", type=int, default=None, help="FFCV decode threads [threads]")
    p.add_argument("--only", choices=("loader", "dual_bn"), help="run one comparison")
    args = p.parse_args(argv)
    threads = pin_threads(args.threads)
    args.batch = args.batch or (8 if args.quick else 16)
    args.size = args.size or (64 if args.quick else 128)
    args.steps = args.steps or (2 if args.quick else 4)
    args.images = args.images or (256 if args.quick else 1024)
    args.workers = args.workers or threads
    with tempfile.TemporaryDirectory(prefix="bench-train-step-") as folder:
        methods = []
        if args.only != "dual_bn":
            methods += loader_methods(args, folder)
        if args.only != "loader":
            methods += dual_bn_methods(args)
        results = measure(methods, rounds=args.rounds, min_seconds=args.min_seconds)
    headline = {}
    if args.only != "dual_bn":
        headline["loader_vs_in_memory"] = speedup(results, "tiny_ffcv_loader", "tiny_in_memory",
                                                  target=0.9)
    if args.only != "loader":
        headline["dual_bn_step_vs_bn_step"] = ratio(results, "resnet50_dual_bn_step",
                                                    "resnet50_bn_step", target=1.10)
    return report(results, headline=headline,
                  title=f"train step, {threads} threads: tiny recipe (ResNet-18 64 px, batch 32) "
                        f"FFCV vs memory; {args.arch} {args.batch}x{args.size}px DualBN vs BN",
                  item="image",
                  extra={"quick": args.quick, "arch": args.arch, "resnet50_batch": args.batch,
                         "resnet50_px": args.size, "tiny_steps_per_call": args.steps,
                         "beton_images": args.images, "workers": args.workers})
