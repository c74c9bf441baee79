"""S3: template prompts of "Leaving reality to imagination" (seed 004, §4.4 and Table 8).

Bansal & Grover: "The proxy captions are a set of 80 diverse templates given by [42] to evaluate
their CLIP model" (§3, Appendix H, Table 8: 'a bad photo of a {class label}.', 'a photo of many
{class label}.', ..., 'a tattoo of the {class label}.'), and the single-template ablations of
Table 4: 'a photo of a [CL]' and 'a rendition of a [CL]' -- written there without a final
period, unlike the CLIP list, and reproduced as printed.

The 80 templates come from open_clip (``open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES``,
the same list as CLIP's notebook). ``{class label}`` is CLIP's curated ImageNet class name
(``IMAGENET_CLASSNAMES``, the names the templates were written for) for ImageNet-1K classes, else
the class name ``cls.name`` (option ``names="wordnet"`` always uses ``cls.name``).

A user ``template`` may use ``{c}`` (the class name) and ``{lemmas}`` (every synset lemma,
comma-joined, seed 002 §4.1's "c"): seed 001 Table 4's "a photo of c" with the full lemma list is
``--template "a photo of {lemmas}"``.
"""
from __future__ import annotations

import string

from engine.catalog import ClassInfo
from engine.prompts.base import Recipe, RecipeError, register
from engine.prompts.common import cycle, shuffled, synset_text

PAPER = "seed 004 (Bansal & Grover, Leaving reality to imagination)"
NAME_SOURCES = ("clip", "wordnet")
FIELDS = ("c", "lemmas")
"""Template fields: ``{c}`` the class name, ``{lemmas}`` all its lemmas comma-joined."""


def clip_templates() -> list[str]:
    """The 80 CLIP ImageNet templates as ``str.format`` strings with a ``{c}`` field."""
    from engine.clip import zero_shot_metadata

    return [t("{c}") for t in zero_shot_metadata().OPENAI_IMAGENET_TEMPLATES]


def clip_class_name(cls: ClassInfo) -> str:
    """CLIP's curated name for an ImageNet-1K class (by wnid), else ``cls.name``."""
    if not cls.wnid:
        return cls.name
    from engine.catalog import ClassLookupError, imagenet_class
    from engine.clip import zero_shot_metadata

    try:
        index = imagenet_class(cls.wnid).index
    except ClassLookupError:
        return cls.name
    return zero_shot_metadata().IMAGENET_CLASSNAMES[index]


def check_template(template: str) -> str:
    """A user template needs ``{c}`` or ``{lemmas}`` and no other field (``{{``/``}}`` for
    braces)."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise RecipeError(f"bad template {template!r}: {exc} "
                          "(write literal braces as {{ and }})") from exc
    other = sorted(fields - set(FIELDS))
    if other or not fields:
        raise RecipeError(
            f"template {template!r} must contain the class placeholder {{c}} (or {{lemmas}})"
            + (f" and no other field (found {', '.join('{' + f + '}' for f in other)})"
               if other else "")
            + ", e.g. 'a photo of a {c} on the moon'")
    return template


class _TemplateRecipe(Recipe):
    """Prompts ``template.format(c=name)`` over a list of templates, in a per-class seeded order."""

    def __init__(self, names: str = "clip"):
        if names not in NAME_SOURCES:
            raise RecipeError(f"names must be one of {', '.join(NAME_SOURCES)}, got {names!r}")
        self.names = names
        """Which class name fills {c}: 'clip' (CLIP's ImageNet names) or 'wordnet' (cls.name)."""

    def templates(self) -> list[str]:
        raise NotImplementedError

    def class_name(self, cls: ClassInfo) -> str:
        return clip_class_name(cls) if self.names == "clip" else cls.name

    def config(self):
        return {"name": self.name, "names": self.names, "templates": self.templates()}

    def prompts(self, cls, n, seed):
        c = self.class_name(cls)
        rendered = [t.format(c=c, lemmas=synset_text(cls)) for t in self.templates()]
        if len(rendered) > 1:
            rendered = shuffled(rendered, seed, self.name)
        return cycle(rendered, n)


@register("clip_templates")
class ClipTemplates(_TemplateRecipe):
    """The 80 CLIP ImageNet templates (seed 004 Appendix H, Table 8), each ``n/80`` times."""

    name = "clip_templates"
    paper = PAPER + " §3 + Table 8"
    pattern = "'a bad photo of a {class label}.', ..., 'a tattoo of the {class label}.' (80)"

    def templates(self):
        return clip_templates()


@register("a_photo_of")
class APhotoOf(_TemplateRecipe):
    """``'a photo of a [CL]'`` (seed 004 Table 4), as printed there: no final period."""

    name = "a_photo_of"
    paper = PAPER + " §4.4, Table 4"
    pattern = "a photo of a {c}"

    def templates(self):
        return ["a photo of a {c}"]


@register("rendition")
class Rendition(_TemplateRecipe):
    """``'a rendition of a [CL]'`` (seed 004 Table 4), as printed there: no final period."""

    name = "rendition"
    paper = PAPER + " §4.4, Table 4"
    pattern = "a rendition of a {c}"

    def templates(self):
        return ["a rendition of a {c}"]


@register("template")
class UserTemplate(_TemplateRecipe):
    """A user template with a ``{c}`` and/or ``{lemmas}`` placeholder
    (``template="a {c} in the snow"``, ``template="a photo of {lemmas}"``)."""

    name = "template"
    paper = "user template in the style of " + PAPER
    pattern = "{template}"

    def __init__(self, template: str | None = None, names: str = "wordnet"):
        super().__init__(names)
        if template is None:
            raise RecipeError("recipe 'template' needs a template with {c}, e.g. "
                              "template='a photo of a {c} in the snow' (CLI: --template)")
        self.template = check_template(template)
        """The prompt pattern; ``{c}`` is replaced by the class name, ``{lemmas}`` by all its
        lemmas comma-joined."""
        self.pattern = template

    def config(self):
        return {"name": self.name, "names": self.names, "template": self.template}

    def templates(self):
        return [self.template]
