"""Feature diagnostics on small matrices computed by hand, and a closed form."""
import math

import numpy as np
import pytest

from engine.eval import feature_stats as fs


def test_sparsity_counts_entries_below_threshold():
    x = np.array([[1.0, 0.0, 5e-6, -2e-6], [0.3, 0.2, 1e-4, 0.0]])
    assert fs.sparsity(x) == pytest.approx(100 * 4 / 8)


def test_intra_class_distance_by_hand():
    x = np.array([[0, 0], [3, 4], [0, 8],      # class 0: pairs 5, 8, 5 -> 6
                  [1, 1], [1, 2],              # class 1: 1
                  [9, 9]], float)              # class 2: single sample, ignored
    labels = np.array([0, 0, 0, 1, 1, 2])
    assert fs.intra_class_distance(x, labels) == pytest.approx((6 + 1) / 2)


def test_redundancy_by_hand():
    # dims: a, b = 2a (ρ=1), c = -a (ρ=-1), d uncorrelated with a (ρ=0), e constant
    a = np.array([1.0, 2.0, 3.0, 4.0])
    d = np.array([1.0, -1.0, -1.0, 1.0])  # centred a = [-1.5,-.5,.5,1.5] . d = 0
    x = np.stack([a, 2 * a, -a, d, np.full(4, 7.0)], axis=1)
    # |ρ| matrix over live dims a, b, c, d: 3x3 block of ones + d's diagonal -> 9 + 1 = 10
    assert fs.redundancy(x) == pytest.approx(10 / 25)


def test_coding_length_of_orthogonal_features_has_a_closed_form():
    # N = k*d rows: each standard basis vector k times -> XᵀX = k I, so
    # R = ½ log det(I + d/(N ε²) k I) = ½ d log(1 + 1/ε²) = ½ d log 3 for ε² = 0.5
    d, k = 6, 4
    x = np.tile(np.eye(d), (k, 1))
    assert fs.coding_length(x) == pytest.approx(0.5 * d * math.log(3))
    rot = np.linalg.qr(np.random.default_rng(0).standard_normal((d, d)))[0]
    assert fs.coding_length(x @ rot) == pytest.approx(0.5 * d * math.log(3))  # rotation-invariant


def test_diagnostics_normalise_rows_first():
    x = np.array([[3.0, 4.0], [0.0, 2.0], [1e-7, 1.0]])
    out = fs.feature_diagnostics(x, np.array([0, 0, 1]))
    # normalised rows: (.6, .8), (0, 1), (~1e-7, 1): 2 of 6 entries below 1e-5
    assert out["sparsity_pct"] == pytest.approx(100 * 2 / 6)
    assert out["intra_class_l2"] == pytest.approx(math.hypot(0.6, 0.2))
    assert out["dim"] == 2 and out["num_samples"] == 3 and out["normalized"] == "l2"


def test_block_accumulation_matches_numpy_references(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 7)).astype(np.float32) @ rng.standard_normal((7, 7)).astype(
        np.float32)
    monkeypatch.setattr(fs, "CHUNK", 6)  # several blocks
    assert fs.redundancy(x) == pytest.approx(np.abs(np.corrcoef(x.T.astype(np.float64))).mean())
    xd = x.astype(np.float64)
    ref = 0.5 * np.linalg.slogdet(np.eye(7) + 7 / (50 * 0.5) * xd.T @ xd)[1]
    assert fs.coding_length(x) == pytest.approx(ref)
