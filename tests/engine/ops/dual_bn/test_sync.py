"""DualSyncBatchNorm2d in a 2-process gloo group on CPU against dual_bn_ref over the global batch."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from engine.ops.dual_bn import dual_bn_ref
from engine.ops.dual_bn import DualSyncBatchNorm2d

C = 3
SPLITS = [(4, 2), (3, 0)]  # (batch size, num_real) per rank: rank 1 has no real sample


def _data(rank):
    g = torch.Generator().manual_seed(100 + rank)
    n = SPLITS[rank][0]
    x = torch.randn(n, C, 2, 3, generator=g) * (rank + 1) + rank
    gy = torch.randn(n, C, 2, 3, generator=g)
    return x, gy


def _residual(rank):
    g = torch.Generator().manual_seed(200 + rank)
    return torch.randn(SPLITS[rank][0], C, 2, 3, generator=g)  # NCHW-contiguous


def _params():
    g = torch.Generator().manual_seed(7)
    return {name: torch.randn(C, generator=g) for name in ("weight", "bias", "syn_weight", "syn_bias")}


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        bn = DualSyncBatchNorm2d(C, momentum=0.2, relu=True).train()
        with torch.no_grad():
            for name, value in _params().items():
                getattr(bn, name).copy_(value)
        x, gy = _data(rank)
        x.requires_grad_()
        y = bn(x, num_real=SPLITS[rank][1])
        (y * gy).sum().backward()
        # channels_last in -> channels_last out, whatever the residual's layout (reference tail)
        bn_cl = DualSyncBatchNorm2d(C, momentum=0.2, relu=True).train()
        bn_cl.load_state_dict(bn.state_dict())
        x_cl = x.detach().contiguous(memory_format=torch.channels_last)
        res = _residual(rank)
        y_cl = bn_cl(x_cl, num_real=SPLITS[rank][1], residual=res)
        torch.save({"y": y.detach(), "dx": x.grad, "dw": bn.weight.grad.clone(),
                    "dsw": bn.syn_weight.grad.clone(), "rm": bn.running_mean.clone(),
                    "srv": bn.syn_running_var.clone(), "y_cl": y_cl.detach(),
                    "y_cl_is_channels_last": y_cl.is_contiguous(memory_format=torch.channels_last)
                    and not y_cl.is_contiguous()},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_sync_dual_bn_matches_global_reference(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rdzv"), str(tmp_path)), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # Reference: every rank's real samples first, then every rank's synthetic ones.
    xs, gys = zip(*(_data(r) for r in range(2)))
    reals = [x[:k] for x, (_, k) in zip(xs, SPLITS)]
    syns = [x[k:] for x, (_, k) in zip(xs, SPLITS)]
    k_total = sum(r.shape[0] for r in reals)
    x = torch.cat(reals + syns).requires_grad_()
    gy = torch.cat([g[:k] for g, (_, k) in zip(gys, SPLITS)] + [g[k:] for g, (_, k) in zip(gys, SPLITS)])
    p = _params()
    w = torch.stack([p["weight"], p["syn_weight"]]).requires_grad_()
    b = torch.stack([p["bias"], p["syn_bias"]])
    rm, rv = torch.zeros(2, C), torch.ones(2, C)
    y = dual_bn_ref(x, k_total, w, b, rm, rv, True, 0.2, 1e-5, relu=True)
    (y * gy).sum().backward()
    # Global rows: reals [0, 2) all from rank 0; synthetic [2, 4) from rank 0, [4, 7) from rank 1.
    rows = [torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6])]
    for r in range(2):
        torch.testing.assert_close(got[r]["y"], y.detach()[rows[r]], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got[r]["dx"], x.grad[rows[r]], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got[r]["rm"], rm[0])
        torch.testing.assert_close(got[r]["srv"], rv[1], rtol=1e-4, atol=1e-5)
    # The channels_last call (after the first: running statistics moved, batch statistics used)
    # against the reference on the channels_last global batch with the residual.
    res = torch.cat([_residual(r)[:k] for r, (_, k) in enumerate(SPLITS)]
                    + [_residual(r)[k:] for r, (_, k) in enumerate(SPLITS)])
    x_cl = x.detach().contiguous(memory_format=torch.channels_last)
    y_cl = dual_bn_ref(x_cl, k_total, w.detach(), b, rm.clone(), rv.clone(), True, 0.2, 1e-5,
                       residual=res, relu=True)
    assert y_cl.is_contiguous(memory_format=torch.channels_last) and not y_cl.is_contiguous()
    for r in range(2):
        assert got[r]["y_cl_is_channels_last"]
        torch.testing.assert_close(got[r]["y_cl"], y_cl[rows[r]], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[0]["dw"] + got[1]["dw"], w.grad[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[0]["dsw"] + got[1]["dsw"], w.grad[1], rtol=1e-4, atol=1e-5)
