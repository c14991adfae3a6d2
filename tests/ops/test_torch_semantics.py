"""Operator semantics checked against PyTorch where they used to differ (issue 11): shifts and the
in-place bitwise ops, ``scatter(reduce=)``, integer pooling, ``view(dtype)``, ``logcumsumexp``,
``interpolate`` on uint8, negative pads, advanced indexing's dimension order, and the
``requires_grad`` of constant-valued results. Each compares with PyTorch when it is installed
and states the expected values otherwise."""
import warnings

import numpy as np
import pytest

import tapegrad as tg


def _torch():
    return pytest.importorskip("torch")


def _same(got, want):
    """A tapegrad tensor equals a PyTorch one: dtype, shape and values (NaN where NaN)."""
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], f"dtype {got.dtype} vs {want.dtype}"
    assert tuple(got.shape) == tuple(want.shape), f"shape {tuple(got.shape)} vs {tuple(want.shape)}"
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())


def _raises_like(call):
    """``call(M)`` raises in both libraries, tapegrad's exception being (a subclass of) PyTorch's type."""
    torch = _torch()
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(type(want.value)):
        call(tg)


# ---------------------------------------------------------------- shifts and bitwise ops
INT_DTYPES = ["uint8", "int8", "int16", "int32", "int64"]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_shifts_match_torch_for_every_count_including_negative_and_too_large(dtype):
    torch = _torch()
    bits = np.dtype(dtype).itemsize * 8
    lo = 0 if dtype == "uint8" else -(2 ** (bits - 1))
    hi = 2 ** (bits - 1) - 1 if dtype != "uint8" else 255
    values = np.array([lo, lo + 1, -3 if lo else 3, -1 if lo else 1, 0, 1, 5, hi], dtype)
    counts = np.array([-2, -1, 0, 1, 3, bits - 1, bits, bits + 1, 100])
    counts = counts[(counts >= lo) & (counts <= hi)].astype(dtype)  # those the dtype can hold
    x, c = np.repeat(values, len(counts)), np.tile(counts, len(values))
    _same(tg.tensor(x) << tg.tensor(c), torch.tensor(x) << torch.tensor(c))
    _same(tg.tensor(x) >> tg.tensor(c), torch.tensor(x) >> torch.tensor(c))
    _same(tg.bitwise_left_shift(tg.tensor(x), 2), torch.bitwise_left_shift(torch.tensor(x), 2))
    _same(tg.tensor(x).bitwise_right_shift(tg.tensor(c)), torch.tensor(x).bitwise_right_shift(torch.tensor(c)))


def test_shift_operator_forms_promotion_and_in_place():
    torch = _torch()
    forms = [lambda M: 3 << M.tensor([1, 2]), lambda M: 64 >> M.tensor([1, 2]),
             lambda M: M.tensor([True, False]) << 1,
             lambda M: M.tensor([2, 3], dtype=M.int32) << M.tensor([1, 2], dtype=M.uint8),
             lambda M: M.tensor([2, 3], dtype=M.uint8) << M.tensor([1, 2], dtype=M.int8),
             lambda M: M.bitwise_right_shift(M.tensor([-7, 9], dtype=M.int16), M.tensor(1, dtype=M.int16))]
    for f in forms:
        _same(f(tg), f(torch))

    def inplace(M):
        a = M.tensor([1, -2, 3], dtype=M.int8)
        alias = a
        a <<= 2
        a >>= M.tensor([1, 0, 9])
        a.bitwise_left_shift_(1)
        a.bitwise_right_shift_(M.tensor([0, 1, 2], dtype=M.int8))
        b = M.tensor([12, 10, 7])
        b &= 6
        b |= M.tensor([1, 0, 0])
        b ^= 3
        b.bitwise_and_(M.tensor([7, 7, 1]))
        return alias, b
    for got, want in zip(inplace(tg), inplace(torch)):
        _same(got, want)
    x = tg.tensor([1, 2], dtype=tg.int16)
    v = x._version
    x <<= 1
    assert x._version == v + 1 and x.tolist() == [2, 4]


def test_shifts_and_bitwise_ops_refuse_floats_and_shifts_refuse_bools():
    for call in (lambda M: M.tensor([1.0]) << 1, lambda M: M.tensor([1, 2]) >> M.tensor([1.5]),
                 lambda M: M.tensor([True]) << M.tensor([True]), lambda M: M.bitwise_left_shift(M.tensor([1.0]), 1),
                 lambda M: M.tensor([1.0]) & 1, lambda M: M.bitwise_xor(M.tensor([1.0]), M.tensor([2.0])),
                 lambda M: M.tensor([1, 2]).bitwise_or_(M.tensor([1.5]))):
        _raises_like(call)
    with pytest.raises(NotImplementedError, match="bitwise_left_shift"):
        tg.tensor([1.5]) << 1


# ---------------------------------------------------------------- gradients of constant-valued results
def test_copysign_gives_the_sign_input_a_zero_gradient():
    x, y = tg.tensor([1.0, 0.0, -3.0], requires_grad=True), tg.tensor([-1.0, 2.0, 0.0], requires_grad=True)
    tg.copysign(x, y).sum().backward()
    assert y.grad is not None and y.grad.tolist() == [0.0, 0.0, 0.0]
    assert x.grad.tolist() == [-1.0, 0.0, -1.0]


def test_constant_valued_results_require_grad_as_in_torch():
    a = tg.tensor([[2.0, 1.0], [0.5, 3.0]], requires_grad=True)
    v = tg.tensor([0.0, float("nan"), 2.0], requires_grad=True)
    outs = [tg.linalg.matrix_power(a, 0), tg.linalg.vector_norm(v, 0), tg.linalg.slogdet(a).sign]
    assert all(o.requires_grad for o in outs)
    assert outs[0].tolist() == [[1.0, 0.0], [0.0, 1.0]] and outs[1].item() == 2.0
    sum(o.sum() for o in outs).backward()
    assert not a.grad.numpy().any() and not v.grad.numpy().any()


def test_heaviside_refuses_mixed_dtypes_and_scalar_values():
    for call in (lambda M: M.heaviside(M.tensor([True, False]), M.tensor([1])),
                 lambda M: M.heaviside(M.tensor([1.0]), M.tensor([1.0], dtype=M.float64)),
                 lambda M: M.heaviside(M.tensor([1.0]), 0.5)):
        _raises_like(call)
    torch = _torch()
    f = lambda M: M.heaviside(M.tensor([-1, 0, 2, 0]), M.tensor([7, 7, 7, 9]))  # noqa: E731
    _same(f(tg), f(torch))


# ---------------------------------------------------------------- scatter(reduce=)
def _scatter_calls():
    index = [[0, 0, 1], [2, 3, 3]]
    src = np.arange(1.0, 7.0, dtype=np.float32).reshape(2, 3)
    return [lambda M: M.full((2, 4), 2.0).scatter(1, M.tensor(index), M.tensor(src), reduce="multiply"),
            lambda M: M.full((2, 4), 2.0).scatter(1, M.tensor(index), M.tensor(src), reduce="add"),
            lambda M: M.full((2, 4), 2.0).scatter(1, M.tensor(index), 3.0, reduce="multiply"),
            lambda M: M.scatter(M.full((2, 4), 2.0), 1, M.tensor(index), value=-1.5, reduce="add"),
            lambda M: M.full((3, 2), 2, dtype=M.int64).scatter_(0, M.tensor([[0, 2], [0, 0]]), 3, reduce="multiply"),
            lambda M: M.full((3, 2), 2, dtype=M.int32).scatter_(
                0, M.tensor([[0, 2], [0, 0]]), M.tensor([[5, 6], [7, 8]], dtype=M.int32), reduce="add")]


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
@pytest.mark.parametrize("i", range(6))
def test_scatter_reduce_add_and_multiply_accumulate_repeats_as_torch(i):
    torch = _torch()
    call = _scatter_calls()[i]
    _same(call(tg), call(torch))


def test_scatter_reduce_gradients_and_bad_reduce():
    index = tg.tensor([[0, 0, 1], [2, 3, 3]])
    x = tg.tensor(np.random.default_rng(0).uniform(0.5, 2, (2, 4)), requires_grad=True)
    s = tg.tensor(np.random.default_rng(1).uniform(0.5, 2, (2, 3)), requires_grad=True)
    for reduce in ("add", "multiply"):
        assert tg.autograd.gradcheck(lambda a, b: a.scatter(1, index, b, reduce=reduce), [x, s])
        assert tg.autograd.gradgradcheck(lambda a, b: a.scatter(1, index, b, reduce=reduce), [x, s])
    _raises_like(lambda M: M.zeros(2, 4).scatter(1, M.tensor([[0]]), 1.0, reduce="sum"))


# ---------------------------------------------------------------- view(dtype)
def _views():
    return [lambda M: M.arange(6.0).view(M.int32), lambda M: M.arange(6.0).view(M.int16),
            lambda M: M.arange(6.0).view(M.uint8), lambda M: M.arange(8, dtype=M.int16).reshape(2, 4).view(M.int32),
            lambda M: M.arange(8, dtype=M.int16).reshape(2, 4).view(M.int64),
            lambda M: M.arange(8, dtype=M.int16).reshape(2, 4).view(M.float64),
            lambda M: M.arange(12, dtype=M.int16).reshape(3, 4)[:, :2].view(M.int32),
            lambda M: M.arange(12, dtype=M.int16).reshape(3, 4)[:, :2].view(M.int8),
            lambda M: M.tensor([True, False]).view(M.uint8), lambda M: M.tensor(3, dtype=M.int16).view(M.int16),
            lambda M: M.tensor([1.5, -2.0], dtype=M.float64).view(M.int64),
            lambda M: M.zeros(2, 0).view(M.int32), lambda M: M.tensor([1.0, 2.0], requires_grad=True).view(M.int32),
            lambda M: M.tensor([1.0, 2.0], requires_grad=True).view(M.float32)]


@pytest.mark.parametrize("i", range(14))
def test_view_dtype_reinterprets_the_bits_as_torch(i):
    torch = _torch()
    call = _views()[i]
    got, want = call(tg), call(torch)
    _same(got, want)
    assert got.requires_grad == want.requires_grad


@pytest.mark.parametrize("call", [
    lambda M: M.arange(6, dtype=M.int16).reshape(2, 3).view(M.int32),             # size(-1) not divisible
    lambda M: M.arange(8, dtype=M.int16).reshape(2, 4).t().view(M.int32),          # stride(-1) != 1
    lambda M: M.arange(8, dtype=M.int16).reshape(2, 4).t().view(M.int8),
    lambda M: M.arange(12, dtype=M.int16)[1:9].reshape(2, 4).view(M.int32),        # storage offset
    lambda M: M.arange(12, dtype=M.int16).reshape(2, 6)[:, :4].view(M.int64),      # stride(0) not divisible
    lambda M: M.tensor(3, dtype=M.int16).view(M.int8),                              # 0-d
    lambda M: M.arange(6, dtype=M.int16).reshape(2, 3).t()[:, :1].view(M.int8)])
def test_view_dtype_refuses_what_torch_refuses(call):
    _raises_like(call)


def test_view_dtype_shares_memory_and_the_version_counter():
    w = tg.zeros(4, dtype=tg.int16)
    v = w.view(tg.int8)
    v[0] = 1
    assert w.tolist() == [1, 0, 0, 0] and w._version == 1


# ---------------------------------------------------------------- max pooling of integer tensors
def test_integer_max_pool2d_values_and_indices_match_torch():
    """Drawn shapes, kernels, strides, paddings, dilations and ceil_mode; values near each dtype's
    minimum too (padding must never win a tie), and windows that dilation carries past the input."""
    torch = _torch()
    rng = np.random.default_rng(0)
    F = torch.nn.functional
    for _ in range(120):
        dt = str(rng.choice(["int64", "uint8", "int8", "int16", "int32"]))
        H, W = rng.integers(1, 7, 2)
        k, s, d = (tuple(int(v) for v in rng.integers(1, 4, 2)) for _ in range(3))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        ceil = bool(rng.integers(2))
        lo = np.iinfo(dt).min
        a = rng.integers(lo, lo + 3 if rng.integers(2) else np.iinfo(dt).max, (2, 2, H, W), endpoint=True).astype(dt)
        args = (k, s, p, d, ceil)
        try:
            want = F.max_pool2d(torch.tensor(a), *args, return_indices=True)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                tg.nn.functional.max_pool2d(tg.tensor(a), *args, return_indices=True)
            continue
        got = tg.nn.functional.max_pool2d(tg.tensor(a), *args, return_indices=True)
        _same(got[0], want[0])
        _same(got[1], want[1])
        _same(tg.nn.functional.max_pool2d(tg.tensor(a[0]), *args), F.max_pool2d(torch.tensor(a[0]), *args))


def test_integer_max_pool1d_matches_torch():
    torch = _torch()
    a = np.random.default_rng(1).integers(-9, 9, (2, 3, 7))
    for kw in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1}, {"kernel_size": 2, "dilation": 2,
                                                                                   "ceil_mode": True}):
        got = tg.nn.functional.max_pool1d(tg.tensor(a), return_indices=True, **kw)
        want = torch.nn.functional.max_pool1d(torch.tensor(a), return_indices=True, **kw)
        _same(got[0], want[0])
        _same(got[1], want[1])


# ---------------------------------------------------------------- interpolate on uint8
def test_uint8_bilinear_matches_torch_bit_for_bit():
    """PyTorch's uint8 kernel (up to 4 channels on CPU) uses int16 fixed-point weights, the width pass
    first, each rounded back to uint8: reproduced exactly, for drawn sizes, scales and align_corners."""
    torch = _torch()
    rng = np.random.default_rng(0)
    for _ in range(80):
        C, H, W = int(rng.integers(1, 5)), *(int(v) for v in rng.integers(1, 9, 2))
        a = rng.integers(0, 256, (2, C, H, W)).astype(np.uint8)
        kw = {"align_corners": bool(rng.integers(2))}
        if rng.integers(2):
            kw["size"] = tuple(int(v) for v in rng.integers(1, 13, 2))
        else:
            kw["scale_factor"] = tuple(float(v) for v in rng.choice([0.5, 0.7, 1.3, 2.0, 2.5], 2))
            if min(int(n * s) for n, s in zip((H, W), kw["scale_factor"])) < 1:
                continue
        for mode in ("bilinear", "nearest", "nearest-exact"):
            if mode != "bilinear":
                kw.pop("align_corners", None)
            _same(tg.nn.functional.interpolate(tg.tensor(a), mode=mode, **kw),
                  torch.nn.functional.interpolate(torch.tensor(a), mode=mode, **kw))


def test_uint8_bilinear_stays_within_one_of_the_exact_value():
    """With more than 4 channels PyTorch takes another kernel, which gets some shrinking widths
    wrong (2x2 -> 3x1 gives [105, 105, 105] for [[10, 200], [50, 60]]; the exact answer is
    [105, 80, 55]): tapegrad's result does not depend on the channel count."""
    a = np.broadcast_to(np.array([[10, 200], [50, 60]], np.uint8), (1, 5, 2, 2))
    got = tg.nn.functional.interpolate(tg.tensor(a), size=(3, 1), mode="bilinear")
    assert got.dtype == tg.uint8 and got[0, :, :, 0].tolist() == [[105, 80, 55]] * 5
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (1, 6, 5, 7)).astype(np.uint8)
    for size in ((9, 3), (2, 12), (5, 7)):
        exact = tg.nn.functional.interpolate(tg.tensor(a.astype(np.float64)), size=size, mode="bilinear").numpy()
        got = tg.nn.functional.interpolate(tg.tensor(a), size=size, mode="bilinear").numpy()
        assert np.abs(got - exact).max() <= 1


def test_interpolate_refuses_the_integer_modes_torch_refuses():
    for call in (lambda M: M.nn.functional.interpolate(M.zeros(1, 2, 4, dtype=M.uint8), size=6, mode="linear"),
                 lambda M: M.nn.functional.interpolate(M.zeros(1, 1, 2, 3, 4, dtype=M.uint8), size=5, mode="trilinear"),
                 lambda M: M.nn.functional.interpolate(M.zeros(1, 1, 3, 4, dtype=M.int64), size=5, mode="bilinear")):
        _raises_like(call)


def test_interpolate_leaves_a_dim_of_unchanged_size_alone_whatever_the_scale():
    torch = _torch()
    a = np.arange(12.0).reshape(1, 1, 6, 2)
    for mode in ("nearest", "nearest-exact", "bilinear"):
        for scale in ((0.7, 1.3), (1.0, 1.3), (1.2, 1.0)):
            f = lambda M: M.nn.functional.interpolate(M.tensor(a), scale_factor=scale, mode=mode)  # noqa: E731
            np.testing.assert_allclose(f(tg).numpy(), f(torch).numpy(), rtol=1e-12, err_msg=f"{mode} {scale}")


# ---------------------------------------------------------------- pad with negative widths
def test_circular_pad_refuses_to_wrap_an_empty_or_too_small_core():
    """PyTorch returns uninitialized memory here (it copies the padding from a cropped core that is
    empty, or smaller than the padding): tapegrad raises instead."""
    x = tg.arange(1.0, 6.0).reshape(1, 1, 5)
    for p in ((-5, 1), (-3, 3), (2, -4)):
        with pytest.raises(RuntimeError, match="pad"):
            tg.nn.functional.pad(x, p, mode="circular")
    assert tg.nn.functional.pad(x, (-1, 2), mode="circular").tolist() == [[[2.0, 3.0, 4.0, 5.0, 2.0, 3.0]]]
    assert tg.nn.functional.pad(x, (0, -5), mode="circular").shape == (1, 1, 0)


# ---------------------------------------------------------------- where advanced-index dims go
def test_an_int_is_a_basic_index_as_in_torch():
    z = tg.zeros(2, 3, 4)
    assert z[1, :, tg.tensor([0, 2])].shape == (3, 2)  # numpy's rule gives (2, 3)
    assert z[tg.tensor(1), :, [0, 2]].shape == (3, 2) and z[[1, 0], :, 1].shape == (2, 3)
    assert z[True, :, tg.tensor([0, 2])].shape == (2, 2, 4) and z[:, True, [0, 2]].shape == (2, 2, 4)
    # an Ellipsis spans the dims the other indices leave: one per index tensor, k per k-dim mask
    assert z[..., tg.tensor([[0, 1], [2, 3]])].shape == (2, 3, 2, 2) and z[1, ..., [[0], [2]]].shape == (3, 2, 1)
    assert z[..., tg.ones(3, 4, dtype=tg.bool)].shape == (2, 12) and z[tg.tensor([True, False]), ..., 0].shape == (1, 3)
    z[1, :, tg.tensor([0, 2])] = tg.arange(6.0).reshape(3, 2)
    assert z[1].tolist() == [[0, 0, 1, 0], [2, 0, 3, 0], [4, 0, 5, 0]]



def test_a_range_indexes_as_the_list_of_its_ints():
    # mnist_forward_forward's ``x_[range(x.shape[0]), y] = x.max()``: numpy reads a range beside
    # an array differently, and the assignment used to write nothing
    z = tg.zeros(3, 4)
    y = tg.tensor([1, 2, 0])
    z[range(3), y] = tg.tensor(5.0)
    assert z.tolist() == [[0, 5, 0, 0], [0, 0, 5, 0], [5, 0, 0, 0]]
    assert z[range(3), y].tolist() == [5, 5, 5] and z[range(3), 1].shape == (3,)
    assert z[range(2)].shape == (2, 4) and z[range(0)].shape == (0, 4) and z[:, range(1, 3)].shape == (3, 2)
    x = tg.ones(3, 4, requires_grad=True)
    x[range(1, 3), range(2)].sum().backward()
    assert x.grad.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]]

def _draw_index(draw, shape):
    """A PyTorch index for ``shape``: a mix of ints, slices, None, one Ellipsis, bool scalars, a
    bool mask or int index tensors (lists or tensors, with negative entries), as numpy arrays and
    their kinds, to be built in either library."""
    from hypothesis import strategies as st
    items, dim, ellipsis = [], 0, False
    adv_shape = draw(st.sampled_from([(2,), (1,), (2, 2), (3,)]))
    for _ in range(draw(st.integers(1, len(shape) + 2))):
        left = len(shape) - dim
        kind = draw(st.sampled_from(["int", "slice", "none", "ellipsis", "bool", "mask", "tensor", "list", "int0d"]))
        if kind in ("int", "int0d", "tensor", "list", "slice", "mask") and left == 0:
            kind = "none"
        if kind == "ellipsis" and ellipsis:
            kind = "slice" if left else "none"
        n = shape[dim] if dim < len(shape) else 1
        if kind in ("int", "int0d"):
            items.append((kind, draw(st.integers(-n, n - 1))))
            dim += 1
        elif kind == "slice":
            items.append((kind, slice(draw(st.sampled_from([None, 0, 1, -1])), draw(st.sampled_from([None, 2, -1])),
                                      draw(st.sampled_from([None, 1, 2])))))
            dim += 1
        elif kind == "none":
            items.append((kind, None))
        elif kind == "ellipsis":
            items.append((kind, Ellipsis))
            ellipsis = True
            dim = len(shape) - min(left, draw(st.integers(0, left)))
        elif kind == "bool":
            items.append((kind, True))
        elif kind == "mask":
            k = min(left, draw(st.integers(1, 2)))
            rng = np.random.default_rng(draw(st.integers(0, 99)))
            items.append((kind, rng.random(shape[dim:dim + k]) > 0.4))
            dim += k
        else:
            rng = np.random.default_rng(draw(st.integers(0, 99)))
            items.append((kind, rng.integers(-n, n, adv_shape)))
            dim += 1
    return items


def _build(M, items):
    out = []
    for kind, v in items:
        if kind in ("mask", "tensor"):
            out.append(M.tensor(v))
        elif kind == "list":
            out.append(v.tolist())
        elif kind == "int0d":
            out.append(M.tensor(v))
        else:
            out.append(v)
    return tuple(out)


def test_getitem_and_setitem_place_advanced_dims_as_torch():
    """Values, shapes and gradients of ``x[index]``, and ``x[index] = v`` (values and gradients,
    when no position is written twice), against PyTorch over drawn indices."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
    torch = _torch()

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
        items = _draw_index(data.draw, shape)
        a = np.arange(float(np.prod(shape))).reshape(shape)
        xt = torch.tensor(a, requires_grad=True)
        try:
            yt = xt[_build(torch, items)]
        except (IndexError, RuntimeError):
            with pytest.raises((IndexError, RuntimeError)):
                tg.tensor(a)[_build(tg, items)]
            return
        xg = tg.tensor(a, requires_grad=True)
        try:
            yg = xg[_build(tg, items)]
        except IndexError as e:
            # an index out of range where the result is empty: PyTorch's kernel never looks at the
            # indices then and returns the empty result; tapegrad checks them (README: "does better")
            assert yt.numel() == 0 and "out of bounds" in str(e), e
            return
        _same(yg, yt)
        c = np.random.default_rng(0).standard_normal(tuple(yt.shape))
        (yt * torch.tensor(c)).sum().backward()
        (yg * tg.tensor(c)).sum().backward()
        np.testing.assert_array_equal(xg.grad.numpy(), xt.grad.numpy())
        hits = torch.zeros(shape)
        hits[_build(torch, items)] = 1.0
        if hits.sum().item() != yt.numel():  # a position written twice: which write wins is unspecified
            return
        vt, vg = torch.tensor(-c, requires_grad=True), tg.tensor(-c, requires_grad=True)
        xt2, xg2 = torch.tensor(a, requires_grad=True), tg.tensor(a, requires_grad=True)
        st_, sg = xt2 * 2, xg2 * 2
        st_[_build(torch, items)] = vt
        sg[_build(tg, items)] = vg
        _same(sg, st_)
        (st_ * st_).sum().backward()
        (sg * sg).sum().backward()
        np.testing.assert_allclose(xg2.grad.numpy(), xt2.grad.numpy())
        np.testing.assert_allclose(vg.grad.numpy(), vt.grad.numpy())
    check()


# ---------------------------------------------------------------- differences found by differential fuzzing
def test_augmented_floordiv_mod_pow_write_in_place():
    # without __ifloordiv__/__imod__/__ipow__ Python rebound x to a new tensor: views went stale, and
    # an integer tensor **= 0.5 silently became float where PyTorch refuses
    x = tg.tensor([[5, 7], [-8, 9]])
    row, before = x[1], x
    x //= 2
    assert x is before and row.tolist() == [-4, 4]
    y = tg.tensor([-3.5, 2.5])
    view = y[:]
    y %= 2
    assert view.tolist() == [0.5, 0.5]
    z = tg.tensor([2.0, 3.0])
    z **= 2
    assert z.tolist() == [4.0, 9.0]
    _raises_like(lambda M: M.tensor([2, 3]).__ipow__(0.5))
    _raises_like(lambda M: M.ones(2) @ 2)
    _raises_like(lambda M: 2.0 @ M.ones(2))


def test_setitem_drops_the_values_leading_size_one_dims():
    torch = _torch()
    for M in (torch, tg):
        v = M.tensor([[[1.0, 2.0, 3.0]]], dtype=M.float64, requires_grad=True)
        y = M.zeros(2, 3, dtype=M.float64)
        y[0] = v
        z = M.zeros(3)
        z[1] = M.tensor([[5.0]])
        g, = M.autograd.grad((y * M.arange(6.0, dtype=M.float64).reshape(2, 3)).sum(), v)
        if M is torch:
            want = (y, z, g)
    _same(y.detach(), want[0].detach())
    _same(z, want[1])
    _same(g, want[2])
    _raises_like(lambda M: M.zeros(3).__setitem__(1, M.tensor([2.0, 5.0])))


@pytest.mark.parametrize("eq, shapes", [("ii", [(3, 3)]), ("iij", [(3, 3, 2)]), ("ij,jj", [(3, 3), (3, 3)]),
                                        ("...ii", [(2, 3, 3)]), ("i,i", [(3,), (3,)])])
def test_einsum_implicit_output_counts_repeats_within_an_operand(eq, shapes):
    # 'ii' alone is the trace (i appears twice), not the diagonal
    torch = _torch()
    arrays = [np.arange(np.prod(s), dtype=np.float64).reshape(s) for s in shapes]
    _same(tg.einsum(eq, *map(tg.tensor, arrays)), torch.einsum(eq, *map(torch.tensor, arrays)))


def test_casts_to_integer_or_bool_dtypes_leave_the_graph():
    x = tg.tensor([1.5, 2.0], dtype=tg.float64, requires_grad=True)
    for r in (x.long(), x.int(), x.bool(), x.to(tg.int32), x.type(tg.int64), x.type_as(tg.tensor([1])),
              tg.zeros(2, dtype=tg.int64).copy_(x)):
        assert not r.requires_grad and r.grad_fn is None, r.dtype
    assert x.to(tg.float32).requires_grad and x.half().requires_grad


def test_unbind_of_an_empty_dim_is_an_empty_tuple():
    torch = _torch()
    assert tg.unbind(tg.zeros(2, 0), 1) == torch.unbind(torch.zeros(2, 0), 1) == ()
    assert len(tg.zeros(0, 3).unbind(1)) == 3
    _raises_like(lambda M: M.unbind(M.tensor(1.0)))


def test_reductions_return_the_integer_dtype_asked_for():
    torch = _torch()
    a = np.array([[1.5, 2.0], [3.0, 4.0]], dtype=np.float32)
    for M in (torch, tg):
        x = M.tensor(a)
        got = [M.sum(x, dtype=M.int32), M.sum(x, 0, dtype=M.int32), M.prod(x, dtype=M.int32), M.prod(x, 0, dtype=M.bool),
               M.sum(x.int(), dtype=M.int16), M.cumsum(x, 0, dtype=M.int32), M.cumprod(x, 0, dtype=M.int16),
               M.nansum(x, dtype=M.int32), M.sum(M.tensor([100, 100], dtype=M.int8), dtype=M.int8)]
        if M is torch:
            want = got
    for g, w in zip(got, want):
        _same(g, w)


def test_cov_and_corrcoef_of_one_variable_are_0d():
    torch = _torch()
    for shape in [(1, 3), (3,), (2, 3)]:
        a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) ** 2
        _same(tg.cov(tg.tensor(a)), torch.cov(torch.tensor(a)))
        _same(tg.corrcoef(tg.tensor(a)), torch.corrcoef(torch.tensor(a)))


def test_clamp_of_a_bool_tensor_promotes_as_pytorch():
    torch = _torch()
    b = np.array([True, False])
    calls = [lambda M, x: M.clamp(x, 0, 1), lambda M, x: M.clamp(x, 0.5), lambda M, x: M.clamp_max(x, 1),
             lambda M, x: M.clip(x, -1, 1), lambda M, x: M.clamp(x, min=M.tensor(1.0)),
             lambda M, x: M.clamp(x, M.tensor([False, True]))]
    for call in calls:
        _same(call(tg, tg.tensor(b)), call(torch, torch.tensor(b)))
    _raises_like(lambda M: M.clamp(M.tensor(b), True, True))  # PyTorch has no bool kernel for scalar bounds


def test_xlog1py_takes_numbers_and_keeps_nan():
    torch = _torch()
    x = np.array([0.0, 0.0, 2.0, -1.0, 3.0, 0.0, 0.0])
    y = np.array([-1.0, np.nan, 0.5, -2.0, 1.0, 0.5, -3.0])
    res = {}
    for M in (torch, tg):
        xs, ys = M.tensor(x, requires_grad=True), M.tensor(y, requires_grad=True)
        out = M.special.xlog1py(xs, ys)
        gx, = M.autograd.grad(out.sum(), xs)
        res[M] = [out, gx, M.special.xlog1py(M.tensor([0, 1, 2]), 2), M.special.xlog1py(2.0, M.tensor([0, 1, 2]))]
    for g, w in zip(res[tg], res[torch]):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-12)
        assert str(g.dtype).split(".")[-1] == str(w.dtype).split(".")[-1]


def test_isclose_wants_two_tensors_of_one_dtype():
    a = tg.tensor([1.0, 2.0])
    _raises_like(lambda M: M.isclose(M.tensor([1.0, 2.0]), 1.0))
    _raises_like(lambda M: M.isclose(M.tensor([1.0, 2.0]), M.tensor([1.0, 2.0], dtype=M.float64)))
    _raises_like(lambda M: M.allclose(M.tensor([1, 2]), M.tensor([1.0, 2.0])))
    _raises_like(lambda M: M.isclose(M.ones(2), M.ones(3)))
    assert tg.isclose(a, tg.tensor(1.0)).tolist() == [True, False] and a.allclose(a + 1e-9)


def test_nan_to_num_nan_none_means_zero():
    x = tg.tensor([float("nan"), 1.0])
    assert tg.nan_to_num(x, nan=None).tolist() == [0.0, 1.0]


def test_any_all_over_no_dims_reduce_nothing():
    torch = _torch()
    a = np.array([[1, 0, 2], [0, 0, 3]], dtype=np.uint8)
    for call in [lambda M, x: M.any(x, dim=()), lambda M, x: M.all(x.float(), (), keepdim=True),
                 lambda M, x: M.any(x), lambda M, x: M.all(x, 1), lambda M, x: M.all(x.bool(), 1)]:
        _same(call(tg, tg.tensor(a)), call(torch, torch.tensor(a)))


@pytest.mark.parametrize("op", ["eq_", "ne_", "lt_", "le_", "gt_", "ge_", "logical_and_", "logical_xor_"])
def test_in_place_comparison_gradients_match_torch(op):
    # a comparison overwrites its tensor with 0/1, a constant: zero gradient through it (the
    # gradient used to pass through as if the tensor were unchanged); PyTorch's logical_*_ do pass it
    torch = _torch()
    grads = {}
    for M in (torch, tg):
        x = M.tensor([1.0, 2.0, -1.0], dtype=M.float64, requires_grad=True)
        y = x * 1
        getattr(y, op)(M.tensor([1.0, 0.0, 3.0], dtype=M.float64))
        grads[M] = (y, M.autograd.grad((y * x).sum(), x)[0])
    _same(grads[tg][0].detach(), grads[torch][0].detach())
    _same(grads[tg][1], grads[torch][1])


def test_kthvalue_ranks_nan_last_and_median_propagates_it():
    torch = _torch()
    a = np.array([[1.0, np.nan, 3.0, 0.0, np.nan, 2.0], [1, 2, 3, 4, 5, 6]])
    for k in range(1, 7):
        _same(tg.kthvalue(tg.tensor(a), k).values, torch.kthvalue(torch.tensor(a), k).values)
    _same(tg.median(tg.tensor(a), 1).values, torch.median(torch.tensor(a), 1).values)
    _raises_like(lambda M: M.kthvalue(M.tensor(1.0), 2))


def test_cummax_cummin_propagate_nan_with_its_latest_index():
    torch = _torch()
    a = np.array([[1.0, np.nan, 3.0, 0.0, np.nan, 2.0], [1, 2, 2, 0, 5, 5]])
    res = {}
    for M in (torch, tg):
        x = M.tensor(a, requires_grad=True)
        r, q = M.cummax(x, 1), M.cummin(x, 1)
        res[M] = [r.values, r.indices, q.values, q.indices, M.autograd.grad(r.values.sum() + q.values.sum(), x)[0]]
    for g, w in zip(res[tg], res[torch]):
        _same(g.detach(), w.detach())


def test_acosh_and_logit_gradients_outside_the_domain_match_torch():
    # acosh: 1/sqrt(x^2 - 1), finite below -1; logit: NaN outside [0, 1] (0 with eps, the clamp's)
    torch = _torch()
    a = np.array([-2.5, -1.0, 0.5, 1.0, 2.0, 0.0, 1.5, -0.5])
    res = {}
    for M in (torch, tg):
        x = M.tensor(a, requires_grad=True)
        res[M] = [M.autograd.grad(f(x).sum(), x)[0] for f in (M.acosh, M.logit, lambda t: M.logit(t, eps=0.1))]
    for g, w in zip(res[tg], res[torch]):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shapes", [((), (), ()), ((2,), (2,), ()), ((2,), (), ()), ((), (), (2,)), ((2,), (2,), (2,))])
def test_lerp_promotes_a_0d_weight_and_checks_a_dimensioned_one(shapes):
    torch = _torch()
    for dts in [("float32", "float32", "float64"), ("int64", "int64", "float32"), ("float32", "float32", "float32"),
                ("bfloat16", "bfloat16", "float32"), ("float32", "float64", "float32")]:
        def call(M):
            return M.lerp(*[M.full(s, 2.0 + i, dtype=getattr(M, d)) for i, (s, d) in enumerate(zip(shapes, dts))])
        try:
            want = call(torch)
        except RuntimeError:
            _raises_like(call)
            continue
        got = call(tg)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], dts
        np.testing.assert_allclose(got.float().numpy(), want.float().numpy())


def test_addcdiv_promotes_its_three_tensors_at_once():
    torch = _torch()
    for shapes in [((3,), (), (1,)), ((3,), (3,), ()), ((), (), ())]:
        for dts in [("float32", "float64", "int64"), ("float32", "int64", "float64"), ("bfloat16", "float32", "float32"),
                    ("bfloat16", "bfloat16", "bfloat16")]:
            got, want = ([M.addcdiv(*[M.full(s, 3.0 - i, dtype=getattr(M, d)) for i, (s, d) in enumerate(zip(shapes, dts))],
                                    value=2) for M in (tg, torch)])
            assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], (shapes, dts)
            np.testing.assert_allclose(got.float().numpy(), want.float().numpy())


def test_movedim_of_a_0d_tensor():
    for args in [(0, 0), (-1, -1), ((), ()), ([0], [-1])]:
        assert tg.movedim(tg.tensor(2.0), *args).item() == 2.0
    _raises_like(lambda M: M.movedim(M.tensor(2.0), 1, 0))


def test_quantile_checks_its_input_as_pytorch():
    torch = _torch()
    for call in [lambda M: M.quantile(M.tensor([1, 2]), 0.5), lambda M: M.quantile(M.ones(0), 0.5),
                 lambda M: M.quantile(M.ones(3, dtype=M.float16), 0.5),
                 lambda M: M.nanquantile(M.ones(3), M.tensor([0.5], dtype=M.float64)),
                 lambda M: M.quantile(M.tensor(2.0), 0.5, dim=1)]:
        _raises_like(call)
    for call in [lambda M: M.quantile(M.tensor(2.0), 0.5, dim=0),
                 lambda M: M.nanquantile(M.tensor(2.0), M.tensor([0.5, 0.2]), dim=-1, keepdim=True)]:
        _same(call(tg), call(torch))


@pytest.mark.parametrize("call", [
    lambda M: +M.tensor([True]), lambda M: M.positive(M.tensor([True])),
    lambda M: M.zeros(3, 1).masked_fill_(M.zeros(2, 1, dtype=M.bool), 1.0), lambda M: M.mode(M.zeros(2, 0), 1),
    lambda M: M.fliplr(M.ones(2)), lambda M: M.flipud(M.tensor(1.0)), lambda M: M.dsplit(M.ones(2, 4), 2),
    lambda M: M.vsplit(M.ones(4), 2), lambda M: M.hsplit(M.tensor(1.0), 1), lambda M: M.vander(M.ones(2, 2)),
    lambda M: M.tensordot(M.ones(2, 3), M.ones(3), 2), lambda M: M.tensordot(M.ones(2, 3), M.ones(3), -1),
    lambda M: M.arange(0, -3), lambda M: M.arange(5, 0, 1), lambda M: M.arange(3, dtype=M.bool),
    lambda M: M.linalg.cross(M.ones(3), M.ones(1)), lambda M: M.linalg.cross(M.ones(1, 3), M.ones(1, 1, 3)),
    lambda M: M.cross(M.ones(3), M.ones(1, 3), dim=-1)], ids=lambda c: "")
def test_errors_pytorch_raises(call):
    _raises_like(call)


def test_sign_of_nan_is_zero():
    torch = _torch()
    a = np.array([np.nan, -0.0, np.inf, -2.0])
    _same(tg.sign(tg.tensor(a)), torch.sign(torch.tensor(a)))
    _same(tg.sgn(tg.tensor(a)), torch.sgn(torch.tensor(a)))


@pytest.mark.parametrize("call", [
    lambda M: M.median(M.tensor([True, False])), lambda M: M.median(M.tensor([True, False]), 0),
    lambda M: M.nanmedian(M.tensor([True, False])), lambda M: M.kthvalue(M.tensor([True, False]), 1),
    lambda M: M.topk(M.tensor([True, False]), 1), lambda M: M.kthvalue(M.ones(3, 0), 1),
    lambda M: M.median(M.ones(0, 3, dtype=M.bool), 0), lambda M: M.full((2,), 300, dtype=M.uint8),
    lambda M: M.full((2,), -256, dtype=M.uint8)], ids=lambda c: "")
def test_sorting_and_filling_errors_pytorch_raises(call):
    _raises_like(call)


def test_full_wraps_small_negatives_into_unsigned_and_median_of_nothing():
    torch = _torch()
    for call in [lambda M: M.full((2,), -1, dtype=M.uint8), lambda M: M.full_like(M.ones(2), -255, dtype=M.uint8),
                 lambda M: M.median(M.ones(0, dtype=M.int32)), lambda M: M.nanmedian(M.ones(0, 2, dtype=M.int64)),
                 lambda M: M.median(M.ones(0, dtype=M.bool))]:
        _same(call(tg), call(torch))


def test_tensor_split_indices_slice_as_python_does():
    # each piece is x[i_k:i_k+1] with Python's slicing: negative indices count from the end
    torch = _torch()
    for idx in ([-1, 0], [-2, 4], [1, -1], [7, -9], [3, 1], []):
        got, want = tg.tensor_split(tg.arange(5), idx), torch.tensor_split(torch.arange(5), idx)
        assert [p.tolist() for p in got] == [p.tolist() for p in want], idx


def test_fill_diagonal_and_fill_with_a_tensor_gradients_match_torch():
    torch = _torch()
    res = {}
    for M in (torch, tg):
        x = M.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=M.float64, requires_grad=True)
        v = M.tensor(2.5, dtype=M.float64, requires_grad=True)
        w = M.arange(4.0, dtype=M.float64).reshape(2, 2)
        y = x * 1
        y.fill_diagonal_(-0.5)  # the diagonal's gradient is zero
        z = x * 1
        z.fill_(v)  # the value's gradient is the sum
        res[M] = [y.detach(), M.autograd.grad((y * w).sum(), x)[0], *M.autograd.grad((z * w).sum(), [x, v])]
    for g, w in zip(res[tg], res[torch]):
        _same(g, w)
    _raises_like(lambda M: M.zeros(2).fill_(M.ones(1)))


def test_addcmul_promotes_its_three_tensors_at_once():
    torch = _torch()
    for shapes in [((3,), (), (1,)), ((), (), ()), ((), (), (2,))]:
        for dts in [("float32", "float64", "int64"), ("int64", "int32", "bool"), ("int32", "int64", "int64")]:
            got, want = (M.addcmul(*[M.full(s, 3 - i, dtype=getattr(M, d)) for i, (s, d) in enumerate(zip(shapes, dts))],
                                   value=-3) for M in (tg, torch))
            _same(got, want)


def test_bool_tensor_to_a_bool_power_stays_bool():
    torch = _torch()
    for call in [lambda M, b: b ** True, lambda M, b: b ** False, lambda M, b: b ** 2, lambda M, b: b.clone().pow_(True)]:
        _same(call(tg, tg.tensor([True, False])), call(torch, torch.tensor([True, False])))


def test_masked_scatter_broadcasts_input_and_mask():
    torch = _torch()
    res = {}
    for M in (torch, tg):
        x = M.zeros(3, 1, 3, dtype=M.float64, requires_grad=True)
        s = M.arange(100.0, dtype=M.float64, requires_grad=True)
        r = M.masked_scatter(x, M.tensor([[[[True]], [[False]], [[True]]]]), s)
        res[M] = [r.detach(), *M.autograd.grad((r * r).sum(), [x, s])]
    for g, w in zip(res[tg], res[torch]):
        _same(g, w)
    _raises_like(lambda M: M.zeros(3, 1, 3).masked_scatter_(M.tensor([[[[True]], [[False]], [[True]]]]), M.arange(9.0)))


def test_unique_consecutive_along_a_dim_and_the_empty_dim_rules():
    torch = _torch()
    a = np.array([[[2.0, 2.0], [1.0, -2.0], [1.0, -2.0]], [[-2.0, -2.0], [1.5, -1.5], [1.5, -1.5]]])
    for d in (0, 1, 2, -1):
        got = tg.unique_consecutive(tg.tensor(a), return_inverse=True, return_counts=True, dim=d)
        want = torch.unique_consecutive(torch.tensor(a), return_inverse=True, return_counts=True, dim=d)
        for g, w in zip(got, want):
            _same(g, w)
    for fn in ("unique", "unique_consecutive"):
        for shape, d in [((2, 0), -1), ((0, 2), 0)]:
            got, want = (getattr(M, fn)(M.ones(shape), return_counts=True, dim=d) for M in (tg, torch))
            assert [tuple(t.shape) for t in got] == [tuple(t.shape) for t in want]
        for shape, d in [((2, 0), 0), ((0, 0), 0), ((), 0)]:
            _raises_like(lambda M: getattr(M, fn)(M.ones(shape), dim=d))


def test_linspace_logspace_refuse_negative_steps():
    _raises_like(lambda M: M.linspace(0, 1, -1))
    _raises_like(lambda M: M.logspace(0, 1, -2))


def test_gather_scatter_read_a_0d_index_as_1d_and_gather_nothing_from_an_empty_one():
    torch = _torch()
    for call in [lambda M: M.gather(M.tensor([5.0, 6.0]), 0, M.tensor(1)),
                 lambda M: M.gather(M.ones(2, 3), 1, M.zeros(0, dtype=M.int64)),
                 lambda M: M.scatter_add(M.tensor([1.0, 2.0]), 0, M.tensor(1), M.tensor(5.0)),
                 lambda M: M.scatter(M.tensor([1.0, 2.0]), 0, M.tensor(1), 7.0),
                 lambda M: M.scatter_reduce(M.tensor([1.0, 2.0]), 0, M.tensor(1), M.tensor(5.0), "amax")]:
        _same(call(tg), call(torch))
    _raises_like(lambda M: M.gather(M.ones(2, 3), 1, M.zeros(3, dtype=M.int64)))


def test_cdist_inf_gives_every_tied_maximum_the_full_gradient():
    torch = _torch()
    a = np.array([[-3.0, 1.5, -2.0], [2.5, -1.0, 1.5]])
    b = np.array([[0.5, 2.0, -1.5], [-1.0, -3.0, -1.0]])  # |a[1] - b[0]| = (2, 3, 3): a tie
    res = {}
    for M in (torch, tg):
        x, y = M.tensor(a, requires_grad=True), M.tensor(b, requires_grad=True)
        d = M.cdist(x, y, p=float("inf"))
        res[M] = [d.detach(), *M.autograd.grad(d.sum(), [x, y])]
    for g, w in zip(res[tg], res[torch]):
        _same(g, w)


# ---------------------------------------------------------------- found by PyTorch's op_db samples
@pytest.mark.parametrize("args", [(0.0, -8.000001, -4.0), (-1.7, 3.2, 1.9), (0, 10, 2.5), (0.3, 5, 1), (2.9, -3.2, -1.5)])
def test_integer_arange_truncates_its_arguments_first(args):
    torch = _torch()
    _same(tg.arange(*args, dtype=tg.int64), torch.arange(*args, dtype=torch.int64))
    _same(tg.arange(*args, dtype=tg.int32), torch.arange(*args, dtype=torch.int32))
    _raises_like(lambda M: M.arange(0.5, 5.5, 0.5, dtype=M.int64))  # the step truncates to 0


def test_zero_d_and_empty_dim_edge_cases_match_torch():
    torch = _torch()
    for f in [lambda M: M.squeeze(M.ones(1, 1, 1), ()),  # () names no dim: nothing squeezed
              lambda M: M.ones(1, 3, 1).squeeze(()),
              lambda M: M.diff(M.arange(4.0), 0, prepend=M.zeros(2), append=M.ones(1)),  # n=0: the input alone
              lambda M: M.index_select(M.tensor(2.5), 0, M.tensor([0])),  # 0-d in, 0-d out
              lambda M: M.nn.functional.prelu(M.tensor(-2.0), M.tensor([0.25])),
              lambda M: M.nn.functional.prelu(M.tensor([[-2.0, 1.0]]), M.tensor([0.25]))]:
        _same(f(tg), f(torch))


def test_arange_of_an_infinite_range_raises_runtime_error():
    _raises_like(lambda M: M.arange(0, float("inf"), 2))
    _raises_like(lambda M: M.arange(0, float("nan")))


def test_ndtr_and_log_ndtr_take_bool_and_integer_input():
    torch = _torch()
    for f in (lambda M: M.special.ndtr(M.tensor([True, False])), lambda M: M.special.log_ndtr(M.tensor([1, -50]))):
        got, want = f(tg), f(torch)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_to_takes_non_blocking_and_copy_positionally():
    # op_db's Tensor.to samples: to(device, dtype, non_blocking, copy) raised TypeError on the bools
    torch = _torch()
    for f in (lambda x, M: x.to("cpu", M.float64, True, True), lambda x, M: x.to(M.float32, False, True),
              lambda x, M: x.to(M.float32, False, False), lambda x, M: x.to(M.ones(1, dtype=M.float64), False, True)):
        xt, xg = torch.ones(2, 3), tg.ones(2, 3)
        yt, yg = f(xt, torch), f(xg, tg)
        _same(yg, yt)
        assert (yg is xg) == (yt is xt)
    _raises_like(lambda M: M.ones(2).to(True, M.float32))


_ZERO_D_SCATTERS = {
    "scatter": lambda M, a, b: M.scatter(a, 0, M.tensor(0), b),
    "scatter_value": lambda M, a, b: M.scatter(a, 0, M.tensor(0), value=2.0) * b,
    "scatter_add": lambda M, a, b: M.scatter_add(a, 0, M.tensor(0), b),
    "scatter_reduce": lambda M, a, b: M.scatter_reduce(a, -1, M.tensor(0), b, "prod", include_self=False),
    "scatter_reduce_mean": lambda M, a, b: M.scatter_reduce(a, 0, M.tensor(0), b, "mean"),
    "index_add": lambda M, a, b: M.index_add(a, 0, M.tensor([0]), b, alpha=-1),
    "index_copy": lambda M, a, b: M.index_copy(a, 0, M.tensor([0]), b),
    "index_reduce": lambda M, a, b: M.index_reduce(a, 0, M.tensor([0]), b, "amax"),
    "methods": lambda M, a, b: a.scatter_add(0, M.tensor(0), b) + a.index_add(0, M.tensor([0]), b),
    "in_place": lambda M, a, b: (a * 1).index_add_(0, M.tensor([0]), b) + (a * 1).scatter_(0, M.tensor(0), b),
}


@pytest.mark.parametrize("name", sorted(_ZERO_D_SCATTERS))
def test_scatters_of_a_zero_d_tensor_match_torch(name):
    # op_db's 0-d samples raised ('0-d input is not supported', IndexError in index_add)
    torch = _torch()
    res = []
    for M in (torch, tg):
        a = M.tensor(-8.5, dtype=M.float64, requires_grad=True)
        b = M.tensor(-1.75, dtype=M.float64, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch: index_reduce is in beta
            y = _ZERO_D_SCATTERS[name](M, a, b)
        y.backward()
        res.append((tuple(y.shape), y.item(), a.grad.item(), b.grad.item()))
    assert res[1] == res[0]
    with pytest.raises(IndexError):
        tg.scatter_add(tg.tensor(1.0), 1, tg.tensor(0), tg.tensor(2.0))


_VS_TORCH_GRAD = {  # values and float64 gradients, each once in both libraries
    "norm_nuc": lambda M, x: M.norm(x[0], p="nuc"),
    "norm_nuc_dims": lambda M, x: M.norm(x, p="nuc", dim=(0, 2), keepdim=True),
    "norm_nuc_method": lambda M, x: x.norm(p="nuc", dim=[1, 2]),
    "interpolate_area_3d": lambda M, x: M.nn.functional.interpolate(x[None, None], size=(2, 2, 3), mode="area"),
}


@pytest.mark.parametrize("name", sorted(_VS_TORCH_GRAD))
def test_values_and_gradients_match_torch(name):
    # op_db: torch.norm(p='nuc') raised RuntimeError, interpolate(mode='area') on 5-D input NotImplementedError
    torch = _torch()
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    res = []
    for M in (torch, tg):
        x = M.tensor(a, requires_grad=True)
        y = _VS_TORCH_GRAD[name](M, x)
        (y * M.tensor(np.arange(1.0, y.numel() + 1).reshape(tuple(y.shape)))).sum().backward()
        res.append((y.detach().numpy(), x.grad.numpy()))
    for want, got in zip(*res):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_take_along_dim_counts_negative_indices_from_the_end():
    torch = _torch()
    for M in (torch, tg):
        x = M.arange(6.0, dtype=M.float64).reshape(2, 3).requires_grad_()
        y = M.take_along_dim(x, M.tensor([[-1, 2], [-3, 0]]), 1)
        (y * M.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=M.float64)).sum().backward()
        if M is torch:
            want = (y.detach().numpy(), x.grad.numpy())
    np.testing.assert_array_equal(y.detach().numpy(), want[0])
    np.testing.assert_array_equal(x.grad.numpy(), want[1])
    _raises_like(lambda M: M.take_along_dim(M.ones(2, 3), M.tensor([-1, 0])))  # flattened: no wrapping


def test_einsum_broadcasts_size_one_against_an_empty_dim():
    # bilinear of an empty batch (op_db) failed: einsum took max(1, 0) = 1 as the broadcast size
    torch = _torch()
    for f in (lambda M: M.einsum("...i,kij,...j->...k", M.zeros(0, 3), M.ones(2, 3, 4), M.zeros(0, 4)),
              lambda M: M.einsum("bi,kij,bj->bk", M.ones(1, 3), M.ones(2, 3, 4), M.zeros(0, 4)),
              lambda M: M.einsum("ij,j->i", M.ones(2, 0), M.ones(1)),
              lambda M: M.nn.functional.bilinear(M.zeros(0, 3), M.zeros(0, 4), M.ones(2, 3, 4), M.ones(2)),
              lambda M: M.linalg.vander(M.tensor(2.0), N=3)):  # a 0-d x is one value
        _same(f(tg), f(torch))


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "int8"])
def test_hardtanh_and_relu6_of_integers_match_torch(dtype):
    # op_db's int64 hardtanh/relu6 samples raised 'not implemented for integer tensors'
    torch = _torch()
    vals = [0, 1, 5, 9] if dtype == "uint8" else [-9, -1, 0, 1, 5, 9]
    for f in (lambda M: M.nn.functional.relu6(M.tensor(vals, dtype=getattr(M, dtype))),
              lambda M: M.nn.functional.hardtanh(M.tensor(vals, dtype=getattr(M, dtype)), 0.5, 2.7)):
        _same(f(tg), f(torch))
    if dtype != "uint8":
        _same(tg.nn.functional.hardtanh(tg.tensor(vals, dtype=getattr(tg, dtype)), -1.5, 2.7),
              torch.nn.functional.hardtanh(torch.tensor(vals, dtype=getattr(torch, dtype)), -1.5, 2.7))
    else:
        _raises_like(lambda M: M.nn.functional.hardtanh(M.tensor(vals, dtype=M.uint8), -1.5, 2.7))
    _raises_like(lambda M: M.nn.functional.hardtanh(M.tensor([True, False])))


_OUT_CALLS = {  # functions whose out= was missing (op_db's error_inputs pass out= to them)
    "gather": lambda M, **o: M.gather(M.tensor([[1.0, 2.0], [3.0, 4.0]]), 1, M.tensor([[0, 0], [1, 0]]), **o),
    "index_select": lambda M, **o: M.index_select(M.tensor([[1.0, 2.0], [3.0, 4.0]]), 0, M.tensor([1]), **o),
    "masked_select": lambda M, **o: M.masked_select(M.tensor([1.0, 2.0, 3.0]), M.tensor([True, False, True]), **o),
    "take": lambda M, **o: M.take(M.tensor([[1.0, 2.0], [3.0, 4.0]]), M.tensor([3, 0]), **o),
    "take_along_dim": lambda M, **o: M.take_along_dim(M.tensor([[1.0, 2.0], [3.0, 4.0]]), M.tensor([[1], [0]]), 1, **o),
    "hstack": lambda M, **o: M.hstack([M.ones(2), M.zeros(1)], **o),
    "vstack": lambda M, **o: M.vstack([M.ones(2), M.zeros(2)], **o),
    "dstack": lambda M, **o: M.dstack([M.ones(2), M.zeros(2)], **o),
    "column_stack": lambda M, **o: M.column_stack([M.ones(2), M.zeros(2)], **o),
    "where": lambda M, **o: M.where(M.tensor([True, False]), M.tensor([1.0, 2.0]), M.tensor([5.0, 6.0]), **o),
    "histc": lambda M, **o: M.histc(M.tensor([1.0, 2.0, 1.0]), bins=4, min=0, max=3, **o),
    "narrow_copy": lambda M, **o: M.narrow_copy(M.tensor([[1.0, 2.0], [3.0, 4.0]]), 1, 1, 1, **o),
    "cholesky_inverse": lambda M, **o: M.cholesky_inverse(M.tensor([[2.0, 0.0], [1.0, 1.0]]), **o),
}


@pytest.mark.parametrize("name", sorted(_OUT_CALLS))
def test_out_argument_writes_the_result_as_torch(name):
    torch = _torch()
    want = _OUT_CALLS[name](torch, out=torch.empty(0))
    out = tg.empty(0)
    got = _OUT_CALLS[name](tg, out=out)
    assert got is out
    _same(got, want)


def test_out_argument_of_int_and_tuple_results():
    torch = _torch()
    _same(tg.nonzero(tg.tensor([0, 1, 1]), out=tg.empty(0, dtype=tg.int64)),
          torch.nonzero(torch.tensor([0, 1, 1]), out=torch.empty(0, dtype=torch.int64)))
    for f in (lambda M: M.aminmax(M.tensor([3.0, 1.0, 2.0]), out=(M.empty(0), M.empty(0))),
              lambda M: M.frexp(M.tensor([3.0, 0.7]), out=(M.empty(0), M.empty(0, dtype=M.int32)))):
        for g, w in zip(f(tg), f(torch)):
            _same(g, w)


_BAD_CALLS = {  # op_db's error_inputs where tapegrad raised another type (or nothing), each with a clear message
    "hsplit_0": lambda M: M.hsplit(M.ones(2, 4, 3), 0), "vsplit_0": lambda M: M.vsplit(M.ones(2, 4, 3), 0),
    "dsplit_0": lambda M: M.dsplit(M.ones(2, 4, 3), 0), "hsplit_str": lambda M: M.hsplit(M.ones(2, 4, 3), "abc"),
    "eye_n": lambda M: M.eye(-1), "eye_m": lambda M: M.eye(2, -3), "hstack_empty": lambda M: M.hstack([]),
    "ormqr_0d": lambda M: M.ormqr(M.tensor(0.5), M.tensor(0.5), M.tensor(0.5)),
    "roll_0d": lambda M: M.roll(M.tensor(1.0), 0, 0),
    "group_norm_1d": lambda M: M.nn.functional.group_norm(M.ones(1), 1),
    "isclose_rtol": lambda M: M.isclose(M.ones(2), M.ones(2), rtol=-0.4),
    "isclose_atol": lambda M: M.isclose(M.ones(2), M.ones(2), atol=-0.4),
    "gradient_dims": lambda M: M.gradient(M.ones(3, 3), spacing=0.1, dim=(1, 1)),
    "linspace_1d_ends": lambda M: M.linspace(M.tensor([1, 1]), M.tensor([3, 3]), 1),
    "logspace_1d_ends": lambda M: M.logspace(M.tensor([1, 1]), M.tensor([3, 3]), 1),
    "renorm_0d": lambda M: M.renorm(M.tensor(0.5), 0.5, 0, 1.0),
    "prelu_2d_weight": lambda M: M.nn.functional.prelu(M.ones(2, 3, 4), M.ones(3, 1)),
    "multi_margin_weight_2d": lambda M: M.nn.functional.multi_margin_loss(M.ones(4, 4), M.tensor([0, 1, 2, 3]),
                                                                          weight=M.ones(4, 1)),
    "multi_margin_weight_size": lambda M: M.nn.functional.multi_margin_loss(M.ones(4, 4), M.tensor([0, 1, 2, 3]),
                                                                            weight=M.ones(5)),
    "multi_margin_float_target": lambda M: M.nn.functional.multi_margin_loss(M.ones(4, 4), M.ones(4)),
    "multi_margin_weight_2d_first": lambda M: M.nn.functional.multi_margin_loss(M.ones(4, 4), M.ones(4),
                                                                                weight=M.ones(4, 1)),
    "multi_margin_no_classes": lambda M: M.nn.functional.multi_margin_loss(M.ones(5, 0), M.tensor([0, 1, 2, 3, 0])),
    "narrow_tensor_start": lambda M: M.narrow(M.ones(3, 4), 0, M.tensor([1]), 1),
}


@pytest.mark.parametrize("name", sorted(_BAD_CALLS))
def test_bad_input_raises_the_exception_type_torch_raises(name):
    _raises_like(_BAD_CALLS[name])

@pytest.mark.parametrize("kw", [dict(fweights=True), dict(aweights=True), dict(fweights=True, aweights=True),
                                dict(fweights=True, aweights=True, correction=0), dict(aweights=True, correction=2)])
def test_cov_weights_values_and_gradients_match_torch(kw):
    # cov raised NotImplementedError for fweights/aweights (op_db's cov samples)
    torch = _torch()
    r = np.random.default_rng(0)
    x, fw, aw = r.standard_normal((3, 5)), np.array([1, 2, 0, 3, 1]), r.uniform(0.1, 2, 5)
    ct = r.standard_normal((3, 3))
    res = {}
    for M in (torch, tg):
        xt, awt = M.tensor(x, requires_grad=True), M.tensor(aw, requires_grad=True)
        k = {n: (M.tensor(fw) if n == "fweights" else awt) if v is True else v for n, v in kw.items()}
        c = M.cov(xt, **k)
        (c * M.tensor(ct)).sum().backward()
        res[M] = [c.detach().numpy(), xt.grad.numpy()] + ([awt.grad.numpy()] if "aweights" in kw else [])
    for a, b in zip(res[torch], res[tg]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_cov_and_corrcoef_of_integers_and_their_errors_match_torch():
    torch = _torch()
    a = np.array([[1, 2, 4], [0, 1, 1]])
    for f in (lambda M: M.cov(M.tensor(a)), lambda M: M.corrcoef(M.tensor(a)),
              lambda M: M.cov(M.tensor(a), fweights=M.tensor([1, 2, 1]))):
        got, want = f(tg), f(torch)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    for bad in (lambda M: M.cov(M.ones(2, 3), fweights=M.tensor([1.0, 2.0, 3.0])),
                lambda M: M.cov(M.ones(2, 3), aweights=M.tensor([1, 2, 3])),
                lambda M: M.cov(M.ones(2, 3), fweights=M.tensor([1, -2, 3])),
                lambda M: M.cov(M.ones(2, 3), aweights=M.tensor([1.0, 2.0])),
                lambda M: M.cov(M.ones(2, 2, 2))):
        _raises_like(bad)


def test_gradient_takes_its_defaults_explicitly():
    torch = _torch()
    f = lambda M: M.gradient(M.tensor([[1.0, 2.0, 4.0], [0.0, 3.0, 3.5]]), spacing=None, dim=None, edge_order=1)
    for got, want in zip(f(tg), f(torch)):
        _same(got, want)


def test_p0_distances_are_in_the_graph_with_a_zero_gradient():
    # op_db's cdist/pdist p=0 samples: PyTorch's result requires grad (zero gradients), tapegrad's
    # was a constant, so backward through it raised
    torch = _torch()
    for M in (torch, tg):
        a = M.tensor([[1.0, 2.0], [3.0, 3.0]], dtype=M.float64, requires_grad=True)
        b = M.tensor([[1.0, 0.0], [np.inf, 3.0]], dtype=M.float64, requires_grad=True)
        c, d = M.cdist(a, b, p=0), M.nn.functional.pdist(a, p=0)
        assert c.requires_grad and d.requires_grad
        ga, gb = M.autograd.grad(c.sum() + d.sum(), [a, b])
        assert not ga.numpy().any() and not gb.numpy().any()
        if M is torch:
            want = (c.detach().numpy(), d.detach().numpy())
    np.testing.assert_array_equal(c.detach().numpy(), want[0])
    np.testing.assert_array_equal(d.detach().numpy(), want[1])


def _method_calls(M):
    x = M.tensor([[1.5, -2.0], [0.0, 3.0]])
    casts = ["float", "double", "half", "long", "int", "short", "char", "byte", "bool", "cfloat", "cdouble"]
    return {
        **{f"{n}_memory_format": (lambda n=n: getattr(x, n)(memory_format=M.contiguous_format)) for n in casts},
        "float_preserve_format": lambda: x.float(memory_format=M.preserve_format),
        "new_zeros": lambda: x.new_zeros((2, 3), dtype=M.float64, device="cpu"),
        "new_ones": lambda: x.new_ones(2, 3, device="cpu", requires_grad=True),
        "new_full": lambda: x.new_full((2, 3), 3.5, dtype=M.float32, device="cpu"),
        "new_empty": lambda: x.new_empty((2,), device="cpu").zero_(),
        "new_tensor": lambda: x.new_tensor([1, 2], device="cpu", dtype=M.int32),
        "new_empty_strided": lambda: x.new_empty_strided((2, 3), (3, 1), device="cpu").zero_(),
    }


@pytest.mark.parametrize("name", sorted(_method_calls(tg)))
def test_tensor_methods_take_torchs_keyword_arguments(name):
    # op_db's samples pass memory_format to the casts and device to the new_* factories: TypeError
    torch = _torch()
    got, want = _method_calls(tg)[name](), _method_calls(torch)[name]()
    _same(got, want)
    assert got.requires_grad == want.requires_grad
    _raises_like(lambda M: M.ones(2, 3).float(memory_format=M.channels_last))


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int64", "float32"])
def test_scatter_reduce_amin_amax_identities_per_dtype(dtype):
    # op_db's bool amin/amax samples raised (np.iinfo(bool)); an unsigned amax started from -max,
    # which wraps to 1, so scattering only zeros gave 1
    torch = _torch()
    for f in (lambda M, red, inc: M.scatter_reduce(
                  M.tensor([1, 0, 1, 5]).to(getattr(M, dtype)), 0, M.tensor([0, 0, 2, 2]),
                  M.tensor([0, 1, 0, 3]).to(getattr(M, dtype)), red, include_self=inc),
              lambda M, red, inc: M.scatter_reduce(M.tensor([5]).to(getattr(M, dtype)), 0, M.tensor([0]),
                                                   M.tensor([0]).to(getattr(M, dtype)), red, include_self=inc)):
        for red in ("amin", "amax"):
            for inc in (True, False):
                _same(f(tg, red, inc), f(torch, red, inc))


_KEYWORD_FORMS = {  # PyTorch's varargs methods also take their sequence by keyword (op_db: x.flip(dims=...))
    "flip": lambda M, x: x.flip(dims=[0]), "permute": lambda M, x: x.permute(dims=[1, 0]),
    "reshape": lambda M, x: x.reshape(shape=(3, 2)), "view": lambda M, x: x.view(size=(3, 2)),
    "repeat": lambda M, x: x.repeat(repeats=(2, 1)), "expand": lambda M, x: x[:1].expand(size=(4, 3)),
    "tile": lambda M, x: x.tile(dims=(2,)), "sum_to_size": lambda M, x: x.sum_to_size(size=(1, 3)),
    "new_zeros": lambda M, x: x.new_zeros(size=(2,)), "new_ones": lambda M, x: x.new_ones(size=[1, 2]),
    "fn_reshape": lambda M, x: M.reshape(x, shape=(6,)), "fn_permute": lambda M, x: M.permute(x, dims=(1, 0)),
    "flip_varargs": lambda M, x: x.flip(0, 1), "flip_tuple": lambda M, x: x.flip((0, 1)),
    "tile_varargs": lambda M, x: x.tile(2, 1), "tile_int": lambda M, x: x.tile(2),
}


@pytest.mark.parametrize("name", sorted(_KEYWORD_FORMS))
def test_sequence_arguments_by_keyword_match_torch(name):
    torch = _torch()
    a = np.arange(6.0).reshape(2, 3)
    _same(_KEYWORD_FORMS[name](tg, tg.tensor(a)), _KEYWORD_FORMS[name](torch, torch.tensor(a)))
    _raises_like(lambda M: M.ones(2, 3).permute(1, 0, dims=(1, 0)))  # both forms at once
    _raises_like(lambda M: M.ones(2, 3).flip(dim=0))


@pytest.mark.parametrize("call", [
    lambda M: M.nn.functional.adaptive_avg_pool2d(M.ones(2, 2), (2, 2)),
    lambda M: M.nn.functional.adaptive_max_pool2d(M.ones(2, 2), (2, 2)),
    lambda M: M.nn.functional.adaptive_avg_pool3d(M.ones(2, 2, 2), (2, 2, 2)),
    lambda M: M.nn.functional.adaptive_max_pool3d(M.ones(2, 2, 2), (2, 2, 2)),
    lambda M: M.nn.functional.adaptive_avg_pool2d(M.ones(2, 2, 2, 2, 2), (2, 2)),
    lambda M: M.nn.functional.adaptive_avg_pool1d(M.ones(1, 2, 3), ()),
    lambda M: M.nn.functional.adaptive_max_pool1d(M.ones(1, 2, 3), ()),
    lambda M: M.nn.functional.adaptive_avg_pool1d(M.ones(1, 2, 3), (1, 2))])
def test_adaptive_pool_errors_are_torchs_types(call):
    # op_db's error_inputs: too few dims is PyTorch's ValueError, a wrong-length 1-d output_size its RuntimeError
    _raises_like(call)


def test_fill_replaces_nan_and_inf_keeps_the_dtype_and_passes_the_gradient_to_value():
    # fill was input * 0 + value: NaN where input was inf or NaN, and promoted to value's dtype
    torch = _torch()
    res = []
    for M in (torch, tg):
        x = M.tensor([np.inf, np.nan, 1.0], dtype=M.float64, requires_grad=True)
        v = M.tensor(2.5, dtype=M.float64, requires_grad=True)
        y = M.fill(x, v)
        gx, gv = M.autograd.grad((y * M.tensor([1.0, 2.0, 3.0], dtype=M.float64)).sum(), [x, v])
        res.append((y.tolist(), y.requires_grad, gx.tolist(), gv.item(), M.fill(x, True).requires_grad,
                    M.fill(M.tensor([1, 2]), M.tensor(2.7)).tolist(), str(M.fill(M.tensor([1, 2]), M.tensor(2.7)).dtype)[-5:]))
    assert res[1] == res[0]
    _raises_like(lambda M: M.fill(M.ones(3), M.ones(2)))


@pytest.mark.parametrize("dtype", ["bool", "int32", "uint8", "float32"])
def test_sum_to_size_sums_as_sum_does(dtype):
    """Integers and bools reduced by ``sum_to_size`` come back int64 (it is a sum), and a size of
    () always sums, even for a 0-d input (ATen's ``sum_to``); an equal shape returns the input."""
    torch = _torch()
    for data, size in (([[1, 0, 1], [1, 1, 0]], (1, 3)), ([[1, 0, 1], [1, 1, 0]], ()), (1, ()),
                       ([[1, 0, 1], [1, 1, 0]], (2, 3)), ([1, 0, 1], (1,))):
        got = tg.tensor(data, dtype=getattr(tg, dtype)).sum_to_size(size)
        want = torch.tensor(data, dtype=getattr(torch, dtype)).sum_to_size(size)
        _same(got, want)
