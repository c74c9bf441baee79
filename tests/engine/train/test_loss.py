"""The dual-domain loss of seed 003 §3.3 against values computed by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from engine.train.loss import DomainMeter, dual_domain_loss, multi_view_loss, per_sample_ce


def _ce(logits_row, label, smoothing=0.0):
    """Cross-entropy of one row with plain Python math."""
    m = max(logits_row)
    lse = m + math.log(sum(math.exp(v - m) for v in logits_row))
    logp = [v - lse for v in logits_row]
    c = len(logits_row)
    return -(1 - smoothing) * logp[label] - smoothing * sum(logp) / c


LOGITS = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.0], [1.5, -0.5, 0.25], [-1.0, 0.0, 3.0]]
LABELS = [0, 2, 1, 2]


def test_loss_equals_hand_computed_value():
    # rows 0-1 real, rows 2-3 synthetic, lambda 0.6: (ce0 + ce1 + 0.6 (ce2 + ce3)) / 4
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    ce = [_ce(r, y) for r, y in zip(LOGITS, LABELS)]
    expected = (ce[0] + ce[1] + 0.6 * (ce[2] + ce[3])) / 4
    got = dual_domain_loss(logits, labels, num_real=2, synthetic_weight=0.6)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # a concrete number, so a change of normalisation cannot pass unnoticed
    assert expected == pytest.approx(
        (0.241311 + 1.551445 + 0.6 * (2.351952 + 0.065884)) / 4, abs=1e-5)


def test_label_smoothing_by_hand():
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    ce = [_ce(r, y, 0.1) for r, y in zip(LOGITS, LABELS)]
    got = dual_domain_loss(logits, labels, num_real=3, synthetic_weight=0.25, label_smoothing=0.1)
    assert got.item() == pytest.approx((ce[0] + ce[1] + ce[2] + 0.25 * ce[3]) / 4, rel=1e-6)


@pytest.mark.parametrize("num_real,lam", [(4, 0.6), (2, 1.0)])
def test_plain_cross_entropy_without_synthetic_rows_or_with_lambda_one(num_real, lam):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=g)
    labels = torch.tensor(LABELS)
    got = dual_domain_loss(logits, labels, num_real, lam, label_smoothing=0.1)
    torch.testing.assert_close(got, F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_all_synthetic_is_lambda_times_cross_entropy():
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    got = dual_domain_loss(logits, labels, 0, 0.6)
    torch.testing.assert_close(got, 0.6 * F.cross_entropy(logits, labels))


def test_soft_targets_equal_hard_targets_when_one_hot():
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    soft = F.one_hot(labels, 3).float()
    torch.testing.assert_close(per_sample_ce(logits, soft), per_sample_ce(logits, labels))


def test_gradient_weights_real_and_synthetic_rows():
    logits = torch.tensor(LOGITS, requires_grad=True)
    dual_domain_loss(logits, torch.tensor(LABELS), 2, 0.5).backward()
    full = torch.tensor(LOGITS, requires_grad=True)
    F.cross_entropy(full, torch.tensor(LABELS), reduction="none").sum().backward()
    torch.testing.assert_close(logits.grad[:2], full.grad[:2] / 4)
    torch.testing.assert_close(logits.grad[2:], 0.5 * full.grad[2:] / 4)


def test_multi_view_loss_normalises_by_all_crops():
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    ce = [_ce(r, y) for r, y in zip(LOGITS, LABELS)]
    # view 1: rows 0,1 (1 real), view 2: rows 2,3 (both real)
    out = multi_view_loss([(logits[:2], labels[:2], 1), (logits[2:], labels[2:], 2)], 0.6, 0.0)
    assert out.loss.item() == pytest.approx((ce[0] + 0.6 * ce[1] + ce[2] + ce[3]) / 4, rel=1e-6)
    one = multi_view_loss([(logits, labels, 2)], 0.6, 0.0).loss
    torch.testing.assert_close(one, dual_domain_loss(logits, labels, 2, 0.6))


def test_domain_meter_reports_each_domain():
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    ce = [_ce(r, y) for r, y in zip(LOGITS, LABELS)]
    meter = DomainMeter(synthetic_weight=0.6)
    meter.update(per_sample_ce(logits, labels), logits, labels, 2)
    m = meter.compute()
    # predictions: argmax rows = 0, 1, 0, 2 -> real: [hit, miss], synthetic: [miss, hit]
    assert m["loss_real"] == pytest.approx((ce[0] + ce[1]) / 2, rel=1e-6)
    assert m["loss_syn"] == pytest.approx((ce[2] + ce[3]) / 2, rel=1e-6)
    assert (m["acc_real"], m["acc_syn"], m["acc"], m["rows"]) == (0.5, 0.5, 0.5, 4)
    assert m["objective"] == pytest.approx((ce[0] + ce[1] + 0.6 * (ce[2] + ce[3])) / 4, rel=1e-6)
    meter.reset()
    meter.update(per_sample_ce(logits, labels), logits, labels, 4)
    assert meter.compute()["loss_syn"] is None


def test_num_real_out_of_range_is_a_bug():
    with pytest.raises(ValueError):
        dual_domain_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 3, 0.6)
