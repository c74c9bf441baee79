"""DualSyncBatchNorm2d in a 2-process gloo group on CPU against dual_bn_ref over the global batch.

One spawn of 2 processes runs every case of ``CASES``; the parent compares each rank's output,
input gradient, summed weight/bias gradients, running statistics and ``num_batches_tracked``
with the single-process reference on the concatenated batch (every rank's real rows first, then
every rank's synthetic rows).

Tolerances (fp32): rtol 1e-5 and atol 1e-5 for unit-scale data.  Where |mean| ≫ std an fp32
mean is itself only known to an ulp of |x| (ulp(1000) = 6.1e-5, the reference's own error), so
the large-mean case allows ``atol = 4·eps·max|x|/std`` (≈ 4.8e-4 for x ~ 1000 + N(0, 1)).  The
old E[x²] − E[x]² formula misses that case by ~0.3 (its variance is ~20% off); see
``test_large_mean_case_defeats_the_one_pass_variance``.
"""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from engine.ops.dual_bn import DualBatchNorm2d, DualSyncBatchNorm2d, dual_bn_ref
from engine.ops.dual_bn.sync import merge_domain_stats, sync_dual_bn

C, H, W = 3, 2, 3
EPS32 = torch.finfo(torch.float32).eps
LARGE_MEAN = 1000.0
# per-rank (batch size, num_real); x of rank r ~ offset + spread·r + (1 + spread·r)·N(0, 1)
CASES = {
    "uneven": dict(splits=[(4, 2), (3, 0)], offset=0.0, momentum=0.2, relu=True),  # rank 1: no real
    "no_synthetic": dict(splits=[(3, 1), (4, 4)], offset=0.5, momentum=0.1, relu=False),
    "large_mean": dict(splits=[(5, 2), (3, 3)], offset=LARGE_MEAN, spread=0.0, momentum=0.2,
                       relu=True),
    "channels_last": dict(splits=[(4, 1), (2, 0)], offset=0.0, momentum=0.2, relu=True,
                          channels_last=True, residual=True),
    "empty_rank": dict(splits=[(5, 2), (0, 0)], offset=-1.0, momentum=None, relu=False),
}


def _data(name, rank):
    """(x, grad of y, residual or None) of ``rank`` in case ``name``."""
    case = CASES[name]
    g = torch.Generator().manual_seed(100 * list(CASES).index(name) + rank)
    n = case["splits"][rank][0]
    spread = case.get("spread", 1.0)
    x = case["offset"] + spread * rank + (1 + spread * rank) * torch.randn(n, C, H, W, generator=g)
    gy = torch.randn(n, C, H, W, generator=g)
    res = torch.randn(n, C, H, W, generator=g) if case.get("residual") else None  # NCHW
    if case.get("channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    return x, gy, res


def _params():
    """weight, bias (2, C) and running mean, var (2, C): row 0 real, row 1 synthetic."""
    g = torch.Generator().manual_seed(7)
    w, b, rm = (torch.randn(2, C, generator=g) for _ in range(3))
    return w, b, rm, torch.rand(2, C, generator=g) + 0.5


def _module(momentum, relu):
    bn = DualSyncBatchNorm2d(C, momentum=momentum, relu=relu).train()
    w, b, rm, rv = _params()
    with torch.no_grad():
        for prefix, d in (("", 0), ("syn_", 1)):
            for name, value in (("weight", w), ("bias", b), ("running_mean", rm),
                                ("running_var", rv)):
                getattr(bn, prefix + name).copy_(value[d])
    return bn


def _run_case(name, rank):
    case = CASES[name]
    bn = _module(case["momentum"], case["relu"])
    x, gy, res = _data(name, rank)
    x.requires_grad_()
    y = bn(x, num_real=case["splits"][rank][1], residual=res)
    (y * gy).sum().backward()
    grads = {p: getattr(bn, p).grad.clone() for p in ("weight", "syn_weight", "bias", "syn_bias")}
    return {"y": y.detach(), "dx": x.grad, **grads,
            **{b: getattr(bn, b).clone() for b, _ in bn.named_buffers()},
            "channels_last": y.is_contiguous(memory_format=torch.channels_last)
            and not y.is_contiguous()}


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out = {name: _run_case(name, rank) for name in CASES}
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _reference(name):
    """The reference over the global batch: y, dx, weight/bias grads and running statistics,
    and for each rank the global rows of its own rows."""
    case = CASES[name]
    data = [_data(name, r) for r in range(2)]
    splits = case["splits"]
    by_domain = [[t[:k] for (t, *_), (_, k) in zip(data, splits)],
                 [t[k:] for (t, *_), (_, k) in zip(data, splits)]]
    x = torch.cat(by_domain[0] + by_domain[1])
    if case.get("channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()

    def glob(i):  # tensor i of every rank's data in the global order
        return torch.cat([t[i][:k] for t, (_, k) in zip(data, splits)]
                         + [t[i][k:] for t, (_, k) in zip(data, splits)])

    gy, res = glob(1), glob(2) if case.get("residual") else None
    w, b, rm, rv = _params()
    w.requires_grad_(), b.requires_grad_()
    momentum = 1.0 if case["momentum"] is None else case["momentum"]  # None: 1/tracked, tracked = 1
    k_total = sum(k for _, k in splits)
    y = dual_bn_ref(x, k_total, w, b, rm, rv, True, momentum, 1e-5, residual=res, relu=case["relu"])
    (y * gy).sum().backward()
    rows, real_at, syn_at = [], 0, k_total
    for n, k in splits:
        rows.append(torch.cat([torch.arange(real_at, real_at + k),
                               torch.arange(syn_at, syn_at + n - k)]))
        real_at, syn_at = real_at + k, syn_at + n - k
    return {"x": x.detach(), "y": y.detach(), "dx": x.grad, "dw": w.grad, "db": b.grad,
            "rm": rm, "rv": rv, "rows": rows}


def _tolerance(name, x):
    if CASES[name]["offset"] != LARGE_MEAN:
        return {"rtol": 1e-5, "atol": 1e-5}
    return {"rtol": 1e-5, "atol": 4 * EPS32 * float(x.abs().max()) / 1.0}  # std 1


@pytest.mark.timeout(120)
def test_sync_dual_bn_matches_global_reference(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rdzv"), str(tmp_path)), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, case in CASES.items():
        ref = _reference(name)
        tol = _tolerance(name, ref["x"])
        for r in range(2):
            g = got[r][name]
            where = f"case {name!r}, rank {r}"
            for key, want in (("y", ref["y"][ref["rows"][r]]), ("dx", ref["dx"][ref["rows"][r]]),
                              ("running_mean", ref["rm"][0]), ("syn_running_mean", ref["rm"][1]),
                              ("running_var", ref["rv"][0]), ("syn_running_var", ref["rv"][1])):
                torch.testing.assert_close(g[key], want, **tol,
                                           msg=lambda m, key=key: f"{where}, {key}: {m}")
            # a branch counts the batch on every rank when the domain has rows on any rank
            for key in ("num_batches_tracked", "syn_num_batches_tracked"):
                assert int(g[key]) == 1, f"{where}: {key}"
            if case.get("channels_last"):
                assert g["channels_last"], f"{where}: channels_last in -> channels_last out"
        # parameter gradients are local (DDP reduces them): their sum is the global gradient
        for d, prefix in enumerate(("", "syn_")):
            for p, key in (("weight", "dw"), ("bias", "db")):
                torch.testing.assert_close(got[0][name][prefix + p] + got[1][name][prefix + p],
                                           ref[key][d], **tol, msg=f"case {name!r}: {prefix + p}")


def test_large_mean_case_defeats_the_one_pass_variance():
    """The large-mean case can tell the formulas apart: E[x²] − E[x]² in fp32 is far off there."""
    x = torch.cat([_data("large_mean", r)[0] for r in range(2)])
    exact = x.double().var((0, 2, 3), correction=0)
    one_pass = (x * x).mean((0, 2, 3)) - x.mean((0, 2, 3)) ** 2
    assert ((one_pass.double() - exact).abs() / exact).max() > 0.02


def test_merge_domain_stats_matches_the_whole_batch():
    """Chan et al.'s merge of uneven per-rank chunks (one empty) equals statistics of the whole."""
    g = torch.Generator().manual_seed(3)
    x = (LARGE_MEAN + torch.randn(12, C, generator=g)).double()  # rows = values of one domain
    chunks = [x[:5], x[5:5], x[5:6], x[6:]]  # uneven, one empty rank
    rows = []
    for part in chunks:
        stats = torch.zeros(2, 2 * C + 1, dtype=torch.float64)
        if len(part):
            var, mean = torch.var_mean(part, 0, correction=0)
            stats[1] = torch.cat([torch.tensor([float(len(part))], dtype=torch.float64), mean, var])
        rows.append(stats)  # domain 0 is empty on every rank
    count, mean, var = merge_domain_stats(torch.stack(rows))
    assert count.tolist() == [0.0, 12.0]
    torch.testing.assert_close(mean[1], x.mean(0), rtol=1e-12, atol=0)
    torch.testing.assert_close(var[1], x.var(0, correction=0), rtol=1e-9, atol=0)


@pytest.mark.timeout(60)
def test_world_size_one(tmp_path):
    """In a 1-process group the module is the plain DualBatchNorm2d path: bitwise the reference;
    ``sync_dual_bn`` itself (the merge of one rank) matches the reference closely."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        for name in ("uneven", "large_mean", "channels_last"):
            case = CASES[name]
            x, gy, res = _data(name, 0)
            k = case["splits"][0][1]
            bn = _module(case["momentum"], case["relu"])
            xm = x.clone().requires_grad_()
            y = bn(xm, num_real=k, residual=res)
            (y * gy).sum().backward()
            w, b, rm, rv = _params()
            w.requires_grad_(), b.requires_grad_()
            xr = x.clone().requires_grad_()
            y_ref = dual_bn_ref(xr, k, w, b, rm, rv, True, case["momentum"], 1e-5, res,
                                case["relu"])
            (y_ref * gy).sum().backward()
            for got, want in ((y, y_ref), (xm.grad, xr.grad), (bn.weight.grad, w.grad[0]),
                              (bn.syn_bias.grad, b.grad[1]), (bn.running_var, rv[0]),
                              (bn.syn_running_mean, rm[1])):
                assert torch.equal(got, want), name
            assert y.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(
                memory_format=torch.channels_last)
            # the synchronized function on one rank
            w2, b2, rm2, rv2 = _params()
            xs = x.clone().requires_grad_()
            y_sync = sync_dual_bn(xs, k, w2, b2, rm2, rv2, case["momentum"], 1e-5, res,
                                  case["relu"])
            (y_sync * gy).sum().backward()
            tol = _tolerance(name, x)
            torch.testing.assert_close(y_sync, y_ref, **tol)
            torch.testing.assert_close(xs.grad, xr.grad, **tol)
            torch.testing.assert_close(rv2, rv, **tol)
            assert y_sync.stride() == y_ref.stride()
    finally:
        dist.destroy_process_group()


def test_not_synced_outside_training():
    """Without a process group (or in eval) it is a DualBatchNorm2d."""
    bn = _module(0.1, False)
    plain = DualBatchNorm2d(C, momentum=0.1)
    plain.load_state_dict(bn.state_dict())
    x = _data("uneven", 0)[0]
    assert torch.equal(bn(x, num_real=2), plain(x, num_real=2))
