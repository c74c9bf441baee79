"""Quality guards: NaN/Inf latents and blank images (re-sampled with a derived seed), and the
counters of every guard; the CLIP filter is in ``clip_filter.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


BLANK_STD = 1.0
"""An image whose pixel standard deviation (0-255 scale) is below this is blank (e.g. the
all-black output of a safety checker, or a collapsed sample)."""


@dataclass
class GuardCounts:
    """What the guards did during a run (``summary.json`` -> ``guards``)."""

    nonfinite: int = 0
    """Rows whose latents held NaN or Inf (each re-sampled or failed)."""
    blank: int = 0
    """Images that came out blank (pixel std below ``blank_std``), safety-checker hits included."""
    nsfw_flagged: int = 0
    """Images the safety checker flagged (only with ``--safety-checker``)."""
    resampled: int = 0
    """Re-samples made with a derived seed."""
    failed: int = 0
    """Rows left out after ``max_resample`` re-samples."""
    dropped_clip: int = 0
    """Images the CLIP filter dropped (recorded in ``dropped.json``)."""

    def to_dict(self) -> dict:
        return asdict(self)


def nonfinite_rows(x) -> list[int]:
    """Indices of rows of a (B, ...) tensor holding NaN or Inf."""
    import torch

    return torch.nonzero(~torch.isfinite(x).flatten(1).all(1)).flatten().tolist()


def blank_rows(images, min_std: float = BLANK_STD) -> list[int]:
    """Indices of uint8 (B, H, W, 3) images that are (nearly) constant."""
    import torch

    std = images.flatten(1).float().std(dim=1)
    return torch.nonzero(std < min_std).flatten().tolist()
