"""Model loading: hub id, local diffusers folder, single checkpoint file, built-in ``tiny`` /
``sd15-arch`` random-weight models.  Everything is checked before any work starts.

``load_model(spec)`` returns a diffusers pipeline of a supported family (``families.py``; today
``StableDiffusionPipeline``): our denoising loop uses its ``unet``/``vae``/``scheduler`` and the
family's conditioners; the naive benchmark path calls the pipeline directly.  The safety checker is off unless asked for (seed 002 disabled it).
"""
from __future__ import annotations

from engine.errors import UserError
import os

BUILTIN = ("tiny", "sd15-arch")
BUILTIN_SEED = 0               # random weights of built-in models come from this seed
CHECKPOINT_EXTS = (".safetensors", ".ckpt")

# Stable Diffusion 1.x noise schedule (the PNDM scheduler that ships with SD-1.5).
SD1_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                     beta_schedule="scaled_linear", skip_prk_steps=True, set_alpha_to_one=False,
                     steps_offset=1, prediction_type="epsilon")


class ModelLoadError(UserError, ValueError):
    """The model spec cannot be loaded (missing path, no hub access, incompatible files)."""


def _tiny_configs() -> dict:
    """diffusers' ``get_dummy_components()`` sizes, with an 8x VAE and CLIP's real vocabulary."""
    return dict(
        unet=dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                  out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                  attention_head_dim=8, norm_num_groups=16),
        vae=dict(block_out_channels=(8, 16, 16, 16), in_channels=3, out_channels=3,
                 down_block_types=("DownEncoderBlock2D",) * 4,
                 up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=1,
                 norm_num_groups=8, sample_size=64),
        text=dict(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=32,
                  intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
                  num_hidden_layers=2, vocab_size=49408, max_position_embeddings=77,
                  projection_dim=32),
        image=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                   num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=32),
    )


def _sd15_configs() -> dict:
    """The real SD-1.5 architecture (diffusers defaults are SD-1.x's UNet)."""
    return dict(
        unet=dict(cross_attention_dim=768, attention_head_dim=8, sample_size=64),
        vae=dict(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3,
                 down_block_types=("DownEncoderBlock2D",) * 4,
                 up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2,
                 sample_size=512, scaling_factor=0.18215),
        text=dict(bos_token_id=49406, eos_token_id=49407, pad_token_id=1, hidden_size=768,
                  intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                  vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu",
                  projection_dim=768),
        image=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                   num_hidden_layers=24, image_size=224, patch_size=14, projection_dim=768),
    )


def build_builtin(name: str, with_image_encoder: bool = False):
    """A random-weight pipeline made from configs with a fixed seed (same weights every time)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from engine.generate.tokenizer import offline_clip_tokenizer

    cfg = {"tiny": _tiny_configs, "sd15-arch": _sd15_configs}[name]()
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(BUILTIN_SEED)
        unet = UNet2DConditionModel(**cfg["unet"])
        vae = AutoencoderKL(**cfg["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text"]))
        image_encoder = _image_encoder(cfg["image"]) if with_image_encoder else None
    finally:
        torch.random.set_rng_state(state)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=offline_clip_tokenizer(), unet=unet,
        scheduler=PNDMScheduler(**SD1_SCHEDULER), safety_checker=None, feature_extractor=None,
        image_encoder=image_encoder, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image_encoder(cfg: dict):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg))


def describe_spec(spec: str) -> str:
    """What kind of model spec this is: builtin, dir, file or hub."""
    if spec in BUILTIN:
        return "builtin"
    if os.path.isdir(spec):
        return "dir"
    if spec.lower().endswith(CHECKPOINT_EXTS):
        return "file"
    if spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").split("/", 1)[-1]:
        return "path"
    return "hub"


def pipeline_family(folder: str):
    """The :class:`~engine.generate.families.Family` of a saved diffusers pipeline folder."""
    import json

    from engine.generate import families

    with open(os.path.join(folder, "model_index.json"), encoding="utf-8") as f:
        class_name = json.load(f).get("_class_name", "")
    fam = families.by_pipeline_class(class_name)
    if fam is None:
        raise ModelLoadError(
            f"{folder} holds a {class_name or 'pipeline of unknown class'}; supported: "
            f"{', '.join(f.pipeline_class for f in families.families())}")
    return fam


def check_model_spec(spec: str, config: str | None = None) -> str:
    """Raise ModelLoadError before any work if ``spec`` cannot possibly load; return its kind."""
    kind = describe_spec(spec)
    if kind == "path":
        raise ModelLoadError(f"model path {spec!r} does not exist; pass a diffusers folder, a "
                             f".safetensors/.ckpt file, a hub id, or one of {', '.join(BUILTIN)}")
    if kind == "dir":
        if not os.path.exists(os.path.join(spec, "model_index.json")):
            raise ModelLoadError(
                f"{spec} is not a diffusers pipeline folder (no model_index.json); save one with "
                "StableDiffusionPipeline.save_pretrained(...) or pass a checkpoint file + --model-config")
        fam = pipeline_family(spec)
        for sub in fam.components:
            if not os.path.isdir(os.path.join(spec, sub)):
                raise ModelLoadError(f"{spec} lacks the {sub}/ folder a {fam.pipeline_class} "
                                     "needs (is the folder complete?)")
    if kind == "file":
        if not os.path.exists(spec):
            raise ModelLoadError(f"checkpoint file {spec} does not exist")
        if config is not None and not os.path.exists(os.path.join(config, "model_index.json")):
            raise ModelLoadError(f"--model-config {config} is not a diffusers folder (no "
                                 "model_index.json); it must hold the configs of the checkpoint's "
                                 "pipeline (e.g. a saved pipeline of the same architecture)")
    return kind


def load_model(spec: str, config: str | None = None, safety_checker: bool = False,
               with_image_encoder: bool = False):
    """Load ``spec`` (see module docstring) as a diffusers pipeline on the CPU, fp32."""
    import diffusers
    import torch
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    from engine.generate import families

    kind = check_model_spec(spec, config)
    if kind == "builtin":
        if safety_checker:
            raise ModelLoadError(f"the built-in {spec!r} model has no safety checker weights; "
                                 "drop --safety-checker")
        return build_builtin(spec, with_image_encoder=with_image_encoder)
    extra = {} if safety_checker else {"safety_checker": None, "requires_safety_checker": False}
    folder = spec if kind == "dir" else config if kind == "file" and config else None
    family = pipeline_family(folder) if folder else families.SD
    pipeline_class = getattr(diffusers, family.pipeline_class)
    try:
        if kind == "file":
            pipe = pipeline_class.from_single_file(spec, config=config, dtype=torch.float32,
                                                   **extra)
        else:
            pipe = pipeline_class.from_pretrained(spec, dtype=torch.float32, **extra)
    except (OSError, ValueError, SingleFileComponentError) as exc:
        hint = (" (no model hub access here: HF_HUB_OFFLINE is set or the network is down; "
                "download the model elsewhere and pass its local folder)" if kind == "hub" else
                " (a single checkpoint file needs --model-config: a local diffusers folder of the"
                " same architecture, e.g. a saved pipeline)" if kind == "file" and not config
                else "")
        raise ModelLoadError(f"could not load model {spec!r}{hint}: {exc}") from exc
    if safety_checker and getattr(pipe, "safety_checker", None) is None:
        raise ModelLoadError(f"--safety-checker was asked for but {spec!r} has no safety_checker "
                             "weights")
    if with_image_encoder and getattr(pipe, "image_encoder", None) is None:
        raise ModelLoadError(f"image variation needs a CLIP image encoder; {spec!r} has none")
    pipe.set_progress_bar_config(disable=True)
    return pipe
