"""Config dataclasses of ``synthclone eval`` / ``eval-data`` / ``report`` (YAML section ``eval:``).

Resolution (``engine.config``): defaults -> the ``eval:`` section of ``--config`` ->
``key=value`` -> flags; one validation in ``__post_init__``. ``eval-data`` reads the section
``eval_data:``, so one YAML file can carry both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass
class TransferConfig:
    resize: int = 224
    """Short side after resizing (seeds 001/002 App. A: bicubic to 224)."""
    crop: int = 224
    """Center crop (seeds 001/002 App. A: 224x224)."""
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"
    """Resize interpolation (seeds 001/002 App. A: bicubic)."""
    linear: bool = True
    """Logistic regression with L-BFGS on frozen features (seeds 001/002 App. A)."""
    knn: bool = True
    """Weighted k-NN on frozen features (seed 003 App. F; DINO's protocol)."""
    trials: int = 25
    """Hyper-parameter trials for C (seeds 001/002 App. A: Optuna, at least 25 trials)."""
    c_min: float = 1e-6
    """Smallest regularisation C searched (log scale)."""
    c_max: float = 1e5
    """Largest regularisation C searched (log scale)."""
    max_iter: int = 1000
    """L-BFGS iterations per fit (scikit-learn max_iter)."""
    search: Literal["auto", "optuna", "grid"] = "auto"
    """C search: optuna (TPE, seeded), grid (``trials`` log-spaced values) or auto (optuna
    when installed, else grid)."""
    k: int = 20
    """k-NN neighbours (DINO's protocol; seed 003 does not state its k)."""
    temperature: float = 0.07
    """k-NN vote temperature: weight exp(cos / T) (DINO: 0.07)."""
    val_fraction: float = 0.2
    """Share of the training split held out to tune C for sets without an official validation
    split (Pets, Food-101, Cars; EuroSAT and SUN397 also take their test split this way)."""
    test_fraction: float = 0.2
    """Share of all images used as test split for sets with no official split (EuroSAT,
    SUN397)."""
    max_images: int | None = None
    """Use at most this many images per split (a seeded, class-stratified draw); for quick
    checks only — papers use every image."""

    def __post_init__(self):
        for name in ("resize", "crop", "trials", "max_iter", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"transfer.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.c_min < self.c_max:
            raise ValueError(f"transfer.c_min must be > 0 and < c_max, got {self.c_min}, "
                             f"{self.c_max}")
        if self.temperature <= 0:
            raise ValueError(f"transfer.temperature must be > 0, got {self.temperature}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"transfer.{name} must be in (0, 1), got {getattr(self, name)}")
        if self.max_images is not None and self.max_images < 2:
            raise ValueError(f"transfer.max_images must be >= 2, got {self.max_images}")


@dataclass
class EvalConfig:
    sets: list[str] = field(default_factory=list)
    """Test sets as NAME=PATH (comma-separated or repeated): imagenet-val, imagenet-v2,
    imagenet-sketch, imagenet-r, imagenet-a, objectnet, imagenet-c; any NAME=FILE.beton."""
    set_labels: list[str] = field(default_factory=list)
    """Label files of flat folders as NAME=FILE: for a flat ImageNet val folder, the devkit's
    ILSVRC2012_validation_ground_truth.txt (with meta.mat beside it), its devkit folder,
    LOC_val_solution.csv, or a 'filename label' list (label: wnid or ImageNet-1K index).
    Found automatically when it sits in the folder or next to it."""
    transfer_sets: list[str] = field(default_factory=list)
    """Transfer sets as NAME=ROOT (torchvision layouts, download=False): flowers, pets, food,
    dtd, aircraft, cars, eurosat, sun397."""
    arch: str | None = None
    """Classifier architecture (torchvision or timm name) when the checkpoint's run folder does
    not name it, e.g. resnet50."""
    arch_source: Literal["auto", "torchvision", "timm"] = "auto"
    """Library that builds the architecture: auto tries torchvision first, then timm."""
    classes: str | None = None
    """The model's class set (imagenet100, imagenet-r, a class file, ...). With a 1000-way
    model it restricts every set to these classes (samples and logits); with a K-way model it
    names the K outputs in order (compact labels)."""
    resize: int = 256
    """Classification: short side after resizing (torchvision's eval protocol: 256)."""
    crop: int = 224
    """Classification: center crop (224)."""
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    """Classification resize interpolation of image folders (.beton sets: the --backend's)."""
    imagenet_c_severity: int = 5
    """ImageNet-C severity averaged over corruptions (seed 004 App. J: severity 5)."""
    id_set: str = "imagenet-val"
    """The in-distribution set D_test of the accuracy gap and effective robustness."""
    baselines: str | None = None
    """CSV of baseline (ID, OOD) top-1 pairs for the effective-robustness fit: columns shift,
    id_top1, ood_top1 (percent), optional model."""
    train_counts: str | None = None
    """Training images per class for many/medium/few-shot accuracy (seed 003 App. B: >800,
    300-800, <300): a 'wnid_or_label count' text file, a JSON mapping, or a .beton."""
    diagnostics: bool = False
    """Feature diagnostics on every set (seed 001 §3.3: sparsity, intra-class distance,
    redundancy, coding length)."""
    max_images: int | None = None
    """Evaluate at most this many images per set (a seeded draw; quick checks only)."""
    batch_size: int = 64
    """Images per forward pass (batch size)."""
    workers: int = 4
    """Image decoders: DataLoader worker processes for image folders (0: decode in the main
    thread); loader threads (ffcv, dali) or processes (torchvision) for .beton sets (at least
    one)."""
    backend: Literal["ffcv", "dali", "torchvision"] = "ffcv"
    """Loader backend that decodes .beton files (loaders.mixing.make_eval_loader: the center
    square of crop/resize of the short side, resized to crop): ffcv (area resampling), dali
    (GPU JPEG decoding on a GPU; the [dali] extra) or torchvision (PIL, bilinear)."""
    device: str = "auto"
    """auto (CUDA when available, else CPU) | cpu | cuda | cuda:N."""
    progress: bool = True
    """Progress bars on stderr."""
    feature_cache: bool = True
    """Cache logits/features per (checkpoint, set, transform) under $SYNTHCLONE_CACHE/eval."""
    unsafe_load: bool = False
    """Allow checkpoints that need full unpickling (torch.load weights_only=False); only for
    files you trust."""
    seed: int = 0
    """Seed of every random draw (subsets, splits, Optuna)."""
    label: str | None = None
    """Name of this model in reports (default: the run folder or checkpoint name)."""
    kind: Literal["auto", "real", "synthetic", "mixed", "unknown"] = "auto"
    """Training data of the model, for reports; auto reads the run's config.yaml."""
    synthetic_images: int | None = None
    """Synthetic training images, for the accuracy-vs-size plot; None: from the run's config."""
    transfer: TransferConfig = field(default_factory=TransferConfig)
    """Transfer protocol (frozen features, linear probe and k-NN)."""

    def __post_init__(self):
        for name in ("resize", "crop", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.backend not in ("ffcv", "dali", "torchvision"):
            raise ValueError(f"backend must be ffcv, dali or torchvision, got {self.backend!r}")
        if not 1 <= self.imagenet_c_severity <= 5:
            raise ValueError(f"imagenet_c_severity must be 1..5, got {self.imagenet_c_severity}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}")
        if self.synthetic_images is not None and self.synthetic_images < 0:
            raise ValueError("synthetic_images must be >= 0")


@dataclass
class DetectorConfig:
    arch: str = "resnet50"
    """Frozen backbone architecture (seed 000 A.7: ImageNet-pretrained ResNet-50)."""
    weights: str | None = None
    """Its weights: a torchvision/timm state dict file. Without it the detector is skipped."""
    train_images: int = 10000
    """Feature vectors to train on, half real, half generated (seed 000 A.7: 10,000)."""
    test_images: int = 2000
    """Held-out feature vectors (seed 000 A.7: 2,000)."""
    iterations: int = 5000
    """Adam steps (seed 000 A.7: 5,000)."""
    batch_size: int = 128
    """Batch size (seed 000 A.7: 128)."""
    lr: float = 1e-3
    """Adam learning rate (seed 000 does not state it; Adam's default)."""
    hidden: int = 1024
    """Hidden units of the 2-layer MLP (seed 000 A.7: 1,024, ReLU)."""

    def __post_init__(self):
        for name in ("train_images", "test_images", "iterations", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"detector.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"detector.lr must be > 0, got {self.lr}")


@dataclass
class EvalDataConfig:
    reference: str | None = None
    """Real images to compare with (a .beton): per-class FID and the generated-image detector."""
    clip_model: str = "ViT-B-32"
    """open_clip architecture for CLIP diversity and CLIP score."""
    clip_pretrained: str | None = None
    """open_clip pretrained tag or local weights file; without it the CLIP metrics are
    skipped."""
    score_threshold: float = 0.3
    """Report the share of images whose CLIP score is below this (seed 004 §4.5: 0.3)."""
    inception: str | None = None
    """Local Inception-v3 weights for IS and FID: torch-fidelity's
    weights-inception-2015-12-05-6726825d.pth (a state dict). Without it IS/FID are skipped."""
    is_splits: int = 10
    """Inception Score splits (the standard 10)."""
    images_per_class: int | None = None
    """Use at most this many images per class (a seeded draw) for CLIP, IS and FID; None:
    all."""
    batch_size: int = 64
    """Images per forward pass (batch size)."""
    workers: int = 4
    """Image decoders: loader threads (ffcv, dali) or processes (torchvision, and the PIL
    decoding of CLIP's inputs; 0 there: decode in the main thread)."""
    backend: Literal["ffcv", "dali", "torchvision"] = "ffcv"
    """Loader backend that decodes .beton files (loaders.mixing.make_eval_loader: the center
    square of crop/resize of the short side, resized to crop): ffcv (area resampling), dali
    (GPU JPEG decoding on a GPU; the [dali] extra) or torchvision (PIL, bilinear)."""
    device: str = "auto"
    """auto (CUDA when available, else CPU) | cpu | cuda | cuda:N."""
    progress: bool = True
    """Progress bars on stderr."""
    seed: int = 0
    """Seed of every random draw (subsets, detector split and training)."""
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    """Seed 000 A.7's detector of generated images (needs --reference and backbone weights)."""

    def __post_init__(self):
        if not -1 <= self.score_threshold <= 1:
            raise ValueError(f"score_threshold must be a cosine in [-1, 1], got "
                             f"{self.score_threshold}")
        if self.is_splits < 1:
            raise ValueError(f"is_splits must be >= 1, got {self.is_splits}")
        if self.images_per_class is not None and self.images_per_class < 2:
            raise ValueError(f"images_per_class must be >= 2, got {self.images_per_class}")
        if self.batch_size < 1 or self.workers < 0:
            raise ValueError("batch_size must be >= 1 and workers >= 0")
        if self.backend not in ("ffcv", "dali", "torchvision"):
            raise ValueError(f"backend must be ffcv, dali or torchvision, got {self.backend!r}")
