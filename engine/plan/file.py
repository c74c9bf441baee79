"""The plan file: a :class:`Plan` (header + rows), its content hash, shards, and reading and
writing plan files.

File format (JSON Lines, UTF-8): line 1 ``{"synthclone_plan": 1, "header": {...}}``, then one
row per line, keys sorted.  The header's ``hash`` (:func:`content_hash`) is the SHA-256 of the
row lines: the plan's identity, which run folders record.  A shard's file (``Plan.shard``) keeps
the full plan's ``hash`` and adds ``shard: [i, n]`` and ``shard_hash``, the hash of its own rows.
:func:`read_plan` checks the format number, the hash, and every row's values.

This module is the one home of the file contracts: :func:`content_hash`, :func:`check_shard`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from engine import __version__
from engine.errors import ConfigError, UserError
from engine.paths import atomic_write
from engine.plan.rows import PlanRow, check_row

PLAN_FORMAT = 1
"""Version of the plan file layout (line 1's ``synthclone_plan``)."""


class PlanFileError(UserError, ValueError):
    """A plan file that cannot be used: not a plan, another format, modified, or a bad row."""


def content_hash(rows) -> str:
    """The plan hash: SHA-256 (hex) of the rows' JSON lines joined by newlines."""
    return hashlib.sha256("\n".join(r.to_json() for r in rows).encode()).hexdigest()


def check_shard(i: int, n: int) -> tuple[int, int]:
    """``(i, n)`` if it names shard i of n (``0 <= i < n``); else :class:`ConfigError`."""
    if isinstance(i, bool) or isinstance(n, bool) or not (isinstance(i, int)
                                                         and isinstance(n, int)):
        raise ConfigError(f"shard {i!r}/{n!r}: expected whole numbers I/N")
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"shard {i}/{n}: need 0 <= i < n (e.g. --shard 0/4 .. 3/4)")
    return i, n


class Plan:
    """Rows and a header; see the module docstring."""

    def __init__(self, header: dict, rows: list[PlanRow]):
        self.header = header
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @property
    def hash(self) -> str:
        return self.header["hash"]

    @property
    def recipes(self) -> list[str]:
        return self.header["recipes"]

    def shard(self, i: int, n: int) -> "Plan":
        """Shard i of n: disjoint, together covering the plan, balanced within every class
        and in total (sizes differ by at most one row).

        Rows keep their global sample_id (so shards merge back by id).  Row k of a class goes to
        shard ``(start + k) % n``, where ``start`` counts the rows of the classes before it: a
        round-robin that continues across classes, so remainders spread over the shards.
        """
        check_shard(i, n)
        start, total = {}, 0
        for label, count in self.counts("label").items():
            start[label], total = total, total + count
        seen: dict[int, int] = {}
        rows = []
        for r in self.rows:
            k = seen.get(r.label, 0)
            seen[r.label] = k + 1
            if (start[r.label] + k) % n == i:
                rows.append(r)
        header = dict(self.header, shard=[i, n], num_rows=len(rows),
                      shard_hash=content_hash(rows))
        return Plan(header, rows)

    def counts(self, key: str) -> dict:
        out: dict = {}
        for r in self.rows:
            k = getattr(r, key)
            out[k] = out.get(k, 0) + 1
        return out


def plan_from_rows(rows, **header) -> Plan:
    """A plan of hand-made rows (tests, benchmarks): ``num_rows``, ``hash`` and ``recipes``
    filled in; other header keys as given (``config``, ``version``, ...)."""
    rows = list(rows)
    header = {"config": {}, "version": __version__,
              "recipes": sorted({r.recipe for r in rows}), **header,
              "num_rows": len(rows), "hash": content_hash(rows)}
    return Plan(header, rows)


# ------------------------------------------------------------------------------ file I/O
def write_plan(plan: Plan, path: str, overwrite: bool = False) -> None:
    """Write atomically (temporary file, then rename); refuse to replace unless ``overwrite``."""
    head = json.dumps({"synthclone_plan": PLAN_FORMAT, "header": plan.header}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8", newline="\n") as f:
        f.write(head + "\n")
        for r in plan.rows:
            f.write(r.to_json() + "\n")


def is_plan_file(path: str) -> bool:
    """True if ``path`` starts like a plan file (JSON text: ``{`` first), so commands that take
    several kinds of file (``synthclone inspect``) can tell a plan from a .beton, whose first
    bytes are a little-endian version number. :func:`read_plan` checks the rest."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(64).lstrip().startswith(b"{")


def read_plan(path: str, check_hash: bool = True) -> Plan:
    """Read and check a plan file (format number, hash, every row's values).

    ``check_hash=False`` skips only the hash (a plan you edited on purpose); malformed files and
    bad values are always refused with :class:`PlanFileError` naming the file and line."""
    if os.path.isdir(path):
        raise PlanFileError(f"{path} is a folder; give a plan file (synthclone plan ... --out "
                            "plan.jsonl)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"plan file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    except UnicodeDecodeError:
        raise PlanFileError(f"{path}: not a synthclone plan (not UTF-8 text)") from None
    header = _read_header(path, first)
    rows = [_read_row(path, lineno, ln) for lineno, ln in enumerate(lines, 2)]
    if len(rows) != header.get("num_rows"):
        raise PlanFileError(f"{path}: header says {header.get('num_rows')} rows, file has "
                            f"{len(rows)} (truncated?)")
    ids = [r.sample_id for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise PlanFileError(f"{path}: sample_id {dup} appears more than once")
    if "shard" in header:
        try:
            check_shard(*header["shard"])
        except (TypeError, ConfigError) as exc:
            raise PlanFileError(f"{path}: bad 'shard' in the header ({exc})") from None
    if check_hash:
        key = "shard_hash" if "shard" in header else "hash"
        if not isinstance(header.get(key), str):
            raise PlanFileError(f"{path}: the header has no '{key}' to check the rows against "
                                "(write the plan with this version of synthclone)")
        if content_hash(rows) != header[key]:
            raise PlanFileError(f"{path}: content hash mismatch: the rows were modified or the "
                                "file is corrupt; make the plan again with synthclone plan")
    return Plan(header, rows)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _read_header(path: str, line: str) -> dict:
    try:
        head = json.loads(line, parse_constant=_no_constant)
    except ValueError as exc:
        raise PlanFileError(f"{path}: not a synthclone plan (line 1 is not a JSON header: "
                            f"{exc})") from None
    if not isinstance(head, dict) or "synthclone_plan" not in head:
        raise PlanFileError(f"{path}: not a synthclone plan file (line 1 must be "
                            '{"synthclone_plan": 1, "header": {...}})')
    fmt = head["synthclone_plan"]
    if fmt != PLAN_FORMAT:
        newer = isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > PLAN_FORMAT
        raise PlanFileError(
            f"{path}: plan format {fmt!r} " + (f"is newer than this synthclone "
                                               f"{__version__} reads ({PLAN_FORMAT}); upgrade "
                                               "synthclone" if newer else
                                               f"is not one this synthclone reads "
                                               f"({PLAN_FORMAT}); make the plan again"))
    header = head.get("header")
    if not isinstance(header, dict):
        raise PlanFileError(f"{path}: line 1 has no \"header\" object (not a complete plan "
                            "file)")
    if not isinstance(header.get("version"), str):
        raise PlanFileError(f"{path}: the header does not say which synthclone version wrote "
                            "it (\"version\"); make the plan again")
    if isinstance(header.get("num_rows"), bool) or not isinstance(header.get("num_rows"), int):
        raise PlanFileError(f"{path}: the header has no row count (\"num_rows\")")
    if not isinstance(header.get("recipes", []), list):
        raise PlanFileError(f"{path}: the header's \"recipes\" must be a list")
    return header


_ROW_FIELDS = {f.name for f in dataclasses.fields(PlanRow)}
_ROW_REQUIRED = {f.name for f in dataclasses.fields(PlanRow)
                 if f.default is dataclasses.MISSING}


def _read_row(path: str, lineno: int, line: str) -> PlanRow:
    where = f"{path}:{lineno}"
    try:
        d = json.loads(line, parse_constant=_no_constant)
    except ValueError as exc:
        raise PlanFileError(f"{where}: bad plan row (not JSON: {exc})") from None
    if not isinstance(d, dict):
        raise PlanFileError(f"{where}: bad plan row (expected a JSON object, got "
                            f"{type(d).__name__})")
    missing = sorted(_ROW_REQUIRED - set(d))
    if missing:
        raise PlanFileError(f"{where}: bad plan row (missing {', '.join(missing)})")
    unknown = sorted(set(d) - _ROW_FIELDS)
    if unknown:
        raise PlanFileError(f"{where}: bad plan row (unknown key(s) {', '.join(unknown)})")
    row = PlanRow(**d)
    try:
        check_row(row)
    except ValueError as exc:
        raise PlanFileError(f"{where}: bad plan row ({exc})") from None
    return row
