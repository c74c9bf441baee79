"""``python -m bench generate`` runs end to end on a few images and emits the harness's schema."""
import pytest

from tests.bench.smoke import check_result, run_bench


@pytest.mark.timeout(600)
def test_bench_generate_smoke():
    out = run_bench("generate", "--images", "4", "--batch-size", "2")
    check_result(out, "generate", {"ratio_vs_naive", "pipeline_vs_unet_only"})
    assert out["images"] == 4 and out["model"] == "tiny"
    assert set(out["methods"]) == {"naive", "ours", "unet_only"}
    assert set(out["stage_split"]) >= {"unet+text", "decode", "write"}
    assert out["embedding_cache"]["hits"] > 0      # 4 rows, 4 classes, batch 2: CFG's "" repeats
