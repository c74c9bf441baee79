"""Images in, tensors out: eval transforms, the inputs a model pass reads, and the fingerprints
that name a set in ``results.json`` and in the feature cache.

A set is a list of *items*: image file paths, or sample indices of one .beton.

* Image files: :class:`ImageDataset` (PIL + the torchvision transforms of a
  :class:`TransformSpec`) in a torch DataLoader.
* .beton samples: :class:`engine.eval.beton_input.BetonImages`, batches from the loaders'
  eval pipeline (``loaders.mixing.make_eval_loader``: FFCV, DALI or torchvision decoding, a
  center square of ``crop / resize`` of the short side resized to ``crop``, every sample once
  in file order) — the same "resize 256, center crop 224" meaning as the transform of files, up
  to the decoder's resampling and JPEG decoder.
* :func:`image_batches` iterates either one as image tensors on the device.

:class:`ImageDataset` also reads .beton samples as PIL images for models that bring their own
preprocessing (CLIP).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FULL_HASH_LIMIT = 256 << 20
"""Files up to this size are hashed whole; larger ones (.beton files of millions of images) by
their size and three 8 MiB samples (start, middle, end), which catches any rewrite or resize."""
SAMPLE_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class TransformSpec:
    """Resize the short side to ``resize`` (``interpolation``), center-crop ``crop``, normalise
    with ImageNet mean/std; ``border`` pixels are cut off each edge first (ObjectNet's frame)."""

    resize: int = 256
    crop: int = 224
    interpolation: str = "bilinear"
    border: int = 0

    def key(self) -> str:
        return f"r{self.resize}-c{self.crop}-{self.interpolation}-b{self.border}"

    def build(self):
        from torchvision.transforms import v2

        mode = getattr(v2.InterpolationMode, self.interpolation.upper())
        steps = [v2.Resize(self.resize, interpolation=mode, antialias=True),
                 v2.CenterCrop(self.crop), v2.PILToTensor(),
                 v2.ToDtype(_float32(), scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        if self.border:
            steps.insert(0, CropBorder(self.border))
        return v2.Compose(steps)


def _float32():
    import torch

    return torch.float32


class CropBorder:
    """Cut ``n`` pixels off each edge of a PIL image (ObjectNet images carry a 1-px red frame;
    the common protocol cuts 2 px)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, im):
        w, h = im.size
        return im.crop((self.n, self.n, w - self.n, h - self.n)) if min(w, h) > 2 * self.n else im


class UInt8Transform:
    """Resize the short side to ``size`` and center-crop ``size``; uint8 CHW tensor (Inception
    features take uint8 and resize to 299 themselves; the crop only makes batches square)."""

    def __init__(self, size: int):
        from torchvision.transforms import v2

        self.t = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size),
                             v2.PILToTensor()])

    def __call__(self, im):
        return self.t(im)


def open_image(item, reader=None):
    """A PIL RGB image from a file path or a .beton sample index (with its reader)."""
    from PIL import Image

    if isinstance(item, str):
        with Image.open(item) as im:
            return im.convert("RGB")
    data, mode = enc = reader.encoded(int(item), "image")
    if mode == "raw":
        return Image.frombuffer("RGB", (enc.width, enc.height), data, "raw", "RGB", 0, 1).copy()
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


class ImageDataset:
    """``dataset[i] -> (transform(image_i), i)`` over file paths or .beton sample indices.

    The .beton is opened lazily in each process (a memory map does not cross a fork)."""

    def __init__(self, items, transform, beton: str | None = None):
        self.items, self.transform, self.beton = list(items), transform, beton
        self._reader, self._pid = None, None

    def __len__(self):
        return len(self.items)

    def _get_reader(self):
        if self.beton is None:
            return None
        if self._reader is None or self._pid != os.getpid():
            from loaders.beton import BetonReader

            self._reader, self._pid = BetonReader(self.beton), os.getpid()
        return self._reader

    def __getitem__(self, i):
        return self.transform(open_image(self.items[i], self._get_reader())), i

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_reader"], state["_pid"] = None, None
        return state


def image_batches(data, *, batch_size: int, workers: int, device: str = "cpu",
                  progress: bool = False, desc: str = "eval"):
    """Image tensors ``(B, 3, H, W)`` on ``device``, every item once in item order, from an
    :class:`ImageDataset` (a DataLoader with ``workers`` processes), a
    :class:`engine.eval.beton_input.BetonImages` (the loaders' eval pipeline, opened and closed
    here) or an open :class:`engine.eval.beton_input.BetonStream` (its own batch size and
    workers; left open). A batch is valid only until the next one is requested (FFCV reuses
    its buffers): consume it, or clone what must outlive it."""
    import sys

    from tqdm import tqdm

    from engine.eval.beton_input import BetonImages, BetonStream

    if isinstance(data, BetonImages):
        with data.open(batch_size, workers, device) as stream:
            yield from image_batches(stream, batch_size=batch_size, workers=workers,
                                     device=device, progress=progress, desc=desc)
        return
    if isinstance(data, BetonStream):
        yield from tqdm(data, desc=desc, unit="batch", disable=not progress, file=sys.stderr,
                        leave=False, total=data.num_batches)
        return
    loader = make_loader(data, batch_size, workers, device)
    for images, _ in tqdm(loader, desc=desc, unit="batch", disable=not progress,
                          file=sys.stderr, leave=False):
        yield images.to(device, non_blocking=True)


def make_loader(dataset, batch_size: int, workers: int, device: str = "cpu", collate_fn=None):
    """A sequential DataLoader (sample order = item order)."""
    import torch

    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        pin_memory=str(device).startswith("cuda"), persistent_workers=False,
        prefetch_factor=4 if workers else None, collate_fn=collate_fn)


def collate_list(batch):
    """Keep PIL images as a list: ``[(image, i), ...] -> ([images], [i, ...])``."""
    return [b[0] for b in batch], [b[1] for b in batch]


def identity(x):
    return x


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from engine.errors import UserError

        raise UserError(f"--device {device}: no CUDA device here; use --device cpu")
    return device


# ----------------------------------------------------------------------------- fingerprints

def listing_fingerprint(root: str, items, labels) -> dict:
    """sha256 of the sorted (relative path, size, label) listing of a folder set."""
    h = hashlib.sha256()
    for path, label in zip(items, labels):
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        h.update(f"{rel}\t{os.path.getsize(path)}\t{label}\n".encode())
    return {"method": "listing-sha256", "value": h.hexdigest(), "files": len(items)}


def file_fingerprint(path: str) -> dict:
    """sha256 of a file; large files by size + three samples (see :data:`FULL_HASH_LIMIT`)."""
    size = os.path.getsize(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= FULL_HASH_LIMIT:
            while block := f.read(1 << 22):
                h.update(block)
            return {"method": "file-sha256", "value": h.hexdigest(), "bytes": size}
        h.update(str(size).encode())
        for offset in (0, size // 2 - SAMPLE_BYTES // 2, size - SAMPLE_BYTES):
            f.seek(offset)
            h.update(f.read(SAMPLE_BYTES))
    return {"method": "sampled-sha256", "value": h.hexdigest(), "bytes": size}


def combine_fingerprints(*parts) -> str:
    """One hex digest of several fingerprints / strings (cache keys)."""
    h = hashlib.sha256()
    for p in parts:
        h.update((p["value"] if isinstance(p, dict) else str(p)).encode())
        h.update(b"\0")
    return h.hexdigest()
