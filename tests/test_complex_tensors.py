"""Complex tensors: dtypes, promotion, printing, views, PyTorch's gradient convention (checked by
complex finite differences and against PyTorch), and the ops that refuse complex input."""
from __future__ import annotations

import io
import sys
import threading

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import Function
from tapegrad.autograd.gradcheck import GradcheckError
from tapegrad.testing import gradcheck, gradgradcheck

RNG = np.random.default_rng(7)


def _cz(*shape):
    return tg.tensor(RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape), requires_grad=True)


# ---------------------------------------------------------------- dtypes and creation
def test_python_complex_numbers_infer_the_default_complex_dtype():
    assert tg.tensor([1 + 2j]).dtype == tg.complex64 == tg.cfloat
    assert tg.tensor(1j, dtype=tg.cdouble).dtype == tg.complex128
    prev = tg.get_default_dtype()
    tg.set_default_dtype(tg.float64)
    try:
        assert tg.tensor([1.0, 2j]).dtype == tg.complex128
    finally:
        tg.set_default_dtype(prev)
    assert tg.zeros(2, dtype="cfloat").dtype == tg.complex64  # torch's name, not numpy's (complex128)
    assert tg.from_numpy(np.zeros(2, np.complex128)).dtype == tg.complex128


def test_randn_complex_has_unit_variance_split_between_the_parts():
    z = tg.randn(20000, dtype=tg.complex128).numpy()
    assert abs(np.mean(np.abs(z) ** 2) - 1) < 0.05
    assert abs(np.var(z.real) - 0.5) < 0.03


@pytest.mark.parametrize("a, b, want", [
    (tg.ones(3), 1j, tg.complex64),                                          # float32 + weak complex scalar
    (tg.ones(3, dtype=tg.float64), 1j, tg.complex128),
    (tg.ones(3, dtype=tg.int64), 1j, tg.complex64),
    (tg.ones(3), tg.tensor(1j, dtype=tg.complex128), tg.complex64),          # a 0-d complex keeps float32's precision
    (tg.ones(3, dtype=tg.float64), tg.ones(3, dtype=tg.complex64), tg.complex128),
    (tg.ones(3, dtype=tg.complex64), 2.5, tg.complex64),
])
def test_promotion_follows_pytorch(a, b, want):
    assert (a + b).dtype == want
    assert tg.result_type(a, b) == want


def test_promotion_matches_torch_for_every_pair():
    torch = pytest.importorskip("torch")
    names = ["bool", "uint8", "int64", "float32", "float64", "complex64", "complex128"]
    for x in names:
        for y in names:
            for zero_d in (False, True):
                a, b = tg.ones(2, dtype=getattr(tg, x if x != "bool" else "bool")), tg.ones(
                    () if zero_d else 2, dtype=getattr(tg, y if y != "bool" else "bool"))
                ta, tb = torch.ones(2, dtype=getattr(torch, x)), torch.ones(() if zero_d else 2, dtype=getattr(torch, y))
                assert str(tg.result_type(a, b)) == str(torch.result_type(ta, tb)).replace("torch.", "tapegrad."), (x, y, zero_d)
            for s in (2, 2.5, 1j):
                assert str(tg.result_type(tg.ones(2, dtype=getattr(tg, x)), s)) == \
                    str(torch.result_type(torch.ones(2, dtype=getattr(torch, x)), s)).replace("torch.", "tapegrad."), (x, s)


def test_printing_matches_torch():
    torch = pytest.importorskip("torch")
    arrays = [np.array([1 + 2j, 3.5 - 1j]), np.array([[1 + 2j, -3.25 - 1j], [0.5j, 100]]), np.array([1e-8 + 1j, 2]),
              np.array([], complex), np.array([[np.nan + 1j, np.inf - 2j]]), np.array([-1 + 1e5j, 3 - 2.5j]),
              np.array(1 + 2j)]
    for a in arrays:
        for d in ("complex64", "complex128"):
            want = repr(torch.tensor(a, dtype=getattr(torch, d))).replace("torch.", "tapegrad.")
            assert repr(tg.tensor(a, dtype=getattr(tg, d))) == want
    assert repr(tg.tensor([1 + 2j], requires_grad=True)) == "tensor([1.+2.j], requires_grad=True)"


# ---------------------------------------------------------------- parts and views
def test_real_and_imag_are_views_and_conj_copies():
    z = tg.tensor([1 + 2j, 3 - 1j])
    z.real[0] = 5
    z.imag.mul_(2)
    assert z.tolist() == [5 + 4j, 3 - 2j]
    assert tg.view_as_real(z).tolist() == [[5, 4], [3, -2]]
    tg.view_as_real(z)[1, 0] = 7
    assert z[1].item() == 7 - 2j
    x = tg.ones(2)
    assert x.real is x and x.conj() is x and not x.is_complex() and z.is_complex()
    assert tg.view_as_complex(tg.tensor([[1.0, 2.0]])).tolist() == [1 + 2j]
    assert z.mH.tolist() == [[5 - 4j], [7 + 2j]] if z.ndim == 2 else z.conj().tolist() == [5 - 4j, 7 + 2j]


def test_polar_angle_abs_and_complex_agree():
    r, th = tg.tensor([2.0, 0.5]), tg.tensor([0.3, -2.0])
    z = tg.polar(r, th)
    np.testing.assert_allclose(z.abs().numpy(), r.numpy(), rtol=1e-6)
    np.testing.assert_allclose(z.angle().numpy(), th.numpy(), rtol=1e-6)
    np.testing.assert_allclose(tg.complex(z.real, z.imag).numpy(), z.numpy())


def test_polar_takes_two_float_tensors_of_one_dtype():
    """PyTorch's polar refuses integer parts and parts of two dtypes; tapegrad promoted them
    (float32 with float64 gave complex128, int64 gave complex64)."""
    with pytest.raises(RuntimeError, match=r"polar: expected object of scalar type tapegrad.float32 but got scalar "
                                           r"type tapegrad.float64"):
        tg.polar(tg.ones(2), tg.ones(2, dtype=tg.float64))
    with pytest.raises(RuntimeError, match="polar: expected both inputs to be Float or Double tensors but got "
                                           "tapegrad.int64 and tapegrad.int64"):
        tg.polar(tg.ones(2, dtype=tg.int64), tg.ones(2, dtype=tg.int64))
    with pytest.raises(TypeError, match="polar.*'angle' must be Tensor"):
        tg.polar(tg.ones(2), 1.0)
    assert tg.polar(tg.ones(2, dtype=tg.float64), tg.zeros(2, dtype=tg.float64)).dtype == tg.complex128


# ---------------------------------------------------------------- the gradient convention
def test_the_gradient_of_a_real_loss_is_dl_dx_plus_i_dl_dy():
    z = tg.tensor([1 + 2j, 3 - 1j], requires_grad=True)
    (z.abs() ** 2).sum().backward()           # |z|^2 = x^2 + y^2: gradient 2x + 2iy
    assert z.grad.tolist() == [2 + 4j, 6 - 2j]
    z.grad = None
    (z * (2 - 1j)).real.sum().backward()       # Re((2 - i)(x + iy)) = 2x + y: gradient 2 + i
    assert z.grad.tolist() == [2 + 1j, 2 + 1j]


def test_a_real_input_gets_the_real_part_of_a_complex_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * (1 + 2j)).imag.sum().backward()
    assert x.grad.dtype == tg.float32 and x.grad.tolist() == [2.0, 2.0]


def test_backward_of_a_complex_scalar_needs_an_explicit_gradient():
    z = _cz(3)
    with pytest.raises(RuntimeError, match="real scalar outputs"):
        z.sum().backward()
    z.sum().backward(tg.tensor(1 + 0j, dtype=z.dtype))
    assert np.allclose(z.grad.numpy(), 1)


def _M(z):
    """The library ``z`` belongs to (tapegrad or torch): the functions below run in both."""
    return tg if isinstance(z, tg.Tensor) else sys.modules["torch"]


COMPLEX_FUNCTIONS = {
    "exp_log": lambda z: (z.exp() + (z * z + 3).log()).sqrt(),
    "mul_div_pow": lambda z: z * z.conj() / (z + 4) + z ** 2.5 + z ** (1 + 1j) - 1 / z,
    "trig": lambda z: z.sin() * z.cos() + z.tanh() + z.sigmoid(),
    "abs_angle_sgn": lambda z: z.abs() * z.angle() + z.sgn(),
    "reductions": lambda z: z.sum(0) + z.mean(1, keepdim=True).squeeze(1)[:1] + z.prod(0),
    "matmul": lambda z: z @ z.mH + z.mT @ z,
    "parts": lambda z: _M(z).complex(z.imag, z.real * 2) + _M(z).view_as_complex(_M(z).view_as_real(z) * 3),
    "reciprocal_square": lambda z: z.reciprocal() + z.square() + z.rsqrt() + z.expm1() + z.log1p(),
    "norms_var": lambda z: (_M(z).linalg.vector_norm(z, dim=1) + z.var(0)[:3] + z.std(1) + z.norm(p=1)
                            + _M(z).linalg.norm(z)),
    "linalg": lambda z: (_M(z).linalg.inv(z) + _M(z).linalg.det(z) + _M(z).linalg.solve(z, z[0])
                         + _M(z).vdot(z[1], z[2])),
    "einsum_cumsum": lambda z: _M(z).einsum("ij,kj->ik", z, z.cumsum(0)) + _M(z).stack([z, z.flip(0)]).sum(0),
}


@pytest.mark.parametrize("name", sorted(COMPLEX_FUNCTIONS))
def test_complex_gradients_match_finite_differences(name):
    z = tg.tensor(RNG.uniform(0.5, 1.5, (3, 3)) + 1j * RNG.uniform(0.5, 1.5, (3, 3)), dtype=tg.complex128,
                  requires_grad=True)
    assert gradcheck(COMPLEX_FUNCTIONS[name], (z,))
    assert gradgradcheck(COMPLEX_FUNCTIONS[name], (z,))


@pytest.mark.parametrize("name", sorted(COMPLEX_FUNCTIONS))
def test_complex_gradients_match_torch(name):
    torch = pytest.importorskip("torch")
    a = RNG.uniform(0.5, 1.5, (3, 3)) + 1j * RNG.uniform(0.5, 1.5, (3, 3))
    fn_src = COMPLEX_FUNCTIONS[name]
    for loss in (lambda o: (o.abs() ** 2).sum(), lambda o: o.real.sum() + 2 * (o.imag.sum() if o.is_complex() else 0)):
        z, t = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        o1, o2 = fn_src(z), fn_src(t)
        np.testing.assert_allclose(o1.detach().numpy(), o2.detach().resolve_conj().numpy(), rtol=1e-10)
        loss(o1).backward()
        loss(o2).backward()
        np.testing.assert_allclose(z.grad.numpy(), t.grad.resolve_conj().numpy(), rtol=1e-9, atol=1e-12)


def test_gradcheck_catches_a_missing_conjugation():
    class BadMul(Function):  # z * c with the holomorphic derivative c, not its conjugate
        @staticmethod
        def forward(ctx, z):
            return z * (2 + 1j)

        @staticmethod
        def backward(ctx, g):
            return g * (2 + 1j)

    z = tg.tensor([1 + 1j, 2 - 1j], dtype=tg.complex128, requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(BadMul.apply, (z,))
    assert gradcheck(lambda z: z * (2 + 1j), (z,))


def test_gradcheck_matches_torch_on_complex_inputs():
    torch = pytest.importorskip("torch")
    a = RNG.standard_normal((2, 3)) + 1j * RNG.standard_normal((2, 3))
    z, t = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert gradcheck(lambda z: (z * z.conj().exp()).abs(), (z,))
    assert torch.autograd.gradcheck(lambda z: (z * z.conj().exp()).abs(), (t,))


# ---------------------------------------------------------------- what complex numbers refuse
@pytest.mark.parametrize("call", [
    lambda M, z: z < 1, lambda M, z: z >= z, lambda M, z: z.max(), lambda M, z: z.min(), lambda M, z: M.max(z, 0),
    lambda M, z: z.argmax(), lambda M, z: z.amax(0), lambda M, z: z.sort(), lambda M, z: z.topk(1),
    lambda M, z: z.clamp(0, 1), lambda M, z: M.maximum(z, z), lambda M, z: z.sign(), lambda M, z: z.floor(),
    lambda M, z: z.round(), lambda M, z: M.erf(z), lambda M, z: M.atan2(z, z), lambda M, z: z.relu(),
])
def test_ops_without_a_complex_meaning_raise_like_torch(call):
    with pytest.raises(NotImplementedError):  # a RuntimeError, as PyTorch's
        call(tg, tg.tensor([1 + 2j, 2 - 1j]))
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        call(torch, torch.tensor([1 + 2j, 2 - 1j]))


def test_other_bad_complex_input_raises():
    with pytest.raises(RuntimeError, match="non-complex"):
        tg.ones(2).imag
    with pytest.raises(RuntimeError, match="view_as_real is only supported for complex"):
        tg.view_as_real(tg.ones(2))
    with pytest.raises(RuntimeError, match="last dimension of size 2"):
        tg.view_as_complex(tg.ones(2, 3))
    with pytest.raises(RuntimeError, match="stride 1"):
        tg.view_as_complex(tg.ones(2, 4)[:, ::2])
    with pytest.raises(RuntimeError, match="same dtype|scalar type"):
        tg.complex(tg.ones(2), tg.ones(2, dtype=tg.float64))
    with pytest.raises(RuntimeError, match="same dtype|ComplexFloat"):
        tg.ones(2, 2) @ tg.ones(2, 2, dtype=tg.complex64)
    with pytest.warns(UserWarning, match="discards the imaginary part"):
        assert tg.tensor([1 + 2j]).float().tolist() == [1.0]


def test_complex_backward_from_several_threads():
    a = RNG.standard_normal((4, 4)) + 1j * RNG.standard_normal((4, 4))
    want = None
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                z = tg.tensor(a, requires_grad=True)
                (tg.fft.fft2(z * z.conj()).abs() ** 2).sum().backward()
                results.append(z.grad.numpy())
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    want = results[0]
    for r in results:
        np.testing.assert_array_equal(r, want)



def test_creation_save_load_and_formatting():
    z = tg.tensor([1 + 2j, 3 - 1j])
    assert tg.full((2,), 1j).tolist() == [1j, 1j] and tg.full((2,), 1j).dtype == tg.complex64
    assert tg.zeros_like(z).dtype == tg.complex64 and tg.tensor([tg.tensor(1j), tg.tensor(2.0)]).dtype == tg.complex64
    with pytest.raises(TypeError, match="not complex"):
        tg.Tensor([1j])
    buf = io.BytesIO()
    tg.save({"z": z, "p": tg.nn.Parameter(z * 2)}, buf)
    buf.seek(0)
    back = tg.load(buf)
    assert back["z"].dtype == tg.complex64 and back["z"].tolist() == z.tolist() and back["p"].requires_grad
    assert f"{tg.tensor(1 + 2j):.2f}" == "1.00+2.00j" and complex(tg.tensor(1 + 2j)) == 1 + 2j
    tg.set_printoptions(sci_mode=True)
    try:
        assert repr(z) == "tensor([1.0000e+00+2.0000e+00j, 3.0000e+00-1.0000e+00j])"
    finally:
        tg.set_printoptions(profile="default")


def test_pytorch_checkpoints_with_complex_tensors_load():
    torch = pytest.importorskip("torch")
    z = torch.tensor([[1 + 2j, 3 - 1j]], dtype=torch.complex128)
    w = torch.randn(3, dtype=torch.cfloat)
    buf = io.BytesIO()
    torch.save({"z": z, "w": w[1:], "p": torch.nn.Parameter(w)}, buf)
    buf.seek(0)
    got = tg.load(buf)
    assert got["z"].dtype == tg.complex128 and np.array_equal(got["z"].numpy(), z.numpy())
    assert np.array_equal(got["w"].numpy(), w[1:].numpy()) and got["p"].requires_grad


def test_a_real_tensor_to_a_complex_power_is_complex():
    x = tg.tensor([2.0, 3.0], dtype=tg.float64, requires_grad=True)
    y = x ** (1 + 1j)
    assert y.dtype == tg.complex128 and tg.tensor([2.0]).pow(1j).dtype == tg.complex64
    np.testing.assert_allclose(y.detach().numpy(), np.array([2.0, 3.0]) ** (1 + 1j))
    assert gradcheck(lambda t: t ** (1 + 1j), (x,))
    assert tg.float_power(tg.tensor([2.0]), 1j).dtype == tg.complex128


def test_in_place_ops_with_a_real_result_refuse_complex_tensors():
    z = tg.tensor([3 + 4j, -1j])
    with pytest.raises(RuntimeError, match="In-place abs is not supported for complex tensors"):
        z.abs_()
    z.mul_(2).add_(tg.ones(2))
    z[0] = 2.0
    assert z.tolist() == [2, 1 - 2j]
