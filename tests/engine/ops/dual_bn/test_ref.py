"""dual_bn_ref against two independent nn.BatchNorm2d modules, and the registry's choices."""
import pytest
import torch
import torch.nn as nn

from engine.ops import registry
from engine.ops.dual_bn import dual_bn, dual_bn_ref


def _two_bns(c, seed):
    g = torch.Generator().manual_seed(seed)
    bns = [nn.BatchNorm2d(c, momentum=m) for m in (0.1, 0.3)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.bias.copy_(torch.randn(c, generator=g))
            bn.running_mean.copy_(torch.randn(c, generator=g))
            bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return bns


def _stack(bns, name):
    return torch.stack([getattr(b, name).detach().clone() for b in bns])


@pytest.mark.parametrize("k", [0, 3, 5])
@pytest.mark.parametrize("training", [True, False])
def test_ref_equals_two_batchnorms(k, training):
    x = torch.randn(5, 4, 3, 3) * 3 + 1
    bns = _two_bns(4, seed=k)
    for bn in bns:
        bn.train(training)
    w = _stack(bns, "weight").requires_grad_()
    b = _stack(bns, "bias").requires_grad_()
    rm, rv = _stack(bns, "running_mean"), _stack(bns, "running_var")
    xr = x.clone().requires_grad_()
    y = dual_bn_ref(xr, k, w, b, rm, rv, training, (0.1, 0.3), 1e-5)
    xe = x.clone().requires_grad_()
    parts = [bn(xe[lo:hi]) for bn, (lo, hi) in zip(bns, ((0, k), (k, 5))) if hi > lo]
    want = torch.cat(parts)
    torch.testing.assert_close(y, want)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    (want * gy).sum().backward()
    torch.testing.assert_close(xr.grad, xe.grad)
    for d, bn in enumerate(bns):
        torch.testing.assert_close(rm[d], bn.running_mean)
        torch.testing.assert_close(rv[d], bn.running_var)
        if bn.weight.grad is not None:
            torch.testing.assert_close(w.grad[d], bn.weight.grad)
            torch.testing.assert_close(b.grad[d], bn.bias.grad)
        else:  # domain absent from the batch: no gradient, statistics untouched
            assert w.grad[d].abs().sum() == 0


def test_ref_residual_relu_half_precision_and_layout():
    x = (torch.randn(4, 3, 4, 4) * 2).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    r = torch.randn(4, 3, 4, 4).to(torch.bfloat16)
    y = dual_bn_ref(x, 1, None, None, None, None, True, 0.1, 1e-5, residual=r, relu=True)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    xf = x.float()
    want = torch.cat([nn.functional.batch_norm(xf[:1], None, None, training=True),
                      nn.functional.batch_norm(xf[1:], None, None, training=True)])
    want = torch.relu(want + r.float()).to(torch.bfloat16)
    torch.testing.assert_close(y, want)
    assert (y >= 0).all() and (y == 0).any()


@pytest.mark.parametrize("kwargs, msg", [
    (dict(num_real=7), "outside"),
    (dict(weight=torch.ones(3)), r"\(2, C\)"),
    (dict(training=False), "needs running_mean"),
    (dict(x=torch.randn(2, 3, 1, 1), num_real=1), "single value"),
])
def test_ref_argument_errors(kwargs, msg):
    args = dict(x=torch.randn(4, 3, 2, 2), num_real=2, weight=None, bias=None, running_mean=None,
                running_var=None, training=True)
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        dual_bn_ref(**args)


def test_registry_picks_cpu_path_on_cpu_and_triton_needs_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    ctx = dict(device_type="cpu", dtype=torch.float32, explicit=False, dense=True)
    assert registry.select("dual_bn", **ctx).name == "cpu"
    why = dict(registry.explain("dual_bn", **ctx))
    assert "CUDA" in why["triton"] and why["cpu"] is None and why["ref"] is None
    assert "opt-in" in why["ref_compiled"]
    with pytest.raises(RuntimeError, match="Triton needs a CUDA tensor"):
        dual_bn(torch.randn(2, 3, 2, 2), 1, None, None, None, None, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert registry.select("dual_bn", **ctx).name == "triton"
    assert registry.select("dual_bn", **{**ctx, "dtype": torch.float64}).name == "ref"
    monkeypatch.setenv(registry.ENV_VAR, "dual_bn=ref")
    assert registry.select("dual_bn", **ctx).name == "ref"


def test_compiled_reference_matches_eager():
    """One small torch.compile run (cached in TORCHINDUCTOR_CACHE_DIR)."""
    x = torch.randn(6, 4, 5, 5)
    w, b = torch.randn(2, 4), torch.randn(2, 4)
    rm1, rv1 = torch.zeros(2, 4), torch.ones(2, 4)
    rm2, rv2 = rm1.clone(), rv1.clone()
    got = dual_bn(x, 2, w, b, rm1, rv1, True, 0.1, 1e-5, backend="ref_compiled")
    want = dual_bn_ref(x, 2, w, b, rm2, rv2, True, 0.1, 1e-5)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(rm1, rm2)
    torch.testing.assert_close(rv1, rv2)
    assert not torch.equal(rm1, torch.zeros(2, 4))
