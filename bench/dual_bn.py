"""``python -m bench dual_bn [--quick]``: domain-specific batch norm in training mode.

CPU (always): the ``dual_bn`` op on each CPU backend (``cpu``, the registry's default on CPU;
``ref``, the plain-PyTorch reference; ``ref_compiled``, the reference under ``torch.compile``)
against two ``F.batch_norm`` calls on the two parts (+ the ``cat`` that makes one output) and
one ``F.batch_norm`` over the whole batch (the lower bound), forward and forward + backward, all
interleaved in one measurement.  (A whole ResNet-50 training step with DualBN vs plain BN,
issue #12's ``dual_bn_step_vs_bn_step``, is measured by ``bench train_step`` through the
trainer's own step.)  Headlines: ``compiled_ref_vs_single_bn`` (forward; target <= 1.15) and
``default_vs_single_bn_fwd_bwd`` (what a training step pays per norm with the *default* CPU
backend, whatever its name: ``default_backend`` in the JSON says which).

CUDA (where a GPU is present): the fused Triton kernel against the same torch baselines and a
device copy of the same bytes (the bandwidth bound), NCHW and channels_last, fp16 and fp32;
``triton_fraction_of_copy_bw`` (copy time / Triton time, channels_last fp16) is its headline.
"""
from __future__ import annotations

import sys

from bench.common import (Method, bench_args, keep_freed_memory, measure, pin_threads, ratio,
                          report, speedup)

BOUND_TARGET = 1.15
"""``compiled_ref_vs_single_bn`` target (forward)."""
EPS, MOMENTUM = 1e-5, 0.1
CPU_BACKENDS = ("cpu", "ref", "ref_compiled")
"""The ``dual_bn`` backends timed on the CPU (the default one among them)."""


def get_args_parser():
    p = bench_args("dual_bn", __doc__)
    p.add_argument("--shape", type=int, nargs=4, metavar=("N", "C", "H", "W"), default=None,
                   help="batch shape (default 32 64 56 56, quick 16 64 28 28: ResNet-50 layer 1)")
    p.add_argument("--real-fraction", type=float, default=0.5, help="share of real samples")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA section")
    return p


def default_backend(x) -> str:
    """The backend the registry picks for ``x`` on this machine (env var included)."""
    from engine.ops.dual_bn.op import backend_for

    name = backend_for(x).name
    if name not in CPU_BACKENDS:
        raise SystemExit(f"bench dual_bn: the default backend here is {name!r}, not a CPU one "
                         f"({', '.join(CPU_BACKENDS)}); unset TRITON_INTERPRET")
    return name


def cpu_methods(x, k: int) -> list[Method]:
    """forward and forward+backward of single_bn, two_bn and each backend of CPU_BACKENDS."""
    import torch
    import torch.nn.functional as F

    from engine.ops.dual_bn import dual_bn

    c = x.shape[1]
    n = x.shape[0]
    g = torch.Generator().manual_seed(1)
    w = torch.randn(2, c, generator=g).requires_grad_()
    b = torch.randn(2, c, generator=g).requires_grad_()
    rm, rv = torch.zeros(2, c), torch.ones(2, c)
    xg = x.detach().clone().requires_grad_()
    gy = torch.randn(x.shape, generator=g)

    def fns(inp):
        out = {
            "single_bn": lambda: F.batch_norm(inp, rm[0], rv[0], w[0], b[0], True, MOMENTUM, EPS),
            "two_bn": lambda: torch.cat([
                F.batch_norm(inp[:k], rm[0], rv[0], w[0], b[0], True, MOMENTUM, EPS),
                F.batch_norm(inp[k:], rm[1], rv[1], w[1], b[1], True, MOMENTUM, EPS)]),
        }
        for name in CPU_BACKENDS:
            out[name] = lambda name=name: dual_bn(inp, k, w, b, rm, rv, True, MOMENTUM, EPS,
                                                  backend=name)
        return out

    methods = []
    with_grad = fns(xg)
    for name, fn in fns(x).items():
        methods.append(Method(name, _no_grad(fn), items_per_call=n,
                              warmup=3 if name == "ref_compiled" else 1))
    for name, fn in with_grad.items():
        methods.append(Method(f"{name}_fwd_bwd", lambda fn=fn: fn().backward(gy),
                              items_per_call=n, warmup=3 if name == "ref_compiled" else 1))
    return methods


def _no_grad(fn):
    def run():
        import torch

        with torch.no_grad():
            return fn()
    return run


def run_cpu(args) -> dict:
    import torch

    n, c, h, w = args.shape
    k = int(round(n * args.real_fraction))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g) * 2 + 1
    backend = default_backend(x)
    print("compiling the reference (first time ~1 min on 2 cores; cached after)...",
          file=sys.stderr)
    methods = cpu_methods(x, k)
    results = measure(methods, rounds=args.rounds, min_seconds=args.min_seconds)
    headline = {
        "compiled_ref_vs_single_bn": ratio(results, "ref_compiled", "single_bn",
                                           target=BOUND_TARGET),
        "default_vs_single_bn_fwd_bwd": ratio(results, f"{backend}_fwd_bwd", "single_bn_fwd_bwd"),
    }
    secondary = {
        "two_bn_vs_single_bn": ratio(results, "two_bn", "single_bn"),
        "two_bn_vs_single_bn_fwd_bwd": ratio(results, "two_bn_fwd_bwd", "single_bn_fwd_bwd"),
    }
    for name in CPU_BACKENDS:
        tag = "compiled_ref" if name == "ref_compiled" else f"backend_{name}"
        if name != "ref_compiled":
            secondary[f"{tag}_vs_single_bn"] = ratio(results, name, "single_bn")
        secondary[f"{tag}_vs_single_bn_fwd_bwd"] = ratio(results, f"{name}_fwd_bwd",
                                                         "single_bn_fwd_bwd")
    return report(results, headline, secondary=secondary, item="sample",
                  title=f"dual BN (training), x={n}x{c}x{h}x{w} fp32 NCHW, {k} real, CPU, "
                        f"{torch.get_num_threads()} threads, default backend {backend!r}",
                  extra={"shape": [n, c, h, w], "num_real": k, "default_backend": backend})


TRITON_CASES_QUICK = [(layout, dtype, 64) for layout in ("nchw", "channels_last")
                      for dtype in ("float16", "float32")]
TRITON_CASES = [(layout, dtype, n) for layout, dtype, _ in TRITON_CASES_QUICK for n in (32, 128)]
TRITON_HEADLINE = ("channels_last", "float16")
TRITON_REPS = 20
"""Launches per timed call (then one synchronize), so host sync does not dominate."""


def triton_methods(cases, device: str, c: int = 64, hw: int = 56,
                   reps: int = TRITON_REPS) -> list[Method]:
    """Per case ``(layout, dtype, N)``: triton / two_bn / single_bn / copy, named
    ``<provider>_<layout>_<dtype>_n<N>``.  ``device`` is "cuda" (or "cpu" under
    TRITON_INTERPRET=1, for tests at tiny sizes)."""
    import torch
    import torch.nn.functional as F

    from engine.ops.dual_bn import dual_bn

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    methods = []
    for layout, dtype, n in cases:
        dt = getattr(torch, dtype)
        x = torch.randn(n, c, hw, hw, device=device, dtype=dt)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        k = n // 2
        wt, bs = torch.randn(2, c, device=device), torch.randn(2, c, device=device)
        rm, rv = torch.zeros(2, c, device=device), torch.ones(2, c, device=device)
        fns = {
            "triton": lambda x=x, k=k, wt=wt, bs=bs, rm=rm, rv=rv: dual_bn(
                x, k, wt, bs, rm, rv, True, MOMENTUM, EPS, backend="triton"),
            "two_bn": lambda x=x, k=k, wt=wt, bs=bs, rm=rm, rv=rv: torch.cat([
                F.batch_norm(x[:k], rm[0], rv[0], wt[0].to(x.dtype), bs[0].to(x.dtype), True),
                F.batch_norm(x[k:], rm[1], rv[1], wt[1].to(x.dtype), bs[1].to(x.dtype), True)]),
            "single_bn": lambda x=x, wt=wt, bs=bs, rm=rm, rv=rv: F.batch_norm(
                x, rm[0], rv[0], wt[0].to(x.dtype), bs[0].to(x.dtype), True),
            "copy": lambda x=x: x.clone(),
        }
        for provider, fn in fns.items():
            def run(fn=fn):
                with torch.no_grad():
                    for _ in range(reps):
                        fn()
                sync()
            methods.append(Method(f"{provider}_{layout}_{dtype}_n{n}", run,
                                  items_per_call=reps * n))
    return methods


def triton_report(results, cases, headline_case) -> dict:
    """Ratios per case; the headline case's copy/Triton and two_bn/Triton are the headlines."""
    headline, secondary = {}, {}
    for layout, dtype, n in cases:
        tag = f"{layout}_{dtype}_n{n}"
        frac = speedup(results, f"triton_{tag}", f"copy_{tag}")   # copy time / triton time
        vs_two = speedup(results, f"triton_{tag}", f"two_bn_{tag}")
        if (layout, dtype, n) == headline_case:
            headline["triton_fraction_of_copy_bw"] = frac
            headline["triton_vs_two_bn"] = vs_two
        else:
            secondary[f"triton_fraction_of_copy_bw_{tag}"] = frac
            secondary[f"triton_vs_two_bn_{tag}"] = vs_two
    return headline, secondary


def run_cuda(args) -> dict:
    import torch

    cases = TRITON_CASES_QUICK if args.quick else TRITON_CASES
    headline_case = (*TRITON_HEADLINE, 64 if args.quick else 128)
    results = measure(triton_methods(cases, "cuda"), rounds=args.rounds,
                      min_seconds=args.min_seconds)
    headline, secondary = triton_report(results, cases, headline_case)
    out = report(results, headline, secondary=secondary, item="sample",
                 title=f"dual BN forward on {torch.cuda.get_device_name(0)}, C=64, 56x56")
    for name, s in out["methods"].items():  # bytes read + written once per sample
        dt = 2 if "float16" in name else 4
        s["GB_s"] = 2 * 64 * 56 * 56 * dt * s["items_per_s"] / 1e9
    out["headline_case"] = list(headline_case)
    return out


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    import torch

    threads = pin_threads(args.threads)
    heap = keep_freed_memory()  # per-call temporaries: warm pages in every process (see there)
    args.shape = args.shape or ([16, 64, 28, 28] if args.quick else [32, 64, 56, 56])
    out = run_cpu(args)
    if torch.cuda.is_available() and not args.no_cuda:
        out["cuda"] = run_cuda(args)
        out["stable"] = out["stable"] and out["cuda"]["stable"]
    else:
        out["cuda"] = "skipped: no CUDA device" if not args.no_cuda else "skipped: --no-cuda"
        print("CUDA section skipped (no GPU here).", file=sys.stderr)
    out["quick"] = args.quick
    out["env"] = {"threads": threads, "keep_freed_memory": heap}
    return out
