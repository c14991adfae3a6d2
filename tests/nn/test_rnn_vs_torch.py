"""nn.RNN / LSTM / GRU, their cells and nn.utils.rnn against PyTorch: the same weights (torch's
state_dict loaded into tapegrad), then outputs, final states and the gradients of the inputs,
initial states and every parameter in float64, for each layer type and option (layers,
bidirectional, batch_first, proj_size, packed variable lengths, unbatched, given or omitted
initial states). Also: state_dict keys, a gradcheck and gradgradcheck through a tiny LSTM,
and the errors for wrong sizes. The torch comparisons skip without PyTorch."""
import importlib.util

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import gradcheck, gradgradcheck

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed")
if HAVE_TORCH:
    import torch
    import torch.nn.utils.rnn as trnn
import tapegrad.nn.utils.rnn as grnn  # noqa: E402

T, B, I, H = 5, 3, 4, 5
LENGTHS = [3, 5, 2]  # unsorted on purpose: packing sorts, the layers put states back in order
KINDS = {"rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}), "lstm": ("LSTM", {}),
         "gru": ("GRU", {})}
OPTIONS = {
    "plain": {},
    "2layers_bidir_hx": dict(num_layers=2, bidirectional=True, hx=True),
    "batch_first_nobias_hx": dict(batch_first=True, bias=False, hx=True),
    "packed_2layers_bidir_hx": dict(num_layers=2, bidirectional=True, packed=True, hx=True),
    "packed_batch_first": dict(batch_first=True, packed=True),
    "unbatched_2layers_hx": dict(num_layers=2, unbatched=True, hx=True),
    "unbatched_bidir_batch_first": dict(bidirectional=True, unbatched=True, batch_first=True),
    "2layers_dropout_eval": dict(num_layers=2, dropout=0.5, eval=True),
}
CASES = [(k, o) for k in KINDS for o in OPTIONS] + [
    ("lstm", "proj_2layers_bidir_hx"), ("lstm", "proj_packed_hx"), ("lstm", "proj_unbatched")]
OPTIONS.update({"proj_2layers_bidir_hx": dict(proj_size=3, num_layers=2, bidirectional=True, hx=True),
                "proj_packed_hx": dict(proj_size=2, packed=True, hx=True, bidirectional=True),
                "proj_unbatched": dict(proj_size=2, unbatched=True)})


def _make(M, kind, opts):
    cls, extra = KINDS[kind]
    kw = {k: v for k, v in opts.items() if k in ("num_layers", "bidirectional", "batch_first", "bias", "dropout",
                                                   "proj_size")}
    return getattr(M.nn, cls)(I, H, **kw, **extra)


def _pair(make):
    """The same module in both libraries: tapegrad's loads torch's (float64) state_dict."""
    tm = make(torch).double()
    gm = make(tg).double()
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    return tm, gm


def _run(M, m, kind, opts, arrays):
    """Forward and backward of the case in library M; returns outputs, then input/state/param grads."""
    x = M.tensor(arrays["x"], requires_grad=True)
    states = [M.tensor(a, requires_grad=True) for a in arrays["states"]]
    hx = None
    if opts.get("hx"):
        hx = tuple(states) if kind == "lstm" else states[0]
    utils = trnn if M is torch else grnn
    if opts.get("packed"):
        inp = utils.pack_padded_sequence(x, LENGTHS, batch_first=opts.get("batch_first", False),
                                         enforce_sorted=False)
    else:
        inp = x
    out, hn = m(inp, hx)
    if opts.get("packed"):
        out, lengths = utils.pad_packed_sequence(out, batch_first=opts.get("batch_first", False))
        assert lengths.tolist() == LENGTHS
    finals = list(hn) if kind == "lstm" else [hn]
    res = [out] + finals
    loss = sum((r * M.tensor(np.random.default_rng(7 + i).standard_normal(tuple(r.shape)))).sum()
               for i, r in enumerate(res))
    loss.backward()
    grads = [x.grad] + [s.grad if opts.get("hx") else None for s in states]
    grads += [p.grad for _, p in m.named_parameters()]
    return [r.detach().numpy() for r in res], [None if g is None else g.numpy() for g in grads]


@needs_torch
@pytest.mark.parametrize("kind,option", CASES, ids=[f"{k}-{o}" for k, o in CASES])
def test_layer_matches_torch(kind, option):
    opts = OPTIONS[option]
    tm, gm = _pair(lambda M: _make(M, kind, opts))
    if opts.get("eval"):
        tm.eval(), gm.eval()
    dirs = 2 if opts.get("bidirectional") else 1
    lead = opts.get("num_layers", 1) * dirs
    r = np.random.default_rng(3)
    x_shape = (B, T, I) if opts.get("batch_first") else (T, B, I)
    if opts.get("unbatched"):
        x_shape = (T, I)
    hsize = opts.get("proj_size") or H
    s_shapes = [(lead, hsize), (lead, H)] if opts.get("unbatched") else [(lead, B, hsize), (lead, B, H)]
    arrays = {"x": r.standard_normal(x_shape), "states": [r.standard_normal(s) for s in s_shapes]}
    if kind != "lstm":
        arrays["states"] = arrays["states"][:1]
    (t_out, t_grads), (g_out, g_grads) = (_run(M, m, kind, opts, arrays) for M, m in ((torch, tm), (tg, gm)))
    names = ["output", "h_n", "c_n"]
    for name, a, b in zip(names, g_out, t_out):
        assert a.shape == b.shape, f"{name}: {a.shape} vs torch {b.shape}"
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
    gnames = ["input"] + [f"state{k}" for k in range(len(arrays["states"]))] + [n for n, _ in tm.named_parameters()]
    assert [n for n, _ in gm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    for name, a, b in zip(gnames, g_grads, t_grads):
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"grad of {name}")


CELLS = {"rnn_tanh": ("RNNCell", {}), "rnn_relu": ("RNNCell", {"nonlinearity": "relu"}), "lstm": ("LSTMCell", {}),
         "gru": ("GRUCell", {})}
CELL_OPTS = {"batched_hx": dict(hx=True), "unbatched": dict(unbatched=True),
             "unbatched_hx_nobias": dict(unbatched=True, hx=True, bias=False)}


@needs_torch
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("option", sorted(CELL_OPTS))
def test_cell_matches_torch(kind, option):
    opts = CELL_OPTS[option]
    cls, extra = CELLS[kind]
    tm, gm = _pair(lambda M: getattr(M.nn, cls)(I, H, bias=opts.get("bias", True), **extra))
    r = np.random.default_rng(5)
    lead = () if opts.get("unbatched") else (B,)
    xa = r.standard_normal(lead + (I,))
    sa = [r.standard_normal(lead + (H,)) for _ in range(2 if kind == "lstm" else 1)]
    res = {}
    for M, m in ((torch, tm), (tg, gm)):
        x = M.tensor(xa, requires_grad=True)
        s = [M.tensor(a, requires_grad=True) for a in sa]
        hx = None if not opts.get("hx") else (tuple(s) if kind == "lstm" else s[0])
        out = m(x, hx)
        outs = list(out) if kind == "lstm" else [out]
        sum(((o * (k + 1.5)) ** 2).sum() for k, o in enumerate(outs)).backward()
        grads = [x.grad] + [p.grad for p in m.parameters()] + ([t.grad for t in s] if hx is not None else [])
        res[M] = [o.detach().numpy() for o in outs] + [g.numpy() for g in grads]
    assert len(res[tg]) == len(res[torch])
    for a, b in zip(res[tg], res[torch]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch, inp, hidden", [(21, 13, 67), (1, 3, 100), (7, 130, 33)])
def test_cell_loop_odd_sizes_matches_torch(cls, dtype, batch, inp, hidden):
    """A cell stepped over 4 steps in Python, as a decoder does (each step one call of the fused
    kernel with a single step), odd sizes, a non-contiguous input; outputs and every gradient."""
    torch.manual_seed(batch)  # the weights, whatever ran before
    tm = getattr(torch.nn, cls)(inp, hidden).to(getattr(torch, dtype))
    gm = getattr(tg.nn, cls)(inp, hidden).to(getattr(tg, dtype))
    gm.load_state_dict({k: tg.from_numpy(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    r = np.random.default_rng(batch * 1000 + hidden)
    xa = r.standard_normal((inp, 4, batch)).astype(dtype)  # x[t] = xa[:, t].T: a strided view
    sa = [r.standard_normal((batch, hidden)).astype(dtype) for _ in range(2 if cls == "LSTMCell" else 1)]
    res = {}
    for M, m in ((torch, tm), (tg, gm)):
        x = M.tensor(xa, requires_grad=True)
        s = [M.tensor(a, requires_grad=True) for a in sa]
        state, loss = tuple(s) if cls == "LSTMCell" else s[0], 0
        for t in range(4):
            state = m(x[:, t].t(), state)
            outs = state if cls == "LSTMCell" else (state,)
            loss = loss + sum(((o * (k + t + 1.5)) ** 2).sum() for k, o in enumerate(outs))
        loss.backward()
        res[M] = [o.detach().numpy() for o in outs] + [g.grad.numpy() for g in [x, *s, *m.parameters()]]
    # float32: the gradients reach hundreds (the loss weights up to 7.5, squared, over 4 steps)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(res[tg], res[torch], strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, **tol)


@needs_torch
@pytest.mark.parametrize("make", [
    lambda M: M.nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2), lambda M: M.nn.GRU(3, 4, bias=False),
    lambda M: M.nn.RNN(3, 4, 3, "relu", True, True, 0.1), lambda M: M.nn.LSTMCell(3, 4),
    lambda M: M.nn.GRUCell(3, 4, bias=False), lambda M: M.nn.RNNCell(3, 4, nonlinearity="relu")])
def test_state_dict_keys_shapes_and_repr_match_torch(make):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tg.manual_seed(0)  # the spread check below is statistical: a seed keeps it reproducible
        tm, gm = make(torch), make(tg)
    assert [(k, tuple(v.shape)) for k, v in gm.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in tm.state_dict().items()]
    assert repr(gm) == repr(tm)
    bound = 1 / 4 ** 0.5  # PyTorch's init: U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter
    assert all(p.dtype == tg.float32 for p in gm.parameters())
    flat = np.concatenate([p.detach().numpy().reshape(-1) for p in gm.parameters()])
    # U(-b, b) has std b/sqrt(3) = 0.58 b; with 32 parameters (RNNCell) the sample std falls
    # below 0.5 b about one draw in twelve, below b/3 only past four standard errors.
    assert np.all(np.abs(flat) <= bound) and np.std(flat) > bound / 3
    if hasattr(tm, "all_weights"):
        assert [[tuple(p.shape) for p in ws] for ws in gm.all_weights] == \
            [[tuple(p.shape) for p in ws] for ws in tm.all_weights]
        gm.flatten_parameters()


def test_lstm_gradcheck_and_gradgradcheck():
    tg.manual_seed(0)
    m = tg.nn.LSTM(2, 3, bidirectional=True, proj_size=1).double()
    x = tg.randn(3, 1, 2, dtype=tg.float64, requires_grad=True)
    h0 = tg.randn(2, 1, 1, dtype=tg.float64, requires_grad=True)
    c0 = tg.randn(2, 1, 3, dtype=tg.float64, requires_grad=True)

    def f_ops(x, h0, c0):
        out, (h, c) = m(x, (h0, c0))
        return out.sum() + (h * h).sum() + c.sum()

    assert gradcheck(f_ops, (x, h0, c0))
    assert gradgradcheck(f_ops, (x, h0, c0))
    cell = tg.nn.GRUCell(2, 3).double()
    assert gradgradcheck(lambda x, h: cell(x, h), (tg.randn(2, 2, dtype=tg.float64, requires_grad=True),
                                                   tg.randn(2, 3, dtype=tg.float64, requires_grad=True)))


def test_parameter_gradients_by_finite_differences():
    """Every parameter's gradient in a 2-layer bidirectional GRU on a packed batch."""
    tg.manual_seed(1)
    m = tg.nn.GRU(2, 3, 2, bidirectional=True).double()
    x = tg.randn(4, 3, 2, dtype=tg.float64)
    packed = grnn.pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)
    out, h = m(packed)
    loss = (grnn.pad_packed_sequence(out)[0] ** 2).sum() + h.sum()
    loss.backward()
    eps = 1e-6
    for name, p in m.named_parameters():
        flat = p._data.reshape(-1)
        for j in (0, flat.size // 2, flat.size - 1):
            old = flat[j]
            vals = []
            for d in (eps, -eps):
                flat[j] = old + d
                with tg.no_grad():
                    o, hh = m(packed)
                    vals.append(float((grnn.pad_packed_sequence(o)[0] ** 2).sum() + hh.sum()))
            flat[j] = old
            assert abs((vals[0] - vals[1]) / (2 * eps) - p.grad.numpy().reshape(-1)[j]) < 1e-6, name


def test_dropout_between_layers_only_in_training():
    tg.manual_seed(0)
    m = tg.nn.LSTM(3, 4, 2, dropout=0.5)
    x = tg.randn(5, 2, 3)
    m.eval()
    a, b = m(x)[0], m(x)[0]
    assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    m.train()
    c = m(x)[0]
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        tg.nn.GRU(3, 4, dropout=0.2)


def test_wrong_sizes_raise_clear_errors():
    lstm = tg.nn.LSTM(4, 5, 2)
    with pytest.raises(RuntimeError, match=r"LSTM: input.size\(-1\) must be equal to input_size. Expected 4, "
                                           r"got 3 \(input shape \(6, 2, 3\)\)"):
        lstm(tg.randn(6, 2, 3))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D"):
        lstm(tg.randn(6, 2, 3, 4))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected hidden\[0\] size \(2, 2, 5\), got \[1, 2, 5\]"):
        lstm(tg.randn(6, 2, 4), (tg.zeros(1, 2, 5), tg.zeros(2, 2, 5)))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected hidden\[1\] size \(2, 2, 5\), got \[2, 3, 5\]"):
        lstm(tg.randn(6, 2, 4), (tg.zeros(2, 2, 5), tg.zeros(2, 3, 5)))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx and cx should also be 2-D"):
        lstm(tg.randn(6, 4), (tg.zeros(2, 1, 5), tg.zeros(2, 1, 5)))
    gru = tg.nn.GRU(4, 5, batch_first=True)
    with pytest.raises(RuntimeError, match=r"GRU: Expected hidden size \(1, 6, 5\), got \[1, 2, 5\]"):
        gru(tg.randn(6, 2, 4), tg.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="RNN: input dtype"):
        tg.nn.RNN(4, 5)(tg.randn(2, 1, 4, dtype=tg.float64))
    with pytest.raises(RuntimeError, match=r"LSTMCell: input has inconsistent input_size: got 3 expected 4"):
        tg.nn.LSTMCell(4, 5)(tg.randn(2, 3))
    with pytest.raises(RuntimeError, match=r"GRUCell: Expected hidden of shape \(2, 5\)"):
        tg.nn.GRUCell(4, 5)(tg.randn(2, 4), tg.zeros(3, 5))
    with pytest.raises(ValueError, match="RNNCell: Expected input to be 1D or 2D, got 3D"):
        tg.nn.RNNCell(4, 5)(tg.randn(1, 2, 4))
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        tg.nn.LSTM(4, 5, proj_size=5)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        tg.nn.RNN(4, 5, nonlinearity="gelu")
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        grnn.pack_padded_sequence(tg.randn(4, 2, 3), [2, 4])
    with pytest.raises(ValueError, match="total_length=2"):
        grnn.pad_packed_sequence(grnn.pack_sequence([tg.ones(3, 1)]), total_length=2)


# ------------------------------------------------------------------ nn.utils.rnn
@needs_torch
def test_pad_pack_helpers_match_torch():
    r = np.random.default_rng(4)
    arrays = [r.standard_normal((n, 2)) for n in (2, 4, 1, 4)]
    res = {}
    for M, U in ((torch, trnn), (tg, grnn)):
        seqs = [M.tensor(a, requires_grad=True) for a in arrays]
        outs = [U.pad_sequence(seqs), U.pad_sequence(seqs, batch_first=True, padding_value=-1.0),
                U.pad_sequence(seqs, batch_first=True, padding_side="left")]
        packed = U.pack_sequence(seqs, enforce_sorted=False)
        outs += [packed.data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices]
        padded, lengths = U.pad_packed_sequence(packed, batch_first=True, padding_value=9.0, total_length=6)
        outs += [padded, lengths]
        srt = U.pack_padded_sequence(outs[0][:, [1, 3, 0, 2]], [4, 4, 2, 1])
        outs += [srt.data, srt.batch_sizes, U.pad_packed_sequence(srt)[0]]
        outs += U.unpack_sequence(packed) + U.unpad_sequence(outs[1], M.tensor([2, 4, 1, 4]), batch_first=True)
        loss = sum((o.double() * (k + 1)).sum() ** 2 for k, o in enumerate(outs) if o.dtype == M.float64)
        loss.backward()
        res[M] = [None if o is None else o.detach().numpy() for o in outs] + [s.grad.numpy() for s in seqs]
    for k, (a, b) in enumerate(zip(res[tg], res[torch])):
        assert (a is None) == (b is None), k
        if a is not None:
            assert a.shape == b.shape and a.dtype == b.dtype, (k, a.shape, b.shape, a.dtype, b.dtype)
            np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=f"item {k}")


def test_packed_final_state_is_taken_at_each_sequence_length():
    """Without torch too: h_n of a packed batch equals running each sequence alone."""
    tg.manual_seed(2)
    m = tg.nn.LSTM(2, 3, bidirectional=True).double()
    seqs = [tg.randn(n, 2, dtype=tg.float64) for n in (2, 5, 3)]
    out, (h, c) = m(grnn.pack_sequence(seqs, enforce_sorted=False))
    padded, lengths = grnn.pad_packed_sequence(out, batch_first=True)
    assert lengths.tolist() == [2, 5, 3]
    for b, s in enumerate(seqs):
        o1, (h1, c1) = m(s)
        np.testing.assert_allclose(h.detach().numpy()[:, b], h1.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(c.detach().numpy()[:, b], c1.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(padded.detach().numpy()[b, :s.shape[0]], o1.detach().numpy(), rtol=1e-12)
        assert not padded.detach().numpy()[b, s.shape[0]:].any()


def test_long_sequence_backward_is_not_quadratic():
    """A 400-step LSTM trains through backward at a sane cost (per-step slices of the input
    projection are cut by halving) and the gradient of the first input is finite and nonzero."""
    m = tg.nn.LSTM(4, 8)
    x = tg.randn(400, 2, 4, requires_grad=True)
    out, _ = m(x)
    out[-1].sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all() and np.abs(g[-1]).sum() > 0
