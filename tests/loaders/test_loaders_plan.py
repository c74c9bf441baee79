"""Row plans: exact split, real first, epochs, synthetic walk, determinism, ranks (pure numpy)."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from loaders.config import synthetic_rows
from loaders.errors import LoaderConfigError
from loaders.plan import DualPlan, SequentialPlan, UnionPlan, permutation


class FakeSource:
    """What a plan reads of a source: its rows and the page of each row."""

    def __init__(self, n, page_rows=5):
        self.rows = np.arange(n, dtype=np.int64)
        self.pages = self.rows // page_rows

    def __len__(self):
        return len(self.rows)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
R, S = 60, 170
REAL, SYN = FakeSource(R), FakeSource(S)


def dual(batch=8, share=0.5, rank=0, world=1, seed=0, order="random", real=REAL, syn=SYN):
    return DualPlan(real, syn, batch, share, seed, rank, world, order, synthetic_offset=R)


def batches(plan, epoch):
    ep = plan.epoch(epoch)
    return [ep.batch(b) for b in range(len(ep))], ep.num_real


@pytest.mark.parametrize("batch,share", [(8, 0.5), (10, 0.3), (7, 0.5), (9, 0.25)])
def test_every_batch_has_the_exact_split_real_first(batch, share):
    n_syn = math.floor(batch * share + 0.5)  # round(B*p), half up
    plan = dual(batch, share)
    for epoch in range(3):
        bs, num_real = batches(plan, epoch)
        assert len(bs) == R // (batch - n_syn)
        for b, k in zip(bs, num_real):
            assert len(b) == batch and k == batch - n_syn
            assert (b[:k] < R).all() and (b[k:] >= R).all()


def test_within_an_epoch_every_real_row_appears_once():
    plan = dual(batch=8)  # 4 real rows per batch, 60 real rows: 15 batches, none dropped
    for epoch in range(3):
        bs, k = batches(plan, epoch)
        real = np.concatenate([b[:n] for b, n in zip(bs, k)])
        assert sorted(real.tolist()) == list(range(R))


def test_dropped_real_rows_are_fewer_than_one_batch():
    plan = dual(batch=14)  # 7 real per batch: 8 batches, 4 real rows left out
    bs, k = batches(plan, 0)
    real = np.concatenate([b[:n] for b, n in zip(bs, k)])
    assert len(set(real.tolist())) == len(real) == 56


def test_synthetic_rows_are_all_used_before_any_repeats_across_epochs():
    batch, share = 8, 0.5
    plan = dual(batch, share)
    n_syn = synthetic_rows(batch, share)
    needed = math.ceil(S / n_syn)  # batches to see every synthetic row once
    stream = []
    epoch = 0
    while len(stream) < needed * n_syn + S:  # a full cycle and then some
        bs, k = batches(plan, epoch)
        stream += [int(r) - R for b, n in zip(bs, k) for r in b[n:]]
        epoch += 1
    assert epoch > 2  # the synthetic set (170) spans several real epochs (60 synthetic each)
    first = stream[:S]
    assert sorted(first) == list(range(S))  # the first S synthetic rows are a permutation
    assert sorted(stream[S:2 * S]) == list(range(S))  # and so is the next cycle


def test_same_seed_same_batches_different_epoch_or_seed_different_order():
    a, b = dual(seed=3), dual(seed=3)
    for epoch in range(2):
        assert all((x == y).all() for x, y in zip(batches(a, epoch)[0], batches(b, epoch)[0]))
    e0, e1 = batches(a, 0)[0], batches(a, 1)[0]
    assert not all((x == y).all() for x, y in zip(e0, e1))
    other = batches(dual(seed=4), 0)[0]
    assert not all((x == y).all() for x, y in zip(e0, other))


def test_plan_is_the_same_in_another_process_and_hash_seed():
    code = ("import numpy as np, sys; sys.path.insert(0, '.');"
            "from tests.loaders.test_loaders_plan import dual;"
            "p = dual(seed=5).epoch(2); print(p.rows.tolist())")
    outs = []
    for hs in ("0", "2"):
        env = {"PYTHONHASHSEED": hs, "PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT}
        outs.append(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   check=True, env=env, cwd=ROOT).stdout)
    assert outs[0] == outs[1] == str(dual(seed=5).epoch(2).rows.tolist()) + "\n"


@pytest.mark.parametrize("mode", ["dual", "union"])
def test_two_ranks_get_disjoint_rows_and_equal_batch_counts(mode):
    def plan(rank):
        if mode == "dual":
            return dual(batch=6, rank=rank, world=2)
        return UnionPlan([REAL, SYN], 6, 0, rank, 2, offsets=[0, R])
    p0, p1 = plan(0), plan(1)
    assert len(p0) == len(p1)
    for epoch in range(2):
        e0, e1 = p0.epoch(epoch), p1.epoch(epoch)
        assert len(e0) == len(e1)
        r0, r1 = set(e0.rows.tolist()), set(e1.rows.tolist())
        assert not r0 & r1 and len(r0) == len(e0.rows) and len(r1) == len(e1.rows)
        if mode == "dual":  # together the ranks cover the whole real set (60 = 10 steps * 2 * 3)
            real = [r for r in r0 | r1 if r < R]
            assert sorted(real) == list(range(R))


def test_one_rank_of_two_sees_half_the_single_rank_stream():
    single, r0, r1 = dual(batch=6), dual(batch=6, world=2), dual(batch=6, rank=1, world=2)
    assert len(r0) == len(single) // 2
    # same permutation, dealt out step by step: step t of rank k = rows of the combined stream
    e, a, b = single.epoch(0), r0.epoch(0), r1.epoch(0)
    real_all = np.concatenate([e.batch(i)[:3] for i in range(len(e))])
    real_0 = np.concatenate([a.batch(i)[:3] for i in range(len(a))])
    real_1 = np.concatenate([b.batch(i)[:3] for i in range(len(b))])
    assert (real_all.reshape(-1, 2, 3)[:, 0].ravel() == real_0).all()
    assert (real_all.reshape(-1, 2, 3)[:, 1].ravel() == real_1).all()


def test_share_zero_and_one_give_real_only_and_synthetic_only():
    real_only = DualPlan(REAL, None, 8, 0.0)
    e = real_only.epoch(0)
    assert (e.num_real == 8).all() and (e.rows < R).all() and len(e) == R // 8
    assert len(set(e.rows.tolist())) == 56
    syn_only = DualPlan(None, SYN, 10, 1.0, synthetic_offset=R)
    e = syn_only.epoch(0)
    assert (e.num_real == 0).all() and (e.rows >= R).all() and len(e) == S // 10
    assert sorted((e.rows - R).tolist()) == sorted(set((e.rows - R).tolist()))


def test_batch_that_cannot_hold_the_split_is_an_error():
    with pytest.raises(LoaderConfigError, match="cannot hold"):
        dual(batch=1, share=0.5)
    with pytest.raises(LoaderConfigError, match="cannot hold"):
        dual(batch=4, share=0.1)  # round(0.4) = 0 synthetic rows
    with pytest.raises(LoaderConfigError, match="fewer than one batch"):
        dual(batch=200)


def test_union_pools_both_domains_with_real_rows_first():
    plan = UnionPlan([REAL, SYN], 10, seed=1, offsets=[0, R])
    e = plan.epoch(0)
    assert len(e) == (R + S) // 10
    seen = []
    for b in range(len(e)):
        rows, k = e.batch(b), int(e.num_real[b])
        assert (rows[:k] < R).all() and (rows[k:] >= R).all()
        seen += rows.tolist()
    assert len(set(seen)) == len(seen) == 230  # each pooled row at most once per epoch
    assert len(set(e.num_real.tolist())) > 1  # the mix varies from batch to batch
    assert 0.2 < e.num_real.sum() / len(seen) < 0.33  # ~ R / (R + S) = 0.26


def test_sequential_plan_covers_every_row_once_split_over_ranks():
    src = FakeSource(23)
    one = SequentialPlan(src, 5).epoch(0)
    assert one.rows.tolist() == list(range(23)) and one.sizes.tolist() == [5, 5, 5, 5, 3]
    parts = [SequentialPlan(src, 5, rank=r, world=3).epoch(0).rows.tolist() for r in range(3)]
    assert sum(parts, []) == list(range(23))


def test_quasi_random_is_a_page_local_permutation():
    pages = np.repeat(np.arange(40), 10)  # 400 rows, 10 per page
    perm = permutation(400, seed=0, tag=1, index=0, order="quasi_random", pages=pages, window=4)
    assert sorted(perm.tolist()) == list(range(400))
    # every 40 consecutive rows (one window of 4 pages) come from exactly 4 pages
    for w in range(10):
        assert len(set(pages[perm[w * 40:(w + 1) * 40]].tolist())) == 4
    assert not (perm == np.arange(400)).all()


def test_skip_resumes_inside_an_epoch():
    e = dual().epoch(1)
    s = e.skip(4)
    assert len(s) == len(e) - 4 and (s.batch(0) == e.batch(4)).all()
