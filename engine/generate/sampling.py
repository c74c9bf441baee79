"""The sampling loop: text (or image) conditioning -> per-row noise -> denoise -> latents, and
the VAE decode.  Written out (not ``pipe.__call__``) so the runner controls batching, the
embedding cache, CFG batching and per-row seeds.
"""
from __future__ import annotations

from engine.errors import ConfigError

import time

from engine.generate.batching import Batch, batch_noise, resample_seed
from engine.generate.embeddings import EmbeddingCache
from engine.generate.samplers import make_scheduler

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Sampler:
    """Runs batches through a loaded ``StableDiffusionPipeline``'s modules."""

    def __init__(self, pipe, device="cpu", dtype=None, cfg_batched: bool = True,
                 embed_cache: bool = True, channels_last: bool = False, image_loader=None):
        import torch

        self.pipe = pipe
        self.device = torch.device(device)
        self.dtype = dtype or pipe.unet.dtype
        self.cfg_batched = cfg_batched
        self.unet = pipe.unet
        self.vae = pipe.vae
        self.vae_fp32 = None                       # made lazily for the NaN retry of half VAEs
        self.scale = pipe.vae_scale_factor
        self.latent_channels = pipe.unet.config.in_channels
        self.scaling_factor = pipe.vae.config.scaling_factor
        self.scheduler_config = pipe.scheduler.config
        self.cache = EmbeddingCache(pipe.tokenizer, pipe.text_encoder, self.device, self.dtype,
                                    enabled=embed_cache)
        self.image_loader = image_loader           # init_image string -> uint8 HxWx3
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.times = {"text": 0.0, "unet": 0.0, "decode": 0.0}
        self.unet_calls = 0

    # ------------------------------------------------------------------ helpers
    def seeds(self, batch: Batch) -> list[int]:
        return [resample_seed(r.seed, batch.attempt) for r in batch.rows]

    def latent_shape(self, batch: Batch) -> tuple:
        _, _, _, h, w, _, _ = batch.key
        return (self.latent_channels, h // self.scale, w // self.scale)

    def _conditioning(self, batch: Batch):
        """(cond, uncond) embeddings, each (B, L, D); uncond is None without guidance."""
        import torch

        t0 = time.perf_counter()
        mode, guidance = batch.key[5], batch.key[2]
        if mode == "variation":
            cond = self._image_embeds(batch.rows)                     # (B, 1, D)
            uncond = torch.zeros_like(cond)
        else:
            cond = self.cache.get([r.prompt for r in batch.rows])      # (B, 77, D)
            uncond = self.cache.get([r.negative_prompt or "" for r in batch.rows])
        self.times["text"] += time.perf_counter() - t0
        return cond, (uncond if guidance > 1.0 else None)

    def _image_embeds(self, rows):
        import torch
        import torch.nn.functional as F

        enc = getattr(self.pipe, "image_encoder", None)
        if enc is None:
            raise ConfigError("'via real images' rows need a model with a CLIP image encoder")
        size = enc.config.image_size
        x = self._load_images(rows, size, size)                        # (B, 3, S, S) in [-1, 1]
        x = (x + 1) / 2
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        with torch.no_grad():
            emb = enc(((x - mean) / std).to(self.dtype)).image_embeds  # (B, D)
        return F.normalize(emb, dim=-1).unsqueeze(1).to(self.dtype)    # (B, 1, D)

    def _load_images(self, rows, h: int, w: int):
        import numpy as np
        import torch
        import torch.nn.functional as F

        if self.image_loader is None:
            raise ConfigError("rows with init_image need an image source (--real)")
        ims = [torch.from_numpy(np.array(self.image_loader(r.init_image), dtype=np.uint8))
               for r in rows]
        out = []
        for im in ims:                                                 # (H, W, 3) uint8
            x = im.permute(2, 0, 1)[None].float() / 127.5 - 1.0       # (1, 3, H, W)
            out.append(F.interpolate(x, size=(h, w), mode="bilinear", antialias=True,
                                     align_corners=False))
        return torch.cat(out).to(self.device)

    def _unet(self, x, t, emb):
        t0 = time.perf_counter()
        x = x.to(dtype=self.dtype, memory_format=self.memory_format)
        out = self.unet(x, t, encoder_hidden_states=emb).sample.float()
        self.unet_calls += 1
        self.times["unet"] += time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------ main entry
    def denoise(self, batch: Batch):
        """Latents (B, C, h, w) for ``batch``; row i depends only on its row and attempt."""
        import torch

        sampler, steps, guidance, h, w, mode, strength = batch.key
        scheduler = make_scheduler(sampler, self.scheduler_config)
        scheduler.set_timesteps(steps, device=self.device)
        timesteps = scheduler.timesteps

        # 1. conditioning (cached text embeddings, or CLIP image embeddings)
        cond, uncond = self._conditioning(batch)
        emb = torch.cat([uncond, cond]) if uncond is not None and self.cfg_batched else cond

        # 2. per-row initial noise (CPU generator per row: independent of batch/shard/device)
        noise = batch_noise(self.seeds(batch), self.latent_shape(batch), self.device,
                            torch.float32)                             # (B, C, h, w)
        if mode == "img2img":
            # 2b. img2img: start from the noised latents of the real image (seed 004 §2.4)
            init_steps = min(int(steps * strength), steps)
            timesteps = timesteps[(steps - init_steps) * scheduler.order:]
            with torch.no_grad():
                x = self._load_images(batch.rows, h, w).to(self.vae.dtype)
                init = self.vae.encode(x).latent_dist.mode().float() * self.scaling_factor
            if len(timesteps) == 0:
                return init
            latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(len(batch.rows)))
        else:
            latents = noise * scheduler.init_noise_sigma              # fp32 for the scheduler

        # 3. denoising loop; classifier-free guidance in one UNet call when cfg_batched
        with torch.no_grad():
            for t in timesteps:
                if uncond is None:
                    eps = self._unet(scheduler.scale_model_input(latents, t), t, emb)
                elif self.cfg_batched:
                    x = scheduler.scale_model_input(torch.cat([latents, latents]), t)  # (2B,...)
                    eps_u, eps_c = self._unet(x, t, emb).chunk(2)
                    eps = eps_u + guidance * (eps_c - eps_u)
                else:
                    x = scheduler.scale_model_input(latents, t)
                    eps_u, eps_c = self._unet(x, t, uncond), self._unet(x, t, cond)
                    eps = eps_u + guidance * (eps_c - eps_u)
                latents = scheduler.step(eps, t, latents).prev_sample
        return latents                                                 # (B, C, h, w)

    def decode(self, latents):
        """Images (B, 3, H, W) float in [-1, 1]; rows with NaN from a half VAE retry in fp32."""
        import torch

        t0 = time.perf_counter()
        with torch.no_grad():
            z = (latents / self.scaling_factor).to(self.vae.dtype)
            x = self.vae.decode(z.to(memory_format=self.memory_format)).sample.float()
            bad = ~torch.isfinite(x).flatten(1).all(1)
            if bad.any() and self.vae.dtype != torch.float32:
                if self.vae_fp32 is None:
                    import copy

                    self.vae_fp32 = copy.deepcopy(self.vae).float()
                x[bad] = self.vae_fp32.decode(latents[bad].float() / self.scaling_factor).sample
        self.times["decode"] += time.perf_counter() - t0
        return x.clamp(-1, 1)
