"""What the UNet is conditioned on, per batch: the conditioners of each pipeline family.

A *conditioner* turns a batch's rows into a :class:`Conditioning` for the rows (``cond``) and,
with classifier-free guidance, for the unconditional branch (``uncond``). The denoising loop
(``denoise.py``) only concatenates, repeats and passes ``Conditioning.unet_kwargs()`` to the
UNet, so a family with other inputs plugs in here without touching the loop. Each computes
exactly what its diffusers pipeline computes (the reference tests compare images):

* Stable Diffusion 1.x/2.x text: :class:`TextConditioner` (one tokenizer + text encoder,
  ``encoder_hidden_states`` (B, 77, D); the unconditional branch encodes the negative prompt
  or ""), with the prompt-keyed embedding cache;
* SDXL: :class:`XLTextConditioner` (``StableDiffusionXLPipeline.encode_prompt``: the
  penultimate hidden states of both text encoders concatenated (B, 77, D1 + D2), the second
  encoder's projected pooled embedding, ``add_time_ids`` = original size + crop top-left +
  target size; an absent negative prompt gives zero embeddings when the model's
  ``force_zeros_for_empty_prompt`` says so), cached by prompt;
* image variation (seed 004 §2.4 "via real images"): :class:`ImageConditioner`
  (``StableDiffusionImageVariationPipeline._encode_image``: the model's CLIP image processor,
  the image encoder's raw ``image_embeds`` (B, 1, D) — not L2-normalised — and a zero
  embedding for the unconditional branch).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.errors import ConfigError
from engine.generate.embeddings import EmbeddingCache


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


class XLTextConditioner:
    """Prompts -> SDXL's conditioning: both encoders' penultimate hidden states, the pooled
    embedding and the time ids (``StableDiffusionXLPipeline.encode_prompt`` +
    ``_get_add_time_ids``, no crop, original size = target size = the row's size)."""

    def __init__(self, pipe, device, dtype, cache: bool = True):
        import torch

        self.pairs = [(t, e) for t, e in ((pipe.tokenizer, pipe.text_encoder),
                                          (pipe.tokenizer_2, pipe.text_encoder_2))
                      if e is not None]
        self.device, self.dtype = torch.device(device), dtype
        self.zero_negative = bool(pipe.config.get("force_zeros_for_empty_prompt", True))
        self.cache = EmbeddingCache(device=device, dtype=dtype, enabled=cache,
                                    encode=self._encode)
        self.seconds = 0.0
        unet = pipe.unet
        projection = pipe.text_encoder_2.config.projection_dim
        passed = unet.config.addition_time_embed_dim * TIME_IDS + projection
        expected = unet.add_embedding.linear_1.in_features
        if passed != expected:
            raise ConfigError(f"this SDXL model's UNet expects an added embedding of {expected} "
                              f"values but its text encoder + time ids give {passed}: the "
                              "model's configs do not belong together")

    def _encode(self, prompts: list[str]):
        import torch

        hidden, pooled = [], None
        with torch.no_grad():
            for tokenizer, encoder in self.pairs:
                ids = tokenizer(prompts, padding="max_length", truncation=True,
                                max_length=tokenizer.model_max_length, return_tensors="pt")
                out = encoder(ids.input_ids.to(self.device), output_hidden_states=True)
                if pooled is None and out[0].ndim == 2:              # the projected pooled
                    pooled = out[0]                                   # (B, P)
                hidden.append(out.hidden_states[-2])                 # (B, 77, D_i)
        return torch.cat(hidden, dim=-1).to(self.dtype), pooled.to(self.dtype)

    def time_ids(self, rows):
        """(B, 6): original (h, w) + crop top-left (0, 0) + target (h, w)."""
        import torch

        return torch.tensor([[r.height, r.width, 0, 0, r.height, r.width] for r in rows],
                            dtype=self.dtype, device=self.device)

    def __call__(self, rows, guidance: float):
        import torch

        t0 = time.perf_counter()
        hidden, pooled = self.cache.get([r.prompt for r in rows])        # (B,77,D) (B,P)
        time_ids = self.time_ids(rows)
        cond = Conditioning(hidden, {"text_embeds": pooled, "time_ids": time_ids})
        uncond = None
        if guidance > 1.0:
            # no negative prompt: zero embeddings where the model says so
            # (force_zeros_for_empty_prompt), else the encoded negative prompt or ""
            zero = [self.zero_negative and r.negative_prompt is None for r in rows]
            if all(zero):
                neg_hidden, neg_pooled = torch.zeros_like(hidden), torch.zeros_like(pooled)
            else:
                neg_hidden, neg_pooled = self.cache.get([r.negative_prompt or "" for r in rows])
                keep = torch.tensor([not z for z in zero], device=neg_hidden.device)
                neg_hidden = torch.where(keep.view(-1, 1, 1), neg_hidden, 0.0)
                neg_pooled = torch.where(keep.view(-1, 1), neg_pooled, 0.0)
            uncond = Conditioning(neg_hidden, {"text_embeds": neg_pooled, "time_ids": time_ids})
        self.seconds += time.perf_counter() - t0
        return cond, uncond

    def stats(self) -> dict:
        return self.cache.stats()


TIME_IDS = 6
"""SDXL's micro-conditioning: original size (2) + crop top-left (2) + target size (2)."""


class ImageConditioner:
    """Init images -> raw CLIP image embeddings (B, 1, D): image variation (seed 004 §2.4)."""

    def __init__(self, pipe, device, dtype, image_loader):
        self.encoder = getattr(pipe, "image_encoder", None)
        self.processor = getattr(pipe, "feature_extractor", None)
        if self.encoder is not None and self.processor is None:
            from engine.generate.builtins import clip_image_processor

            self.processor = clip_image_processor(self.encoder.config.image_size)
        self.device, self.dtype = device, dtype
        self.image_loader = image_loader
        self.seconds = 0.0

    def __call__(self, rows, guidance: float):
        """(cond, uncond or None); the unconditional branch is a zero embedding."""
        import torch
        from PIL import Image

        if self.encoder is None:
            raise ConfigError("'via real images' rows need a model with a CLIP image encoder")
        if self.image_loader is None:
            raise ConfigError("rows with init_image need an image source (--real)")
        t0 = time.perf_counter()
        images = [Image.fromarray(self.image_loader(r.init_image)) for r in rows]
        pixels = self.processor(images=images, return_tensors="pt").pixel_values
        with torch.no_grad():
            emb = self.encoder(pixels.to(self.device, self.dtype)).image_embeds   # (B, D)
        cond = Conditioning(emb.unsqueeze(1).to(self.dtype))                     # (B, 1, D)
        self.seconds += time.perf_counter() - t0
        return cond, (cond.zeros_like() if guidance > 1.0 else None)
