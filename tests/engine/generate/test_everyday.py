"""What a user sees (issue #15): --model is required, --limit, --dry-run, the compile notice,
the shard label, no diffusers noise, group-readable files."""
import json
import os
from dataclasses import replace

import pytest
import torch

from engine.cli import main
from engine.generate.config import GenerateConfig
from engine.generate.runner import GenerateError, generate
from engine.plan import Plan, write_plan
from tests.engine.generate.helpers import make_plan, read_all


def cfg(**kw):
    return GenerateConfig(**{**dict(model="tiny", batch_size=4, progress=False, durable=False,
                                    writer_workers=1), **kw})


def test_model_is_required_and_the_error_lists_the_choices(tmp_path, capsys):
    plan_path = str(tmp_path / "plan.jsonl")
    write_plan(make_plan(per_class=1), plan_path)
    assert main(["generate", plan_path, "--out", str(tmp_path / "x.beton")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model is required" in err[0]
    for choice in ("hub id", "diffusers folder", ".safetensors/.ckpt", "tiny", "sd15-arch"):
        assert choice in err[0]
    with pytest.raises(ValueError, match="--model is required"):
        generate(make_plan(per_class=1), str(tmp_path / "y.beton"), GenerateConfig())
    assert sorted(os.listdir(tmp_path)) == ["plan.jsonl"]


def test_limit_takes_the_first_rows_and_is_recorded(tmp_path, capfd):
    plan = make_plan(per_class=2, steps=2, size=32)                  # 6 rows
    out = str(tmp_path / "clone.beton")
    s = generate(plan, out, cfg(progress=True, dtype="auto"), limit=4)
    assert s["rows"] == 4 and sorted(read_all(out)) == [0, 1, 2, 3]
    err = capfd.readouterr().err
    assert "shard 0/1" in err                                        # the bar's label
    assert "kept in float32" not in err                              # diffusers' noise
    state = json.load(open(tmp_path / "clone.run" / "state.json"))
    assert state["limit"] == 4 and state["num_rows"] == 4
    with pytest.raises(GenerateError, match="not made from this plan shard.*--limit 4"):
        generate(plan, out, cfg())
    assert generate(plan, out, cfg(), limit=4)["status"] == "already_complete"
    with pytest.raises(GenerateError, match="--limit -1: must be >= 0"):
        generate(plan, str(tmp_path / "z.beton"), cfg(), limit=-1)
    assert generate(plan, str(tmp_path / "all.beton"), cfg(), limit=0)["rows"] == 6   # 0 = all


def test_dry_run_writes_nothing_and_estimates_the_time(tmp_path, capsys):
    plan_path, out = str(tmp_path / "plan.jsonl"), str(tmp_path / "clone.beton")
    write_plan(make_plan(per_class=3, steps=3, size=32), plan_path)  # 9 rows
    before = sorted(os.listdir(tmp_path))
    assert main(["generate", plan_path, "--out", out, "--model", "tiny", "--batch-size", "4",
                 "--limit", "7", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == before
    assert "dry run: nothing was written" in text and "(new)" in text
    assert "rows:     7 (shard 0/1 of the first 7 of 9 plan rows)" in text
    assert "classes:  3 (0: 3, 1: 3, 2: 1 images)" in text
    assert "batches:  2" in text and "2 x ddim 3 steps, guidance 7.5, 32x32, text" in text
    assert "model:    tiny (builtin" in text and "jpeg_quality 90" in text
    assert "estimate: ~" in text and "this machine's measured rate" in text


def test_dry_run_estimate_follows_the_calibration(tmp_path, monkeypatch):
    from engine.generate import dryrun
    from engine.rates import Rate

    from engine.generate.runner import GenerateRun

    plan = make_plan(per_class=2, steps=10, size=32)                    # 6 rows
    rows = [r if r.sample_id % 2 else replace(r, steps=20) for r in plan.rows]
    run = GenerateRun(Plan(plan.header, rows), str(tmp_path / "c.beton"), cfg(batch_size=2))
    fake = Rate(images_per_s=0.5, steps=10, pixels=32 * 32, source="test")
    monkeypatch.setattr(dryrun, "calibrate", lambda denoiser, rows, c: fake)
    d = dryrun.preview(run)
    assert d["estimate_s"] == pytest.approx(3 * 2.0 + 3 * 4.0)   # 2 s per 10-step image
    assert d["rate"]["source"] == "test" and os.listdir(tmp_path) == []


def test_calibration_separates_steps_from_the_fixed_cost(monkeypatch):
    """Per-step and fixed costs from timings at 1 and 2 steps (a fake clock: 3 s per step,
    1 s per batch), extrapolated to the batch's own steps."""
    import time

    from engine.generate import dryrun, tail

    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(tail, "postprocess", lambda x, size: x)

    class FakeDenoiser:
        device, dtype = "cpu", torch.float32

        def denoise(self, batch):
            clock[0] += 3.0 * batch.key.steps
            return batch

        def decode(self, latents):
            clock[0] += 1.0
            return latents

    plan = make_plan(per_class=2, steps=10, size=32)
    rate = dryrun.calibrate(FakeDenoiser(), plan.rows, cfg(batch_size=4))
    assert rate.steps == 10 and rate.pixels == 32 * 32 and rate.images == 4
    assert rate.seconds == pytest.approx(1.0 + 3.0 * 10)
    assert rate.images_per_s == pytest.approx(4 / 31.0)
    assert "3.00 s per step + 1.00 s per batch" in rate.source


def test_compile_notice_and_images_per_s_without_compile_time(tmp_path, capsys, monkeypatch):
    """The warm-up compiles before the timed loop. torch.compile is replaced by a stand-in whose
    first call "takes" 1000 s on a shifted clock, so the check does not depend on real time."""
    import time

    from engine.generate.denoise import Denoiser

    monkeypatch.setattr(torch, "compile", lambda m, **kw: m)
    real, shift, calls = time.perf_counter, [0.0], [0]
    monkeypatch.setattr(time, "perf_counter", lambda: real() + shift[0])
    denoise = Denoiser.denoise

    def first_call_compiles(self, batch):
        calls[0] += 1
        if calls[0] == 1:
            shift[0] += 1000.0
        return denoise(self, batch)

    monkeypatch.setattr(Denoiser, "denoise", first_call_compiles)
    plan = make_plan(per_class=1, steps=2, size=32)
    s = generate(plan, str(tmp_path / "c.beton"), cfg(compile=True))
    err = capsys.readouterr().err
    assert "compiling the UNet and VAE decoder" in err and "not counted in images/s" in err
    assert calls[0] == 1 + 1                                # warm-up + the one real batch
    assert s["compile_s"] >= 1000 and s["elapsed_s"] < 1000
    assert s["written"] == 3 and s["images_per_s"] == pytest.approx(3 / s["elapsed_s"])


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_honours_the_umask(tmp_path, umask, mode):
    from engine.paths import atomic_write

    old = os.umask(umask)
    try:
        with atomic_write(str(tmp_path / "f.json"), "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "f.json").st_mode & 0o777 == mode


def test_shard_auto_from_torchrun_is_announced(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    plan_path, out = str(tmp_path / "plan.jsonl"), str(tmp_path / "clone.beton")
    write_plan(make_plan(per_class=1, steps=2, size=32), plan_path)           # 3 rows
    assert main(["generate", plan_path, "--out", out, "--model", "tiny", "--no-progress",
                 "--no-durable", "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert ("synthclone generate: shard 1/2 (--shard auto: RANK=1, WORLD_SIZE=2 (torchrun)): "
            "1 of 1 rows to generate") in err
    assert sorted(read_all(str(tmp_path / "clone.shard1of2.beton"))) == [1]
