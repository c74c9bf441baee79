"""Optimizers from timm's factory; LR and resolution schedules against hand-computed values."""
import pytest
import torch

from engine.train.config import DataConfig, OptimConfig, ScheduleConfig
from engine.train.optim import LRSchedule, build_optimizer, resolution_at


def sched(steps_per_epoch=10, **kw):
    return LRSchedule(ScheduleConfig(**kw), 1.0, steps_per_epoch)


def test_warmup_then_cosine():
    s = sched(name="cosine", epochs=10, warmup_epochs=1)
    assert s.warmup_steps == 10
    assert [s.factor(i) for i in (0, 5, 10)] == pytest.approx([0.0, 0.5, 1.0])
    assert s.factor(55) == pytest.approx(0.5)        # half-way through the 90 cosine steps
    assert s.factor(100) == pytest.approx(0.0)
    s = sched(name="cosine", epochs=10, warmup_epochs=1, final_lr_factor=0.1,
              warmup_start_factor=0.2)
    assert s.factor(0) == pytest.approx(0.2)
    assert s.factor(55) == pytest.approx(0.55)


def test_warmup_fraction_of_iterations_seed002():
    s = sched(steps_per_epoch=7, name="cosine", epochs=100, warmup_fraction=0.1)
    assert s.warmup_steps == 70
    assert s.factor(35) == pytest.approx(0.5)


def test_step_schedule_per_epoch():
    s = sched(name="step", epochs=9, step_epochs=3, gamma=0.1)
    assert [s.factor(i) for i in (0, 29, 30, 65)] == pytest.approx([1, 1, 0.1, 0.01])


def test_cyclic_is_ffcv_imagenet_triangle():
    s = sched(steps_per_epoch=100, name="cyclic", epochs=88, peak_epoch=2)
    assert s.factor(0) == pytest.approx(1e-4)
    assert s.factor(100) == pytest.approx(1e-4 + (1 - 1e-4) / 2)
    assert s.factor(200) == pytest.approx(1.0)
    assert s.factor(4500) == pytest.approx(43 / 86)
    assert s.factor(8800) == pytest.approx(0.0)


def test_apply_sets_every_group():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    opt = build_optimizer(OptimConfig(lr=0.4, no_wd_bn_bias=True), model)
    lr = LRSchedule(ScheduleConfig(epochs=1, warmup_epochs=1), 0.4, 4).apply(opt, 2)
    assert lr == pytest.approx(0.2)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.2])


def test_progressive_resolution_matches_ffcv_imagenet():
    # ffcv-imagenet rn50 configs: min_res 160, max_res 192, start_ramp 65, end_ramp 76
    cfg = DataConfig(resolution=192, min_resolution=160, ramp_start_epoch=65, ramp_end_epoch=76)
    assert [resolution_at(cfg, e) for e in (0, 65, 70, 71, 76, 87)] == [160, 160, 160, 192,
                                                                       192, 192]
    assert resolution_at(DataConfig(resolution=64), 5) == 64


def _model():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                               torch.nn.Flatten(), torch.nn.Linear(4, 3))


@pytest.mark.parametrize("name,cls", [("sgd", "SGD"), ("lars", "Lars"), ("adamw", "AdamW"),
                                      ("lamb", "Lamb")])
def test_optimizers(name, cls):
    opt = build_optimizer(OptimConfig(name=name, lr=0.1, weight_decay=0.05, no_wd_bn_bias=True),
                          _model())
    assert type(opt).__name__ == cls
    decays = sorted((g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 4), (0.05, 2)]  # conv/linear biases and BN weight+bias: no decay


def test_sgd_momentum_without_nesterov_and_with_decay_everywhere():
    opt = build_optimizer(OptimConfig(name="sgd", momentum=0.9), _model())
    (group,) = opt.param_groups
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, False, 1e-4)
    assert build_optimizer(OptimConfig(nesterov=True), _model()).param_groups[0]["nesterov"]
