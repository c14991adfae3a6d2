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


@pytest.mark.parametrize("sizes", [(1, -1), (1, 1, 4), (1, 4)])
def test_expand_that_repeats_no_element_is_writable_as_in_pytorch(sizes):
    # transformers' BertEmbeddings: position_ids = arange(n).expand((1, -1)), then copy_ into it
    v = tg.arange(4.0)
    out = v.expand(*sizes)
    _is_view_of(out, v)
    out.copy_(tg.arange(4.0).flip(0).expand(*sizes))
    assert v.tolist() == [3.0, 2.0, 1.0, 0.0]
    strided = tg.zeros(2, 1, 6)[:, :, ::2]  # a non-contiguous base
    strided.expand(1, 2, 1, 3).fill_(7.0)
    assert (strided == 7).all()


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


# ---------------------------------------------------------------- copy_, add_
def test_copy_into_same_dtype_broadcast_and_version():
    x = tg.tensor(A.copy())
    v0 = x._version
    assert x.copy_(tg.tensor(B[:1])) is x and x._version == v0 + 1
    np.testing.assert_array_equal(x.numpy(), np.broadcast_to(B[:1], A.shape))
    x.copy_(x)  # itself: numpy's assignment handles the overlap
    x.copy_(x.flip(0))
    np.testing.assert_array_equal(x.numpy(), np.broadcast_to(B[:1], A.shape))
    _check(lambda L, a: L.zeros(3, 4).copy_(a.t().t()), A)
    _check(lambda L, a: L.zeros(4, 3).copy_(a.t()), A)
    _check(lambda L, a: L.zeros(3, 4, dtype=L.float64).copy_(a), A)
    _check(lambda L, a: L.zeros((), dtype=L.float32).copy_(a[0, 0]), A)
    _raises_like(lambda L, a, b: a.copy_(b), A, B)
    with pytest.raises(RuntimeError):
        tg.tensor(V).expand(3, 4).copy_(tg.tensor(A))


def test_copy_records_when_asked():
    w = tg.tensor(A, requires_grad=True)
    y = tg.zeros(3, 4)
    y.copy_(w * 2)
    assert y.grad_fn is not None
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full_like(A, 2))
    with tg.no_grad():
        z = tg.zeros(3, 4)
        z.copy_(w)
        assert z.grad_fn is None and not z.requires_grad


def test_add_inplace_forms():
    _check(lambda L, a, b: a.clone().add_(a), A, B)
    _check(lambda L, a, b: a.clone().add_(b[:1], alpha=2), A, B)
    _raises_like(lambda L, a, b: a.clone().add_(b), A, B)


# ---------------------------------------------------------------- masked_fill, where, clamp, relu, softmax
def test_masked_fill_shapes_values_and_errors():
    m = A > 0
    _check(lambda L, a: a.masked_fill(a > 0, 0.0), A)
    _check(lambda L, a: a.masked_fill((a > 0)[:1], -1.5), A)
    _check(lambda L, a: a[0].masked_fill(a > 0, 2.0), A)  # the input broadcast too
    _check(lambda L, a: a.to(L.int64).masked_fill(a > 0, 7), A)
    _check(lambda L, a: a.masked_fill(a > 0, L.tensor(3.0)), A)
    _raises_like(lambda L, a: a.masked_fill(a[:2] > 0, 0.0), A, match="broadcast")
    _raises_like(lambda L, a: a.masked_fill(a, 0.0), A, match="boolean masks")
    w = tg.tensor(A, requires_grad=True)
    w.masked_fill(tg.tensor(m), 0.0).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), (~m).astype(np.float32))


@pytest.mark.parametrize("lo,hi", [(0, 1), (-0.5, None), (None, 0.25), (1, 0), (0.0, float("nan"))])
def test_clamp_scalar_bounds(lo, hi):
    x = np.concatenate([A.ravel(), [np.nan, -0.0, 0.0, np.inf]]).astype(np.float32)
    _check(lambda L, a: a.clamp(lo, hi), x)
    _check(lambda L, a: a.double().clamp(lo, hi), x)
    _check(lambda L, a: a.reshape(2, 8).t().clamp(lo, hi), x)


def test_relu_and_softmax_paths():
    _check(lambda L, a: L.nn.functional.relu(a), A)
    _check(lambda L, a: L.nn.functional.relu(a.to(L.int64)), A)
    _check(lambda L, a: L.nn.functional.relu(a.t()), A)
    _raises_like(lambda L, a: L.nn.functional.relu(a > 0), A)
    for dim in (0, 1, -1):
        out, ref = _both(lambda L, a: a.softmax(dim), A)
        if ref is not None:
            np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6, atol=1e-7)
        out, ref = _both(lambda L, a: a.double().log_softmax(dim), A)
        if ref is not None:
            np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    _raises_like(lambda L, a: a.to(L.int64).softmax(0), A)
    with pytest.raises(TypeError):
        tg.tensor(A).softmax(axis=0)  # the method takes dim only, as PyTorch's
    assert tg.softmax(tg.tensor(A), axis=0).shape == (3, 4)


# ---------------------------------------------------------------- gather, topk, index_select, any/all
def test_gather_and_topk():
    i = np.array([[0, 3], [1, 1], [2, 0]])
    _check(lambda L, a, i: a.gather(1, i), A, i)
    _check(lambda L, a, i: a.gather(-1, i), A, i)
    _check(lambda L, a, i: a.gather(0, i[:2] % 3), A, i)
    _check(lambda L, v: v.gather(0, L.tensor(2)), V)
    _check(lambda L, v: v[0].gather(0, L.tensor(0)), V)
    _raises_like(lambda L, a, i: a.gather(1, i + 4), A, i, match="out of bounds")
    _raises_like(lambda L, a, i: a.gather(1, i.float()), A, i, match="int64")
    for k, dim, largest in [(2, -1, True), (1, 0, False), (0, 1, True), (3, 0, True)]:
        _check(lambda L, a: tuple(a.topk(k, dim, largest)), A)
    _check(lambda L, v: tuple(v[0].topk(1)), V)
    _check(lambda L, a: tuple((a * 1000).to(L.int64).topk(2)), A)  # distinct values: ties may pick either index
    _raises_like(lambda L, a: a.topk(5), A, match="out of range")
    _raises_like(lambda L, a: (a > 0).topk(1), A)
    w = tg.tensor(A, requires_grad=True)
    vals, idx = w.topk(1)
    vals.sum().backward()
    expect = np.zeros_like(A)
    expect[np.arange(3), A.argmax(1)] = 1
    np.testing.assert_array_equal(w.grad.numpy(), expect)
    assert idx.tolist() == A.argmax(1)[:, None].tolist()


def test_index_select_and_logical_reductions():
    i = np.array([3, 0, 0])
    _check(lambda L, a, i: a.index_select(1, i), A, i)
    _check(lambda L, a, i: a.t().index_select(0, i), A, i)
    _check(lambda L, a, i: a[0, 0].index_select(0, i[:1] * 0), A, i)
    _raises_like(lambda L, a, i: a.index_select(0, i), A, i, match="out of range")
    m = np.array([[True, False], [True, True]])
    for f in (lambda L, b: b.any(), lambda L, b: b.all(), lambda L, b: b.all(1), lambda L, b: b.any(-2, keepdim=True),
              lambda L, b: b.to(L.float32).all(), lambda L, b: b.to(L.uint8).any(1), lambda L, b: b.to(L.uint8).all(),
              lambda L, b: b[0, 0].any(), lambda L, b: b[:0].all()):
        _check(f, m)


# ---------------------------------------------------------------- x[int], x[slice], x[int, slice, ...]
@pytest.mark.parametrize("index", [0, -1, 2, slice(1, 3), slice(None, None, 2), (0, 1), (slice(None), 1),
                                   (-1, slice(1, None)), ()])
def test_basic_indices(index):
    _check(lambda L, a: a[index], A)
    x = tg.tensor(A)
    out = x[index]
    _is_view_of(out, x)
    assert out._base is x and out is not x


def test_basic_index_errors_and_recording():
    _raises_like(lambda L, a: a[3], A, match="out of range")
    _raises_like(lambda L, a: a[0, 4], A, match="out of range")
    _raises_like(lambda L, a: a[0, 0, 0], A)
    _raises_like(lambda L, a: a[0, 0][0], A)
    w = tg.tensor(A, requires_grad=True)
    (w[1] * 2).sum().backward()
    expect = np.zeros_like(A)
    expect[1] = 2
    np.testing.assert_array_equal(w.grad.numpy(), expect)
