"""The loop end to end on tensors in memory: the run folder, progressive resizing, multi-crop,
accumulation, EMA evaluation, TensorBoard wiring."""
import json
import sys
import types

import pytest
import torch
import yaml

from engine.train.config import (DataConfig, ModelConfig, OptimConfig, RunConfig,
                                 ScheduleConfig, TrainConfig)
from engine.train.data import EvalTensorSource, TensorSource
from engine.train.metrics import read_jsonl
from engine.train.runner import train


def cfg(epochs=2, **over):
    c = TrainConfig(model=ModelConfig(name="resnet18", dual_bn=True),
                    data=DataConfig(real="mem", synthetic="mem", batch_size=8, resolution=16),
                    optim=OptimConfig(lr=0.05), schedule=ScheduleConfig(epochs=epochs),
                    run=RunConfig(device="cpu", threads=1, progress=False, log_every=2,
                                  checkpoint_every=3))
    for key, value in over.items():
        section, name = key.split("__")
        setattr(getattr(c, section), name, value)
    return c


def sources(n=16, size=16, classes=4, batch=8):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    real = (torch.randn(n, 3, size, size, generator=g) + y.view(-1, 1, 1, 1), y)
    syn = (torch.randn(n, 3, size, size, generator=g), y)
    return (TensorSource(real, syn, batch_size=batch, synthetic_share=0.5),
            EvalTensorSource(real[0][:8], real[1][:8], 4))


def test_run_folder_holds_config_metrics_plot_and_export(tmp_path):
    out = tmp_path / "run"
    summary = train(cfg(), str(out), loaders=sources())
    with open(out / "config.yaml") as f:
        record = yaml.safe_load(f)
    assert record["train"]["model"]["name"] == "resnet18" and "git_commit" in record
    assert record["resolved"] == {"num_classes": 4, "synthetic_weight": 0.6,
                                  "synthetic_share": 0.5, "world_size": 1,
                                  "micro_batch_size": 8}
    recs = read_jsonl(str(out / "metrics.jsonl"))
    kinds = [r["kind"] for r in recs]
    assert kinds.count("epoch") == 2 and kinds.count("eval") == 2 and "train" in kinds
    train_rec = next(r for r in recs if r["kind"] == "train")
    for key in ("loss_real", "loss_syn", "acc_real", "acc_syn", "objective", "lr",
                "images_per_s", "data_wait_share", "image_size"):
        assert key in train_rec, key
    assert train_rec["rows"] == 16 and train_rec["image_size"] == 16
    with open(out / "metrics.json") as f:
        saved = json.load(f)
    assert saved["steps"] == summary["steps"] == 8 and saved["eval"]["images"] == 8
    assert (out / "curves.png").stat().st_size > 10_000
    with open(out / "model_real.json") as f:
        assert "torchvision.models.get_model('resnet18', num_classes=4)" in json.load(f)[
            "load_with"]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["progress"] == {"epoch": 2, "batch": 0, "step": 8, "images": 64}


def test_progressive_resizing_reaches_the_loader(tmp_path):
    c = cfg(epochs=4, data__min_resolution=8, data__ramp_start_epoch=1, data__ramp_end_epoch=3)
    c.data.resolution = 16
    train(c, str(tmp_path / "run"), loaders=(sources()[0], None))
    sizes = {r["epoch"]: r["image_size"] for r in read_jsonl(str(tmp_path / "run" /
                                                                  "metrics.jsonl"))
             if r["kind"] == "train"}
    # ffcv-imagenet rounds to multiples of 32: 8 until the ramp ends, then 16
    assert sizes[0] == 8 and sizes[3] == 16


def test_multicrop_accumulation_and_ema(tmp_path):
    c = cfg(epochs=1, augment__local_crops=2, augment__global_crop_size=16,
            augment__local_crop_size=8, optim__accum_steps=2, run__ema=True,
            run__ema_decay=0.5)
    c.data.resolution = 24
    summary = train(c, str(tmp_path / "run"), loaders=sources(size=24, batch=4))
    assert summary["steps"] == 4 and summary["images"] == 32  # 8 micro-batches of 4 rows
    assert summary["eval"]["top1"] is not None
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert not torch.equal(ckpt["ema"]["fc.weight"], ckpt["model"]["fc.weight"])
    export = torch.load(tmp_path / "run" / "model_real.pt", weights_only=True)
    assert torch.equal(export["fc.weight"], ckpt["ema"]["fc.weight"])  # EMA weights exported


def test_tensorboard_gets_the_scalars_when_installed(tmp_path, monkeypatch):
    calls = []

    class Writer:
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train(cfg(epochs=1), str(tmp_path / "run"), loaders=sources())
    tags = {c[0] for c in calls}
    assert {"train/loss_real", "train/acc_syn", "eval/top1", "epoch/objective"} <= tags
    assert calls[0] == ("init", str(tmp_path / "run" / "tensorboard")) and calls[-1] == ("close",)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_single_domain_runs(tmp_path, share):
    c = cfg(epochs=1)
    c.data.synthetic_share = share
    c.model.dual_bn = False
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(16, 3, 16, 16, generator=g), torch.arange(16) % 4)
    src = TensorSource(data if share < 1 else None, data if share > 0 else None, batch_size=8,
                       synthetic_share=share)
    summary = train(c, str(tmp_path / "run"), loaders=(src, None))
    assert summary["synthetic_weight"] == 1.0
    key = "loss_syn" if share else "loss_real"
    assert summary["train"][key] is not None
    assert summary["train"]["loss_real" if share else "loss_syn"] is None
