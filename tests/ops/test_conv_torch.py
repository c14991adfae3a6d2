"""conv2d, conv_transpose2d and the pools against PyTorch: forward, gradients and double backward
on a few geometries, ceil_mode and count_include_pad included (skipped without torch)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import tapegrad as tg  # noqa: E402

pytestmark = pytest.mark.torch


def _both(arrays):
    return ([tg.Tensor._wrap(np.array(a)).requires_grad_() for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def _check(tg_fn, torch_fn, arrays, double=True, tol=1e-10):
    """Forward, first and (``double``) second derivatives of <fn(inputs), cotangent> agree."""
    (ti, pi) = _both(arrays)
    to, po = tg_fn(*ti), torch_fn(*pi)
    np.testing.assert_allclose(to._data, po.detach().numpy(), rtol=tol, atol=tol)
    (tc,), (pc,) = _both([np.random.default_rng(1).standard_normal(po.shape)])
    tgs = tg.autograd.grad([to], ti, [tc], create_graph=double)
    pgs = torch.autograd.grad([po], pi, [pc], create_graph=double)
    for a, b in zip(tgs, pgs):
        np.testing.assert_allclose(a._data, b.detach().numpy(), rtol=tol, atol=tol)
    if not double:
        return
    # second derivatives: of sum(grad_i * v_i) w.r.t. the inputs and the cotangent
    vs = [np.random.default_rng(2 + i).standard_normal(a.shape) for i, a in enumerate(arrays)]
    ts = sum((g * tg.Tensor._wrap(v)).sum() for g, v in zip(tgs, vs))
    ps = sum((g * torch.tensor(v)).sum() for g, v in zip(pgs, vs))
    tgg = tg.autograd.grad([ts], ti + [tc], allow_unused=True)
    pgg = torch.autograd.grad([ps], pi + [pc], allow_unused=True)
    for a, b in zip(tgg, pgg):
        a = None if a is None else a._data
        if b is None:
            assert a is None or not np.any(a)
        else:
            np.testing.assert_allclose(np.zeros(b.shape) if a is None else a, b.numpy(), rtol=tol, atol=tol)


rng = np.random.default_rng(0)

CONV = [  # x shape, w shape, kwargs
    ((2, 4, 7, 6), (6, 2, 3, 2), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ((1, 3, 5, 5), (2, 3, 3, 3), dict(padding="same")),
    ((1, 2, 6, 5), (3, 2, 2, 3), dict(padding="same", dilation=(2, 1))),
    ((2, 2, 5, 6), (2, 2, 1, 1), dict(stride=2)),
    ((3, 5, 4), (2, 3, 2, 2), dict(padding="valid")),  # unbatched
]


@pytest.mark.parametrize("xs, ws, kw", CONV)
def test_conv2d(xs, ws, kw):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    _check(lambda x, w, b: tg.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), [x, w, b])


CONV_T = [
    ((2, 4, 3, 4), (4, 3, 3, 2), dict(stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2))),
    ((1, 2, 3, 3), (2, 2, 2, 2), dict(stride=1, output_padding=1, dilation=2)),  # output_padding >= stride
    ((1, 3, 4, 2), (3, 1, 3, 3), dict(stride=(1, 3), padding=(0, 1), output_padding=(0, 2))),
    ((2, 3, 3), (2, 2, 2, 2), dict(stride=2)),  # unbatched
]


@pytest.mark.parametrize("xs, ws, kw", CONV_T)
def test_conv_transpose2d(xs, ws, kw):
    g = kw.get("groups", 1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[1] * g)
    _check(lambda x, w, b: tg.conv_transpose2d(x, w, b, **kw), lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
           [x, w, b])


def _distinct(shape):
    return np.random.default_rng(3).permutation(int(np.prod(shape))).reshape(shape) * 0.1


MAXPOOL = [
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1, dilation=2, ceil_mode=True),
]


@pytest.mark.parametrize("kw", MAXPOOL)
def test_max_pool2d(kw):
    x = _distinct((2, 3, 7, 6))
    _check(lambda x: tg.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), [x])
    ty, ti = tg.max_pool2d(tg.tensor(x), return_indices=True, **kw)
    py, pi = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(ti._data, pi.numpy())
    unpool = [lambda: tg.max_unpool2d(ty, ti, kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                                      output_size=x.shape[2:]),
              lambda: TF.max_unpool2d(py, pi, kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                                      output_size=x.shape[2:])]
    if "dilation" in kw:  # unpooling knows no dilation: the size is out of range for both
        for f in unpool:
            with pytest.raises(ValueError, match="output_size"):
                f()
    elif kw.get("stride") in (None, kw["kernel_size"]):  # non-overlapping windows: unique indices
        np.testing.assert_array_equal(unpool[0]()._data, unpool[1]().numpy())


AVGPOOL = [
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), count_include_pad=False),
    dict(kernel_size=2, stride=3, ceil_mode=True),
    dict(kernel_size=3, padding=1, divisor_override=4),
]


@pytest.mark.parametrize("kw", AVGPOOL)
def test_avg_pool2d(kw):
    x = rng.standard_normal((2, 3, 7, 6))
    _check(lambda x: tg.avg_pool2d(x, **kw), lambda x: TF.avg_pool2d(x, **kw), [x])


@pytest.mark.parametrize("size", [(3, 2), (2, None), 4, (7, 6), 1, (5, 4)])
def test_adaptive_avg_pool2d(size):
    x = rng.standard_normal((2, 3, 7, 6))
    _check(lambda x: tg.adaptive_avg_pool2d(x, size), lambda x: TF.adaptive_avg_pool2d(x, size), [x])


def test_float32_matches():
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    _check(lambda x, w: tg.max_pool2d(tg.conv2d(x, w, padding=1), 2, ceil_mode=True),
           lambda x, w: TF.max_pool2d(TF.conv2d(x, w, padding=1), 2, ceil_mode=True), [x, w], double=False, tol=1e-4)


@pytest.mark.parametrize("call", [
    lambda M: M.conv2d(M.zeros(1, 3, 6, 6), M.zeros(2, 4, 3, 3)),
    lambda M: M.conv2d(M.zeros(1, 4, 2, 2), M.zeros(2, 4, 3, 3)),
    lambda M: M.conv2d(M.zeros(1, 4, 6, 6), M.zeros(3, 2, 3, 3), groups=2),
    lambda M: M.conv2d(M.zeros(1, 4, 6, 6), M.zeros(2, 4, 3, 3), padding="same", stride=2),
    lambda M: M.conv_transpose2d(M.zeros(1, 4, 4, 4), M.zeros(4, 2, 3, 3), output_padding=1),
    lambda M: M.max_pool2d(M.zeros(1, 1, 5, 5), 3, padding=2),
    lambda M: M.max_pool2d(M.zeros(1, 1, 2, 2), 3),
])
def test_errors_are_runtime_errors_in_both(call):
    for M in (torch, tg):
        with pytest.raises(RuntimeError):
            call(M)
