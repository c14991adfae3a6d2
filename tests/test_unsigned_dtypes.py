"""uint16, uint32 and uint64: PyTorch 2.3's "limited support" unsigned dtypes. They hold data,
cast, compare and save; promotion with another integer dtype raises as PyTorch's does (numpy's
answer, uint64 + int64 = float64, is not PyTorch's); where PyTorch has no kernel for them (add,
lt, max, ...) tapegrad computes with numpy's."""
import numpy as np
import pytest

import tapegrad as tg

UNSIGNED = ["uint16", "uint32", "uint64"]


@pytest.mark.parametrize("name", UNSIGNED)
def test_names_info_and_legacy_type_names(name):
    d = getattr(tg, name)
    assert d == np.dtype(name) and tg.iinfo(d).max == np.iinfo(name).max and tg.iinfo(d).min == 0
    x = tg.tensor([1, 2], dtype=d)
    assert x.dtype == d and not x.is_signed() and not x.is_floating_point()
    assert x.type() == f"tapegrad.UInt{name[4:]}Tensor" and repr(x).endswith(f"dtype=tapegrad.{name})")
    assert tg.from_numpy(np.arange(3, dtype=name)).dtype == d


@pytest.mark.parametrize("name", UNSIGNED)
def test_numbers_keep_the_dtype_and_other_integer_dtypes_refuse(name):
    d = getattr(tg, name)
    x = tg.tensor([1, 2, 40000], dtype=d)
    assert (x + 1).dtype == d and (x * 2).tolist() == [2, 4, 80000 % (np.iinfo(name).max + 1)]
    assert (x < 2).tolist() == [True, False, False] and (x == x).all()
    assert (x + tg.ones(3)).dtype == tg.float32 and (x / 2).dtype == tg.float32
    assert x.sum().dtype == tg.int64 and x.cumsum(0).dtype == tg.int64 and x.max().item() == 40000
    for other in (tg.int64, tg.int16, tg.uint8, tg.bool):
        if other == tg.bool:
            assert (x + tg.tensor([True, False, True])).dtype == d  # bool is below every integer
            continue
        with pytest.raises(RuntimeError, match=f"Promotion for uint16, uint32, uint64 types is not supported, "
                                               f"attempted to promote {name} and {np.dtype(other).name}"):
            x + tg.ones(3, dtype=other)
    assert tg.promote_types(d, d) == d and tg.promote_types(d, tg.float64) == tg.float64


def test_uint64_holds_python_ints_past_int64():
    big = 2 ** 64 - 1
    assert tg.tensor([[4, big]], dtype=tg.uint64).tolist() == [[4, big]]
    assert tg.tensor(big, dtype=tg.uint64).item() == big
    assert tg.tensor([2 ** 63], dtype=tg.uint64).tolist() == [2 ** 63]


@pytest.mark.parametrize("suffix", [".h5", ".safetensors", ".pt"])
def test_save_and_load_round_trip(tmp_path, suffix):
    data = {"a": tg.tensor([1, 2, 40000], dtype=tg.uint16), "b": tg.tensor([3, 2 ** 32 - 1], dtype=tg.uint32),
            "c": tg.tensor([[4, 2 ** 64 - 1]], dtype=tg.uint64)}
    path = tmp_path / f"u{suffix}"
    tg.save(data, path, **({"format": "pt"} if suffix == ".pt" else {}))
    back = tg.load(path)
    for k, v in data.items():
        assert back[k].dtype == v.dtype and back[k].tolist() == v.tolist()


def test_pytorch_reads_and_writes_them(tmp_path):
    torch = pytest.importorskip("torch")
    data = {"a": tg.tensor([1, 2, 40000], dtype=tg.uint16), "b": tg.tensor([3, 2 ** 32 - 1], dtype=tg.uint32),
            "c": tg.tensor([[4, 2 ** 64 - 1]], dtype=tg.uint64)}
    tg.save(data, tmp_path / "ours.pt", format="pt")
    theirs = torch.load(tmp_path / "ours.pt", weights_only=True)
    for k, v in data.items():
        assert str(theirs[k].dtype) == f"torch.{v.dtype.name}" and theirs[k].tolist() == v.tolist()
    torch.save({k: v[..., 1:] for k, v in theirs.items()}, tmp_path / "theirs.pt")
    back = tg.load(tmp_path / "theirs.pt")
    for k, v in data.items():
        assert back[k].dtype == v.dtype and back[k].tolist() == v[..., 1:].tolist()
    for name in UNSIGNED:
        with pytest.raises(RuntimeError, match="Promotion for uint16, uint32, uint64"):
            torch.promote_types(getattr(torch, name), torch.int64)
