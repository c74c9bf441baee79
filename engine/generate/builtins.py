"""Built-in random-weight models, made from configs with a fixed seed (the same weights every
time): ``tiny`` / ``tiny-sdxl`` / ``tiny-variation`` for tests (diffusers'
``get_dummy_components()`` sizes), ``sd15-arch`` / ``sdxl-arch`` (the real architectures) for
benchmarks. They generate noise-like images; they are never a default.

Each builder returns a diffusers pipeline of a supported family (``families.py``), built as
the real model's folder would load (same pipeline class, same component classes, the real
scheduler), so that ``save_pretrained`` writes the layout users bring.
"""
from __future__ import annotations

BUILTIN_SEED = 0
"""Random weights of built-in models come from this seed."""

# Stable Diffusion 1.x noise schedule (the PNDM scheduler that ships with SD-1.5).
SD1_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                     beta_schedule="scaled_linear", skip_prk_steps=True, set_alpha_to_one=False,
                     steps_offset=1, prediction_type="epsilon")
# SDXL base 1.0's scheduler (scheduler/scheduler_config.json: Euler, the same betas).
SDXL_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                      beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
                      interpolation_type="linear", use_karras_sigmas=False,
                      prediction_type="epsilon")
SDXL_VAE_SCALING = 0.13025
"""SDXL's VAE latent scaling factor (SD 1.x: 0.18215)."""

_CLIP_TOKENS = dict(bos_token_id=49406, eos_token_id=49407, vocab_size=49408,
                    max_position_embeddings=77)


def _vae(block_out_channels, layers_per_block, norm_num_groups, sample_size, **kw) -> dict:
    return dict(block_out_channels=block_out_channels, in_channels=3, out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
                up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
                latent_channels=4, layers_per_block=layers_per_block,
                norm_num_groups=norm_num_groups, sample_size=sample_size, **kw)


TINY_VAE = _vae((8, 16, 16, 16), 1, 8, 64)
"""An 8x VAE as small as diffusers' dummy components."""
TINY_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                 out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                 attention_head_dim=8, norm_num_groups=16)
TINY_TEXT = dict(_CLIP_TOKENS, pad_token_id=49407, hidden_size=32, intermediate_size=37,
                 layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2,
                 projection_dim=32)
TINY_IMAGE = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                  num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=32)


def tiny_configs() -> dict:
    return dict(unet=TINY_UNET, vae=TINY_VAE, text=TINY_TEXT)


def sd15_configs() -> dict:
    """The real SD-1.5 architecture (diffusers defaults are SD-1.x's UNet)."""
    return dict(
        unet=dict(cross_attention_dim=768, attention_head_dim=8, sample_size=64),
        vae=_vae((128, 256, 512, 512), 2, 32, 512, scaling_factor=0.18215),
        text=dict(_CLIP_TOKENS, pad_token_id=1, hidden_size=768, intermediate_size=3072,
                  num_attention_heads=12, num_hidden_layers=12, hidden_act="quick_gelu",
                  projection_dim=768))


def tiny_sdxl_configs() -> dict:
    """SDXL's shape in miniature: two text encoders of different widths (32 and 64, as SDXL's
    768 and 1280: their penultimate hidden states are concatenated, 96 = the UNet's cross-
    attention width), the second with a projection whose output is the pooled embedding (32),
    and a UNet with SDXL's ``text_time`` added embedding (6 time ids x 8 + 32 pooled = 80)."""
    return dict(
        unet=dict(TINY_UNET, cross_attention_dim=96, attention_head_dim=(2, 4),
                  use_linear_projection=True, transformer_layers_per_block=(1, 2),
                  addition_embed_type="text_time", addition_time_embed_dim=8,
                  projection_class_embeddings_input_dim=6 * 8 + 32),
        vae=dict(TINY_VAE, scaling_factor=SDXL_VAE_SCALING, force_upcast=True),
        text=TINY_TEXT,
        text_2=dict(TINY_TEXT, hidden_size=64, intermediate_size=64, hidden_act="gelu",
                    pad_token_id=0))


def sdxl_configs() -> dict:
    """The real SDXL base 1.0 architecture (unet/text_encoder/text_encoder_2/vae configs of
    stabilityai/stable-diffusion-xl-base-1.0): 2.6 B UNet parameters, CLIP ViT-L and OpenCLIP
    ViT-bigG text encoders."""
    return dict(
        unet=dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                  block_out_channels=(320, 640, 1280),
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                    "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                  attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10),
                  cross_attention_dim=2048, use_linear_projection=True,
                  addition_embed_type="text_time", addition_time_embed_dim=256,
                  projection_class_embeddings_input_dim=2816),
        vae=_vae((128, 256, 512, 512), 2, 32, 1024, scaling_factor=SDXL_VAE_SCALING,
                 force_upcast=True),
        text=dict(_CLIP_TOKENS, pad_token_id=1, hidden_size=768, intermediate_size=3072,
                  num_attention_heads=12, num_hidden_layers=12, hidden_act="quick_gelu",
                  projection_dim=768),
        text_2=dict(_CLIP_TOKENS, pad_token_id=1, hidden_size=1280, intermediate_size=5120,
                    num_attention_heads=20, num_hidden_layers=32, hidden_act="gelu",
                    projection_dim=1280))


def tiny_variation_configs() -> dict:
    """The image-variation pipeline in miniature: the tiny UNet cross-attending to one CLIP
    image embedding (projection 32 = the UNet's cross-attention width), no text encoder."""
    return dict(unet=TINY_UNET, vae=TINY_VAE, image=TINY_IMAGE)


BUILDERS = {
    "tiny": ("sd", tiny_configs),
    "sd15-arch": ("sd", sd15_configs),
    "tiny-sdxl": ("sdxl", tiny_sdxl_configs),
    "sdxl-arch": ("sdxl", sdxl_configs),
    "tiny-variation": ("variation", tiny_variation_configs),
}
"""Built-in name -> (family, configs)."""
BUILTIN = tuple(BUILDERS)
LARGE = ("sdxl-arch",)
"""Built-ins made directly in bfloat16 where the CPU has native bf16: SDXL's 3.5 B parameters
would take 14 GB in fp32 (random weights; fp32 runs cast them up)."""


def builtin_identity(name: str) -> str:
    """What decides a built-in's weights: its name, the seed, and the dtype it is made in
    (``sdxl-arch`` is made in bf16 on CPUs with native bf16, so its weights differ by machine)."""
    made_in = ":bf16" if name in LARGE and _native_bf16() else ""
    return f"builtin:{name}:seed{BUILTIN_SEED}{made_in}"


def build_builtin(name: str):
    """A random-weight pipeline made from configs with a fixed seed (same weights every time)."""
    import torch

    family, configs = BUILDERS[name]
    cfg = configs()
    state = torch.random.get_rng_state()
    default_dtype = torch.get_default_dtype()
    try:
        torch.manual_seed(BUILTIN_SEED)
        if name in LARGE and _native_bf16():
            torch.set_default_dtype(torch.bfloat16)
        pipe = {"sd": _sd, "sdxl": _sdxl, "variation": _variation}[family](cfg)
    finally:
        torch.set_default_dtype(default_dtype)
        torch.random.set_rng_state(state)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _native_bf16() -> bool:
    from engine.generate.setup_model import cpu_has_bf16

    return cpu_has_bf16()


def _sd(cfg: dict):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from engine.generate.tokenizer import offline_clip_tokenizer

    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text"]))
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=offline_clip_tokenizer(), unet=unet,
        scheduler=PNDMScheduler(**SD1_SCHEDULER), safety_checker=None, feature_extractor=None,
        image_encoder=None, requires_safety_checker=False)


def _sdxl(cfg: dict):
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection)

    from engine.generate.tokenizer import offline_clip_tokenizer

    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text"]))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**cfg["text_2"]))
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=offline_clip_tokenizer(),
        tokenizer_2=offline_clip_tokenizer(pad_token="!"),   # SDXL's tokenizer_2 pads with "!"
        unet=unet, scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        force_zeros_for_empty_prompt=True, add_watermarker=False)


def _variation(cfg: dict):
    from diffusers import (AutoencoderKL, PNDMScheduler, StableDiffusionImageVariationPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["image"]))
    return StableDiffusionImageVariationPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet,
        scheduler=PNDMScheduler(**SD1_SCHEDULER), safety_checker=None,
        feature_extractor=clip_image_processor(cfg["image"]["image_size"]),
        requires_safety_checker=False)


def clip_image_processor(size: int):
    """OpenAI CLIP's preprocessing (the ``feature_extractor/preprocessor_config.json`` of
    lambdalabs/sd-image-variations-diffusers: resize the short side bicubic, center crop,
    normalise) at ``size`` pixels, made offline."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size},
                              crop_size={"height": size, "width": size}, resample=3,
                              image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])
