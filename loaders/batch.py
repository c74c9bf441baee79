"""The batch contract of every loader backend (DESIGN.md "Batch").

A batch unpacks as ``images, labels, num_real = batch``:

* ``images``: ``(B, 3, H, W)`` float, normalised with the ImageNet mean/std (optionally
  channels_last), on the requested device; or ``uint8`` when a loader is asked for raw pixels
  (for augmentation on the GPU).
* ``labels``: ``(B,)`` int64 labels in the label space of the files (ImageNet-1K index unless
  a compact label space was asked for everywhere).
* ``num_real``: an int; rows ``[0, num_real)`` are real, the rest synthetic. A single-domain
  loader sets it to ``B`` for real files and ``0`` for synthetic ones.
  ``engine.ops.dual_bn.dual_bn_split(model, num_real)`` takes the same split.

Extras for those who ask (attributes, not tuple items, so three-way unpacking always works):
``batch.sample_id`` — ``(B,)`` int64, each row's ``sample_id`` field (its plan row for a
generated file, its position in the packed list for a real one) or ``None``; and
``batch.source`` — ``(B,)`` int64, which source file each row came from, or ``None``.
"""
from __future__ import annotations


class Batch(tuple):
    """``(images, labels, num_real)`` with ``sample_id`` and ``source`` attributes."""

    def __new__(cls, images, labels, num_real: int, sample_id=None, source=None):
        self = super().__new__(cls, (images, labels, int(num_real)))
        self.sample_id = sample_id
        self.source = source
        return self

    def __getnewargs__(self):  # pickling (DataLoader workers) keeps the extras
        return (*self, self.sample_id, self.source)

    @property
    def images(self):
        return self[0]

    @property
    def labels(self):
        return self[1]

    @property
    def num_real(self) -> int:
        return self[2]

    @property
    def batch_size(self) -> int:
        return len(self[1])

    def clone(self) -> "Batch":
        """A copy that shares no memory with the loader (loaders reuse their output buffers:
        a batch is valid until the next batch is requested)."""
        def copy(t):
            return t.clone() if hasattr(t, "clone") else t
        return Batch(copy(self[0]), copy(self[1]), self[2], copy(self.sample_id),
                     copy(self.source))

    def __repr__(self) -> str:
        shape = tuple(getattr(self[0], "shape", ()))
        return f"Batch(images={shape}, batch_size={self.batch_size}, num_real={self[2]})"
