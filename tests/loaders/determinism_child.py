"""Child process of the byte-reproducibility tests: write one file, in a fresh interpreter.

usage: python -m tests.loaders.determinism_child OUTDIR WORKERS SOURCE
  writes OUTDIR/writer.beton (every field type and write mode) and OUTDIR/pack.beton (SOURCE)
"""
import os
import sys

from loaders.beton import BetonWriter, ClassEntry, FileInfo
from loaders.beton.pack import PackConfig, pack
from tests.loaders.beton_data import PAGE, all_fields, sample_values

N = 24


def deterministic_fields() -> dict:
    """Every field type and write mode except ``proportion`` (random in FFCV too)."""
    return {k: v for k, v in all_fields().items() if k != "prop"}


def main(outdir: str, workers: int, source: str) -> None:
    pack(PackConfig(source, os.path.join(outdir, "pack.beton"), max_resolution=32,
                    num_workers=workers))
    out = os.path.join(outdir, "writer.beton")
    fields = deterministic_fields()
    info = FileInfo("generated", "ab" * 32, {i: ClassEntry(f"class {i}", None) for i in range(3)},
                    ["c", "c_hc"])
    with BetonWriter(out, N, fields, num_workers=workers, page_size=PAGE, info=info) as w:
        for i in range(N):
            w.append(i, {k: v for k, v in sample_values(i).items() if k in fields})
            if i % 7 == 6:
                w.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
