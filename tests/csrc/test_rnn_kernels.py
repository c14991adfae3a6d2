"""The fused LSTM and GRU layers of tapegrad._C (csrc/kernels/rnn.cpp) against float64 numpy
references, packed sequences of odd sizes in both directions, both dtypes; the layer modules
against PyTorch; gradients (double backward through the composite path) by finite differences;
results bit-identical for 1 and 2 threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.autograd import gradcheck, gradgradcheck
from tapegrad.ops import recurrent

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _packed(sizes):
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [slice(bounds[t], bounds[t + 1]) for t in range(len(sizes))]


def lstm_ref(gi, h0, c0, w, sizes, reverse):
    """(out (N + 2B, H)) of the LSTM recurrence, step by step in float64."""
    h, c = h0.copy(), c0.copy()
    H = w.shape[1]
    rows = _packed(sizes)
    out = np.zeros((gi.shape[0] + 2 * len(h0), H))
    for t in (reversed(range(len(sizes))) if reverse else range(len(sizes))):
        m = sizes[t]
        a = gi[rows[t]] + h[:m] @ w.T
        i, f, g, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
        c[:m] = f * c[:m] + i * g
        h[:m] = o * np.tanh(c[:m])
        out[rows[t]] = h[:m]
    n = gi.shape[0]
    out[n:n + len(h0)], out[n + len(h0):] = h, c
    return out


def gru_ref(gi, h0, w, b, sizes, reverse):
    h = h0.copy()
    H = w.shape[1]
    rows = _packed(sizes)
    out = np.zeros((gi.shape[0] + len(h0), H))
    for t in (reversed(range(len(sizes))) if reverse else range(len(sizes))):
        m = sizes[t]
        x, gh = gi[rows[t]], h[:m] @ w.T + (0 if b is None else b)
        r, z = _sigmoid(x[:, :H] + gh[:, :H]), _sigmoid(x[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(x[:, 2 * H:] + r * gh[:, 2 * H:])
        h[:m] = n + z * (h[:m] - n)
        out[rows[t]] = h[:m]
    out[gi.shape[0]:] = h
    return out


SIZES = [(1,), (3,), (5, 5, 5), (4, 4, 2, 1), (7, 3, 3, 2, 2, 1, 1)]


def _draw(rng, sizes, H, G, dtype):
    N, B = sum(sizes), sizes[0]
    return (rng.standard_normal((N, G * H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype), (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype),
            rng.standard_normal(G * H).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("H", [1, 7, 33, 100])  # 100: two blocks of hidden units per step
def test_lstm_gru_forward_against_numpy(dtype, sizes, reverse, H):
    rng = np.random.default_rng(len(sizes) * 100 + H)
    gi, h0, c0, w, _ = _draw(rng, sizes, H, 4, dtype)
    bs = np.array(sizes, np.int64)
    out = _C.lstm(gi, h0, c0, w, bs, reverse)[0]
    assert out.dtype == dtype
    want = lstm_ref(*(a.astype(np.float64) for a in (gi, h0, c0, w)), sizes, reverse)
    np.testing.assert_allclose(out, want, **TOL[dtype])
    gi, h0, _, w, b = _draw(rng, sizes, H, 3, dtype)
    for bias in (None, b):
        out = _C.gru(gi, h0, w, bias, bs, reverse)[0]
        want = gru_ref(*(a.astype(np.float64) for a in (gi, h0, w)), None if bias is None else bias.astype(np.float64),
                       sizes, reverse)
        np.testing.assert_allclose(out, want, **TOL[dtype])


def _layer_fn(mode, sizes, reverse):
    """(gi, h0, [c0,] w_hh[, b_hh]) -> the fused op's output, through the op table."""
    def fn(gi, h0, *rest):
        if mode == "LSTM":
            c0, w = rest
            out, (h, c) = recurrent.layer("LSTM", gi, (h0, c0), w, None, sizes, reverse)
            return tg.cat([out, h, c], 0)
        w, *b = rest
        out, (h,) = recurrent.layer("GRU", gi, (h0,), w, b[0] if b else None, sizes, reverse)
        return tg.cat([out, h], 0)
    return fn


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("sizes", [(2,), (3, 2, 2, 1)])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_layer_gradients_and_double_backward(mode, sizes, reverse):
    rng = np.random.default_rng(1)
    gi, h0, c0, w, b = _draw(rng, sizes, 3, 4 if mode == "LSTM" else 3, np.float64)
    args = [gi, h0, c0, w] if mode == "LSTM" else [gi, h0, w, b]
    ts = [tg.tensor(a, requires_grad=True) for a in args]
    fn = _layer_fn(mode, sizes, reverse)
    assert gradcheck(fn, ts, eps=1e-6, atol=1e-6)
    assert gradgradcheck(fn, ts, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("H", [5, 100])  # 100: two blocks of hidden units per step
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("sizes", [(4, 3, 1), (5,)])  # (5,): one step, the cells' own path
def test_fused_layer_first_order_matches_composite_gradients(H, reverse, sizes):
    """The kernel's backward and the composite recurrence's (create_graph) agree."""
    rng = np.random.default_rng(2)
    gi, h0, c0, w, _ = _draw(rng, sizes, H, 4, np.float64)
    ts = [tg.tensor(a, requires_grad=True) for a in (gi, h0, c0, w)]
    out = _layer_fn("LSTM", sizes, reverse)(*ts)
    g = tg.tensor(rng.standard_normal(out.shape))
    first = tg.autograd.grad(out, ts, g, retain_graph=True)
    second = tg.autograd.grad(out, ts, g, create_graph=True)
    for a, b in zip(first, second):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("reverse", [False, True])
# 40 x 260 elements per step: the gate pass splits over threads (GRU); the LSTM's threads split
# the batch rows (20 each, the second with none left in the last step). 6 rows are too few to
# split: the LSTM's threads split the steps' four blocks of hidden units instead. (21,): one
# step (the cells), whose products gemm splits over the threads itself.
@pytest.mark.parametrize("sizes", [(40, 40, 33, 20, 7), (6, 6, 5, 3), (21,)])
def test_fused_kernels_identical_for_1_and_2_threads(mode, reverse, sizes):
    rng = np.random.default_rng(3)
    gi, h0, c0, w, b = _draw(rng, sizes, 260, 4 if mode == "LSTM" else 3, np.float32)
    bs = np.array(sizes, np.int64)
    before = tg.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            tg.set_num_threads(n)
            if mode == "LSTM":
                out, *saved = _C.lstm(gi, h0, c0, w, bs, reverse)
                grads = _C.lstm_backward(np.ones_like(out), w, *saved, bs, reverse)
            else:
                out, *saved = _C.gru(gi, h0, w, b, bs, reverse)
                grads = _C.gru_backward(np.ones_like(out), w, *saved, bs, reverse, True)
            res.append([out, *grads])
    finally:
        tg.set_num_threads(before)
    for a, b2 in zip(*res):
        np.testing.assert_array_equal(a, b2)
    if mode == "LSTM":  # and right, not only the same
        want = lstm_ref(*(a.astype(np.float64) for a in (gi, h0, c0, w)), sizes, reverse)
        np.testing.assert_allclose(res[1][0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_and_cells_against_torch(mode, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tdt, gdt = getattr(torch, dtype), getattr(tg, dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for bidir, layers in ((False, 1), (True, 2)):
        m = getattr(torch.nn, mode)(5, 7, num_layers=layers, bidirectional=bidir).to(tdt)
        mt = getattr(tg.nn, mode)(5, 7, num_layers=layers, bidirectional=bidir).to(gdt)
        mt.load_state_dict({k: tg.from_numpy(v.detach().numpy().copy()) for k, v in m.state_dict().items()})
        seqs = [torch.randn(n, 5, dtype=tdt) for n in (6, 4, 4, 1)]
        packed = torch.nn.utils.rnn.pack_sequence(seqs)
        packed_t = tg.nn.utils.rnn.pack_sequence([tg.from_numpy(s.numpy().copy()) for s in seqs])
        out, hn = m(packed)
        out_t, hn_t = mt(packed_t)
        hn, hn_t = (hn, hn_t) if mode == "GRU" else (torch.cat(hn), tg.cat(hn_t))
        (out.data.sum() + (hn ** 2).sum()).backward()
        (out_t.data.sum() + (hn_t ** 2).sum()).backward()
        np.testing.assert_allclose(out_t.data.detach().numpy(), out.data.detach().numpy(), **tol)
        np.testing.assert_allclose(hn_t.detach().numpy(), hn.detach().numpy(), **tol)
        for (name, p), pt in zip(m.named_parameters(), mt.parameters()):
            np.testing.assert_allclose(pt.grad.numpy(), p.grad.numpy(), err_msg=name, **tol)
    cell = getattr(torch.nn, mode + "Cell")(5, 7).to(tdt)
    cell_t = getattr(tg.nn, mode + "Cell")(5, 7).to(gdt)
    cell_t.load_state_dict({k: tg.from_numpy(v.detach().numpy().copy()) for k, v in cell.state_dict().items()})
    x = torch.randn(3, 5, dtype=tdt)
    y, y_t = cell(x), cell_t(tg.from_numpy(x.numpy().copy()))
    y, y_t = (y, y_t) if mode == "GRU" else (torch.cat(y, 1), tg.cat(y_t, 1))
    np.testing.assert_allclose(y_t.detach().numpy(), y.detach().numpy(), **tol)


def test_bad_input_raises_naming_the_op():
    f = np.zeros
    with pytest.raises(ValueError, match="lstm: batch_sizes must be positive and non-increasing"):
        _C.lstm(f((5, 8), np.float32), f((2, 2), np.float32), f((2, 2), np.float32), f((8, 2), np.float32),
                np.array([2, 3], np.int64), False)
    with pytest.raises(ValueError, match=r"lstm: gates must have shape \(5, 8\)"):
        _C.lstm(f((4, 8), np.float32), f((3, 2), np.float32), f((3, 2), np.float32), f((8, 2), np.float32),
                np.array([3, 2], np.int64), False)
    with pytest.raises(ValueError, match="gru: dtypes differ"):
        _C.gru(f((2, 6), np.float32), f((2, 2), np.float64), f((6, 2), np.float32), None, np.array([2], np.int64),
               False)
    with pytest.raises(ValueError, match=r"gru: weight_hh must have shape \(3 \* hidden_size"):
        _C.gru(f((2, 6), np.float32), f((2, 2), np.float32), f((5, 2), np.float32), None, np.array([2], np.int64),
               False)
