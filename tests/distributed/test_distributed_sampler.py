"""DistributedSampler: PyTorch's behaviour, no MPI needed (num_replicas and rank given)."""
import pytest

from tapegrad.utils.data import DistributedSampler
from tapegrad.utils.data.distributed import DistributedSampler as Direct


def shares(n, replicas, **kw):
    return [list(DistributedSampler(range(n), num_replicas=replicas, rank=r, **kw)) for r in range(replicas)]


@pytest.mark.parametrize("n,replicas", [(10, 3), (12, 4), (2, 3), (7, 1)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shares_cover_the_dataset_with_equal_lengths(n, replicas, shuffle):
    parts = shares(n, replicas, shuffle=shuffle, seed=3)
    assert len({len(p) for p in parts}) == 1
    every = [i for p in parts for i in p]
    assert set(every) == set(range(n))
    assert len(every) == -(-n // replicas) * replicas  # padded with repeats, never more


def test_drop_last_cuts_the_tail():
    parts = shares(10, 3, shuffle=False, drop_last=True)
    assert parts == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert len(DistributedSampler(range(10), 3, 0, drop_last=True)) == 3


def test_padding_repeats_the_first_indices():
    assert shares(10, 4, shuffle=False) == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]


def test_set_epoch_reshuffles_the_same_way_on_every_rank():
    s0 = DistributedSampler(range(100), 2, 0, seed=1)
    s1 = DistributedSampler(range(100), 2, 1, seed=1)
    first = list(s0)
    assert list(s0) == first  # no set_epoch: the same order again, as PyTorch
    s0.set_epoch(1)
    s1.set_epoch(1)
    second = list(s0)
    assert second != first and sorted(second + list(s1)) == list(range(100))


def test_bad_rank_and_missing_group():
    with pytest.raises(ValueError, match="invalid rank 2"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(4))
    assert Direct is DistributedSampler


def test_same_shares_as_pytorch_without_shuffle():
    torch_ds = pytest.importorskip("torch.utils.data.distributed")
    for n, replicas, drop in [(10, 3, False), (10, 3, True), (5, 4, False), (2, 3, False)]:
        for r in range(replicas):
            ours = list(DistributedSampler(range(n), replicas, r, shuffle=False, drop_last=drop))
            theirs = list(torch_ds.DistributedSampler(range(n), replicas, r, shuffle=False, drop_last=drop))
            assert ours == theirs, (n, replicas, r, drop)
