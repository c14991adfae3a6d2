"""Forward values, gradients, dtypes and exception types against PyTorch (skipped without torch).

Each case is written once against a module ``M`` (``tapegrad`` or ``torch``) whose APIs agree;
``F(M)`` is ``torch.nn.functional`` or ``tapegrad`` for the nn-flavoured functions.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import tapegrad as tg  # noqa: E402
from torch_oracle import check_double_backward, check_forward_and_gradients, check_same_exception_type  # noqa: E402

pytestmark = pytest.mark.torch


def F(M):
    return torch.nn.functional if M is torch else tg


rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((4,))
P = rng.uniform(0.5, 2.0, (3, 4))
Z = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0], [1.5, -2.0, 0.5]])
T = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]])  # ties
IDX = np.array([[0, 2, 1, 0], [3, 3, 0, 1], [1, 1, 1, 2]])

CASES = {
    "leaky_relu": (lambda M, x: F(M).leaky_relu(x, 0.1), [A]),
    "elu": (lambda M, x: F(M).elu(x, 0.7), [A]),
    "gelu": (lambda M, x: F(M).gelu(x), [A]),
    "gelu_tanh": (lambda M, x: F(M).gelu(x, approximate="tanh"), [A]),
    "softplus": (lambda M, x: F(M).softplus(x * 15, beta=2, threshold=10), [A]),
    "silu": (lambda M, x: F(M).silu(x), [A]),
    "logsigmoid": (lambda M, x: F(M).logsigmoid(x * 50), [A]),
    "hardtanh": (lambda M, x: F(M).hardtanh(x, -0.5, 0.7), [A]),
    "clamp": (lambda M, x: M.clamp(x, -0.5, 0.5), [A]),
    "clamp_tensor": (lambda M, x, lo: M.clamp(x, min=lo), [A, B]),
    "clamp_bounds_tie": (lambda M, x: M.clamp(x, 0.0, 1.0), [np.array([0.0, 1.0, 0.5, -1.0])]),
    "square_reciprocal": (lambda M, x: M.square(x) + M.reciprocal(x), [P]),
    "rounding": (lambda M, x: M.floor(x * 3) + M.ceil(x) + M.round(x * 2.5) + M.trunc(x * 4), [A]),
    "atan2": (lambda M, y, x: M.atan2(y, x), [A, B]),
    "prod": (lambda M, x: M.prod(x, 1), [Z]),
    "prod_all": (lambda M, x: M.prod(x), [np.array([2.0, 0.0, 3.0])]),
    "var": (lambda M, x: M.var(x, 1, keepdim=True), [A]),
    "var_correction0": (lambda M, x: M.var(x, dim=(0, 1), correction=0), [A]),
    "std": (lambda M, x: x.std(0), [A]),
    "std_unbiased": (lambda M, x: M.std(x, 1, unbiased=False), [A]),
    "max_full_ties": (lambda M, x: x.max(), [T]),
    "min_full_ties": (lambda M, x: M.min(x), [T]),
    "max_dim": (lambda M, x: M.max(x, 1), [T]),
    "min_dim_keepdim": (lambda M, x: x.min(dim=0, keepdim=True), [T]),
    "amax_ties": (lambda M, x: M.amax(x, 1), [T]),
    "amin_tuple": (lambda M, x: M.amin(x, (0, 1), keepdim=True), [T]),
    "logsumexp": (lambda M, x: M.logsumexp(x * 1e3, 1), [A]),
    "norm": (lambda M, x: x.norm(), [A]),
    "norm_zero": (lambda M, x: M.norm(x, dim=1), [np.array([[0.0, 0.0], [3.0, 4.0]])]),
    "norm_p1": (lambda M, x: M.norm(x, 1, dim=0), [A]),
    "norm_inf": (lambda M, x: M.norm(x, float("inf")), [A]),
    "norm_p3": (lambda M, x: M.norm(x, 3, dim=1, keepdim=True), [A]),
    "cumsum": (lambda M, x: M.cumsum(x, 1), [A]),
    "softmax": (lambda M, x: M.softmax(x * 1e4, 1), [A]),
    "log_softmax": (lambda M, x: M.log_softmax(x * 1e4, 0), [A]),
    "log_softmax_method": (lambda M, x: x.log_softmax(-1), [A]),
    "flatten_unflatten": (lambda M, x: x.reshape(3, 2, 2).flatten(1).unflatten(0, (1, 3)), [A]),
    "squeeze_unsqueeze": (lambda M, x: x.unsqueeze(0).unsqueeze(-1).squeeze((0, 2)), [A]),
    "cat": (lambda M, x, y: M.cat([x, y.reshape(1, 4), x], 0), [A, B]),
    "stack": (lambda M, x: M.stack([x, x * 2], 1), [A]),
    "split": (lambda M, x: x.split([1, 3], 1), [A]),
    "chunk": (lambda M, x: M.chunk(x, 3, 1), [A]),
    "pad_constant": (lambda M, x: F(M).pad(x, (1, -1, 2, 0), value=0.5), [A]),
    "pad_reflect": (lambda M, x: F(M).pad(x.reshape(1, 3, 4), (2, 1), mode="reflect"), [A]),
    "pad_replicate": (lambda M, x: F(M).pad(x.reshape(1, 1, 3, 4), (1, 2, 2, 1), mode="replicate"), [A]),
    "pad_circular": (lambda M, x: F(M).pad(x.reshape(1, 3, 4), (2, 3), mode="circular"), [A]),
    "flip": (lambda M, x: M.flip(x, (0, 1)), [A]),
    "repeat": (lambda M, x: x.repeat(2, 1, 3), [A]),
    "tile": (lambda M, x: M.tile(x, (2,)), [A]),
    "roll": (lambda M, x: M.roll(x, (1, -2), (0, 1)) + M.roll(x, 5), [A]),
    "narrow_movedim": (lambda M, x: M.movedim(x.narrow(1, 1, 2), 0, 1).swapaxes(0, 1), [A]),
    "gather": (lambda M, x: M.gather(x, 1, M.tensor(IDX)), [A]),
    "scatter_add": (lambda M, x, s: M.scatter_add(x, 1, M.tensor(IDX), s), [A, P]),
    "scatter": (lambda M, x, s: x.scatter(0, M.tensor([[2, 0, 1, 1]]), s), [A, P[:1]]),
    "index_select": (lambda M, x: M.index_select(x, 1, M.tensor([3, 0, 3])), [A]),
    "masked_fill": (lambda M, x: x.masked_fill(M.tensor([True, False, True, False]), -1.5), [A]),
    "masked_fill_broadcast": (lambda M, x: M.masked_fill(x[0], M.tensor([[True], [False]]), -1.5), [A]),
    "take_along_dim": (lambda M, x: M.take_along_dim(x, M.tensor([[0], [3], [1]]), 1), [A]),
    "matmul_vv": (lambda M, x, y: M.matmul(x, y), [B, B]),
    "argmax": (lambda M, x: [x.argmax(), x.argmax(1, keepdim=True), M.argmin(x, 0)], [T]),
    "one_hot": (lambda M, x: F(M).one_hot(M.tensor([0, 3, 1])), [A]),
    "all_any": (lambda M, x: [(x > 0).all(1), M.any(x > 1, 0, keepdim=True)], [A]),
    "nonzero": (lambda M, x: M.nonzero(x > 0.5), [A]),
    "mixed_dtype_cat": (lambda M, x: M.cat([x, M.tensor([[1, 2, 3, 4]])]), [A]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_gradients_match_torch(name):
    fn, arrays = CASES[name]
    check_forward_and_gradients(fn, arrays)


def test_double_backward_matches_torch():
    for name in ("softmax", "log_softmax", "gelu", "logsumexp", "prod", "var", "norm", "softplus", "silu"):
        fn, arrays = CASES[name]
        check_double_backward(fn, arrays, name, reduce=lambda outs: outs[0].sum())


@pytest.mark.parametrize("call", [
    lambda M: M.zeros(2, 3).sum(2),
    lambda M: M.zeros(2, 3).softmax(-3),
    lambda M: M.zeros(2, 3).max(5),
    lambda M: M.zeros(2, 3).unsqueeze(4),
    lambda M: M.cat([M.zeros(2, 3), M.zeros(2, 4)]),
    lambda M: M.stack([M.zeros(2), M.zeros(3)]),
    lambda M: M.zeros(2, 3).gather(1, M.tensor([[3]])),
    lambda M: M.zeros(3).masked_fill(M.tensor([True] * 2), 1.0),
    lambda M: M.zeros(2, 0).amax(1),
    lambda M: M.zeros(4).split([1, 2]),
    lambda M: M.zeros(2, 3).flatten(1, 0),
    lambda M: F(M).one_hot(M.tensor([3]), 2),
    lambda M: M.zeros(0).amax(),
])
def test_same_exception_type_as_torch(call):
    check_same_exception_type(call)
