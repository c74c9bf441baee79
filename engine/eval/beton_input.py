""".beton sets through the loaders' eval pipeline (issue #13 item 7).

    data = BetonImages("val.beton", range(n), crop=224, resize=256, backend="ffcv")
    run_model(loaded, data, batch_size=64, workers=4)    # opens, reads once, closes
    with data.open(batch_size=64, workers=4) as stream:  # or: open once (FFCV compiles its
        run_model(loaded, stream)                        # pipeline), read as often as needed

:class:`BetonImages` names what to read and how (``loaders.mixing.make_eval_loader``: a center
square of ``crop / resize`` of the short side resized to ``crop``, every sample once in the
given order, the last batch short); :class:`BetonStream` is its open loader. Images are valid only
until the next batch is requested (FFCV reuses its buffers).
"""
from __future__ import annotations

import dataclasses

BETON_BACKENDS = ("ffcv", "dali", "torchvision")
"""Loader backends that decode .beton sets (``loaders.config.LoaderConfig.backend``)."""


@dataclasses.dataclass(frozen=True)
class BetonImages:
    """Samples ``items`` (indices, read in this order) of the .beton ``path``, as the loaders'
    eval pipeline delivers them: the center square of side ``crop / resize`` x short side, resized
    to ``crop`` x ``crop``, then normalised with the ImageNet mean/std (``dtype="float32"``) or
    left as uint8 pixels (``dtype="uint8"``). ``backend``: ffcv | dali | torchvision."""

    path: str
    items: tuple
    crop: int = 224
    resize: int = 256
    backend: str = "ffcv"
    dtype: str = "float32"

    def __post_init__(self):
        from engine.errors import ConfigError

        object.__setattr__(self, "items", tuple(int(i) for i in self.items))
        if self.backend not in BETON_BACKENDS:
            raise ConfigError(f"backend {self.backend!r}: use one of {', '.join(BETON_BACKENDS)}")
        if not 0 < self.crop <= self.resize:
            raise ConfigError(f"crop {self.crop} > resize {self.resize}: a .beton set is read "
                              "as a center square of crop/resize of the short side; give "
                              "--crop <= --resize")

    def __len__(self):
        return len(self.items)

    @property
    def center_crop_ratio(self) -> float:
        return self.crop / self.resize

    def key(self) -> str:
        """Names the pixels this gives (part of the feature-cache key)."""
        return f"loader-{self.backend}-c{self.crop}-r{self.resize}-{self.dtype}"

    def describe(self) -> dict:
        return {"reader": "loaders.mixing.make_eval_loader", "backend": self.backend,
                "center_crop": f"{self.crop}/{self.resize} of the short side",
                "image_size": self.crop}

    def open(self, batch_size: int, workers: int, device: str = "cpu") -> "BetonStream":
        """The open loader (``workers``: decode threads, processes for torchvision; at least
        one); close it, or use it in a ``with`` block."""
        return BetonStream(self, batch_size, workers, device)

    def loader(self, batch_size: int, workers: int, device: str = "cpu"):
        """A ``loaders.mixing.BatchLoader`` over these samples (the caller closes it)."""
        from loaders.mixing import make_eval_loader

        return make_eval_loader(self.path, subset=list(self.items), backend=self.backend,
                                batch_size=batch_size, image_size=self.crop,
                                center_crop_ratio=self.center_crop_ratio, dtype=self.dtype,
                                workers=max(1, workers), device=str(device))


class BetonStream:
    """An open eval loader over :class:`BetonImages`: iterating yields image batches, every
    sample once in order, and may be repeated (the loader and FFCV's compiled pipeline are
    kept). ``close()`` stops its workers."""

    def __init__(self, data: BetonImages, batch_size: int, workers: int, device: str = "cpu"):
        self.data, self.items = data, data.items
        self.loader = data.loader(batch_size, workers, device)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_batches(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, _, _ in self.loader:  # the loaders keep the caller's torch threads
            yield images

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()  # FFCV's pipelines are freed there, without numba's noise
            self.loader = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

