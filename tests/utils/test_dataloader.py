"""DataLoader in the calling process, against PyTorch's: batch shapes and order for every way of
giving indices (sampler, batch_sampler, plain iterables), drop_last, batch_size=None, collate."""
import itertools

import numpy as np
import pytest

import tapegrad
from tapegrad.utils.data import (BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler,
                                 TensorDataset, default_collate)

torch = pytest.importorskip("torch")


class Items(Dataset):
    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "i": i, "pair": (i, float(i))}


class TorchItems(torch.utils.data.Dataset):
    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "i": i, "pair": (i, float(i))}


def _flat(batch):
    """A batch as nested Python values, tensors as (shape, dtype name, values)."""
    if isinstance(batch, (tapegrad.Tensor, torch.Tensor)):
        return (tuple(batch.shape), str(batch.dtype).split(".")[-1], batch.tolist())
    if isinstance(batch, dict):
        return {k: _flat(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_flat(v) for v in batch)
    return batch


@pytest.mark.parametrize("n,bs,drop_last", list(itertools.product((1, 9, 10), (1, 3, 10, 12), (False, True))))
def test_batches_match_pytorch(n, bs, drop_last):
    ours = DataLoader(Items(n), batch_size=bs, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(TorchItems(n), batch_size=bs, drop_last=drop_last)
    assert len(ours) == len(theirs)
    assert [_flat(b) for b in ours] == [_flat(b) for b in theirs]


@pytest.mark.parametrize("kind", ["sampler_list", "batch_sampler_lists", "batch_sampler", "none", "none_collate"])
def test_index_sources_match_pytorch(kind):
    order = [7, 2, 9, 0, 0, 5]
    kwargs = {"sampler_list": dict(sampler=order, batch_size=4),
              "batch_sampler_lists": dict(batch_sampler=[[1, 2], [9], [3, 3, 4]]),
              "batch_sampler": dict(batch_sampler=BatchSampler(SequentialSampler(range(10)), 4, True)),
              "none": dict(batch_size=None, sampler=order),
              "none_collate": dict(batch_size=None, collate_fn=lambda s: s["i"] * 10)}[kind]
    tkwargs = dict(kwargs)
    if kind == "batch_sampler":
        tkwargs["batch_sampler"] = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)), 4,
                                                                 True)
    ours, theirs = DataLoader(Items(), **kwargs), torch.utils.data.DataLoader(TorchItems(), **tkwargs)
    assert len(ours) == len(theirs)
    assert [_flat(b) for b in ours] == [_flat(b) for b in theirs]


def test_tensor_dataset_batches_are_lists_as_in_pytorch():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ours = list(DataLoader(TensorDataset(tapegrad.tensor(x), tapegrad.arange(6)), batch_size=4))
    theirs = list(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.arange(6)),
                                              batch_size=4))
    assert [_flat(b) for b in ours] == [_flat(b) for b in theirs]
    assert type(default_collate([(1, 2), (3, 4)])) is type(torch.utils.data.default_collate([(1, 2), (3, 4)]))


def test_getitems_is_used_for_whole_batches():
    class Batched(Items):
        calls = []

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return [self[i] for i in indices]

    ds = Batched(5)
    batches = list(DataLoader(ds, batch_size=2))
    assert ds.calls == [[0, 1], [2, 3], [4]] and batches[2]["i"].tolist() == [4]


def test_iterable_dataset_argument_errors_match_pytorch():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    for kwargs in (dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])):
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.DataLoader(TorchStream(), **kwargs)
        with pytest.raises(ValueError) as ours:
            DataLoader(Stream(), **kwargs)
        assert str(ours.value) == str(theirs.value)
    assert [b.tolist() for b in DataLoader(Stream(), batch_size=2, shuffle=False)] == [[0, 1], [2]]


def test_map_dataset_argument_errors_match_pytorch():
    for kwargs in (dict(sampler=[0], shuffle=True), dict(batch_sampler=[[0]], batch_size=2),
                   dict(batch_sampler=[[0]], drop_last=True), dict(batch_size=None, drop_last=True)):
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.DataLoader(TorchItems(), **kwargs)
        with pytest.raises(ValueError) as ours:
            DataLoader(Items(), **kwargs)
        assert str(ours.value) == str(theirs.value)


def test_loader_exposes_pytorchs_attributes():
    ours = DataLoader(Items(), batch_size=3, shuffle=True)
    theirs = torch.utils.data.DataLoader(TorchItems(), batch_size=3, shuffle=True)
    for name in ("sampler", "batch_sampler"):
        assert type(getattr(ours, name)).__name__ == type(getattr(theirs, name)).__name__
    assert (ours.batch_size, ours.drop_last, ours.num_workers, ours.prefetch_factor, ours.timeout) == \
        (theirs.batch_size, theirs.drop_last, theirs.num_workers, theirs.prefetch_factor, theirs.timeout)
    assert len(ours.sampler) == len(theirs.sampler) == 10
