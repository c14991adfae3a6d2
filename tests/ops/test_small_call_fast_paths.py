"""The fast paths of small calls outside autograd (cat, stack, the factories, views, ...): each one
gives what the general path gives (values, dtype, shape, views vs copies, version counters,
errors) and steps aside where a node must be recorded. Checked against PyTorch where it is
installed (benchmarks/bench_small_calls.py times them)."""
from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

try:
    import torch
except ImportError:  # optional: the oracle
    torch = None


def _same(t, ref):
    """tapegrad result ``t`` matches PyTorch's ``ref`` (or, without PyTorch, a numpy array)."""
    if isinstance(ref, (tuple, list)):
        assert isinstance(t, tuple) and len(t) == len(ref)
        for a, b in zip(t, ref):
            _same(a, b)
        return
    r = ref.numpy() if torch is not None and isinstance(ref, torch.Tensor) else np.asarray(ref)
    assert t.shape == r.shape
    assert t.dtype == r.dtype, (t.dtype, r.dtype)
    np.testing.assert_array_equal(t.numpy(), r)


def _both(fn, *arrays):
    """fn(L, *tensors) on tapegrad and, when installed, PyTorch; returns (tapegrad's, reference)."""
    out = fn(tg, *[tg.tensor(a) for a in arrays])
    if torch is None:
        return out, None
    return out, fn(torch, *[torch.tensor(a) for a in arrays])


def _check(fn, *arrays):
    out, ref = _both(fn, *arrays)
    if ref is not None:
        _same(out, ref)
    return out


def _raises_like(fn, *arrays, match=None):
    """fn raises on tapegrad, the exception class PyTorch raises (when installed); ``match``: in tapegrad's message."""
    with pytest.raises(Exception) as e:
        fn(tg, *[tg.tensor(a) for a in arrays])
    if match is not None:
        assert match in str(e.value), str(e.value)
    if torch is not None:
        with pytest.raises(Exception) as r:
            fn(torch, *[torch.tensor(a) for a in arrays])
        assert isinstance(e.value, type(r.value)) or isinstance(r.value, type(e.value)), (e.value, r.value)


rng = np.random.default_rng(7)
A = rng.standard_normal((3, 4)).astype(np.float32)
B = rng.standard_normal((2, 4)).astype(np.float32)
V = rng.standard_normal(4).astype(np.float32)


# ---------------------------------------------------------------- cat
@pytest.mark.parametrize("dim", [0, -2])
def test_cat_values_and_negative_dim(dim):
    _check(lambda L, a, b: L.cat([a, b], dim), A, B)
    _check(lambda L, a, b: L.cat((a, b, a), dim=dim), A, B)


def test_cat_dim1_non_contiguous_and_mixed_dtypes():
    _check(lambda L, a, b: L.cat([a.t(), b.t()], 1), A, B)
    _check(lambda L, a, b: L.cat([a, b.double()]), A, B)  # promoted: cat's general path
    _check(lambda L, a, b: L.cat([a, b.to(L.int64)]), A, B)


def test_cat_skips_empty_1d_and_refuses_bad_shapes():
    _check(lambda L, a: L.cat([L.zeros(0), a]), A)
    _check(lambda L, a: L.cat([a, L.zeros(0)], 1), A)
    _check(lambda L, v: L.cat([L.zeros(0), v]), V)
    _raises_like(lambda L, a, b: L.cat([a, b], 1), A, B, match="Sizes of tensors must match")
    _raises_like(lambda L, a, v: L.cat([a, v]), A, V, match="same number of dimensions")
    _raises_like(lambda L, a: L.cat([a, a], 2), A, match="cat")
    _raises_like(lambda L, a: L.cat([a[0, 0], a[0, 0]]), A, match="zero-dimensional")
    with pytest.raises(TypeError, match="position 1"):
        tg.cat([tg.tensor(A), A])


def test_cat_result_is_a_fresh_tensor_and_records_when_asked():
    a = tg.tensor(A)
    out = tg.cat([a, a])
    assert out._base is None and out.grad_fn is None and not out.requires_grad
    out[0, 0] = 5.0
    assert a[0, 0].item() == A[0, 0]
    w = tg.tensor(A, requires_grad=True)
    y = tg.cat([w, a])
    assert y.requires_grad and y.grad_fn is not None
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones_like(A))
    with tg.no_grad():
        assert tg.cat([w, a]).grad_fn is None


# ---------------------------------------------------------------- stack
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack_dims(dim):
    _check(lambda L, a, b: L.stack([a, a * 2, a - 1], dim), A, B)


def test_stack_0d_empty_non_contiguous_and_mixed_dtypes():
    _check(lambda L, v: L.stack([v[0], v[1]]), V)
    _check(lambda L, v: L.stack([v[0], v[1]], -1), V)
    _check(lambda L, a: L.stack([L.zeros(0), L.zeros(0)]), A)
    _check(lambda L, a: L.stack([L.zeros(0, 3), L.zeros(0, 3)], 1), A)
    _check(lambda L, a: L.stack([a.t(), a.t()], 1), A)
    _check(lambda L, a: L.stack([a, a.double()]), A)
    _check(lambda L, a: L.stack([a.to(L.int64), a.to(L.int32)]), A)


def test_stack_errors():
    _raises_like(lambda L, a, b: L.stack([a, b]), A, B, match="equal size")
    _raises_like(lambda L, a: L.stack([a, a], 3), A, match="stack")
    _raises_like(lambda L, a: L.stack([a, a], -4), A, match="stack")
    with pytest.raises(RuntimeError, match="non-empty"):
        tg.stack([])
    with pytest.raises(TypeError, match="position 1"):
        tg.stack([tg.tensor(A), A])


def test_stack_records_when_an_input_requires_grad():
    w = tg.tensor(V, requires_grad=True)
    y = tg.stack([w, tg.tensor(V)], 1)
    assert y.grad_fn is not None
    (y * tg.tensor([[1.0, 2.0]] * 4)).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones(4, np.float32))
    out = tg.stack([tg.tensor(V), tg.tensor(V)])
    assert out.grad_fn is None and not out.requires_grad and out._base is None


# ---------------------------------------------------------------- factories
def test_zeros_new_zeros_sizes():
    _check(lambda L, a: L.zeros(2, 3), A)
    _check(lambda L, a: L.zeros((2, 3)), A)
    _check(lambda L, a: L.zeros([2, 0]), A)
    _check(lambda L, a: L.zeros(()), A)
    _check(lambda L, a: a.new_zeros(3), A)
    _check(lambda L, a: a.new_zeros((2, 1)), A)
    _check(lambda L, a: a.new_zeros(a.shape), A)
    _check(lambda L, a: a.new_ones(2, dtype=L.int64), A)
    _check(lambda L, a: a.double().new_zeros(size=(1, 2)), A)
    _check(lambda L, a: L.zeros(np.int64(2), 3), A)
    assert tg.tensor(A).new_empty(2, 2).shape == (2, 2)


def test_new_zeros_requires_grad_and_errors():
    t = tg.tensor(A).new_zeros(2, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    _raises_like(lambda L, a: a.new_zeros(-1), A, match="negative dimension")
    _raises_like(lambda L, a: L.zeros(2, -3), A, match="negative dimension")
    _raises_like(lambda L, a: a.new_zeros(2.5), A, match="size")
    _raises_like(lambda L, a: a.to(L.int64).new_zeros(2, requires_grad=True), A, match="floating point")
    with pytest.raises(TypeError, match="layout"):
        tg.tensor(A).new_zeros(2, layout="nope")
    with pytest.raises(RuntimeError, match="pin_memory"):
        tg.tensor(A).new_zeros(2, pin_memory=True)


@pytest.mark.parametrize("args", [(10,), (0,), (3, 9), (3, -5, -2), (-4, 7, 3), (5, 5), (2, 11, 4)])
def test_arange_ints(args):
    _check(lambda L, a: L.arange(*args), A)


def test_arange_other_forms_and_errors():
    _check(lambda L, a: L.arange(5, dtype=L.float64), A)
    _check(lambda L, a: L.arange(0.5, 3), A)
    _check(lambda L, a: L.arange(np.int64(4)), A)
    _check(lambda L, a: L.arange(True + 3), A)
    assert tg.arange(2 ** 40, 2 ** 40 + 3).tolist() == [2 ** 40, 2 ** 40 + 1, 2 ** 40 + 2]
    _raises_like(lambda L, a: L.arange(5, 2), A, match="inconsistent with step sign")
    _raises_like(lambda L, a: L.arange(2, 5, -1), A, match="inconsistent with step sign")
    _raises_like(lambda L, a: L.arange(2, 5, 0), A, match="step must be nonzero")
    _raises_like(lambda L, a: L.arange(4, requires_grad=True), A, match="floating point")
    out = tg.zeros(0, dtype=tg.int64)
    assert tg.arange(4, out=out) is out and out.tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------- views: expand, view, flatten, split/chunk
def _is_view_of(out, base):
    """``out`` shares ``base``'s memory and version counter, as a PyTorch view does."""
    assert np.shares_memory(out._data, base._data)
    v = out._version
    base.add_(0)
    assert out._version == v + 1


@pytest.mark.parametrize("sizes", [(4, 2, 4), (2, 4), (-1, 4), (3, -1), (1, 3, 4), (2, 3, 4)])
def test_expand_forms(sizes):
    x = A[:1]  # (1, 4)
    _check(lambda L, a: a.expand(*sizes), x)
    _check(lambda L, a: a.expand(sizes), x)
    _check(lambda L, a: a.expand(size=sizes), x)


def test_expand_is_a_read_only_view_and_refuses_bad_sizes():
    v = tg.tensor(V)
    out = v.expand(3, 4)
    _is_view_of(out, v)
    assert out is not v and v.expand(4) is not v
    with pytest.raises(RuntimeError):
        out.add_(1)
    _raises_like(lambda L, v: v.expand(3, 5), V, match="must match the existing size")
    _raises_like(lambda L, a: a.expand(4), A, match="number of sizes")
    _raises_like(lambda L, v: v.expand(-1, 4), V)
    w = tg.tensor(V, requires_grad=True)
    y = w.expand(3, 4)
    assert y.grad_fn is not None
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(4, 3, np.float32))


@pytest.mark.parametrize("shape", [(-1,), (12,), (4, 3), (2, -1), (-1, 6)])
def test_view_and_reshape_shapes(shape):
    _check(lambda L, a: a.view(*shape), A)
    _check(lambda L, a: a.reshape(shape), A)


def test_view_minus_one_of_0d_and_empty_and_errors():
    _check(lambda L, a: a[0, 0].view(-1), A)
    _check(lambda L, a: L.zeros(0, 3).view(-1), A)
    _check(lambda L, a: a.view(L.int32), A)
    x = tg.tensor(A)
    _is_view_of(x.view(-1), x)
    _raises_like(lambda L, a: a.t().view(-1), A, match="view")
    _raises_like(lambda L, a: a.view(5), A, match="invalid for input of size 12")
    _raises_like(lambda L, a: a.view(-1, -1), A, match="only one dimension")


@pytest.mark.parametrize("args", [(), (0,), (1,), (0, -1), (-2, -1), (1, 2), (0, 1)])
def test_flatten_dims(args):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    _check(lambda L, a: a.flatten(*args), x)
    _check(lambda L, a: a.transpose(0, 2).flatten(*args), x)  # non-contiguous: a copy where needed


def test_flatten_views_copies_and_edges():
    x = tg.tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))
    _is_view_of(x.flatten(), x)
    y = x.transpose(0, 2).flatten()
    assert not np.shares_memory(y._data, x._data) and y._base is None
    _check(lambda L, a: a[0, 0].flatten(), A)
    _raises_like(lambda L, a: a.flatten(1, 0), A, match="cannot come after")
    _raises_like(lambda L, a: a.flatten(0, 2), A, match="out of range")
    w = tg.tensor(A, requires_grad=True)
    w.flatten().sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones_like(A))


@pytest.mark.parametrize("chunks,dim", [(2, 0), (2, 1), (3, -1), (5, 0), (4, -2)])
def test_chunk_pieces(chunks, dim):
    _check(lambda L, a: a.chunk(chunks, dim), A)
    _check(lambda L, a: a.t().chunk(chunks, dim), A)


def test_split_chunk_views_and_recording():
    x = tg.tensor(A)
    for p in x.chunk(2, 1) + x.split([1, 2]):
        _is_view_of(p, x)
    _check(lambda L, a: a.split([1, 2]), A)
    _check(lambda L, a: a.split(2, -1), A)
    _check(lambda L, a: L.zeros(0, 2).chunk(2), A)
    _raises_like(lambda L, a: a.chunk(0), A, match="chunk")
    _raises_like(lambda L, a: a[0, 0].chunk(2), A, match="chunk")
    _raises_like(lambda L, a: a.split([1, 1]), A, match="split_with_sizes")
    w = tg.tensor(A, requires_grad=True)
    a, b = w.chunk(2, 1)
    (a * 2 + 0).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.r_["1", np.full((3, 2), 2, np.float32), np.zeros((3, 2), np.float32)])


# ---------------------------------------------------------------- matmul's dense path
@pytest.mark.parametrize("sa,sb", [((3, 4), (4,)), ((3, 4), (4, 2)), ((4,), (4,)), ((4,), (4, 2)), ((2, 3, 4), (4,)),
                                   ((2, 3, 4), (4, 5))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_matmul_forms(sa, sb, dtype):
    a, b = (rng.integers(-3, 4, s).astype(dtype) for s in (sa, sb))
    _check(lambda L, x, y: x @ y, a, b)
    _check(lambda L, x, y: x.t() @ y if x.ndim == 2 and x.shape[0] == y.shape[0] else x @ y, a, b)


def test_matmul_errors_and_recording():
    _raises_like(lambda L, a: a @ L.ones(3), A, match="cannot be multiplied")
    _raises_like(lambda L, a: a @ L.ones(4, dtype=L.float64), A)
    w = tg.tensor(A, requires_grad=True)
    y = w @ tg.tensor(V)
    assert y.grad_fn is not None
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.broadcast_to(V, A.shape))
