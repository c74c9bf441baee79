"""The beton_write benchmark runs end to end on a tiny workload and reports its figures."""
import math

from bench import beton_write


def test_beton_write_bench_tiny():
    res = beton_write.main(["--images", "12", "--pack-images", "6", "--repeat", "1"])
    for key in ("write_img_per_s", "ffcv_img_per_s", "encode_limit_img_per_s",
                "pack_resize_img_per_s", "pack_passthrough_img_per_s"):
        assert res[key] > 0 and math.isfinite(res[key]), key
    for key in ("ratio_vs_ffcv", "ratio_vs_encode_limit"):
        assert res[key] > 0 and math.isfinite(res[key]), key
    assert res["write_images"] == 12
