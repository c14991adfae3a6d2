"""Names outside PyTorch's documented API that pure-Python libraries call: ``torch.__config__``
(torch_geometric), ``torch._C``'s queries (torchmetrics, torch_geometric, kornia),
``torch.torch``, ``nn.parameter.is_lazy``, ``_assert_async`` and ``SymInt`` (kornia)."""
from __future__ import annotations

import pytest

import tapegrad
from tapegrad import _C, nn


def test_config_show_and_parallel_info():
    text = tapegrad.__config__.show()
    assert isinstance(text, str) and "USE_MKL=OFF" in text and "USE_CUDA=OFF" in text
    info = tapegrad.__config__.parallel_info()
    assert f"get_num_threads() : {tapegrad.get_num_threads()}" in info


def test_torch_attribute_is_the_package():
    assert tapegrad.torch is tapegrad
    assert tapegrad.torch.Tensor is tapegrad.Tensor


def test_c_queries():
    assert _C._log_api_usage_once("lib.metric.Accuracy") is None
    with pytest.raises(TypeError, match="_log_api_usage_once"):
        _C._log_api_usage_once(3)
    assert _C._get_tracing_state() is None
    assert _C._get_default_device() == "cpu"
    assert _C._len_torch_dispatch_stack() == 0
    assert _C._LinAlgError is tapegrad.linalg.LinAlgError


def test_functorch_transforms_active_inside_grad_only():
    assert _C._are_functorch_transforms_active() is False
    seen = []

    def f(x):
        seen.append(_C._are_functorch_transforms_active())
        return (x * x).sum()

    tapegrad.func.grad(f)(tapegrad.ones(3))
    assert seen == [True]
    assert _C._are_functorch_transforms_active() is False


def test_disabled_torch_function_impl_as_class_attribute():
    class Sub(tapegrad.Tensor):
        __torch_function__ = _C._disabled_torch_function_impl

    impl = Sub.__torch_function__  # not bound to the class or an instance
    assert impl is _C._disabled_torch_function_impl
    out = impl(tapegrad.add, (Sub,), (tapegrad.ones(2), 1.0), {"alpha": 2.0})
    assert out.tolist() == [3.0, 3.0]


def test_is_lazy():
    lin = nn.LazyLinear(3)
    assert nn.parameter.is_lazy(lin.weight)
    assert nn.parameter.is_lazy(nn.parameter.UninitializedBuffer())
    lin(tapegrad.ones(2, 4))
    assert not nn.parameter.is_lazy(lin.weight)
    assert type(lin.weight) is nn.Parameter
    assert not nn.parameter.is_lazy(tapegrad.ones(1)) and not nn.parameter.is_lazy(3)


def test_assert_async():
    tapegrad._assert_async(tapegrad.tensor(True))
    tapegrad._assert_async(tapegrad.tensor([2.0]))
    tapegrad._assert_async(tapegrad.tensor(float("nan")))
    with pytest.raises(RuntimeError, match="single nonzero value, but got zero"):
        tapegrad._assert_async(tapegrad.tensor(0))
    with pytest.raises(RuntimeError, match="^labels too big$"):
        tapegrad._assert_async(tapegrad.tensor(5) < 3, "labels too big")
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        tapegrad._assert_async(tapegrad.tensor([1, 1]))
    with pytest.raises(RuntimeError, match="no values is ambiguous"):
        tapegrad._assert_async(tapegrad.tensor([]))
    with pytest.raises(TypeError, match="must be Tensor, not int"):
        tapegrad._assert_async(1)
    with pytest.raises(TypeError, match="must be str, not int"):
        tapegrad._assert_async(tapegrad.tensor(1), 5)


def test_symbolic_types():
    assert not isinstance(3, tapegrad.SymInt) and not isinstance(3.0, tapegrad.SymFloat)
    assert not isinstance(True, tapegrad.SymBool)
    with pytest.raises(RuntimeError, match="no symbolic shapes"):
        tapegrad.SymInt()


def test_assert_async_matches_torch():
    torch = pytest.importorskip("torch")
    cases = [(True, None), (0, None), (0.0, "m"), ([1, 2], None), ([], None), ([3], "x")]
    for value, msg in cases:
        results = []
        for lib in (torch, tapegrad):
            try:
                lib._assert_async(lib.tensor(value), *([msg] if msg else []))
                results.append(None)
            except RuntimeError as e:
                results.append(str(e).splitlines()[0])
        assert results[0] == results[1], (value, msg, results)


def test_names_exist_in_torch():
    torch = pytest.importorskip("torch")
    for name in ("_log_api_usage_once", "_get_tracing_state", "_get_default_device",
                 "_are_functorch_transforms_active", "_len_torch_dispatch_stack",
                 "_disabled_torch_function_impl", "_LinAlgError"):
        assert hasattr(torch._C, name), name
    assert torch._C._get_default_device() == _C._get_default_device()
    assert torch._C._get_tracing_state() is None
    assert torch.torch is torch and hasattr(torch.__config__, "parallel_info")
    assert torch.nn.parameter.is_lazy(torch.nn.LazyLinear(3).weight)
    assert not isinstance(3, torch.SymInt)


def test_serialization_type_aliases():
    import typing

    from tapegrad import serialization
    assert type(None) in typing.get_args(serialization.MAP_LOCATION)
    assert str in typing.get_args(serialization.FileLike)
    torch = pytest.importorskip("torch")
    assert hasattr(torch.serialization, "MAP_LOCATION") and hasattr(torch.serialization, "FileLike")


def test_onnx_namespace():
    assert tapegrad.onnx.is_in_onnx_export() is False
    with pytest.raises(tapegrad.onnx.OnnxExporterError, match="no ONNX exporter"):
        tapegrad.onnx.export(nn.Linear(2, 2), (tapegrad.ones(1, 2),), "m.onnx")
    assert issubclass(tapegrad.onnx.OnnxExporterError, RuntimeError)
    torch = pytest.importorskip("torch")
    assert torch.onnx.is_in_onnx_export() is False and issubclass(torch.onnx.OnnxExporterError, RuntimeError)


def test_functorch_wrapped_tensor_query():
    assert _C._functorch.is_functorch_wrapped_tensor(tapegrad.ones(2)) is False
    torch = pytest.importorskip("torch")
    assert torch._C._functorch.is_functorch_wrapped_tensor(torch.ones(2)) is False
