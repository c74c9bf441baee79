"""``TrainConfig``: every switch of ``synthclone train``, one docstring per field.

Sections (YAML ``train:`` -> ``model:``, ``data:``, ...; flags ``--optim.lr``; overrides
``optim.lr=0.1``). The shipped recipes live in ``engine/configs/train_*.yaml`` and cite the
papers' tables. Checks run once, after YAML, overrides and flags are applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MODEL_SOURCES = ("auto", "torchvision", "timm")


@dataclass
class ModelConfig:
    name: str = "resnet18"
    """Architecture by torchvision or timm name: resnet18/50/101/152, resnext50_32x4d,
    resnext101_32x8d, efficientnet_b0, mobilenet_v2, deit_small_patch16_224, ..."""
    source: Literal["auto", "torchvision", "timm"] = "auto"
    """Which library builds the model; auto: torchvision when it has the name, else timm."""
    num_classes: int | None = None
    """Outputs of the classifier head; None: the data's largest label + 1."""
    dual_bn: bool = False
    """Separate batch norms for real and synthetic rows (seed 003 §3.3); models without batch
    norm (DeiT) refuse it."""
    fuse_tails: bool = True
    """With dual_bn on torchvision ResNets: fuse each block's norm + ReLU and residual tail."""
    sync_bn: bool = False
    """Under DDP, synchronise batch-norm statistics across processes (DualSyncBatchNorm with
    dual_bn, else SyncBatchNorm)."""
    dropout: float = 0.0
    """Dropout before the classifier (seed 003 Table 5: 0.25); keeps the plain state-dict keys."""
    drop_path: float = 0.0
    """Stochastic depth rate (timm models; seed 003 Table 6: 0.1/0.2/0.45)."""
    img_size: int | None = None
    """Input size of vision transformers (timm img_size; seed 003 Table 6: 192 for DeiT-B/L)."""
    weights: str | None = None
    """Start from these weights: an exported model_real.pt, a training checkpoint or a
    torchvision/timm state dict of the same architecture."""
    eval_domain: Literal["real", "synthetic"] = "real"
    """Which DualBN branch evaluation uses (the real one unless you study the synthetic one)."""

    def __post_init__(self):
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"model.num_classes must be >= 2, got {self.num_classes}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"model.drop_path must be in [0, 1), got {self.drop_path}")


@dataclass
class DataConfig:
    real: str | None = None
    """Real training images: a .beton (synthclone pack); an image folder with backend
    torchvision."""
    synthetic: str | None = None
    """Synthetic training images: a .beton (synthclone generate)."""
    eval: str | None = None
    """Held-out real images for top-1 after each eval_every epochs (a .beton, or a folder)."""
    backend: Literal["ffcv", "dali", "torchvision"] = "ffcv"
    """Loader backend (all yield the same batches: real rows first)."""
    mix_mode: Literal["dual", "union"] = "dual"
    """dual: every batch holds exactly round(B*p) synthetic rows after the real ones (seed 003);
    union: real and synthetic pooled and shuffled together (seed 004's plain union)."""
    synthetic_share: float | None = None
    """Share p of synthetic rows in every batch (exactly round(B*p)); None: 0.5 with both
    sources (seed 003 §3.3: equal sampling), else all rows from the one source."""
    batch_size: int = 256
    """Global batch size (all processes and accumulation steps together), as papers state it."""
    resolution: int = 224
    """Training crop size (the final size when progressive resizing is on)."""
    crop_scale: tuple[float, ...] = (0.08, 1.0)
    """Area range of the loader's RandomResizedCrop (torchvision/FFCV default 0.08-1; with
    DINO multi-crop use 1-1 so the loader yields the whole image as the base view)."""
    flip: bool = True
    """Random horizontal flips in the loader."""
    min_resolution: int | None = None
    """Progressive resizing (ffcv-imagenet): start at this size, reach ``resolution`` by
    ramp_end_epoch, moving in steps of 32 px; None: off."""
    ramp_start_epoch: int = 0
    """Epoch where progressive resizing starts growing the crop size."""
    ramp_end_epoch: int = 0
    """Epoch where progressive resizing reaches ``resolution``."""
    eval_resolution: int = 224
    """Evaluation crop size."""
    eval_crop_ratio: float = 0.875
    """Evaluation center-crop ratio (crop/resize; 224/256 = 0.875)."""
    eval_batch_size: int | None = None
    """Evaluation batch size per process; None: the training micro-batch size."""
    workers: int = 4
    """Loader worker threads/processes per training process."""
    os_cache: bool = False
    """Read .beton files through the OS page cache (FFCV os_cache; good when they fit in RAM)."""
    low_data_per_class: int | None = None
    """Keep N real images per class (seed 003 §4.3: 100, 200, 500); None: all."""
    long_tail_gamma: float | None = None
    """Long-tailed real subset with imbalance ratio γ, n_k = n_1·γ^(-(k-1)/(K-1)) (seed 003
    §4.3: 50, 100, 200); None: all."""
    subset_seed: int = 0
    """Seed of the low-data / long-tail subset draw (the index file goes into the run folder)."""

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        p = self.synthetic_share
        if p is not None and not 0 <= p <= 1:
            raise ValueError(f"data.synthetic_share must be in [0, 1], got {p}")
        if p is not None and p > 0 and self.synthetic is None and self.real is not None:
            raise ValueError(f"data.synthetic_share={p} needs data.synthetic")
        if p is not None and p < 1 and self.real is None and self.synthetic is not None:
            raise ValueError(f"data.synthetic_share={p} needs data.real (or set it to 1)")
        for name in ("resolution", "eval_resolution"):
            if getattr(self, name) < 8:
                raise ValueError(f"data.{name} must be >= 8, got {getattr(self, name)}")
        if self.min_resolution is not None:
            if not 8 <= self.min_resolution <= self.resolution:
                raise ValueError(f"data.min_resolution must be in [8, resolution="
                                 f"{self.resolution}], got {self.min_resolution}")
            if self.ramp_end_epoch < self.ramp_start_epoch:
                raise ValueError("data.ramp_end_epoch must be >= data.ramp_start_epoch")
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"data.crop_scale must be [lo, hi] with 0 < lo <= hi <= 1, got "
                             f"{list(self.crop_scale)}")
        if not 0 < self.eval_crop_ratio <= 1:
            raise ValueError(f"data.eval_crop_ratio must be in (0, 1], got {self.eval_crop_ratio}")
        if self.low_data_per_class is not None and self.long_tail_gamma is not None:
            raise ValueError("data: choose low_data_per_class or long_tail_gamma, not both")
        if self.low_data_per_class is not None and self.low_data_per_class < 1:
            raise ValueError("data.low_data_per_class must be >= 1")
        if self.long_tail_gamma is not None and self.long_tail_gamma < 1:
            raise ValueError("data.long_tail_gamma must be >= 1")
        if self.workers < 0:
            raise ValueError("data.workers must be >= 0")

    @property
    def share(self) -> float:
        """The resolved synthetic share p."""
        if self.synthetic_share is not None:
            return self.synthetic_share
        if self.real is not None and self.synthetic is not None:
            return 0.5
        return 0.0 if self.synthetic is None else 1.0


@dataclass
class OptimConfig:
    name: Literal["sgd", "lars", "adamw", "lamb"] = "sgd"
    """sgd (with momentum; seed 003 Table 5 "Momentum") | lars | adamw | lamb (timm's)."""
    lr: float = 0.1
    """Peak learning rate for the global batch size (not rescaled)."""
    momentum: float = 0.9
    """SGD/LARS momentum."""
    nesterov: bool = False
    """Nesterov momentum (SGD)."""
    weight_decay: float = 1e-4
    """Weight decay (decoupled for adamw/lamb)."""
    no_wd_bn_bias: bool = False
    """No weight decay on norm weights and biases (1-D parameters; ffcv-imagenet bn_wd=0)."""
    betas: tuple[float, ...] = (0.9, 0.999)
    """Adam/LAMB betas."""
    eps: float = 1e-8
    """Adam/LAMB epsilon."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; None: no clipping."""
    accum_steps: int = 1
    """Gradient accumulation: micro-batches per optimizer step."""

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError("optim.weight_decay must be >= 0")
        if self.accum_steps < 1:
            raise ValueError("optim.accum_steps must be >= 1")
        if len(self.betas) != 2:
            raise ValueError(f"optim.betas needs two numbers, got {list(self.betas)}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError("optim.grad_clip must be > 0 (or null)")


@dataclass
class ScheduleConfig:
    name: Literal["cosine", "step", "cyclic", "constant"] = "cosine"
    """cosine (after linear warmup) | step (x gamma every step_epochs) | cyclic (ffcv-imagenet:
    linear up to peak_epoch, linear down to 0 at the end) | constant."""
    epochs: int = 90
    """Training epochs."""
    warmup_epochs: float = 0.0
    """Linear warmup length in epochs (cosine, step, constant)."""
    warmup_fraction: float | None = None
    """Warmup length as a fraction of all iterations (seed 002: 0.1); overrides warmup_epochs."""
    warmup_start_factor: float = 0.0
    """Learning-rate factor at the first warmup step."""
    final_lr_factor: float = 0.0
    """Cosine: learning-rate factor reached at the end."""
    step_epochs: int = 30
    """Step: epochs between decays."""
    gamma: float = 0.1
    """Step: decay factor."""
    peak_epoch: float = 2.0
    """Cyclic: epoch of the peak (ffcv-imagenet lr_peak_epoch)."""
    cyclic_start_factor: float = 1e-4
    """Cyclic: learning-rate factor at epoch 0 (ffcv-imagenet: 1e-4)."""

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"schedule.epochs must be >= 1, got {self.epochs}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ValueError(f"schedule.warmup_epochs must be in [0, epochs], got "
                             f"{self.warmup_epochs}")
        if self.warmup_fraction is not None and not 0 <= self.warmup_fraction < 1:
            raise ValueError("schedule.warmup_fraction must be in [0, 1)")
        if self.name == "cyclic" and not 0 < self.peak_epoch < self.epochs:
            raise ValueError(f"schedule.peak_epoch must be in (0, epochs={self.epochs}), got "
                             f"{self.peak_epoch}")
        if self.step_epochs < 1:
            raise ValueError("schedule.step_epochs must be >= 1")


@dataclass
class LossConfig:
    synthetic_weight: float | None = None
    """λ of seed 003 §3.3, L = (Σ_real CE + λ·Σ_syn CE)/B; None: 0.6 when every batch splits
    real and synthetic rows (mix_mode dual; seed 003 §4 "λ to 0.6 for all experiments"), else 1
    (real-only, synthetic-only, or seed 004's plain union)."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy (and of mixup/cutmix targets)."""

    def __post_init__(self):
        if self.synthetic_weight is not None and self.synthetic_weight < 0:
            raise ValueError("loss.synthetic_weight must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("loss.label_smoothing must be in [0, 1)")


@dataclass
class AugmentConfig:
    randaugment_ops: int = 0
    """RandAugment operations per image (N; 2 in RandAugment/DeiT); 0: off. Runs on the
    training device on the loader's batch."""
    randaugment_magnitude: int = 9
    """RandAugment magnitude M (0-30; seed 003 Table 6: 9)."""
    mixup_alpha: float = 0.0
    """Mixup Beta(α, α) (timm; seed 003 Table 6: 0.8); 0: off. Mixed within each domain."""
    cutmix_alpha: float = 0.0
    """CutMix Beta(α, α) (timm; seed 003 Table 6: 1.0); 0: off."""
    mixup_prob: float = 1.0
    """Probability of applying mixup or cutmix to a batch."""
    mixup_switch_prob: float = 0.5
    """With both on: probability of cutmix instead of mixup."""
    local_crops: int = 0
    """DINO multi-crop (seed 002 §5: 1 global + 8 local): local crops per image; 0: off."""
    global_crop_size: int = 224
    """Multi-crop: global crop size."""
    local_crop_size: int = 96
    """Multi-crop: local crop size (DINO: 96)."""
    global_crop_scale: tuple[float, ...] = (0.4, 1.0)
    """Multi-crop: area range of the global crop (DINO: 0.4-1.0)."""
    local_crop_scale: tuple[float, ...] = (0.05, 0.4)
    """Multi-crop: area range of the local crops (DINO: 0.05-0.4)."""

    def __post_init__(self):
        if self.randaugment_ops < 0 or not 0 <= self.randaugment_magnitude <= 30:
            raise ValueError("augment: randaugment_ops >= 0 and magnitude in 0..30")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError("augment: mixup_alpha and cutmix_alpha must be >= 0")
        if self.local_crops < 0:
            raise ValueError("augment.local_crops must be >= 0")
        for name in ("global_crop_scale", "local_crop_scale"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] <= 1:
                raise ValueError(f"augment.{name} must be [lo, hi] with 0 < lo <= hi <= 1")

    @property
    def mixing(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


@dataclass
class RunConfig:
    seed: int = 0
    """Seed of weights init, data order and augmentations."""
    device: str = "auto"
    """auto (CUDA when available) | cpu | cuda (DDP: each process its LOCAL_RANK GPU)."""
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    """Mixed precision: auto = bf16 on CUDA (fp16 + loss scaling where bf16 is missing), off on
    CPU (see README: bf16 autocast measured slower for our CPU training step); fp16 is CUDA only."""
    channels_last: bool | None = None
    """channels_last memory format; None: on for CUDA, off on CPU."""
    compile: bool = False
    """torch.compile the model (inductor)."""
    ema: bool = False
    """Keep an exponential moving average of the weights (timm ModelEmaV3)."""
    ema_decay: float = 0.9999
    """EMA decay per optimizer step."""
    checkpoint_every: int = 1000
    """Write checkpoint.pt every N optimizer steps (and at every epoch end); 0: epoch ends only."""
    log_every: int = 20
    """Write a metrics line every N optimizer steps."""
    eval_every: int = 1
    """Evaluate on data.eval every N epochs (and after the last); 0: only after the last."""
    progress: bool = True
    """Progress bar (images/s, ETA, share of step time waiting for data)."""
    tensorboard: bool = True
    """Also write TensorBoard events when tensorboard is installed."""
    threads: int | None = None
    """CPU intra-op threads (torch.set_num_threads); None keeps torch's default."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (smoke runs); the schedule still spans all epochs."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms (bitwise-repeatable GPU runs, slower)."""
    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"
    """DDP backend: auto = nccl on CUDA, gloo on CPU."""
    export: bool = True
    """At the end write model_real.pt: the real-branch weights of the (EMA) model, loadable by
    the plain torchvision/timm model."""

    def __post_init__(self):
        if self.checkpoint_every < 0 or self.log_every < 1 or self.eval_every < 0:
            raise ValueError("run: checkpoint_every >= 0, log_every >= 1, eval_every >= 0")
        if not 0 < self.ema_decay < 1:
            raise ValueError("run.ema_decay must be in (0, 1)")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("run.max_steps must be >= 1 (or null)")
        if self.threads is not None and self.threads < 1:
            raise ValueError("run.threads must be >= 1")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The network."""
    data: DataConfig = field(default_factory=DataConfig)
    """Training and evaluation data."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Epochs and learning-rate schedule."""
    loss: LossConfig = field(default_factory=LossConfig)
    """The dual-domain loss."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """On-device augmentations."""
    run: RunConfig = field(default_factory=RunConfig)
    """Device, precision, checkpoints, logging."""

    def __post_init__(self):
        if self.augment.local_crops and self.augment.mixing:
            raise ValueError("augment: multi-crop (local_crops) and mixup/cutmix together are "
                             "not supported; choose one")
        if self.run.amp == "fp16" and self.run.device == "cpu":
            raise ValueError("run.amp=fp16 needs CUDA; use bf16 or off on the CPU")

    @property
    def synthetic_weight(self) -> float:
        """The resolved λ."""
        if self.loss.synthetic_weight is not None:
            return self.loss.synthetic_weight
        return 0.6 if self.dual_domain else 1.0

    @property
    def dual_domain(self) -> bool:
        """Batches with a fixed real/synthetic split (seed 003), where λ defaults to 0.6."""
        return self.data.mix_mode == "dual" and 0 < self.data.share < 1


RESUME_MAY_CHANGE = frozenset({
    "run.progress", "run.tensorboard", "run.log_every", "run.checkpoint_every", "run.max_steps",
    "run.threads", "run.eval_every", "run.export", "data.workers", "data.os_cache",
    "data.eval", "data.eval_batch_size",
})
"""Config keys a resumed run may change (they do not change the trained weights)."""
