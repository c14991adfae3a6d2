"""Tensor methods added for PyTorch API coverage: resize, storage metadata, legacy ``new``,
Python-callback fills, ``as_subclass``, ... against PyTorch when it is installed."""
import numpy as np
import pytest

import tapegrad as tg


def test_resize_in_place_keeps_the_leading_elements():
    x = tg.arange(6.0)
    v = x._version
    assert x.resize_(2, 2) is x and x.tolist() == [[0.0, 1.0], [2.0, 3.0]] and x._version == v + 1
    assert x.resize_((2, 3)).tolist() == [[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]  # grown: zeros
    assert x.resize_as_(tg.zeros(3)).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(RuntimeError, match="require grad"):
        tg.ones(2, requires_grad=True).resize_(3)
    with pytest.raises(RuntimeError):
        x.resize_(-1)
    torch = pytest.importorskip("torch")
    t = torch.arange(6.0)
    assert t.resize_(2, 2).tolist() == [[0.0, 1.0], [2.0, 3.0]]


def test_out_of_place_resize_is_a_reshape():
    a = tg.arange(6.0, requires_grad=True)
    y = a.resize(2, 3)
    assert y.shape == (2, 3) and a.resize_as(tg.zeros(3, 2)).shape == (3, 2)
    (y * tg.arange(6.0).reshape(2, 3)).sum().backward()
    assert a.grad.tolist() == list(range(6))
    with pytest.raises(RuntimeError):
        a.resize(4)
    torch = pytest.importorskip("torch")
    assert torch.arange(6.0).resize(2, 3).tolist() == tg.arange(6.0).resize(2, 3).tolist()


def test_storage_offset_and_dim_order_as_pytorch():
    torch = pytest.importorskip("torch")
    x, t = tg.arange(24.0).reshape(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4)
    for f in (lambda z: z, lambda z: z[1], lambda z: z[:, 1:, 2:], lambda z: z.permute(2, 0, 1),
              lambda z: z.transpose(0, 1)[1, :, 3]):
        assert f(x).storage_offset() == f(t).storage_offset()
        assert f(x).dim_order() == f(t).dim_order()
    assert x.const_data_ptr() == x.data_ptr()


def test_legacy_new_and_new_empty_strided():
    torch = pytest.importorskip("torch")
    x, t = tg.zeros(2, dtype=tg.float64), torch.zeros(2, dtype=torch.float64)
    for args in ((2, 3), ([1, 2],), ()):
        a, b = x.new(*args), t.new(*args)
        assert a.shape == tuple(b.shape) and str(a.dtype) == str(b.dtype).replace("torch.", "tapegrad.")
    assert x.new([1, 2]).tolist() == [1.0, 2.0]
    s = x.new_empty_strided((2, 3), (3, 1))
    assert s.shape == (2, 3) and s.dtype == tg.float64
    assert x.new_empty_strided((2,), (1,), dtype=tg.int32).dtype == tg.int32
    with pytest.raises(RuntimeError):
        x.new_empty_strided((2, 3), (1,))


def test_python_callback_fills():
    torch = pytest.importorskip("torch")
    x, t = tg.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])
    assert x.apply_(lambda v: v * v) is x
    t.apply_(lambda v: v * v)
    x.map_(tg.tensor([1.0]), lambda a, b: a - b)
    t.map_(torch.tensor([1.0]), lambda a, b: a - b)
    x.map2_(tg.ones(3), tg.tensor([2.0, 0.0, 1.0]), lambda a, b, c: a * c + b)
    t.map2_(torch.ones(3), torch.tensor([2.0, 0.0, 1.0]), lambda a, b, c: a * c + b)
    assert x.tolist() == t.tolist()
    with pytest.raises(RuntimeError, match="requires grad"):
        tg.ones(2, requires_grad=True).apply_(abs)


def test_as_subclass_predicates_and_views():
    class Marked(tg.Tensor):
        pass

    x = tg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = x.as_subclass(Marked)
    assert type(m) is Marked and m.data_ptr() == x.data_ptr()
    assert tg.tensor([2]).is_nonzero() and not tg.tensor([0.0]).is_nonzero()
    with pytest.raises(RuntimeError):
        x.is_nonzero()
    assert x.isreal().all().item()
    assert x.narrow_copy(1, 1, 2).tolist() == [[2.0, 3.0], [5.0, 6.0]]
    assert x.narrow_copy(1, 1, 2).data_ptr() != x.data_ptr()
    assert x.adjoint().tolist() == x.T.tolist() and tg.adjoint(tg.zeros(4, 2, 3)).shape == (4, 3, 2)
    with pytest.raises(RuntimeError):
        tg.ones(3).adjoint()
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        torch.ones(3).adjoint()
    with pytest.raises(RuntimeError):
        torch.tensor([[1.0, 2.0]]).is_nonzero()


_X = np.arange(6.0).reshape(1, 6, 1) % 3


@pytest.mark.parametrize("call, want", [
    (lambda t: t.squeeze(0, 2), _X.reshape(6)), (lambda t: t.squeeze((0, 2)), _X.reshape(6)),
    (lambda t: t.squeeze(dim=2), _X.reshape(1, 6)), (lambda t: t.squeeze(), _X.reshape(6)),
    (lambda t: t.squeeze(1, 0), _X.reshape(6, 1)), (lambda t: t.clone().squeeze_(0, 2), _X.reshape(6)),
    (lambda t: t.count_nonzero(0, 2), (_X != 0).sum((0, 2))), (lambda t: t.count_nonzero(dim=(0, 1)), [4]),
    (lambda t: t.count_nonzero(), 4), (lambda t: t.count_nonzero(2), (_X != 0).sum(2)),
])
def test_methods_take_dims_as_varargs(call, want):
    got = call(tg.tensor(_X))
    want = np.asarray(want)
    assert tuple(got.shape) == want.shape and got.tolist() == want.tolist()
    try:
        import torch
    except ImportError:
        return
    assert call(torch.tensor(_X)).tolist() == got.tolist()


@pytest.mark.parametrize("name", ["hsplit", "vsplit", "dsplit"])
@pytest.mark.parametrize("args, kw", [((2,), {}), (([1, 3],), {}), ((1, 3), {}), ((), {"sections": 2}),
                                      ((), {"indices": [1]})])
def test_nsplit_methods_take_indices_as_varargs(name, args, kw):
    x = np.arange(64.0).reshape(4, 4, 4)
    got = [t.tolist() for t in getattr(tg.tensor(x), name)(*args, **kw)]
    dim = {"hsplit": 1, "vsplit": 0, "dsplit": 2}[name]
    where = args[0] if len(args) == 1 else list(args) if args else kw.get("sections", kw.get("indices"))
    assert got == [a.tolist() for a in np.array_split(x, where, axis=dim)] if isinstance(where, int) else \
        got == [a.tolist() for a in np.split(x, where, axis=dim)]
    with pytest.raises(TypeError, match=f"{name}\\(\\) takes the sections or the indices"):
        getattr(tg.tensor(x), name)()
    with pytest.raises(TypeError, match="unexpected keyword argument 'dim'"):
        getattr(tg.tensor(x), name)(2, dim=0)


def test_squeeze_refuses_dims_twice():
    with pytest.raises(TypeError, match="squeeze\\(\\) got multiple values for argument 'dim'"):
        tg.ones(1, 2).squeeze(0, dim=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'axis0'"):
        tg.ones(1, 2).count_nonzero(axis0=0)


def test_dense_tensor_answers_the_sparse_questions_as_torch():
    t = tg.ones(2, 3)
    assert t.dense_dim() == 2 and t.sparse_dim() == 0
    s = t.to_sparse()
    assert s.dense_dim() == 0 and s.sparse_dim() == 2 and s.values().tolist() == [1.0] * 6
    for name, what in (("indices", "sparse coordinate"), ("values", "sparse"), ("coalesce", "sparse coordinate"),
                       ("is_coalesced", "sparse coordinate")):
        with pytest.raises(RuntimeError, match=f"{name} expected {what} tensor layout but got Strided"):
            getattr(t, name)()


def test_lu_and_householder_methods_match_the_functions():
    rng = np.random.default_rng(0)
    A, B = tg.tensor(rng.standard_normal((3, 3))), tg.tensor(rng.standard_normal((3, 2)))
    LU, piv = A.lu()
    np.testing.assert_allclose((A @ B.lu_solve(LU, piv)).numpy(), B.numpy(), atol=1e-12)
    assert A.lu(get_infos=True)[2].tolist() == 0
    a, tau = A.geqrf()
    Q = a.orgqr(tau)
    np.testing.assert_allclose((Q.mT @ Q).numpy(), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(a.ormqr(tau, B).numpy(), (Q @ B).numpy(), atol=1e-12)
    np.testing.assert_allclose(a.ormqr(tau, B, transpose=True).numpy(), (Q.mT @ B).numpy(), atol=1e-12)
