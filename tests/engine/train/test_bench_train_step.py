"""``python -m bench train_step`` runs end to end at its smallest size (figures not results)."""
import math

import pytest

from bench import train_step


@pytest.mark.timeout(900)
def test_train_step_bench_smoke():
    res = train_step.main(["--min-seconds", "0.01", "--arch", "resnet18", "--batch", "4",
                           "--size", "32", "--images", "64", "--steps", "1", "--threads", "1"])
    for figure in ("loader_vs_in_memory", "dual_bn_step_vs_bn_step"):
        assert figure in res["headline"] and math.isfinite(res[figure]) and res[figure] > 0
    methods = res["methods"]
    assert methods["tiny_ffcv_loader"]["items_per_call"] == 32
    assert methods["resnet50_dual_bn_step"]["items_per_call"] == 4
