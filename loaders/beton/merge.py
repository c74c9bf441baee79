"""Concatenate .beton files with identical fields into one, copying encoded bytes verbatim.

Sample ``j`` of input ``k`` becomes sample ``offset_k + j`` of the output (offsets are the
running totals of the inputs' lengths, in the given order). The merge goes through
``BetonWriter`` so it is itself atomic and resumable-safe (the output appears only at the end).
"""
from __future__ import annotations

import os

import numpy as np
from ffcv.fields import IntField

from loaders.beton import format as fmt
from loaders.beton.reader import BetonReader
from loaders.beton.writer import BetonWriter
from loaders.errors import LoadersError

__all__ = ["merge_betons", "check_same_fields", "MergeError"]


class MergeError(LoadersError, ValueError):
    """Inputs that cannot be merged (different fields, the output among the inputs)."""


def check_same_fields(readers: list[BetonReader]) -> None:
    """Raise :class:`MergeError` naming the first field whose definition differs between inputs."""
    ref = readers[0]
    for r in readers[1:]:
        names_a, names_b = list(ref.fields), list(r.fields)
        for k in range(max(len(names_a), len(names_b))):
            a = names_a[k] if k < len(names_a) else None
            b = names_b[k] if k < len(names_b) else None
            if a != b:
                raise MergeError(f"cannot merge {r.path} into {ref.path}: field #{k} is {b!r} "
                                 f"there but {a!r} in the first file (fields: {names_b} vs "
                                 f"{names_a})")
            da, db = ref.descriptors[k], r.descriptors[k]
            if int(da["type_id"]) != int(db["type_id"]) or \
                    da["arguments"].tobytes() != db["arguments"].tobytes():
                raise MergeError(f"cannot merge {r.path}: field {a!r} is "
                                 f"{type(r.fields[b]).__name__} with different arguments than in "
                                 f"{ref.path} ({type(ref.fields[a]).__name__})")


def merge_betons(paths: list[str], out_path: str, renumber_field: str | None = "sample_id",
                 overwrite: bool = False, page_size: int | None = None,
                 progress: bool = False) -> int:
    """Merge ``paths`` into ``out_path``; returns the number of samples written.

    renumber_field: an ``IntField`` whose value is rewritten to the new dense index
        (``0..total-1``), so merged shards keep unique ids; ``None`` keeps stored values.
    """
    if not paths:
        raise MergeError("merge_betons needs at least one input file")
    if os.path.abspath(out_path) in {os.path.abspath(p) for p in paths}:
        raise MergeError(f"output {out_path} is also an input; choose another --out")
    readers = [BetonReader(p) for p in paths]
    try:
        check_same_fields(readers)
        fields = readers[0].fields
        total = sum(len(r) for r in readers)
        page = page_size or max(max(r.page_size for r in readers), fmt.MIN_PAGE_SIZE)
        names = list(fields)
        renum = None
        if renumber_field is not None and isinstance(fields.get(renumber_field), IntField):
            renum = f"f{names.index(renumber_field)}"
        slots = [(k, fmt.pointer_slot(f)) for k, f in enumerate(fields.values())]
        bar = _progress(total, progress, f"merge -> {os.path.basename(out_path)}")
        with BetonWriter(out_path, total, fields, num_workers=0, page_size=page,
                         overwrite=overwrite, max_inflight=64) as w:
            new_id = 0
            for r in readers:
                for i in range(len(r)):
                    rec = np.array(r.metadata[i:i + 1])  # a copy we may patch
                    blobs = []
                    for k, slot in slots:
                        if slot is None:
                            continue
                        ptr = int(rec[f"f{k}"][0]) if slot == "" else int(rec[f"f{k}"][slot][0])
                        blobs.append((k, r._blob(i, ptr)))
                    if renum is not None:
                        rec[renum][0] = new_id
                    w._append_encoded(new_id, rec, blobs)
                    new_id += 1
                    bar.update(1)
        bar.close()
        return total
    finally:
        for r in readers:
            r.close()


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="img")
