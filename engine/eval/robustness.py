"""Accuracy gap and effective robustness (seed 004 §2.2, Eqs. 1-2; Taori et al. 2020).

* ``AG(f, D_test, D') = A(f, D') - A(f, D_test)`` (Eq. 1), in accuracy points.
* ``ER(f, D', D_test) = A(f, D') - β(A(f, D_test))`` (Eq. 2), where β predicts a standard
  model's accuracy on the shifted set D' from its accuracy on D_test. Following Taori et al.,
  β is a linear fit in logit space over baseline models:
  ``logit(ood) = slope · logit(id) + intercept``, ``β(z) = sigmoid(slope · logit(z) + intercept)``
  (accuracies as fractions inside the logit; reported in percent). Accuracies of exactly 0 or
  100 % are clipped to [:data:`CLIP`, 1 - :data:`CLIP`] before the logit.

Baselines come from a CSV the user gives (``--baselines``): one row per (baseline model, shifted
set) with columns ``shift`` (a set name such as ``imagenet-r``), ``id_top1`` and ``ood_top1``
(percent), and optionally ``model``. At least two points with different ID accuracies per
shift are needed for a fit.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np

from engine.errors import UserError

CLIP = 1e-4
REQUIRED_COLUMNS = ("shift", "id_top1", "ood_top1")


class BaselineError(UserError):
    """A baseline CSV that cannot be read or fitted."""


def logit(p_percent):
    p = np.clip(np.asarray(p_percent, dtype=np.float64) / 100.0, CLIP, 1 - CLIP)
    return np.log(p / (1 - p))


def sigmoid_percent(x):
    return 100.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@dataclasses.dataclass(frozen=True)
class LogitFit:
    slope: float
    intercept: float
    n_points: int

    def predict(self, id_top1: float) -> float:
        """β(z): the expected OOD top-1 (percent) of a baseline with ID top-1 ``z`` (percent)."""
        return float(sigmoid_percent(self.slope * logit(id_top1) + self.intercept))

    def describe(self) -> dict:
        return {"space": "logit", "formula": "logit(ood) = slope * logit(id) + intercept",
                "slope": self.slope, "intercept": self.intercept, "n_points": self.n_points}


def fit_logit_line(id_top1, ood_top1, shift: str = "") -> LogitFit:
    """Least-squares line through the baseline points in logit space."""
    x, y = logit(id_top1), logit(ood_top1)
    where = f" for {shift}" if shift else ""
    if len(x) < 2:
        raise BaselineError(f"effective robustness needs at least 2 baseline points{where}, got "
                            f"{len(x)}; add rows to the --baselines CSV")
    if np.ptp(x) == 0:
        raise BaselineError(f"the baseline points{where} all have the same ID accuracy; the "
                            "logit-space line is undefined — add baselines with other accuracies")
    slope, intercept = np.polyfit(x, y, 1)
    return LogitFit(float(slope), float(intercept), len(x))


def accuracy_gap(id_top1: float, ood_top1: float) -> float:
    """Eq. 1: A(f, D') - A(f, D_test)."""
    return float(ood_top1 - id_top1)


def effective_robustness(id_top1: float, ood_top1: float, fit: LogitFit) -> float:
    """Eq. 2: A(f, D') - β(A(f, D_test))."""
    return float(ood_top1 - fit.predict(id_top1))


def read_baselines(path: str) -> dict[str, list[tuple[float, float, str]]]:
    """``{shift: [(id_top1, ood_top1, model), ...]}`` from a baseline CSV."""
    from engine.eval.sets import canonical_name

    if not os.path.isfile(path):
        raise BaselineError(f"baseline CSV not found: {path}")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise BaselineError(f"{path}: missing column(s) {', '.join(missing)} (need "
                                f"{', '.join(REQUIRED_COLUMNS)}, optional model; accuracies in "
                                "percent)")
        out: dict[str, list] = {}
        for n, row in enumerate(reader, 2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                a, b = float(row["id_top1"]), float(row["ood_top1"])
            except ValueError:
                raise BaselineError(f"{path}:{n}: id_top1/ood_top1 must be numbers, got "
                                    f"{row['id_top1']!r}, {row['ood_top1']!r}") from None
            if not (0 <= a <= 100 and 0 <= b <= 100) or math.isnan(a) or math.isnan(b):
                raise BaselineError(f"{path}:{n}: accuracies must be percentages in 0..100")
            out.setdefault(canonical_name(row["shift"]), []).append((a, b, row.get("model", "")))
    return out


def robustness(id_top1: float, shifted: dict[str, float], baselines: dict | None,
               id_set: str) -> dict:
    """AG for every shifted set; ER and the fit where baselines for that shift exist."""
    out = {}
    for shift, ood in shifted.items():
        entry = {"id_set": id_set, "id_top1": id_top1, "ood_top1": ood,
                 "ag": accuracy_gap(id_top1, ood)}
        points = (baselines or {}).get(shift)
        if points:
            fit = fit_logit_line([p[0] for p in points], [p[1] for p in points], shift)
            entry.update(er=effective_robustness(id_top1, ood, fit), fit=fit.describe(),
                         expected_ood_top1=fit.predict(id_top1),
                         baseline_points=[[p[0], p[1], p[2]] for p in points])
        elif baselines is not None:
            entry["er_note"] = f"no baseline rows for shift {shift!r} in the CSV"
        out[shift] = entry
    return out
