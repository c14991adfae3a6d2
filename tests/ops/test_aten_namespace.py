"""``tapegrad.ops.aten`` (``torch.ops.aten``): each mapped overload against PyTorch's on the same
inputs (values, and gradients where the output is differentiable), and the namespace objects'
names, identity and errors."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad._library import aten as aten_table

aten = tg.ops.aten
rng = np.random.default_rng(0)


def A(*shape):
    return rng.standard_normal(shape)


def P(*shape):  # positive
    return rng.uniform(0.5, 2.0, shape)


def U(*shape):  # in (-1, 1)
    return rng.uniform(-0.9, 0.9, shape)


def I(high, *shape):  # noqa: E743
    return rng.integers(0, high, shape)


class C(np.ndarray):
    """An array given as a tensor that does not require grad (PyTorch refuses nll_loss's weight)."""


def Z(*shape):  # an out= tensor
    return np.zeros(shape).view(C)


def B(*shape):
    return rng.random(shape) > 0.5


# overload -> (args, kwargs); arrays become tensors of the module under test
UNARY = ("abs neg exp sin cos tan tanh sigmoid relu sign floor ceil round trunc erf expm1 atan sinh cosh "
         "isnan silu gelu hardtanh leaky_relu elu clone detach alias").split()
SAMPLES = {f"{n}.default": ((A(3, 4),), {}) for n in UNARY}
SAMPLES.update({f"{n}.default": ((P(3, 4),), {}) for n in "log sqrt rsqrt reciprocal log1p log2".split()})
SAMPLES.update({f"{n}.default": ((U(3, 4),), {}) for n in "asin acos".split()})
SAMPLES.update({
    "logical_not.default": ((B(3),), {}),
    "add.Tensor": ((A(3, 4), A(4)), {"alpha": 2}), "add.Scalar": ((A(3), 1.5), {}),
    "sub.Tensor": ((A(3, 4), A(3, 4)), {"alpha": 0.5}), "sub.Scalar": ((A(3), 2), {}),
    "rsub.Tensor": ((A(3), A(3)), {"alpha": 3}), "rsub.Scalar": ((A(3), 2.0), {}),
    "mul.Tensor": ((A(2, 3), A(2, 3)), {}), "mul.Scalar": ((A(3), 3.0), {}),
    "div.Tensor": ((A(3), P(3)), {}), "div.Scalar": ((A(3), 4.0), {}),
    "div.Tensor_mode": ((A(5) * 4, P(5)), {"rounding_mode": "floor"}),
    "pow.Tensor_Tensor": ((P(3), A(3)), {}), "pow.Tensor_Scalar": ((A(3), 2), {}), "pow.Scalar": ((2.0, A(3)), {}),
    **{f"{c}.Tensor": ((A(6), np.where(B(6), A(6), 0.0)), {}) for c in "eq ne lt le gt ge".split()},
    **{f"{c}.Scalar": ((np.array([0.5, 1.0, 2.0]), 1.0), {}) for c in "eq ne lt le gt ge".split()},
    "linear.default": ((A(3, 4), A(2, 4), A(2)), {}),
    "layer_norm.default": ((A(2, 3, 4), [3, 4], A(3, 4), A(3, 4)), {}),
    "group_norm.default": ((A(2, 4, 3), 2, A(4), A(4), 1e-3), {}),
    "var_mean.correction": ((A(3, 4), [1]), {"correction": 2, "keepdim": True}),
    "hardswish.default": ((A(3, 4) * 4,), {}), "softplus.default": ((A(3, 4), 2, 1), {}), "mish.default": ((A(5),), {}),
    "logit.default": ((rng.uniform(0.1, 0.9, (5,)), 0.2), {}), "constant_pad_nd.default": ((A(2, 3), [1, 2], 0.5), {}),
    "bitwise_and.Tensor": ((I(8, 5), I(8, 5)), {}), "exp2.default": ((A(4),), {}),
    "where.ScalarOther": ((B(3, 4), A(3, 4), 0.5), {}), "erfinv.default": ((U(5),), {}),
    "pixel_shuffle.default": ((A(1, 8, 2, 3), 2), {}),
    "add.out": ((A(3), A(3)), {"alpha": 2, "out": Z(3)}), "mul.out": ((A(3), A(3)), {"out": Z(3)}),
    "sub.out": ((A(3), A(3)), {"out": Z(3)}), "div.out": ((A(3), P(3)), {"out": Z(3)}),
    "mm.out": ((A(2, 3), A(3, 4)), {"out": Z(2, 4)}), "bmm.out": ((A(2, 2, 3), A(2, 3, 1)), {"out": Z(2, 2, 1)}),
    "addmm.out": ((A(2), A(3, 4), A(4, 2)), {"beta": 0.5, "out": Z(3, 2)}), "exp.out": ((A(3),), {"out": Z(3)}),
    "sin.out": ((A(3),), {"out": Z(3)}), "sum.IntList_out": ((A(3, 4), [1]), {"out": Z(3)}),
    "mean.out": ((A(3, 4), [0], True), {"out": Z(1, 4)}), "cat.out": (([A(2), A(3)],), {"out": Z(5)}),
    "clamp.out": ((A(5), -0.5), {"out": Z(5)}), "where.self_out": ((B(4), A(4), A(4)), {"out": Z(4)}),
    "maximum.default": ((A(4), A(4)), {}), "minimum.default": ((A(4), A(4)), {}),
    "where.self": ((B(3, 4), A(3, 4), A(3, 4)), {}), "atan2.default": ((A(4), A(4)), {}),
    "remainder.Tensor": ((A(4) * 5, P(4)), {}), "remainder.Scalar": ((A(4) * 5, 1.5), {}),
    "fmod.Tensor": ((A(4) * 5, P(4)), {}), "fmod.Scalar": ((A(4) * 5, 1.5), {}),
    "logical_and.default": ((B(4), B(4)), {}), "logical_or.default": ((B(4), B(4)), {}),
    "logical_xor.default": ((B(4), B(4)), {}),
    "clamp.default": ((A(6),), {"min": -0.5, "max": 0.5}), "clamp.Tensor": ((A(6), A(6) - 1, A(6) + 1), {}),
    "clamp_min.default": ((A(6), 0.1), {}), "clamp_max.default": ((A(6), 0.1), {}),
    "lerp.Scalar": ((A(4), A(4), 0.3), {}), "addcmul.default": ((A(3), A(3), A(3)), {"value": 0.5}),
    "addcdiv.default": ((A(3), A(3), P(3)), {"value": 2}),
    "add_.Tensor": ((A(3), A(3)), {"alpha": 2}), "add_.Scalar": ((A(3), 1.0), {}), "sub_.Tensor": ((A(3), A(3)), {}),
    "mul_.Tensor": ((A(3), A(3)), {}), "mul_.Scalar": ((A(3), 2.0), {}), "div_.Tensor": ((A(3), P(3)), {}),
    "copy_.default": ((A(2, 3), A(3)), {}), "zero_.default": ((A(3),), {}), "fill_.Scalar": ((A(3), 2.5), {}),
    "sum.default": ((A(3, 4),), {}), "sum.dim_IntList": ((A(3, 4), [1], True), {}),
    "mean.default": ((A(3, 4),), {}), "mean.dim": ((A(3, 4), [0]), {}),
    "amax.default": ((A(3, 4), [1]), {}), "amin.default": ((A(3, 4),), {}),
    "max.default": ((A(3, 4),), {}), "max.dim": ((A(3, 4), 1, True), {}),
    "min.default": ((A(3, 4),), {}), "min.dim": ((A(3, 4), 0), {}),
    "argmax.default": ((A(3, 4), 1), {}), "argmin.default": ((A(3, 4),), {}),
    "prod.default": ((A(3, 4),), {}), "prod.dim_int": ((A(3, 4), 1), {}),
    "var.correction": ((A(3, 4), [1]), {"correction": 0}), "std.correction": ((A(3, 4),), {"keepdim": True}),
    "any.default": ((B(3, 4),), {}), "any.dim": ((B(3, 4), 1), {}),
    "all.default": ((B(3, 4),), {}), "all.dim": ((B(3, 4), 0, True), {}),
    "cumsum.default": ((A(3, 4), 1), {}), "cumprod.default": ((A(3, 4), 0), {}),
    "logsumexp.default": ((A(3, 4), [1]), {}), "linalg_vector_norm.default": ((A(3, 4), 3, [1]), {}),
    "mm.default": ((A(3, 4), A(4, 2)), {}), "bmm.default": ((A(2, 3, 4), A(2, 4, 5)), {}),
    "addmm.default": ((A(3), A(2, 4), A(4, 3)), {"beta": 0.5, "alpha": 2}),
    "matmul.default": ((A(2, 3, 4), A(4)), {}), "dot.default": ((A(4), A(4)), {}), "mv.default": ((A(3, 4), A(4)), {}),
    "baddbmm.default": ((A(2, 3, 5), A(2, 3, 4), A(2, 4, 5)), {"beta": 2}), "t.default": ((A(3, 4),), {}),
    "view.default": ((A(3, 4), [2, 6]), {}), "reshape.default": ((A(3, 4), [4, -1]), {}),
    "_unsafe_view.default": ((A(3, 4), [12]), {}), "permute.default": ((A(2, 3, 4), [2, 0, 1]), {}),
    "transpose.int": ((A(2, 3, 4), 0, 2), {}), "expand.default": ((A(3, 1), [2, 3, 4]), {}),
    "squeeze.default": ((A(3, 1, 4),), {}), "squeeze.dim": ((A(3, 1, 4), 1), {}),
    "squeeze.dims": ((A(1, 3, 1), [0, 2]), {}), "unsqueeze.default": ((A(3, 4), 1), {}),
    "cat.default": (([A(2, 3), A(1, 3)],), {}), "stack.default": (([A(2, 3), A(2, 3)], 1), {}),
    "split.Tensor": ((A(5, 2), 2), {}), "split_with_sizes.default": ((A(5, 2), [2, 3]), {}),
    "chunk.default": ((A(6, 2), 3), {}), "unbind.int": ((A(3, 2), 1), {}), "select.int": ((A(3, 4), 1, 2), {}),
    "slice.Tensor": ((A(3, 8), 1, 1, 7, 2), {}), "narrow.default": ((A(3, 8), 1, 2, 3), {}),
    "flip.default": ((A(3, 4), [0, 1]), {}), "roll.default": ((A(3, 4), [1], [1]), {}),
    "repeat.default": ((A(2, 3), [2, 1, 2]), {}), "flatten.using_ints": ((A(2, 3, 4), 1, 2), {}),
    "index_select.default": ((A(4, 3), 0, I(4, 5)), {}), "gather.default": ((A(3, 4), 1, I(4, 3, 2)), {}),
    "scatter.src": ((A(3, 4), 1, I(4, 3, 2), A(3, 2)), {}), "scatter.value": ((A(3, 4), 1, I(4, 3, 2), 1.5), {}),
    "scatter_add.default": ((A(3, 4), 1, I(4, 3, 5), A(3, 5)), {}),
    "scatter_reduce.two": ((A(3, 4), 1, I(4, 3, 5), A(3, 5), "amax"), {"include_self": False}),
    "index.Tensor": ((A(4, 5), [None, I(5, 3)]), {}),
    "index_put.default": ((A(4, 3), [np.array([0, 2])], A(2, 3), True), {}),
    "index_add.default": ((A(4, 3), 0, np.array([0, 2, 0]), A(3, 3)), {"alpha": 2}),
    "masked_fill.Scalar": ((A(3, 4), B(3, 4), 0.5), {}), "masked_fill.Tensor": ((A(3, 4), B(4), np.array(2.0)), {}),
    "sort.default": ((A(3, 5), 1, True), {}), "sort.stable": ((A(3, 5),), {"stable": True, "dim": 0}),
    "topk.default": ((A(3, 5), 2), {}), "tril.default": ((A(4, 4), -1), {}), "triu.default": ((A(4, 4),), {}),
    "_softmax.default": ((A(3, 4), 1, False), {}), "_log_softmax.default": ((A(3, 4), 0, False), {}),
    "softmax.int": ((A(3, 4), 1), {}), "log_softmax.int": ((A(3, 4), -1), {}),
    "convolution.default": ((A(2, 3, 7, 6), A(4, 3, 3, 3), A(4), [2, 1], [1, 0], [1, 1], False, [0, 0], 1), {}),
    "native_layer_norm.default": ((A(2, 3, 4), [4], A(4), A(4), 1e-5), {}),
    "embedding.default": ((A(5, 3), I(5, 2, 4)), {}),
    "avg_pool2d.default": ((A(2, 3, 6, 6), [2, 2]), {}),
    "max_pool2d_with_indices.default": ((A(2, 3, 6, 6), [3, 3], [2, 2], [1, 1]), {}),
    "mse_loss.default": ((A(3, 4), A(3, 4)), {}),
    "nll_loss_forward.default": ((A(5, 4), np.array([0, 3, 1, -100, 2]), P(4).view(C), 1, -100), {}),
    "zeros_like.default": ((A(2, 3),), {}), "ones_like.default": ((A(2, 3),), {}),
    "full_like.default": ((A(2, 3), 7.0), {}), "zeros.default": (([2, 3],), {}), "ones.default": (([3],), {}),
    "full.default": (([2, 2], 1.5), {}), "arange.default": ((5,), {}), "arange.start": ((2, 7), {}),
    "arange.start_step": ((1, 2, 0.25), {}), "scalar_tensor.default": ((3.5,), {}),
    "_to_copy.default": ((A(2, 3),), {}), "to.dtype": ((A(3),), {}),
    "new_zeros.default": ((A(2), [3, 2]), {}), "new_ones.default": ((A(2), [3]), {}),
    "new_full.default": ((A(2), [2, 2], 3.0), {}), "contiguous.default": ((A(3, 4),), {}),
    "expand_as.default": ((A(3, 1), A(3, 4)), {}), "view_as.default": ((A(3, 4), A(4, 3)), {}),
    "type_as.default": ((A(3), A(3).astype(np.float32)), {}),
    "abs_.default": ((A(3),), {}), "relu_.default": ((A(3),), {}), "sigmoid_.default": ((A(3),), {}),
    "exp_.default": ((A(3),), {}), "sqrt_.default": ((P(3),), {}),
    "index_put_.default": ((A(4, 3), [np.array([1, 3])], A(2, 3)), {}),
    "scatter_.src": ((A(3, 4), 1, I(4, 3, 2), A(3, 2)), {}),
    "scatter_add_.default": ((A(3, 4), 1, I(4, 3, 5), A(3, 5)), {}),
    "index_add_.default": ((A(4, 3), 0, np.array([0, 2, 0]), A(3, 3)), {}),
    "masked_fill_.Scalar": ((A(3, 4), B(3, 4), 0.5), {}), "clamp_.default": ((A(6),), {"min": 0.0}),
})
DTYPE_ARGS = {"to.dtype": "float32", "scalar_tensor.default": "float64", "zeros.default": "float64",
              "ones.default": "float64", "full.default": "float64"}
# overloads whose values are random (shapes and dtypes compared only) or uninitialised
RANDOM = {"native_dropout.default", "bernoulli.p", "empty_like.default", "new_empty.default"}
SHAPE_SAMPLES = {"empty.memory_format": (([2, 3],), {}),"native_dropout.default": ((A(4, 5), 0.5, True), {}), "bernoulli.p": ((P(3, 3) / 3, 0.4), {}),
                 "empty_like.default": ((A(2, 3),), {}), "new_empty.default": ((A(2), [3, 2]), {})}


def test_sparse_addmm_matches_torch():
    torch = pytest.importorskip("torch")
    i, v = np.array([[0, 1, 1], [2, 0, 2]]), np.array([3.0, 4.0, 5.0])
    got, want = ([M.ops.aten._sparse_addmm.default(M.ones(2, 2, dtype=M.float64),
                                                   M.sparse_coo_tensor(M.tensor(i), M.tensor(v), (2, 3)),
                                                   M.tensor(np.arange(6.0).reshape(3, 2)), beta=b, alpha=2)
                  for b in (0.5, 0)] for M in (tg, torch))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy())


def _overloads():
    return [text[:text.index("(")] if "." in text[:text.index("(")] else text[:text.index("(")] + ".default"
            for text in aten_table.SCHEMAS]


def _convert(M, v, leaves):
    """Arrays as tensors; the float64 ones (but C's) require grad and are listed in ``leaves``
    (None: none requires grad)."""
    if isinstance(v, list):
        return [_convert(M, e, leaves) for e in v]
    if isinstance(v, np.ndarray):
        t = M.tensor(np.asarray(v))
        if t.dtype == M.float64 and v.ndim and not isinstance(v, C) and leaves is not None:
            t.requires_grad_(True)
            leaves.append(t)
        return t
    return v


def _call(M, name, args, kwargs, in_place):
    leaves = []
    args = [_convert(M, a, None if "out" in name else leaves) for a in args]  # out= is not differentiable
    kwargs = {k: _convert(M, v, leaves) for k, v in kwargs.items()}
    if name in DTYPE_ARGS:
        kwargs = dict(kwargs, dtype=getattr(M, DTYPE_ARGS[name]))
        if name == "to.dtype":
            args, kwargs = args + [kwargs.pop("dtype")], kwargs
    if in_place:  # an in-place overload writes into a non-leaf copy of its first argument
        args[0] = args[0] * 1
    op, overload = name.split(".")
    return getattr(getattr(M.ops.aten, op), overload)(*args, **kwargs), leaves


def _tensors(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return [out]


def test_every_overload_has_a_sample():
    missing = sorted(set(_overloads()) - set(SAMPLES) - set(SHAPE_SAMPLES) - {"_pin_memory.default", "_sparse_addmm.default"})
    assert not missing, f"aten overloads with no sample in this test: {missing}"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_overload_matches_torch(name):
    torch = pytest.importorskip("torch")
    args, kwargs = SAMPLES[name]
    in_place = name.split(".")[0].endswith("_")
    results = [_call(M, name, args, kwargs, in_place) for M in (tg, torch)]
    (got, got_leaves), (want, want_leaves) = results
    got_t, want_t = _tensors(got), _tensors(want)
    assert len(got_t) == len(want_t)
    for g, w in zip(got_t, want_t):
        assert str(g.dtype).split(".")[-1] == str(w.dtype).split(".")[-1], name
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    diff = [(g, w) for g, w in zip(got_t, want_t) if w.requires_grad and w.dtype == torch.float64]
    assert [g.requires_grad for g, _ in diff] == [True] * len(diff), name
    if diff and got_leaves:
        cot = [np.random.default_rng(1).standard_normal(tuple(w.shape)) for _, w in diff]
        gg = tg.autograd.grad([g for g, _ in diff], got_leaves, [tg.tensor(c) for c in cot], allow_unused=True)
        gw = torch.autograd.grad([w for _, w in diff], want_leaves, [torch.tensor(c) for c in cot], allow_unused=True)
        for a, b in zip(gg, gw):
            if b is None:
                assert a is None or not np.any(a.numpy()), name
            else:
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", sorted(SHAPE_SAMPLES))
def test_random_overload_matches_torch_in_shape(name):
    torch = pytest.importorskip("torch")
    args, kwargs = SHAPE_SAMPLES[name]
    got, want = (_tensors(_call(M, name, args, kwargs, False)[0]) for M in (tg, torch))
    assert [tuple(t.shape) for t in got] == [tuple(t.shape) for t in want]
    assert [str(t.dtype).split(".")[-1] for t in got] == [str(t.dtype).split(".")[-1] for t in want]


def test_pin_memory_raises_as_pytorch_without_an_accelerator():
    with pytest.raises(RuntimeError, match="Cannot access accelerator device when none is available"):
        aten._pin_memory.default(tg.ones(2))


def test_names_and_identity_follow_pytorch():
    add = aten.add
    assert aten.add is add and aten.add.Tensor is add.Tensor  # hashable and equal by identity
    assert {aten.add.Tensor: 1}[aten.add.Tensor] == 1 and aten.add.Tensor != aten.add.Scalar
    assert repr(add) == "<OpOverloadPacket(op='aten.add')>" and str(add) == "aten.add" and add.__name__ == "add"
    assert add._qualified_op_name == "aten::add" and add.overloads() == ["Tensor", "Scalar", "out"]
    t = add.Tensor
    assert (t.__name__, t.__qualname__, t.name(), str(t)) == ("add.Tensor", "aten::add.Tensor", "aten::add.Tensor",
                                                              "aten.add.Tensor")
    assert repr(t) == "<OpOverload(op='aten.add', overload='Tensor')>" and t.overloadpacket is add
    assert str(t._schema) == "aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor"
    mm = aten.mm.default
    assert (mm.__name__, mm.name(), str(mm), mm._overloadname) == ("mm.default", "aten::mm", "aten.mm.default", "default")


def test_out_overload_writes_into_out_and_returns_it():
    x, out = tg.tensor([1.0, 2.0]), tg.zeros(2)
    assert aten.add.out(x, x, out=out) is out and out.tolist() == [2.0, 4.0]


def test_packet_call_picks_the_overload_that_takes_the_arguments():
    x = tg.tensor([1.0, 2.0])
    np.testing.assert_allclose(aten.add(x, x).numpy(), [2, 4])
    np.testing.assert_allclose(aten.add(x, 1.0).numpy(), [2, 3])
    np.testing.assert_allclose(aten.sum(x).numpy(), 3)


def test_unknown_op_and_overload_raise_attribute_error_naming_them():
    with pytest.raises(AttributeError, match="'aten' object has no attribute 'not_an_op'"):
        aten.not_an_op
    with pytest.raises(AttributeError, match="'aten.add' has no overload name 'Nope'"):
        aten.add.Nope
    assert not hasattr(aten, "not_an_op")


def test_wrong_arguments_raise_as_pytorch():
    x = tg.ones(2)
    with pytest.raises(RuntimeError, match=r"aten::mm\(\) is missing value for argument 'mat2'"):
        aten.mm.default(x)
    with pytest.raises(RuntimeError, match="Expected a value of type 'Tensor' for argument 'other'"):
        aten.add.Tensor(x, "a")
    with pytest.raises(RuntimeError, match="Unknown keyword argument 'beta'"):
        aten.add.Tensor(x, x, beta=2)


def test_load_library_says_tapegrad_cannot_load_libtorch_extensions():
    with pytest.raises(OSError, match="cannot load libtorch extension libraries"):
        tg.ops.load_library("libcustom.so")


def test_ops_keeps_its_own_names_beside_the_namespaces():
    assert tg.ops.add is tg.add and isinstance(tg.ops.OPS, dict)
    assert tg.ops.some_namespace is tg.ops.some_namespace  # any other name is a namespace, as torch.ops's
    with pytest.raises(AttributeError):
        tg.ops._private_name
