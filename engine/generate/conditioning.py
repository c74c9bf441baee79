"""What the UNet is conditioned on, per batch: the conditioners of each pipeline family.

A *conditioner* turns a batch's rows into a :class:`Conditioning` for the rows (``cond``) and,
with classifier-free guidance, for the unconditional branch (``uncond``). The denoising loop
(``denoise.py``) only concatenates, repeats and passes ``Conditioning.unet_kwargs()`` to the
UNet, so a family with other inputs plugs in here without touching the loop:

* Stable Diffusion 1.x/2.x text: :class:`TextConditioner` (one tokenizer + text encoder,
  ``encoder_hidden_states`` (B, 77, D)), with the prompt-keyed embedding cache;
* image variation (seed 004 §2.4 "via real images"): :class:`ImageConditioner` (a CLIP image
  encoder, ``encoder_hidden_states`` (B, 1, D));
* SDXL (to come, issue #10 item 3): two text encoders whose hidden states are concatenated,
  plus ``added_cond_kwargs = {"text_embeds": pooled (B, 1280), "time_ids": (B, 6)}`` — a
  conditioner that fills :attr:`Conditioning.added`, registered in ``families.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.errors import ConfigError
from engine.generate.embeddings import EmbeddingCache
from engine.generate.images import load_init_images

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""CLIP's image normalisation (OpenAI CLIP; used by SD image-variation encoders)."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Conditioning:
    """The UNet's conditioning inputs for B rows; every tensor is batch-first."""

    hidden_states: object
    """``encoder_hidden_states`` (B, L, D)."""
    added: dict = field(default_factory=dict)
    """Extra UNet inputs passed as ``added_cond_kwargs`` (SDXL: ``text_embeds``, ``time_ids``)."""

    def unet_kwargs(self) -> dict:
        kw = {"encoder_hidden_states": self.hidden_states}
        if self.added:
            kw["added_cond_kwargs"] = self.added
        return kw

    @staticmethod
    def cat(parts: list["Conditioning"]) -> "Conditioning":
        """Row-wise concatenation (``[uncond; cond]`` for batched classifier-free guidance)."""
        import torch

        return Conditioning(torch.cat([p.hidden_states for p in parts]),
                            {k: torch.cat([p.added[k] for p in parts]) for k in parts[0].added})

    def zeros_like(self) -> "Conditioning":
        import torch

        return Conditioning(torch.zeros_like(self.hidden_states),
                            {k: torch.zeros_like(v) for k, v in self.added.items()})


class TextConditioner:
    """Prompts -> CLIP text-encoder hidden states (SD 1.x/2.x), cached by prompt."""

    def __init__(self, pipe, device, dtype, cache: bool = True):
        self.cache = EmbeddingCache(pipe.tokenizer, pipe.text_encoder, device, dtype,
                                    enabled=cache)
        self.seconds = 0.0

    def __call__(self, rows, guidance: float):
        """(cond, uncond or None without guidance); the uncond text is the negative prompt."""
        t0 = time.perf_counter()
        cond = Conditioning(self.cache.get([r.prompt for r in rows]))            # (B, 77, D)
        uncond = None
        if guidance > 1.0:
            uncond = Conditioning(self.cache.get([r.negative_prompt or "" for r in rows]))
        self.seconds += time.perf_counter() - t0
        return cond, uncond

    def stats(self) -> dict:
        return self.cache.stats()


class ImageConditioner:
    """Init images -> CLIP image embeddings (B, 1, D): image variation (seed 004 §2.4)."""

    def __init__(self, pipe, device, dtype, image_loader):
        self.encoder = getattr(pipe, "image_encoder", None)
        self.device, self.dtype = device, dtype
        self.image_loader = image_loader
        self.seconds = 0.0

    def __call__(self, rows, guidance: float):
        """(cond, uncond or None); the unconditional branch is a zero embedding."""
        import torch
        import torch.nn.functional as F

        if self.encoder is None:
            raise ConfigError("'via real images' rows need a model with a CLIP image encoder")
        t0 = time.perf_counter()
        size = self.encoder.config.image_size
        x = (load_init_images(self.image_loader, rows, size, size, self.device) + 1) / 2
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        with torch.no_grad():
            emb = self.encoder(((x - mean) / std).to(self.dtype)).image_embeds   # (B, D)
        cond = Conditioning(F.normalize(emb, dim=-1).unsqueeze(1).to(self.dtype))  # (B, 1, D)
        self.seconds += time.perf_counter() - t0
        return cond, (cond.zeros_like() if guidance > 1.0 else None)
