"""Linear probe and weighted k-NN: ~100 % on separable features, ~chance on random labels."""
import sys

import numpy as np
import pytest

from engine.eval.transfer import knn_accuracy, knn_predict, linear_probe, tune_c


def _separable(n_per_class, classes=4, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dim)) * 5
    y = np.repeat(np.arange(classes), n_per_class)
    return centers[y] + rng.standard_normal((len(y), dim)) * 0.3, y


def _split(x, y, seed):
    p = np.random.default_rng(seed).permutation(len(y))
    a, b = len(y) // 2, 3 * len(y) // 4
    return (x[p[:a]], y[p[:a]]), (x[p[a:b]], y[p[a:b]]), (x[p[b:]], y[p[b:]])


def test_linear_probe_separable_and_random_labels():
    x, y = _separable(40)
    train, val, test = _split(x, y, 1)
    out = linear_probe(train, val, test, trials=25, seed=0)
    assert out["top1"] == 100.0 and out["search"] == "optuna-tpe" and out["trials"] == 25
    assert 1e-6 <= out["C"] <= 1e5
    rng = np.random.default_rng(2)
    xr = rng.standard_normal((800, 16))
    yr = rng.integers(0, 4, 800)
    out = linear_probe(*_split(xr, yr, 3), trials=5, seed=0)
    assert abs(out["top1"] - 25.0) < 10.0   # chance for 4 classes


def test_optuna_search_is_seeded_and_grid_is_the_fallback(monkeypatch):
    x, y = _separable(20, seed=4)
    train, val, _ = _split(x, y, 5)
    a = tune_c(*train, *val, trials=6, seed=3)
    b = tune_c(*train, *val, trials=6, seed=3)
    assert a["history"] == b["history"] and a["search"] == "optuna-tpe"
    monkeypatch.setitem(sys.modules, "optuna", None)  # "not installed"
    g = tune_c(*train, *val, trials=4, c_min=1e-2, c_max=1e1, seed=3)
    assert g["search"] == "grid"
    assert [h[0] for h in g["history"]] == pytest.approx([1e-2, 1e-1, 1, 10])


def test_knn_separable_random_and_hand_made_votes():
    x, y = _separable(30, seed=6)
    bank, _, query = _split(x, y, 7)
    assert knn_accuracy(bank, query)["top1"] == 100.0
    rng = np.random.default_rng(8)
    xr, yr = rng.standard_normal((1000, 16)), rng.integers(0, 5, 1000)
    assert abs(knn_accuracy((xr[:800], yr[:800]), (xr[800:], yr[800:]))["top1"] - 20) < 10
    # two neighbours of class 0 at cos 0.6, one of class 1 at cos 0.8 (k=3, T=0.07):
    # votes exp(.6/.07)*2 = 10574 < exp(.8/.07) = 92403 -> class 1; with T=10, class 0 wins
    bank_x = np.array([[0.6, 0.8, 0], [0.6, 0, 0.8], [0.8, 0.6, 0], [-1, 0, 0]])
    bank_y = np.array([0, 0, 1, 1])
    q = np.array([[1.0, 0, 0]])
    assert knn_predict(bank_x, bank_y, q, k=3, temperature=0.07).tolist() == [1]
    assert knn_predict(bank_x, bank_y, q, k=3, temperature=10.0).tolist() == [0]
