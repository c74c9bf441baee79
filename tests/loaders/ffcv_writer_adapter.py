"""FFCV's ``DatasetWriter`` API over our ``BetonWriter``, and a pytest plugin that swaps it in.

Run FFCV's own test suite with our writer (nothing is fetched at test time; the suite is not
part of ours)::

    pytest -p tests.loaders.ffcv_writer_adapter PATH/TO/ffcv-1.0.2/tests

Same constructor as ``ffcv.writer.DatasetWriter`` (``fname, fields, page_size, num_workers``),
``from_indexed_dataset(dataset, indices, chunksize, shuffle_indices)`` and
``from_webdataset(shards, pipeline)``. Samples are appended in FFCV's destination order, so
sample ``k`` holds ``dataset[indices[k]]`` exactly as in FFCV's files.
"""
from __future__ import annotations

import os
from multiprocessing import cpu_count

import numpy as np

from loaders.beton import BetonWriter
from loaders.beton.format import DEFAULT_PAGE_SIZE


class BetonDatasetWriter:
    """``ffcv.writer.DatasetWriter`` look-alike that writes with :class:`BetonWriter`."""

    def __init__(self, fname: str, fields, page_size: int = DEFAULT_PAGE_SIZE,
                 num_workers: int = -1):
        self.fname, self.fields, self.page_size = os.fspath(fname), dict(fields), page_size
        self.num_workers = num_workers if num_workers >= 1 else cpu_count()

    def _write(self, num_samples: int, samples) -> None:
        names = list(self.fields)
        # FFCV's callers write into existing (often temporary) files: replace them
        with BetonWriter(self.fname, num_samples, self.fields, num_workers=self.num_workers,
                         page_size=self.page_size, overwrite=True, durable=False) as w:
            for dest, sample in samples:
                w.append(dest, dict(zip(names, sample)))

    def from_indexed_dataset(self, dataset, indices=None, chunksize: int = 100,
                             shuffle_indices: bool = False) -> None:
        if indices is None:
            indices = np.arange(len(dataset))
        if shuffle_indices:
            np.random.shuffle(indices)  # FFCV shuffles the caller's array in place too
        indices = list(indices)
        self._write(len(indices), ((dest, dataset[src]) for dest, src in enumerate(indices)))

    def from_webdataset(self, shards, pipeline) -> None:
        from ffcv.writer import count_samples_in_shard, from_shard

        lengths = [count_samples_in_shard(s, pipeline) for s in shards]
        offsets = np.cumsum([0] + lengths)[:-1]

        def samples():
            for shard, offset in zip(shards, offsets):
                for i, sample in enumerate(from_shard(shard, pipeline)):
                    yield int(offset) + i, sample

        self._write(int(sum(lengths)), samples())


def pytest_configure(config):
    """Swap FFCV's writer for ours everywhere a test can import it from."""
    import ffcv
    import ffcv.writer

    ffcv.writer.DatasetWriter = BetonDatasetWriter
    ffcv.DatasetWriter = BetonDatasetWriter
