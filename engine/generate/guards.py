"""Quality guards: NaN/Inf latents, blank images (re-sampled with a derived seed), and the
optional CLIP filter (seed 004 §4.5: drop images whose CLIP similarity to "a photo of a {c}"
is below 0.3), which records what it dropped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.errors import ConfigError

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


@dataclass
class ClipFilterConfig:
    model: str = "ViT-B-32"
    """open_clip architecture name."""
    pretrained: str | None = None
    """open_clip pretrained tag or a local weights file (None: random weights, tests only)."""
    threshold: float = 0.3
    """Drop images whose cosine similarity to the class text is below this (seed 004: 0.3)."""
    template: str = "a photo of a {}."
    """Text template; {} is the class name."""


class ClipFilter:
    """Scores images against "a photo of a {class}" with an open_clip model."""

    def __init__(self, cfg: ClipFilterConfig, class_names: dict, device="cpu"):
        import open_clip

        self.cfg = cfg
        self.device = device
        import torch

        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(0)     # random weights (pretrained=None) are the same every run
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                cfg.model, pretrained=cfg.pretrained, device=device)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ConfigError(f"CLIP filter: cannot load open_clip {cfg.model!r} with pretrained="
                             f"{cfg.pretrained!r} ({exc}); pass a local weights file with "
                             "--clip-pretrained PATH") from exc
        finally:
            torch.random.set_rng_state(state)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(cfg.model)
        self.class_names = class_names      # label -> class name
        self._text: dict[int, object] = {}
        self.dropped: list[dict] = []

    def _text_feature(self, label: int):
        import torch

        if label not in self._text:
            tok = self.tokenizer([self.cfg.template.format(self.class_names.get(label, label))])
            with torch.no_grad():
                f = self.model.encode_text(tok.to(self.device)).float()
            self._text[label] = torch.nn.functional.normalize(f, dim=-1)[0]
        return self._text[label]

    def scores(self, images, labels) -> list[float]:
        """Cosine similarities of uint8 (B, H, W, 3) images to their class texts."""
        import torch
        import torch.nn.functional as F

        size = self.model.visual.image_size
        size = size if isinstance(size, (tuple, list)) else (size, size)
        mean = torch.tensor(getattr(self.model.visual, "image_mean", None) or
                            (0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
        std = torch.tensor(getattr(self.model.visual, "image_std", None) or
                           (0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
        x = images.permute(0, 3, 1, 2).float() / 255.0                      # (B, 3, H, W)
        x = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False).clamp(0, 1)
        with torch.no_grad():
            f = self.model.encode_image(((x - mean) / std).to(self.device)).float()
        f = F.normalize(f, dim=-1)
        t = torch.stack([self._text_feature(int(lab)) for lab in labels])
        return (f * t).sum(-1).tolist()

    def keep(self, rows, images) -> list[bool]:
        """Which rows pass; the dropped ones are recorded in ``self.dropped``."""
        s = self.scores(images, [r.label for r in rows])
        out = []
        for r, v in zip(rows, s):
            ok = v >= self.cfg.threshold
            if not ok:
                self.dropped.append({"sample_id": r.sample_id, "label": r.label,
                                     "prompt": r.prompt, "clip_score": round(v, 4)})
            out.append(ok)
        return out
