"""The one CLIP loader and scorer (open_clip): the generation filter (seed 004 §4.5), label-
ambiguity resolution (seed 003 Eq. 1) and evaluation (CLIP score and diversity, seed 004
Table 7) all use :func:`load_clip`.

Weights: ``pretrained`` is an open_clip tag (needs the hub; with ``HF_HUB_OFFLINE=1`` it fails
fast) or a local weights file. Without weights a CLIP model is random and its scores mean
nothing, so :func:`load_clip` refuses ``pretrained=None`` unless ``allow_random=True`` (tests),
and then seeds the weights so they are the same in every process.

Images are preprocessed with open_clip's own eval transform (resize the short side, center
crop, normalise), whether they come as PIL images or as uint8 ``(N, H, W, 3)`` arrays.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from engine.errors import UserError

DEFAULT_MODEL = "ViT-B-32"
TEMPLATE = "a photo of a {}"
"""The text the filter and the CLIP score compare an image with: seed 004 §4.5's proxy caption
'a photo of a {class label}' (no final period), filled with CLIP's ImageNet class names."""


def zero_shot_metadata():
    """open_clip's ``zero_shot_metadata`` module (``IMAGENET_CLASSNAMES``,
    ``OPENAI_IMAGENET_TEMPLATES``), read from its file without importing the ``open_clip``
    package (which imports torch: ~5 s that a plan does not need). Cached per process."""
    import importlib.util
    import sys

    name = "_synthclone_open_clip_zero_shot_metadata"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("open_clip is not installed: pip install open_clip_torch")
    path = os.path.join(list(spec.submodule_search_locations)[0], "zero_shot_metadata.py")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


class ClipLoadError(UserError):
    """open_clip could not build the model or load its weights (message says what to pass)."""


@dataclass
class ClipModel:
    model: object
    """The open_clip model, in eval mode, on ``device``."""
    preprocess: object
    """open_clip's eval transform: PIL image -> (3, S, S) tensor."""
    tokenizer: object
    device: str = "cpu"
    batch_size: int = 64
    name: str = DEFAULT_MODEL
    pretrained: str | None = None

    def encode_images(self, images):
        """L2-normalised image embeddings ``(N, D)`` (float32) of PIL images or a uint8
        ``(N, H, W, 3)`` array/tensor."""
        import torch
        import torch.nn.functional as F

        pil = _as_pil_list(images)
        feats = []
        with torch.no_grad():
            for i in range(0, len(pil), self.batch_size):
                x = torch.stack([self.preprocess(im) for im in pil[i:i + self.batch_size]])
                feats.append(self.model.encode_image(x.to(self.device)).float())  # (b, D)
        if not feats:
            return torch.zeros(0, self.embed_dim)
        return F.normalize(torch.cat(feats), dim=-1).cpu()                      # (N, D)

    def encode_texts(self, texts) -> "torch.Tensor":  # noqa: F821
        """L2-normalised text embeddings ``(K, D)`` (float32)."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            t = self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float()
        return F.normalize(t, dim=-1).cpu()                                     # (K, D)

    def score(self, images, texts):
        """Cosine similarities ``(N, K)`` (numpy float32) of N images and K texts."""
        return (self.encode_images(images) @ self.encode_texts(texts).T).numpy()

    @property
    def embed_dim(self) -> int:
        proj = getattr(self.model, "text_projection", None)
        if proj is not None:
            return int(proj.shape[-1] if hasattr(proj, "shape") else proj.out_features)
        return int(self.model.visual.output_dim)


def load_clip(model_name: str = DEFAULT_MODEL, pretrained: str | None = None, *,
              device: str = "cpu", allow_random: bool = False, batch_size: int = 64,
              flag: str = "--clip-pretrained") -> ClipModel:
    """Build open_clip ``model_name`` with weights ``pretrained`` (a tag or a local file).

    ``flag`` names the option the user sets, for the error messages."""
    try:
        import open_clip
        import torch
    except ImportError as exc:  # pragma: no cover - open_clip is a dependency
        raise ClipLoadError(f"open_clip is not installed ({exc}); pip install open_clip_torch")
    if pretrained is None and not allow_random:
        raise ClipLoadError(
            f"CLIP {model_name} needs weights: pass {flag} TAG_OR_FILE (an open_clip pretrained "
            "tag such as 'openai', or a local weights file); random weights would score nothing")
    if pretrained and _looks_like_path(pretrained) and not os.path.isfile(pretrained):
        raise ClipLoadError(f"CLIP weights file not found: {pretrained} (given with {flag})")
    if model_name not in open_clip.list_models():
        raise ClipLoadError(f"unknown open_clip model {model_name!r} (given with --clip-model); "
                            f"e.g. {', '.join(open_clip.list_models()[:5])}, ...")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)  # random weights (tests) are the same in every process
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=device)
    except Exception as exc:  # noqa: BLE001 - open_clip raises many types (hub, IO, config)
        from engine import env

        offline = env.hf_hub_offline()
        raise ClipLoadError(
            f"could not load open_clip {model_name!r} with weights {pretrained!r}: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            + ("; HF_HUB_OFFLINE=1, so pretrained tags cannot download:" if offline else ";")
            + f" pass a local weights file with {flag} FILE") from exc
    finally:
        torch.random.set_rng_state(state)
    model.eval()
    return ClipModel(model, preprocess, open_clip.get_tokenizer(model_name), device, batch_size,
                     model_name, pretrained)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or text.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def _as_pil_list(images) -> list:
    """PIL images as they are; uint8 ``(N, H, W, 3)`` arrays/tensors as PIL RGB images."""
    from PIL import Image

    if isinstance(images, (list, tuple)):
        return [im if isinstance(im, Image.Image) else Image.fromarray(_np(im)) for im in images]
    arr = _np(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got shape {arr.shape}")
    return [Image.fromarray(a) for a in arr]


def _np(x):
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.uint8))
