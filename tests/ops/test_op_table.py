"""Every per-op test, generated from the op table (``op_table.OP_INFOS``): one entry per op, one
claim per test. The PyTorch comparisons skip when torch is not installed; the rest never need it.

The table-wide properties at the end draw an entry at random: backward is linear in the upstream
gradient, gradients through shared subexpressions accumulate, float32 agrees with float64.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
from op_table import OP_INFOS, leaf
from tapegrad.ops import OPS
from tapegrad.testing import gradcheck, gradgradcheck

GRAD = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
GRADGRAD = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
VS_TORCH = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                    derandomize=True)  # a fixed sample: a PyTorch divergence found by chance would not block CI
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

DRAWN = sorted(n for n, e in OP_INFOS.items() if e.sample is not None)
GRADGRAD_OPS = sorted(n for n, e in OP_INFOS.items() if e.sample is not None and e.gradgrad)
WITH_TORCH = sorted(n for n, e in OP_INFOS.items() if e.cases or e.sample is not None)
DOUBLE_CASES = [pytest.param(n, i, id=f"{n}-{i}", marks=[pytest.mark.xfail(reason=c.known_failure, strict=True)]
                             if c.known_failure else [])
                for n in sorted(OP_INFOS) for i, c in enumerate(c for c in OP_INFOS[n].cases if c.double)]
WITH_ERRORS = sorted(n for n, e in OP_INFOS.items() if e.errors)


def _tapegrad_call(s):
    return lambda *ts: s.fn(tg, *ts)


def _public(path):
    """The object a dotted public name (``linalg.solve``, ``Tensor.exp_``, ``nn.functional.pad``) names."""
    for root in (tg, tg.Tensor, tg.nn.functional):
        obj = root
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    return None


# ---------------------------------------------------------------- the table itself
def test_every_differentiable_op_has_an_entry():
    missing = sorted(n for n, op in OPS.items() if op.differentiable and OP_INFOS.get(n, None) is None)
    assert not missing, f"ops without an entry in tests/ops/op_table.py: {missing}"


def test_every_differentiable_op_has_a_gradient_check():
    unchecked = sorted(n for n, op in OPS.items() if op.differentiable and OP_INFOS[n].sample is None)
    assert not unchecked, f"entries with no sample to gradcheck: {unchecked}"


def test_every_entry_names_an_existing_op():
    unknown = sorted(n for n, e in OP_INFOS.items() if n not in OPS and not callable(_public(e.op or n)))
    assert not unknown, f"entries naming neither an op of tapegrad.ops.OPS nor a public function: {unknown}"


def test_every_entry_checks_something():
    idle = sorted(n for n, e in OP_INFOS.items() if e.sample is None and not e.cases and not e.errors and not e.family)
    assert not idle, f"entries with no sample, no PyTorch case, no error case and no differential family: {idle}"


# ---------------------------------------------------------------- per op, against numpy and finite differences
@pytest.mark.parametrize("name", DRAWN)
@GRAD
@given(data=st.data())
def test_forward_matches_the_numpy_reference(name, data):
    s = OP_INFOS[name].sample(data.draw)
    out = _tapegrad_call(s)(*[leaf(a) for a in s.args])
    expected = s.ref(*[np.array(a) for a in s.args])
    outs = out if isinstance(out, (tuple, list)) else (out,)
    exps = expected if isinstance(expected, (tuple, list)) else (expected,)
    assert len(outs) == len(exps)
    for o, e in zip(outs, exps):
        e = np.asarray(e)
        assert tuple(o.shape) == e.shape, f"shape {tuple(o.shape)} != reference {e.shape}"
        np.testing.assert_allclose(o.detach().numpy().astype(np.float64), e, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", DRAWN)
@GRAD
@given(data=st.data())
def test_gradient_matches_finite_differences(name, data):
    s = OP_INFOS[name].sample(data.draw)
    assert gradcheck(_tapegrad_call(s), [leaf(a) for a in s.args], **s.tol)


@pytest.mark.parametrize("name", GRADGRAD_OPS)
@GRADGRAD
@given(data=st.data())
def test_second_derivative_matches_finite_differences(name, data):
    s = OP_INFOS[name].sample(data.draw)
    assert gradgradcheck(_tapegrad_call(s), [leaf(a) for a in s.args], **s.tol)


# ---------------------------------------------------------------- per op, against PyTorch
@pytest.fixture(scope="module")
def oracle():
    pytest.importorskip("torch")
    import torch_oracle
    return torch_oracle


@pytest.mark.torch
@pytest.mark.parametrize("name", WITH_TORCH)
def test_forward_and_gradient_match_torch(name, oracle):
    """On the entry's fixed cases and on a few drawn samples: values, dtypes and gradients."""
    e = OP_INFOS[name]
    for i, c in enumerate(e.cases):
        try:
            oracle.check_forward_and_gradients(c.fn, c.args, grad_rtol=c.grad_rtol, rtol=c.rtol, atol=c.atol)
        except AssertionError as err:
            raise AssertionError(f"{name} case {i}: {err}") from err
    if e.sample is None:
        return

    @VS_TORCH
    @given(data=st.data())
    def drawn(data):
        s = e.sample(data.draw)
        if s.torch_fn is not False:
            oracle.check_forward_and_gradients(s.fn, s.args, grad_rtol=e.torch_rtol, rtol=e.torch_rtol,
                                               torch_fn=s.torch_fn)
    drawn()


@pytest.mark.torch
@pytest.mark.parametrize("name, i", DOUBLE_CASES)
def test_second_derivative_matches_torch(name, i, oracle):
    c = [c for c in OP_INFOS[name].cases if c.double][i]
    oracle.check_second_derivatives(c.fn, c.args, rtol=max(c.grad_rtol, 1e-8), atol=max(c.atol, 1e-8))


@pytest.mark.torch
@pytest.mark.parametrize("name", WITH_ERRORS)
def test_bad_input_raises_the_same_exception_type_as_torch(name, oracle):
    for call in OP_INFOS[name].errors:
        oracle.check_same_exception_type(call)


# ---------------------------------------------------------------- properties of the whole table
def _grads(fn, inputs, cotangent, **kw):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    gs = tg.autograd.grad(list(outs), inputs, [tg.tensor(np.asarray(c(o)), dtype=o.dtype) for o, c in zip(outs, cotangent)],
                          allow_unused=True, **kw)
    return [np.zeros(t.shape) if g is None else g.numpy().astype(np.float64) for g, t in zip(gs, inputs)]


def _draw_op(data):
    name = data.draw(st.sampled_from(DRAWN), label="op")
    s = OP_INFOS[name].sample(data.draw)
    return name, s, _tapegrad_call(s)


def _n_outputs(fn, s):
    probe = fn(*[leaf(a) for a in s.args])
    return len(probe) if isinstance(probe, (tuple, list)) else 1


@PROPS
@given(data=st.data())
def test_backward_is_linear_in_the_upstream_gradient(data):
    name, s, fn = _draw_op(data)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    n_out = _n_outputs(fn, s)
    u = [lambda o, r=rng.standard_normal(1000): r[: o.numel()].reshape(o.shape)] * n_out
    v = [lambda o, r=rng.standard_normal(1000): r[: o.numel()].reshape(o.shape)] * n_out
    a, b = 1.5, -0.75
    uv = [lambda o: a * u[0](o) + b * v[0](o)] * n_out
    gu = _grads(fn, [leaf(x) for x in s.args], u)
    gv = _grads(fn, [leaf(x) for x in s.args], v)
    guv = _grads(fn, [leaf(x) for x in s.args], uv)
    for x, y, z in zip(gu, gv, guv):
        np.testing.assert_allclose(z, a * x + b * y, rtol=1e-5, atol=1e-6, err_msg=name)  # 'to' is float32


@PROPS
@given(data=st.data())
def test_gradients_through_shared_subexpressions_accumulate(data):
    name, s, fn = _draw_op(data)
    ones = lambda o: np.ones(o.shape)  # noqa: E731
    n_out = _n_outputs(fn, s)
    single = _grads(fn, [leaf(a) for a in s.args], [ones] * n_out)

    def twice(*ts):  # the inputs feed two uses, and the output one doubled use
        outs1, outs2 = fn(*ts), fn(*ts)
        if not isinstance(outs1, (tuple, list)):
            outs1, outs2 = (outs1,), (outs2,)
        return tuple(o1 + o2 + o1 for o1, o2 in zip(outs1, outs2))
    triple = _grads(twice, [leaf(a) for a in s.args], [ones] * n_out)
    for g1, g3 in zip(single, triple):
        np.testing.assert_allclose(g3, 3 * g1, rtol=1e-9, atol=1e-9, err_msg=name)


@PROPS
@given(data=st.data())
def test_float32_gradients_agree_with_float64(data):
    name, s, fn = _draw_op(data)
    n_out = _n_outputs(fn, s)
    r = np.random.default_rng(0).standard_normal(1000)
    cot = [lambda o: r[: o.numel()].reshape(o.shape)] * n_out
    g64 = _grads(fn, [leaf(a) for a in s.args], cot)
    g32 = _grads(fn, [leaf(a, tg.float32) for a in s.args], cot)
    for a, b in zip(g64, g32):
        scale = max(1.0, float(np.abs(a).max(initial=0)))
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
