"""On-device augmentations: batched RandAugment equals per-image torchvision ops; mixup never
crosses domains; multi-crop keeps real crops first and its crops are a pure function of
(seed, epoch, sample)."""
import numpy as np
import pytest
import torch

from engine.train.augment import (BatchRandAugment, DomainMixup, MultiCrop, keyed_draws,
                                  multicrop_base_view, multicrop_keys, normalize, to_uint8)


def images(n=12, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return normalize(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g))


def test_uint8_round_trip():
    x = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    assert torch.equal(to_uint8(normalize(x)), x)


def test_batched_randaugment_equals_each_image_alone():
    ra = BatchRandAugment(num_ops=2, magnitude=9)
    x = images()
    torch.manual_seed(5)
    plan = ra.plan(len(x), 24, 24)
    torch.manual_seed(5)
    out = ra(x)
    expected = []
    for i in range(len(x)):
        xi = to_uint8(x[i:i + 1])
        for layer in plan:
            name, mag = layer[i]
            xi = ra.apply_op(xi, name, mag)  # torchvision's own op on one image
        expected.append(normalize(xi))
    torch.testing.assert_close(out, torch.cat(expected))
    names = {op for layer in plan for op, _ in layer}
    assert len(names) > 3  # the batch really drew different ops per image


def test_randaugment_magnitudes_follow_torchvision_table():
    ra = BatchRandAugment(num_ops=1, magnitude=9)
    torch.manual_seed(0)
    plan = ra.plan(400, 31, 31)[0]
    mags = {}
    for name, m in plan:
        mags.setdefault(name, set()).add(round(m, 6))
    assert mags["Rotate"] == {9.0, -9.0}          # linspace(0, 30, 31)[9]
    assert mags["Posterize"] == {7.0}             # 8 - round(9 / 7.5)
    assert mags["Identity"] == {0.0}


def test_mixup_stays_within_each_domain():
    n, k = 8, 4
    x = torch.cat([torch.zeros(k, 3, 8, 8), torch.ones(n - k, 3, 8, 8)])
    labels = torch.tensor([0, 1, 0, 1, 2, 3, 2, 3])
    mix = DomainMixup(num_classes=4, mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0,
                      switch_prob=0.5, label_smoothing=0.1)
    for seed in range(6):
        import numpy as np

        np.random.seed(seed)
        out, targets = mix(x, labels, k)
        assert torch.equal(out[:k], x[:k]) and torch.equal(out[k:], x[k:])  # 0s and 1s only
        assert targets.shape == (n, 4)
        torch.testing.assert_close(targets.sum(1), torch.ones(n))
        assert targets[:k, 2:].max() <= 0.1 / 4 + 1e-6  # real rows: only real classes (+smoothing)
        assert targets[k:, :2].max() <= 0.1 / 4 + 1e-6


def test_mixup_mixes_pairs_and_leaves_an_odd_row_alone():
    import numpy as np

    np.random.seed(0)
    x = torch.arange(5).float().view(5, 1, 1, 1).expand(5, 3, 4, 4).clone()
    labels = torch.tensor([0, 1, 2, 3, 4])
    mix = DomainMixup(5, mixup_alpha=1.0, cutmix_alpha=0.0, prob=1.0, switch_prob=0.0,
                      label_smoothing=0.0)
    out, targets = mix(x, labels, 3)
    assert torch.equal(out[2], x[2]) and targets[2].tolist() == [0, 0, 1, 0, 0]
    lam = targets[0, 0].item()
    assert 0 < lam < 1
    torch.testing.assert_close(out[0], lam * x[0] + (1 - lam) * x[1])


def keys_of(ids, seed=0, epoch=0, source=0):
    return multicrop_keys(seed, epoch, np.full(len(ids), source), np.asarray(ids))


def test_multicrop_layout():
    mc = MultiCrop(local_crops=8, global_size=32, local_size=16)
    x = images(n=6, size=40)
    labels = torch.arange(6)
    (g, gl, gk), (loc, ll, lk) = mc(x, labels, 2, keys_of(range(6)))
    assert g.shape == (6, 3, 32, 32) and gk == 2 and torch.equal(gl, labels)
    assert loc.shape == (48, 3, 16, 16) and lk == 16
    assert ll[:16].tolist() == [0, 1] * 8              # real images' crops first
    assert sorted(set(ll[16:].tolist())) == [2, 3, 4, 5]
    assert torch.isfinite(loc).all()


def test_resized_crop_samples_the_box():
    from engine.train.augment import resized_crops

    # a horizontal ramp: pixel column c holds c, so bilinear sampling is exact inside the image
    x = torch.arange(16.0).view(1, 1, 1, 16).expand(2, 3, 16, 16).contiguous()
    boxes = torch.tensor([[4.0, 2.0, 12.0, 10.0], [0.0, 0.0, 16.0, 16.0]])
    out = resized_crops(x, torch.tensor([0, 1]), boxes, 8)
    torch.testing.assert_close(out[0, 0, 3], torch.arange(4.0, 12.0))
    torch.testing.assert_close(out[1, 0, 3, 1:-1], torch.arange(1.0, 7.0) * 2 + 0.5)


def test_keyed_boxes_have_the_asked_area_and_fit():
    b, flip, photo = keyed_draws(keys_of(range(500)), 1, 2, 40, 60, (0.05, 0.4))
    assert b.shape == (1000, 4) and flip.shape == (1000,) and photo.shape == (1000, 7)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert (b[:, :2] >= 0).all() and (b[:, 2] <= 60).all() and (b[:, 3] <= 40).all()
    share = w * h / (40 * 60)
    assert share.min() >= 0.04 and share.max() <= 0.42  # integer sides: rounding
    assert 0.4 < flip.float().mean() < 0.6 and 0 <= photo.min() and photo.max() < 1
    assert len({tuple(r) for r in b.tolist()}) > 900  # every crop draws its own window


def test_multicrop_is_a_function_of_seed_epoch_and_sample():
    mc = MultiCrop(local_crops=3, global_size=16, local_size=8)
    x = images(n=6, size=40)
    labels = torch.arange(6)
    ids = np.arange(100, 106)
    torch.manual_seed(0)
    a = mc(x, labels, 3, keys_of(ids))
    torch.manual_seed(1)  # the global generator is not used
    b = mc(x, labels, 3, keys_of(ids))
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    # a sample keeps its crops at another position in a batch of other rows
    perm = [4, 0, 5, 1, 3, 2]
    c = mc(x[perm], labels[perm], 2, keys_of(ids[perm]))
    torch.testing.assert_close(c[0][0], a[0][0][perm], rtol=0, atol=1e-6)

    def local_crops(view):  # (label, crop index) -> crop; a row's crops come in crop order
        seen, out = {}, {}
        for img, lab in zip(view[0], view[1].tolist()):
            seen[lab] = seen.get(lab, 0) + 1
            out[(lab, seen[lab])] = img
        return out
    la, lc = local_crops(a[1]), local_crops(c[1])
    assert la.keys() == lc.keys() and len(la) == 18
    for k in la:
        torch.testing.assert_close(la[k], lc[k], rtol=0, atol=1e-6)
    # another epoch or seed draws other crops
    for other in (keys_of(ids, epoch=1), keys_of(ids, seed=1), keys_of(ids, source=1)):
        d = mc(x, labels, 3, other)
        assert not torch.equal(d[0][0], a[0][0])


def test_base_view_keeps_the_smallest_global_crop_at_its_size():
    assert multicrop_base_view(224, (0.4, 1.0)) == 356  # 224 / sqrt(0.4) = 354.2
    assert multicrop_base_view(224, (1.0, 1.0)) == 224
    assert multicrop_base_view(224, (0.4, 1.0), at_least=400) == 400


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_photometric_probabilities(p):
    from engine.train.augment import dino_photometric

    x = torch.rand(64, 3, 8, 8)
    torch.manual_seed(0)
    out = dino_photometric(x, blur_p=p)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_photometric_draws_given_per_image():
    from engine.train.augment import dino_photometric

    x = torch.rand(4, 3, 8, 8)
    # no jitter, no grayscale, no blur: the identity; all on with factor 1 and tiny sigma too
    off = torch.tensor([[0.9, 0.5, 0.5, 0.5, 0.9, 0.0, 0.9]]).repeat(4, 1)
    torch.testing.assert_close(dino_photometric(x, 0.5, off), x)
    gray = off.clone()
    gray[:, 4] = 0.0  # grayscale on
    g = dino_photometric(x, 0.5, gray)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close(g, (x * w).sum(1, keepdim=True).expand_as(x))
