"""The Triton dual-BN kernels against dual_bn_ref: outputs, gradients, running statistics.

Collected through test_triton.py: on CUDA directly; on a CPU machine in a subprocess
with TRITON_INTERPRET=1 (it must be set before triton is first imported), at tiny shapes.
"""
import copy

import pytest
import torch
import torch.nn as nn

from engine.ops.dual_bn import dual_bn
from engine.ops.dual_bn import DualBatchNorm2d


@pytest.fixture
def device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def _run(backend, x, k, w, b, rm, rv, training, residual, relu, gy):
    xx = x.clone().requires_grad_()
    ww, bb = w.clone().requires_grad_(), b.clone().requires_grad_()
    rr = residual.clone().requires_grad_() if residual is not None else None
    rm, rv = rm.clone(), rv.clone()
    y = dual_bn(xx, k, ww, bb, rm, rv, training, (0.1, 0.25), 1e-5, rr, relu, backend=backend)
    (y.float() * gy).sum().backward()
    return dict(y=y, dx=xx.grad, dw=ww.grad, db=bb.grad, rm=rm, rv=rv,
                dres=rr.grad if rr is not None else None)


CASES = [  # (layout, k, training, residual, relu)
    ("nchw", 2, True, False, False),
    ("nchw", 3, True, True, True),
    ("channels_last", 2, True, False, True),
    ("channels_last", 1, True, True, True),
    ("nchw", 2, False, True, True),
    ("channels_last", 4, True, False, False),  # all real: the synthetic branch is untouched
    ("nchw", 0, True, False, False),  # all synthetic
]


@pytest.mark.parametrize("layout, k, training, residual, relu", CASES)
def test_triton_matches_reference_fp32(device, layout, k, training, residual, relu):
    g = torch.Generator().manual_seed(k + 10 * relu)
    n, c, h, w = 4, 5, 3, 3
    x = (torch.randn(n, c, h, w, generator=g) * 2 + 0.5).to(device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    res = torch.randn(n, c, h, w, generator=g).to(device) if residual else None
    wt = torch.randn(2, c, generator=g).to(device)
    bs = torch.randn(2, c, generator=g).to(device)
    rm = torch.randn(2, c, generator=g).to(device)
    rv = (torch.rand(2, c, generator=g) + 0.5).to(device)
    gy = torch.randn(n, c, h, w, generator=g).to(device)
    got = _run("triton", x, k, wt, bs, rm, rv, training, res, relu, gy)
    want = _run("ref", x, k, wt, bs, rm, rv, training, res, relu, gy)
    assert got["y"].stride() == x.stride()
    for key in want:
        if want[key] is None:
            assert got[key] is None
            continue
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4, msg=key)
    if training:
        moved = (got["rm"] != rm).any(dim=1).tolist()
        assert moved == [k > 0, k < n]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_precision_accumulates_in_fp32(device, dtype):
    g = torch.Generator().manual_seed(3)
    n, c = 6, 3
    # A large common offset: a half-precision accumulator would lose the variance.
    x = (torch.randn(n, c, 4, 4, generator=g) + 30).to(device, dtype)
    wt, bs = torch.randn(2, c, generator=g).to(device), torch.randn(2, c, generator=g).to(device)
    rm, rv = torch.zeros(2, c, device=device), torch.ones(2, c, device=device)
    gy = torch.randn(n, c, 4, 4, generator=g).to(device)
    got = _run("triton", x, 2, wt, bs, rm, rv, True, None, True, gy)
    want = _run("ref", x, 2, wt, bs, rm, rv, True, None, True, gy)
    assert got["y"].dtype == dtype and got["dx"].dtype == dtype
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=5e-3, atol=5e-3)
    torch.testing.assert_close(got["y"], want["y"], **tol)
    torch.testing.assert_close(got["dx"], want["dx"], **tol)
    for key in ("dw", "db", "rm", "rv"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-3, atol=1e-3, msg=key)


def test_module_triton_backend_matches_reference(device):
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), DualBatchNorm2d(4, relu=True)).to(device)
    nets = {b: copy.deepcopy(net) for b in ("triton", "ref")}
    x = torch.randn(3, 3, 4, 4, device=device)
    out = {}
    for backend, m in nets.items():
        m[1].backend = backend
        y = m[1](m[0](x), num_real=1, residual=x[:, :1].expand(-1, 4, -1, -1).contiguous())
        y.square().sum().backward()
        out[backend] = (y, m[0].weight.grad, m[1].syn_weight.grad, m[1].running_var, m[1].syn_running_mean)
    for a, b in zip(out["triton"], out["ref"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_triton_one_by_one_spatial_uneven_chunks(device, training):
    """1x1 maps (a classifier-head BN): domains of 3 and 4 rows cut into uneven chunks."""
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(7, 5, 1, 1, generator=g) * 3 - 1).to(device)
    wt, bs = torch.randn(2, 5, generator=g).to(device), torch.randn(2, 5, generator=g).to(device)
    rm, rv = torch.randn(2, 5, generator=g).to(device), (torch.rand(2, 5, generator=g) + 0.5).to(device)
    gy = torch.randn(7, 5, 1, 1, generator=g).to(device)
    got = _run("triton", x, 3, wt, bs, rm, rv, training, None, False, gy)
    want = _run("ref", x, 3, wt, bs, rm, rv, training, None, False, gy)
    for key in ("y", "dx", "dw", "db", "rm", "rv"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4, msg=key)
