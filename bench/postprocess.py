"""``python -m bench postprocess [--quick]``: the csrc ``vae_to_uint8`` op vs the same torch ops.

Times ``engine.ops.postprocess.vae_to_uint8`` on the C++ (OpenMP) extension against its torch
reference (``x / 2 + 0.5 -> clamp -> avg_pool2d -> * 255 -> round -> uint8 -> NHWC``) on the CPU,
for VAE outputs of ``--size`` pixels downsampled by 1, 2 and 4 (1024^2 -> 1024^2 / 512^2 /
256^2), all six methods interleaved in one measurement.  Headline: ``ratio_vs_torch`` (the torch
reference's time over the extension's for seed 003's 1024^2 -> 256^2 case), target >= 3.

glibc keeps freed memory in the heap for this benchmark (``bench.common.keep_freed_memory``):
without it the torch reference's time per image changed 1.2-8 ms between processes (page
faults on fresh temporaries, depending on glibc's adaptive mmap threshold), which made the
ratio swing 3-22x; pinned, the reference runs at its warm speed.
"""
from __future__ import annotations

from bench.common import (Method, bench_args, keep_freed_memory, measure, pin_threads, report,
                          speedup)

DOWNSAMPLES = (1, 2, 4)
TARGET = 3.0


def get_args_parser():
    p = bench_args("postprocess", __doc__)
    p.add_argument("--batch", type=int, default=None, help="images per call [4; quick 2]")
    p.add_argument("--size", type=int, default=None, help="VAE output side [1024; quick 512]")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="VAE output dtype")
    return p


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    import torch

    from engine.ops._ext import extension_status
    from engine.ops.postprocess import vae_to_uint8, vae_to_uint8_ref

    threads = pin_threads(args.threads)
    heap = keep_freed_memory()  # the torch reference's temporaries: warm pages in every process
    loaded, why = extension_status()
    if not loaded:
        raise SystemExit(f"bench postprocess needs the C++ extension: {why}")
    batch = args.batch or (2 if args.quick else 4)
    size = args.size or (512 if args.quick else 1024)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(batch, 3, size, size, generator=g) * 0.7).clamp(-1.1, 1.1).to(dtype)
    methods = []
    for d in DOWNSAMPLES:
        diff = (vae_to_uint8(x, d, backend="csrc").int() - vae_to_uint8_ref(x, d).int()).abs()
        if diff.max() > 1:
            raise AssertionError(f"csrc and torch differ by {int(diff.max())} at d={d}")
        methods += [Method(f"csrc_d{d}", lambda d=d: vae_to_uint8(x, d, backend="csrc"), batch),
                    Method(f"torch_d{d}", lambda d=d: vae_to_uint8_ref(x, d), batch)]
    results = measure(methods, rounds=args.rounds, min_seconds=args.min_seconds)
    by_d = {d: speedup(results, f"csrc_d{d}", f"torch_d{d}") for d in DOWNSAMPLES}
    headline = speedup(results, "csrc_d4", "torch_d4", target=TARGET)
    return report(
        results, {"ratio_vs_torch": headline},
        secondary={f"ratio_vs_torch_d{d}": r for d, r in by_d.items() if d != 4},
        title=f"vae_to_uint8: {batch}x3x{size}^2 {args.dtype} -> /1 /2 /4, CPU, "
              f"{threads} threads",
        item="image",
        extra={"shape": [batch, 3, size, size], "dtype": args.dtype, "quick": args.quick,
               "downsamples": list(DOWNSAMPLES),
               "env": {"threads": threads, "keep_freed_memory": heap}},
    )
