"""The small calls whose work moved into C (issue 12's per-op overhead): ``dim``/``ndim``/``numel``
read from the array's head, the size arguments of ``view``/``reshape``/``expand``/``new_zeros``
(``_C._sizes``, ``_C._view_shape``), the broadcast view (``_C._expand_view``), the in-place
``add_``/``sub_``/``mul_``/``div_``/``copy_`` that record nothing (``_C._inplace_arith``,
``_C._copy_tensor``), cat's and stack's arrays (``_C._join_arrays``) and clamp's unrecorded kernel
call. Each gives what the general path gives (values to the bit, dtype, views and version
counters, errors) and steps aside where autograd must record; PyTorch is the oracle where
installed (benchmarks/bench_small_calls.py times these calls)."""
from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.ops import _util, shape as _shape

try:
    import torch
except ImportError:  # optional: the oracle
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here")
rng = np.random.default_rng(12)
A = rng.standard_normal((3, 4)).astype(np.float32)


def _error_class(fn, L, *args):
    with pytest.raises(Exception) as e:
        fn(L, *args)
    return type(e.value), str(e.value)


# ---------------------------------------------------------------- dim, ndim, numel
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (2, 0, 4), (1, 1, 1, 1)])
def test_dim_ndim_numel_read_from_the_array(shape):
    x = tg.zeros(shape)
    a = np.zeros(shape)
    assert x.dim() == x.ndim == x.ndimension() == a.ndim
    assert x.numel() == x.nelement() == a.size
    assert type(x.dim()) is int and type(x.numel()) is int and type(x.ndim) is int
    p = tg.nn.Parameter(tg.zeros(shape))  # a subclass: the same C methods
    assert p.dim() == a.ndim and p.numel() == a.size
    if torch is not None:
        t = torch.zeros(shape)
        assert (x.dim(), x.ndim, x.numel(), x.nelement()) == (t.dim(), t.ndim, t.numel(), t.nelement())


def test_dim_and_numel_of_a_sparse_tensor_ask_its_storage():
    s = tg.tensor([[0.0, 2.0], [3.0, 0.0]]).to_sparse()
    assert s.dim() == s.ndim == 2 and s.numel() == 4


def test_ndim_is_read_only():
    with pytest.raises(AttributeError):
        tg.zeros(2).ndim = 3


# ---------------------------------------------------------------- size arguments in C
def test_sizes_reads_ints_and_one_sequence_and_leaves_the_rest():
    assert _C._sizes((2, 3)) == (2, 3)
    assert _C._sizes(((2, 3),)) == (2, 3) and type(_C._sizes(([2, 3],))) is tuple
    assert _C._sizes((tg.Size([2, 3]),)) == (2, 3)
    assert _C._sizes(()) == ()
    for odd in [(2.0,), (True, 2), (np.int64(2),), ((2, 3.0),), ("2",), ({2, 3},)]:
        assert _C._sizes(odd) is None, odd


def test_view_shape_resolves_minus_one_and_refuses_what_does_not_fill():
    a = np.zeros((4, 6))
    assert _C._view_shape((24,), a) == (24,)
    assert _C._view_shape((-1,), a) == (24,)
    assert _C._view_shape((2, -1, 3), a) == (2, 4, 3)
    assert _C._view_shape(((3, -1),), a) == (3, 8)
    for bad in [(5, -1), (-1, -1), (2, -2, 6), (25,), (0, -1), (2.0, 12)]:
        assert _C._view_shape(bad, a) is None, bad
    assert _C._view_shape((0, -1), np.zeros((0, 3))) is None  # ambiguous: the Python path refuses it
    assert _C._view_shape((-1,), [1, 2]) is None  # not an ndarray


@pytest.mark.parametrize("call", [
    lambda x: x.reshape(4, 3), lambda x: x.reshape((4, 3)), lambda x: x.reshape([2, -1]),
    lambda x: x.reshape(-1), lambda x: x.reshape(x.shape), lambda x: x.reshape(shape=(6, 2)),
    lambda x: x.reshape(np.int64(12)), lambda x: x.view(4, 3), lambda x: x.view(-1, 6), lambda x: x.view((12,)),
    lambda x: x.view(size=(2, 6)), lambda x: x.reshape(1, 3, 1, 4), lambda x: x.view(3, 4),
])
def test_reshape_and_view_forms_match_pytorch_and_stay_views(call):
    x = tg.tensor(A)
    y = call(x)
    assert y._version == x._version == 0
    y.add_(1.0)  # a view: the base sees the write and shares the version counter
    assert x._version == y._version == 1
    np.testing.assert_array_equal(x.numpy().reshape(-1), (A + 1).reshape(-1))
    if torch is not None:
        t = torch.tensor(A)
        assert tuple(y.shape) == tuple(call(t).shape)


@pytest.mark.parametrize("call", [
    lambda L, x: x.reshape(5, -1), lambda L, x: x.reshape(-1, -1), lambda L, x: x.reshape(2, -2, 3),
    lambda L, x: x.view(13), lambda L, x: x.view(2.0, 6), lambda L, x: x.reshape((2, 6.5)),
    lambda L, x: x.view(0, -1), lambda L, x: x.t().view(12),
])
@needs_torch
def test_reshape_and_view_errors_are_pytorchs_class(call):
    cls, msg = _error_class(call, tg, tg.tensor(A))
    ref, _ = _error_class(call, torch, torch.tensor(A))
    assert issubclass(cls, ref) or issubclass(ref, cls), (cls, ref, msg)


def test_reshape_of_a_transposed_input_is_a_copy_with_its_own_counter():
    x = tg.tensor(A)
    y = x.t().reshape(12)
    assert y._base is None
    y.add_(1.0)
    assert x._version == 0
    np.testing.assert_array_equal(x.numpy(), A)


def test_reshape_records_and_its_gradient_flows():
    x = tg.tensor(A, requires_grad=True)
    (x.reshape(4, 3) * tg.arange(12.0).reshape(4, 3)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(12.0, dtype=np.float32).reshape(3, 4))


# ---------------------------------------------------------------- expand and broadcast views
@pytest.mark.parametrize("src,sizes", [
    ((4,), (3, 4)), ((4,), (2, 3, 4)), ((1, 4), (3, 4)), ((3, 1), (3, 5)), ((3, 1), (-1, 5)),
    ((3, 4), (3, 4)), ((3, 4), (1, 3, 4)), ((), (2, 2)), ((0,), (3, 0)), ((1,), (0,)),
])
def test_expand_matches_pytorch(src, sizes):
    a = rng.standard_normal(src).astype(np.float32)
    y = tg.tensor(a).expand(*sizes)
    ref = np.broadcast_to(a, tuple(n if n != -1 else a.shape[i - len(sizes) + a.ndim]
                                   for i, n in enumerate(sizes)))
    np.testing.assert_array_equal(y.numpy(), ref)
    if torch is not None:
        assert tuple(y.shape) == tuple(torch.tensor(a).expand(*sizes).shape)


def test_expand_of_a_transposed_input_reads_its_strides():
    a = rng.standard_normal((4, 3)).astype(np.float32)
    x = tg.tensor(a).t()[None]  # (1, 3, 4), not contiguous
    np.testing.assert_array_equal(x.expand(2, 3, 4).numpy(), np.broadcast_to(a.T[None], (2, 3, 4)))


def test_expand_views_are_writable_only_where_nothing_repeats():
    x = tg.zeros(4)
    y = x.expand(1, 1, 4)  # only dims of size 1 added: a writable view, as PyTorch's
    y[0, 0, 1] = 5.0
    assert x[1].item() == 5.0 and x._version == y._version == 1
    z = x.expand(4)  # the same shape: a new view, writable
    assert z is not x
    z[0] = 2.0
    assert x[0].item() == 2.0
    r = x.expand(3, 4)  # elements repeat: refused, as PyTorch refuses writes into an expanded tensor
    with pytest.raises(RuntimeError):
        r.add_(1.0)
    with pytest.raises(RuntimeError):
        r.copy_(tg.ones(3, 4))
    np.testing.assert_array_equal(x.numpy(), [2.0, 5.0, 0.0, 0.0])


def test_expand_of_a_read_only_array_stays_read_only():
    a = np.zeros(4, np.float32)
    a.flags.writeable = False
    v = _C._expand_view(a, (1, 4), True)
    assert not v.flags.writeable and v.base is a


@pytest.mark.parametrize("call", [
    lambda L, v: v.expand(3, 5), lambda L, v: v.expand(-1, 4),
    lambda L, v: v.expand(2), lambda L, v: v.expand(3, -2), lambda L, v: v.expand(2.0, 4),
])
@needs_torch
def test_expand_errors_are_pytorchs_class(call):
    a = rng.standard_normal(4).astype(np.float32)
    cls, msg = _error_class(call, tg, tg.tensor(a))
    ref, _ = _error_class(call, torch, torch.tensor(a))
    assert issubclass(cls, ref) or issubclass(ref, cls), (cls, ref, msg)


@needs_torch
def test_expand_gradient_matches_pytorch():
    a = rng.standard_normal((3, 1)).astype(np.float64)
    w = rng.standard_normal((2, 3, 5))
    x = tg.tensor(a, requires_grad=True)
    (x.expand(2, 3, 5) * tg.tensor(w)).sum().backward()
    t = torch.tensor(a, requires_grad=True)
    (t.expand(2, 3, 5) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("src,shape", [((4,), (3, 4)), ((), (2, 3)), ((3, 1), (2, 3, 5)), ((1,), (1,))])
def test_broadcast_view_is_numpys_broadcast_to(src, shape):
    a = rng.standard_normal(src)
    for arr in (a, np.asfortranarray(a) if a.ndim > 1 else a):
        v = _util.broadcast_view(arr, shape)
        r = np.broadcast_to(arr, shape)
        assert v.shape == r.shape and not v.flags.writeable
        assert [st for st, n in zip(v.strides, shape) if n > 1] == [st for st, n in zip(r.strides, shape) if n > 1]
        np.testing.assert_array_equal(v, r)
    with pytest.raises(ValueError):
        _util.broadcast_view(np.zeros(3), (2, 4))  # numpy's error where the shapes do not broadcast


# ---------------------------------------------------------------- in-place arithmetic and copy_
_OPS = [("add_", np.add), ("sub_", np.subtract), ("mul_", np.multiply), ("div_", np.true_divide)]


@pytest.mark.parametrize("name,ufunc", _OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("other_shape", [(8, 16), (16,), (1, 16), ()])
def test_inplace_arith_is_numpys_to_the_bit(name, ufunc, dtype, other_shape):
    a = rng.standard_normal((8, 16)).astype(dtype)
    b = (rng.standard_normal(other_shape) + 3).astype(dtype)
    x = tg.tensor(a)
    out = getattr(x, name)(tg.tensor(b))
    assert out is x and x._version == 1
    np.testing.assert_array_equal(x.numpy(), ufunc(a, b))
    if torch is not None:
        t = torch.tensor(a)
        getattr(t, name)(torch.tensor(b))
        np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name,ufunc", _OPS)
def test_inplace_arith_on_itself_and_through_views(name, ufunc):
    a = rng.standard_normal((4, 6)) + 3
    x = tg.tensor(a)
    getattr(x, name)(x)
    np.testing.assert_array_equal(x.numpy(), ufunc(a, a))
    base = tg.tensor(a)
    row = base[1]
    getattr(row, name)(tg.ones(6) * 2)
    assert base._version == row._version == 1
    np.testing.assert_array_equal(base.numpy()[1], ufunc(a[1], 2.0))
    np.testing.assert_array_equal(base.numpy()[0], a[0])
    col = tg.tensor(a).t()  # not contiguous: numpy's ufunc writes it
    getattr(col, name)(tg.tensor(a.T.copy()))
    np.testing.assert_array_equal(col.numpy(), ufunc(a.T, a.T))


@needs_torch
@pytest.mark.parametrize("call", [
    lambda L, x, y: x.add_(y[:, :2]),  # shapes that don't broadcast onto x
    lambda L, x, y: x.expand(2, 4, 6).add_(y),  # an expanded target
    lambda L, x, y: x.float().add_(y.reshape(2, 3, 4)),
])
def test_inplace_arith_errors_are_pytorchs_class(call):
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    cls, msg = _error_class(call, tg, tg.tensor(a), tg.tensor(b))
    ref, _ = _error_class(call, torch, torch.tensor(a), torch.tensor(b))
    assert issubclass(cls, ref) or issubclass(ref, cls), (cls, ref, msg)


@needs_torch
def test_inplace_arith_steps_aside_for_autograd():
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    leaf = tg.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.add_(tg.tensor(b))
    with tg.no_grad():  # nothing records: the fast path writes the leaf
        leaf.mul_(tg.tensor(b))
    np.testing.assert_array_equal(leaf.detach().numpy(), a * b)
    # recorded: a non-leaf updated in place, and an input that requires grad
    for L in (tg, torch):
        x = L.tensor(a, requires_grad=True)
        y = L.tensor(b, requires_grad=True)
        z = x * 1.0
        z.mul_(y)
        z.add_(y)
        z.sum().backward()
        if L is tg:
            gx, gy = x.grad.numpy(), y.grad.numpy()
        else:
            np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12)
            np.testing.assert_allclose(gy, y.grad.numpy(), rtol=1e-12)


def test_inplace_arith_mixed_dtypes_and_numbers_take_the_general_path():
    x = tg.ones(3, dtype=tg.float32)
    x.add_(tg.tensor([0.5, 0.25, 0.125], dtype=tg.float64))
    assert x.dtype == tg.float32 and x.tolist() == [1.5, 1.25, 1.125]
    i = tg.tensor([1, 2, 3])
    i.mul_(tg.tensor([2, 2, 2]))
    assert i.tolist() == [2, 4, 6] and i._version == 1
    assert _C._inplace_arith(0, x, 1.0) is False  # a number: the Python path's
    x.add_(1.0)
    assert x.tolist() == [2.5, 2.25, 2.125]


def test_inplace_arith_and_copy_tell_allow_mutation_on_saved_tensors():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with tg.autograd.graph.allow_mutation_on_saved_tensors():
        b = a * 1.0
        c = b * b  # saves b
        with tg.no_grad():
            b.add_(tg.ones(3))
            b.copy_(tg.zeros(3))
        c.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 4.0, 6.0])  # b's value when c was computed


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_, np.complex64])
@pytest.mark.parametrize("src_shape", [(4, 6), (6,), (1, 6), ()])
def test_copy_matches_numpys_assignment(dtype, src_shape):
    a = (rng.standard_normal((4, 6)) * 3).astype(dtype)
    b = (rng.standard_normal(src_shape) * 3).astype(dtype)
    x = tg.tensor(a)
    assert x.copy_(tg.tensor(b)) is x and x._version == 1
    np.testing.assert_array_equal(x.numpy(), np.broadcast_to(b, (4, 6)))
    if torch is not None:
        t = torch.tensor(a)
        t.copy_(torch.tensor(b))
        np.testing.assert_array_equal(x.numpy(), t.numpy())


def test_copy_through_views_and_onto_itself():
    a = rng.standard_normal((4, 6))
    base = tg.tensor(a)
    base[1:3].copy_(tg.zeros(2, 6))
    assert base._version == 1
    np.testing.assert_array_equal(base.numpy()[1:3], 0.0)
    np.testing.assert_array_equal(base.numpy()[0], a[0])
    x = tg.tensor(a)
    x.copy_(x)
    np.testing.assert_array_equal(x.numpy(), a)
    x.t().copy_(tg.tensor(a.T * 2))  # a transposed target
    np.testing.assert_array_equal(x.numpy(), a * 2)


@needs_torch
def test_copy_records_when_the_source_requires_grad():
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    for L in (tg, torch):
        s = L.tensor(b, requires_grad=True)
        x = L.tensor(a)
        x.copy_(s)
        (x * L.tensor(a)).sum().backward()
        if L is tg:
            g = s.grad.numpy()
        else:
            np.testing.assert_allclose(g, s.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError):
        tg.tensor(a, requires_grad=True).copy_(tg.tensor(a))
    x = tg.zeros(3, 4, dtype=tg.float32)
    x.copy_(tg.tensor(a))  # another dtype: cast, as PyTorch's
    np.testing.assert_array_equal(x.numpy(), a.astype(np.float32))
    with pytest.raises(RuntimeError):
        tg.zeros(3, 4).copy_(tg.zeros(2, 4))


# ---------------------------------------------------------------- clamp without a node
@pytest.mark.parametrize("lo,hi", [(0, 1), (None, 0.1), (-0.3, None), (0.7, 0.2), (-(2 ** 53), 2 ** 53),
                                   (2 ** 60 + 1, None), (float("nan"), 1.0), (0, float("inf"))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clamp_unrecorded_is_the_recorded_forward(lo, hi, dtype):
    a = (rng.standard_normal((5, 7)) * 2).astype(dtype)
    a[0, 0] = -0.0
    for arr in (a, np.asfortranarray(a), a[:, ::2]):
        fast = tg.tensor(arr).clamp(lo, hi)
        x = tg.tensor(arr, requires_grad=True)
        slow = x.clamp(lo, hi)
        assert fast.dtype == slow.dtype and fast.grad_fn is None and slow.grad_fn is not None
        np.testing.assert_array_equal(fast.numpy(), slow.detach().numpy())
        assert np.array_equal(np.signbit(fast.numpy()), np.signbit(slow.detach().numpy()))
        if torch is not None:
            np.testing.assert_array_equal(fast.numpy(), torch.tensor(arr).clamp(lo, hi).numpy())


def test_clamp_without_bounds_still_refused():
    with pytest.raises(RuntimeError):
        tg.ones(3).clamp()


# ---------------------------------------------------------------- new_zeros and friends
@pytest.mark.parametrize("call", [
    lambda L, x: x.new_zeros(3), lambda L, x: x.new_zeros(2, 3), lambda L, x: x.new_zeros((2, 3)),
    lambda L, x: x.new_zeros([0]), lambda L, x: x.new_zeros(()), lambda L, x: x.new_ones(4),
    lambda L, x: x.new_ones(size=(2, 2)), lambda L, x: x.new_zeros(3, dtype=L.int64),
    lambda L, x: x.new_zeros(3, requires_grad=True), lambda L, x: x.new_empty(2, 2).zero_(),
    lambda L, x: x.new_zeros(np.int64(3)), lambda L, x: x.new_ones(x.shape),
])
def test_new_factories_match_pytorch(call):
    x = tg.ones(2, 3, dtype=tg.float64)
    y = call(tg, x)
    assert y.dtype in (tg.float64, tg.int64) and y._base is None and y.grad_fn is None
    if torch is not None:
        t = call(torch, torch.ones(2, 3, dtype=torch.float64))
        assert tuple(y.shape) == tuple(t.shape) and y.requires_grad == t.requires_grad
        np.testing.assert_array_equal(y.detach().numpy(), t.detach().numpy())
        assert str(t.dtype).replace("torch.", "") == str(y.dtype).replace("tapegrad.", "")


@needs_torch
@pytest.mark.parametrize("call", [lambda L, x: x.new_zeros(-1), lambda L, x: x.new_zeros(2.5),
                                  lambda L, x: x.new_zeros(2, size=(2,))])
def test_new_factories_errors_are_pytorchs_class(call):
    cls, msg = _error_class(call, tg, tg.ones(2))
    ref, _ = _error_class(call, torch, torch.ones(2))
    assert issubclass(cls, ref) or issubclass(ref, cls), (cls, ref, msg)


# ---------------------------------------------------------------- cat and stack
@pytest.mark.parametrize("dim", [0, 1, -1, 2, -3])
def test_stack_matches_pytorch(dim):
    arrays = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3)]
    if not -3 <= dim < 3:
        return
    y = tg.stack([tg.tensor(a) for a in arrays], dim)
    np.testing.assert_array_equal(y.numpy(), np.stack(arrays, dim))
    assert y.dtype == tg.float32
    if torch is not None:
        assert tuple(y.shape) == tuple(torch.stack([torch.tensor(a) for a in arrays], dim).shape)


def test_stack_and_cat_take_zero_d_tuples_and_generators():
    s = tg.stack((tg.tensor(1.0), tg.tensor(2.0)))
    assert s.tolist() == [1.0, 2.0]
    assert tg.stack(tg.tensor([float(i)]) for i in range(3)).shape == (3, 1)
    assert tg.cat(tg.ones(2) for _ in range(2)).shape == (4,)
    assert tg.cat((tg.ones(2, 1), tg.zeros(2, 3)), 1).tolist() == [[1, 0, 0, 0], [1, 0, 0, 0]]


@needs_torch
@pytest.mark.parametrize("call", [
    lambda L, a, b: L.stack([a, b]), lambda L, a, b: L.stack([a, a], 3), lambda L, a, b: L.stack([a, a], 2.0),
    lambda L, a, b: L.cat([a, b], 1), lambda L, a, b: L.cat([a, a], 2), lambda L, a, b: L.cat([a, b.reshape(-1)]),
    lambda L, a, b: L.stack([]), lambda L, a, b: L.cat([a[0, 0], a[0, 0]]),
])
def test_stack_and_cat_errors_are_pytorchs_class(call):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 3))
    cls, msg = _error_class(call, tg, tg.tensor(a), tg.tensor(b))
    ref, _ = _error_class(call, torch, torch.tensor(a), torch.tensor(b))
    assert issubclass(cls, ref) or issubclass(ref, cls), (cls, ref, msg)


def test_stack_and_cat_promote_and_record_as_before():
    s = tg.stack([tg.ones(2, dtype=tg.float32), tg.ones(2, dtype=tg.float64)])
    assert s.dtype == tg.float64
    c = tg.cat([tg.ones(2, dtype=tg.int64), tg.ones(2, dtype=tg.float32)])
    assert c.dtype == tg.float32
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    p = tg.nn.Parameter(tg.tensor([3.0, 4.0]))
    for joined in (tg.stack([x, tg.ones(2), p], 1), tg.cat([x, tg.ones(2), p])):
        assert joined.grad_fn is not None
        (joined * joined).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    np.testing.assert_array_equal(p.grad.numpy(), [12.0, 16.0])
    with tg.no_grad():
        assert tg.stack([x, x]).grad_fn is None and tg.cat([x, x]).grad_fn is None


def test_join_arrays_leaves_subclasses_and_mixed_arrays_to_python():
    a, b = tg.ones(2), tg.zeros(2)
    assert [r is t._data for r, t in zip(_C._join_arrays([a, b], True), [a, b])] == [True, True]
    assert _C._join_arrays([a, tg.nn.Parameter(tg.ones(2))], False) is None
    assert _C._join_arrays([a, tg.ones(3)], True) is None and _C._join_arrays([a, tg.ones(3)], False) is not None
    assert _C._join_arrays([a, tg.ones(1, 2)], False) is None
    assert _C._join_arrays([a, tg.ones(2, dtype=tg.float64)], False) is None
    assert _C._join_arrays([], False) is None and _C._join_arrays([a, 1.0], False) is None
    assert _C._join_arrays(iter([a]), False) is None
    x = tg.ones(2, requires_grad=True)
    assert _C._join_arrays([a, x], False) is None
    with tg.no_grad():
        assert _C._join_arrays([a, x], False) is not None


# ---------------------------------------------------------------- the methods are the ops
def test_methods_are_the_ops_themselves():
    for name in ("expand", "reshape", "view", "permute"):
        assert getattr(tg.Tensor, name) is getattr(_shape, name), name
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    idx = tg.tensor([1, 0]).expand(2, 2)
    assert x.gather(1, idx).tolist() == [[2.0, 1.0], [4.0, 3.0]]
    assert x.gather(1, idx, sparse_grad=False).tolist() == [[2.0, 1.0], [4.0, 3.0]]
    assert x.permute(dims=(1, 0)).tolist() == [[1.0, 3.0], [2.0, 4.0]]


# ---------------------------------------------------------------- permute, flatten and topk
def test_permute_remembers_only_permutations():
    x = tg.tensor(A)
    for _ in range(2):  # the second call reads the checked form back
        assert x.permute(1, 0).shape == (4, 3) and x.permute((-1, 0)).shape == (4, 3)
        assert x.permute([1, 0]).tolist() == A.T.tolist()
        with pytest.raises(RuntimeError, match="repeated dim"):
            x.permute(0, 0)
        with pytest.raises(RuntimeError, match="number of dims"):
            x.permute(0, 1, 2)
        with pytest.raises(IndexError):
            x.permute(0, 2)
    y = tg.zeros(2, 3, 4).permute(-1, 0, 1)
    assert y.shape == (4, 2, 3)
    p = x.permute(1, 0)
    p.add_(1.0)
    assert x._version == 1 and np.array_equal(x.numpy(), A + 1)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (1, 5), (0, 3)])
def test_flatten_of_a_contiguous_tensor_is_a_view(shape):
    a = rng.standard_normal(shape).astype(np.float32)
    x = tg.tensor(a)
    y = x.flatten()
    assert y.shape == (a.size,) and y is not x
    np.testing.assert_array_equal(y.numpy(), a.reshape(-1))
    if a.size:
        y.add_(1.0)
        assert x._version == 1
        np.testing.assert_array_equal(x.numpy(), a + 1)
    z = tg.tensor(a).t().flatten() if len(shape) == 2 else tg.tensor(a).flatten(1)  # the general path
    ref = a.T.reshape(-1) if len(shape) == 2 else a.reshape(a.shape[0], -1)
    np.testing.assert_array_equal(z.numpy(), ref)
    with pytest.raises(TypeError):
        x.flatten(0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_unrecorded_is_the_recorded_gather(dtype, largest):
    a = (rng.standard_normal((5, 6)) * 4).astype(dtype)
    for arr in (a, a.T):  # the transposed one: the kernel reads a contiguous copy, the gather the view
        fast = tg.tensor(arr).topk(3, 1, largest)
        if np.dtype(dtype).kind == "f":
            x = tg.tensor(arr, requires_grad=True)
            slow = x.topk(3, 1, largest)
            assert slow.values.grad_fn is not None and fast.values.grad_fn is None
            np.testing.assert_array_equal(fast.values.numpy(), slow.values.detach().numpy())
            np.testing.assert_array_equal(fast.indices.numpy(), slow.indices.numpy())
            slow.values.sum().backward()
            assert x.grad.sum().item() == arr.shape[0] * 3
        assert fast.values.dtype == tg.tensor(arr).dtype and fast.indices.dtype == tg.int64
        if torch is not None:
            t = torch.tensor(arr).topk(3, 1, largest)
            np.testing.assert_array_equal(fast.values.numpy(), t.values.numpy())


def test_topk_refuses_bool_and_complex_as_pytorch():
    with pytest.raises(RuntimeError, match="bool"):
        tg.tensor([True, False]).topk(1)
    with pytest.raises(NotImplementedError):
        tg.tensor([1 + 1j]).topk(1)


def test_reshape_of_an_empty_tensor_keeps_its_own_counter_as_before():
    x = tg.zeros(0, 3)
    y = x.reshape(3, 0)
    assert y._base is None and y._version == 0
    assert x.view(3, 0)._base is x  # view: a view all the same


# ---------------------------------------------------------------- x[i] and x.max() without the general parsing
@pytest.mark.parametrize("index", [[1, 0], [[0, 2], [1, 1]], [-1], [5], [0]])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8])
def test_index_by_an_integer_tensor_matches_pytorch(index, dtype):
    x = tg.tensor(A)
    i = np.array(index, dtype)
    if np.any(i >= 3):
        with pytest.raises(IndexError, match="out of bounds|invalid"):
            x[tg.tensor(i)]
        return
    y = x[tg.tensor(i)]
    np.testing.assert_array_equal(y.numpy(), A[i])
    if torch is not None:
        np.testing.assert_array_equal(y.numpy(), torch.tensor(A)[torch.tensor(i.astype(np.int64))].numpy())
    assert y._base is None and y._version == 0  # a copy, with its own counter
    y.add_(1.0)
    assert x._version == 0
    w = tg.tensor(A.astype(np.float64), requires_grad=True)
    w[tg.tensor(i)].sum().backward()
    ref = np.zeros(A.shape)
    np.add.at(ref, i, 1.0)
    np.testing.assert_array_equal(w.grad.numpy(), ref)


def test_index_by_a_byte_or_bool_tensor_is_still_a_mask():
    x = tg.tensor(A)
    m = np.array([True, False, True])
    np.testing.assert_array_equal(x[tg.tensor(m)].numpy(), A[m])
    np.testing.assert_array_equal(x[tg.tensor(m.astype(np.uint8))].numpy(), A[m])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_max_and_min_of_all_elements(dtype):
    a = (rng.standard_normal((4, 5)) * 3).astype(dtype)
    x = tg.tensor(a)
    assert x.max().item() == a.max() and x.min().item() == a.min()
    assert x.max().shape == () and x.max().dtype == x.dtype
    if np.dtype(dtype).kind == "f":
        w = tg.tensor(a, requires_grad=True)
        w.max().backward()
        assert w.grad.sum().item() == 1.0
    with pytest.raises(RuntimeError, match="numel"):
        tg.zeros(0, dtype=tg.float32).max()
    with pytest.raises(NotImplementedError):
        tg.tensor([1j, 2j]).min()
