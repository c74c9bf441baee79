"""Models by name, DualBN conversion, classifier dropout, weights loading and the export."""
import pytest
import torch

from engine.errors import ConfigError
from engine.ops.dual_bn import dual_bn_split
from engine.train.checkpoint import export_real
from engine.train.config import ModelConfig
from engine.train.models import (build_model, is_dual, load_weights, model_source,
                                 plain_model)

BN_MODELS = ["resnet18", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
             "resnext101_32x8d", "efficientnet_b0", "mobilenet_v2"]
VIT_MODELS = ["deit_small_patch16_224", "deit_base_patch16_224", "deit3_large_patch16_224"]


def _dual_count(model):
    return sum(1 for m in model.modules() if type(m).__name__ == "DualBatchNorm2d")


@pytest.mark.parametrize("name", BN_MODELS)
def test_batch_norm_models_become_dual(name):
    with torch.device("meta"):
        model = build_model(ModelConfig(name=name, dual_bn=True), 10)
        plain = plain_model(ModelConfig(name=name), 10)
    n_bn = sum(1 for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert n_bn > 0 and _dual_count(model) == n_bn
    assert model_source(ModelConfig(name=name)) == "torchvision"
    # the real branch keeps the plain model's keys
    assert {k for k in model.state_dict() if ".syn_" not in k} == set(plain.state_dict())


@pytest.mark.parametrize("name", VIT_MODELS)
def test_models_without_batch_norm_refuse_dual_bn(name):
    with torch.device("meta"):
        with pytest.raises(ConfigError, match="no BatchNorm2d layers .*LayerNorm.*dual_bn=false"):
            build_model(ModelConfig(name=name, dual_bn=True), 10)
        model = build_model(ModelConfig(name=name, drop_path=0.1), 10)
    assert model_source(ModelConfig(name=name)) == "timm" and not is_dual(model)


def test_vit_input_size_and_drop_path_reach_timm():
    with torch.device("meta"):
        model = build_model(ModelConfig(name="deit_base_patch16_224", img_size=192,
                                        drop_path=0.2), 10)
    assert model.patch_embed.img_size == (192, 192)
    assert model.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ConfigError, match="did you mean .*resnet50"):
        model_source(ModelConfig(name="resnet5O"))
    with pytest.raises(ConfigError, match="needs a timm model"):
        build_model(ModelConfig(name="resnet18", drop_path=0.1), 10)


def test_dual_resnet_trains_each_branch_on_its_rows():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="resnet18", dual_bn=True), 3)
    x = torch.randn(4, 3, 32, 32)
    with dual_bn_split(model, 2):
        model(x).sum().backward()
    bn = model.bn1
    torch.testing.assert_close(bn.running_mean, 0.9 * 0 + 0.1 * _channel_mean(model, x[:2]))
    torch.testing.assert_close(bn.syn_running_mean, 0.1 * _channel_mean(model, x[2:]))
    assert bn.weight.grad is not None and bn.syn_weight.grad is not None


def _channel_mean(model, x):
    with torch.no_grad():
        return model.conv1(x).mean((0, 2, 3))


def test_classifier_dropout_keeps_keys_and_acts_only_in_training():
    torch.manual_seed(0)
    plain = build_model(ModelConfig(name="resnet18"), 3).eval()
    torch.manual_seed(0)
    drop = build_model(ModelConfig(name="resnet18", dropout=0.5), 3).eval()
    assert set(drop.state_dict()) == set(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(drop(x), plain(x))
    feats = {}
    drop.fc.register_forward_hook(lambda m, a, o: feats.setdefault("in", a[0]))
    drop.train()(x)
    zeros = (feats["in"] == 0).float().mean().item()
    assert 0.3 < zeros < 0.7  # about half of the 512 pooled features dropped
    eff = build_model(ModelConfig(name="efficientnet_b0", dropout=0.25), 3)
    assert [m.p for m in eff.classifier.modules() if isinstance(m, torch.nn.Dropout)] == [0.25]


@pytest.mark.parametrize("cfg", [ModelConfig(name="resnet18", dual_bn=True),
                                 ModelConfig(name="efficientnet_b0", source="timm", dual_bn=True)])
def test_export_loads_into_the_plain_model(tmp_path, cfg):
    torch.manual_seed(1)
    model = build_model(cfg, 5)
    x = torch.randn(6, 3, 32, 32)
    for _ in range(2):  # give both branches different statistics
        with dual_bn_split(model, 3):
            model(torch.cat([x[:3], 3 * x[3:] + 1]))
    path = export_real(model, str(tmp_path / "model_real.pt"), {"model": cfg.name})
    plain = plain_model(cfg, 5)
    plain.load_state_dict(torch.load(path, weights_only=True), strict=True)
    model.eval(), plain.eval()
    torch.testing.assert_close(plain(x), model(x))  # eval uses the real branch


def test_weights_of_another_model_are_refused_naming_the_mismatch(tmp_path):
    small = tmp_path / "r18.pt"
    torch.save(plain_model(ModelConfig(name="resnet18"), 10).state_dict(), small)
    with pytest.raises(ConfigError, match=r"shape mismatch.*fc.weight: file \(10, 512\) vs "
                                          r"model \(3, 512\)"):
        build_model(ModelConfig(name="resnet18", weights=str(small)), 3)
    with pytest.raises(ConfigError, match="does not fit ResNet: .*missing key"):
        build_model(ModelConfig(name="resnet50", weights=str(small)), 10)
    model = build_model(ModelConfig(name="resnet18", dual_bn=True), 10)
    load_weights(model, str(small))  # a plain checkpoint fills both DualBN branches
    torch.testing.assert_close(model.bn1.syn_weight, model.bn1.weight)
