"""``python -m bench dual_bn [--quick]``: domain-specific batch norm, training-mode forward.

CPU (always): the reference ``dual_bn_ref`` eager and under ``torch.compile`` against two plain
``BatchNorm2d`` calls on the two halves (+ the ``cat`` that makes one output) and one
``BatchNorm2d`` over the whole batch (the lower bound).  Target: ``compiled_ref_vs_single_bn``
<= 1.15.  ``--backward`` times forward + backward instead.

CUDA (where a GPU is present): the fused Triton kernel in Triton ``perf_report`` style, GB/s
(input read + output written once) against the bandwidth bound measured by a device copy of the
same bytes, NCHW and channels_last, next to the same torch baselines.
"""
from __future__ import annotations

import argparse
import sys

from bench.common import pin_threads, table, timeit

BOUND_TARGET = 1.15


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench dual_bn", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller batch, fewer repeats")
    p.add_argument("--shape", type=int, nargs=4, metavar=("N", "C", "H", "W"), default=None,
                   help="batch shape (default 32 64 56 56, quick 16 64 28 28: ResNet-50 layer 1)")
    p.add_argument("--real-fraction", type=float, default=0.5, help="share of real samples")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default 25, quick 15)")
    p.add_argument("--backward", action="store_true", help="time forward + backward")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA section")
    return p


def _cpu_providers(x, k, backward: bool):
    import torch
    import torch.nn.functional as F

    from engine.ops.dual_bn import compiled_ref
    from engine.ops.dual_bn_ref import dual_bn_ref

    c = x.shape[1]
    w, b = torch.randn(2, c).requires_grad_(backward), torch.randn(2, c).requires_grad_(backward)
    rm, rv = torch.zeros(2, c), torch.ones(2, c)
    compiled = compiled_ref()

    def single():
        return F.batch_norm(x, rm[0], rv[0], w[0], b[0], True, 0.1, 1e-5)

    def two():
        return torch.cat([F.batch_norm(x[:k], rm[0], rv[0], w[0], b[0], True, 0.1, 1e-5),
                          F.batch_norm(x[k:], rm[1], rv[1], w[1], b[1], True, 0.1, 1e-5)])

    def ref():
        return dual_bn_ref(x, k, w, b, rm, rv, True, 0.1, 1e-5)

    def comp():
        return compiled(x, k, w, b, rm, rv, True, 0.1, 1e-5)

    fns = {"single_bn": single, "two_bn": two, "ref_eager": ref, "ref_compiled": comp}
    if not backward:
        return fns
    gy = torch.randn_like(x)
    return {name: (lambda f=f: f().backward(gy)) for name, f in fns.items()}


def interleaved(fns: dict, repeat: int, warmup: int = 2) -> dict:
    """``timeit`` of each function, runs interleaved round-robin so that load from other
    processes on the shared machine falls on every provider alike."""
    samples = {name: [] for name in fns}
    for i in range(warmup + repeat):
        for name, fn in fns.items():
            t = timeit(fn, repeat=1, warmup=0)["median"]
            if i >= warmup:
                samples[name].append(t)
    out = {}
    for name, ts in samples.items():
        ts.sort()
        q = lambda p: ts[min(len(ts) - 1, int(round(p * (len(ts) - 1))))]  # noqa: E731
        out[name] = {"median": q(0.5), "p20": q(0.2), "p80": q(0.8), "runs": len(ts)}
    return out


def run_cpu(args) -> dict:
    import torch

    n, c, h, w = args.shape
    k = int(round(n * args.real_fraction))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g) * 2 + 1
    if args.backward:
        x.requires_grad_()
    fns = _cpu_providers(x, k, args.backward)
    print("compiling the reference (first time ~1 min on 2 cores; cached after)...", file=sys.stderr)
    fns["ref_compiled"]()
    fns["ref_compiled"]()
    times = interleaved(fns, args.repeat)
    base = times["single_bn"]["median"]
    rows = [{"provider": name, "median_ms": 1e3 * t["median"], "p20_ms": 1e3 * t["p20"],
             "p80_ms": 1e3 * t["p80"], "vs_single_bn": t["median"] / base}
            for name, t in times.items()]
    table(rows, f"dual BN {'fwd+bwd' if args.backward else 'forward'} (training), "
                f"x={n}x{c}x{h}x{w} fp32 NCHW, {k} real, CPU")
    ratio = times["ref_compiled"]["median"] / base
    return {
        "compiled_ref_vs_single_bn": ratio,
        "eager_ref_vs_single_bn": times["ref_eager"]["median"] / base,
        "two_bn_vs_single_bn": times["two_bn"]["median"] / base,
        "target": BOUND_TARGET,
        "meets_target": ratio <= BOUND_TARGET,
        "cpu_ms": {name: 1e3 * t["median"] for name, t in times.items()},
        "pass": "fwd+bwd" if args.backward else "forward",
        "shape": [n, c, h, w],
        "num_real": k,
    }


def run_cuda(quick: bool) -> dict:
    """Triton perf_report over the batch size, NCHW and channels_last; returns GB/s per config."""
    import torch
    import torch.nn.functional as F
    import triton
    import triton.testing

    from engine.ops.dual_bn import dual_bn_triton

    c, h, w = 64, 56, 56
    results = []

    @triton.testing.perf_report([
        triton.testing.Benchmark(
            x_names=["N"], x_vals=[16, 64] if quick else [16, 32, 64, 128, 256],
            line_arg="provider", line_vals=["triton", "two_bn", "single_bn", "copy_bound"],
            line_names=["Triton dual BN", "2x BatchNorm2d + cat", "1x BatchNorm2d", "copy (bound)"],
            ylabel="GB/s", plot_name=f"dual-bn-fwd-{layout}-{dtype}", args={"layout": layout, "dtype": dtype})
        for layout in ("nchw", "channels_last") for dtype in ("float16", "float32")])
    def bench_dual_bn(N, provider, layout, dtype):
        dt = getattr(torch, dtype)
        x = torch.randn(N, c, h, w, device="cuda", dtype=dt)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        k = N // 2
        wt, bs = torch.randn(2, c, device="cuda"), torch.randn(2, c, device="cuda")
        rm, rv = torch.zeros(2, c, device="cuda"), torch.ones(2, c, device="cuda")
        fns = {
            "triton": lambda: dual_bn_triton(x, k, wt, bs, rm, rv, True, 0.1, 1e-5),
            "two_bn": lambda: torch.cat([F.batch_norm(x[:k], rm[0], rv[0], wt[0], bs[0], True),
                                         F.batch_norm(x[k:], rm[1], rv[1], wt[1], bs[1], True)]),
            "single_bn": lambda: F.batch_norm(x, rm[0], rv[0], wt[0], bs[0], True),
            "copy_bound": lambda: x.clone(),
        }
        ms, lo, hi = triton.testing.do_bench(fns[provider], quantiles=[0.5, 0.2, 0.8])
        gbps = lambda t: 2 * x.numel() * x.element_size() / (t * 1e-3) / 1e9  # noqa: E731
        results.append({"layout": layout, "dtype": dtype, "N": N, "provider": provider,
                        "ms": ms, "GB_s": gbps(ms)})
        return gbps(ms), gbps(hi), gbps(lo)

    bench_dual_bn.run(print_data=False, show_plots=False)
    table(results, f"dual BN forward on {torch.cuda.get_device_name(0)}, C={c}, {h}x{w}")
    bound = {(r["layout"], r["dtype"], r["N"]): r["GB_s"] for r in results if r["provider"] == "copy_bound"}
    frac = [r["GB_s"] / bound[(r["layout"], r["dtype"], r["N"])] for r in results if r["provider"] == "triton"]
    return {"rows": results, "triton_fraction_of_copy_bw_median": sorted(frac)[len(frac) // 2]}


def main(argv: list[str]) -> dict:
    args = get_args_parser().parse_args(argv)
    import torch

    threads = pin_threads()
    args.shape = args.shape or ([16, 64, 28, 28] if args.quick else [32, 64, 56, 56])
    args.repeat = args.repeat or (15 if args.quick else 25)
    out = run_cpu(args)
    out["env"] = {"threads": threads}
    if torch.cuda.is_available() and not args.no_cuda:
        out["cuda"] = run_cuda(args.quick)
    else:
        out["cuda"] = "skipped: no CUDA device" if not args.no_cuda else "skipped: --no-cuda"
        print("CUDA section skipped (no GPU here).", file=sys.stderr)
    return out
