"""``python -m bench eval`` runs end to end at its smallest size and reports its figure, over a
.beton through the loaders' eval pipeline (the default) and over image files."""
import math

import pytest

from bench import eval as bench_eval


@pytest.mark.timeout(600)
@pytest.mark.parametrize("source", ["beton", "folder"])
def test_eval_bench_smoke(source):
    res = bench_eval.main(["--quick", "--images", "4", "--batch-size", "2", "--workers", "0",
                           "--arch", "test_resnet", "--min-seconds", "0.01", "--threads", "1",
                           "--input", source])
    r = res["ratios"]["features_vs_model_only"]
    assert res["headline"] == ["features_vs_model_only"] and r["target"] == 0.9
    assert math.isfinite(res["features_vs_model_only"]) and res["features_vs_model_only"] > 0
    assert len(r["per_round"]) == 3 and res["images"] == 4 and res["input"] == source
    assert res["backend"] == ("ffcv" if source == "beton" else None)
    for m in ("eval_path", "model_only"):
        assert res["methods"][m]["items_per_s"] > 0
