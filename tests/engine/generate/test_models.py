"""Model loading: built-ins are deterministic; a saved diffusers folder loads back; bad specs
fail with clear errors; one small test of the torch.compile path."""
import pytest
import torch

from engine.generate.models import ModelLoadError, check_model_spec, load_model


def _unet_out(pipe):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    emb = torch.randn(2, 77, pipe.unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        return pipe.unet(x, 10, encoder_hidden_states=emb).sample


def test_tiny_is_deterministic_and_loads_back_from_a_folder(tmp_path):
    a, b = load_model("tiny"), load_model("tiny")
    assert torch.equal(_unet_out(a), _unet_out(b))
    a.save_pretrained(tmp_path / "tiny-sd")
    c = load_model(str(tmp_path / "tiny-sd"))
    assert torch.equal(_unet_out(a), _unet_out(c))
    ids = c.tokenizer(["a photo of a tench"]).input_ids
    assert ids == a.tokenizer(["a photo of a tench"]).input_ids
    assert c.safety_checker is None


def test_bad_specs(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        check_model_spec(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="model_index.json"):
        check_model_spec(str(tmp_path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        check_model_spec(str(tmp_path / "model.safetensors"))
    (tmp_path / "m.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="model-config"):
        check_model_spec(str(tmp_path / "m.safetensors"), config=str(tmp_path))
    with pytest.raises(ModelLoadError, match="no model hub access"):
        load_model("someone/some-model")
    with pytest.raises(ModelLoadError, match="safety checker"):
        load_model("tiny", safety_checker=True)


def test_compiled_unet_matches_eager(tmp_path):
    """The compile switch: one small check (inductor, ~1 min cold on CPU, cached after)."""
    import torch._inductor.config as inductor_config

    from engine.generate.config import GenerateConfig

    from engine.generate.setup_model import prepare

    freezing = inductor_config.freezing
    eager = load_model("tiny")
    ref = _unet_out(eager)
    pipe = load_model("tiny")
    applied = prepare(pipe, GenerateConfig(compile=True, channels_last=False),
                      torch.device("cpu"), torch.float32)
    assert applied["compile"] and type(pipe.unet).__name__ == "OptimizedModule"
    torch.testing.assert_close(_unet_out(pipe), ref, rtol=1e-4, atol=1e-4)
    assert inductor_config.freezing == freezing      # freezing was per compile, not global


def test_single_checkpoint_file_with_local_config(tmp_path):
    """A saved tiny model as one original-layout .safetensors + --model-config folder."""
    from tests.engine.generate.ldm_export import export_single_file

    tiny = load_model("tiny")
    tiny.save_pretrained(tmp_path / "cfg")
    ckpt = str(tmp_path / "tiny.safetensors")
    export_single_file(tiny, ckpt)
    loaded = load_model(ckpt, config=str(tmp_path / "cfg"))
    assert torch.equal(_unet_out(tiny), _unet_out(loaded))
    for name in ("vae", "text_encoder"):
        a, b = getattr(tiny, name).state_dict(), getattr(loaded, name).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k].reshape(a[k].shape)) for k in a)
    with pytest.raises(ModelLoadError, match="needs --model-config"):
        load_model(ckpt)                                   # no config: would need the hub


def _xl_unet_out(pipe):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    emb = torch.randn(2, 77, pipe.unet.config.cross_attention_dim, generator=g)
    added = {"text_embeds": torch.randn(2, pipe.text_encoder_2.config.projection_dim, generator=g),
             "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2)}
    with torch.no_grad():
        return pipe.unet(x, 10, encoder_hidden_states=emb, added_cond_kwargs=added).sample


def test_sdxl_from_a_folder_and_from_one_checkpoint_file(tmp_path):
    """SDXL as users bring it: a save_pretrained folder, or one sgm-layout .safetensors file
    with --model-config (a folder of SDXL's configs); without it: an error naming the flag."""
    from tests.engine.generate.ldm_export import export_sdxl_single_file

    tiny = load_model("tiny-sdxl")
    tiny.save_pretrained(tmp_path / "xl")
    folder = load_model(str(tmp_path / "xl"))
    assert type(folder).__name__ == "StableDiffusionXLPipeline"
    assert torch.equal(_xl_unet_out(tiny), _xl_unet_out(folder))
    ids = folder.tokenizer_2(["a tench"], padding="max_length", max_length=8).input_ids
    assert ids == tiny.tokenizer_2(["a tench"], padding="max_length", max_length=8).input_ids
    assert ids[0][-1] == 0                                   # SDXL's tokenizer_2 pads with "!"
    ckpt = str(tmp_path / "xl.safetensors")
    export_sdxl_single_file(tiny, ckpt)
    loaded = load_model(ckpt, config=str(tmp_path / "xl"))
    assert type(loaded).__name__ == "StableDiffusionXLPipeline"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(tiny, name).state_dict(), getattr(loaded, name).state_dict()
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k].reshape(a[k].shape)) for k in a), name
    with pytest.raises(ModelLoadError, match="StableDiffusionXLPipeline checkpoint file needs "
                                             "--model-config"):
        load_model(ckpt)
    with pytest.raises(ModelLoadError, match="has no safety checker"):
        load_model(str(tmp_path / "xl"), safety_checker=True)


def test_image_variation_folder(tmp_path):
    """The lambdalabs/sd-image-variations-diffusers layout: image_encoder + feature_extractor,
    no text encoder; a folder without its image encoder is refused before loading."""
    import shutil

    tiny = load_model("tiny-variation")
    tiny.save_pretrained(tmp_path / "var")
    assert {"image_encoder", "feature_extractor", "unet", "vae"} <= set(
        p.name for p in (tmp_path / "var").iterdir())
    loaded = load_model(str(tmp_path / "var"))
    assert type(loaded).__name__ == "StableDiffusionImageVariationPipeline"
    assert type(loaded.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    assert loaded.feature_extractor.crop_size == tiny.feature_extractor.crop_size
    shutil.rmtree(tmp_path / "var" / "image_encoder")
    with pytest.raises(ModelLoadError, match="lacks the image_encoder/ folder"):
        check_model_spec(str(tmp_path / "var"))
