"""``python -m bench loaders`` runs end to end at its smallest size (figures are not results)."""
import math

import pytest

from bench import loaders


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # numba finalizers
@pytest.mark.timeout(900)
def test_loaders_bench_smallest(tmp_path):
    res = loaders.main(["--images", "16", "--batch-size", "4", "--batches", "1",
                        "--min-seconds", "0.01", "--workers", "1", "--threads", "1",
                        "--data-dir", str(tmp_path / "data")])
    for key in ("ffcv_vs_torchvision", "ffcv_vs_decode_limit", "dual_overhead",
                "dali_vs_torchvision", "dali_vs_ffcv"):
        assert math.isfinite(res[key]), key
    assert set(res["methods"]) == {"ffcv", "ffcv_dual", "torchvision", "dali", "decode_limit"}
    assert res["methods"]["ffcv"]["items_per_call"] == 4
    r = res["ratios"]["dual_overhead"]
    assert math.isclose(r["median"] + 1, sorted(x + 1 for x in r["per_round"])[1])
