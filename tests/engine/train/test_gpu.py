"""CUDA paths of the loop (run where a GPU is): autocast bf16 / fp16 with loss scaling,
channels_last, the Triton DualBN backend inside a training step."""
import pytest
import torch

from engine.train.config import (DataConfig, ModelConfig, OptimConfig, RunConfig, ScheduleConfig,
                                 TrainConfig)
from engine.train.data import EvalTensorSource, TensorSource
from engine.train.runner import train


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16", "auto"])
def test_cuda_training_with_amp_and_channels_last(tmp_path, amp):
    cfg = TrainConfig(model=ModelConfig(name="resnet18", dual_bn=True),
                      data=DataConfig(real="mem", synthetic="mem", batch_size=16),
                      optim=OptimConfig(lr=0.05), schedule=ScheduleConfig(epochs=2),
                      run=RunConfig(device="cuda", amp=amp, progress=False, log_every=1))
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 4
    real = (torch.randn(64, 3, 32, 32, generator=g) + y.view(-1, 1, 1, 1), y)
    syn = (torch.randn(64, 3, 32, 32, generator=g), y)
    src = TensorSource(real, syn, batch_size=16, synthetic_share=0.5, device="cuda")
    summary = train(cfg, str(tmp_path / "run"), loaders=(src, EvalTensorSource(*real, 16)))
    assert summary["steps"] == 8
    assert all(v is None or v == v for v in summary["train"].values())  # no NaN
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (ckpt["scaler"] != {}) == (amp == "fp16")  # loss scaling only for fp16


@pytest.mark.gpu
def test_triton_dual_bn_is_the_default_backend_on_cuda():
    import engine.ops.dual_bn  # noqa: F401 - registers the dual_bn backends
    from engine.ops import registry

    chosen = registry.select("dual_bn", device_type="cuda", dtype=torch.float16, explicit=False)
    assert chosen.name == "triton"
