"""``DualBatchNorm2d``: batch norm with separate real and synthetic branches (seed 003 §3.3).

A dual-domain batch has its ``num_real`` real samples first (the loader's ``num_real`` or its
domain mask, see ``num_real_from_mask``).  In training each branch normalizes its own part with
its own batch statistics and affine parameters and updates its own running statistics, so
synthetic statistics never disturb the real ones.  In eval the real branch normalizes the whole
batch unless ``eval_domain`` says otherwise (``"synthetic"``, or ``"split"`` to keep the split).

State-dict layout: the real branch keeps ``nn.BatchNorm2d``'s keys (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``); the synthetic branch adds the same
names prefixed ``syn_``.  Loading a real-only (plain BN) checkpoint fills the missing ``syn_*``
entries from the real ones, so it loads strictly; ``real_state_dict`` exports back.

The split reaches modules deep inside torchvision/timm models through ``set_num_real(model, k)``
or ``with dual_bn_split(model, k): model(x)``; a direct call can pass ``num_real=``.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

from engine.ops.dual_bn.op import dual_bn

EVAL_DOMAINS = ("real", "synthetic", "split")
BRANCH_NAMES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
SYN_PREFIX = "syn_"


class DualBatchNorm2d(nn.Module):
    """Two BatchNorm2d branches (real = rows [0, k), synthetic = rows [k, N)) in one module."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, relu: bool = False,
                 eval_domain: str = "real", backend: str | None = None, device=None, dtype=None):
        super().__init__()
        if eval_domain not in EVAL_DOMAINS:
            raise ValueError(f"eval_domain must be one of {EVAL_DOMAINS}, got {eval_domain!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.relu = relu
        """Fuse a ReLU after the (residual add and) normalization."""
        self.eval_domain = eval_domain
        """Which statistics eval uses: ``real`` (default), ``synthetic`` or ``split``."""
        self.backend = backend
        """Force a ``dual_bn`` backend (``triton``/``ref``/``ref_compiled``); None: the registry's."""
        self.num_real: int | None = None
        """Real samples at the head of the next batch (set by ``set_num_real``/``dual_bn_split``)."""
        self.act: nn.Module = nn.Identity()
        """Activation after the norm (kept from timm's ``BatchNormAct2d`` when not a fusable ReLU)."""
        self.drop: nn.Module = nn.Identity()
        """Dropout after the norm (timm's ``BatchNormAct2d``)."""
        fk = {"device": device, "dtype": dtype}
        for prefix in ("", SYN_PREFIX):
            if affine:
                self.register_parameter(prefix + "weight", nn.Parameter(torch.ones(num_features, **fk)))
                self.register_parameter(prefix + "bias", nn.Parameter(torch.zeros(num_features, **fk)))
            else:
                self.register_parameter(prefix + "weight", None)
                self.register_parameter(prefix + "bias", None)
            if track_running_stats:
                self.register_buffer(prefix + "running_mean", torch.zeros(num_features, **fk))
                self.register_buffer(prefix + "running_var", torch.ones(num_features, **fk))
                self.register_buffer(prefix + "num_batches_tracked",
                                     torch.tensor(0, dtype=torch.long, device=device))
            else:
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    self.register_buffer(prefix + name, None)

    # -- construction from / export to plain batch norm -------------------------------------
    @classmethod
    def from_bn(cls, bn: nn.modules.batchnorm._BatchNorm, **kwargs) -> "DualBatchNorm2d":
        """A dual module whose both branches start as copies of ``bn`` (weights and statistics)."""
        p = bn.weight if bn.weight is not None else bn.running_mean
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                  device=p.device if p is not None else None,
                  dtype=p.dtype if p is not None else None, **kwargs)
        with torch.no_grad():
            for name in BRANCH_NAMES:
                src = getattr(bn, name, None)
                if src is None:
                    continue
                getattr(new, name).copy_(src)
                getattr(new, SYN_PREFIX + name).copy_(src)
        act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)  # timm BatchNormAct2d
        if isinstance(act, nn.ReLU):
            new.relu = True
        elif isinstance(act, nn.Module):
            new.act = act
        if isinstance(drop, nn.Module):
            new.drop = drop
        if not isinstance(new.drop, nn.Identity) and new.relu:  # keep timm's order: drop, then act
            new.relu, new.act = False, nn.ReLU()
        new.train(bn.training)
        return new

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A real-only (plain BatchNorm2d) checkpoint: start the synthetic branch from the real one.
        for name in BRANCH_NAMES:
            real, syn = prefix + name, prefix + SYN_PREFIX + name
            if getattr(self, SYN_PREFIX + name) is None:
                continue
            if name == "num_batches_tracked" and real not in state_dict:
                state_dict[real] = torch.tensor(0, dtype=torch.long)  # pre-0.4.1 BN checkpoints
            if syn not in state_dict and real in state_dict:
                state_dict[syn] = state_dict[real]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # -- forward -----------------------------------------------------------------------------
    def _split(self, x: torch.Tensor, num_real: int | None, batch_stats: bool) -> int:
        n = x.shape[0]
        k = self.num_real if num_real is None else num_real
        if not batch_stats and self.eval_domain != "split":
            return n if self.eval_domain == "real" else 0
        if k is None:
            raise ValueError("DualBatchNorm2d does not know where the synthetic samples start: "
                             "pass num_real=, or wrap the call in `with dual_bn_split(model, k):` "
                             "(or call set_num_real(model, k)) with k = the batch's real count")
        if not 0 <= int(k) <= n:
            raise ValueError(f"num_real={k} is outside [0, N={n}] for this batch")
        return int(k)

    def _momenta(self, k: int, n: int) -> tuple[float, float]:
        """Per-branch averaging factor, counting the batch (cumulative average when momentum=None)."""
        buffers = self._buffers
        tracked = (buffers["num_batches_tracked"], buffers[SYN_PREFIX + "num_batches_tracked"])
        counted = [t for t, count in zip(tracked, (k, n - k)) if count > 0 and t is not None]
        if counted:
            torch._foreach_add_(counted, 1)  # one call for both branches
        if self.momentum is not None:
            return float(self.momentum), float(self.momentum)
        factors = [1.0 / float(t.item()) if t is not None and t.item() > 0 else 0.0
                   for t in tracked]
        return factors[0], factors[1]

    def _pair(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(real, synthetic)`` tensors of ``name``: the module's own, used in place (the
        ``cpu`` backend updates the running statistics directly; others get them stacked and
        copied back by ``dual_bn``)."""
        store = self._parameters if name in self._parameters else self._buffers
        real = store[name]
        return None if real is None else (real, store[SYN_PREFIX + name])

    def _normalize(self, x, k, weight, bias, running_mean, running_var, batch_stats, momentum,
                   residual, relu):
        return dual_bn(x, k, weight, bias, running_mean, running_var, batch_stats, momentum,
                       self.eps, residual, relu, backend=self.backend)

    def forward(self, x: torch.Tensor, num_real: int | None = None,
                residual: torch.Tensor | None = None, relu: bool | None = None) -> torch.Tensor:
        """``x`` (N, C, H, W) -> same shape; ``residual`` is added before the (fused) ReLU;
        ``relu`` overrides the module's ``relu`` for this call (fused ResNet block tails)."""
        if x.dim() != 4:
            raise ValueError(f"DualBatchNorm2d expects (N, C, H, W) input, got {tuple(x.shape)}")
        batch_stats = self.training or not self.track_running_stats
        k = self._split(x, num_real, batch_stats)
        update = self.training and self.track_running_stats
        momentum = self._momenta(k, x.shape[0]) if update else (0.0, 0.0)
        stats = update or not batch_stats
        y = self._normalize(x, k, self._pair("weight"), self._pair("bias"),
                            self._pair("running_mean") if stats else None,
                            self._pair("running_var") if stats else None,
                            batch_stats, momentum, residual, self.relu if relu is None else relu)
        act, drop = self._modules["act"], self._modules["drop"]
        if type(act) is nn.Identity and type(drop) is nn.Identity:
            return y
        return act(drop(y))

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}, relu={self.relu}, "
                f"eval_domain={self.eval_domain!r}")


def dual_bn_modules(model: nn.Module) -> Iterator[DualBatchNorm2d]:
    return (m for m in model.modules() if isinstance(m, DualBatchNorm2d))


def set_num_real(model: nn.Module, num_real: int | None) -> int:
    """Tell every ``DualBatchNorm2d`` in ``model`` the next batch's real count; returns how many."""
    count = 0
    for m in dual_bn_modules(model):
        m.num_real = None if num_real is None else int(num_real)
        count += 1
    return count


def set_eval_domain(model: nn.Module, domain: str) -> None:
    """Which branch eval uses in every ``DualBatchNorm2d``: ``real``, ``synthetic`` or ``split``."""
    if domain not in EVAL_DOMAINS:
        raise ValueError(f"eval domain must be one of {EVAL_DOMAINS}, got {domain!r}")
    for m in dual_bn_modules(model):
        m.eval_domain = domain


@contextlib.contextmanager
def dual_bn_split(model: nn.Module, num_real: int):
    """``with dual_bn_split(model, k): model(x)`` — rows [0, k) of ``x`` are real."""
    previous = [(m, m.num_real) for m in dual_bn_modules(model)]
    set_num_real(model, num_real)
    try:
        yield model
    finally:
        for m, k in previous:
            m.num_real = k


def num_real_from_mask(is_real: torch.Tensor) -> int:
    """The real count of a batch from its domain mask (True / 1 = real), checking reals come first."""
    mask = is_real.bool().flatten()
    k = int(mask.sum())
    if not bool(mask[:k].all()):
        raise ValueError("the batch's real samples must come first (DualBatchNorm2d splits at k); "
                         "sort the batch by domain, as DualDomainLoader does")
    return k


def real_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` without the synthetic branches: loads into the unconverted model."""
    drop = {f"{name}.{SYN_PREFIX}{key}" if name else f"{SYN_PREFIX}{key}"
            for name, m in model.named_modules() if isinstance(m, DualBatchNorm2d)
            for key in BRANCH_NAMES}
    return {k: v for k, v in model.state_dict().items() if k not in drop}
