"""The ported-script API (tests/ops/test_vs_torch.py's harness) against PyTorch: values, gradients,
dtypes and exception types of the math, linalg, sorting, layout, in-place and nn additions."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import tapegrad as tg  # noqa: E402
from torch_oracle import as_numpy as _np, check_double_backward, check_forward_and_gradients, check_same_exception_type  # noqa: E402

pytestmark = pytest.mark.torch


def F(M):
    return torch.nn.functional if M is torch else tg.nn.functional

rng = np.random.default_rng(3)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((4,))
C = rng.standard_normal((4, 5))
S = rng.uniform(-0.8, 0.8, (3, 4))
P = rng.uniform(0.5, 2.0, (3, 4))
Q = rng.uniform(0.1, 0.9, (3, 4))
M3 = rng.standard_normal((2, 3, 3)) * 0.3 + np.eye(3) * 2
V3 = rng.standard_normal((2, 3))
T = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, -1.0, 2.0], [0.0, 0.0, 0.0, 1.0]])  # ties
Z = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 2.0], [1.5, -2.0, 0.5, 0.7]])
NANS = np.array([[1.0, np.nan, 2.0], [np.nan, 3.0, -1.0]])

CASES = {
    "exp2_log2_log10": (lambda M, x: M.exp2(x) + M.log2(x) + M.log10(x), [P]),
    "hyperbolic": (lambda M, x: M.sinh(x) * M.cosh(x) + M.asinh(x), [A]),
    "inverse_trig": (lambda M, x: M.asin(x) + M.acos(x) * M.atan(x) + M.atanh(x) + M.acosh(x * x + 1.5), [S]),
    "logit": (lambda M, x: M.logit(x) + M.logit(x, eps=0.2), [Q]),
    "erfinv_erfc": (lambda M, x: M.erfinv(x) + M.special.erfc(x) if M is torch else M.erfinv(x) + M.erfc(x), [S]),
    "hypot_logaddexp": (lambda M, x, y: M.hypot(x, y) + M.logaddexp(x, y * 10), [A, B]),
    "remainder_fmod": (lambda M, x, y: M.remainder(x * 3, y) + M.fmod(x * 3, y) + M.remainder(x, 0.7), [A, P[0]]),
    "frac_floor_divide": (lambda M, x: M.frac(x * 3) + M.floor_divide(x.detach() * 5, 2), [A]),
    "lerp": (lambda M, x, y, w: M.lerp(x, y, w) + M.lerp(x, y, 0.3) + x.lerp(y, 0.8), [A, B, Q]),
    "addcmul_addcdiv": (lambda M, x, y, z: M.addcmul(x, y, z, value=0.5) + M.addcdiv(x, y, z, value=-2), [A, B, P]),
    "nan_to_num": (lambda M, x: M.nan_to_num(x / M.tensor([0.0, 1.0, 0.0, 2.0], dtype=M.float64), nan=0.5,
                                             posinf=9.0), [A]),
    "sgn": (lambda M, x: M.sgn(x) * x, [A]),
    "dot_mv_outer": (lambda M, x, y: [M.dot(y, y), M.mv(x, y), M.outer(x[0], y)], [A, B]),
    "addmm": (lambda M, c, a, b: M.addmm(c, a, b, beta=0.5, alpha=2), [B[:1].repeat(5), A, C]),
    "baddbmm": (lambda M, c, a: M.baddbmm(c, a, a.transpose(1, 2), alpha=-1), [M3, M3]),
    "einsum_mm": (lambda M, a, b: M.einsum("ij,jk->ik", a, b), [A, C]),
    "einsum_implicit": (lambda M, a, b: M.einsum("ij,kj", a, b), [A, A]),
    "einsum_ellipsis": (lambda M, a, b: M.einsum("...ij,...j->...i", a, b), [M3, V3]),
    "einsum_trace_diag": (lambda M, a: [M.einsum("bii->b", a), M.einsum("bii->bi", a), M.einsum("ij->", a[0])], [M3]),
    "einsum_three": (lambda M, a, b, c: M.einsum("i,j,ij->", a, b, c), [A[:, 0], B, A]),
    "tril_triu": (lambda M, x: M.tril(x, -1) + M.triu(x, 2) + x.tril(), [A]),
    "diag_diagonal_trace": (lambda M, x, v: [M.diag(x, 1), M.diag(v, -1), M.diagonal(x, 0, 1, 0), M.trace(x),
                                             M.diag_embed(x, 1)], [A, B]),
    "cross": (lambda M, a, b: M.cross(a, b, dim=1), [V3, V3[::-1].copy()]),
    "det_inverse": (lambda M, a: [M.det(a), M.inverse(a)], [M3]),
    "sort": (lambda M, x: M.sort(x, 1), [A]),
    "sort_desc_stable": (lambda M, x: M.sort(x, dim=0, descending=True, stable=True), [T]),
    "sort_stable": (lambda M, x: x.sort(dim=1, stable=True), [T]),
    "argsort": (lambda M, x: M.argsort(x, 1, descending=True), [A]),
    "topk": (lambda M, x: M.topk(x, 2), [A]),
    "topk_smallest_dim0": (lambda M, x: x.topk(2, 0, largest=False), [A]),
    "kthvalue": (lambda M, x: M.kthvalue(x, 2, 1, keepdim=True), [A]),
    "median_all": (lambda M, x: M.median(x), [A]),
    "median_all_ties": (lambda M, x: M.median(x), [T]),
    "median_dim": (lambda M, x: M.median(x, 1), [A]),
    "mode": (lambda M, x: M.mode(x, 1), [T]),
    "unique": (lambda M, x: M.unique(x.detach(), return_inverse=True, return_counts=True), [T]),
    "unique_dim": (lambda M, x: M.unique(M.cat([x, x[:1]]).detach(), dim=0), [T]),
    "cumprod": (lambda M, x: M.cumprod(x, 1), [A]),
    "cumprod_zeros": (lambda M, x: M.cumprod(x, 1) + M.cumprod(x, 0), [Z]),
    "nansum_nanmean": (lambda M, x: [M.nansum(x), M.nansum(x, 1), M.nanmean(x, 0)], [NANS]),
    "bucketize_searchsorted": (lambda M, x: [M.bucketize(x, M.tensor([-1.0, 0.0, 1.0], dtype=M.float64)),
                                             M.bucketize(x, M.tensor([-1.0, 0.0, 1.0], dtype=M.float64), right=True),
                                             M.searchsorted(M.sort(x, 1).values, x[:, :2].detach()),
                                             M.searchsorted(M.tensor([0.0, 1.0]), M.tensor([0.5, 1.0]), right=True)],
                               [A]),
    "stacks": (lambda M, x, y: [M.hstack([x, x]), M.vstack([y, y]), M.dstack([x, x]), M.hstack([y, y])], [A, B]),
    "meshgrid_ij": (lambda M, x, y: M.meshgrid(x, y, indexing="ij"), [A[:, 0], B]),
    "meshgrid_xy": (lambda M, x, y: M.meshgrid(x, y, indexing="xy"), [A[:, 0], B]),
    "broadcast_tensors": (lambda M, x, y: M.broadcast_tensors(x, y[None]), [A, B]),
    "repeat_interleave": (lambda M, x: [M.repeat_interleave(x, 2), x.repeat_interleave(M.tensor([1, 0, 2]), dim=0),
                                        M.repeat_interleave(M.tensor([2, 1]))], [A]),
    "rot90": (lambda M, x: [M.rot90(x), M.rot90(x, 2), M.rot90(x, -1, (1, 0))], [A]),
    "unfold": (lambda M, x: [x.unfold(1, 2, 1), x.unfold(0, 2, 2), x.unfold(1, 3, 2)], [A]),
    "masked_select_take": (lambda M, x: [M.masked_select(x, x > 0), M.take(x, M.tensor([[0, -1], [5, 2]]))], [A]),
    "index_add_fill": (lambda M, x, s: [x.index_add(1, M.tensor([0, 2, 0]), s, alpha=2),
                                        x.index_fill(0, M.tensor([1]), -1.0)], [A, A[:, :3]]),
    "inplace_unary": (lambda M, x: [(x * 1).exp_(), (x * 1).log_(), (x * 1).sqrt_(), (x - 1).abs_(), (x * 1).neg_(),
                                    (x * 1).tanh_(), (x * 1).sigmoid_(), (x - 1).relu_()], [P]),
    "inplace_pow_lerp": (lambda M, x, y: (x * 1).pow_(2).addcmul_(y, y, value=0.5).addcdiv_(x, y).lerp_(y, 0.25), [P, Q]),
    "inplace_index": (lambda M, x, s: (x * 1).masked_fill_(x > 1, 0.0).scatter_(1, M.tensor([[0], [1], [2]]), s[:, :1])
                      .scatter_add_(1, M.tensor([[3], [3], [0]]), s[:, :1]).index_add_(0, M.tensor([2]), s[:1])
                      .index_fill_(1, M.tensor([1]), 2.0), [P, Q]),
    "inplace_shape": (lambda M, x: (x * 1).unsqueeze_(0).squeeze_(0).t_().transpose_(0, 1), [A]),
    "addmm_": (lambda M, c, a, b: (c * 1).addmm_(a, b, beta=2), [A @ C, A, C]),
    "softsign_normalize_cos": (lambda M, x, y: [F(M).softsign(x), F(M).normalize(x, dim=0),
                                                F(M).cosine_similarity(x, y[None])], [A, B]),
    "conv1d": (lambda M, x, w: [F(M).conv1d(x.reshape(1, 3, 4), w.reshape(2, 3, 2), stride=2, padding=1),
                                F(M).conv1d(x.reshape(1, 3, 4), w.reshape(2, 3, 2), padding="same")], [A, A[:, :4].T]),
    "adaptive_max_pool2d": (lambda M, x: F(M).adaptive_max_pool2d(x.reshape(1, 1, 3, 4), (2, 3)), [A]),
    "interpolate_nearest": (lambda M, x: [F(M).interpolate(x.reshape(1, 1, 3, 4), scale_factor=2),
                                          F(M).interpolate(x.reshape(1, 3, 4), size=7)], [A]),
    "interpolate_bilinear": (lambda M, x: [F(M).interpolate(x.reshape(1, 1, 3, 4), size=(5, 3), mode="bilinear"),
                                           F(M).interpolate(x.reshape(1, 1, 3, 4), scale_factor=1.5, mode="bilinear",
                                                            align_corners=True)], [A]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_gradients_match_torch(name):
    fn, arrays = CASES[name]
    check_forward_and_gradients(fn, arrays, grad_rtol=1e-9)


def test_double_backward_matches_torch():
    for name in ("inverse_trig", "hypot_logaddexp", "logit", "det_inverse", "cumprod", "exp2_log2_log10", "erfinv_erfc"):
        fn, arrays = CASES[name]
        check_double_backward(fn, arrays, name, reduce=lambda outs: sum(o.sum() for o in outs))


def test_tensor_helpers_match_torch():
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
        assert M.broadcast_shapes((2, 1), (3,)) == (2, 3)
        assert isinstance(x, M.FloatTensor) and not isinstance(x, M.LongTensor)
        assert isinstance(x.dtype, M.dtype)
        with M.inference_mode():
            assert not M.is_grad_enabled()
        assert np.allclose(_np(M.logspace(0, 2, 3)), [1, 10, 100])


def test_random_fills_are_seeded_and_allowed_on_leaves_under_no_grad():
    w = tg.zeros(1000, requires_grad=True)
    with tg.no_grad():
        tg.manual_seed(0)
        w.uniform_(-2, 3)
        a = w.detach().numpy().copy()
        tg.manual_seed(0)
        w.uniform_(-2, 3)
    assert np.array_equal(a, w.detach().numpy()) and a.min() >= -2 and a.max() < 3 and w._version[0] == 2
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


def test_nn_modules_match_torch():
    x = rng.standard_normal((2, 4, 9))
    tm = torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2).double()
    m = tg.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2)
    assert tuple(m.weight.shape) == tuple(tm.weight.shape)
    with tg.no_grad():
        m.weight.copy_(tg.tensor(tm.weight.detach().numpy()))
        m.bias.copy_(tg.tensor(tm.bias.detach().numpy()))
    np.testing.assert_allclose(m(tg.tensor(x, dtype=tg.float32)).detach().numpy(),
                               tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    img = rng.standard_normal((1, 2, 5, 7))
    a = torch.nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(torch.tensor(img))
    b = tg.nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(tg.tensor(img))
    np.testing.assert_array_equal(b[0].numpy(), a[0].numpy())
    np.testing.assert_array_equal(b[1].numpy(), a[1].numpy())
    for kw in (dict(scale_factor=2), dict(size=(3, 4), mode="bilinear"), dict(scale_factor=0.6, mode="bilinear")):
        np.testing.assert_allclose(tg.nn.Upsample(**kw)(tg.tensor(img)).numpy(),
                                   torch.nn.Upsample(**kw)(torch.tensor(img)).numpy(), atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda M: M.dot(M.zeros(3), M.zeros(4)),
    lambda M: M.dot(M.zeros(2, 3), M.zeros(3)),
    lambda M: M.mv(M.zeros(2, 3), M.zeros(4)),
    lambda M: M.zeros(3).topk(4),
    lambda M: M.zeros(3).sort(dim=1),
    lambda M: M.zeros(3, 3).kthvalue(4),
    lambda M: M.tril(M.zeros(3)),
    lambda M: M.zeros(2, 3).diagonal(0, 1, 1),
    lambda M: M.trace(M.zeros(2, 2, 2)),
    lambda M: M.inverse(M.zeros(2, 3)),
    lambda M: M.einsum("ij,jk", M.zeros(2, 3), M.zeros(4, 5)),
    lambda M: M.zeros(2, 3).unfold(1, 4, 1),
    lambda M: M.rot90(M.zeros(3)),
    lambda M: M.meshgrid(M.zeros(2, 2), M.zeros(2), indexing="ij"),
    lambda M: M.broadcast_shapes((2,), (3,)),
    lambda M: M.zeros(3).masked_select(M.tensor([True, False])),
    lambda M: M.take(M.zeros(3), M.tensor([3])),
    lambda M: M.zeros(3).index_fill(0, M.tensor([5]), 1.0),
    lambda M: M.zeros(3).index_add(0, M.tensor([0]), M.zeros(2)),
    lambda M: M.cross(M.zeros(2, 4), M.zeros(2, 4), dim=1),
    lambda M: M.bucketize(M.zeros(3), M.zeros(2, 2)),
    lambda M: M.ones(3, requires_grad=True).exp_(),
    lambda M: M.ones(2, requires_grad=True).uniform_(),
    lambda M: M.zeros(2, 3).addmm(M.zeros(2, 4), M.zeros(3, 3)),
])
def test_same_exception_type_as_torch(call):
    check_same_exception_type(call)
