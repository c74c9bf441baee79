"""Classification metrics: top-k accuracy over the classes a model and a set share.

* **Label space.** A model's outputs are ImageNet-1K labels: all 1000, or the K classes of
  ``--classes`` in order (compact heads). ``--classes`` on a 1000-way model restricts every set
  to those classes instead (seed 004 Tables 3-4 evaluate ImageNet-100 models "over the classes
  that overlap with ImageNet-100").
* **Restriction.** A set's classes (groups of ImageNet-1K labels) are kept when the model has
  one of their labels; the model's logits are restricted to the kept classes' labels and
  max-pooled per group (ObjectNet classes map to several ImageNet classes); samples of dropped
  classes are left out. ImageNet-R/A on a 1000-way model: the 200 classes (Hendrycks et al.'s
  protocol); ImageNet-R on an ImageNet-100 model: the 19 shared classes (seed 004 App. G).
* **Accuracy** in percent. Top-k counts a sample correct when its class is among the k highest
  scores (ties broken by ``torch.topk``); k is capped at the number of classes evaluated.
* **Long tail** (seed 003 App. B): many-shot > 800 training images, medium 300-800, few < 300;
  accuracy over the samples of each split's classes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from engine.eval.labels import LabelSpaceError, subset_labels

MANY_SHOT_MIN = 801
"""More than 800 training images: many-shot (seed 003 App. B)."""
FEW_SHOT_MAX = 299
"""Fewer than 300: few-shot; in between (300-800): medium-shot."""


@dataclasses.dataclass(frozen=True)
class LabelSpace:
    outputs: tuple
    """ImageNet-1K label of each model output, in output order."""
    allowed: frozenset | None = None
    """``--classes`` restriction over a 1000-way head, else None."""
    name: str = "imagenet1k"

    def describe(self) -> dict:
        return {"classes": self.name, "num_outputs": len(self.outputs),
                "restricted_to": len(self.allowed) if self.allowed is not None else None}


def label_space(num_outputs: int, classes: str | None = None, sets=()) -> LabelSpace:
    """The label space of a model with ``num_outputs`` outputs and the user's ``--classes``
    (``sets``: names of the sets to evaluate, for the error message)."""
    if classes is None:
        if num_outputs != 1000:
            which = f"the test sets ({', '.join(sets)})" if sets else "the test sets"
            raise LabelSpaceError(
                f"the model has {num_outputs} outputs, but {which} are labelled in "
                "ImageNet-1K (1000 classes); pass --classes naming its classes in output order "
                "(e.g. --classes imagenet100 for a compact 100-way head)")
        return LabelSpace(tuple(range(1000)))
    labels = subset_labels(classes)
    if num_outputs == 1000:
        return LabelSpace(tuple(range(1000)), frozenset(labels), classes)
    if num_outputs == len(labels):
        return LabelSpace(tuple(labels), None, classes)
    raise LabelSpaceError(f"the model has {num_outputs} outputs but --classes {classes} has "
                          f"{len(labels)} classes; they must match (or the model have 1000)")


@dataclasses.dataclass
class Restriction:
    groups: np.ndarray
    """Indices of the set's classes that are evaluated."""
    columns: list
    """Per evaluated class: the model output columns whose logits it pools."""
    keep: np.ndarray
    """Boolean mask over the set's samples: those of evaluated classes."""
    targets: np.ndarray
    """Targets of the kept samples, as positions in ``groups``."""
    restricted: bool
    """True when the logits are restricted to fewer classes than the model has."""
    note: str

    @property
    def num_classes(self) -> int:
        return len(self.groups)


def restrict(set_name: str, groups, targets: np.ndarray, space: LabelSpace) -> Restriction:
    """Which classes, columns and samples of a set are evaluated (see module doc)."""
    col_of = {label: j for j, label in enumerate(space.outputs)}
    kept, columns = [], []
    for g, labels in enumerate(groups):
        cols = [col_of[l] for l in labels
                if l in col_of and (space.allowed is None or l in space.allowed)]
        if cols:
            kept.append(g)
            columns.append(cols)
    if not kept:
        raise LabelSpaceError(f"test set {set_name}: none of its {len(groups)} classes is among "
                              f"the model's classes ({space.name}); check --classes")
    kept = np.asarray(kept, dtype=np.int64)
    position = np.full(len(groups), -1, dtype=np.int64)
    position[kept] = np.arange(len(kept))
    keep = position[targets] >= 0
    used = len({c for cols in columns for c in cols})
    restricted = used < len(space.outputs)
    if restricted:
        note = (f"logits restricted to the {len(kept)} classes shared by the set "
                f"({len(groups)} classes) and the model ({len(space.outputs)} outputs"
                + (f", --classes {space.name}" if space.allowed is not None else "") + ")")
        if any(len(c) > 1 for c in columns):
            note += f"; each class pools the max logit of its {used} ImageNet-1K labels"
    else:
        note = f"all {len(space.outputs)} model outputs"
    if (~keep).any():
        note += f"; {int((~keep).sum())} images of other classes left out"
    return Restriction(kept, columns, keep, position[targets[keep]], restricted, note)


def pooled_logits(logits, columns):
    """``(N, K)`` logits -> ``(N, G)``: per evaluated class, the max over its columns."""
    import torch

    logits = torch.as_tensor(logits)
    if all(len(c) == 1 for c in columns):
        return logits[:, [c[0] for c in columns]]
    return torch.stack([logits[:, c].amax(dim=1) for c in columns], dim=1)  # (N, G)


def topk_correct(scores, targets, k: int) -> np.ndarray:
    """Boolean per sample: is the target among the ``k`` highest scores?"""
    import torch

    scores = torch.as_tensor(scores)
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices                                       # (N, k)
    return (top == torch.as_tensor(targets).view(-1, 1)).any(dim=1).numpy()


def accuracy(correct: np.ndarray) -> float:
    """Percent of True (NaN for no samples)."""
    return float(100.0 * np.mean(correct)) if len(correct) else float("nan")


def classify(set_name, logits, groups, targets, space: LabelSpace, ks=(1, 5)):
    """``(summary, details)``: top-k accuracies of a set's logits, and per-sample ``correct``
    (top-1 hits), ``keep`` (evaluated samples) and ``labels`` (their ImageNet-1K label; None
    for sets whose classes pool several labels)."""
    r = restrict(set_name, groups, targets, space)
    scores = pooled_logits(np.asarray(logits)[r.keep], r.columns)
    out = {"num_evaluated": int(r.keep.sum()), "classes_evaluated": r.num_classes,
           "restricted": r.restricted, "restriction": r.note}
    hits = {}
    for k in ks:
        hits[k] = topk_correct(scores, r.targets, k)
        out[f"top{k}"] = accuracy(hits[k])
    if max(ks) > r.num_classes:
        out["top_k_capped_at"] = r.num_classes
    labels = None
    if all(len(g) == 1 for g in groups):
        labels = np.asarray([groups[g][0] for g in r.groups], dtype=np.int64)[r.targets]
    return out, {"correct": hits[ks[0]], "keep": r.keep, "labels": labels}


def shot_accuracy(correct: np.ndarray, sample_labels: np.ndarray, train_counts: dict) -> dict:
    """Accuracy over many/medium/few-shot classes (seed 003 App. B); ``sample_labels`` are
    ImageNet-1K labels of the evaluated samples."""
    counts = np.asarray([train_counts.get(int(l), -1) for l in sample_labels])
    out = {}
    for split, mask in (("many", counts >= MANY_SHOT_MIN),
                        ("medium", (counts > FEW_SHOT_MAX) & (counts < MANY_SHOT_MIN)),
                        ("few", (counts >= 0) & (counts <= FEW_SHOT_MAX))):
        out[split] = {"top1": accuracy(correct[mask]), "num_images": int(mask.sum()),
                      "num_classes": len(set(sample_labels[mask].tolist()))}
    unknown = int((counts < 0).sum())
    if unknown:
        out["images_without_count"] = unknown
    return out


def mean_over(results: dict, keys=("top1", "top5")) -> dict:
    """Mean of each metric over a dict of per-part results (ImageNet-C's corruptions)."""
    return {k: float(np.mean([r[k] for r in results.values()])) for k in keys
            if all(k in r for r in results.values())}
