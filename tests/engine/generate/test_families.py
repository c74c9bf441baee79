"""Pipeline families: saved folders are recognised by their pipeline class, and a family whose
conditioner adds UNet inputs (SDXL's pooled text embeddings + time ids) runs through the same
engine without touching the loop."""
import json

import numpy as np
import pytest
import torch

from engine.generate import families
from engine.generate.conditioning import Conditioning, TextConditioner
from engine.generate.config import GenerateConfig
from engine.generate.models import ModelLoadError, check_model_spec, load_model
from engine.generate.runner import generate
from tests.engine.generate.helpers import make_plan, read_all


def test_saved_folder_family_and_components(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ModelLoadError, match="FluxPipeline; supported: StableDiffusionPipeline"):
        check_model_spec(str(tmp_path))
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline"}))
    for sub in ("unet", "vae", "text_encoder", "tokenizer"):
        (tmp_path / sub).mkdir()
    with pytest.raises(ModelLoadError, match="lacks the scheduler/ folder"):
        check_model_spec(str(tmp_path))
    (tmp_path / "scheduler").mkdir()
    assert check_model_spec(str(tmp_path)) == "dir"


TEXT_EMBEDS = 32
TIME_IDS = 6
TIME_DIM = 8


def _xl_like_pipe():
    """The tiny model with an SDXL-style UNet (``addition_embed_type="text_time"``)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    class XLLikePipeline(StableDiffusionPipeline):
        pass

    pipe = load_model("tiny")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=16, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_DIM,
        projection_class_embeddings_input_dim=TEXT_EMBEDS + TIME_IDS * TIME_DIM)
    xl = XLLikePipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                        unet=unet, scheduler=pipe.scheduler, safety_checker=None,
                        feature_extractor=None, requires_safety_checker=False)
    xl.set_progress_bar_config(disable=True)
    return xl


class _PooledTextConditioner(TextConditioner):
    """Text hidden states plus SDXL's added inputs: pooled embeddings (scaled) and time ids."""

    def __init__(self, pipe, device, dtype, cache, pooled_scale):
        super().__init__(pipe, device, dtype, cache)
        self.pooled_scale = pooled_scale

    def _added(self, c: Conditioning, rows) -> Conditioning:
        b = len(rows)
        h, w = rows[0].height, rows[0].width
        pooled = c.hidden_states[:, -1, :].float() * self.pooled_scale          # (B, 32)
        time_ids = torch.tensor([[h, w, 0, 0, h, w]] * b, dtype=torch.float32)   # (B, 6)
        return Conditioning(c.hidden_states, {"text_embeds": pooled, "time_ids": time_ids})

    def __call__(self, rows, guidance):
        cond, uncond = super().__call__(rows, guidance)
        return self._added(cond, rows), (uncond and self._added(uncond, rows))


@pytest.mark.parametrize("cfg_batched", [True, False])
def test_a_family_with_added_unet_inputs_runs_through_generate(tmp_path, monkeypatch,
                                                               cfg_batched):
    scale = {"value": 1.0}

    def conditioners(pipe, device, dtype, *, embed_cache, image_loader):
        text = _PooledTextConditioner(pipe, device, dtype, embed_cache, scale["value"])
        return {"text": text}

    fam = families.Family("xl-like", "XLLikePipeline", ("unet",), conditioners)
    monkeypatch.setitem(families._FAMILIES, fam.name, fam)
    plan = make_plan(per_class=1, steps=2, size=32)
    cfg = GenerateConfig(model="tiny", batch_size=3, progress=False, durable=False,
                         writer_workers=1, dtype="fp32", cfg_batched=cfg_batched)
    a = read_all(generate(plan, str(tmp_path / "a.beton"), cfg, model=_xl_like_pipe())["out"])
    scale["value"] = -3.0
    b = read_all(generate(plan, str(tmp_path / "b.beton"), cfg, model=_xl_like_pipe())["out"])
    assert sorted(a) == sorted(b) == [0, 1, 2]
    # the added inputs reach the UNet: changing the pooled embeddings changes the images
    assert any(not np.array_equal(a[k][1], b[k][1]) for k in a)
