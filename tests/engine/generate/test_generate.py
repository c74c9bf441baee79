"""End to end with the tiny model: .beton read by FFCV, reruns, shards + merge, resume, guards."""
import json
import os

import numpy as np
import pytest

from engine.generate.config import GenerateConfig
from engine.generate.runner import GenerateError, generate
from tests.engine.generate.helpers import make_plan, read_all


def cfg(**kw):
    base = dict(model="tiny", batch_size=4, progress=False, durable=False, writer_workers=1)
    base.update(kw)
    return GenerateConfig(**base)


@pytest.fixture(scope="module")
def plan():
    return make_plan(per_class=4, steps=4, size=64)


@pytest.fixture(scope="module")
def single(plan, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("single") / "clone.beton")
    summary = generate(plan, out, cfg())
    return out, summary


def test_ffcv_loader_reads_labels_and_counts(plan, single):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    out, summary = single
    loader = Loader(out, batch_size=len(plan), num_workers=1, order=OrderOption.SEQUENTIAL,
                    pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()],
                               "sample_id": [IntDecoder()], "recipe": [IntDecoder()],
                               "prompt": None})
    images, labels, sids, recipes = next(iter(loader))
    by_id = {r.sample_id: r for r in plan.rows}
    assert images.shape == (12, 64, 64, 3)
    assert sorted(sids.ravel().tolist()) == list(range(12))
    for sid, lab in zip(sids.ravel().tolist(), labels.ravel().tolist()):
        assert by_id[sid].label == lab
    assert np.bincount(labels.ravel()).tolist() == [4, 4, 4]
    assert summary["per_class"] == {"0": 4, "1": 4, "2": 4}
    # every image traces back to its plan row; images differ between rows
    stored = read_all(out)
    assert all(stored[r.sample_id][3] == r.prompt for r in plan.rows)
    assert len({v[2] for v in stored.values()}) == 12
    run = out[:-len(".beton")] + ".run"
    for name in ("config.yaml", "state.json", "summary.json", "throughput.jsonl",
                 "contact_sheet.png"):
        assert os.path.exists(os.path.join(run, name)), name
    assert json.load(open(os.path.join(run, "state.json")))["plan_hash"] == plan.hash


def test_rerun_gives_identical_images(plan, single, tmp_path):
    out2 = str(tmp_path / "again.beton")
    generate(plan, out2, cfg(pipeline_tail=False, cfg_batched=True, embed_cache=False))
    a, b = read_all(single[0]), read_all(out2)
    assert a.keys() == b.keys()
    assert all(a[k][2] == b[k][2] for k in a)                        # same JPEG bytes


def test_two_shards_merged_equal_one_run(plan, single, tmp_path):
    from loaders.beton import merge_betons

    out = str(tmp_path / "clone.beton")
    parts = [generate(plan, out, cfg(), shard=(i, 2))["out"] for i in range(2)]
    assert parts == [str(tmp_path / "clone.shard0of2.beton"), str(tmp_path / "clone.shard1of2.beton")]
    shard_ids = [set(read_all(p)) for p in parts]
    assert not shard_ids[0] & shard_ids[1]
    merged = str(tmp_path / "merged.beton")
    merge_betons(parts, merged, renumber_field=None)
    a, b = read_all(single[0]), read_all(merged)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k][0] == b[k][0]
        # a shard batches rows differently; float batch-composition noise may move a pixel by
        # one level before JPEG, so compare decoded pixels with a small tolerance
        diff = np.abs(a[k][1].astype(int) - b[k][1].astype(int))
        assert diff.mean() < 0.5 and diff.max() <= 8, (k, diff.mean(), diff.max())


def test_exists_and_hash_mismatch_are_refused(plan, single, tmp_path, monkeypatch):
    again = generate(plan, single[0], cfg())            # a relaunch of a finished run: no work
    assert again["status"] == "already_complete" and again["written"] == 0
    with pytest.raises(GenerateError, match=r"other settings .*jpeg_quality 90 -> 50.*"
                                            r"store_size 256 -> 32"):
        generate(plan, single[0], cfg(jpeg_quality=50, store_size=32))
    assert generate(plan, single[0], cfg(batch_size=3, pipeline_tail=False))["written"] == 0
    other = make_plan(per_class=4, steps=4, size=64, seed=1)
    with pytest.raises(GenerateError, match="not made from this plan"):
        generate(other, single[0], cfg())
    out = str(tmp_path / "c.beton")
    _interrupt_after(plan, out, batches=1, monkeypatch=monkeypatch)
    with pytest.raises(GenerateError, match="refusing to resume"):
        generate(other, out, cfg())


def _interrupt_after(plan, out, batches, monkeypatch):
    """Run generation and press Ctrl-C (KeyboardInterrupt) after ``batches`` UNet batches."""
    from engine.generate.denoise import Denoiser

    orig, calls = Denoiser.denoise, [0]

    def denoise(self, batch):
        calls[0] += 1
        if calls[0] > batches:
            raise KeyboardInterrupt
        return orig(self, batch)

    with monkeypatch.context() as m:
        m.setattr(Denoiser, "denoise", denoise)
        with pytest.raises(KeyboardInterrupt):
            generate(plan, out, cfg(pipeline_tail=True))


def test_ctrl_c_leaves_resumable_output(plan, single, tmp_path, monkeypatch):
    from loaders.beton import BetonWriter

    out = str(tmp_path / "c.beton")
    _interrupt_after(plan, out, batches=2, monkeypatch=monkeypatch)
    assert BetonWriter.partial_exists(out) and not os.path.exists(out)
    summary = generate(plan, out, cfg())
    assert summary["resumed"] == 8 and summary["written"] == 4
    a, b = read_all(single[0]), read_all(out)
    assert all(a[k][2] == b[k][2] for k in a)


def test_nan_latents_are_resampled_with_a_derived_seed(plan, tmp_path, monkeypatch):
    from engine.generate import batching

    target = plan.rows[5].seed
    orig = batching.initial_noise

    def noise(seed, shape, device="cpu", dtype=None):
        x = orig(seed, shape, device, dtype)
        return x * float("nan") if seed == target else x

    monkeypatch.setattr(batching, "initial_noise", noise)
    out = str(tmp_path / "nan.beton")
    summary = generate(plan, out, cfg())
    assert summary["guards"]["nonfinite"] == 1 and summary["guards"]["resampled"] == 1
    stored = read_all(out)
    assert len(stored) == 12 and stored[5][1].std() > 1.0
    # the re-sample is the row generated with the derived seed of attempt 1
    from dataclasses import replace

    from engine.plan import Plan

    derived = batching.resample_seed(target, 1)
    assert derived != target
    row = replace(plan.rows[5], seed=derived)
    one = Plan(dict(plan.header, num_rows=1), [row])
    ref = read_all(generate(one, str(tmp_path / "ref.beton"), cfg())["out"])[5][1]
    assert np.abs(ref.astype(int) - stored[5][1].astype(int)).max() <= 8


def test_blank_images_fail_after_max_resample(plan, tmp_path):
    out = str(tmp_path / "blank.beton")
    with pytest.raises(GenerateError, match="12 rows failed after 1 re-samples"):
        generate(plan, out, cfg(blank_std=1e9, max_resample=1))       # every image "blank"
    g = json.load(open(out[:-len(".beton")] + ".run/summary.json"))["guards"]
    assert g["blank"] == 24 and g["resampled"] == 12 and g["failed"] == 12
    dropped = json.load(open(out[:-len(".beton")] + ".run/dropped.json"))
    assert sorted(dropped["failed_sample_ids"]) == list(range(12))


def test_out_of_memory_says_lower_the_batch_and_stays_resumable(plan, tmp_path, monkeypatch):
    import torch

    from engine.generate.denoise import Denoiser
    from loaders.beton import BetonWriter

    orig, calls = Denoiser.denoise, [0]

    def denoise(self, batch):
        calls[0] += 1
        if calls[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return orig(self, batch)

    monkeypatch.setattr(Denoiser, "denoise", denoise)
    out = str(tmp_path / "oom.beton")
    with pytest.raises(GenerateError, match="smaller --batch-size"):
        generate(plan, out, cfg())
    assert BetonWriter.partial_exists(out)
    monkeypatch.setattr(Denoiser, "denoise", orig)
    assert generate(plan, out, cfg(batch_size=2))["resumed"] == 4


def test_a_second_writer_is_refused_and_touches_nothing(plan, tmp_path):
    """The writer's lock is taken before the run folder is touched (issue #9 item 6)."""
    from loaders.beton.lock import BetonLockedError, OutputLock

    out = str(tmp_path / "locked.beton")
    run = tmp_path / "locked.run"
    run.mkdir()
    (run / "state.json").write_text("{}")                       # an earlier run's folder
    with OutputLock(out):                                      # "another process" writes out
        with pytest.raises(BetonLockedError, match="another process"):
            generate(plan, out, cfg(), overwrite=True)
    assert os.listdir(run) == ["state.json"] and not os.path.exists(out + ".partial")


def test_the_journal_record_is_checked_under_the_lock(plan, tmp_path, monkeypatch):
    """state.json can be stale or edited; the job the writer journaled is the authority."""
    out = str(tmp_path / "j.beton")
    _interrupt_after(plan, out, batches=1, monkeypatch=monkeypatch)
    state_path = tmp_path / "j.run" / "state.json"
    state = json.loads(state_path.read_text())
    state["settings"]["jpeg_quality"] = 50                      # pretend the run used 50
    state_path.write_text(json.dumps(state))
    with pytest.raises(GenerateError, match="jpeg_quality 90 -> 50"):
        generate(plan, out, cfg(jpeg_quality=50))
    state["settings"]["jpeg_quality"] = 90
    state_path.write_text(json.dumps(state))
    assert generate(plan, out, cfg())["resumed"] == 4             # original settings resume
