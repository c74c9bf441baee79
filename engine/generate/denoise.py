"""The denoising loop and the VAE decode: conditioning -> per-row noise -> scheduler steps ->
latents -> images.  Written out (not ``pipe.__call__``) so the runner controls batching, the
embedding cache, CFG batching and per-row seeds; the family's conditioners
(``families.py``) decide what the UNet is conditioned on.
"""
from __future__ import annotations

import time

from engine.generate.batching import Batch, batch_noise, resample_seed
from engine.generate.conditioning import Conditioning
from engine.generate.images import load_init_images
from engine.generate.schedulers import make_scheduler


class Denoiser:
    """Runs batches through a loaded pipeline's UNet, scheduler and VAE."""

    def __init__(self, pipe, device="cpu", dtype=None, cfg_batched: bool = True,
                 embed_cache: bool = True, channels_last: bool = False, image_loader=None):
        import torch

        from engine.generate.families import family_of

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
        self.image_loader = image_loader           # init_image string -> uint8 HxWx3
        self.conditioners = family_of(pipe).make_conditioners(
            pipe, self.device, self.dtype, embed_cache=embed_cache, image_loader=image_loader)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.times = {"unet": 0.0, "decode": 0.0}
        self.unet_calls = 0

    # ------------------------------------------------------------------ accounting
    def cache_stats(self) -> dict:
        """Hits/misses/entries of the conditioners' embedding caches (the run summary's)."""
        total: dict = {}
        for c in {id(c): c for c in self.conditioners.values()}.values():
            for k, v in (c.stats() if hasattr(c, "stats") else {}).items():
                total[k] = total.get(k, 0) + v
        return total

    def stage_times(self) -> dict:
        """Seconds per stage: text/image conditioning, UNet, VAE decode."""
        cond = sum({id(c): c.seconds for c in self.conditioners.values()}.values())
        return {"text": cond, **self.times}

    def reset_times(self) -> None:
        for c in self.conditioners.values():
            c.seconds = 0.0
        self.times = dict.fromkeys(self.times, 0.0)
        self.unet_calls = 0

    def check_modes(self, modes, model: str | None = None) -> None:
        """Refuse, before any work, conditioning modes this model's family cannot run."""
        from engine.errors import ConfigError
        from engine.generate.families import family_of, modes_problem

        problem = modes_problem(family_of(self.pipe), modes, model or "this model")
        if problem:
            raise ConfigError(problem)

    # ------------------------------------------------------------------ helpers
    def seeds(self, batch: Batch) -> list[int]:
        return [resample_seed(r.seed, batch.attempt) for r in batch.rows]

    def latent_shape(self, batch: Batch) -> tuple:
        k = batch.key
        return (self.latent_channels, k.height // self.scale, k.width // self.scale)

    def _unet(self, x, t, cond: Conditioning):
        t0 = time.perf_counter()
        x = x.to(dtype=self.dtype, memory_format=self.memory_format)
        out = self.unet(x, t, **cond.unet_kwargs()).sample.float()
        self.unet_calls += 1
        self.times["unet"] += time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------ main entry
    def denoise(self, batch: Batch):
        """Latents (B, C, h, w) for ``batch``; row i depends only on its row and attempt."""
        import torch

        key = batch.key
        scheduler = make_scheduler(key.sampler, self.scheduler_config)
        scheduler.set_timesteps(key.steps, device=self.device)
        timesteps = scheduler.timesteps

        # 1. conditioning (text embeddings from the cache, or CLIP image embeddings)
        cond, uncond = self.conditioners[key.mode](batch.rows, key.guidance)
        both = Conditioning.cat([uncond, cond]) if uncond is not None and self.cfg_batched else None

        # 2. initial latents: per-row noise (a CPU generator per row, so a row's image never
        #    depends on its batch, shard or device)
        shape = self.latent_shape(batch)
        begin = 0
        if key.mode == "img2img":
            # 2b. img2img (seed 004 §2.4 "via real images and class labels"): the real image's
            #     latents noised to the first kept timestep, as StableDiffusionImg2ImgPipeline
            #     does with a generator per row (a posterior sample, then the noise)
            init_steps = min(int(key.steps * key.strength), key.steps)
            begin = (key.steps - init_steps) * scheduler.order
            timesteps = timesteps[begin:]
            posterior, noise = batch_noise(self.seeds(batch), shape, self.device, torch.float32,
                                           draws=2)                    # (B, C, h, w) each
            with torch.no_grad():
                x = load_init_images(self.image_loader, batch.rows, key.height, key.width,
                                     self.device).to(self.vae.dtype)   # (B, 3, H, W)
                dist = self.vae.encode(x).latent_dist
                init = (dist.mean.float() + dist.std.float() * posterior) * self.scaling_factor
            if len(timesteps) == 0:
                return init
            latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(len(batch.rows)))
        else:
            noise = batch_noise(self.seeds(batch), shape, self.device, torch.float32)
            latents = noise * scheduler.init_noise_sigma              # fp32 for the scheduler
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(begin)

        # 3. denoising loop; classifier-free guidance in one UNet call when cfg_batched
        with torch.no_grad():
            for t in timesteps:
                if uncond is None:
                    eps = self._unet(scheduler.scale_model_input(latents, t), t, cond)
                elif both is not None:
                    x = scheduler.scale_model_input(torch.cat([latents, latents]), t)  # (2B,...)
                    eps_u, eps_c = self._unet(x, t, both).chunk(2)
                    eps = eps_u + key.guidance * (eps_c - eps_u)
                else:
                    x = scheduler.scale_model_input(latents, t)
                    eps_u, eps_c = self._unet(x, t, uncond), self._unet(x, t, cond)
                    eps = eps_u + key.guidance * (eps_c - eps_u)
                latents = scheduler.step(eps, t, latents).prev_sample
        return latents                                                 # (B, C, h, w)

    def unscale(self, latents):
        """Latents -> the VAE's input scale (``latents_mean``/``latents_std`` where the VAE
        config has them, as the SDXL pipeline does; else ``/ scaling_factor``)."""
        import torch

        cfg = self.vae.config
        mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
        if mean is not None and std is not None:
            view = (1, len(mean), 1, 1)
            mean = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(view)
            std = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(view)
            return latents * std / self.scaling_factor + mean
        return latents / self.scaling_factor

    def decode(self, latents):
        """Images (B, 3, H, W) float in [-1, 1]; rows with NaN from a half VAE retry in fp32."""
        import torch

        t0 = time.perf_counter()
        with torch.no_grad():
            z = self.unscale(latents).to(self.vae.dtype)
            x = self.vae.decode(z.to(memory_format=self.memory_format)).sample.float()
            bad = ~torch.isfinite(x).flatten(1).all(1)
            if bad.any() and self.vae.dtype != torch.float32:
                if self.vae_fp32 is None:
                    import copy

                    self.vae_fp32 = copy.deepcopy(self.vae).float()
                x[bad] = self.vae_fp32.decode(self.unscale(latents[bad].float())).sample
        self.times["decode"] += time.perf_counter() - t0
        return x.clamp(-1, 1)
