"""torch._foreach_*: every name PyTorch has, each against the per-tensor op (and against PyTorch
where it is installed), the operand forms (number, list of numbers, tensor list, scalar tensor),
in-place forms, autograd through the out-of-place ones, and the errors."""
import numpy as np
import pytest

import tapegrad as tg


def _lists(L):
    return [L.tensor([1.0, 2.0]), L.tensor([3.0, 4.0, 5.0])], [L.tensor([0.5, 0.25]), L.tensor([2.0, 1.0, 0.5])]


def _calls(L):
    x, y = _lists(L)
    out = [L._foreach_add(x, 1), L._foreach_add(x, y, alpha=2), L._foreach_add(x, [1.0, 2.0]),
           L._foreach_add(x, L.tensor(2.0), alpha=3), L._foreach_sub(x, y), L._foreach_mul(x, y), L._foreach_div(x, 2.0),
           L._foreach_div(x, y), L._foreach_mul(x, L.tensor(3.0)), L._foreach_addcmul(x, y, y, 0.5),
           L._foreach_addcdiv(x, y, y, [1.0, 2.0]), L._foreach_addcmul(x, y, y, L.tensor([2.0, 3.0])),
           L._foreach_lerp(x, y, 0.25), L._foreach_lerp(x, y, y), L._foreach_pow(x, 2), L._foreach_pow(2.0, x),
           L._foreach_pow(x, y), L._foreach_norm(x), L._foreach_norm(x, 1), L._foreach_norm(x, float("inf")),
           L._foreach_max(x), L._foreach_powsum(x, 2), L._foreach_maximum(x, y), L._foreach_minimum(x, 3.0),
           L._foreach_clamp_min(x, 2.5), L._foreach_clamp_max(x, [1.5, 4.5]), L._foreach_clone(x),
           L._foreach_mm([L.ones(2, 3)], [L.ones(3, 2)])]
    for n in ("abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "erf", "erfc", "exp", "expm1", "floor", "frac",
              "lgamma", "log", "log10", "log1p", "log2", "neg", "reciprocal", "round", "rsqrt", "sigmoid", "sign",
              "sin", "sinh", "sqrt", "tan", "tanh", "trunc"):
        out.append(getattr(L, "_foreach_" + n)([t / 8 for t in x]))
        z = [t / 8 for t in x]
        assert getattr(L, f"_foreach_{n}_")(z) is not None or L is not tg
        out.append(z)
    z = [t.clone() for t in x]
    L._foreach_mul_(z, 2)
    L._foreach_add_(z, y, alpha=-1)
    L._foreach_addcdiv_(z, y, y, 0.5)
    L._foreach_addcmul_(z, y, y, [1.0, -1.0])
    L._foreach_lerp_(z, y, 0.5)
    L._foreach_sub_(z, L.tensor(0.25))
    L._foreach_div_(z, [2.0, 4.0])
    L._foreach_pow_(z, 2)
    L._foreach_maximum_(z, 1.0)
    out.append(z)
    z = [t.clone() for t in x]
    L._foreach_zero_(z)
    L._foreach_copy_(z, y)
    L._foreach_clamp_max_(z, 1.0)
    L._foreach_clamp_min_(z, [0.3, 0.6])
    out.append(z)
    return [[np.asarray(t.tolist()) for t in o] for o in out]


def test_every_pytorch_name_is_here():
    torch = pytest.importorskip("torch")
    assert [n for n in dir(torch) if n.startswith("_foreach") and not hasattr(tg, n)] == []


def test_values_match_torch():
    torch = pytest.importorskip("torch")
    got, want = _calls(tg), _calls(torch)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=f"call {i}")


def test_forms_against_the_per_tensor_ops():
    x, y = _lists(tg)
    assert [t.tolist() for t in tg._foreach_add(x, y, alpha=2)] == [(a + 2 * b).tolist() for a, b in zip(x, y)]
    assert [t.tolist() for t in tg._foreach_mul(x, tg.tensor(3.0))] == [(a * 3).tolist() for a in x]
    assert [t.item() for t in tg._foreach_norm(x)] == pytest.approx([np.hypot(1, 2), np.sqrt(50)])
    z = [t.clone() for t in x]
    v = [t._version for t in z]
    assert tg._foreach_addcmul_(z, y, y, tg.tensor([1.0, 2.0])) is z
    assert [t.tolist() for t in z] == [(a + w * b * b).tolist() for a, b, w in zip(x, y, (1.0, 2.0))]
    assert all(t._version > u for t, u in zip(z, v))
    assert isinstance(tg._foreach_exp(x), tuple)


def test_autograd_through_the_out_of_place_forms():
    x, y = _lists(tg)
    w = [tg.ones(2, requires_grad=True, dtype=tg.float64), tg.ones(3, requires_grad=True, dtype=tg.float64)]
    out = tg._foreach_addcmul(tg._foreach_mul(w, 3.0), w, w, 0.5)
    sum(t.sum() for t in tg._foreach_lerp(out, [t.double() for t in y], 0.25)).backward()
    assert [t.grad.tolist() for t in w] == [[0.75 * (3 + 1)] * 2, [0.75 * 4] * 3]
    leaf = [tg.ones(2, requires_grad=True)]
    with pytest.raises(RuntimeError, match="leaf"):
        tg._foreach_mul_(leaf, 2)


def test_errors_name_the_op():
    x, y = _lists(tg)
    with pytest.raises(RuntimeError, match="_foreach_add: Tensor list must have at least one tensor"):
        tg._foreach_add([], 1)
    with pytest.raises(RuntimeError, match="same number of tensors, got 2 and 1"):
        tg._foreach_mul_(x, y[:1])
    with pytest.raises(RuntimeError, match="same number of elements as scalar list"):
        tg._foreach_add(x, [1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="one value per tensor"):
        tg._foreach_addcdiv(x, y, y, tg.tensor([1.0]))
