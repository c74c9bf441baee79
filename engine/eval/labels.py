"""The ImageNet-1K label space of every evaluation (DESIGN.md "Label space").

Labels are ImageNet-1K indices in timm order (sorted wnids): ``engine.catalog``'s public tables
(``imagenet_wnids``, ``imagenet_index``, ``class_names``). Class subsets (ImageNet-100, the
ImageNet-R/A 200) are lists of those indices, never renumberings, resolved by
``engine.catalog.get_class_set`` (labels only: WordNet is never loaded for them).
"""
from __future__ import annotations

import functools

from engine.catalog import IMAGENET_NUM_CLASSES, ClassLookupError, imagenet_index
from engine.errors import UserError


class LabelSpaceError(UserError):
    """A model and a test set whose label spaces do not fit together."""


@functools.lru_cache(maxsize=1)
def wnid_to_label() -> dict[str, int]:
    return imagenet_index()


def label_of_wnid(wnid: str, where: str = "") -> int:
    label = wnid_to_label().get(wnid)
    if label is None:
        raise LabelSpaceError(f"{where + ': ' if where else ''}{wnid!r} is not an ImageNet-1K "
                              "wnid (class folders must be named by wnid, e.g. n01440764)")
    return label


@functools.lru_cache(maxsize=None)
def subset_labels(name: str) -> tuple[int, ...]:
    """Sorted ImageNet-1K labels of a named class set: ``imagenet1k``, ``imagenet-r``,
    ``imagenet-a``, or any ``engine.catalog`` spec (``imagenet100``, a class file, a comma list
    of wnids/names)."""
    if name == "imagenet1k":
        return tuple(range(IMAGENET_NUM_CLASSES))
    from engine.catalog import get_class_set

    try:
        cs = get_class_set(name)
    except (ClassLookupError, FileNotFoundError, ValueError) as exc:
        raise LabelSpaceError(f"--classes {name!r}: {exc}") from None
    if cs.num_labels != IMAGENET_NUM_CLASSES:
        raise LabelSpaceError(f"--classes {name!r} holds classes outside ImageNet-1K; evaluation "
                              "sets are labelled in ImageNet-1K, so the classes must be too")
    return tuple(sorted(c.index for c in cs))

