"""PyTorch semantics of the ops that finite differences can't pin down: ties, zeros, stability,
dtypes, return types, argument forms and the errors raised for bad arguments."""
import warnings

import numpy as np
import pytest

import tapegrad as tg


def t64(data, grad=True):
    return tg.tensor(data, dtype=tg.float64, requires_grad=grad)


def grad_of(fn, x):
    x.grad = None
    fn(x).sum().backward()
    return x.grad.numpy()


# ---------------------------------------------------------------- max / min and friends
def test_full_max_splits_the_gradient_evenly_among_ties():
    x = t64([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_allclose(grad_of(lambda t: t.max(), x), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(grad_of(lambda t: tg.min(t), t64([1.0, 1.0, 1.0])), [1 / 3] * 3)
    np.testing.assert_allclose(grad_of(lambda t: t.amax(1), t64([[2.0, 2.0], [1.0, 0.0]])), [[0.5, 0.5], [1, 0]])


def test_max_along_a_dim_returns_values_and_first_indices():
    x = t64([[1.0, 5.0, 5.0], [7.0, 0.0, 7.0]])
    r = x.max(1)
    assert type(r).__name__ == "max" and r._fields == ("values", "indices")
    values, indices = r
    np.testing.assert_array_equal(values.detach().numpy(), [5, 7])
    assert indices.dtype == tg.int64 and indices.tolist() == [1, 0]
    assert x.max(dim=1, keepdim=True).indices.shape == (2, 1)
    np.testing.assert_allclose(grad_of(lambda t: t.max(1).values, x), [[0, 1, 0], [1, 0, 0]])
    assert tg.min(x, 0).indices.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(tg.max(x, t64([[6.0] * 3] * 2, False)).detach().numpy(), [[6, 6, 6], [7, 6, 7]])


def test_argmax_picks_the_first_occurrence():
    x = tg.tensor([[1, 3, 3], [4, 4, 0]])
    assert x.argmax().item() == 3 and tg.tensor([3, 1, 3]).argmax().item() == 0 and x.argmax(dim=1).tolist() == [1, 0]
    assert x.argmax(dim=1, keepdim=True).shape == (2, 1) and x.argmin(0).tolist() == [0, 0, 1]
    assert x.argmax().dtype == tg.int64


# ---------------------------------------------------------------- prod, var, norm
def test_prod_gradient_with_zeros():
    np.testing.assert_allclose(grad_of(lambda t: t.prod(), t64([2.0, 0.0, 3.0])), [0, 6, 0])
    np.testing.assert_allclose(grad_of(lambda t: t.prod(), t64([0.0, 0.0, 3.0])), [0, 0, 0])
    np.testing.assert_allclose(grad_of(lambda t: t.prod(1), t64([[2.0, 0.0], [3.0, 4.0]])), [[0, 2], [4, 3]])
    assert tg.tensor([2, 3]).prod().dtype == tg.int64


def test_var_std_correction_and_unbiased():
    a = np.array([[1.0, 2.0, 4.0], [0.5, 0.0, 3.0]])
    x = t64(a, False)
    np.testing.assert_allclose(x.var().item(), np.var(a, ddof=1))
    np.testing.assert_allclose(x.var(1, unbiased=False).numpy(), np.var(a, 1))
    np.testing.assert_allclose(tg.std(x, 0, correction=0, keepdim=True).numpy(), np.std(a, 0, keepdims=True))
    np.testing.assert_allclose(x.std(dim=(0, 1)).item(), np.std(a, ddof=1))
    assert np.isnan(t64([1.0], False).var().item())


def test_norm_gradient_is_zero_at_zero():
    x = t64([0.0, 0.0])
    assert x.norm().item() == 0
    np.testing.assert_array_equal(grad_of(lambda t: t.norm(), x), [0, 0])
    y = t64([[3.0, -4.0], [0.0, 1.0]], False)
    np.testing.assert_allclose(y.norm().item(), np.sqrt(26))
    np.testing.assert_allclose(y.norm(1, dim=1).numpy(), [7, 1])
    np.testing.assert_allclose(y.norm(float("inf")).item(), 4)
    np.testing.assert_allclose(tg.norm(y, "fro", dim=(0, 1)).item(), np.sqrt(26))


def test_large_norm_by_blas_dots_is_accurate_and_overflows_as_squares_do():
    # 2-norms of >= 16384 contiguous float32/float64 elements sum their squares by BLAS dots
    # (sumsq_flat): as accurate as numpy's pairwise sum (one long float32 dot is not), inf/NaN kept
    import torch
    rng = np.random.default_rng(0)
    for n in (16384, 20000, 1_000_003):
        for dt in (np.float32, np.float64):
            a = rng.standard_normal(n).astype(dt)
            ref = np.sqrt(np.sum(a.astype(np.float64) ** 2))
            got = tg.linalg.vector_norm(tg.tensor(a)).item()
            assert abs(got - ref) <= 2 * np.finfo(dt).eps * ref
            assert tg.tensor(a.reshape(-1, 1)).norm().dtype == tg.tensor(a).dtype
            assert abs(tg.tensor(a).norm().item() - torch.linalg.vector_norm(torch.from_numpy(a)).item()) <= 1e-4 * ref
    big = np.full(50000, 1e19, np.float32)  # squares 1e38: their sum overflows float32, as PyTorch's
    assert tg.linalg.vector_norm(tg.tensor(big)).item() == np.inf
    for v, want in ((np.inf, np.inf), (-np.inf, np.inf), (np.nan, np.nan)):
        a = np.ones(40000, np.float32)
        a[123] = v
        np.testing.assert_equal(tg.linalg.vector_norm(tg.tensor(a)).item(), want)
    z = tg.zeros(200, 100, requires_grad=True)
    (z.norm() * 3).backward()
    assert (z.grad.numpy() == 0).all() and not np.signbit(z.grad.numpy()).any()
    x = tg.tensor(rng.standard_normal((300, 100)), requires_grad=True)
    x.norm(dim=1, keepdim=True).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x.detach().numpy() / np.linalg.norm(x.detach().numpy(), axis=1,
                                                                                        keepdims=True), rtol=1e-14)
    assert tg.autograd.gradgradcheck(lambda t: t.norm(), (tg.tensor(rng.standard_normal((130, 130)),
                                                                      requires_grad=True),))


# ---------------------------------------------------------------- stability
def test_softmax_family_is_exact_for_huge_logits():
    x = t64([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]])
    ls = tg.log_softmax(x, dim=1).detach().numpy()
    assert np.isfinite(ls).all()
    np.testing.assert_array_equal(ls[0], [0.0, -1e4, -2e4])
    np.testing.assert_allclose(ls[1], [-np.log(3)] * 3)
    np.testing.assert_allclose(x.softmax(1).detach().numpy()[0], [1, 0, 0])
    np.testing.assert_allclose(x.logsumexp(1).detach().numpy(), [1e4, -1e4 + np.log(3)])
    g = grad_of(lambda t: tg.log_softmax(t, 1)[:, 0], x)
    assert np.isfinite(g).all()
    f32 = tg.tensor([1e4, -1e4]).log_softmax(0)
    assert f32.dtype == tg.float32 and f32.tolist() == [0.0, -2e4]
    np.testing.assert_allclose(tg.logsigmoid(t64([-1e4, 1e4], False)).numpy(), [-1e4, 0])
    np.testing.assert_allclose(tg.softplus(t64([1e4, -1e4], False)).numpy(), [1e4, 0])


# ---------------------------------------------------------------- elementwise semantics
def test_clamp_gradient_passes_at_the_bounds_and_tensor_bounds():
    x = t64([-1.0, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(grad_of(lambda t: t.clamp(0.0, 1.0), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(grad_of(lambda t: tg.clip(t, max=0.5), x), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(grad_of(lambda t: tg.hardtanh(t, 0.0, 1.0), x), [0, 0, 1, 0, 0])
    lo = t64([0.0, 0.5, 0.6, 2.0, 2.5])
    y = tg.clamp(x, lo, 2.2)
    np.testing.assert_array_equal(y.detach().numpy(), [0, 0.5, 0.6, 2.0, 2.2])
    y.sum().backward()
    np.testing.assert_array_equal(lo.grad.numpy(), [1, 1, 1, 1, 0])  # min > max gives max
    assert tg.clamp(tg.tensor([1, 5]), 2, 3).dtype == tg.int64
    assert tg.clamp(tg.tensor([1, 5]), 2.5).dtype == tg.float32
    with pytest.raises(RuntimeError, match="At least one"):
        tg.clamp(x)


def test_clamp_in_place():
    x = tg.tensor([-2.0, 0.5, 3.0])
    assert x.clamp_(-1, 1) is x and x.tolist() == [-1.0, 0.5, 1.0]
    w = t64([-2.0, 0.5, 3.0])
    y = w * 2
    y.clamp_(min=0.0)
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [0, 2, 2])


def test_rounding_goes_half_to_even_and_floor_ceil_trunc_toward_their_integer():
    x = tg.tensor([-1.5, -0.5, 0.5, 1.5, 2.5])
    assert x.round().tolist() == [-2, -0, 0, 2, 2]
    assert x.floor().tolist() == [-2, -1, 0, 1, 2] and x.ceil().tolist() == [-1, -0, 1, 2, 3]
    assert x.trunc().tolist() == [-1, 0, 0, 1, 2]
    assert tg.round(tg.tensor([1.2345]), decimals=2).tolist() == [pytest.approx(1.23)]


def test_rounding_gradient_is_zero():
    np.testing.assert_array_equal(grad_of(lambda t: t.round(), t64([0.3, 1.7])), [0, 0])


def test_integer_floor_reciprocal_and_square_keep_or_promote_like_pytorch():
    assert tg.tensor([2, 3]).floor().dtype == tg.int64
    assert tg.tensor([2, 4]).reciprocal().tolist() == [0.5, 0.25]
    assert tg.tensor([2, 3]).square().tolist() == [4, 9]


def test_atan2_gelu_and_leaky_relu_defaults_give_pytorchs_values():
    np.testing.assert_allclose(tg.atan2(tg.tensor([1.0]), tg.tensor([-1.0])).item(), 3 * np.pi / 4, rtol=1e-6)
    np.testing.assert_allclose(tg.gelu(tg.tensor([1.0])).item(), 0.8413447, rtol=1e-6)
    np.testing.assert_allclose(tg.gelu(tg.tensor([1.0]), approximate="tanh").item(), 0.8411920, rtol=1e-6)
    np.testing.assert_allclose(tg.leaky_relu(tg.tensor([-2.0])).item(), -0.02, rtol=1e-6)


# ---------------------------------------------------------------- shape
def test_squeeze_unsqueeze_flatten_unflatten_movedim_give_pytorchs_shapes():
    x = tg.zeros(2, 1, 3, 1)
    assert x.squeeze().shape == (2, 3) and x.squeeze(1).shape == (2, 3, 1)
    assert x.squeeze((1, 3)).shape == (2, 3) and x.squeeze(0).shape == x.shape
    assert x.unsqueeze(-1).shape == (2, 1, 3, 1, 1) and x.flatten(1).shape == (2, 3)
    assert x.flatten().shape == (6,) and tg.tensor(1.0).flatten().shape == (1,)
    assert x.unflatten(2, (3, 1)).shape == (2, 1, 3, 1, 1) and x.unflatten(0, (-1, 1)).shape == (2, 1, 1, 3, 1)
    assert tg.movedim(x, 0, -1).shape == (1, 3, 1, 2) and x.swapaxes(0, 2).shape == (3, 1, 2, 1)


def test_split_chunk_and_narrow_cut_where_pytorch_does():
    y = tg.arange(10)
    assert [p.tolist() for p in y.split(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(p) for p in y.split([3, 7])] == [3, 7]
    assert [len(p) for p in y.chunk(3)] == [4, 4, 2] and len(tg.arange(5).chunk(4)) == 3
    assert y.narrow(0, 2, 3).tolist() == [2, 3, 4] and y.narrow(0, -2, 2).tolist() == [8, 9]


def test_flip_roll_repeat_and_tile_move_values_like_pytorch():
    y = tg.arange(10)
    assert y.flip(0).tolist() == list(range(9, -1, -1)) and y.roll(2).tolist()[:3] == [8, 9, 0]
    assert tg.tensor([1, 2]).repeat(2, 2).tolist() == [[1, 2, 1, 2], [1, 2, 1, 2]]
    assert tg.tile(tg.tensor([[1, 2]]), (2,)).tolist() == [[1, 2, 1, 2]]


def test_cat_promotes_dtypes_and_skips_legacy_empty_tensors():
    a, b = tg.ones(2, 3), tg.zeros(1, 3, dtype=tg.float64)
    c = tg.cat([a, b])
    assert c.shape == (3, 3) and c.dtype == tg.float64
    assert tg.cat([tg.tensor([1, 2]), tg.tensor([0.5])]).dtype == tg.float32
    assert (tg.tensor([1, 2]) + tg.tensor([0.5, 1.0])).dtype == tg.float32  # not numpy's float64
    assert tg.tensor([0.1], dtype=tg.float64).item() == 0.1
    assert tg.concat([a, tg.tensor([])]).shape == (2, 3)  # legacy: 1-D empty tensors are skipped
    assert tg.stack([a, a], dim=-1).shape == (2, 3, 2)


def test_pad_modes_place_values_like_pytorch():
    p = tg.pad(tg.ones(2, 2), (1, 0, 0, 2), value=5.0)
    assert p.shape == (4, 3) and p.tolist()[0] == [5, 1, 1] and p.tolist()[3] == [5, 5, 5]
    assert tg.pad(tg.arange(4.0), (-1, -1)).tolist() == [1, 2]
    assert tg.pad(tg.arange(3.0).reshape(1, 1, 3), (2, 2), mode="reflect").tolist() == [[[2, 1, 0, 1, 2, 1, 0]]]
    assert tg.pad(tg.arange(3.0), (1, 1), mode="circular").tolist() == [2, 0, 1, 2, 0]
    assert tg.pad(tg.arange(3.0), (2, 1), mode="replicate").tolist() == [0, 0, 0, 1, 2, 2]


# ---------------------------------------------------------------- indexing and nn
def test_gather_scatter_index_select_and_masked_fill_keep_integer_dtypes():
    x = tg.tensor([[1, 2], [3, 4]])
    assert x.gather(1, tg.tensor([[0, 0], [1, 0]])).tolist() == [[1, 1], [4, 3]]
    z = tg.zeros(3, dtype=tg.int64).scatter_add(0, tg.tensor([0, 0, 2]), tg.tensor([1, 2, 3]))
    assert z.tolist() == [3, 0, 3]
    assert tg.zeros(2, 2).scatter(1, tg.tensor([[1], [0]]), 7.0).tolist() == [[0, 7], [7, 0]]
    assert x.index_select(0, tg.tensor([1, 1, 0])).tolist() == [[3, 4], [3, 4], [1, 2]]
    m = x.masked_fill(tg.tensor([True, False]), 0.5)
    assert m.dtype == tg.int64 and m.tolist() == [[0, 2], [0, 4]]
    assert tg.take_along_dim(x, tg.tensor([[1], [0]]), 1).tolist() == [[2], [3]]


def test_nonzero_and_one_hot_return_int64():
    x = tg.tensor([[1, 2], [3, 4]])
    assert x.nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and x.nonzero().dtype == tg.int64
    assert [t.tolist() for t in tg.tensor([0, 3, 0, 1]).nonzero(as_tuple=True)] == [[1, 3]]
    oh = tg.one_hot(tg.tensor([0, 2]))
    assert oh.dtype == tg.int64 and oh.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert tg.one_hot(tg.tensor([1]), num_classes=4).shape == (1, 4)


def test_all_and_any_reduce_bools_with_dims():
    b = tg.tensor([[True, False], [True, True]])
    assert b.all().item() is False and b.all(1).tolist() == [False, True] and b.any(0, keepdim=True).shape == (1, 2)


def test_cumsum_of_bools_counts_in_int64_and_its_gradient_is_a_reversed_cumsum():
    assert tg.tensor([1, 2, 3]).cumsum(0).tolist() == [1, 3, 6] and tg.tensor([True, True]).cumsum(0).dtype == tg.int64
    w = t64([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(grad_of(lambda t: t.cumsum(0) * t64([1.0, 10.0, 100.0], False), w), [111, 110, 100])


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("call, exc, match", [
    (lambda: tg.zeros(2, 3).sum(2), IndexError, "dim 2 is out of range"),
    (lambda: tg.zeros(2, 3).softmax(-3), IndexError, "softmax"),
    (lambda: tg.zeros(2, 3).max(5), IndexError, "max"),
    (lambda: tg.zeros(2, 3).squeeze(3), IndexError, "squeeze"),
    (lambda: tg.zeros(2, 3).flatten(1, 0), RuntimeError, "start_dim"),
    (lambda: tg.cat([tg.zeros(2, 3), tg.zeros(2, 4)]), RuntimeError, r"Sizes of tensors must match.*\(2, 3\)"),
    (lambda: tg.cat([tg.zeros(2, 3), tg.zeros(3)]), RuntimeError, "same number of dimensions"),
    (lambda: tg.cat([]), ValueError, "non-empty"),  # (PyTorch 2.13 raises ValueError here)
    (lambda: tg.stack([tg.zeros(2), tg.zeros(3)]), RuntimeError, "equal size"),
    (lambda: tg.zeros(2, 3).gather(1, tg.tensor([[3]])), RuntimeError, "index 3 is out of bounds for dimension 1 with size 3"),
    (lambda: tg.zeros(2, 3).gather(1, tg.tensor([0])), RuntimeError, "same number of dimensions"),
    (lambda: tg.zeros(2, 3).gather(1, tg.tensor([[0.0]])), RuntimeError, "int64"),
    (lambda: tg.zeros(3).scatter_add(0, tg.tensor([5]), tg.ones(1)), RuntimeError, "out of bounds"),
    (lambda: tg.zeros(3).index_select(0, tg.tensor([3])), IndexError, "out of range"),
    (lambda: tg.zeros(3).masked_fill(tg.tensor([1, 0, 1]), 1.0), RuntimeError, "boolean"),
    (lambda: tg.zeros(3).masked_fill(tg.tensor([True] * 2), 1.0), RuntimeError, "broadcastable"),
    (lambda: tg.zeros(4).split([1, 2]), RuntimeError, "sum exactly to 4"),
    (lambda: tg.zeros(4).narrow(0, 2, 3), RuntimeError, "exceeds"),
    (lambda: tg.zeros(4).repeat(2, 2).repeat(2), RuntimeError, "can not be smaller"),
    (lambda: tg.pad(tg.zeros(2), (3, 0), mode="reflect"), RuntimeError, "too large"),
    (lambda: tg.one_hot(tg.tensor([0.0])), RuntimeError, "index tensor"),
    (lambda: tg.one_hot(tg.tensor([3]), 2), RuntimeError, "smaller than num_classes"),
    (lambda: tg.zeros(0).amax(), RuntimeError, "dim to be specified"),
    (lambda: tg.zeros(2, 0).amax(1), IndexError, "non-zero size"),
    (lambda: tg.zeros(2, 0).max(1), IndexError, "non-zero size"),
    (lambda: tg.tensor([1, 2]).softmax(0), RuntimeError, "softmax"),
    (lambda: tg.gelu(tg.zeros(1), approximate="fast"), RuntimeError, "approximate"),
])
def test_errors_name_the_op_and_the_culprit(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_tensor_methods_exist():
    names = ("max min amax amin argmax argmin prod var std norm logsumexp cumsum all any softmax log_softmax "
             "flatten unflatten squeeze unsqueeze chunk split narrow movedim swapaxes flip repeat tile roll "
             "gather scatter scatter_add index_select masked_fill nonzero clamp clip clamp_ square reciprocal "
             "floor ceil round trunc silu view_as type_as").split()
    missing = [n for n in names if not callable(getattr(tg.Tensor, n, None))]
    assert not missing
    top = ("leaky_relu elu gelu softplus silu logsigmoid hardtanh softmax log_softmax one_hot clamp clip "
           "square reciprocal atan2 prod var std amax logsumexp norm cumsum cat concat stack split chunk pad "
           "flip gather scatter_add scatter index_select masked_fill nonzero take_along_dim").split()
    assert not [n for n in top if not callable(getattr(tg, n, None))]


def test_relu_gradient_selects_like_pytorch():
    """PyTorch's threshold_backward is a select: an inf/NaN upstream gradient where the
    output is 0 gives 0, not NaN (a product would give inf * 0 = NaN)."""
    x = tg.tensor([-1.0, 2.0, 0.0], requires_grad=True)
    x.relu().backward(tg.tensor([float("inf"), float("nan"), float("inf")]))
    g = x.grad.numpy()
    assert g[0] == 0 and np.isnan(g[1]) and g[2] == 0


def test_zero_d_integer_results_are_tensors_of_arrays():
    """0-d integer arithmetic (numpy returns scalars there) still gives a usable tensor."""
    r = tg.tensor(3) % 2
    assert isinstance(r.numpy(), np.ndarray) and r.item() == 1
    assert bool(r == 1) and (tg.tensor(-7) // 2).item() == -4 and tg.fmod(tg.tensor(-7), 2).item() == -1


def test_promotion_takes_all_operands_at_once():
    """clamp's input and both bounds promote together, as PyTorch's result_type: a 0-d float64
    bound does not outrank a dimensioned float32 one (pairwise promotion said float64)."""
    x = tg.tensor(3)
    out = tg.clamp(x, tg.tensor([1.0]), tg.tensor(5.0, dtype=tg.float64))
    assert out.dtype == tg.float32 and out.tolist() == [3.0]
    assert tg.clamp(tg.tensor([1, 5]), 2, 4.5).dtype == tg.float32
    assert tg.clamp(tg.tensor([1, 5], dtype=tg.int32), tg.tensor(2), 4).dtype == tg.int32


def test_integer_division_of_unbroadcastable_shapes_is_a_runtime_error():
    for f in (lambda a, b: a // b, lambda a, b: a % b, tg.fmod):
        with pytest.raises(RuntimeError, match=r"\(0, 0, 0\) must match the size of tensor b \(2,\)"):
            f(tg.zeros(0, 0, 0, dtype=tg.int64), tg.ones(2, dtype=tg.int64))


# ---------------------------------------------------------------- moved from the *_vs_torch files: not per-op claims
def test_tensor_helpers_match_torch():
    torch = pytest.importorskip("torch")
    for M in (torch, tg):
        x = M.tensor([[1.5, -2.0], [3.0, 0.25]])
        assert x.new_zeros(2, 3).dtype == x.dtype and tuple(x.new_ones((2,)).shape) == (2,)
        assert x.new_full((2,), 7).dtype == x.dtype and x.new_tensor([1, 2]).dtype == x.dtype
        assert x.new_empty(3).shape[0] == 3
        assert str(x.byte().dtype).endswith("uint8") and str(x.char().dtype).endswith("int8")
        assert str(x.short().dtype).endswith("int16") and not x.is_complex()
        assert x.data_ptr() != 0 and tuple(x.ravel().shape) == (4,)
        assert x.equal(x.clone()) and x.allclose(x + 1e-9) and bool(x.isclose(x).all())
        assert not bool(x.isinf().any())
        assert M.broadcast_shapes((2, 1), (3,)) == (2, 3) and type(M.broadcast_shapes((2,), ())) is M.Size
        assert isinstance(x, M.FloatTensor) and not isinstance(x, M.LongTensor)
        assert isinstance(x.dtype, M.dtype)
        with M.inference_mode():
            assert not M.is_grad_enabled()
        assert np.allclose(M.logspace(0, 2, 3).numpy(), [1, 10, 100])


def test_legacy_typed_constructors_match_torch():
    """FloatTensor(Size) and FloatTensor() are shapes (YOLO losses write FloatTensor(x.shape));
    a same-dtype tensor is shared, another dtype and a bare number raise TypeError."""
    torch = pytest.importorskip("torch")
    for M in (torch, tg):
        assert tuple(M.FloatTensor(M.Size([2, 3])).shape) == (2, 3) and M.FloatTensor(M.Size([2, 3])).dtype == M.float32
        assert tuple(M.LongTensor(M.Size([4])).shape) == (4,) and tuple(M.FloatTensor().shape) == (0,)
        assert tuple(M.DoubleTensor(2, 3).shape) == (2, 3) and M.FloatTensor((2, 3)).tolist() == [2.0, 3.0]
        x = M.tensor([1.0, 2.0])
        y = M.FloatTensor(x)
        y[0] = 5.0
        assert x.tolist() == [5.0, 2.0]
        for bad in (lambda: M.FloatTensor(M.tensor([1, 2])), lambda: M.LongTensor(2.5), lambda: M.FloatTensor(True)):
            with pytest.raises(TypeError):
                bad()


def test_deprecated_number_first_overloads_match_torch():
    """x.add_(-lr, g), v.addcmul_(1 - b2, g, g): PyTorch's deprecated order runs, with a warning."""
    torch = pytest.importorskip("torch")
    calls = [lambda M, x, y: x.clone().add_(0.5, y), lambda M, x, y: x.clone().sub_(0.5, y),
             lambda M, x, y: M.add(x, 3, y), lambda M, x, y: x.sub(2, y), lambda M, x, y: x.clone().addcmul_(0.5, y, y),
             lambda M, x, y: x.clone().addcdiv_(0.5, y, y), lambda M, x, y: M.addcmul(x, 2, y, y),
             lambda M, x, y: x.addcdiv(2, y, y), lambda M, x, y: M.sub(x, 2, y, out=M.empty(3))]
    got = []
    for M in (tg, torch):  # (PyTorch warns once per process; tapegrad as Python's warnings filter says)
        x, y = M.tensor([1.0, -2.0, 3.0]), M.tensor([2.0, 4.0, -1.0])
        with pytest.warns(UserWarning, match="This overload of .* is deprecated") if M is tg else warnings.catch_warnings():
            got.append([c(M, x, y).tolist() for c in calls])
            w = M.ones(2, requires_grad=True)
            M.ones(2).add(3.0, w).sum().backward()
        assert w.grad.tolist() == [3.0, 3.0]
        for bad in (lambda: x.add(y, y), lambda: x.add(2, y, alpha=3), lambda: x.addcmul(y, y, y)):
            with pytest.raises(TypeError):
                bad()
    assert got[0] == got[1]


def test_random_fills_are_seeded_and_allowed_on_leaves_under_no_grad():
    w = tg.zeros(1000, requires_grad=True)
    with tg.no_grad():
        tg.manual_seed(0)
        w.uniform_(-2, 3)
        a = w.detach().numpy().copy()
        tg.manual_seed(0)
        w.uniform_(-2, 3)
    assert np.array_equal(a, w.detach().numpy()) and a.min() >= -2 and a.max() < 3 and w._version == 2
    with tg.no_grad():
        w.normal_(1.0, 0.5)
        assert abs(float(w.mean()) - 1.0) < 0.1 and abs(float(w.std()) - 0.5) < 0.1
        w.bernoulli_(0.3)
        assert set(np.unique(w.detach().numpy())) <= {0.0, 1.0}
    with pytest.raises(RuntimeError, match="leaf"):
        w.normal_()
    with pytest.raises(RuntimeError, match="leaf"):
        w.exp_()


def test_inplace_on_a_saved_tensor_is_caught():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y.sigmoid()  # saves its output
    z.exp_()
    with pytest.raises(RuntimeError):
        (y.sigmoid() * z).sum().backward() or z.sum().backward() or z.grad_fn.next_functions  # noqa: B018
    zz = x.sigmoid()
    w = zz * zz  # saves zz
    zz.mul_(2)
    with pytest.raises(RuntimeError):
        w.sum().backward()


def test_linalg_results_are_named_tuples_like_torch():
    a = np.random.default_rng(0).standard_normal((2, 5, 3))
    assert tg.linalg.svd(tg.tensor(a))._fields == ("U", "S", "Vh")
    assert tg.linalg.eigh(tg.tensor(a[:, :3] + a[:, :3].transpose(0, 2, 1)))._fields == ("eigenvalues", "eigenvectors")
    r = tg.linalg.lstsq(tg.tensor(a), tg.tensor(a[..., :1]))
    assert r._fields == ("solution", "residuals", "rank", "singular_values")


def test_complete_qr_of_a_tall_matrix_says_it_is_not_differentiable():
    a = tg.tensor(np.random.default_rng(0).standard_normal((2, 5, 3)), requires_grad=True)
    Q, R = tg.linalg.qr(a, mode="complete")
    assert tuple(Q.shape) == (2, 5, 5) and tuple(R.shape) == (2, 5, 3)
    with pytest.raises(RuntimeError, match="not differentiable when mode='complete'"):
        Q.sum().backward()


def test_linalg_errors_are_runtime_errors_that_name_the_culprit():
    sing = np.ones((3, 3))
    assert issubclass(tg.linalg.LinAlgError, RuntimeError)
    with pytest.raises(tg.linalg.LinAlgError, match=r"linalg.solve.*\(3, 3\).*singular"):
        tg.linalg.solve(tg.tensor(sing), tg.ones(3, dtype=tg.float64))
    with pytest.raises(tg.linalg.LinAlgError, match="cholesky.*positive-definite"):
        tg.linalg.cholesky(-tg.eye(3))
    with pytest.raises(RuntimeError, match="polygamma"):
        tg.polygamma(-1, tg.ones(2))


def test_empty_and_zero_dim_edge_cases_match_pytorch():
    """unbind of a size-0 dim gave one empty slice (not none), where/nonzero(as_tuple) of a 0-d
    tensor raised numpy's IndexError, searchsorted with no rows and tensordot over a size-0
    contraction failed inside numpy/reshape."""
    assert tg.unbind(tg.ones(0, 3)) == () and tg.ones(3, 0).unbind(1) == ()
    assert [t.tolist() for t in tg.where(tg.tensor(2.5))] == [[0]]
    assert [t.tolist() for t in tg.nonzero(tg.tensor(0.0), as_tuple=True)] == [[]]
    assert tg.searchsorted(tg.ones(0, 3), tg.ones(0, 2)).shape == (0, 2)
    assert tg.tensordot(tg.ones(0, 3), tg.ones(0, 3)).item() == 0.0
    assert tg.tensordot(tg.ones(2, 0), tg.ones(0, 4), 1).tolist() == [[0.0] * 4] * 2
    assert tg.tensordot(tg.ones(2, 3, 4), tg.ones(3, 4, 5)).shape == (2, 5)


@pytest.mark.parametrize("call, error, message", [
    (lambda: tg.take(tg.ones(3), tg.tensor([1.5])), RuntimeError, "take.*long tensor for index"),
    (lambda: tg.diff(tg.ones(3), -1), RuntimeError, "diff: order must be a non-negative"),
    (lambda: tg.pdist(tg.ones(2, 3), -1), RuntimeError, "pdist only supports non-negative p"),
    (lambda: tg.svd_lowrank(tg.ones(3, 3), -1), ValueError, r"svd_lowrank: q\(=-1\)"),
    (lambda: tg.pca_lowrank(tg.ones(3, 3), 5), ValueError, r"pca_lowrank: q\(=5\).*min\(m, n\)=3"),
])
def test_bad_parameters_raise_instead_of_truncating(call, error, message):
    """Each returned a plausible wrong answer: take() truncated a float index, diff(n=-1)
    returned the input, pdist(p=-1) a 'distance', and a negative q sliced triplets off the end."""
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- blocked fast paths (lerp, addcmul, addcdiv, clamp, pow)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unrecorded_fast_paths_match_the_recorded_ops_bit_for_bit(dtype):
    # lerp/addcmul/addcdiv/clamp and their in-place forms run on arrays (blocked, into self) when nothing is
    # recorded; the values are those of the recorded ops, the in-place forms those of the out-of-place ones
    rng = np.random.default_rng(7)
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 0.2, 0.8, -1e-30, 1e30, 1.0], dtype)
    for shape in [(10,), (300, 700), (3, 5)]:
        a, b, c = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
        a.reshape(-1)[:10], b.reshape(-1)[-10:] = edge, edge
        c = np.abs(c) + 0.5
        cases = [("lerp", (b, 0.3), {}), ("lerp", (b, 0.7), {}), ("lerp", (b, 1), {}), ("addcmul", (b, c), {"value": 0.5}),
                 ("addcmul", (b, c), {}), ("addcdiv", (b, c), {"value": -0.1}), ("addcdiv", (b, c), {}),
                 ("clamp", (0.2, 0.8), {}), ("clamp", (0.0, 1.0), {}), ("clamp", (-0.0, None), {}),
                 ("clamp", (None, 0.5), {}), ("clamp", (0.8, 0.2), {})]
        for name, args, kw in cases:
            targs = [tg.tensor(v) if isinstance(v, np.ndarray) else v for v in args]
            xr = tg.tensor(a, requires_grad=True)
            want = getattr(tg, name)(xr, *[t.requires_grad_(False) if isinstance(t, tg.Tensor) else t for t in targs], **kw)
            with tg.no_grad():
                got = getattr(tg, name)(tg.tensor(a), *targs, **kw)
            assert got.detach().numpy().tobytes() == want.detach().numpy().tobytes(), (name, args)
            s = tg.tensor(a.copy())
            v0 = s._version
            assert getattr(s, name + "_")(*targs, **kw) is s and s._version == v0 + 1
            assert s.numpy().tobytes() == want.detach().numpy().tobytes(), (name + "_", args)
            base = tg.tensor(np.stack([a, a]))  # a view: the write reaches its base
            getattr(base[1], name + "_")(*targs, **kw)
            assert base[1].numpy().tobytes() == want.detach().numpy().tobytes()
    x = tg.tensor(rng.standard_normal(100000).astype(dtype))
    y = x.clone()
    x.addcmul_(x, x, value=0.5)  # aliased operands: the generic path
    np.testing.assert_array_equal(x.numpy(), (y + y * y * 0.5).numpy())
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tg.ones(3, requires_grad=True).lerp_(tg.zeros(3), 0.5)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tg.ones(3, requires_grad=True).clamp_(0, 1)


def test_pow_3_and_minus_2_are_pytorchs_products():
    # x ** 3 is x*x*x and x ** -2 is 1/(x*x), as PyTorch's pow kernel computes them (x ** -1's gradient too)
    import torch
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        x = np.concatenate([np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 1e20, -7.5], dtype),
                            rng.standard_normal(5000).astype(dtype)])
        for e in (3, 3.0, -2, -2.0, -1):
            a = tg.tensor(x, requires_grad=True)
            t = torch.tensor(x, requires_grad=True)
            ya, yt = a ** e, t ** e
            np.testing.assert_array_equal(ya.detach().numpy(), yt.detach().numpy())
            if e in (3, -1):  # their gradients use x ** 2 and x ** -2 (x ** -2's uses np.power's x ** -3)
                ya.sum().backward()
                yt.sum().backward()
                np.testing.assert_array_equal(a.grad.numpy(), t.grad.numpy())
        assert tg.tensor(x).pow(3).dtype == tg.tensor(x).dtype
    assert tg.autograd.gradgradcheck(lambda u: u ** 3 + u ** -2, (tg.tensor([0.7, -1.3, 2.0], dtype=tg.float64,
                                                                             requires_grad=True),))


def test_pow_half_and_minus_half_are_sqrt_forms_with_pytorchs_special_values():
    # PyTorch computes x ** 0.5 as sqrt and x ** -0.5 as 1 / sqrt: sqrt(-0) = -0, 1 / sqrt(-0) = -inf and
    # both are NaN at -inf, where C's pow gives +0, +inf and inf, 0. x ** -0.5 is PyTorch's bit for bit;
    # x ** 0.5 is the correctly rounded sqrt (PyTorch's own sqrt may differ from it in the last bit)
    import torch
    rng = np.random.default_rng(10)
    for dtype in (np.float32, np.float64):
        x = np.concatenate([np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 1e20, -7.5, 4.0], dtype),
                            np.abs(rng.standard_normal(5000)).astype(dtype)])
        t = torch.tensor(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.testing.assert_array_equal((tg.tensor(x) ** -0.5).numpy(), (t ** -0.5).numpy())
            half = (tg.tensor(x) ** 0.5).numpy()
            np.testing.assert_array_equal(half, np.sqrt(x))
        theirs = (t ** 0.5).numpy()
        np.testing.assert_array_equal(np.isnan(half), np.isnan(theirs))
        ok = ~np.isnan(half)  # a NaN's sign bit is the hardware's choice (x86's default NaN is negative)
        np.testing.assert_array_equal(np.signbit(half[ok]), np.signbit(theirs[ok]))
        np.testing.assert_allclose(half, theirs, rtol=2e-7 if dtype == np.float32 else 1e-15)
    assert tg.autograd.gradgradcheck(lambda u: u ** 0.5 + u ** -0.5, (tg.tensor([0.7, 1.3, 2.0], dtype=tg.float64,
                                                                               requires_grad=True),))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lerp_tensor_weight_fast_path_is_the_two_sided_formula_bit_for_bit(dtype):
    # lerp with a tensor weight of the ends' shape selects its branch by bit masks, block by block: the values
    # are np.where(|w| < 0.5, a + w*d, b - d*(1-w)) exactly, NaN weights and the edges of 0.5 included
    rng = np.random.default_rng(9)
    wedge = np.array([np.nan, 0.5, -0.5, np.inf, -np.inf, -0.0, 0.0, np.nextafter(dtype(0.5), dtype(0)),
                      -np.nextafter(dtype(0.5), dtype(0)), np.nextafter(dtype(0.5), dtype(1)), 1.0, -1e-40], dtype)
    for shape in [(12,), (300, 301), (70001,), (2, 0)]:
        a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
        w = (rng.random(shape) * 3 - 1.5).astype(dtype)
        if a.size:
            w.reshape(-1)[:12] = wedge
            a.reshape(-1)[:4] = [np.inf, np.nan, -0.0, 1.0]
            b.reshape(-1)[:4] = [np.inf, 2.0, 0.0, 1.0]
        with np.errstate(all="ignore"):
            d = b - a
            want = np.where(np.abs(w) < 0.5, a + w * d, b - d * (1 - w)).astype(dtype)
        def bits(v):  # the bits, NaNs as one NaN (a NaN's sign and payload follow numpy's loops)
            return np.where(np.isnan(v), dtype(np.nan), v).tobytes()
        got = tg.lerp(tg.tensor(a), tg.tensor(b), tg.tensor(w)).numpy()
        assert got.dtype == dtype and bits(got) == bits(want)
        if a.ndim == 2:
            got_t = tg.lerp(tg.tensor(a.T.copy()).t(), tg.tensor(b), tg.tensor(w)).numpy()  # strided: the generic path
            assert bits(got_t) == bits(want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lerp_one_pass_gradients_are_the_composite_vjps_bit_for_bit(dtype, monkeypatch):
    # first-order, lerp's gradients come from one C++ pass that makes every wanted one (the later
    # VJPs take theirs from the node); under create_graph from the composite VJPs: the same bits,
    # for number and tensor weights and any subset of the inputs requiring grad
    rng = np.random.default_rng(13)
    shape = (300, 301)
    a, b, g = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    w = (rng.random(shape) * 2 - 0.5).astype(dtype)
    calls = []
    native = tg._C.lerp_backward
    monkeypatch.setattr(tg._C, "lerp_backward", lambda *args: calls.append(args[4:]) or native(*args))
    for weight in (w, 0.3, 0.8):
        for req in ((True, True, True), (True, False, True), (False, True, False), (True, True, False),
                    (False, False, True), (True, False, False)):
            if not isinstance(weight, np.ndarray) and not any(req[:2]):
                continue
            grads = []
            for create_graph in (False, True):
                ts = [tg.tensor(v, requires_grad=r) for v, r in zip((a, b), req)]
                wt = tg.tensor(weight, requires_grad=req[2]) if isinstance(weight, np.ndarray) else weight
                leaves = [t for t in ts + [wt] if isinstance(t, tg.Tensor) and t.requires_grad]
                calls.clear()
                tg.lerp(ts[0], ts[1], wt).backward(tg.tensor(g), create_graph=create_graph)
                assert len(calls) == (0 if create_graph else 1)  # one pass for all, none under create_graph
                grads.append([t.grad.detach().numpy().tobytes() for t in leaves])
            assert grads[0] == grads[1], (weight if np.ndim(weight) == 0 else "tensor", req)
    # a 0-d weight that requires grad: its gradient is a sum, the composite's
    wt = tg.tensor(dtype(0.3), requires_grad=True)
    ta = tg.tensor(a, requires_grad=True)
    tg.lerp(ta, tg.tensor(b), wt).backward(tg.tensor(g))
    np.testing.assert_allclose(wt.grad.numpy(), (g * (b - a)).sum(), rtol=1e-4)
    np.testing.assert_array_equal(ta.grad.numpy(), g * (1 - dtype(0.3)))


def test_lerp_tensor_weight_gradcheck_gradgradcheck_and_strided_inputs():
    # float64 gradients of every input through the one-pass kernel, the second order through the
    # composite VJPs; strided, 0-d and empty operands take numpy's paths with the same values
    rng = np.random.default_rng(14)
    a, b = (tg.tensor(rng.standard_normal((5, 7)), requires_grad=True) for _ in range(2))
    w = tg.tensor(rng.random((5, 7)) * 1.5 - 0.25, requires_grad=True)
    assert tg.autograd.gradcheck(tg.lerp, (a, b, w))
    assert tg.autograd.gradgradcheck(tg.lerp, (a, b, w))
    assert tg.autograd.gradgradcheck(lambda x, y: tg.lerp(x, y, 0.7), (a, b))
    x, y, z = (rng.standard_normal((40, 30)) for _ in range(3))
    want = tg.lerp(tg.tensor(x), tg.tensor(y), tg.tensor(z)).numpy()
    got = tg.lerp(tg.tensor(x.T.copy()).t(), tg.tensor(y.T.copy()).t(), tg.tensor(z.T.copy()).t()).numpy()
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()
    assert tg.addcmul(tg.tensor(x.T.copy()).t(), tg.tensor(y), tg.tensor(z), value=0.5).numpy().tobytes() == \
        tg.addcmul(tg.tensor(x), tg.tensor(y), tg.tensor(z), value=0.5).numpy().tobytes()
    assert float(tg.lerp(tg.tensor(1.0), tg.tensor(3.0), 0.25)) == 1.5
    assert float(tg.lerp(tg.tensor(1.0), tg.tensor(3.0), tg.tensor(0.75))) == 2.5
    assert tg.lerp(tg.zeros(2, 0), tg.ones(2, 0), tg.ones(2, 0)).shape == (2, 0)
    assert tg.addcdiv(tg.zeros(0), tg.ones(0), tg.ones(0)).shape == (0,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lerp_with_a_tensor_weight_in_place_writes_the_out_of_place_bits(dtype):
    rng = np.random.default_rng(15)
    a, b = (rng.standard_normal((300, 301)).astype(dtype) for _ in range(2))
    w = (rng.random((300, 301)) * 2 - 0.5).astype(dtype)
    want = tg.lerp(tg.tensor(a), tg.tensor(b), tg.tensor(w)).numpy()
    s = tg.tensor(a.copy())
    v0 = s._version
    assert s.lerp_(tg.tensor(b), tg.tensor(w)) is s and s._version == v0 + 1
    assert s.numpy().tobytes() == want.tobytes()
    s = tg.tensor(a.copy())
    s.lerp_(tg.tensor(b), s)  # the weight is self: the generic path (the result computed before the write)
    d = b - a
    np.testing.assert_array_equal(s.numpy(), np.where(np.abs(a) < 0.5, a + a * d, b - d * (1 - a)))
    s = tg.tensor(a.copy())
    s.lerp_(tg.tensor(b), tg.tensor(dtype(0.3)))  # a 0-d tensor weight
    assert s.numpy().tobytes() == tg.lerp(tg.tensor(a), tg.tensor(b), 0.3).numpy().tobytes()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tg.ones(3, requires_grad=True).lerp_(tg.zeros(3), tg.ones(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recorded_addcmul_addcdiv_one_op_keeps_the_composites_bits(dtype):
    # recorded on C-contiguous operands of one shape, addcmul / addcdiv are one op (one forward pass)
    # whose VJPs are the composite's; transposed operands still record mul / div, mul, add: the same
    # values and gradients bit for bit, and double backward through either
    rng = np.random.default_rng(17)
    x, t1, t2, g = (rng.standard_normal((40, 30)).astype(dtype) for _ in range(4))
    t2 = np.abs(t2) + 0.5
    for name in ("addcmul", "addcdiv"):
        for value in (1, 0.5, -3):
            res = []
            for strided in (False, True):
                ts = [tg.tensor(v.T.copy(), requires_grad=True) if strided else tg.tensor(v, requires_grad=True)
                      for v in (x, t1, t2)]
                args = [t.t() for t in ts] if strided else ts
                out = getattr(tg, name)(*args, value=value)
                assert (out.grad_fn.name().lower().startswith(name)) != strided
                out.backward(tg.tensor(g))
                res.append([out.detach().numpy().tobytes()] +
                           [np.ascontiguousarray(t.grad.numpy().T if strided else t.grad.numpy()).tobytes() for t in ts])
            assert res[0] == res[1], (name, value)
            y = tg.tensor(t1, requires_grad=True)
            s = tg.tensor(x.copy())
            getattr(s, name + "_")(y, tg.tensor(t2), value=value)  # recorded in place: the one op too
            assert s.detach().numpy().tobytes() == res[0][0]
    a, b, c = (tg.tensor(v[:4, :3].astype(np.float64), requires_grad=True) for v in (x, t1, t2))
    assert tg.autograd.gradcheck(lambda p, q, r: tg.addcmul(p, q, r, value=0.5), (a, b, c))
    assert tg.autograd.gradgradcheck(lambda p, q, r: tg.addcmul(p, q, r, value=0.5), (a, b, c))
    assert tg.autograd.gradgradcheck(lambda p, q, r: tg.addcdiv(p, q, r, value=-2), (a, b, c))


def test_lerp_addcmul_addcdiv_match_pytorch():
    # PyTorch's vectorised lerp contracts into fused multiply-adds where tapegrad rounds the product
    # (its scalar formula): an ulp apart at most; addcmul / addcdiv likewise
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    for dtype, tol in ((np.float32, 2e-6), (np.float64, 1e-14)):
        a, b, c = (rng.standard_normal((100, 1001)).astype(dtype) for _ in range(3))
        w = (rng.random((100, 1001)) * 2 - 0.5).astype(dtype)
        ta, tb, tc, tw = (torch.from_numpy(v) for v in (a, b, c, w))
        T = [tg.tensor(v) for v in (a, b, c, w)]
        for got, want in ((tg.lerp(T[0], T[1], 0.3), torch.lerp(ta, tb, 0.3)),
                          (tg.lerp(T[0], T[1], 0.8), torch.lerp(ta, tb, 0.8)),
                          (tg.lerp(T[0], T[1], T[3]), torch.lerp(ta, tb, tw)),
                          (tg.addcmul(T[0], T[1], T[2], value=0.5), torch.addcmul(ta, tb, tc, value=0.5)),
                          (tg.addcdiv(T[0], T[1], T[3] + 0.5, value=-2), torch.addcdiv(ta, tb, tw + 0.5, value=-2))):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=tol, atol=tol)
        x = [tg.tensor(v, requires_grad=True) for v in (a, b, w)]
        y = [torch.tensor(v, requires_grad=True) for v in (a, b, w)]
        tg.lerp(*x).backward(tg.tensor(c))
        torch.lerp(*y).backward(torch.from_numpy(c))
        for p, q in zip(x, y):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_amax_amin_gradients_are_pytorchs_bit_for_bit(dtype):
    # (g / count) * (x == out): ties share g evenly (counts of 3 round as PyTorch's division), a
    # row holding NaN has no x equal to its NaN maximum and gets NaN, other entries 0 or -0 by g's sign
    import torch
    rng = np.random.default_rng(11)
    for shape, dims, keepdim in [((6, 7), 1, False), ((6, 7), 0, True), ((3, 4, 5), (0, 2), False),
                                 ((3, 4, 5), (0, 1, 2), False), ((30, 7), 0, False), ((4, 6), -1, True)]:
        x = rng.integers(0, 3, shape).astype(dtype)
        x[0, ...] = np.nan
        g = rng.standard_normal(np.amax(x, axis=dims, keepdims=keepdim).shape).astype(dtype)
        for name in ("amax", "amin"):
            a, t = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            getattr(tg, name)(a, dims, keepdim).backward(tg.tensor(g))
            getattr(torch, name)(t, dims, keepdim).backward(torch.tensor(g))
            ours, theirs = a.grad.numpy(), t.grad.numpy()
            np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
            assert ours[~np.isnan(ours)].tobytes() == theirs[~np.isnan(theirs)].tobytes()
            # the create_graph composite gives the same values
            b = tg.tensor(x, requires_grad=True)
            gg, = tg.autograd.grad(getattr(tg, name)(b, dims, keepdim), b, tg.tensor(g), create_graph=True)
            np.testing.assert_allclose(gg.detach().numpy(), ours, rtol=1e-6)
