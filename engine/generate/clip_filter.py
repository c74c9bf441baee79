"""The CLIP filter (seed 004 §4.5): drop a generated image whose cosine similarity to
"a photo of a {class}" is below 0.3 ("as done in [53]"), with the class named as CLIP's own
ImageNet templates name it, and record every drop in the run folder (``dropped.json``).

* Model, weights and preprocessing: :func:`engine.clip.load_clip` (open_clip's eval transform:
  resize the short side, center crop, normalise). Real weights are required
  (``--clip-pretrained TAG_OR_FILE``); ``clip_random_weights`` is a test-only escape.
* Class names: for ImageNet-1K classes the names of open_clip's ``IMAGENET_CLASSNAMES``
  (the names OpenAI's zero-shot templates use, e.g. "great white shark", "crane bird"),
  indexed by the ImageNet-1K label of the row's wnid (so compact labels work too); for custom
  classes their own name (from the plan's class set).
"""
from __future__ import annotations

from engine.errors import ConfigError

THRESHOLD = 0.3
"""Seed 004 §4.5: images below this similarity to their class text are removed."""


def clip_class_names(plan, rows) -> dict:
    """``label -> class name`` as CLIP's templates spell it, for every label of ``rows``."""
    from engine.catalog import imagenet_index
    from engine.clip import zero_shot_metadata

    classnames = zero_shot_metadata().IMAGENET_CLASSNAMES
    imagenet = imagenet_index()
    names, custom = {}, set()
    for r in rows:
        if r.label in names or r.label in custom:
            continue
        if r.wnid in imagenet:
            names[r.label] = classnames[imagenet[r.wnid]]
        else:
            custom.add(r.label)
    if custom:
        own = _plan_class_names(plan)
        missing = sorted(custom - set(own))
        if missing:
            raise ConfigError(
                f"--clip-filter: the plan does not name its custom class(es) with label "
                f"{', '.join(map(str, missing[:5]))} (its class set "
                f"{plan.header.get('config', {}).get('classes')!r} cannot be read again here); "
                "rebuild the plan where its class file is, or drop --clip-filter")
        names.update({label: own[label] for label in custom})
    return names


def _plan_class_names(plan) -> dict:
    """label -> name: the plan header's ``class_names`` when it has them, else the plan's
    class set resolved again from its recorded config."""
    header = plan.header
    if isinstance(header.get("class_names"), dict):
        return {int(k): v for k, v in header["class_names"].items()}
    config = header.get("config") or {}
    if not config.get("classes"):
        return {}
    from engine.catalog import get_class_set
    from engine.errors import UserError

    try:
        classes = get_class_set(config["classes"], compact=bool(config.get("compact_labels")))
    except (UserError, OSError, ValueError):
        return {}
    return {c.index: c.name for c in classes}


class ClipFilter:
    """Scores images against "a photo of a {class}" and keeps those at or above the threshold."""

    def __init__(self, clip, class_names: dict, threshold: float = THRESHOLD):
        from engine.clip import TEMPLATE

        self.clip = clip                    # engine.clip.ClipModel
        self.class_names = class_names      # label -> name (clip_class_names)
        self.threshold = threshold
        self.template = TEMPLATE
        self._text: dict[int, object] = {}
        self.dropped: list[dict] = []

    def text(self, label: int) -> str:
        return self.template.format(self.class_names[label])

    def scores(self, images, labels) -> list[float]:
        """Cosine similarities of uint8 (B, H, W, 3) images to their class texts."""
        import torch

        for label in set(labels) - set(self._text):
            self._text[label] = self.clip.encode_texts([self.text(label)])[0]   # (D,)
        feats = self.clip.encode_images(images)                                 # (B, D)
        texts = torch.stack([self._text[label] for label in labels])            # (B, D)
        return (feats * texts).sum(-1).tolist()

    def keep(self, rows, images) -> list[bool]:
        """Which rows pass; the dropped ones are recorded in ``self.dropped``."""
        labels = [int(r.label) for r in rows]
        out = []
        for r, label, score in zip(rows, labels, self.scores(images, labels)):
            ok = score >= self.threshold
            if not ok:
                self.dropped.append({"sample_id": r.sample_id, "label": label,
                                     "class_text": self.text(label), "prompt": r.prompt,
                                     "clip_score": round(score, 4)})
            out.append(ok)
        return out


def load_clip_filter(cfg, plan, rows, device) -> ClipFilter:
    """The filter of a run: the model of ``cfg`` (weights required) and the rows' class names."""
    from engine.clip import load_clip

    names = clip_class_names(plan, rows)
    clip = load_clip(cfg.clip_model, cfg.clip_pretrained, device=str(device),
                     allow_random=cfg.clip_random_weights)
    return ClipFilter(clip, names, cfg.clip_threshold)
