"""PyTorch names added for API coverage over existing ops: torch.i0/igamma/igammac (and their
method, in-place and out= forms), torch.lu/lu_solve/lu_unpack, is_neg, conj_physical_,
Tensor.cfloat/cdouble; checked against torch in float32 and float64."""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

R = np.random.default_rng(11)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_i0_igamma_igammac_forms_match_torch(dtype):
    x = (np.abs(R.standard_normal((3, 5))) + 0.1).astype(dtype)
    a = (np.abs(R.standard_normal((3, 5))) + 0.2).astype(dtype)
    tol = dict(rtol=1e-5) if dtype == "float32" else dict(rtol=1e-12)
    for name in ("i0", "igamma", "igammac"):
        args_g = (tg.tensor(a),) if name == "i0" else (tg.tensor(a), tg.tensor(x))
        args_t = (torch.tensor(a),) if name == "i0" else (torch.tensor(a), torch.tensor(x))
        want = getattr(torch, name)(*args_t).numpy()
        got = getattr(tg, name)(*args_g)
        assert got.dtype == getattr(tg, dtype)
        np.testing.assert_allclose(got.numpy(), want, **tol)
        np.testing.assert_allclose(getattr(args_g[0], name)(*args_g[1:]).numpy(), want, **tol)
        out = tg.empty(3, 5, dtype=getattr(tg, dtype))
        getattr(tg, name)(*args_g, out=out)
        np.testing.assert_allclose(out.numpy(), want, **tol)
        inplace = tg.tensor(a)
        getattr(inplace, name + "_")(*args_g[1:])
        np.testing.assert_allclose(inplace.numpy(), want, **tol)


def test_igamma_gradient_in_x_matches_torch():
    a, x = R.uniform(0.5, 3, 6), R.uniform(0.2, 4, 6)
    res = []
    for M in (torch, tg):
        xt = M.tensor(x, requires_grad=True)
        (M.igamma(M.tensor(a), xt) * M.tensor(np.arange(6.0))).sum().backward()
        res.append(xt.grad.numpy())
    np.testing.assert_allclose(res[1], res[0], rtol=1e-10)


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 5, 5), (4, 6), (6, 3)])
def test_lu_lu_unpack_lu_solve_match_torch(shape):
    A = R.standard_normal(shape)
    LUt, pt = torch.linalg.lu_factor(torch.tensor(A))
    LUg, pg = tg.lu(tg.tensor(A))
    np.testing.assert_allclose(LUg.numpy(), LUt.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pg.numpy(), pt.numpy())
    for got, want in zip(tg.lu_unpack(LUg, pg), torch.lu_unpack(LUt, pt)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    P, L, U = tg.lu_unpack(LUg, pg)
    np.testing.assert_allclose((P @ L @ U).numpy(), A, atol=1e-12)
    assert tg.lu_unpack(LUg, pg, unpack_data=False).L.numel() == 0
    assert tg.lu_unpack(LUg, pg, unpack_pivots=False).P.numel() == 0
    if shape[-1] == shape[-2]:
        b = R.standard_normal(shape[:-1] + (2,))
        with np.errstate(all="ignore"):
            want = torch.linalg.lu_solve(LUt, pt, torch.tensor(b)).numpy()
        np.testing.assert_allclose(tg.lu_solve(tg.tensor(b), LUg, pg).numpy(), want, rtol=1e-10, atol=1e-12)


def test_lu_of_a_singular_matrix_raises_unless_infos_are_asked_for():
    with pytest.raises(RuntimeError):
        tg.lu(tg.zeros(3, 3, dtype=tg.float64))
    _, _, info = tg.lu(tg.zeros(3, 3, dtype=tg.float64), get_infos=True)
    assert int(info) == 1


def test_is_neg_conj_physical_inplace_and_complex_casts():
    x = tg.tensor([1.0, -2.0], requires_grad=True)
    assert tg.is_neg(x) is False and (-x).is_neg() is False
    z = tg.tensor([1 + 2j, -3j])
    z.conj_physical_()
    np.testing.assert_array_equal(z.numpy(), np.array([1 - 2j, 3j]))
    assert x.cfloat().dtype == tg.complex64 and x.cdouble().dtype == tg.complex128
    (x.cdouble().abs() ** 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0])


def test_tensor_type_takes_and_gives_legacy_type_names_as_torch():
    torch = pytest.importorskip("torch")
    for M in (torch, tg):
        x = M.tensor([1.5, -2.0])
        assert x.type().replace("tapegrad.", "torch.") == "torch.FloatTensor"
        assert x.double().type().endswith("DoubleTensor") and (x > 0).type().endswith("BoolTensor")
        assert x.type(M.LongTensor).tolist() == [1, -2] and x.type(M.LongTensor).dtype == M.int64
        assert x.type("torch.IntTensor").dtype == M.int32 and x.type(M.float64).dtype == M.float64
        assert x.type(M.DoubleTensor).type().endswith("DoubleTensor")
    with pytest.raises(TypeError, match="not a dtype"):
        tg.tensor([1.0]).type(dict)  # np.dtype(dict) would be object: a silent wrong cast before
    with pytest.raises(TypeError, match="CUDA"):
        tg.tensor([1.0]).type("torch.cuda.FloatTensor")
