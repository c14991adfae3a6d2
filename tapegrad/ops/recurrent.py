"""Recurrent layers as ops: one direction of one LSTM or GRU layer over a whole (packed) sequence
is one op of the table (``lstm``, ``gru``), run by a C++ kernel (csrc/kernels/rnn.cpp) that
does the recurrent GEMM and the gates' nonlinearities and state update per step, and in the
backward the weight's gradient as one GEMM over all steps, as cuDNN does.

A batch is "packed" (the rows of all time steps back to back, plus the number of sequences
running at each step, as ``PackedSequence``), so padded and packed inputs share one path. The
composite recurrence (the one-step cells written in tapegrad ops) serves what the kernel does
not: other dtypes, LSTM projections, Elman RNNs, and ``create_graph``, where the VJPs
differentiate the composite recurrence so that double backward works.
"""
from __future__ import annotations

import numpy as np

from .. import _C
from .._tape import engine, grad_mode
from .._tape.registry import apply, defop
from .shape import cat

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


# ---------------------------------------------------------------- the composite one-step cells
# ``gi`` is the step's input projection x @ W_ih.T with the biases that can be folded into it
# (both for RNN and LSTM; b_ih only for GRU, whose b_hh sits inside r * (W_hn h + b_hn)).
def _rnn_tanh_step(gi, state, w):
    (h,) = state
    return ((gi + h @ w.whh_t).tanh(),)


def _rnn_relu_step(gi, state, w):
    (h,) = state
    return ((gi + h @ w.whh_t).relu(),)


def _lstm_step(gi, state, w):
    h, c = state
    hs = w.hidden_size
    gates = gi + h @ w.whh_t
    s = gates.sigmoid()  # i, f, o from one sigmoid over all four gates (g's is unused)
    c = s[:, hs:2 * hs] * c + s[:, :hs] * gates[:, 2 * hs:3 * hs].tanh()
    h = s[:, 3 * hs:] * c.tanh()
    if w.whr_t is not None:
        h = h @ w.whr_t
    return h, c


def _gru_step(gi, state, w):
    (h,) = state
    hs = w.hidden_size
    gh = h @ w.whh_t
    if w.b_hh is not None:
        gh = gh + w.b_hh
    rz = (gi[:, :2 * hs] + gh[:, :2 * hs]).sigmoid()
    n = (gi[:, 2 * hs:] + rz[:, :hs] * gh[:, 2 * hs:]).tanh()
    return (n + rz[:, hs:] * (h - n),)


STEPS = {"RNN_TANH": _rnn_tanh_step, "RNN_RELU": _rnn_relu_step, "LSTM": _lstm_step, "GRU": _gru_step}


class Weights:
    """One layer-direction's weights as the step functions read them (transposes taken once)."""

    __slots__ = ("whh_t", "b_hh", "whr_t", "hidden_size")

    def __init__(self, w_hh, b_hh, w_hr, hidden_size):
        self.whh_t = w_hh.t()
        self.b_hh = b_hh
        self.whr_t = None if w_hr is None else w_hr.t()
        self.hidden_size = hidden_size


def _row_blocks(x, bounds: list[int]) -> list:
    """``x[bounds[t]:bounds[t+1]]`` for every t. Halving first: a slice's gradient is a
    zero-filled copy of what it was cut from, so cutting T steps straight from x would cost
    T full-size copies in backward; halving keeps that to about log2(T) of them."""
    out: list = []

    def cut(t, lo, hi):
        if hi - lo <= 4:
            base = bounds[lo]
            for k in range(lo, hi):
                out.append(t if hi - lo == 1 else t[bounds[k] - base:bounds[k + 1] - base])
            return
        mid = (lo + hi) // 2
        split = bounds[mid] - bounds[lo]
        cut(t[:split], lo, mid)
        cut(t[split:], mid, hi)

    cut(x, 0, len(bounds) - 1)
    return out


def run_direction(step, gi, batch_sizes, state0, w, reverse):
    """The composite recurrence: one direction of one layer over packed steps. ``state0``: the
    initial (h,) or (h, c) for the whole batch. Returns the outputs (one per step, in time
    order) and the final state, each sequence's taken at its own last step."""
    bounds = [0]
    for n in batch_sizes:
        bounds.append(bounds[-1] + n)
    steps = _row_blocks(gi, bounds)
    full = state0[0].shape[0]
    outs = []
    if not reverse:
        # Sequences end longest-last-first: when the batch shrinks, the rows that drop out
        # are finished; their states are kept and put back in batch order at the end.
        state, finished = state0, []
        for t, n in enumerate(batch_sizes):
            if n < state[0].shape[0]:
                finished.append(tuple(s[n:] for s in state))
                state = tuple(s[:n] for s in state)
            state = step(steps[t], state, w)
            outs.append(state[0])
        if finished:
            finished.append(state)
            state = tuple(cat([f[k] for f in reversed(finished)], 0) for k in range(len(state)))
        return outs, state
    # Backwards in time the batch grows: sequences join with their initial states.
    n0 = batch_sizes[-1]
    state = state0 if n0 == full else tuple(s[:n0] for s in state0)
    for t in range(len(batch_sizes) - 1, -1, -1):
        n, have = batch_sizes[t], state[0].shape[0]
        if n > have:
            state = tuple(cat([s, s0[have:n]], 0) for s, s0 in zip(state, state0))
        state = step(steps[t], state, w)
        outs.append(state[0])
    outs.reverse()
    return outs, state


# ---------------------------------------------------------------- the fused layer ops
class _Saved:
    """What a fused forward keeps for its backward (the kernel's saved arrays), and the last
    backward's gradients: the kernel computes every input's gradient in one reverse pass, while
    the engine asks for them one input at a time with the same ``g``."""

    __slots__ = ("arrays", "last")

    def __init__(self, arrays):
        self.arrays = tuple(arrays)
        self.last = None  # (g, grads); read and replaced whole, so threads never see half of it

    def grads(self, g, compute):
        last = self.last
        if last is not None and last[0] is g:
            return last[1]
        grads = compute()
        self.last = (g, grads)
        return grads


def _composite_grads(saved, g, inputs, out_of):
    """The gradients of the composite recurrence (``out_of(*inputs)``, the op's output) w.r.t. the
    inputs that require grad, recorded (create_graph): a double backward differentiates them."""
    last = saved.last
    if last is not None and last[0] is g:
        return last[1]
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    got = engine.grad([out_of(*inputs)], wanted, [g], create_graph=True, allow_unused=True)
    by_id = {id(t): d for t, d in zip(wanted, got)}
    grads = tuple(None if t is None else by_id.get(id(t)) for t in inputs)
    saved.last = (g, grads)
    return grads


_SIZES: dict = {}


def _sizes(batch_sizes):
    """batch_sizes (a tuple) as the kernels' int64 array, made once per distinct tuple (a cell
    in a loop calls the kernels with the same one every step); read-only, as it is shared."""
    a = _SIZES.get(batch_sizes)
    if a is None:
        if len(_SIZES) >= 256:
            _SIZES.clear()
        a = _SIZES[batch_sizes] = np.asarray(batch_sizes, dtype=np.int64)
        a.flags.writeable = False
    return a


def _lstm_fwd(gi, h0, c0, w_hh, *, batch_sizes, reverse):
    c = np.ascontiguousarray
    out, *saved = _C.lstm(c(gi), c(h0), c(c0), c(w_hh), _sizes(batch_sizes), reverse)
    return out, _Saved(saved)


def _lstm_composite(batch_sizes, reverse):
    def run(gi, h0, c0, w_hh):
        outs, (h, c) = run_direction(_lstm_step, gi, batch_sizes, (h0, c0), Weights(w_hh, None, None, w_hh.shape[1]),
                                     reverse)
        return cat(outs + [h, c], 0)
    return run


def _lstm_vjp(k):
    """The VJP for input k of lstm (gi, h0, c0, w_hh)."""
    def vjp(g, out, gi, h0, c0, w_hh, *, batch_sizes, reverse, aux):
        if grad_mode.is_grad_enabled():
            return _composite_grads(aux, g, (gi, h0, c0, w_hh), _lstm_composite(batch_sizes, reverse))[k]
        c = np.ascontiguousarray
        grads = aux.grads(g, lambda: _C.lstm_backward(c(g._data), c(w_hh._data), *aux.arrays, _sizes(batch_sizes),
                                                      reverse))
        return Tensor._wrap(grads[k])
    return vjp


_lstm = defop("lstm", _lstm_fwd, *(_lstm_vjp(k) for k in range(4)), aux=True)


def _gru_fwd(gi, h0, w_hh, b_hh=None, *, batch_sizes, reverse):
    c = np.ascontiguousarray
    out, *saved = _C.gru(c(gi), c(h0), c(w_hh), None if b_hh is None else c(b_hh), _sizes(batch_sizes), reverse)
    return out, _Saved(saved)


def _gru_composite(batch_sizes, reverse):
    def run(gi, h0, w_hh, b_hh=None):
        outs, (h,) = run_direction(_gru_step, gi, batch_sizes, (h0,), Weights(w_hh, b_hh, None, w_hh.shape[1]),
                                   reverse)
        return cat(outs + [h], 0)
    return run


def _gru_vjp(k):
    """The VJP for input k of gru (gi, h0, w_hh, b_hh)."""
    def vjp(g, out, gi, h0, w_hh, b_hh=None, *, batch_sizes, reverse, aux):
        inputs = (gi, h0, w_hh, b_hh)
        if grad_mode.is_grad_enabled():
            return _composite_grads(aux, g, inputs[:3 if b_hh is None else 4], _gru_composite(batch_sizes, reverse))[k]
        c = np.ascontiguousarray
        grads = aux.grads(g, lambda: _C.gru_backward(c(g._data), c(w_hh._data), *aux.arrays, _sizes(batch_sizes),
                                                     reverse, b_hh is not None))
        return Tensor._wrap(grads[k])
    return vjp


_gru = defop("gru", _gru_fwd, *(_gru_vjp(k) for k in range(4)), aux=True)


def fused(mode, proj_size, *tensors) -> bool:
    """Whether the fused kernel runs this layer: LSTM without projection or GRU, on
    float32/float64 tensors of one dtype."""
    if mode not in ("LSTM", "GRU") or proj_size:
        return False
    dt = tensors[0]._data.dtype
    return dt in (np.float32, np.float64) and all(t is None or t._data.dtype == dt for t in tensors)


def layer(mode, gi, state0, w_hh, b_hh, batch_sizes, reverse):
    """One direction of one LSTM or GRU layer through the fused op: (outputs (N, H), final
    state tuple). ``gi``: the packed input projection (with b_ih, and for LSTM b_hh, added)."""
    batch_sizes = tuple(int(n) for n in batch_sizes)
    n, b = sum(batch_sizes), batch_sizes[0]
    if mode == "LSTM":
        out = apply(_lstm, gi, state0[0], state0[1], w_hh, batch_sizes=batch_sizes, reverse=reverse)
        return out[:n], (out[n:n + b], out[n + b:])
    args = (gi, state0[0], w_hh) if b_hh is None else (gi, state0[0], w_hh, b_hh)
    out = apply(_gru, *args, batch_sizes=batch_sizes, reverse=reverse)
    return out[:n], (out[n:],)


def cell(mode, gi, state, w_hh, b_hh):
    """One step of an LSTM or GRU cell (B rows) through the fused op: the new state tuple only
    (the op's output rows are the step's h, then h_n and c_n: the cell skips the first slice)."""
    b = gi.shape[0]
    if mode == "LSTM":
        out = apply(_lstm, gi, state[0], state[1], w_hh, batch_sizes=(b,), reverse=False)
        return out[b:2 * b], out[2 * b:]
    args = (gi, state[0], w_hh) if b_hh is None else (gi, state[0], w_hh, b_hh)
    return (apply(_gru, *args, batch_sizes=(b,), reverse=False)[b:],)
