"""Label-ambiguity resolution (seed 003 §3.1, "Diversify, don't fine-tune", Figure 3, Eq. 1).

"Given class c with N real training images, we query an LLM to extract K possible meaning phrases
{P_i} associated with c and compute their text embeddings phi(P_i) using the CLIP text encoder.
We also extract image embeddings theta(I_j) for the real training images [...] and select the
meaning phrase with highest similarity: P^c = argmax_i sum_j theta(I_j) . phi(P_i)."

Candidates come from an LLM (:class:`engine.prompts.llm.LLMBackend`) or, without one, from
WordNet's noun senses of the class name (``cls.senses()``).  Scoring goes through a *scorer*,
``score(images, texts) -> (N, K) array`` of cosine similarities; :class:`OpenClipScorer` is the
CLIP one (open_clip, from a local checkpoint file or a pretrained tag).  The result is a JSON
file ``{wnid: meaning}`` that the ``disambiguated``/``cd``/``sd`` recipes read (``meanings=FILE``).
"""
from __future__ import annotations

from engine.errors import UserError
import dataclasses
import json
import os
from typing import Protocol, Sequence

import numpy as np

from engine.catalog import ClassInfo
from engine.paths import atomic_write

DEFAULT_K = 5


class AmbiguityError(UserError, RuntimeError):
    """Label-ambiguity resolution cannot run (no candidates, no images, no CLIP model)."""


class Scorer(Protocol):
    def score(self, images, texts: Sequence[str]) -> np.ndarray:
        """Image-text similarities, shape ``(len(images), len(texts))``."""


@dataclasses.dataclass(frozen=True)
class Resolution:
    """The outcome for one class."""

    best: str
    """The selected meaning phrase."""
    candidates: tuple[str, ...]
    """The K candidates, in the order they were scored."""
    scores: tuple[float, ...]
    """Mean image-text similarity of each candidate (Eq. 1 up to the constant 1/N)."""


# ----------------------------------------------------------------------------- meanings file
def load_meanings(path: str) -> dict[str, str]:
    """Read a ``{wnid-or-name: meaning}`` JSON file, checking its shape."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"meanings file not found: {path} (write one with "
                                "engine.prompts.ambiguity, or by hand: {\"n02012849\": \"...\"})")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in data.items()):
        raise ValueError(f"{path}: expected a JSON object mapping wnid (or class name) to a "
                         "non-empty meaning string")
    return data


def write_meanings(path: str, meanings: dict[str, str]) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(meanings, f, ensure_ascii=False, indent=1, sort_keys=True)


# ----------------------------------------------------------------------------- candidates
def candidate_meanings(cls: ClassInfo, llm=None, k: int = DEFAULT_K) -> list[str]:
    """K candidate meanings of the class name: from ``llm.meanings`` or WordNet's noun senses."""
    if llm is not None:
        found = llm.meanings(cls.name, k)
    else:
        found = [definition for _, definition in cls.senses()][:k]
        if not found and cls.definition:
            found = [cls.definition]
    found = list(dict.fromkeys(m.strip() for m in found if m.strip()))
    if not found:
        raise AmbiguityError(f"no candidate meanings for class {cls.name!r}: WordNet has no noun "
                             "sense of that name; use an LLM (--llm-url) or a class description")
    return found


# ----------------------------------------------------------------------------- resolution
def resolve(images, candidates: Sequence[str], scorer: Scorer) -> Resolution:
    """Eq. 1: the candidate whose text embedding has the highest mean similarity to the images."""
    if len(candidates) == 0:
        raise AmbiguityError("no candidate meanings to choose from")
    sims = np.asarray(scorer.score(images, list(candidates)), dtype=np.float64)
    if sims.ndim != 2 or sims.shape[1] != len(candidates) or sims.shape[0] == 0:
        raise AmbiguityError(f"scorer returned shape {sims.shape}, expected "
                             f"(num_images > 0, {len(candidates)})")
    mean = sims.mean(axis=0)
    best = int(np.argmax(mean))
    return Resolution(candidates[best], tuple(candidates), tuple(float(s) for s in mean))


def class_image_paths(root: str, cls: ClassInfo, limit: int) -> list[str]:
    """Up to ``limit`` image files of the class in an ImageFolder tree: ``root/<wnid or name>/``,
    listed by :func:`loaders.files.list_images` (the product's one lister: torchvision's
    extensions, case-insensitive, recursive, sorted, hidden files skipped)."""
    from loaders.files import list_images

    for folder in (cls.wnid, cls.name):
        if folder and os.path.isdir(os.path.join(root, folder)):
            files = list_images(os.path.join(root, folder))
            if files:
                return files[:limit]
    raise AmbiguityError(f"no real images of class {cls.name!r} under {root} (expected "
                         f"{root}/{cls.wnid or cls.name}/*.jpg)")


def resolve_classes(classes, image_root: str, scorer: Scorer, llm=None, k: int = DEFAULT_K,
                    images_per_class: int = 50) -> dict[str, Resolution]:
    """Resolve every class of a set; keys are wnids (names for free-form classes)."""
    from PIL import Image

    out = {}
    for cls in classes:
        candidates = candidate_meanings(cls, llm, k)
        images = []
        for p in class_image_paths(image_root, cls, images_per_class):
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        out[cls.wnid or cls.name] = resolve(images, candidates, scorer)
    return out


# ----------------------------------------------------------------------------- CLIP scorer
class OpenClipScorer:
    """CLIP image-text cosine similarities through open_clip.

    Load with ``OpenClipScorer.load(model_name, checkpoint=FILE)`` (a local weights file) or
    ``pretrained=TAG`` (downloads; fails fast with ``HF_HUB_OFFLINE=1``), or wrap a model already
    built (``OpenClipScorer(model, preprocess, tokenizer)``).
    """

    def __init__(self, model, preprocess, tokenizer, device: str = "cpu", batch_size: int = 64):
        self.model = model.to(device).eval()
        self.preprocess = preprocess
        """PIL image -> (3, H, W) tensor (open_clip's eval transform)."""
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_name: str, pretrained: str | None = None, checkpoint: str | None = None,
             device: str = "cpu") -> "OpenClipScorer":
        import open_clip

        if pretrained and checkpoint:
            raise AmbiguityError("give either a pretrained tag or a checkpoint file, not both")
        if checkpoint and not os.path.isfile(checkpoint):
            raise AmbiguityError(f"CLIP checkpoint file not found: {checkpoint}")
        source = checkpoint or pretrained
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=source, device=device)
        except Exception as exc:  # noqa: BLE001 - open_clip raises many types (hub, IO, config)
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            raise AmbiguityError(
                f"could not load open_clip model {model_name!r} with weights {source!r}: "
                f"{type(exc).__name__}: {exc}"
                + (" (HF_HUB_OFFLINE=1: pretrained tags cannot download;" if offline else " (")
                + " pass a local checkpoint file instead, e.g. --clip-checkpoint FILE)") from exc
        return cls(model, preprocess, open_clip.get_tokenizer(model_name), device)

    def _embed_images(self, images):
        import torch

        if isinstance(images, torch.Tensor):
            batches = images.split(self.batch_size)  # (N, 3, H, W) already preprocessed
        else:
            batches = [torch.stack([self.preprocess(im) for im in images[i:i + self.batch_size]])
                       for i in range(0, len(images), self.batch_size)]
        feats = [self.model.encode_image(b.to(self.device)) for b in batches]
        return torch.nn.functional.normalize(torch.cat(feats).float(), dim=-1)  # (N, D)

    def score(self, images, texts):
        import torch

        with torch.no_grad():
            img = self._embed_images(images)                                  # (N, D)
            txt = self.model.encode_text(self.tokenizer(list(texts)).to(self.device))
            txt = torch.nn.functional.normalize(txt.float(), dim=-1)          # (K, D)
            return (img @ txt.T).cpu().numpy()                                # (N, K)
