"""The ``cpu`` backend of dual_bn against the reference: bitwise equal outputs, gradients (input,
residual, both domains' weights and biases) and running statistics, in every case the module
meets; the registry picks it on CPU and ``SYNTHCLONE_OPS_BACKEND=dual_bn=ref`` forces the
reference."""
import copy

import pytest
import torch
import torchvision

from engine.ops import registry
from engine.ops.dual_bn import (DualBatchNorm2d, convert_dual_bn, dual_bn, dual_bn_split,
                                fuse_resnet_tails, set_eval_domain)

C = 4
SHAPE = (5, C, 3, 3)
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def assert_same(got, want, msg=""):
    """Bitwise: same dtype, same values (the cpu path runs the reference's own kernels)."""
    torch.testing.assert_close(got, want, rtol=0, atol=0, msg=msg)


def _leaf(t):
    return t.detach().clone().requires_grad_()


def _inputs(dtype, layout, affine=True, stats=True, residual=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(SHAPE, generator=g) * 3 + 1).to(dtype).contiguous(memory_format=LAYOUTS[layout])
    return dict(
        x=x,
        weight=torch.randn(2, C, generator=g) if affine else None,
        bias=torch.randn(2, C, generator=g) if affine else None,
        running_mean=torch.randn(2, C, generator=g) if stats else None,
        running_var=torch.rand(2, C, generator=g) + 0.5 if stats else None,
        residual=torch.randn(SHAPE, generator=g).to(dtype) if residual else None,
        gy=torch.randn(SHAPE, generator=g).to(dtype),
    )


def _run(backend, inp, k, training, relu):
    """One forward + backward through ``dual_bn``; -> everything it produced or changed."""
    x = _leaf(inp["x"])
    w, b, r = (None if inp[n] is None else _leaf(inp[n]) for n in ("weight", "bias", "residual"))
    rm, rv = (None if inp[n] is None else inp[n].clone() for n in ("running_mean", "running_var"))
    y = dual_bn(x, k, w, b, rm, rv, training, (0.1, 0.3), 1e-5, residual=r, relu=relu,
                backend=backend)
    y.backward(inp["gy"])
    out = {"y": y.detach(), "dx": x.grad}
    for name, t in (("dw", w), ("db", b), ("dres", r)):
        if t is not None:
            out[name] = t.grad
    for name, t in (("running_mean", rm), ("running_var", rv)):
        if t is not None:
            out[name] = t
    return out, y


@pytest.mark.parametrize("k", [0, 1, 3, 4, 5])  # one domain only, 1-row domains, both
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_backend_is_bitwise_equal_to_reference(k, training, layout, dtype):
    for residual, relu in ((False, False), (False, True), (True, False), (True, True)):
        inp = _inputs(dtype, layout, residual=residual, seed=k)
        got, y = _run("cpu", inp, k, training, relu)
        want, _ = _run("ref", inp, k, training, relu)
        assert got.keys() == want.keys()
        for name in want:
            assert_same(got[name], want[name], msg=f"{name} (residual={residual}, relu={relu})")
        assert y.dtype == dtype
        assert y.is_contiguous(memory_format=LAYOUTS[layout])  # keeps the input's layout
        assert type(y.grad_fn).__name__ != "CatBackward0"
        if training and 0 < k < SHAPE[0]:  # both domains updated their own statistics
            assert not torch.equal(got["running_mean"], inp["running_mean"])


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("training", [True, False])
def test_cpu_backend_half_precision(k, training):
    inp = _inputs(torch.float16, "channels_last", residual=True, seed=k)
    got, y = _run("cpu", inp, k, training, True)
    want, _ = _run("ref", inp, k, training, True)
    for name in want:
        assert_same(got[name], want[name], msg=name)
    assert y.dtype == torch.float16 and y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("affine, stats", [(False, True), (True, False), (False, False)])
def test_cpu_backend_without_affine_or_running_stats(affine, stats):
    inp = _inputs(torch.float32, "nchw", affine=affine, stats=stats, residual=True)
    got, _ = _run("cpu", inp, 2, True, True)
    want, _ = _run("ref", inp, 2, True, True)
    assert got.keys() == want.keys()
    for name in want:
        assert_same(got[name], want[name], msg=name)


def test_absent_domain_gets_zero_gradients_and_untouched_statistics():
    inp = _inputs(torch.float32, "nchw")
    got, _ = _run("cpu", inp, 5, True, False)  # all real
    assert_same(got["dw"][1], torch.zeros(C))
    assert_same(got["db"][1], torch.zeros(C))
    assert_same(got["running_var"][1], inp["running_var"][1])
    assert got["dw"][0].abs().sum() > 0


@pytest.mark.parametrize("backend", ["cpu", "ref"])
def test_module_absent_domain_parameters_get_zero_gradients(backend):
    """Every parameter gets a gradient on every step (DDP needs no find_unused_parameters)."""
    bn = DualBatchNorm2d(C, backend=backend).train()
    bn(_leaf(torch.randn(SHAPE)), num_real=SHAPE[0]).square().sum().backward()
    for name in ("syn_weight", "syn_bias"):
        assert_same(getattr(bn, name).grad, torch.zeros(C), msg=name)
    assert bn.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("k", [1, 2])
def test_single_value_per_channel_is_refused_like_the_reference(k):
    x = torch.randn(3, C, 1, 1)  # a domain of 1 row x 1 pixel: no batch variance
    for backend in ("cpu", "ref"):
        with pytest.raises(ValueError, match="single value per channel"):
            dual_bn(x, k, None, None, None, None, True, backend=backend)
    # in eval the running statistics are used: fine, and equal
    rm, rv = torch.zeros(2, C), torch.ones(2, C)
    assert_same(dual_bn(x, 1, None, None, rm, rv, False, backend="cpu"),
                dual_bn(x, 1, None, None, rm, rv, False, backend="ref"))


def test_pairs_and_stacked_arguments_agree_for_every_backend():
    """The module passes (real, synthetic) pairs: ``cpu`` updates them in place, ``ref`` gets
    them stacked and copied back."""
    inp = _inputs(torch.float32, "channels_last")
    want, _ = _run("ref", inp, 2, True, True)
    for backend in ("cpu", "ref"):
        w = [_leaf(inp["weight"][d]) for d in (0, 1)]
        rm = [inp["running_mean"][d].clone() for d in (0, 1)]
        rv = [inp["running_var"][d].clone() for d in (0, 1)]
        x = _leaf(inp["x"])
        y = dual_bn(x, 2, tuple(w), (inp["bias"][0], inp["bias"][1]), tuple(rm), tuple(rv),
                    True, (0.1, 0.3), 1e-5, relu=True, backend=backend)
        y.backward(inp["gy"])
        assert_same(y.detach(), want["y"])
        assert_same(x.grad, want["dx"])
        assert_same(torch.stack([w[0].grad, w[1].grad]), want["dw"])
        assert_same(torch.stack(rm), want["running_mean"])
        assert_same(torch.stack(rv), want["running_var"])
    with pytest.raises(ValueError, match="pair"):
        dual_bn(inp["x"], 2, (inp["weight"][0], None), None, None, None, backend="cpu")


def test_registry_prefers_cpu_backend_and_states_why_not(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    ctx = dict(device_type="cpu", dtype=torch.float32, explicit=False, dense=True)
    assert registry.select("dual_bn", **ctx).name == "cpu"
    assert registry.select("dual_bn", **{**ctx, "dtype": torch.bfloat16}).name == "cpu"
    why = dict(registry.explain("dual_bn", **{**ctx, "dtype": torch.float64}))
    assert "float64" in why["cpu"] and why["ref"] is None
    why = dict(registry.explain("dual_bn", **{**ctx, "dense": False}))
    assert "contiguous" in why["cpu"]
    why = dict(registry.explain("dual_bn", **{**ctx, "device_type": "cuda"}))
    assert "CPU tensor" in why["cpu"]
    # a strided input (every other row) falls back to the reference, and still agrees with it
    x = torch.randn(8, C, 3, 3)[::2]
    y = dual_bn(x, 2, None, None, None, None, True)
    assert type(y.grad_fn).__name__ != "DualBNCPUFunctionBackward"
    with pytest.raises(RuntimeError, match="contiguous"):
        dual_bn(x, 2, None, None, None, None, True, backend="cpu")


def _module_pair(**kwargs):
    torch.manual_seed(3)
    fast = DualBatchNorm2d(C, **kwargs)
    with torch.no_grad():
        for p in fast.parameters():
            p.copy_(torch.randn_like(p))
    return fast, copy.deepcopy(fast)


def _module_step(m, x, k, gy, **kwargs):
    x = _leaf(x)
    y = m(x, num_real=k, **kwargs)
    y.backward(gy)
    return y, x.grad


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_module_default_backend_equals_forced_reference(monkeypatch, momentum, layout):
    """Several training steps (both domains, all real, all synthetic), then eval on each
    domain: the module on its default CPU backend against the same module with the reference
    forced through SYNTHCLONE_OPS_BACKEND."""
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    fast, ref = _module_pair(momentum=momentum, relu=True)
    g = torch.Generator().manual_seed(4)
    for step, k in enumerate((2, 5, 0, 3)):
        x = (torch.randn(SHAPE, generator=g) * (step + 1)).contiguous(memory_format=LAYOUTS[layout])
        res, gy = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
        monkeypatch.delenv(registry.ENV_VAR, raising=False)
        y1, dx1 = _module_step(fast.train(), x, k, gy, residual=res)
        assert type(y1.grad_fn).__name__ == "DualBNCPUFunctionBackward"
        monkeypatch.setenv(registry.ENV_VAR, "dual_bn=ref")
        y2, dx2 = _module_step(ref.train(), x, k, gy, residual=res)
        assert type(y2.grad_fn).__name__ != "DualBNCPUFunctionBackward"
        assert_same(y1, y2, msg=f"step {step}")
        assert_same(dx1, dx2, msg=f"step {step}")
        assert y1.is_contiguous(memory_format=LAYOUTS[layout])
    for name, t in ref.state_dict().items():
        assert_same(fast.state_dict()[name], t, msg=name)
    assert int(fast.num_batches_tracked) == 3 and int(fast.syn_num_batches_tracked) == 3
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert_same(p.grad, q.grad, msg=name)  # accumulated over the 4 steps
    x = torch.randn(SHAPE, generator=g).contiguous(memory_format=LAYOUTS[layout])
    for domain in ("real", "synthetic", "split"):
        set_eval_domain(fast, domain), set_eval_domain(ref, domain)
        monkeypatch.delenv(registry.ENV_VAR, raising=False)
        y1, dx1 = _module_step(fast.eval(), x, 2, torch.ones(SHAPE))
        monkeypatch.setenv(registry.ENV_VAR, "dual_bn=ref")
        y2, dx2 = _module_step(ref.eval(), x, 2, torch.ones(SHAPE))
        assert_same(y1, y2, msg=domain)
        assert_same(dx1, dx2, msg=domain)
    for name, t in ref.state_dict().items():  # eval changed nothing
        assert_same(fast.state_dict()[name], t, msg=name)


def test_module_without_running_stats_in_eval_uses_batch_statistics():
    fast, ref = _module_pair(track_running_stats=False)
    ref.backend = "ref"
    x = torch.randn(SHAPE)
    fast.eval(), ref.eval()
    with torch.no_grad():
        assert_same(fast(x, num_real=2), ref(x, num_real=2))


def test_resnet_training_step_equals_reference():
    """A converted, tail-fused ResNet-18: one training step on the cpu backend and on the
    reference give the same logits, every gradient and every running statistic, bitwise."""
    torch.manual_seed(0)
    fast = convert_dual_bn(torchvision.models.resnet18(num_classes=10)).train()
    fuse_resnet_tails(fast)
    ref = copy.deepcopy(fast)
    for m in ref.modules():
        if isinstance(m, DualBatchNorm2d):
            m.backend = "ref"
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=torch.channels_last)
    fast, ref = fast.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)
    outs = []
    for model in (fast, ref):
        with dual_bn_split(model, 2):
            logits = model(x)
        logits.square().sum().backward()
        outs.append(logits)
    assert_same(outs[0], outs[1])
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert_same(p.grad, q.grad, msg=name)
    for (name, t), u in zip(fast.state_dict().items(), ref.state_dict().values()):
        assert_same(t, u, msg=name)


def test_module_composes_with_torch_compile():
    """Dynamo traces the autograd.Function (no graph break); aot_eager runs the same kernels."""
    import torch._dynamo

    torch._dynamo.reset()
    fast, eager = _module_pair(relu=True)
    x, res = torch.randn(SHAPE), torch.randn(SHAPE)

    def fn(m, x, res):
        return m(x, num_real=2, residual=res)

    explained = torch._dynamo.explain(fn)(copy.deepcopy(fast), x, res)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    x1, x2 = _leaf(x), _leaf(x)
    y1, y2 = compiled(fast.train(), x1, res), fn(eager.train(), x2, res)
    torch.testing.assert_close(y1, y2)
    y1.sum().backward(), y2.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for (name, p), q in zip(fast.named_parameters(), eager.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    for (name, t), u in zip(fast.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(t, u, msg=name)
