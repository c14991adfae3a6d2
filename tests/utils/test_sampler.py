"""tapegrad.utils.data samplers: lazy (constant memory for any num_samples), PyTorch's lengths,
errors and distributions (PyTorch's random stream itself can't be matched)."""
import itertools
import tracemalloc

import numpy as np
import pytest

import tapegrad
from tapegrad.utils.data import (BatchSampler, DataLoader, RandomSampler, SequentialSampler, SubsetRandomSampler,
                                 TensorDataset, WeightedRandomSampler)


def _gen(seed):
    return tapegrad.Generator().manual_seed(seed)


def _ds(n):
    return TensorDataset(tapegrad.arange(n))


def test_random_sampler_with_replacement_is_lazy():
    """Issue 11: num_samples=1e10 used to allocate 74.5 GiB."""
    tracemalloc.start()
    try:
        s = RandomSampler(range(10), replacement=True, num_samples=int(1e10))
        head = list(itertools.islice(iter(s), 1000))
        loader = DataLoader(_ds(10), batch_size=64, sampler=s)
        (y,) = next(iter(loader))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(s) == 10 ** 10 and len(loader) == -(-10 ** 10 // 64)
    assert len(head) == 1000 and set(head) <= set(range(10)) and len(set(head)) == 10
    assert y.shape == (64,) and set(y.tolist()) <= set(range(10))
    assert peak < 1 << 20, peak


def test_lazy_through_every_dataloader_path():
    s = RandomSampler(range(7), replacement=True, num_samples=10 ** 12)
    # per-sample collate (no whole-batch fast path), a BatchSampler, and automatic batching off
    batch = next(iter(DataLoader(_ds(7), batch_size=5, sampler=s, collate_fn=lambda b: b)))
    assert len(batch) == 5 and all(0 <= y.item() < 7 for (y,) in batch)
    b = next(iter(DataLoader(_ds(7), batch_sampler=BatchSampler(s, 3, drop_last=True))))
    assert b[0].shape == (3,)
    assert next(iter(DataLoader(_ds(7), batch_size=None, sampler=s)))[0].shape == ()
    assert next(iter(BatchSampler(s, 4, False))) and len(BatchSampler(s, 4, False)) == 10 ** 12 // 4


def test_without_replacement_num_samples_beyond_n_chains_permutations():
    """As PyTorch: whole permutations one after another, then part of one more."""
    torch = pytest.importorskip("torch")
    ours = list(RandomSampler(range(5), num_samples=12, generator=_gen(0)))
    theirs = list(torch.utils.data.RandomSampler(range(5), num_samples=12))
    assert len(ours) == len(theirs) == 12
    for got in (ours, theirs):
        assert sorted(got[:5]) == sorted(got[5:10]) == list(range(5)) and len(set(got[10:])) == 2


def test_random_sampler_reproducible_and_private_stream():
    a = list(RandomSampler(range(50), generator=_gen(3)))
    assert a == list(RandomSampler(range(50), generator=_gen(3))) and sorted(a) == list(range(50))
    # without a generator: one seed drawn from the global state per pass, so draws made by the
    # training loop during the pass do not change its order
    tapegrad.manual_seed(0)
    ref = list(RandomSampler(range(50), replacement=True, num_samples=200))
    tapegrad.manual_seed(0)
    it = iter(RandomSampler(range(50), replacement=True, num_samples=200))
    got = [next(it)]
    tapegrad.randn(100)
    got += list(it)
    assert got == ref


def test_iteration_and_dataloader_see_the_same_draws():
    """__iter__ (Python ints) and the loader's array path come from the same draws."""
    for make in (lambda: RandomSampler(range(40), replacement=True, num_samples=100, generator=_gen(1)),
                 lambda: RandomSampler(range(40), num_samples=90, generator=_gen(1)),
                 lambda: WeightedRandomSampler(np.arange(40.0), 70, generator=_gen(1)),
                 lambda: WeightedRandomSampler(np.arange(40.0), 30, replacement=False, generator=_gen(1)),
                 lambda: SubsetRandomSampler([3, 9, 1, 30, 7], generator=_gen(1)),
                 lambda: SequentialSampler(range(40))):
        want = list(make())
        got = np.concatenate([y.numpy() for (y,) in DataLoader(_ds(40), batch_size=7, sampler=make())]).tolist()
        assert got == want


def test_random_sampler_errors_match_pytorch():
    torch = pytest.importorskip("torch")
    for kwargs in (dict(replacement=1), dict(num_samples=0), dict(num_samples=2.0), dict(num_samples=-3)):
        with pytest.raises(Exception) as theirs:
            torch.utils.data.RandomSampler(range(4), **kwargs)
        with pytest.raises(type(theirs.value)) as ours:
            RandomSampler(range(4), **kwargs)
        assert str(ours.value) == str(theirs.value)


def test_batch_sampler_matches_pytorch():
    torch = pytest.importorskip("torch")
    for n, bs, drop in itertools.product((0, 1, 9, 10), (1, 3, 10), (False, True)):
        theirs = torch.utils.data.BatchSampler(range(n), bs, drop)
        ours = BatchSampler(range(n), bs, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
    for args in ((0, False), (True, False), (2.0, False), (2, "no")):
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.BatchSampler(range(3), *args)
        with pytest.raises(ValueError) as ours:
            BatchSampler(range(3), *args)
        assert str(ours.value) == str(theirs.value)


def test_weighted_sampler_errors_match_pytorch():
    torch = pytest.importorskip("torch")
    for args, kwargs in (((np.ones(3), 0), {}), ((np.ones(3), True), {}), ((np.ones(3), 2), dict(replacement=0)),
                         ((np.ones((2, 2)), 2), {})):
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.WeightedRandomSampler(*args, **kwargs)
        with pytest.raises(ValueError) as ours:
            WeightedRandomSampler(*args, **kwargs)
        assert str(ours.value) == str(theirs.value)
    # Bad weights: PyTorch raises RuntimeError at the first pass; here at construction.
    for w, n, repl in (([1.0, -1.0], 1, True), ([0.0, 0.0], 1, True), ([1.0, np.nan], 1, True),
                       ([1.0, 0.0, 2.0], 4, False)):
        with pytest.raises(RuntimeError, match="WeightedRandomSampler") as ours:
            WeightedRandomSampler(w, n, replacement=repl)
        with pytest.raises(RuntimeError) as theirs:
            list(torch.utils.data.WeightedRandomSampler(w, n, replacement=repl))
        assert str(theirs.value) in str(ours.value)
    # zero weights: drawn without replacement only once every positive weight has been, as in PyTorch
    w = [1.0, 0.0, 0.0, 2.0]
    for s in (WeightedRandomSampler(w, 4, replacement=False), torch.utils.data.WeightedRandomSampler(w, 4, False)):
        got = list(s)
        assert sorted(got[:2]) == [0, 3] and sorted(got[2:]) == [1, 2]


def test_weighted_sampler_with_replacement_distribution_and_laziness():
    w = np.array([1.0, 2.0, 3.0, 0.0, 4.0])
    s = WeightedRandomSampler(w, 200_000, generator=_gen(0))
    counts = np.bincount(np.fromiter(s, np.int64), minlength=5) / 200_000
    np.testing.assert_allclose(counts, w / w.sum(), atol=0.005)
    assert counts[3] == 0 and len(s) == 200_000
    huge = WeightedRandomSampler(w, 10 ** 12)
    assert set(itertools.islice(iter(huge), 500)) <= {0, 1, 2, 4}


def test_weighted_sampler_without_replacement_is_sequential_drawing():
    """P(first = i) = w_i / S and P(second = j) = sum_i w_i/S * w_j/(S - w_i), as multinomial."""
    w = np.array([1.0, 2.0, 0.0, 5.0])
    g, runs = _gen(0), 20_000
    draws = np.array([list(WeightedRandomSampler(w, 3, replacement=False, generator=g)) for _ in range(runs)])
    assert all(sorted(d) == [0, 1, 3] for d in draws[:100])
    first = np.bincount(draws[:, 0], minlength=4) / runs
    np.testing.assert_allclose(first, w / w.sum(), atol=0.015)
    second = np.bincount(draws[:, 1], minlength=4) / runs
    want = [sum(w[i] / w.sum() * w[j] / (w.sum() - w[i]) for i in range(4) if i != j) for j in range(4)]
    np.testing.assert_allclose(second, want, atol=0.015)


def test_weighted_sampler_accepts_tensors_and_lists_as_pytorch():
    torch = pytest.importorskip("torch")
    for w in ([0.1, 0.9], tapegrad.tensor([0.1, 0.9])):
        s = WeightedRandomSampler(w, 4)
        assert s.weights.dtype == np.float64 and len(s) == len(torch.utils.data.WeightedRandomSampler([0.1, .9], 4))


def test_subset_random_sampler():
    torch = pytest.importorskip("torch")
    idx = [10, 3, 7, 3]
    ours = list(SubsetRandomSampler(idx, generator=_gen(0)))
    assert sorted(ours) == sorted(idx) == sorted(torch.utils.data.SubsetRandomSampler(idx))
    assert len(SubsetRandomSampler(idx)) == 4
    keys = ["a", "b", "c"]  # indices need not be ints: they are passed to the dataset as they are
    assert sorted(SubsetRandomSampler(keys)) == keys
    loader = DataLoader({"a": 1, "b": 2, "c": 3}, batch_size=3, sampler=SubsetRandomSampler(keys))
    assert sorted(next(iter(loader)).tolist()) == [1, 2, 3]


def test_sampler_subclass_overriding_iter_is_iterated_as_written():
    class Evens(SequentialSampler):
        def __iter__(self):
            return iter(range(0, len(self.data_source), 2))

        def __len__(self):
            return -(-len(self.data_source) // 2)

    got = [y.tolist() for (y,) in DataLoader(_ds(9), batch_size=2, sampler=Evens(range(9)))]
    assert got == [[0, 2], [4, 6], [8]]
