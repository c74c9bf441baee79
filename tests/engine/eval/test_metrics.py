"""Top-k, class restriction and pooling, long-tail splits: constructed cases, hand-computed."""
import numpy as np
import pytest

from engine.eval import metrics
from engine.catalog import imagenet_wnids
from engine.eval.labels import LabelSpaceError, subset_labels


def test_topk_on_fixed_logits():
    logits = np.array([[0.1, 0.9, 0.0, 0.5],    # ranking 1, 3, 0, 2
                       [0.8, 0.1, 0.7, 0.0],    # ranking 0, 2, 1, 3
                       [0.0, 0.1, 0.2, 0.3]])   # ranking 3, 2, 1, 0
    targets = np.array([1, 2, 0])
    assert metrics.topk_correct(logits, targets, 1).tolist() == [True, False, False]
    assert metrics.topk_correct(logits, targets, 2).tolist() == [True, True, False]
    assert metrics.topk_correct(logits, targets, 4).tolist() == [True, True, True]
    assert metrics.accuracy(metrics.topk_correct(logits, targets, 2)) == pytest.approx(200 / 3)


def test_restriction_to_a_hand_made_three_class_subset():
    # 5-way model over labels 0..4 with --classes naming 3 of them; the set has 4 classes.
    space = metrics.LabelSpace(outputs=(0, 1, 2, 3, 4), allowed=frozenset({1, 3, 4}))
    groups = [(0,), (1,), (3,), (4,)]
    targets = np.array([0, 1, 2, 3, 1])         # set classes (labels 0, 1, 3, 4, 1)
    logits = np.array([[9, 0, 0, 0, 0],          # label 0: not evaluated (outside subset)
                       [0, 1, 9, 0, 0],          # label 1: label 2 wins unrestricted, 1 wins here
                       [0, 0, 0, 2, 5],          # label 3: 4 wins -> wrong
                       [9, 0, 0, 0, 1],          # label 4: 0 masked, 4 wins -> right
                       [0, 0, 0, 3, 2]], float)  # label 1: 3 wins -> wrong
    summary, details = metrics.classify("toy", logits, groups, targets, space, ks=(1, 2))
    assert summary["num_evaluated"] == 4 and summary["classes_evaluated"] == 3
    assert summary["restricted"] and "restricted to the 3 classes" in summary["restriction"]
    assert details["correct"].tolist() == [True, False, True, False]
    assert details["labels"].tolist() == [1, 3, 4, 1]
    assert summary["top1"] == pytest.approx(50.0)
    # top-2 among {1, 3, 4}: row1 (1 first) ok; row2 3 second ok; row3 ok; row4 1 third -> no
    assert summary["top2"] == pytest.approx(75.0)


def test_compact_head_maps_outputs_to_imagenet_labels():
    space = metrics.LabelSpace(outputs=(10, 20, 30))   # a 3-way head naming labels 10, 20, 30
    groups = [(l,) for l in range(1000)]
    targets = np.array([20, 30, 5])
    logits = np.array([[0, 1, 0], [0, 1, 0], [1, 0, 0]], float)
    summary, details = metrics.classify("toy", logits, groups, targets, space)
    assert summary["num_evaluated"] == 2 and not summary["restricted"]
    assert details["correct"].tolist() == [True, False]
    assert summary["top_k_capped_at"] == 3 and summary["top5"] == 100.0


def test_grouped_classes_pool_the_max_logit():
    # ObjectNet-like: class A = labels {0, 1}, class B = {2}; label 3 exists only in the model
    space = metrics.LabelSpace(outputs=(0, 1, 2, 3))
    groups = [(0, 1), (2,)]
    logits = np.array([[0, 5, 4, 9], [3, 0, 4, 9], [1, 2, 0, 9]], float)
    targets = np.array([0, 1, 0])
    summary, details = metrics.classify("toy", logits, groups, targets, space)
    assert details["correct"].tolist() == [True, True, True]  # label 3's 9 is masked
    assert "max logit" in summary["restriction"] and details["labels"] is None


def test_no_shared_class_and_mismatched_heads_are_errors():
    space = metrics.LabelSpace(outputs=(0, 1))
    with pytest.raises(LabelSpaceError, match="none of its 2 classes"):
        metrics.restrict("toy", [(5,), (6,)], np.array([0, 1]), space)
    with pytest.raises(LabelSpaceError, match="100 outputs.*--classes"):
        metrics.label_space(100)
    with pytest.raises(LabelSpaceError, match="100 outputs but --classes imagenet-r has 200"):
        metrics.label_space(100, "imagenet-r")
    assert metrics.label_space(200, "imagenet-r").outputs == subset_labels("imagenet-r")


def test_imagenet_r_mask_shares_19_classes_with_imagenet100():
    """Seed 004 App. G: ImageNet-R has 200 classes, 19 of them in ImageNet-100."""
    r = subset_labels("imagenet-r")
    assert len(r) == 200 and len(subset_labels("imagenet-a")) == 200
    space = metrics.label_space(1000, "imagenet100")
    groups = [(l,) for l in r]
    res = metrics.restrict("imagenet-r", groups, np.arange(200), space)
    assert res.num_classes == 19 and res.keep.sum() == 19
    assert imagenet_wnids()[r[0]] == "n01443537"  # goldfish: the first R class


def test_shot_splits_follow_seed003_thresholds():
    counts = {0: 801, 1: 800, 2: 300, 3: 299, 4: 1300}
    labels = np.array([0, 1, 2, 3, 4, 4, 7])
    correct = np.array([True, False, True, True, False, True, True])
    s = metrics.shot_accuracy(correct, labels, counts)
    assert s["many"]["num_images"] == 3 and s["many"]["top1"] == pytest.approx(200 / 3)
    assert s["medium"]["num_images"] == 2 and s["medium"]["top1"] == 50.0
    assert s["few"]["num_images"] == 1 and s["few"]["top1"] == 100.0
    assert s["images_without_count"] == 1


def test_mean_over_corruptions():
    parts = {"fog": {"top1": 10.0, "top5": 30.0}, "snow": {"top1": 20.0, "top5": 50.0}}
    assert metrics.mean_over(parts) == {"top1": 15.0, "top5": 40.0}
