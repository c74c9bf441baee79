"""Accuracy gap and effective robustness against a hand-computed logit-space fit."""
import math

import pytest

from engine.eval import robustness as rb


def _logit(p):
    return math.log(p / (1 - p))


def test_er_and_ag_against_a_hand_computed_logit_fit(tmp_path):
    # baselines exactly on logit(ood) = 2 * logit(id) - 1 (percent accuracies)
    ids = [50.0, 60.0, 70.0, 80.0]
    oods = [100 / (1 + math.exp(-(2 * _logit(a / 100) - 1))) for a in ids]
    csv = tmp_path / "baselines.csv"
    csv.write_text("model,shift,id_top1,ood_top1\n" + "".join(
        f"m{i},ImageNet-R,{a},{b}\n" for i, (a, b) in enumerate(zip(ids, oods))))
    base = rb.read_baselines(str(csv))
    assert list(base) == ["imagenet-r"] and len(base["imagenet-r"]) == 4
    fit = rb.fit_logit_line(ids, oods)
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(-1.0)
    # our model: ID 75 %, OOD 40 %; β(75) = sigmoid(2 logit(.75) - 1) by hand
    expected = 100 / (1 + math.exp(-(2 * math.log(3) - 1)))
    out = rb.robustness(75.0, {"imagenet-r": 40.0, "imagenet-sketch": 30.0}, base,
                        "imagenet-val")
    r = out["imagenet-r"]
    assert r["ag"] == pytest.approx(-35.0)
    assert r["expected_ood_top1"] == pytest.approx(expected)
    assert r["er"] == pytest.approx(40.0 - expected)
    assert r["fit"]["slope"] == pytest.approx(2.0) and r["fit"]["n_points"] == 4
    assert out["imagenet-sketch"]["ag"] == pytest.approx(-45.0)
    assert "er" not in out["imagenet-sketch"] and "no baseline rows" in \
        out["imagenet-sketch"]["er_note"]


def test_noisy_fit_is_least_squares_in_logit_space():
    ids, oods = [40.0, 60.0, 80.0], [20.0, 35.0, 45.0]
    x = [_logit(a / 100) for a in ids]
    y = [_logit(b / 100) for b in oods]
    mx, my = sum(x) / 3, sum(y) / 3
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    fit = rb.fit_logit_line(ids, oods)
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(my - slope * mx)


def test_fewer_than_two_points_is_an_error(tmp_path):
    with pytest.raises(rb.BaselineError, match="at least 2 baseline points"):
        rb.fit_logit_line([70.0], [40.0])
    with pytest.raises(rb.BaselineError, match="same ID accuracy"):
        rb.fit_logit_line([70.0, 70.0], [40.0, 41.0])
    csv = tmp_path / "b.csv"
    csv.write_text("shift,id_top1,ood_top1\nimagenet-r,70,40\n")
    with pytest.raises(rb.BaselineError, match="at least 2"):
        rb.robustness(75.0, {"imagenet-r": 40.0}, rb.read_baselines(str(csv)), "imagenet-val")


def test_bad_baseline_csv(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("shift,id\nimagenet-r,70\n")
    with pytest.raises(rb.BaselineError, match="missing column.*id_top1"):
        rb.read_baselines(str(bad))
    bad.write_text("shift,id_top1,ood_top1\nimagenet-r,seventy,40\n")
    with pytest.raises(rb.BaselineError, match=":2: id_top1/ood_top1 must be numbers"):
        rb.read_baselines(str(bad))
    with pytest.raises(rb.BaselineError, match="not found"):
        rb.read_baselines(str(tmp_path / "missing.csv"))
