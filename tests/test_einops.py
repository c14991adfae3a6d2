"""einops on tapegrad tensors (tapegrad/_einops.py): every einops function against einops on the
same numpy arrays, gradients through them, the layers of ``einops.layers.tapegrad``, and the import
hook in either import order. Skipped where einops is not installed (the test extra has it)."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
from tapegrad.autograd import gradcheck

einops = pytest.importorskip("einops")
from einops import einsum, pack, parse_shape, rearrange, reduce, repeat, unpack  # noqa: E402

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)

CASES = [
    (rearrange, "b c h w -> b h w c", {}),
    (rearrange, "b c h w -> (b h) (w c)", {}),
    (rearrange, "b c h (w2 w) -> b (c w2) h w", {"w2": 2}),
    (rearrange, "b c ... -> b (c ...)", {}),
    (rearrange, "b c h w -> w h c b", {}),
    (reduce, "b c h w -> b c", "mean"),
    (reduce, "b c (h h2) (w w2) -> b c h w", "max", {"h2": 2, "w2": 2}),
    (reduce, "b c h w -> c", "min"),
    (reduce, "b c h w -> b () () c", "sum"),
    (reduce, "b c h w -> h w", "prod"),
    (repeat, "b c h w -> b c h w r", {"r": 3}),
    (repeat, "b c h w -> (b r) c h w", {"r": 2}),
    (repeat, "b c h w -> b c (h h2) (w w2)", {"h2": 2, "w2": 3}),
]


def _call(fn, pattern, rest, x):
    if fn is reduce:
        reduction, lengths = rest[0], (rest[1] if len(rest) > 1 else {})
        return fn(x, pattern, reduction, **lengths)
    return fn(x, pattern, **rest[0])


@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
def test_ops_match_einops_on_numpy(case):
    fn, pattern, *rest = case
    got = _call(fn, pattern, rest, tg.tensor(X))
    assert isinstance(got, tg.Tensor)
    np.testing.assert_allclose(got.numpy(), _call(fn, pattern, rest, X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
def test_gradients_through_einops(case):
    fn, pattern, *rest = case
    x = tg.tensor(X[:, :, :2, :4].astype(np.float64) + 2.0, requires_grad=True)  # prod: away from 0
    assert gradcheck(lambda t: _call(fn, pattern, rest, t), (x,))


def test_any_all_einsum_pack_parse_shape():
    b = tg.tensor(X > 0)
    np.testing.assert_array_equal(reduce(b, "b c h w -> b c", "any").numpy(), reduce(X > 0, "b c h w -> b c", "any"))
    np.testing.assert_array_equal(reduce(b, "b c h w -> w", "all").numpy(), reduce(X > 0, "b c h w -> w", "all"))
    a, w = tg.tensor(X), tg.tensor(X[0, :, 0, :4].T.copy())
    np.testing.assert_allclose(einsum(a, w, "b c h w, w2 c -> b h w2").numpy(),
                               einsum(X, X[0, :, 0, :4].T.copy(), "b c h w, w2 c -> b h w2"), rtol=1e-5, atol=1e-5)
    packed, shapes = pack([a, a[:, 0]], "b * w")
    assert tuple(packed.shape) == (2, 3 * 4 + 4, 6)
    first, second = unpack(packed, shapes, "b * w")
    assert np.array_equal(first.numpy(), X) and np.array_equal(second.numpy(), X[:, 0])
    assert parse_shape(a, "b c _ w") == {"b": 2, "c": 3, "w": 6}
    assert np.array_equal(einops.asnumpy(a), X)


def test_bad_pattern_raises_einops_error():
    with pytest.raises(einops.EinopsError, match="Shape mismatch|can't divide"):
        rearrange(tg.tensor(X), "b c h (w w2) -> b c h w w2", w2=5)
    with pytest.raises(einops.EinopsError):
        rearrange(tg.tensor(X), "b c h -> b c h")


def test_layers_train_pickle_and_load_state():
    from einops.layers.tapegrad import EinMix, Rearrange, Reduce
    tg.manual_seed(0)
    model = nn.Sequential(Rearrange("b c h w -> b h w c"), EinMix("b h w c -> b h w d", weight_shape="c d", bias_shape="d",
                                                                  c=3, d=5),
                          Reduce("b h w d -> b d", "mean"), nn.Linear(5, 2))
    assert [n for n, _ in model.named_parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    x = tg.tensor(X)
    out = model(x)
    assert tuple(out.shape) == (2, 2)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    mix = model[1]
    want = np.einsum("bhwc,cd->bhwd", X.transpose(0, 2, 3, 1), mix.weight.detach().numpy()) + mix.bias.detach().numpy()
    np.testing.assert_allclose(mix(tg.tensor(X.transpose(0, 2, 3, 1).copy())).detach().numpy(), want, rtol=1e-5,
                               atol=1e-5)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone(x).detach().numpy(), out.detach().numpy())
    other = nn.Sequential(Rearrange("b c h w -> b h w c"), EinMix("b h w c -> b h w d", weight_shape="c d",
                                                                  bias_shape="d", c=3, d=5),
                          Reduce("b h w d -> b d", "mean"), nn.Linear(5, 2))
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(other(x).detach().numpy(), out.detach().numpy())
    assert repr(model[0]) == "Rearrange('b c h w -> b h w c')" and type(model[0]).__module__ == "einops.layers.tapegrad"


@pytest.mark.parametrize("first", ["einops", "tapegrad"])
def test_either_import_order(first):
    """The backend is there whether einops or tapegrad is imported first."""
    second = "tapegrad" if first == "einops" else "einops"
    code = (f"import {first}, {second}, tapegrad as tg\n"
            "from einops import rearrange\n"
            "y = rearrange(tg.ones(2, 3, requires_grad=True), 'a b -> b a')\n"
            "assert isinstance(y, tg.Tensor) and tuple(y.shape) == (3, 2) and y.grad_fn is not None\n"
            "from einops.layers.tapegrad import Rearrange\n"
            "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_import_tapegrad_does_not_import_einops():
    code = "import sys, tapegrad; print('einops' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr
