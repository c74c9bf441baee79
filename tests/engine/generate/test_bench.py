"""``python -m bench generate`` runs end to end on a few images and reports the issue's keys."""
from bench.generate import main


def test_bench_generate_smoke():
    r = main(["--quick", "--images", "8", "--batch-size", "4", "--rounds", "1"])
    assert r["images"] == 8 and r["model"] == "tiny"
    for key in ("naive", "ours", "unet_only"):
        assert r["images_per_s"][key] > 0
    assert 0 < r["ratio_vs_naive"] and 0 < r["pipeline_vs_unet_only"]
    assert set(r["stage_split"]) >= {"unet+text", "decode", "write"}
    assert abs(sum(r["stage_split"].values()) - 1) < 0.01
    assert r["embedding_cache"]["hits"] > 0
