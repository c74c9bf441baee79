"""``python -m bench postprocess [--quick]``: the csrc ``vae_to_uint8`` op vs the same torch ops.

Times ``engine.ops.postprocess.vae_to_uint8`` on the C++ (OpenMP) extension against its torch
reference (``x / 2 + 0.5 -> clamp -> avg_pool2d -> * 255 -> round -> uint8 -> NHWC``) on the CPU,
for full-size (1024^2 -> 1024^2 / 512^2 / 256^2) VAE outputs.  Target: ``ratio_vs_torch`` >= 3,
the ratio for seed 003's 1024^2 -> 256^2 case.
"""
from __future__ import annotations

import argparse

from bench.common import pin_threads, table, timeit


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench postprocess", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller batch, fewer repeats")
    p.add_argument("--batch", type=int, default=None, help="images per call (default 4, quick 2)")
    p.add_argument("--size", type=int, default=1024, help="VAE output side in pixels")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per case (default 9, quick 5)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="VAE output dtype")
    return p


def main(argv: list[str]) -> dict:
    args = get_args_parser().parse_args(argv)
    import torch

    from engine.ops._ext import extension_status
    from engine.ops.postprocess import vae_to_uint8, vae_to_uint8_ref

    threads = pin_threads()
    loaded, why = extension_status()
    if not loaded:
        raise SystemExit(f"bench postprocess needs the C++ extension: {why}")
    batch = args.batch or (2 if args.quick else 4)
    repeat = args.repeat or (5 if args.quick else 9)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(batch, 3, args.size, args.size, generator=g) * 0.7).clamp(-1.1, 1.1).to(dtype)
    rows, ratios = [], {}
    for d in (1, 2, 4):
        assert (vae_to_uint8(x, d, backend="csrc").int() - vae_to_uint8_ref(x, d).int()).abs().max() <= 1
        t_ext = timeit(lambda: vae_to_uint8(x, d, backend="csrc"), repeat=repeat)
        t_ref = timeit(lambda: vae_to_uint8_ref(x, d), repeat=repeat)
        ratio = t_ref["median"] / t_ext["median"]
        ratios[f"d{d}"] = ratio
        mpix = batch * args.size * args.size / 1e6
        rows.append({"out": f"{args.size // d}^2", "downsample": d, "csrc_ms": 1e3 * t_ext["median"],
                     "csrc_p20_p80": f"{1e3 * t_ext['p20']:.1f}-{1e3 * t_ext['p80']:.1f}",
                     "torch_ms": 1e3 * t_ref["median"], "ratio": ratio,
                     "csrc_Mpix_s": mpix / t_ext["median"]})
    table(rows, f"vae_to_uint8: {batch}x3x{args.size}^2 {args.dtype} on CPU, {threads} threads")
    return {
        "ratio_vs_torch": ratios["d4"],
        "ratio_vs_torch_by_downsample": ratios,
        "target_ratio": 3.0,
        "meets_target": ratios["d4"] >= 3.0,
        "cases": rows,
        "shape": [batch, 3, args.size, args.size],
        "dtype": args.dtype,
    }
