"""TensorSource (batches from memory) keeps the loader contract the loop relies on."""
import pytest
import torch

from engine.train.data import TensorSource, split_batch


def domains(n_real=24, n_syn=40):
    real = (torch.arange(n_real).float().view(-1, 1, 1, 1).expand(-1, 3, 4, 4).clone(),
            torch.arange(n_real) % 4)
    syn = (-1 - torch.arange(n_syn).float().view(-1, 1, 1, 1).expand(-1, 3, 4, 4).clone(),
           torch.arange(n_syn) % 4)
    return real, syn


def ids(batch):
    """Row ids: real rows hold their index, synthetic rows -1 - index."""
    return batch[0][:, 0, 0, 0].long().tolist()


@pytest.mark.parametrize("b,p,k", [(8, 0.5, 4), (7, 0.5, 3), (10, 0.25, 8), (6, 1.0, 0),
                                   (6, 0.0, 6)])
def test_split_is_round_b_times_p(b, p, k):
    assert split_batch(b, p) == (k, b - k)


def test_batches_are_real_first_with_the_exact_split():
    real, syn = domains()
    src = TensorSource(real, syn, batch_size=8, synthetic_share=0.25, seed=3)
    assert len(src) == 24 // 6
    seen = []
    for batch in src:
        images, labels, num_real = batch
        rows = ids(batch)
        assert num_real == 6 and all(r >= 0 for r in rows[:6]) and all(r < 0 for r in rows[6:])
        assert labels.tolist() == [(r if r >= 0 else -1 - r) % 4 for r in rows]
        seen += rows[:6]
    assert sorted(seen) == list(range(24))  # an epoch passes over the real rows once


def test_order_depends_on_seed_and_epoch_only():
    real, syn = domains()
    a = TensorSource(real, syn, batch_size=8, synthetic_share=0.5, seed=1)
    b = TensorSource(real, syn, batch_size=8, synthetic_share=0.5, seed=1)
    a.set_epoch(2), b.set_epoch(2)
    assert [ids(x) for x in a] == [ids(x) for x in b]
    b.set_epoch(3)
    assert [ids(x) for x in a] != [ids(x) for x in b]


def test_start_batch_continues_the_epoch():
    real, syn = domains()
    src = TensorSource(real, syn, batch_size=8, synthetic_share=0.5)
    src.set_epoch(1)
    full = [ids(x) for x in src]
    src.set_epoch(1, start_batch=2)
    assert [ids(x) for x in src] == full[2:]


def test_ranks_take_disjoint_slices_of_every_global_batch():
    real, syn = domains()
    one = TensorSource(real, syn, batch_size=8, synthetic_share=0.5, world_size=1)
    two = [TensorSource(real, syn, batch_size=4, synthetic_share=0.5, rank=r, world_size=2)
           for r in range(2)]
    assert len(two[0]) == len(two[1]) == 24 // 4
    r0, r1 = ([ids(x) for x in t] for t in two)
    for a, b in zip(r0, r1):
        assert not set(a) & set(b)
        for rows in (a, b):  # each rank's batch is real-first
            assert all(r >= 0 for r in rows[:2]) and all(r < 0 for r in rows[2:])
    real_rows = sorted(r for batch in r0 + r1 for r in batch if r >= 0)
    assert real_rows == list(range(24))
    assert len(one) == 24 // 4


def test_resize_for_progressive_resolution():
    real, syn = domains()
    src = TensorSource(real, syn, batch_size=4, synthetic_share=0.5)
    src.set_image_size(8)
    assert next(iter(src))[0].shape == (4, 3, 8, 8)


def test_too_little_data_is_an_error():
    real, syn = domains(n_real=3)
    with pytest.raises(ValueError, match="make no batch"):
        TensorSource(real, syn, batch_size=8, synthetic_share=0.5)
