"""Each benchmark runs end to end at its tiniest size and emits the harness's JSON schema.

(``bench generate`` has its smoke test in tests/engine/generate/test_bench.py.)
"""
import subprocess
import sys

import pytest

from tests.bench.smoke import ROOT, check_result, run_bench


def test_list_names_every_benchmark():
    res = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    names = res.stdout.split(":", 1)[1].replace(",", " ").split()
    assert {"beton_write", "dual_bn", "generate", "postprocess"} <= set(names)
    assert "common" not in names


def test_unknown_benchmark_exits_2():
    res = subprocess.run([sys.executable, "-m", "bench", "no_such_bench"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "available" in res.stderr


def test_fewer_than_three_rounds_is_refused():
    res = subprocess.run([sys.executable, "-m", "bench", "postprocess", "--rounds", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and ">= 3" in res.stderr


@pytest.mark.timeout(600)
def test_beton_write_smoke():
    out = run_bench("beton_write", "--images", "8", "--pack-images", "4")
    check_result(out, "beton_write", {"ratio_vs_ffcv", "ratio_vs_encode_limit"})
    assert {"cpu_ratio_vs_ffcv", "pack_resize_ratio_vs_ffcv",
            "pack_passthrough_ratio_vs_ffcv"} <= set(out["ratios"])
    assert out["write_images"] == 8 and out["env"]["cv2_threads"] == 1


@pytest.mark.timeout(600)
def test_dual_bn_smoke():
    out = run_bench("dual_bn", "--shape", "4", "8", "4", "4", "--no-cuda")
    check_result(out, "dual_bn", {"compiled_ref_vs_single_bn", "default_vs_single_bn_fwd_bwd"})
    assert out["shape"] == [4, 8, 4, 4] and out["num_real"] == 2
    assert out["ratios"]["compiled_ref_vs_single_bn"]["target"] == 1.15
    assert out["cuda"] == "skipped: --no-cuda"


@pytest.mark.timeout(600)
def test_postprocess_smoke():
    from engine.ops._ext import extension_status

    loaded, why = extension_status()
    if not loaded:
        pytest.skip(f"bench postprocess times the C++ extension, which is not built: {why}")
    out = run_bench("postprocess", "--batch", "1", "--size", "16")
    check_result(out, "postprocess", {"ratio_vs_torch"})
    assert {"ratio_vs_torch_d1", "ratio_vs_torch_d2"} <= set(out["ratios"])
    assert out["shape"] == [1, 3, 16, 16]


TRITON_SMOKE = r"""
import json
from bench.common import measure
from bench.dual_bn import triton_methods, triton_report
cases = [("channels_last", "float32", 2)]
methods = triton_methods(cases, "cpu", c=3, hw=2, reps=1)
res = measure(methods, rounds=3, min_seconds=0.001)
head, sec = triton_report(res, cases, cases[0])
print(json.dumps({k: v["median"] for k, v in head.items()}))
"""


@pytest.mark.timeout(600)
def test_dual_bn_triton_section_under_interpreter():
    """The CUDA section's methods and ratios, run on the CPU by the Triton interpreter."""
    import json
    import math
    import os

    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": ROOT}
    res = subprocess.run([sys.executable, "-c", TRITON_SMOKE], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=580)
    assert res.returncode == 0, res.stderr[-4000:]
    head = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(head) == {"triton_fraction_of_copy_bw", "triton_vs_two_bn"}
    assert all(math.isfinite(v) and v > 0 for v in head.values())
