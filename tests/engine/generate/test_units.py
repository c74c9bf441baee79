"""Batch grouping, per-row noise, embedding cache, attention registry, shard/env parsing."""
import pytest
import torch

from engine.generate import attention
from engine.generate.batching import batch_key, batch_noise, group_batches, resample_seed
from engine.generate.config import GenerateConfig, parse_shard, run_dir_for, shard_path
from engine.generate.embeddings import EmbeddingCache
from tests.engine.generate.helpers import make_plan


def test_group_batches_only_mixes_equal_keys():
    a = make_plan(per_class=3, steps=4).rows
    b = make_plan(per_class=2, steps=6, guidance=2.0).rows
    c = make_plan(per_class=1, size=32, sampler="pndm").rows
    rows = [r for trip in zip(a, b + c * 4) for r in trip]            # interleaved kinds
    batches = group_batches(rows, batch_size=4)
    assert sorted(r.sample_id for bt in batches for r in bt.rows) == sorted(r.sample_id for r in rows)
    for bt in batches:
        assert len(bt.rows) <= 4
        assert {batch_key(r) for r in bt.rows} == {bt.key}
    # grouping gives full batches: at most one partial batch per key
    per_key = {}
    for bt in batches:
        per_key.setdefault(bt.key, []).append(len(bt.rows))
    for sizes in per_key.values():
        assert sum(1 for s in sizes if s < 4) <= 1
    # without grouping, order is kept and a batch closes when the key changes
    ungrouped = group_batches(rows, batch_size=4, group=False)
    assert [r.sample_id for bt in ungrouped for r in bt.rows] == [r.sample_id for r in rows]
    assert len(ungrouped) > len(batches)
    with pytest.raises(ValueError, match="batch_size"):
        group_batches(rows, 0)


def test_noise_depends_only_on_the_row_seed():
    seeds = [11, 22, 33, 44]
    full = batch_noise(seeds, (4, 8, 8))
    part = batch_noise(seeds[2:], (4, 8, 8))
    assert torch.equal(full[2:], part)
    assert not torch.equal(full[0], full[1])
    assert resample_seed(5, 0) == 5 and resample_seed(5, 1) != resample_seed(5, 2) != 5


class _CountingEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls, self.rows = 0, 0
        self.emb = torch.nn.Embedding(49408, 4)

    def forward(self, ids):
        self.calls += 1
        self.rows += ids.shape[0]
        return (self.emb(ids),)


def test_embedding_cache_hits_and_equal_values():
    from engine.generate.tokenizer import offline_clip_tokenizer

    tok, enc = offline_clip_tokenizer(), _CountingEncoder()
    cache = EmbeddingCache(tok, enc, "cpu", torch.float32)
    a = cache.get(["tench", "tench", "goldfish", ""])
    assert (enc.rows, cache.misses, cache.hits) == (3, 3, 1)
    b = cache.get(["goldfish", "tench", "", "shark"])
    assert (enc.rows, cache.misses, cache.hits) == (4, 4, 4)
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])
    off = EmbeddingCache(tok, enc, "cpu", torch.float32, enabled=False)
    c = off.get(["goldfish", "tench", "", "shark"])
    assert torch.equal(b, c) and enc.rows == 8
    small = EmbeddingCache(tok, enc, "cpu", torch.float32, max_entries=2)
    small.get(["a", "b", "c"])
    assert small.stats()["entries"] == 2


def test_tokenizer_matches_open_clip():
    import open_clip

    from engine.generate.tokenizer import offline_clip_tokenizer

    tok, ref = offline_clip_tokenizer(), open_clip.get_tokenizer("ViT-L-14")
    for text in ["tench, Tinca tinca", "a photo of a Shih-Tzu, inside a kitchen!", ""]:
        ours = tok(text, padding="max_length", max_length=77, truncation=True).input_ids
        theirs = ref([text])[0].tolist()
        end = theirs.index(49407) + 1                 # open_clip pads with 0, SD-1.x with EOT
        assert ours[:end] == theirs[:end] and len(ours) == 77


def test_attention_backends_in_the_ops_registry(monkeypatch):
    from engine.ops import registry

    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    assert attention.names() == ["xformers", "sdpa", "math"]
    reasons = dict(registry.explain("attention", device="cpu"))
    assert "not CUDA" in reasons["xformers"] and reasons["sdpa"] is None and reasons["math"] is None
    assert attention.choose("auto", "cpu").name == "sdpa"
    with pytest.raises(ValueError, match="cannot run here: device is cpu, not CUDA"):
        attention.choose("xformers", "cpu")
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention.choose("flash9", "cpu")
    # the process-wide switch of every registry op forces "auto" too, and names itself in errors
    monkeypatch.setenv(registry.ENV_VAR, "attention=math")
    assert attention.choose("auto", "cpu").name == "math"
    assert attention.choose("sdpa", "cpu").name == "sdpa"           # an explicit flag wins
    monkeypatch.setenv(registry.ENV_VAR, "ref")                     # every op's reference
    assert attention.choose("auto", "cpu").name == "math"
    monkeypatch.setenv(registry.ENV_VAR, "csrc")                    # another op's backend
    assert attention.choose("auto", "cpu").name == "sdpa"
    monkeypatch.setenv(registry.ENV_VAR, "attention=xformers")
    with pytest.raises(ValueError, match="SYNTHCLONE_OPS_BACKEND=attention=xformers"):
        attention.choose("auto", "cpu")


def test_attention_backends_give_the_same_unet_output():
    from engine.generate.models import load_model

    pipe = load_model("tiny")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    emb = torch.randn(2, 77, 32, generator=g)
    out = {}
    for name in ("math", "sdpa"):
        assert attention.apply(pipe.unet, name, "cpu") == name
        with torch.no_grad():
            out[name] = pipe.unet(x, 10, encoder_hidden_states=emb).sample
    torch.testing.assert_close(out["sdpa"], out["math"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="fused QKV projections need the sdpa backend"):
        attention.apply(pipe.unet, "math", "cpu", fuse_qkv=True)


def test_shard_parsing_and_paths(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert parse_shard("1/4") == (1, 4, "from --shard")
    i, n, why = parse_shard("auto")
    assert (i, n) == (0, 1) and "whole plan" in why and "RANK/WORLD_SIZE" in why
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert parse_shard(None) == (1, 2, "--shard auto: SLURM_PROCID=1, SLURM_NTASKS=2 (SLURM)")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")                 # torchrun wins over SLURM
    assert parse_shard("auto") == (2, 3, "--shard auto: RANK=2, WORLD_SIZE=3 (torchrun)")
    assert parse_shard("0/2")[:2] == (0, 2)               # an explicit shard wins over both
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x' is not an integer"):
        parse_shard("auto")
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert shard_path("a/clone.beton", 1, 4) == "a/clone.shard1of4.beton"
    assert shard_path("clone.beton", 0, 1) == "clone.beton"
    assert run_dir_for("a/clone.beton") == "a/clone.run"
    with pytest.raises(ValueError, match="batch_size"):
        GenerateConfig(batch_size=0)


def test_compile_and_threads_leave_process_state_alone(monkeypatch):
    """torch.compile gets freezing per call (never the global inductor config); the thread
    count of a run is restored after it."""
    import torch._inductor.config as inductor_config

    from engine.generate import setup_model
    from engine.generate.models import load_model

    calls = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: calls.append(kw) or m)
    freezing = inductor_config.freezing
    pipe = load_model("tiny")
    setup_model.prepare(pipe, GenerateConfig(compile=True, compile_mode="max-autotune"),
                        torch.device("cpu"), torch.float32)
    assert inductor_config.freezing == freezing
    assert len(calls) == 2 and all(kw["options"]["freezing"] for kw in calls)
    assert calls[0]["options"]["max_autotune"] and "mode" not in calls[0]
    before = torch.get_num_threads()
    with setup_model.torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_model_fingerprint_hashes_configs_and_weight_ends(tmp_path):
    from engine.generate.fingerprint import differences, model_fingerprint

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (tmp_path / "m" / "unet").mkdir()
    (tmp_path / "m" / "unet" / "config.json").write_text('{"sample_size": 64}')
    weights = tmp_path / "m" / "unet" / "model.safetensors"
    weights.write_bytes(bytes(3 << 20))
    spec = str(tmp_path / "m")
    base = model_fingerprint(spec)
    assert base["kind"] == "dir" and len(base["hash"]) == 64
    assert model_fingerprint(spec) == base
    with open(weights, "r+b") as f:                       # a changed last MiB
        f.seek((3 << 20) - 1)
        f.write(b"\1")
    changed = model_fingerprint(spec)
    assert changed["hash"] != base["hash"]
    (tmp_path / "m" / "unet" / "config.json").write_text('{"sample_size": 96}')
    assert model_fingerprint(spec)["hash"] not in (base["hash"], changed["hash"])
    assert model_fingerprint("tiny")["hash"] == "builtin:tiny:seed0"
    assert differences({"model": base, "dtype": "bfloat16"}, {"model": changed, "dtype": "float32"}) \
        == ["dtype bfloat16 -> float32", f"model.hash {base['hash'][:12]} -> {changed['hash'][:12]}"]
