"""Label-ambiguity resolution (seed 003 §3.1, "Diversify, don't fine-tune", Figure 3, Eq. 1).

"Given class c with N real training images, we query an LLM to extract K possible meaning phrases
{P_i} associated with c and compute their text embeddings phi(P_i) using the CLIP text encoder.
We also extract image embeddings theta(I_j) for the real training images [...] and select the
meaning phrase with highest similarity: P^c = argmax_i sum_j theta(I_j) . phi(P_i)."

* **Images.** Eq. 1 sums over *all* N real training images of the class, and so does
  :func:`resolve_classes` by default (``images_per_class=None``). A positive
  ``images_per_class`` scores a seeded random subset of that size instead (the same subset in
  every process: drawn from ``(seed, class)``), for quick runs. Images are listed with
  :mod:`loaders.files` (ImageFolder rules, sorted).
* **Candidates** come from an LLM (:meth:`engine.prompts.llm.LLMBackend.meanings`) or, without
  one, from WordNet's noun senses of the class name (``cls.senses()``).
* **Scoring** goes through a *scorer*, ``score(images, texts) -> (N, K)`` cosine similarities:
  :class:`engine.clip.ClipModel` from :func:`engine.clip.load_clip` (the project's one CLIP
  loader). Images are embedded in batches, so all images of an ImageNet class (~1300) fit.

The result is a JSON file that the ``disambiguated``/``cd``/``sd`` recipes read
(``meanings=FILE``): ``{"synthclone_meanings": 1, "k": K, "candidate_source": "wordnet" |
"llm:<model>", "images_per_class": "all" | n, "seed": s, "clip": {...}, "meanings": {wnid:
meaning}, "classes": {wnid: {candidates, scores, num_images}}}``. A hand-written flat
``{wnid: meaning}`` object is read too.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Protocol, Sequence

import numpy as np

from engine.catalog import ClassInfo
from engine.errors import UserError
from engine.paths import atomic_write

DEFAULT_K = 5
MEANINGS_FORMAT = 1


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
    num_images: int = 0
    """Real images scored."""


# ----------------------------------------------------------------------------- meanings file
def read_meanings_file(path: str) -> dict:
    """The whole meanings file as a dict with at least ``meanings`` (flat files are wrapped)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"meanings file not found: {path} (write one with `synthclone "
                                "meanings`, or by hand: {\"n02012849\": \"...\"})")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as exc:
            raise AmbiguityError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "synthclone_meanings" in data:
        meanings = data.get("meanings")
    else:
        meanings, data = data, {"meanings": data}
    if not isinstance(meanings, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in meanings.items()):
        raise AmbiguityError(f"{path}: expected a JSON object mapping wnid (or class name) to a "
                             "non-empty meaning string")
    return data


def load_meanings(path: str) -> dict[str, str]:
    """``{wnid-or-name: meaning}`` from a meanings file (either shape)."""
    return read_meanings_file(path)["meanings"]


def write_meanings(path: str, meanings: dict[str, str], *, overwrite: bool = True,
                   **record) -> None:
    """Write a meanings file: the mapping plus how it was made (``k``, ``candidate_source``,
    ``images_per_class``, ``seed``, ``clip``, ``classes`` ...), keys sorted."""
    data = {"synthclone_meanings": MEANINGS_FORMAT, **record, "meanings": meanings}
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")


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


def candidate_source(llm=None) -> str:
    """``wordnet`` or ``llm:<model>``: what the meanings file records as the candidates' origin."""
    return "wordnet" if llm is None else f"llm:{llm.client.config.model}"


# ----------------------------------------------------------------------------- resolution
IMAGE_CHUNK = 128
"""Images decoded and scored at a time (all ~1300 of an ImageNet class would not fit at once)."""


def resolve(images, candidates: Sequence[str], scorer: Scorer) -> Resolution:
    """Eq. 1: the candidate whose text embedding has the highest mean similarity to the images."""
    if len(candidates) == 0:
        raise AmbiguityError("no candidate meanings to choose from")
    return _select(scorer.score(images, list(candidates)), candidates)


def resolve_paths(paths: Sequence[str], candidates: Sequence[str], scorer: Scorer,
                  chunk: int = IMAGE_CHUNK) -> Resolution:
    """:func:`resolve` over image files, decoded and scored ``chunk`` at a time."""
    from PIL import Image

    if len(candidates) == 0:
        raise AmbiguityError("no candidate meanings to choose from")
    sims = []
    for i in range(0, len(paths), chunk):
        images = []
        for p in paths[i:i + chunk]:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        sims.append(np.asarray(scorer.score(images, list(candidates)), dtype=np.float64))
    return _select(np.concatenate(sims) if sims else np.zeros((0, len(candidates))), candidates)


def _select(sims, candidates) -> Resolution:
    sims = np.asarray(sims, dtype=np.float64)
    if sims.ndim != 2 or sims.shape[1] != len(candidates) or sims.shape[0] == 0:
        raise AmbiguityError(f"scorer returned shape {sims.shape}, expected "
                             f"(num_images > 0, {len(candidates)})")
    mean = sims.mean(axis=0)
    best = int(np.argmax(mean))
    return Resolution(candidates[best], tuple(candidates), tuple(float(s) for s in mean),
                      sims.shape[0])


def class_image_paths(root: str, cls: ClassInfo, limit: int | None = None,
                      seed: int = 0) -> list[str]:
    """The image files of a class in an ImageFolder tree ``root/<wnid or name>/`` (listed by
    :func:`loaders.files.list_images`): all of them, or a seeded subset of ``limit``."""
    from loaders.files import list_images

    from engine.prompts.common import class_key, rng

    for folder in (cls.wnid, cls.name):
        if folder and os.path.isdir(os.path.join(root, folder)):
            files = list_images(os.path.join(root, folder))
            if files:
                if limit is not None and limit < len(files):
                    pick = np.sort(rng(seed, "meanings", class_key(cls)).choice(
                        len(files), size=limit, replace=False))
                    files = [files[i] for i in pick]
                return files
    raise AmbiguityError(f"no real images of class {cls.name!r} under {root} (expected "
                         f"{root}/{cls.wnid or cls.name}/*.jpg)")


def resolve_classes(classes, image_root: str, scorer: Scorer, llm=None, k: int = DEFAULT_K,
                    images_per_class: int | None = None, seed: int = 0,
                    progress: bool = False) -> dict[str, Resolution]:
    """Resolve every class of a set over all its real images (or a seeded subset of
    ``images_per_class``); keys are wnids (names for free-form classes)."""
    if images_per_class is not None and images_per_class < 1:
        raise AmbiguityError(f"images_per_class must be >= 1 (or None for all), got "
                             f"{images_per_class}")
    it = classes
    if progress:
        from tqdm import tqdm

        it = tqdm(classes, desc="meanings", unit="class")
    out = {}
    for cls in it:
        candidates = candidate_meanings(cls, llm, k)
        paths = class_image_paths(image_root, cls, images_per_class, seed)
        out[cls.wnid or cls.name] = resolve_paths(paths, candidates, scorer)
    return out
