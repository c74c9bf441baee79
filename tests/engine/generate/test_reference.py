"""Our engine against diffusers' own pipelines (fp32, tiny models saved in the diffusers folder
layout and loaded through ``load_model``, the code users hit): for each row, the image our
denoiser + decoder make equals the pipeline's image called with the same noise, prompt (or real
image), guidance, steps and scheduler.

* SDXL (seed 003 §4): ``StableDiffusionXLPipeline`` — two text encoders, pooled embeddings,
  time ids, zero negative embeddings for rows without a negative prompt;
* image variation (seed 004 §2.4 "via real images"): ``StableDiffusionImageVariationPipeline``
  — raw CLIP image embeddings, guidance 3;
* img2img (seed 004 §2.4 "via real images and class labels"): ``StableDiffusionImg2ImgPipeline``
  with a generator per row, strength 1.0 (the paper's "forward diffusion for T steps") and 0.5.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from engine.generate.batching import Batch, batch_key, batch_noise
from engine.generate.denoise import Denoiser
from engine.generate.models import load_model
from engine.generate.schedulers import make_scheduler
from engine.plan import PlanRow, row_seed

ATOL = 1e-4
"""Images in [0, 1]: our batch of several rows vs. the pipeline's (same values; a batch's
float reductions may differ in the last bits)."""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> a diffusers folder written by save_pretrained."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name in ("tiny", "tiny-sdxl", "tiny-variation"):
        load_model(name).save_pretrained(root / name)
        out[name] = str(root / name)
    return out


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return {f"img{k}.png": (rng.random((40 + 8 * k, 32, 3)) * 255).astype(np.uint8)
            for k in range(3)}


def _rows(n, steps=2, size=32, sampler="ddim", guidance=5.0, **kw):
    per_row = {k: v for k, v in kw.items() if isinstance(v, list)}
    same = {k: v for k, v in kw.items() if not isinstance(v, list)}
    return [PlanRow(sample_id=i, label=0, wnid=None, recipe="r", seed=row_seed(7, i),
                    guidance=guidance, steps=steps, height=size, width=size, sampler=sampler,
                    **{**{"prompt": ""}, **same, **{k: v[i] for k, v in per_row.items()}})
            for i in range(n)]


def _ours(pipe, rows, image_loader=None, cfg_batched=True):
    """Our denoiser + decoder for one batch of rows, as [0, 1] images (B, 3, H, W)."""
    d = Denoiser(pipe, "cpu", torch.float32, cfg_batched=cfg_batched, image_loader=image_loader)
    x = d.decode(d.denoise(Batch(batch_key(rows[0]), rows)))
    return (x / 2 + 0.5).clamp(0, 1)


def _noise(pipe, rows):
    k = rows[0]
    shape = (pipe.unet.config.in_channels, k.height // pipe.vae_scale_factor,
             k.width // pipe.vae_scale_factor)
    return batch_noise([r.seed for r in rows], shape)


def _reference(folder, sampler):
    pipe = load_model(folder)
    pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
    return pipe


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp"])
@pytest.mark.parametrize("cfg_batched", [True, False])
def test_sdxl_equals_the_sdxl_pipeline(saved, sampler, cfg_batched):
    pipe = load_model(saved["tiny-sdxl"])
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    prompts = ["a photo of a tench", "goldfish, inside a kitchen", "a tench"]
    rows = _rows(3, sampler=sampler, prompt=prompts, negative_prompt=[None, None, "blurry"])
    ours = _ours(pipe, rows, cfg_batched=cfg_batched)
    ref = _reference(saved["tiny-sdxl"], sampler)
    noise = _noise(ref, rows)
    # rows without a negative prompt: zero negative embeddings (force_zeros_for_empty_prompt)
    plain = ref(prompts[:2], num_inference_steps=2, guidance_scale=5.0, height=32, width=32,
                latents=noise[:2], output_type="pt").images
    negative = ref(prompts[2:], negative_prompt=["blurry"], num_inference_steps=2,
                   guidance_scale=5.0, height=32, width=32, latents=noise[2:],
                   output_type="pt").images
    torch.testing.assert_close(ours, torch.cat([plain, negative]), atol=ATOL, rtol=0)
    # the conditioning matters: another prompt gives another image
    assert (ours[0] - ours[1]).abs().max() > 0.01


def test_sdxl_without_guidance_and_the_time_ids_follow_the_size(saved):
    pipe = load_model(saved["tiny-sdxl"])
    rows = _rows(2, size=48, guidance=1.0, prompt=["a tench", "a goldfish"])
    ref = _reference(saved["tiny-sdxl"], "ddim")
    want = ref(["a tench", "a goldfish"], num_inference_steps=2, guidance_scale=1.0, height=48,
               width=48, latents=_noise(ref, rows), output_type="pt").images
    torch.testing.assert_close(_ours(pipe, rows), want, atol=ATOL, rtol=0)


def test_image_variation_equals_the_image_variation_pipeline(saved, images):
    pipe = load_model(saved["tiny-variation"])
    assert type(pipe).__name__ == "StableDiffusionImageVariationPipeline"
    names = sorted(images)
    rows = _rows(3, sampler="pndm", guidance=3.0, init_image=names)   # seed 004: guidance 3
    ours = _ours(pipe, rows, image_loader=images.__getitem__)
    ref = _reference(saved["tiny-variation"], "pndm")
    want = ref([Image.fromarray(images[n]) for n in names], num_inference_steps=2,
               guidance_scale=3.0, height=32, width=32, latents=_noise(ref, rows),
               output_type="pt").images
    torch.testing.assert_close(ours, want, atol=ATOL, rtol=0)


def test_image_embeddings_are_not_normalised(saved, images):
    """diffusers passes the raw ``image_embeds``; an L2-normalised embedding is another image."""
    from engine.generate.conditioning import ImageConditioner

    pipe = load_model(saved["tiny-variation"])
    rows = _rows(1, init_image=["img0.png"])
    cond, _ = ImageConditioner(pipe, "cpu", torch.float32, images.__getitem__)(rows, 3.0)
    pixels = pipe.feature_extractor(images=[Image.fromarray(images["img0.png"])],
                                    return_tensors="pt").pixel_values
    with torch.no_grad():
        raw = pipe.image_encoder(pixels).image_embeds
    torch.testing.assert_close(cond.hidden_states[:, 0], raw)
    assert abs(float(raw.norm()) - 1.0) > 0.1            # so normalising would change it


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_img2img_equals_the_img2img_pipeline(saved, images, strength):
    from diffusers import StableDiffusionImg2ImgPipeline

    square = {k: np.ascontiguousarray(v[:32, :32]) for k, v in images.items()}
    names = sorted(square)[:2]
    prompts = ["a bad photo of a tench.", "a sketch of a goldfish."]
    rows = _rows(2, steps=4, guidance=7.5, prompt=prompts, init_image=names, strength=strength)
    ours = _ours(load_model(saved["tiny"]), rows, image_loader=square.__getitem__)
    ref = StableDiffusionImg2ImgPipeline(**_reference(saved["tiny"], "ddim").components)
    ref.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(r.seed & 0x7FFF_FFFF_FFFF_FFFF) for r in rows]
    want = ref(prompts, image=[Image.fromarray(square[n]) for n in names], strength=strength,
               num_inference_steps=4, guidance_scale=7.5, generator=gens,
               output_type="pt").images
    torch.testing.assert_close(ours, want, atol=ATOL, rtol=0)
