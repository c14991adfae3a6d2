"""tapegrad.utils.data: DataLoader semantics, collate, random_split, Subset, HDF5Dataset."""
import collections

import numpy as np
import pytest

import tapegrad
from tapegrad.utils.data import (DataLoader, Dataset, HDF5Dataset, Subset, TensorDataset, default_collate,
                                 random_split)


class Squares(Dataset):  # a plain map-style dataset: no fast path
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"x": np.full(2, i, np.float32), "y": i * i, "name": f"s{i}"}


def _ds(n=10):
    return TensorDataset(tapegrad.arange(n * 2, dtype=tapegrad.float32).reshape(n, 2), tapegrad.arange(n))


def test_tapegrad_data_alias():
    import tapegrad.data
    assert tapegrad.data.DataLoader is DataLoader


def test_batching_len_and_drop_last():
    loader = DataLoader(_ds(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert batches[2][1].tolist() == [8, 9]
    assert batches[0][1].dtype == tapegrad.int64
    dropped = DataLoader(_ds(10), batch_size=4, drop_last=True)
    assert len(dropped) == len(list(dropped)) == 2


def test_shuffle_is_a_permutation_and_reproducible():
    def order(gen):
        return np.concatenate([y.numpy() for _, y in DataLoader(_ds(50), batch_size=7, shuffle=True,
                                                                  generator=gen)])
    a = order(tapegrad.Generator().manual_seed(3))
    b = order(tapegrad.Generator().manual_seed(3))
    assert sorted(a.tolist()) == list(range(50))
    assert (a == b).all() and not (a == np.arange(50)).all()
    assert not (a == order(tapegrad.Generator().manual_seed(4))).all()
    # without a generator: the global seed decides
    tapegrad.manual_seed(0)
    c = order(None)
    tapegrad.manual_seed(0)
    assert (c == order(None)).all()


def test_new_permutation_each_epoch():
    loader = DataLoader(_ds(30), batch_size=30, shuffle=True, generator=tapegrad.Generator().manual_seed(0))
    (_, y1), = list(loader)
    (_, y2), = list(loader)
    assert not (y1.numpy() == y2.numpy()).all()


def test_fast_path_matches_per_sample_collate():
    ds = _ds(23)
    fast = list(DataLoader(ds, batch_size=5, shuffle=True, generator=tapegrad.Generator().manual_seed(1)))
    slow = list(DataLoader(ds, batch_size=5, shuffle=True, generator=tapegrad.Generator().manual_seed(1),
                           collate_fn=lambda b: default_collate(b)))
    for (xf, yf), (xs, ys) in zip(fast, slow):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())


def test_collate_structures():
    batch = next(iter(DataLoader(Squares(), batch_size=3)))
    assert batch["x"].shape == (3, 2) and batch["x"].dtype == tapegrad.float32
    assert batch["y"].tolist() == [0, 1, 4] and batch["y"].dtype == tapegrad.int64
    assert batch["name"] == ["s0", "s1", "s2"]
    floats = default_collate([0.5, 1.5])
    assert floats.dtype == tapegrad.float64
    Pair = collections.namedtuple("Pair", "a b")
    p = default_collate([Pair(tapegrad.zeros(2), 1), Pair(tapegrad.ones(2), 2)])
    assert isinstance(p, Pair) and p.a.shape == (2, 2) and p.b.tolist() == [1, 2]
    nested = default_collate([(tapegrad.zeros(1), [1, 2.0]), (tapegrad.ones(1), [3, 4.0])])
    assert nested[1][0].tolist() == [1, 3] and nested[1][1].tolist() == [2.0, 4.0]
    with pytest.raises(TypeError):
        default_collate([object()])


def test_batch_size_none_yields_samples():
    items = list(DataLoader(_ds(3), batch_size=None))
    assert len(items) == 3 and items[1][1].item() == 1


def test_random_split_lengths_and_fractions():
    ds = _ds(10)
    a, b = random_split(ds, [7, 3], generator=tapegrad.Generator().manual_seed(0))
    assert len(a) == 7 and len(b) == 3
    assert sorted(a.indices + b.indices) == list(range(10))
    a2, _ = random_split(ds, [7, 3], generator=tapegrad.Generator().manual_seed(0))
    assert a.indices == a2.indices
    parts = random_split(_ds(11), [0.5, 0.25, 0.25])
    assert [len(p) for p in parts] == [6, 3, 2]
    with pytest.raises(ValueError):
        random_split(ds, [5, 4])


def test_subset_keeps_fast_path_and_order():
    sub = Subset(_ds(10), [9, 2, 5])
    assert sub[0][1].item() == 9
    (x, y), = list(DataLoader(sub, batch_size=3))
    assert y.tolist() == [9, 2, 5] and x.shape == (3, 2)
    assert not hasattr(Subset(Squares(), [0]), "_batch")


def _write_h5(path, flat, chunked=False):
    import h5py
    rng = np.random.default_rng(0)
    data = {}
    with h5py.File(path, "w") as f:
        for split, n in (("train", 40), ("val", 10), ("test", 12)):
            imgs = rng.integers(0, 256, (n, 784) if flat else (n, 1, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, n).astype(np.uint8)
            f.create_dataset(f"{split}/images", data=imgs, chunks=(4,) + imgs.shape[1:] if chunked else None)
            f.create_dataset(f"{split}/labels", data=labels)
            data[split] = (imgs, labels)
    return data


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("mode", ["memory", "lazy-mmap", "lazy-chunked"])
def test_hdf5_dataset(tmp_path, flat, mode):
    path = tmp_path / "d.h5"
    data = _write_h5(path, flat, chunked=mode == "lazy-chunked")
    ds = HDF5Dataset(path, "val", load_into_memory=mode == "memory", shape=(1, 28, 28))
    assert len(ds) == 10
    x, y = ds[3]
    assert x.shape == (1, 28, 28) and x.dtype == tapegrad.float32 and y.dtype == tapegrad.int64
    np.testing.assert_allclose(x.numpy().ravel(), data["val"][0][3].ravel() / 255, rtol=1e-6)
    assert y.item() == data["val"][1][3]
    if mode != "memory":
        assert isinstance(ds._open()[0], np.memmap) == (mode == "lazy-mmap")
    # shuffled batches with unsorted, repeated indices come back in the asked order
    xb, yb = ds._batch(np.array([7, 2, 7, 0]))
    assert yb.tolist() == data["val"][1][[7, 2, 7, 0]].tolist()
    batches = list(DataLoader(ds, batch_size=4, shuffle=True, generator=tapegrad.Generator().manual_seed(0)))
    assert sorted(np.concatenate([b[1].numpy() for b in batches]).tolist()) == sorted(data["val"][1].tolist())


def test_hdf5_dataset_options(tmp_path):
    path = tmp_path / "d.h5"
    data = _write_h5(path, flat=True)
    ds = HDF5Dataset(path, "train", normalize=(0.5, 0.25), dtype=np.float64, limit=16)
    assert len(ds) == 16
    x, _ = ds[0]
    assert x.dtype == tapegrad.float64 and x.shape == (784,)
    np.testing.assert_allclose(x.numpy(), (data["train"][0][0] / 255 - 0.5) / 0.25)
    with pytest.raises(KeyError, match="no split"):
        HDF5Dataset(path, "holdout")
    with pytest.raises(IndexError):
        ds._batch(np.array([16]))


def test_samplers():
    from tapegrad.utils.data import BatchSampler, RandomSampler, SequentialSampler, SubsetRandomSampler
    ds = _ds(10)
    assert list(SequentialSampler(ds)) == list(range(10))
    a = list(RandomSampler(ds, generator=tapegrad.Generator().manual_seed(0)))
    assert sorted(a) == list(range(10))
    assert len(list(RandomSampler(ds, replacement=True, num_samples=25))) == 25
    assert sorted(SubsetRandomSampler([3, 5, 7])) == [3, 5, 7]
    bs = BatchSampler(SequentialSampler(ds), 4, drop_last=False)
    assert list(bs) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(bs) == 3
    loader = DataLoader(ds, batch_sampler=BatchSampler(RandomSampler(ds, generator=tapegrad.Generator()
                                                                          .manual_seed(0)), 4, True))
    ys = [y.tolist() for _, y in loader]
    assert len(ys) == len(loader) == 2 and ys[0] == a[:4]
    loader = DataLoader(ds, batch_size=3, sampler=SequentialSampler(ds))
    assert [y.tolist() for _, y in loader][-1] == [9]


def test_batch_size_none_with_a_batch_sampler_as_sampler():
    from tapegrad.utils.data import BatchSampler, SequentialSampler
    ds = _ds(5)
    out = list(DataLoader(ds, batch_size=None, sampler=BatchSampler(SequentialSampler(ds), 2, False)))
    assert [y.tolist() for _, y in out] == [[0, 1], [2, 3], [4]]
