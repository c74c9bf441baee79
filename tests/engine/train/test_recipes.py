"""Every shipped training recipe parses, carries its paper's numbers, and builds its model and
optimizer (on the meta device: full-size architectures without allocating them)."""
import glob
import os

import pytest
import torch

from engine.config import load_config
from engine.train.config import TrainConfig
from engine.train.models import build_model
from engine.train.optim import LRSchedule, build_optimizer

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "engine", "configs")

# (file, {dotted key: value}) — the numbers each paper states (see the files' comments)
EXPECTED = {
    "train_tiny.yaml": {"model.name": "resnet18", "data.resolution": 64, "model.dual_bn": True,
                        "synthetic_weight": 0.6},
    "train_seed003_resnet50.yaml": {  # Table 5
        "model.name": "resnet50", "schedule.epochs": 130, "data.batch_size": 8192,
        "optim.name": "sgd", "optim.lr": 3.2, "schedule.name": "cosine",
        "optim.weight_decay": 1e-4, "schedule.warmup_epochs": 5, "loss.label_smoothing": 0.1,
        "model.dropout": 0.25, "augment.randaugment_ops": 2, "model.dual_bn": True,
        "synthetic_weight": 0.6, "data.share": 0.5},
    "train_seed003_deit_s.yaml": {  # Table 6
        "model.name": "deit_small_patch16_224", "schedule.epochs": 300, "data.resolution": 224,
        "data.batch_size": 4096, "optim.name": "adamw", "optim.lr": 0.004,
        "optim.weight_decay": 0.05, "schedule.warmup_epochs": 5, "loss.label_smoothing": 0.1,
        "model.drop_path": 0.1, "augment.randaugment_magnitude": 9, "augment.mixup_alpha": 0.8,
        "augment.cutmix_alpha": 1.0, "data.eval_crop_ratio": 0.875, "model.dual_bn": False},
    "train_seed003_deit_b.yaml": {
        "model.name": "deit_base_patch16_224", "model.img_size": 192, "data.resolution": 192,
        "data.batch_size": 2048, "optim.name": "lamb", "optim.lr": 0.003,
        "model.drop_path": 0.2, "data.eval_crop_ratio": 1.0, "schedule.epochs": 300},
    "train_seed003_deit_l.yaml": {
        "model.name": "deit3_large_patch16_224", "model.img_size": 192, "data.batch_size": 2048,
        "optim.name": "lamb", "optim.lr": 0.003, "model.drop_path": 0.45,
        "data.eval_crop_ratio": 1.0},
    "train_seed003_lowdata.yaml": {
        "data.low_data_per_class": 100, "schedule.epochs": 100, "data.batch_size": 8192,
        "optim.lr": 3.2, "model.dual_bn": True, "synthetic_weight": 0.6},
    "train_seed003_lowdata_real_baseline.yaml": {
        "data.low_data_per_class": 100, "schedule.epochs": 100, "data.batch_size": 2048,
        "optim.lr": 0.88, "data.share": 0.0, "data.synthetic": None},
    "train_seed003_longtail.yaml": {
        "data.long_tail_gamma": 100, "schedule.epochs": 100, "data.batch_size": 8192,
        "model.dual_bn": True},
    "train_seed003_longtail_real_baseline.yaml": {
        "data.long_tail_gamma": 100, "schedule.epochs": 100, "data.batch_size": 2048,
        "optim.lr": 0.88, "data.share": 0.0},
    "train_seed002_resnet50.yaml": {  # §5 implementation details
        "model.name": "resnet50", "optim.momentum": 0.9, "data.batch_size": 256,
        "schedule.warmup_fraction": 0.1, "schedule.name": "cosine", "augment.local_crops": 8,
        "schedule.epochs": 100, "model.sync_bn": True, "data.share": 1.0},
    "train_seed002_resnet50_10x.yaml": {"schedule.epochs": 10, "augment.local_crops": 8},
    "train_seed004_in100.yaml": {  # App. F + ffcv-imagenet
        "schedule.epochs": 88, "data.batch_size": 512, "optim.lr": 0.5,
        "schedule.name": "cyclic", "schedule.peak_epoch": 2, "optim.weight_decay": 5e-5,
        "loss.label_smoothing": 0.1, "data.min_resolution": 160, "data.resolution": 192,
        "data.eval_resolution": 256, "data.mix_mode": "union", "model.dual_bn": False,
        "synthetic_weight": 1.0},
    "train_seed004_in1k.yaml": {"schedule.epochs": 40, "optim.lr": 0.5, "data.batch_size": 512,
                                "data.ramp_end_epoch": 34},
    "train_seed000_resnet50.yaml": {  # torchvision reference recipe
        "model.name": "resnet50", "schedule.epochs": 90, "data.batch_size": 256,
        "optim.lr": 0.1, "schedule.name": "step", "schedule.step_epochs": 30,
        "schedule.gamma": 0.1, "optim.weight_decay": 1e-4, "run.amp": "off"},
}


def _get(cfg, dotted):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_shipped_recipe_is_checked():
    shipped = {os.path.basename(p) for p in glob.glob(os.path.join(CONFIGS, "train_*.yaml"))}
    assert shipped == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_parses_and_builds(name):
    cfg = load_config(TrainConfig, os.path.join(CONFIGS, name), section="train")
    for key, value in EXPECTED[name].items():
        got = _get(cfg, key)
        assert got == (pytest.approx(value) if isinstance(value, float) else value), key
    with open(os.path.join(CONFIGS, name), encoding="utf-8") as f:
        assert f.readline().startswith("# "), "each recipe starts with its source"
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.model.num_classes or 1000)
    opt = build_optimizer(cfg.optim, model)
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr)
    sched = LRSchedule(cfg.schedule, cfg.optim.lr, steps_per_epoch=10)
    peak = max(sched.lr(s) for s in range(0, sched.total_steps, 5))
    assert peak == pytest.approx(cfg.optim.lr, rel=0.05)
    assert sched.lr(sched.total_steps) < 0.5 * cfg.optim.lr


def test_tiny_recipe_trains_a_step_at_its_size():
    cfg = load_config(TrainConfig, os.path.join(CONFIGS, "train_tiny.yaml"), section="train")
    model = build_model(cfg.model, 4)
    opt = build_optimizer(cfg.optim, model)
    from engine.train.loss import dual_domain_loss
    from engine.ops.dual_bn import dual_bn_split

    x = torch.randn(8, 3, cfg.data.resolution, cfg.data.resolution)
    y = torch.tensor([0, 1, 2, 3] * 2)
    with dual_bn_split(model, 4):
        loss = dual_domain_loss(model(x), y, 4, cfg.synthetic_weight)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
