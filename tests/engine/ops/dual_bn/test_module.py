"""DualBatchNorm2d and convert_dual_bn: a converted ResNet-50 against a two-branch reference model,
checkpoints in and out, timm models, the Triton path inside the module."""
import copy

import pytest
import timm
import torch
import torch.nn as nn
import torchvision

from engine.ops.dual_bn import (DualBatchNorm2d, convert_dual_bn, dual_bn_split,
                                fuse_resnet_tails, num_real_from_mask, real_state_dict,
                                revert_dual_bn, set_eval_domain)


class TwoBN(nn.Module):
    """Reference: two plain BatchNorm2d modules applied to the two parts of the batch."""

    k = None  # set on the class by the test before each forward

    def __init__(self, bn):
        super().__init__()
        self.real, self.syn = copy.deepcopy(bn), copy.deepcopy(bn)

    def forward(self, x):
        k = x.shape[0] if not self.training else TwoBN.k
        parts = [bn(x[lo:hi]) for bn, (lo, hi) in ((self.real, (0, k)), (self.syn, (k, x.shape[0])))
                 if hi > lo]
        return torch.cat(parts)


def _replace_bn(module):
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, TwoBN(child))
        else:
            _replace_bn(child)
    return module


def _randomize_bn_(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(1 + 0.2 * torch.rand(c, generator=g))


def _perturb_syn_(tensors_per_module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensors in tensors_per_module:
            for t in tensors:
                t.add_(0.3 * torch.randn(t.shape, generator=g))


@pytest.fixture(scope="module")
def resnet50_pair():
    torch.manual_seed(0)
    base = torchvision.models.resnet50(weights=None)
    _randomize_bn_(base, seed=1)
    reference = _replace_bn(copy.deepcopy(base))
    converted = convert_dual_bn(copy.deepcopy(base))
    duals = [m for m in converted.modules() if isinstance(m, DualBatchNorm2d)]
    twos = [m for m in reference.modules() if isinstance(m, TwoBN)]
    assert len(duals) == len(twos) == 53
    _perturb_syn_([(m.syn_weight, m.syn_bias, m.syn_running_mean) for m in duals], seed=2)
    _perturb_syn_([(m.syn.weight, m.syn.bias, m.syn.running_mean) for m in twos], seed=2)
    return base, reference, converted


def _ref_name(name):
    """Converted-model parameter name -> the reference model's."""
    head, _, leaf = name.rpartition(".")
    if leaf.startswith("syn_"):
        return f"{head}.syn.{leaf[4:]}"
    return name


def test_converted_resnet50_matches_reference_forward_backward(resnet50_pair):
    _, reference, converted = resnet50_pair
    reference.train(), converted.train()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    TwoBN.k = 2
    want = reference(x)
    with dual_bn_split(converted, 2):
        got = converted(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    gy = torch.randn_like(want)
    (want * gy).sum().backward()
    (got * gy).sum().backward()
    ref_params = dict(reference.named_parameters())
    bn_names = {f"{n}.{p}" for n, m in converted.named_modules() if isinstance(m, DualBatchNorm2d)
                for p in ("weight", "syn_weight")}
    for name, p in converted.named_parameters():
        rname = _ref_name(name)
        if name in bn_names and not name.rpartition(".")[2].startswith("syn_"):
            rname = name.rpartition(".")[0] + ".real.weight"
        elif ".bn" in name or name.startswith("bn") or "downsample.1" in name:
            head, _, leaf = name.rpartition(".")
            rname = rname if "syn." in rname else f"{head}.real.{leaf}"
        torch.testing.assert_close(p.grad, ref_params[rname].grad, rtol=1e-3, atol=1e-4, msg=name)
    dual = converted.layer1[0].bn1
    two = reference.layer1[0].bn1
    for mine, theirs in ((dual.running_mean, two.real.running_mean), (dual.syn_running_var, two.syn.running_var)):
        torch.testing.assert_close(mine, theirs)
    assert not torch.allclose(dual.running_mean, dual.syn_running_mean)


def test_eval_uses_real_branch_unless_told(resnet50_pair):
    _, reference, converted = resnet50_pair
    reference.eval(), converted.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), reference(x), rtol=1e-4, atol=1e-4)
        set_eval_domain(converted, "synthetic")
        syn = converted(x)
        set_eval_domain(converted, "real")
    assert not torch.allclose(syn, reference(x), atol=1e-3)


def test_real_only_checkpoint_loads_and_exports_back():
    torch.manual_seed(0)
    plain = torchvision.models.resnet18(weights=None)
    _randomize_bn_(plain, seed=4)
    ckpt = copy.deepcopy(plain.state_dict())
    converted = convert_dual_bn(torchvision.models.resnet18(weights=None))
    converted.load_state_dict(ckpt)  # strict: the synthetic keys are filled from the real ones
    assert torch.equal(converted.bn1.syn_running_var, ckpt["bn1.running_var"])
    assert torch.equal(converted.layer2[0].downsample[1].syn_weight, ckpt["layer2.0.downsample.1.weight"])
    plain.eval(), converted.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), plain(x))
    # One training step changes the branches differently; the export keeps the real one.
    converted.train()
    with dual_bn_split(converted, 1):
        converted(torch.randn(2, 3, 64, 64) * 3 + 1)  # layer4 keeps 2x2 values per sample
    fresh = torchvision.models.resnet18(weights=None)
    fresh.load_state_dict(real_state_dict(converted))  # strict
    assert torch.equal(fresh.bn1.running_mean, converted.bn1.running_mean)
    assert not torch.equal(fresh.bn1.running_mean, converted.bn1.syn_running_mean)
    full = converted.state_dict()
    assert "bn1.syn_running_mean" in full and "bn1.running_mean" in full
    reverted = revert_dual_bn(copy.deepcopy(converted)).eval()
    assert not any(isinstance(m, DualBatchNorm2d) for m in reverted.modules())
    fresh.eval(), converted.eval()
    with torch.no_grad():
        torch.testing.assert_close(reverted(x), fresh(x))
        torch.testing.assert_close(converted(x), fresh(x))


def test_timm_batchnormact_keeps_activation_and_fuses_relu():
    model = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
    converted = convert_dual_bn(copy.deepcopy(model)).eval()
    duals = [m for m in converted.modules() if isinstance(m, DualBatchNorm2d)]
    assert duals and not any(type(m).__name__ == "BatchNormAct2d" for m in converted.modules())
    assert any(type(m.act).__name__ == "Hardswish" for m in duals)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), want)
    bnact = timm.layers.BatchNormAct2d(6, act_layer=nn.ReLU).train()
    dual = convert_dual_bn(copy.deepcopy(bnact))
    assert isinstance(dual, DualBatchNorm2d) and dual.relu and isinstance(dual.act, nn.Identity)
    xa = torch.randn(4, 6, 3, 3)
    torch.testing.assert_close(dual(xa, num_real=4), bnact(xa))  # all-real batch == plain BN
    assert (dual(xa, num_real=2) >= 0).all()


def test_split_is_required_in_training_and_mask_helper():
    bn = DualBatchNorm2d(3).train()
    with pytest.raises(ValueError, match="dual_bn_split"):
        bn(torch.randn(4, 3, 2, 2))
    assert num_real_from_mask(torch.tensor([1, 1, 0, 0, 0])) == 2
    with pytest.raises(ValueError, match="real samples must come first"):
        num_real_from_mask(torch.tensor([True, False, True]))


def test_cumulative_momentum_matches_batchnorm():
    torch.manual_seed(5)
    dual = DualBatchNorm2d(3, momentum=None)
    bns = [nn.BatchNorm2d(3, momentum=None) for _ in range(2)]
    for step in range(3):
        x = torch.randn(5, 3, 2, 2) * (step + 1)
        dual(x, num_real=2)
        bns[0](x[:2]), bns[1](x[2:])
    torch.testing.assert_close(dual.running_var, bns[0].running_var)
    torch.testing.assert_close(dual.syn_running_mean, bns[1].running_mean)
    assert int(dual.syn_num_batches_tracked) == 3


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_fused_resnet_tails_match_unfused(arch):
    torch.manual_seed(8)
    base = convert_dual_bn(getattr(torchvision.models, arch)(weights=None)).train()
    fused = copy.deepcopy(base)
    assert fuse_resnet_tails(fused) == (8 if arch == "resnet18" else 16)
    assert fused.state_dict().keys() == base.state_dict().keys()
    x = torch.randn(3, 3, 64, 64)  # layer4 is 2x2: >= 2 values per channel in each domain
    with dual_bn_split(base, 2), dual_bn_split(fused, 2):
        want, got = base(x), fused(x)
    torch.testing.assert_close(got, want)
    want.sum().backward(), got.sum().backward()
    torch.testing.assert_close(fused.layer1[0].bn2.syn_weight.grad, base.layer1[0].bn2.syn_weight.grad)
    torch.testing.assert_close(fused.layer2[0].bn1.running_var, base.layer2[0].bn1.running_var)
