"""``GenerateConfig``: every switch of the generation engine, one docstring per field.

Resolution order: dataclass defaults -> the ``generate:`` section of a YAML file
(``engine/configs/*.yaml``) -> command-line flags.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from engine.errors import ConfigError

DTYPES = ("auto", "fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class GenerateConfig:
    model: str | None = None
    """A hub id | a local diffusers folder | a .safetensors/.ckpt file (with --model-config) |
    tiny / tiny-sdxl / tiny-variation / sd15-arch / sdxl-arch (built-in random weights: tests and
    benchmarks only). Stable Diffusion 1.x/2.x, SDXL or image-variation pipelines. generate
    needs one."""
    model_config: str | None = None
    """For a single checkpoint file: a local diffusers folder with the pipeline's configs (SD or
    SDXL; weights not needed)."""
    device: str = "auto"
    """auto (CUDA when available, else CPU) | cpu | cuda | cuda:N."""
    dtype: str = "auto"
    """auto (fp16 on CUDA; bf16 on CPUs with native bf16, AVX512-BF16/AMX; else fp32) | fp32 |
    fp16 (CUDA) | bf16. Half-precision VAE output with NaN is re-decoded in fp32."""
    threads: int | None = None
    """CPU intra-op threads (torch.set_num_threads); None keeps torch's default. On a shared
    CPU, 1 thread can be much faster than spinning OpenMP threads that fight other processes."""
    batch_size: int = 8
    """Images per UNet batch (CFG doubles the UNet batch). Lower it on out-of-memory."""
    group_batches: bool = True
    """Bucket plan rows by (sampler, steps, guidance, size, mode) so every batch is full."""
    cfg_batched: bool = True
    """Classifier-free guidance in one UNet call on [uncond; cond] instead of two calls."""
    embed_cache: bool = True
    """Cache text embeddings by prompt (plans repeat prompts; the negative prompt is shared)."""
    compile: bool = False
    """torch.compile the UNet and the VAE decoder (inductor; ~80 s cold on CPU, cached in
    TORCHINDUCTOR_CACHE_DIR; pays off on long runs)."""
    compile_mode: str = "default"
    """torch.compile mode: default (CPU, and GPU with varying batch sizes) or max-autotune-no-
    cudagraphs / reduce-overhead (GPU, fixed batch size: CUDA graphs)."""
    channels_last: bool | None = None
    """channels_last memory format for the UNet and VAE; None = auto (CUDA only: on our CPU it
    measured slightly slower)."""
    attention: str = "auto"
    """Attention backend: auto | sdpa | xformers (CUDA + xformers) | math (reference)."""
    fuse_qkv: bool = False
    """Fuse the Q/K/V projections of self-attention into one matmul (sdpa backend only)."""
    vae_slicing: bool = False
    """Decode one image at a time (lower peak memory for big batches)."""
    vae_tiling: bool = False
    """Decode in overlapping tiles (large sizes such as 1024^2 on small GPUs)."""
    pipeline_tail: bool = True
    """Decode/convert/resize/write batch k on a worker thread while the UNet runs batch k+1."""
    tail_inflight: int = 2
    """At most this many batches wait in the tail (bounds memory)."""
    writer_workers: int = 2
    """JPEG-encoding threads of the .beton writer."""
    store_size: int | None = 256
    """Longest side stored in the .beton (seed 003: 1024^2 stored at 256^2); None keeps the
    generated size."""
    jpeg_quality: int = 90
    """JPEG quality of stored images."""
    max_resample: int = 3
    """Re-sample a row whose latents are NaN/Inf or whose image is blank at most this often
    (with a derived seed); after that the row is reported as failed and left out."""
    blank_std: float = 1.0
    """An image with pixel std (0-255) below this counts as blank."""
    clip_filter: bool = False
    """Drop images whose CLIP similarity to "a photo of a {class}" (CLIP's ImageNet class
    names) is below clip_threshold (seed 004 §4.5); drops go to dropped.json. Needs
    --clip-pretrained."""
    clip_model: str = "ViT-B-32"
    """open_clip architecture of the CLIP filter."""
    clip_pretrained: str | None = None
    """open_clip pretrained tag (e.g. openai; needs the hub) or a local weights file."""
    clip_threshold: float = 0.3
    """CLIP filter threshold (seed 004 §4.5: 0.3)."""
    clip_random_weights: bool = False
    """TEST ONLY: let --clip-filter run with random CLIP weights (no --clip-pretrained); the
    scores mean nothing."""
    safety_checker: bool = False
    """Run the model's safety checker (off by default, as in seed 002; needs its weights)."""
    real: str | None = None
    """Real images for image-conditioned rows: a folder or a .beton (init_image = a path
    relative to the folder, or the .beton sample index); default: the source the plan records
    (synthclone plan --from-images)."""
    contact_sheet: int = 64
    """Images on the contact sheet PNG (0: none)."""
    progress: bool = True
    """Show a progress bar (images/s, ETA, per-stage time split)."""
    durable: bool = True
    """fsync the .beton at every commit (safe against power loss)."""
    flush_every: int = 1
    """Commit (journal) the .beton every this many batches: what a crash can lose."""

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"compile_mode {self.compile_mode!r}: choose one of "
                              f"{', '.join(COMPILE_MODES)}")
        if self.store_size is not None and self.store_size < 8:
            raise ConfigError(f"store_size must be >= 8 (or None), got {self.store_size}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.max_resample < 0:
            raise ConfigError("max_resample must be >= 0")
        if self.clip_filter and not self.clip_pretrained and not self.clip_random_weights:
            raise ConfigError("--clip-filter needs CLIP weights: pass --clip-pretrained "
                              "TAG_OR_FILE (an open_clip tag such as 'openai', or a local weights "
                              "file); with random weights the filter would drop every image")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


MODEL_CHOICES = ("a hub id (e.g. CompVis/stable-diffusion-v1-4), a local diffusers folder, a "
                 ".safetensors/.ckpt file with --model-config, or a built-in random-weight model "
                 "for tests and benchmarks: tiny, tiny-sdxl, tiny-variation, sd15-arch, sdxl-arch")


def require_model(cfg: GenerateConfig) -> str:
    """``cfg.model``, or a ConfigError listing the choices (a silent default would generate
    noise with random weights)."""
    if not cfg.model:
        raise ConfigError(f"--model is required (or generate.model in --config): {MODEL_CHOICES}")
    return cfg.model


def parse_shard(text: str | None = "auto") -> tuple[int, int, str]:
    """``"I/N"``, or ``"auto"``/None: the launcher's rank (torchrun RANK/WORLD_SIZE, else SLURM
    SLURM_PROCID/SLURM_NTASKS; see ``engine/env.py``), else 0/1. Returns ``(i, n, why)``."""
    from engine import env

    if text and text != "auto":
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected I/N (e.g. 0/4) or auto") from None
        why = "from --shard"
    else:
        launched = env.launcher()
        if launched is None:
            i, n = 0, 1
            why = ("the whole plan: --shard auto found no RANK/WORLD_SIZE (torchrun) or "
                   "SLURM_PROCID/SLURM_NTASKS (SLURM)")
        else:
            i, n = launched.rank, launched.world_size
            why = f"--shard auto: {launched.source}"
    from engine.plan import check_shard  # the plan owns the shard contract

    try:
        check_shard(i, n)
    except ConfigError as exc:
        raise ConfigError(f"{exc} [{why}]") from None
    return i, n, why


def shard_path(out: str, i: int, n: int) -> str:
    """``clone.beton`` -> ``clone.shard0of4.beton`` (unchanged for a single shard)."""
    if n == 1:
        return out
    stem, ext = os.path.splitext(out)
    return f"{stem}.shard{i}of{n}{ext or '.beton'}"


def run_dir_for(out: str) -> str:
    """The run folder beside the .beton: ``clone.beton`` -> ``clone.run/``."""
    stem, _ = os.path.splitext(out)
    return stem + ".run"
