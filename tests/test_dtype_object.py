"""tapegrad.dtype objects: torch.dtype's attributes, identity and repr, and numpy's interop."""
import copy
import pickle

import numpy as np
import pytest

import tapegrad
from tapegrad import _dtype

NAMES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "uint16",
         "uint32", "uint64", "bool", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2"]
ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
           "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}


@pytest.mark.parametrize("name", ["complex32", *NAMES])
def test_attributes_match_torch(name):
    torch = pytest.importorskip("torch")
    d, t = getattr(tapegrad, name), getattr(torch, name)
    assert isinstance(d, tapegrad.dtype)
    assert (d.is_floating_point, d.is_complex, d.is_signed, d.itemsize, d.abbr) == \
           (t.is_floating_point, t.is_complex, t.is_signed, t.itemsize, t.abbr)
    assert repr(d) == repr(t).replace("torch.", "tapegrad.") == str(d)
    for method in ("to_real", "to_complex"):
        try:
            want = repr(getattr(t, method)()).replace("torch.", "tapegrad.")
        except RuntimeError:
            with pytest.raises(RuntimeError, match="Unknown Complex ScalarType"):
                getattr(d, method)()
            continue
        assert repr(getattr(d, method)()) == want


@pytest.mark.parametrize("alias, name", sorted(ALIASES.items()))
def test_aliases_are_the_same_object(alias, name):
    assert getattr(tapegrad, alias) is getattr(tapegrad, name)


@pytest.mark.parametrize("name", NAMES)
def test_tensor_dtype_is_the_interned_object(name):
    d = getattr(tapegrad, name)
    x = tapegrad.zeros(3, dtype=d)
    assert x.dtype is d
    assert x[1:].dtype is d and x.view(-1).dtype is d
    assert tapegrad.zeros(2, dtype=str(d)).dtype is d  # "tapegrad.float32" as a name


@pytest.mark.parametrize("name", NAMES)
def test_equality_and_hash_follow_numpy(name):
    d = getattr(tapegrad, name)
    npd = d.dtype
    assert isinstance(npd, np.dtype)
    assert d == npd and npd == d and not (d != npd)
    assert hash(d) == hash(npd)
    assert {npd: 1}[d] == 1 and {d: 2}[npd] == 2
    assert d in (npd,) and npd in {d}
    assert d != None  # noqa: E711  (numpy reads None as float64)
    assert d != tapegrad.ones(2) and d != "cpu" and d != object()
    others = [getattr(tapegrad, n) for n in NAMES if n != name]
    assert all(d != o for o in others)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_takes_the_object_as_a_dtype(name):
    d = getattr(tapegrad, name)
    assert np.zeros(3, d).dtype == d.dtype
    assert np.arange(3).astype(d).dtype == d.dtype
    assert np.dtype(d) is d.dtype
    assert np.empty((2, 2), dtype=d).dtype == d.dtype
    assert (d.kind, d.char, d.name, d.type) == (d.dtype.kind, d.dtype.char, d.dtype.name, d.dtype.type)
    assert d.byteorder == d.dtype.byteorder  # numpy's other attributes answer too


@pytest.mark.parametrize("name", NAMES)
def test_pickle_copy_keep_identity(name):
    d = getattr(tapegrad, name)
    assert pickle.loads(pickle.dumps(d)) is d
    assert copy.copy(d) is d and copy.deepcopy(d) is d
    assert pickle.loads(pickle.dumps({"dtype": d, "x": tapegrad.ones(2, dtype=d)}))["x"].dtype is d


def test_cannot_make_instances():
    with pytest.raises(TypeError, match="cannot create 'tapegrad.dtype' instances"):
        tapegrad.dtype()
    assert tapegrad.dtype.__name__ == "dtype" and tapegrad.dtype.__module__ == "tapegrad"
    with pytest.raises(AttributeError):
        tapegrad.float32.is_floating_point = False
    with pytest.raises(AttributeError):
        tapegrad.float32._private


def test_no_ordering_as_torch():
    with pytest.raises(TypeError):
        tapegrad.float32 < tapegrad.float64  # noqa: B015


def test_functions_that_return_dtypes_return_objects():
    assert tapegrad.get_default_dtype() is tapegrad.float32
    assert tapegrad.promote_types(tapegrad.int64, tapegrad.float32) is tapegrad.float32
    assert tapegrad.result_type(tapegrad.ones(2, dtype=tapegrad.int32), 2.5) is tapegrad.float32
    assert tapegrad.ones(2).untyped_storage() is not None
    with pytest.warns(UserWarning, match="TypedStorage is deprecated"):
        assert tapegrad.TypedStorage(2, dtype=tapegrad.float64).dtype is tapegrad.float64
    old = tapegrad.get_default_dtype()
    try:
        tapegrad.set_default_dtype(tapegrad.float64)
        assert tapegrad.get_default_dtype() is tapegrad.float64
        assert tapegrad.tensor([1.0]).dtype is tapegrad.float64
    finally:
        tapegrad.set_default_dtype(old)
    with pytest.raises(TypeError, match="set_default_dtype.*tapegrad.int32"):
        tapegrad.set_default_dtype(tapegrad.int32)


def test_dtype_arguments_accept_objects_numpy_and_names():
    for spec in (tapegrad.float64, np.float64, np.dtype("float64"), "float64", "torch.float64", "tapegrad.float64"):
        assert tapegrad.zeros(2, dtype=spec).dtype is tapegrad.float64
        assert tapegrad.ones(2).to(spec).dtype is tapegrad.float64
    assert _dtype.to_dtype(tapegrad.float32) is np.dtype(np.float32)


def test_torch_code_reads_dtype_attributes():
    """What kornia, captum and transformers do with a tensor's dtype."""
    x = tapegrad.ones(2, dtype=tapegrad.float16)
    assert x.dtype.is_floating_point and not x.long().dtype.is_floating_point
    assert str(x.dtype).split(".")[1] == "float16"  # transformers' save_pretrained
    assert getattr(tapegrad, str(x.dtype).split(".")[1]) is x.dtype
    assert x.to(tapegrad.float32).dtype.itemsize == 4
    assert x.dtype in (tapegrad.float16, tapegrad.bfloat16)
    assert {tapegrad.float16: "half"}[x.dtype] == "half"


def test_complex32_is_a_name_without_tensors():
    """kornia compares dtypes with torch.complex32; numpy has no such type, so no tensor holds it."""
    c = tapegrad.complex32
    assert tapegrad.chalf is c and tapegrad.float16.to_complex() is c and c.to_real() is tapegrad.float16
    assert c != tapegrad.complex64 and c != np.complex64 and hash(c) != hash(tapegrad.complex64)
    for make in (lambda: tapegrad.zeros(2, dtype=c), lambda: tapegrad.ones(2).to(c), lambda: np.zeros(2, c)):
        with pytest.raises(TypeError, match="complex32 is not supported"):
            make()


def test_dtypes_in_checkpoints(tmp_path):
    """tapegrad.save keeps a dtype by name; PyTorch's files give tapegrad's objects back."""
    obj = {"d": tapegrad.float16, "l": [tapegrad.int64, tapegrad.bfloat16], "x": tapegrad.ones(2)}
    tapegrad.save(obj, tmp_path / "a.h5")
    back = tapegrad.load(tmp_path / "a.h5")
    assert back["d"] is tapegrad.float16 and back["l"][0] is tapegrad.int64 and back["l"][1] is tapegrad.bfloat16
    tapegrad.save(obj, tmp_path / "a.pt", format="pt")
    back = tapegrad.load(tmp_path / "a.pt")
    assert back["d"] is tapegrad.float16 and back["l"][1] is tapegrad.bfloat16
    torch = pytest.importorskip("torch")
    theirs = torch.load(tmp_path / "a.pt", weights_only=True)
    assert theirs["d"] is torch.float16 and theirs["l"][1] is torch.bfloat16
    torch.save({"d": torch.float16, "x": torch.ones(2, dtype=torch.int16)}, tmp_path / "b.pt")
    back = tapegrad.load(tmp_path / "b.pt")
    assert back["d"] is tapegrad.float16 and back["x"].dtype is tapegrad.int16
