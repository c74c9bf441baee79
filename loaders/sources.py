"""A domain's rows: one or more .beton files read as one concatenated list, optionally a subset.

    real = BetonSource(["real.beton"])                          # every row
    syn = BetonSource(["syn_a.beton", "syn_b.beton"], subset=idx)  # rows idx of the concatenation

Opening checks every file with :class:`loaders.beton.BetonReader` (a missing, empty, truncated
or corrupt file raises ``BetonFormatError`` here, before any worker starts) and reads what the
samplers need from the metadata alone (no image is decoded): labels, ``sample_id``s, the .beton
page of each image. The fields to decode are found from the file's field descriptors, so packed
real files (``image,label,sample_id``) and generated files (``+recipe,prompt``) open the same
way without the caller naming fields.

What a file *is* comes from the description stored in it (``BetonReader.info``, a
:class:`loaders.beton.schema.FileInfo` written by ``pack``, ``generate`` and ``merge``): its
kind (real or generated) and the class behind each label (name and wnid). Only a file without
that description (written by FFCV's own writer or an older synthclone) falls back to a guess:
generated when it has the fields only generated files carry (``recipe``, ``prompt``), real
otherwise; its classes are then unknown (``classes`` is None) and label spaces are compared by
label numbers alone. All files of one source must be of one kind.

Rows are addressed three ways: a *position* ``0..len(source)-1`` (after the subset), a *row*
``0..total-1`` of the concatenation (``rows[pos]``), and ``(file index, index in file)``.
"""
from __future__ import annotations

import os

import numpy as np
from ffcv.fields import IntField, RGBImageField

from loaders.beton.format import IMAGE_MODE_RAW, BetonFormatError
from loaders.beton.reader import BetonReader
from loaders.beton.schema import KIND_GENERATED, KIND_REAL, ClassEntry
from loaders.errors import LoaderConfigError

__all__ = ["BetonSource", "SYNTHETIC_MARKER_FIELDS", "as_source", "file_kind", "class_key",
           "same_class"]

SYNTHETIC_MARKER_FIELDS = ("recipe", "prompt")
"""Fields only generated files carry (DESIGN.md ".beton fields"): the kind of a file that does
not record one."""
LABEL_FIELD = "label"
SAMPLE_ID_FIELD = "sample_id"


def _open(path: str) -> BetonReader:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BetonFormatError(f"{path}: no such .beton file")
    if os.path.isdir(path):
        raise BetonFormatError(f"{path}: is a folder, not a .beton file (the torchvision "
                               "backend reads image folders: loaders.torchvision.folder_loader)")
    return BetonReader(path)


def image_field_of(reader: BetonReader) -> str:
    """The field holding the images: ``image`` when present, else the only RGBImageField."""
    names = [n for n, f in reader.fields.items() if isinstance(f, RGBImageField)]
    if "image" in names:
        return "image"
    if len(names) == 1:
        return names[0]
    raise BetonFormatError(f"{reader.path}: " + (
        f"several image fields {names} and none named 'image'" if names
        else f"no image field (fields: {', '.join(reader.fields)})"))


def file_kind(reader: BetonReader) -> tuple[str, bool]:
    """``(kind, recorded)``: the kind the file records in its :class:`FileInfo`
    (``recorded=True``), else the guess from its fields (module doc)."""
    if reader.info is not None:
        return reader.info.kind, True
    guess = any(m in reader.fields for m in SYNTHETIC_MARKER_FIELDS)
    return (KIND_GENERATED if guess else KIND_REAL), False


def class_key(entry: ClassEntry) -> str:
    """What identifies a class across files: its wnid, else its name (case-insensitive)."""
    return entry.wnid or entry.name.strip().lower()


def same_class(a: ClassEntry, b: ClassEntry) -> bool:
    """Two entries name one class: equal wnids when both have one, else equal names."""
    if a.wnid and b.wnid:
        return a.wnid == b.wnid
    return a.name.strip().lower() == b.name.strip().lower()


def _kind_of(readers) -> str:
    kinds = {r.path: file_kind(r)[0] for r in readers}
    if len(set(kinds.values())) > 1:
        real = next(p for p, k in kinds.items() if k == KIND_REAL)
        gen = next(p for p, k in kinds.items() if k == KIND_GENERATED)
        raise LoaderConfigError(f"{gen} holds generated images but {real} real ones: one source "
                                "takes files of one kind; give them as the real and synthetic "
                                "sources of a DualDomainLoader")
    return next(iter(kinds.values()))


def _class_map(readers) -> dict | None:
    """label -> :class:`ClassEntry` as every file records it, or None when a file records no
    classes; files of one source that name a label differently are refused."""
    out: dict = {}
    where: dict = {}
    for r in readers:
        classes = r.info.classes if r.info is not None else None
        if not classes:
            return None
        for label, entry in classes.items():
            label = int(label)
            if label in out and not same_class(out[label], entry):
                raise LoaderConfigError(
                    f"label {label} is {out[label].name!r} in {where[label]} but {entry.name!r} "
                    f"in {r.path}: one source takes files of one label space")
            out.setdefault(label, entry)
            where.setdefault(label, r.path)
    return out


def _column(reader: BetonReader, name: str) -> np.ndarray:
    k = list(reader.fields).index(name)
    return np.asarray(reader.metadata[f"f{k}"])


class BetonSource:
    """Rows of one domain (see module doc). Picklable: workers reopen the files by path."""

    def __init__(self, paths, subset=None, name: str | None = None):
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise LoaderConfigError("a source needs at least one .beton file")
        self.paths = [os.fspath(p) for p in paths]
        self.name = name or ", ".join(self.paths)
        readers = []
        try:
            for p in self.paths:
                readers.append(_open(p))
            self._read(readers)
        finally:
            for r in readers:
                r.close()
        self.rows = self._check_subset(subset)

    def _read(self, readers) -> None:
        self.image_field = image_field_of(readers[0])
        for r in readers:
            if len(r) == 0:
                raise BetonFormatError(f"{r.path}: holds no samples")
            if image_field_of(r) != self.image_field:
                raise BetonFormatError(f"{r.path}: image field {image_field_of(r)!r} differs "
                                       f"from {readers[0].path}'s {self.image_field!r}")
            if not isinstance(r.fields.get(LABEL_FIELD), IntField):
                raise BetonFormatError(f"{r.path}: no integer 'label' field (fields: "
                                       f"{', '.join(r.fields)}); loaders need labelled files")
        self.sizes = np.array([len(r) for r in readers], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.total = int(self.offsets[-1])
        self.labels_all = np.concatenate([_column(r, LABEL_FIELD) for r in readers]).astype(
            np.int64)
        self.has_sample_id = all(isinstance(r.fields.get(SAMPLE_ID_FIELD), IntField)
                                 for r in readers)
        self.kind = _kind_of(readers)
        """``"real"`` or ``"generated"`` (recorded in the files, else guessed; module doc)."""
        self.synthetic = self.kind == KIND_GENERATED
        self.classes = _class_map(readers)
        """label -> :class:`ClassEntry` recorded by every file, or None (module doc)."""
        self.fields = [list(r.fields) for r in readers]
        self.pages_all = self._pages(readers)
        self.image_heights = np.concatenate([_column(r, self.image_field)["height"]
                                             for r in readers]).astype(np.int64)
        self.image_widths = np.concatenate([_column(r, self.image_field)["width"]
                                            for r in readers]).astype(np.int64)
        self.image_raw = np.concatenate([_column(r, self.image_field)["mode"] == IMAGE_MODE_RAW
                                         for r in readers])
        self.sample_ids_all = (np.concatenate([_column(r, SAMPLE_ID_FIELD) for r in readers])
                               .astype(np.int64) if self.has_sample_id else None)

    def _pages(self, readers) -> np.ndarray:
        """Global page number of each row's image data (for quasi-random order)."""
        out, base = [], 0
        for r in readers:
            ptr = _column(r, self.image_field)["data_ptr"].astype(np.int64)
            pages = ptr // r.page_size
            out.append(pages + base)
            base += int(pages.max()) + 1 if len(pages) else 0
        return np.concatenate(out)

    def _check_subset(self, subset) -> np.ndarray:
        if subset is None:
            return np.arange(self.total, dtype=np.int64)
        rows = np.asarray(subset, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            raise LoaderConfigError(f"{self.name}: the subset is empty")
        if rows.min() < 0 or rows.max() >= self.total:
            raise LoaderConfigError(f"{self.name}: subset indices must lie in [0, {self.total})"
                                    f" (got {rows.min()}..{rows.max()}); was the index file "
                                    "made for these files?")
        if np.unique(rows).size != rows.size:
            raise LoaderConfigError(f"{self.name}: the subset repeats rows")
        return rows

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        """Label of each position (after the subset)."""
        return self.labels_all[self.rows]

    @property
    def pages(self) -> np.ndarray:
        return self.pages_all[self.rows]

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Concatenation rows -> (file index, index within that file)."""
        f = np.searchsorted(self.offsets, rows, side="right") - 1
        return f, rows - self.offsets[f]

    def with_subset(self, subset) -> "BetonSource":
        """A copy restricted to ``subset`` (rows of the concatenation)."""
        clone = object.__new__(BetonSource)
        clone.__dict__.update(self.__dict__)
        clone.rows = clone._check_subset(subset)
        return clone

    def __repr__(self) -> str:
        kind = "synthetic" if self.synthetic else "real"
        return f"BetonSource({self.name!r}, {len(self)} of {self.total} rows, {kind})"


def as_source(x, subset=None) -> BetonSource:
    """A :class:`BetonSource` from a source, a path or a list of paths; ``subset``: rows of the
    concatenated files, or the path of a subset index file (``loaders.subsets``), checked
    against the files it was made for."""
    source = x if isinstance(x, BetonSource) else BetonSource(x)
    if isinstance(subset, (str, os.PathLike)):
        from loaders.subsets import load_subset

        subset = load_subset(os.fspath(subset), source)[0]
    return source if subset is None else source.with_subset(subset)
