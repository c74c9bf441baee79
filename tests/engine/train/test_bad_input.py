"""Bad input: unknown keys, checkpoints of another run, label spaces that do not fit, a full
disk while checkpointing."""
import errno
import os

import numpy as np
import pytest
import torch

from engine import cli
from engine.errors import ConfigError
from engine.train import checkpoint as ckpt_io
from engine.train.config import (DataConfig, ModelConfig, OptimConfig, RunConfig, ScheduleConfig,
                                 TrainConfig)
from engine.train.data import EvalTensorSource, TensorSource
from engine.train.runner import resolve_num_classes, train

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "engine", "configs")


def tiny_cfg(**run):
    return TrainConfig(
        model=ModelConfig(name="resnet18", dual_bn=True),
        data=DataConfig(real="mem", synthetic="mem", batch_size=8),
        optim=OptimConfig(lr=0.05), schedule=ScheduleConfig(epochs=1),
        run=RunConfig(device="cpu", threads=1, progress=False, log_every=1, checkpoint_every=2,
                      **run))


def loaders(classes=4, n=16, size=16):
    g = torch.Generator().manual_seed(0)
    real = (torch.randn(n, 3, size, size, generator=g), torch.arange(n) % classes)
    syn = (torch.randn(n, 3, size, size, generator=g), torch.arange(n) % classes)
    return TensorSource(real, syn, batch_size=8, synthetic_share=0.5), None


def test_unknown_key_lists_the_valid_ones(capsys):
    code = cli.main(["train", os.path.join(CONFIGS, "train_tiny.yaml"), "optim.lrr=0.1",
                     "--out", "/nonexistent/never-written"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown OptimConfig option(s) optim.lrr" in err
    assert "optim.lr, optim.momentum" in err and "\n" == err[-1] and err.count("\n") == 1


def test_bad_values_are_one_line_errors(capsys):
    assert cli.main(["train", os.path.join(CONFIGS, "train_tiny.yaml"), "data.batch_size=0",
                     "--out", "/nonexistent/x"]) == 2
    assert "data.batch_size must be >= 1" in capsys.readouterr().err
    assert cli.main(["train", os.path.join(CONFIGS, "train_tiny.yaml"), "--out", "/nonexistent/x",
                     "--resume", "--overwrite"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    out = str(tmp_path / "run")
    train(tiny_cfg(max_steps=2), out, loaders=loaders())
    other = tiny_cfg(max_steps=4)
    other.optim.lr = 0.1
    other.model.name = "resnet34"
    with pytest.raises(ckpt_io.CheckpointError,
                       match=r"belongs to another run: model.name: 'resnet18' in the checkpoint, "
                             r"'resnet34' now; optim.lr: 0.05 in the checkpoint, 0.1 now"):
        train(other, out, resume=True, loaders=loaders())
    # keys that do not change the weights may change on resume (here: run longer)
    summary = train(tiny_cfg(max_steps=3), out, resume=True, loaders=loaders())
    assert summary["steps"] == 3


def test_a_run_folder_is_not_overwritten_by_accident(tmp_path):
    out = str(tmp_path / "run")
    train(tiny_cfg(max_steps=1), out, loaders=loaders())
    with pytest.raises(Exception, match="already holds a run; pass --resume .* or --overwrite"):
        train(tiny_cfg(max_steps=1), out, loaders=loaders())


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: half written, then the disk is full
            f.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_io.torch, "save", failing_save)
    with pytest.raises(ckpt_io.CheckpointError,
                       match=r"No space left on device\); the previous checkpoint \(step 2\) is "
                             r"intact. Free disk space and rerun with --resume"):
        train(tiny_cfg(max_steps=4), str(out), loaders=loaders())
    monkeypatch.setattr(ckpt_io.torch, "save", real_save)
    saved = ckpt_io.load(str(out / "checkpoint.pt"))
    assert saved["progress"]["step"] == 2
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    summary = train(tiny_cfg(max_steps=4), str(out), resume=True, loaders=loaders())
    assert summary["steps"] == 4


def test_label_space_checks():
    real, syn = np.array([0, 3, 5]), np.array([1, 5])
    assert resolve_num_classes(None, {"data.real": real, "data.synthetic": syn}) == 6
    assert resolve_num_classes(10, {"data.real": real}) == 10
    with pytest.raises(ConfigError, match=r"labels of data.real go up to 5, but the model's head "
                                          r"has 4 outputs \(model.num_classes=4\)"):
        resolve_num_classes(4, {"data.real": real})
    with pytest.raises(ConfigError, match="labels of data.eval go up to 999"):
        resolve_num_classes(None, {"data.real": real, "data.eval": np.array([999])})
    with pytest.raises(ConfigError, match="share no label: .*compact labels"):
        resolve_num_classes(1000, {"data.real": np.array([0, 1]),
                                   "data.synthetic": np.array([500, 501])})


def test_training_data_beyond_the_head_is_refused_before_training(tmp_path):
    cfg = tiny_cfg()
    cfg.model.num_classes = 3
    with pytest.raises(ConfigError, match="go up to 3, but the model's head has 3 outputs"):
        train(cfg, str(tmp_path / "run"), loaders=loaders(classes=4))


def test_evaluation_labels_beyond_the_head_are_refused(tmp_path):
    train_loader, _ = loaders(classes=4)
    ev = EvalTensorSource(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 7]), 4)
    with pytest.raises(ConfigError, match="data.eval go up to 7"):
        train(tiny_cfg(max_steps=1), str(tmp_path / "run"), loaders=(train_loader, ev))
