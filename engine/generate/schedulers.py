"""Sampler names in plans -> diffusers schedulers made from the model's own scheduler config.

"pndm" is PLMS (seed 000: 50 PLMS steps, guidance 7.5), "ddim" is DDIM (eta 0, no clipping of
the predicted latents: ``clip_sample=False``, which every diffusers Stable Diffusion pipeline
enforces on its DDIM scheduler; clipping to [-1, 1] is for pixel-space models), "dpmpp" is
DPM-Solver++ (2nd order multistep).  A fresh scheduler is made per batch: PLMS and DPM-Solver
keep per-run state (previous model outputs).
"""
from __future__ import annotations

from engine.errors import ConfigError
from engine.plan import SAMPLERS  # noqa: F401  (the plan owns the sampler names)


def make_scheduler(name: str, base_config):
    """A new scheduler of kind ``name`` with the model's schedule (betas, prediction type...)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

    if name == "pndm":
        return PNDMScheduler.from_config(base_config, skip_prk_steps=True)
    if name == "ddim":
        return DDIMScheduler.from_config(base_config, clip_sample=False)
    if name == "dpmpp":
        return DPMSolverMultistepScheduler.from_config(
            base_config, algorithm_type="dpmsolver++", solver_order=2)
    raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
