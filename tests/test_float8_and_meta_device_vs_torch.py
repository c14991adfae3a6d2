"""float8_e4m3fn and float8_e5m2 (ml_dtypes' types, PyTorch's limited support: storage, casts,
finfo), the meta device as a value that nothing can be made on, and the CUDA type names of a
machine without a GPU: each against PyTorch where it is installed."""
import importlib.util

import numpy as np
import pytest

import tapegrad as tg

HAVE_TORCH = importlib.util.find_spec("torch") is not None
FLOAT8 = ["float8_e4m3fn", "float8_e5m2"]
VALUES = [0.0, -0.0, 0.1, 1.0, 3.3, -447.9, 448.0, 460.0, 464.0, 500.0, -1e9, 1e-3, 2e-3, 0.0009765625,
          1e5, 57344.0, 61440.0, float("inf"), -float("inf"), float("nan"), 1e-6]


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("name", FLOAT8)
@pytest.mark.parametrize("src", ["float32", "float64", "float16", "bfloat16"])
def test_casts_match_torch(name, src):
    got = tg.tensor(VALUES, dtype=tg.float64).to(getattr(tg, src)).to(getattr(tg, name))
    assert got.dtype == getattr(tg, name) and got.is_floating_point() and got.element_size() == 1
    back = got.to(tg.float64).numpy()
    torch = _torch()
    want = torch.tensor(VALUES, dtype=torch.float64).to(getattr(torch, src)).to(getattr(torch, name))
    np.testing.assert_array_equal(back, want.to(torch.float64).numpy())


@pytest.mark.parametrize("name", FLOAT8)
def test_integer_casts_and_finfo_match_torch(name):
    ints = [70000, 500, -1000, 3, 0]
    got = tg.tensor(ints).to(getattr(tg, name)).float().tolist()
    info = tg.finfo(getattr(tg, name))
    torch = _torch()
    assert got == torch.tensor(ints).to(getattr(torch, name)).float().tolist()
    want = torch.finfo(getattr(torch, name))
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
        assert getattr(info, field) == getattr(want, field), field
    assert info.dtype == name and repr(tg.ones(1, dtype=getattr(tg, name)).dtype) == repr(getattr(tg, name))


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_finfo_resolution_is_torchs(name):
    want = {"float16": 0.001, "bfloat16": 0.01, "float32": 1e-06, "float64": 1e-15}[name]
    assert tg.finfo(getattr(tg, name)).resolution == want


def test_meta_device_is_a_value_but_holds_nothing():
    meta = tg.device("meta")
    assert meta.type == "meta" and str(meta) == "meta" and repr(meta) == "device(type='meta')"
    assert meta != tg.device("cpu") and meta == "meta" and tg.device("cpu") != meta and hash(meta) == hash(tg.device("meta"))
    for make in (lambda: tg.zeros(2, device="meta"), lambda: tg.ones(2).to("meta"), lambda: tg.empty(1, device=meta),
                 lambda: tg.set_default_device("meta")):
        with pytest.raises(RuntimeError, match="device 'meta' is not available.*no meta tensors"):
            make()
    with pytest.raises(RuntimeError, match="device 'meta' is not available"):
        with tg.device("meta"):
            pass
    with tg.device("cpu") as d:  # the default device already
        assert d.type == "cpu" and tg.ones(1).device == d
    with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
        tg.zeros(1, device=tg.device("cuda"))
    torch = _torch()
    assert repr(torch.device("meta")) == "device(type='meta')" and torch.device("meta") != torch.device("cpu")


def test_cuda_type_names_exist_and_refuse():
    for cls in (tg.cuda.Stream, tg.cuda.Event, tg.cuda.CUDAGraph, tg.cuda.StreamContext, tg.cuda.graph):
        assert isinstance(cls, type) and (cls | None) is not None  # annotations such as `torch.cuda.Stream | None`
        with pytest.raises(RuntimeError, match="no CUDA device"):
            cls()
