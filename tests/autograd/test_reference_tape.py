"""The C++ engine (csrc/tape.cpp) against the textbook backward pass (reference_tape.py) on
hypothesis-drawn graphs: ops from the op table on broadcastable shapes, shared
subexpressions, leaves used several times, views, a variadic op, mixed dtypes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import tapegrad as tg
from tapegrad import _C
from tapegrad._tape import registry

import reference_tape  # noqa: E402  (beside this file: pytest puts its directory on sys.path)

SHAPES = [(2, 3), (3,), (1, 3), (2, 1), ()]  # all broadcast to (2, 3)

UNARY = {
    "neg": lambda x: -x,
    "tanh": tg.tanh,
    "sin": tg.sin,
    "sigmoid": tg.sigmoid,
    "square": lambda x: x * x,  # one input on both edges
    "exp_of_tanh": lambda x: x.tanh().exp(),
    "sum_last_keepdim": lambda x: x.sum(-1, keepdim=True) if x.ndim else x * 2,
    "mean_first_keepdim": lambda x: x.mean(0, keepdim=True) if x.ndim else x - 1,
    "relu": tg.relu,
    "softmax": lambda x: tg.softmax(x, -1) if x.ndim else x,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "maximum": tg.maximum,
    "cat_view": lambda a, b: tg.cat([a.expand(2, 3), b.expand(2, 3)], 0)[1:3],  # variadic op, views
    "where": lambda a, b: tg.where(a > b, a, b * 3),
}


@st.composite
def graphs(draw):
    """(leaves, loss): a random DAG over a pool of leaves and intermediate results."""
    n_leaves = draw(st.integers(1, 4))
    leaves = []
    for _ in range(n_leaves):
        shape = draw(st.sampled_from(SHAPES))
        dtype = draw(st.sampled_from([np.float64, np.float64, np.float32]))
        values = draw(st.lists(st.floats(-2, 2, allow_nan=False, width=32), min_size=int(np.prod(shape)),
                               max_size=int(np.prod(shape))))
        leaves.append(tg.tensor(np.array(values, dtype).reshape(shape), requires_grad=True))
    pool = list(leaves)
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            name, i = draw(st.sampled_from(sorted(UNARY))), draw(st.integers(0, len(pool) - 1))
            note(f"t{len(pool)} = {name}(t{i})")
            pool.append(UNARY[name](pool[i]))
        else:
            name = draw(st.sampled_from(sorted(BINARY)))
            i, j = (draw(st.integers(0, len(pool) - 1)) for _ in range(2))
            note(f"t{len(pool)} = {name}(t{i}, t{j})")
            pool.append(BINARY[name](pool[i], pool[j]))
    # the loss reads the last result and any others (shared subexpressions reach it twice)
    used = [pool[-1]] + [t for t in pool[n_leaves:-1] if draw(st.booleans())]
    note(f"loss = weighted sum of {len(used)} results")
    loss = sum(((t * float(k + 1)).sum() for k, t in enumerate(used)), tg.zeros((), dtype=tg.float64))
    if loss.grad_fn is None:  # nothing recorded: give it a node
        loss = loss + (leaves[0] * 1.0).sum()
    return leaves, loss


def _close(a, b, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.asarray(a._data, np.float64), np.asarray(b._data, np.float64), rtol=tol, atol=tol)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_engine_matches_the_reference_tape(graph):
    leaves, loss = graph
    expected = reference_tape.gradients(loss, leaves)
    got = tg.autograd.grad(loss, leaves, retain_graph=True, allow_unused=True)
    loss.backward()
    # A float64 leaf's gradient may pass through float32 intermediates (a float32 leaf promotes
    # them), where the engine and the oracle sum in different orders: float32's tolerance then.
    low = np.float32 if any(leaf.dtype == np.float32 for leaf in leaves) else np.float64
    for leaf, e, g in zip(leaves, expected, got):
        if e is None:
            assert g is None and leaf.grad is None
            continue
        assert g.shape == leaf.shape and g.dtype == leaf.dtype and leaf.grad.dtype == leaf.dtype
        _close(g, e, low)
        _close(leaf.grad, e, low)


def test_the_reference_checks_something():
    """The oracle itself: d/dx of x*x + 3x at x=2 is 7 (no engine involved)."""
    x = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)
    (g,) = reference_tape.gradients(x * x + 3 * x, [x])
    assert g.item() == 7.0


def test_one_engine():
    assert registry.apply is _C.apply
    assert not hasattr(tg, "_native_tape")


def test_apply_refuses_non_tensors():
    with pytest.raises(TypeError, match="mul: input 1 must be a Tensor"):
        registry.apply(registry.OPS["mul"], tg.ones(2), [1.0, 2.0])


def test_apply_refuses_what_is_not_an_op():
    with pytest.raises(TypeError, match="op must be an initialised Op"):
        registry.apply("mul", tg.ones(2))
    with pytest.raises(TypeError, match="op must be an initialised Op"):
        registry.apply(registry.Op.__new__(registry.Op), tg.ones(2))


def test_node_fields_the_engine_trusts_are_read_only():
    x = tg.ones(3, requires_grad=True)
    y = (x * x).sum()
    for field, value in (("edges", (None,)), ("saved", None), ("meta", ()), ("op", None), ("attrs", {})):
        with pytest.raises(AttributeError):
            setattr(y.grad_fn, field, value)
    with pytest.raises(AttributeError):
        y.grad_fn.edges.clear()  # a tuple
    with pytest.raises(TypeError):
        x.grad_fn = "not a node"
    with pytest.raises(TypeError):
        x._version_box = 3
    with pytest.raises(AttributeError):  # read-only, as PyTorch's
        x._version = 3
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_uninitialised_objects_raise_instead_of_crashing():
    x = tg.ones(3, requires_grad=True)
    with pytest.raises(TypeError, match="initialised once"):
        (x * 2).grad_fn.__init__(registry.OPS["neg"], (x,), {}, np.ones(3), [0], None)

    class Bare(tg.Tensor):
        def __init__(self):  # skips Tensor.__init__: its _data is None
            pass

    with pytest.raises(Exception):
        registry.apply(registry.OPS["neg"], Bare())
    assert Bare().grad is None and Bare()._version == 0
