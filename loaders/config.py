"""Documented options of every loader: :class:`LoaderConfig` (how to decode and deliver batches)
and :class:`MixConfig` (how a real and a synthetic domain share each batch).

Both are plain dataclasses with one docstring per field, so ``engine.config.add_config_args``
turns them into flags (``--loader.batch-size``) and YAML keys (``train: loader: ...``) for the
trainer and evaluation. Checks run in ``__post_init__`` and raise
:class:`loaders.errors.LoaderConfigError` (one line and exit 2 in the CLI).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

from loaders.errors import LoaderConfigError

__all__ = ["LoaderConfig", "MixConfig", "IMAGENET_MEAN", "IMAGENET_STD", "EVAL_CROP_RATIO",
           "BACKEND_NAMES", "synthetic_rows"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet channel means (RGB, 0..1 scale), as in torchvision and ffcv-imagenet."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations (RGB, 0..1 scale)."""
EVAL_CROP_RATIO = 224 / 256
"""Center crop side / short image side of the standard eval pipeline (resize 256, crop 224)."""
BACKEND_NAMES = ("ffcv", "dali", "torchvision")
"""Loader backends, in ``loaders.backends.BACKENDS`` order."""


@dataclasses.dataclass
class LoaderConfig:
    """How batches are decoded, augmented and delivered (every backend reads the same options)."""

    backend: Literal["ffcv", "dali", "torchvision"] = "ffcv"
    """Decoder: ffcv (numba + libjpeg-turbo on CPU threads), dali (NVIDIA DALI; GPU JPEG decoding
    on a GPU, CPU otherwise; needs the [dali] extra) or torchvision (PIL + DataLoader workers,
    the baseline)."""
    batch_size: int = 256
    """Rows per batch on each process (real + synthetic), as torch DataLoader and FFCV count."""
    pipeline: Literal["train", "eval"] = "train"
    """train: RandomResizedCrop + flip, shuffled, full batches only; eval: center crop
    (``center_crop_ratio``), files in order, every sample once (last batch may be short)."""
    image_size: int = 224
    """Output height and width in pixels (the crop is resized to this)."""
    device: str = "cpu"
    """Where batches are delivered: cpu, cuda or cuda:N (ffcv ToDevice; dali mixed decoder)."""
    dtype: Literal["float32", "float16", "uint8"] = "float32"
    """Image dtype: float32/float16 normalised with ``mean``/``std``, or uint8 pixels (0..255,
    for augmentation on the GPU; ``mean``/``std`` then unused)."""
    channels_last: bool = False
    """Deliver images in torch.channels_last memory format (shape stays B,3,H,W)."""
    workers: int = 0
    """Decode threads (ffcv, dali) or worker processes (torchvision); 0: one per CPU core
    (ffcv uses at most numba's pool, one thread per core). The caller's torch thread count is
    left as it was."""
    seed: int = 0
    """Seed of the sample order and of the subsets; batches depend only on (seed, epoch)."""
    order: Literal["random", "quasi_random", "sequential"] = "random"
    """Train order: random (a fresh permutation per epoch), quasi_random (shuffle within windows
    of .beton pages, FFCV's QUASI_RANDOM, for files larger than RAM with os_cache off) or
    sequential (file order). Eval is always sequential."""
    os_cache: bool = True
    """ffcv: read through the OS page cache (best when the files fit in RAM); off: FFCV's own
    process cache (pair it with order quasi_random)."""
    batches_ahead: int = 3
    """Batches decoded ahead of the training step (ffcv batches_ahead; dali prefetch depth)."""
    distributed: bool = False
    """Give each process of a torchrun/DDP job disjoint rows and the same number of batches
    (rank and world size from torch.distributed, else the RANK/WORLD_SIZE variables)."""
    rank: int | None = None
    """This process's rank (default: from torch.distributed or RANK when distributed)."""
    world_size: int | None = None
    """Number of processes (default: from torch.distributed or WORLD_SIZE when distributed)."""
    crop_scale: tuple[float, float] = (0.08, 1.0)
    """RandomResizedCrop area range (fraction of the image), train pipeline."""
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """RandomResizedCrop aspect-ratio range, train pipeline."""
    flip: bool = True
    """Random horizontal flip (p = 0.5), train pipeline."""
    center_crop_ratio: float = EVAL_CROP_RATIO
    """Eval pipeline: center square of side ratio * short side, resized to image_size."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    """Per-channel mean (0..1 scale) subtracted from float images."""
    std: tuple[float, float, float] = IMAGENET_STD
    """Per-channel standard deviation (0..1 scale) dividing float images."""
    dali_py_workers: int = 1
    """dali: processes running the external source that reads .beton bytes (parallel mode);
    0 reads in the main process."""
    timeout: float = 600.0
    """Seconds to wait for one batch (ffcv, torchvision) before raising LoaderWorkerError, so a
    crashed or stuck worker surfaces as an error, never as a silent hang (DALI reports its own
    worker failures)."""

    def __post_init__(self):
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        self.crop_ratio = tuple(float(v) for v in self.crop_ratio)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if self.backend not in BACKEND_NAMES:
            raise LoaderConfigError(f"backend={self.backend!r}: use one of "
                                    f"{', '.join(BACKEND_NAMES)}")
        if self.batch_size < 1:
            raise LoaderConfigError(f"batch_size={self.batch_size}: must be >= 1")
        if self.image_size < 1:
            raise LoaderConfigError(f"image_size={self.image_size}: must be >= 1")
        if self.pipeline not in ("train", "eval"):
            raise LoaderConfigError(f"pipeline={self.pipeline!r}: use train or eval")
        if self.dtype not in ("float32", "float16", "uint8"):
            raise LoaderConfigError(f"dtype={self.dtype!r}: use float32, float16 or uint8")
        if self.order not in ("random", "quasi_random", "sequential"):
            raise LoaderConfigError(f"order={self.order!r}: use random, quasi_random or "
                                    "sequential")
        if self.workers < 0:
            raise LoaderConfigError(f"workers={self.workers}: must be >= 0 (0: one per core)")
        if self.batches_ahead < 1:
            raise LoaderConfigError(f"batches_ahead={self.batches_ahead}: must be >= 1")
        if self.dali_py_workers < 0:
            raise LoaderConfigError(f"dali_py_workers={self.dali_py_workers}: must be >= 0")
        if not (len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1):
            raise LoaderConfigError(f"crop_scale={self.crop_scale}: need 0 < min <= max <= 1")
        if not (len(self.crop_ratio) == 2 and 0 < self.crop_ratio[0] <= self.crop_ratio[1]):
            raise LoaderConfigError(f"crop_ratio={self.crop_ratio}: need 0 < min <= max")
        if not 0 < self.center_crop_ratio <= 1:
            raise LoaderConfigError(f"center_crop_ratio={self.center_crop_ratio}: must be in "
                                    "(0, 1]")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise LoaderConfigError("mean and std need 3 values each, std > 0")
        if not self.timeout > 0:
            raise LoaderConfigError(f"timeout={self.timeout}: must be > 0 seconds")
        if not (self.device == "cpu" or self.device == "cuda"
                or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise LoaderConfigError(f"device={self.device!r}: use cpu, cuda or cuda:N")
        for name in ("rank", "world_size"):
            v = getattr(self, name)
            if v is not None and v < (0 if name == "rank" else 1):
                raise LoaderConfigError(f"{name}={v}: out of range")
        if self.rank is not None and self.world_size is not None and self.rank >= self.world_size:
            raise LoaderConfigError(f"rank={self.rank} must be < world_size={self.world_size}")

    def replace(self, **changes) -> "LoaderConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class MixConfig:
    """How a real and a synthetic domain share each batch (seed 003 §3.3, seed 004 §4.3)."""

    synthetic_share: float = 0.5
    """p: each batch of B rows holds exactly round(B*p) synthetic rows (a half rounds up), real
    rows first. 0: real only; 1: synthetic only (seed 003 uses 0.5, "equal sampling weights")."""
    mode: Literal["dual", "union"] = "dual"
    """dual: the fixed per-batch split above, an epoch is one pass over the real set and the
    synthetic set is walked without replacement across epochs (seed 003); union: pool both sets
    and shuffle them together, each batch holds whatever mix it draws, real rows sorted first
    (seed 004's plain union, "equal mix" 100:100; no DualBN needed)."""
    real_fraction: float = 1.0
    """Use this fraction of the real set (class-stratified, seeded; seed 004 §4.3 uses 0.25,
    0.5, 1)."""
    synthetic_fraction: float | None = None
    """Use round(f * N_real_full) synthetic rows, f relative to the FULL real set's size as in
    seed 004 §4.3 (0.5, 1, 2 = 50%, 100%, 200%); None: the whole synthetic set."""
    label_check: Literal["equal", "subset", "off"] = "equal"
    """equal: both domains must hold the same classes (catches compact vs ImageNet-1K labels);
    subset: synthetic classes must all occur in the real set; off: no check."""

    def __post_init__(self):
        if not 0.0 <= self.synthetic_share <= 1.0 or math.isnan(self.synthetic_share):
            raise LoaderConfigError(f"synthetic_share={self.synthetic_share}: must be in [0, 1]")
        if self.mode not in ("dual", "union"):
            raise LoaderConfigError(f"mode={self.mode!r}: use dual or union")
        if not 0.0 < self.real_fraction <= 1.0:
            raise LoaderConfigError(f"real_fraction={self.real_fraction}: must be in (0, 1]")
        if self.synthetic_fraction is not None and not self.synthetic_fraction > 0:
            raise LoaderConfigError(f"synthetic_fraction={self.synthetic_fraction}: must be > 0")
        if self.label_check not in ("equal", "subset", "off"):
            raise LoaderConfigError(f"label_check={self.label_check!r}: use equal, subset or off")


def synthetic_rows(batch_size: int, share: float) -> int:
    """Synthetic rows in a batch of ``batch_size`` at share ``p``: round(B*p), half up."""
    return int(math.floor(batch_size * share + 0.5))
