"""Join .beton files with identical fields into one, copying encoded bytes verbatim.

Sample ids (the ``sample_id`` field):
  - ``keep`` (the default for generated files): every stored id stays, so each image still
    points at its plan row; ids must be unique across the inputs, and the output is ordered by
    id, so merged shards equal the single run's file. Generated inputs must come from one plan
    (the plan hash each file stores).
  - ``renumber`` (the default otherwise): sample ``j`` of input ``k`` becomes sample
    ``offset_k + j`` (running totals in the given order) and its id that index.
The inputs' checksums are verified while copying and carried into the output; their
:class:`FileInfo` (kind, plan hash, class names, recipes) is carried too. The merge goes
through ``BetonWriter``: atomic, locked against a second writer, and resumable (rerun the same
merge after a crash; a different merge into the same partial is refused).
"""
from __future__ import annotations

import os

import numpy as np
from ffcv.fields import IntField

from loaders.beton import format as fmt
from loaders.beton.integrity import chain_crc
from loaders.beton.reader import BetonReader
from loaders.beton.schema import KIND_GENERATED, FileInfo
from loaders.beton.writer import BetonWriter
from loaders.errors import LoadersError

__all__ = ["merge_betons", "check_same_fields", "MergeError", "SAMPLE_ID_MODES"]

SAMPLE_ID_MODES = ("auto", "keep", "renumber")
"""``auto``: keep for generated files, renumber otherwise (see module doc)."""
_UNSET = object()


class MergeError(LoadersError, ValueError):
    """Inputs that cannot be merged (message names the files and what differs)."""


def check_same_fields(readers: list[BetonReader]) -> None:
    """Raise :class:`MergeError` naming the first field whose definition differs."""
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
                                 f"{type(r.fields[b]).__name__} with different arguments than "
                                 f"in {ref.path} ({type(ref.fields[a]).__name__})")


def merged_info(readers: list[BetonReader]) -> FileInfo | None:
    """The output's :class:`FileInfo`; refuses mixed kinds, plans, recipes or class names."""
    infos = [(r.path, r.info) for r in readers]
    known = [(p, i) for p, i in infos if i is not None]
    if not known:
        return None
    p0, first = known[0]
    for p, info in infos:
        if info is None and first.kind == KIND_GENERATED:
            raise MergeError(f"cannot merge {p}: it stores no plan hash (written by FFCV or an "
                             f"older synthclone), so it cannot be checked against {p0}'s plan")
        if info is None:
            continue
        if info.kind != first.kind:
            raise MergeError(f"cannot merge {info.kind} file {p} with {first.kind} file {p0}")
        if info.plan_hash != first.plan_hash:
            raise MergeError(f"cannot merge {p} (plan {str(info.plan_hash)[:16]}) with {p0} "
                             f"(plan {str(first.plan_hash)[:16]}): shards of different plans "
                             "would give duplicate or unrelated sample ids")
        if info.recipes != first.recipes:
            raise MergeError(f"cannot merge {p}: its recipe list {info.recipes} differs from "
                             f"{p0}'s {first.recipes}")
    classes: dict = {}
    for p, info in known:
        for label, entry in info.classes.items():
            if classes.setdefault(label, entry) != entry:
                raise MergeError(f"cannot merge {p}: label {label} is {entry.name!r} there but "
                                 f"{classes[label].name!r} in another input")
    return FileInfo(first.kind, first.plan_hash, classes, first.recipes)


def _id_column(r: BetonReader, field: str) -> np.ndarray:
    return np.asarray(r.metadata[f"f{list(r.fields).index(field)}"]).astype(np.int64)


def _order(readers, mode: str, id_field: str) -> list:
    """Output order: ``[(reader index, sample index)]``."""
    pairs = [(k, i) for k, r in enumerate(readers) for i in range(len(r))]
    if mode != "keep":
        return pairs
    ids = np.concatenate([_id_column(r, id_field) for r in readers])
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[counts > 1][0])
        where = sorted({readers[pairs[j][0]].path for j in np.flatnonzero(ids == dup)})
        raise MergeError(f"{int((counts > 1).sum())} {id_field} values occur more than once "
                         f"(e.g. {dup} in {', '.join(where)}): the same shard given twice, or "
                         "shards of different runs; pass --renumber-sample-ids to renumber "
                         "instead")
    return [pairs[j] for j in np.argsort(ids, kind="stable")]


def _job(paths: list[str], mode: str, id_field: str) -> dict:
    files = []
    for p in paths:
        st = os.stat(p)
        files.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    return {"merge": files, "sample_ids": mode, "id_field": id_field}


def _open_writer(out_path, total, fields, page, overwrite, info, job) -> BetonWriter:
    if overwrite or not BetonWriter.partial_exists(out_path):
        return BetonWriter(out_path, total, fields, num_workers=0, page_size=page,
                           overwrite=overwrite, max_inflight=64, info=info, job=job)
    w = BetonWriter.resume(out_path, num_workers=0, max_inflight=64)
    if w.job != job:
        w.abort()
        raise MergeError(f"{out_path}: an interrupted write with other inputs or settings left "
                         "a partial output; pass --overwrite to start over")
    return w


def merge_betons(paths: list[str], out_path: str, renumber_field=_UNSET,
                 overwrite: bool = False, page_size: int | None = None,
                 progress: bool = False, sample_ids: str = "auto",
                 id_field: str = "sample_id") -> int:
    """Merge ``paths`` into ``out_path``; returns the number of samples written.

    sample_ids: ``auto`` | ``keep`` | ``renumber`` (module doc); ``id_field`` names the field.
    renumber_field: older spelling: None = ``keep``, a field name = renumber that field.
    """
    if renumber_field is not _UNSET:
        sample_ids = "keep" if renumber_field is None else "renumber"
        id_field = renumber_field or id_field
    if sample_ids not in SAMPLE_ID_MODES:
        raise MergeError(f"sample_ids={sample_ids!r}: use one of {list(SAMPLE_ID_MODES)}")
    paths = [os.fspath(p) for p in paths]
    out_path = os.fspath(out_path)
    if not paths:
        raise MergeError("merge needs at least one input file")
    if os.path.abspath(out_path) in {os.path.abspath(p) for p in paths}:
        raise MergeError(f"output {out_path} is also an input; choose another --out")
    readers = []
    try:
        for p in paths:
            readers.append(BetonReader(p))
        return _merge(readers, paths, out_path, overwrite, page_size, progress, sample_ids,
                      id_field)
    finally:
        for r in readers:
            r.close()


def _merge(readers, paths, out_path, overwrite, page_size, progress, mode, id_field) -> int:
    check_same_fields(readers)
    fields = readers[0].fields
    custom = [n for n, f in fields.items() if fmt.is_custom(f)]
    if custom:
        raise MergeError(f"cannot merge custom fields {custom}: merge copies only FFCV's "
                         "built-in field types")
    info = merged_info(readers)
    has_id = isinstance(fields.get(id_field), IntField)
    if mode == "auto":
        mode = "keep" if info is not None and info.kind == KIND_GENERATED else "renumber"
    if mode == "keep" and not has_id:
        raise MergeError(f"cannot keep sample ids: the inputs have no IntField {id_field!r}")
    order = _order(readers, mode, id_field)
    total = len(order)
    page = page_size or max(max(r.page_size for r in readers), fmt.MIN_PAGE_SIZE)
    layout = fmt.RecordLayout(fields)
    slots = [(k, layout.ptr_offsets[k], fmt.pointer_slot(f)) for k, f in
             enumerate(fields.values())]
    names = layout.mdtype.names
    renum = f"f{list(fields).index(id_field)}" if mode == "renumber" and has_id else None
    job = _job(paths, mode, id_field)
    w = _open_writer(out_path, total, fields, page, overwrite, info, job)
    bar = _progress(total, progress, f"merge -> {os.path.basename(out_path)}", len(w.done_ids))
    with w:
        done = w.done_ids
        for new_id, (k, i) in enumerate(order):
            if new_id in done:
                continue
            r = readers[k]
            r.check_sample(i)  # a corrupt input stops the merge instead of being laundered
            src = r.metadata[i]
            rec = np.zeros(1, dtype=layout.mdtype)  # field by field: padding stays zero
            for name in names:
                rec[name] = src[name]
            if renum is not None:
                rec[renum] = new_id
            blobs = []
            for f, off, slot in slots:
                if slot is None:
                    continue
                ptr = int(src[f"f{f}"]) if slot == "" else int(src[f"f{f}"][slot])
                blobs.append((off, r._blob(i, ptr)))
            w._append_encoded(new_id, rec.view(np.uint8).reshape(-1), blobs,
                              chain_crc(b for _, b in blobs))
            bar.update(1)
    bar.close()
    return total


def _progress(total: int, enabled: bool, desc: str, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="img")
