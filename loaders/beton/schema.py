"""What our .beton files hold: the field sets of generated and real files, the names of the
files beside a file being written, and the file's own description (:class:`FileInfo`).

A file says what it is instead of being guessed from its fields: its :class:`FileInfo` (kind,
plan hash of a generated file, class names, recipe names) is stored inside the .beton, in the
integrity trailer that FFCV's reader never looks at (``integrity.py``), so it travels and
commits with the file (one rename) and ``merge``/``pack`` carry it. Files written by FFCV itself
(or by an older synthclone) have no trailer: ``BetonReader.info`` is then ``None``.
"""
from __future__ import annotations

import dataclasses
import functools

from loaders.errors import LoadersError

__all__ = ["PARTIAL_SUFFIX", "JOURNAL_SUFFIX", "LOCK_SUFFIX", "KIND_REAL", "KIND_GENERATED",
           "KINDS", "REAL_FIELDS", "GENERATED_FIELDS", "ClassEntry", "FileInfo", "real_fields",
           "generated_fields", "generated_info", "imagenet_classes", "prompt_text"]

PARTIAL_SUFFIX = ".partial"
"""``<out>.partial``: the file being written (header version 0 until it is finished)."""
JOURNAL_SUFFIX = ".journal"
"""``<out>.journal``: the commit log that makes the partial resumable."""
LOCK_SUFFIX = ".lock"
"""``<out>.lock``: held (``flock``) by the one process writing ``<out>``; holds its pid."""

KIND_REAL = "real"
"""A file of real images (``synthclone pack``)."""
KIND_GENERATED = "generated"
"""A file of generated images (``synthclone generate``); carries its plan's hash."""
KINDS = (KIND_REAL, KIND_GENERATED)

REAL_FIELDS = ("image", "label", "sample_id")
"""Fields of a packed real file, in file order (``sample_id``: index in the sorted file list)."""
GENERATED_FIELDS = ("image", "label", "sample_id", "recipe", "prompt")
"""Fields of a generated file, in file order (``sample_id``: plan row; ``recipe``: index into
:attr:`FileInfo.recipes`; ``prompt``: UTF-8 bytes)."""


@dataclasses.dataclass(frozen=True)
class ClassEntry:
    """One class of a file's label space."""

    name: str
    """Readable class name (an ImageNet lemma, a custom class name, a folder name)."""
    wnid: str | None = None
    """WordNet id when the class has one."""


@dataclasses.dataclass
class FileInfo:
    """What a .beton is, stored with it (see module doc)."""

    kind: str
    """``"real"`` or ``"generated"``."""
    plan_hash: str | None = None
    """SHA-256 of the plan a generated file was made from (required for generated files)."""
    classes: dict = dataclasses.field(default_factory=dict)
    """label (int) -> :class:`ClassEntry` for every label in the file."""
    recipes: list = dataclasses.field(default_factory=list)
    """Recipe names of a generated file; its ``recipe`` field indexes this list."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise LoadersError(f"file kind {self.kind!r}: use one of {list(KINDS)}")
        if self.kind == KIND_GENERATED and not self.plan_hash:
            raise LoadersError("a generated file needs the hash of its plan (plan_hash)")
        self.classes = {int(k): v if isinstance(v, ClassEntry) else ClassEntry(**v)
                        for k, v in self.classes.items()}
        self.recipes = [str(r) for r in self.recipes]

    def class_name(self, label: int) -> str:
        entry = self.classes.get(int(label))
        return entry.name if entry else ""

    def to_json(self) -> dict:
        return {"kind": self.kind, "plan_hash": self.plan_hash, "recipes": list(self.recipes),
                "classes": {str(k): dataclasses.asdict(v) for k, v in sorted(self.classes.items())}}

    @classmethod
    def from_json(cls, d: dict | None) -> "FileInfo | None":
        if d is None:
            return None
        return cls(kind=d["kind"], plan_hash=d.get("plan_hash"), classes=d.get("classes", {}),
                   recipes=d.get("recipes", []))


def real_fields(store_size: int | None = 256, write_mode: str = "jpg",
                jpeg_quality: int = 90) -> dict:
    """FFCV field objects of a packed file (:data:`REAL_FIELDS`)."""
    from ffcv.fields import IntField, RGBImageField

    return {"image": RGBImageField(write_mode=write_mode, max_resolution=store_size,
                                   jpeg_quality=jpeg_quality),
            "label": IntField(), "sample_id": IntField()}


def generated_fields(store_size: int | None = None, jpeg_quality: int = 90) -> dict:
    """FFCV field objects of a generated file (:data:`GENERATED_FIELDS`)."""
    from ffcv.fields import BytesField, IntField

    return {**real_fields(store_size, "jpg", jpeg_quality), "recipe": IntField(),
            "prompt": BytesField()}


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> dict:
    """label -> :class:`ClassEntry` of ImageNet-1K (timm order); the one place ``loaders``
    asks ``engine.catalog`` for names. Empty when the catalog is unavailable."""
    try:
        from engine.catalog import class_names, imagenet_wnids
        wnids, names = imagenet_wnids(), class_names()
    except (ImportError, LookupError, OSError):
        return {}
    return {i: ClassEntry(names[i], w) for i, w in enumerate(wnids)}


def generated_info(plan_hash: str, recipes, classes, names: dict | None = None) -> FileInfo:
    """The :class:`FileInfo` of a generated file.

    classes: ``(label, wnid or None)`` pairs of the plan's rows (all of them, so that every
        shard of a plan stores the same description); names: ``{label: name}`` where the plan
        knows them (custom classes); otherwise ImageNet-1K's name of the wnid, else the wnid or
        the label.
    """
    names = {int(k): v for k, v in (names or {}).items()}
    by_wnid = {e.wnid: e.name for e in imagenet_classes().values()}
    entries = {}
    for label, wnid in sorted(set(classes), key=lambda c: (int(c[0]), c[1] or "")):
        name = names.get(int(label)) or by_wnid.get(wnid) or wnid or str(label)
        entries.setdefault(int(label), ClassEntry(name, wnid))
    return FileInfo(KIND_GENERATED, plan_hash, entries, list(recipes))


def prompt_text(value) -> str:
    """A stored ``prompt`` (uint8 array or bytes) as text."""
    return bytes(value).decode("utf-8", errors="replace")
