"""Recurrent layers: ``RNN`` (tanh or relu), ``LSTM`` (with ``proj_size``), ``GRU`` and their
one-step cells, with PyTorch's constructor arguments, parameter names and shapes
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ``weight_hr_l0``, ...), initialisation, gate order
(LSTM: i, f, g, o; GRU: r, z, n) and return values, so a torch ``state_dict`` loads as is.

Each layer and direction computes its input projection for every time step in one GEMM; the
recurrence of an LSTM (without projection) or GRU in float32/float64 is then one fused op
(``ops/recurrent.py``: a C++ loop over the steps, forward and backward), the others loop in
Python over the one-step cells written in tapegrad ops. Gradients and double backward come
from the op table either way.

Internally a batch is always "packed": the rows of all time steps back to back (T * B rows
for a padded batch) plus the number of sequences running at each step, so padded and
``PackedSequence`` inputs share one loop; a sequence's final state is taken at its own length.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ...ops import creation, recurrent
from ...ops import plain as _ops  # the ops without their out= wrappers
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ..utils.rnn import PackedSequence
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _input_projection(mode, x, w_ih, b_ih, b_hh):
    """x @ W_ih.T plus the biases the step does not add itself (one GEMM for all time steps, one
    node with its bias: F.linear)."""
    if b_ih is None:
        return F.linear(x, w_ih)
    return F.linear(x, w_ih, b_ih if mode == "GRU" else b_ih + b_hh)


def _shape(t) -> tuple:
    return tuple(t.shape)


# ---------------------------------------------------------------- the multi-layer modules
class RNNBase(Module):
    """The shared machinery of ``RNN``, ``LSTM`` and ``GRU`` (``mode``: 'RNN_TANH', 'RNN_RELU',
    'LSTM' or 'GRU')."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        name = "LSTM" if mode == "LSTM" else "GRU" if mode == "GRU" else "RNN"
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=3)
        for arg, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{arg} should be of type bool, got: {type(value).__name__}")
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"{arg} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{arg} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self._name = name
        self.mode = mode
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = int(proj_size)
        directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(directions):
                layer_input = input_size if layer == 0 else real_hidden * directions
                suffix = "_reverse" if direction == 1 else ""
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                names = []
                for base, shape in shapes:
                    pname = f"{base}_l{layer}{suffix}"
                    setattr(self, pname, Parameter(creation.empty(*shape, dtype=dtype, device=device)))
                    names.append(pname)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias from U(-b, b) with ``b = 1 / sqrt(hidden_size)``."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        """The parameters, one list per layer and direction."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """A no-op: cuDNN's contiguous weight buffer has no counterpart on the CPU."""

    # ------------------------------------------------------------ argument checks
    def _state_sizes(self):
        """The sizes of the last dim of h (and c)."""
        h = self.proj_size if self.proj_size > 0 else self.hidden_size
        return (h, self.hidden_size) if self.mode == "LSTM" else (h,)

    def _check_input(self, data, packed):
        w = self.weight_ih_l0
        if data.dtype != w.dtype:
            raise ValueError(f"{self._name}: input dtype ({data.dtype}) does not match weight dtype ({w.dtype}). "
                             f"Convert input: input.to({w.dtype}), or convert model: model.to({data.dtype})")
        want = 2 if packed else 3
        if data.ndim != want:
            raise RuntimeError(f"{self._name}: input must have {want} dimensions, got {data.ndim} "
                               f"(shape {_shape(data)})")
        if data.shape[-1] != self.input_size:
            raise RuntimeError(f"{self._name}: input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {data.shape[-1]} (input shape {_shape(data)})")

    def _initial_state(self, hx, batch, dtype, unbatched):
        """hx as a tuple of (layers * directions, batch, size) tensors, zeros where omitted."""
        sizes = self._state_sizes()
        lead = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            zeros = tuple(creation.zeros(lead, batch, s, dtype=dtype) for s in sizes)
            return zeros
        lstm = self.mode == "LSTM"
        if lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            hx = tuple(hx)
        else:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{self._name}: hx must be a Tensor, got {type(hx).__name__}")
            hx = (hx,)
        want_dim = 2 if unbatched else 3
        if any(h.ndim != want_dim for h in hx):
            dims = ", ".join(f"{h.ndim}-D" for h in hx)
            kind = "unbatched 2-D input" if unbatched else "batched 3-D input"
            what = "hx and cx" if lstm else "hx"
            raise RuntimeError(f"{self._name}: For {kind}, {what} should also be {want_dim}-D but got ({dims}) "
                               f"tensor{'s' if lstm else ''}")
        if unbatched:
            hx = tuple(h.unsqueeze(1) for h in hx)
        for k, (h, s) in enumerate(zip(hx, sizes)):
            want = (lead, batch, s)
            if _shape(h) != want:
                which = "hidden" if not lstm else f"hidden[{k}]"
                raise RuntimeError(f"{self._name}: Expected {which} size {want}, got {list(h.shape)}")
        return hx

    # ------------------------------------------------------------ forward
    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            self._check_input(data, True)
            batch_sizes = [int(n) for n in np.asarray(batch_sizes._data if isinstance(batch_sizes, Tensor)
                                                      else batch_sizes).reshape(-1)]
            batch = batch_sizes[0]
            state0 = self._initial_state(hx, batch, data.dtype, False)
            if sorted_indices is not None:
                state0 = tuple(_ops.index_select(s, 1, sorted_indices) for s in state0)
        else:
            if input.ndim not in (2, 3):
                raise ValueError(f"{self._name}: Expected input to be 2D or 3D, got {input.ndim}D instead "
                                 f"(shape {_shape(input)})")
            unbatched = input.ndim == 2
            batch_dim = 0 if self.batch_first else 1
            if unbatched:
                input = input.unsqueeze(batch_dim)
            self._check_input(input, False)
            x = input.transpose(0, 1) if self.batch_first else input
            steps, batch = x.shape[0], x.shape[1]
            if steps == 0:
                raise RuntimeError(f"{self._name}: the input has no time steps (shape {_shape(input)})")
            data = x.reshape(steps * batch, self.input_size)
            batch_sizes = [batch] * steps
            state0 = self._initial_state(hx, batch, data.dtype, unbatched)
        out, finals = self._layers(data, batch_sizes, state0)
        if packed:
            if unsorted_indices is not None:
                finals = tuple(_ops.index_select(s, 1, unsorted_indices) for s in finals)
            output = PackedSequence(out, input.batch_sizes, sorted_indices, unsorted_indices)
        else:
            output = out.reshape(steps, batch, out.shape[-1])
            if self.batch_first:
                output = output.transpose(0, 1)
            if unbatched:
                output = output.squeeze(batch_dim)
                finals = tuple(s.squeeze(1) for s in finals)
        return (output, finals) if self.mode == "LSTM" else (output, finals[0])

    def _layers(self, data, batch_sizes, state0):
        """All layers and directions over packed ``data``; returns the last layer's output
        rows and the final states stacked as (layers * directions, batch, size)."""
        step = recurrent.STEPS[self.mode]
        directions = 2 if self.bidirectional else 1
        finals = []
        x = data
        all_weights = self.all_weights
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                params = all_weights[k]
                w_ih, w_hh = params[0], params[1]
                b_ih, b_hh = (params[2], params[3]) if self.bias else (None, None)
                w_hr = params[-1] if self.proj_size > 0 else None
                gi = _input_projection(self.mode, x, w_ih, b_ih, b_hh)
                s0 = tuple(s[k] for s in state0)
                if recurrent.fused(self.mode, self.proj_size, gi, w_hh, b_hh, *s0):
                    out, final = recurrent.layer(self.mode, gi, s0, w_hh, b_hh, batch_sizes, direction == 1)
                else:
                    w = recurrent.Weights(w_hh, b_hh, w_hr, self.hidden_size)
                    steps, final = recurrent.run_direction(step, gi, batch_sizes, s0, w, reverse=direction == 1)
                    out = _ops.cat(steps, 0) if len(steps) > 1 else steps[0]
                outs.append(out)
                finals.append(final)
            x = outs[0] if directions == 1 else _ops.cat(outs, 1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        stacked = tuple(_ops.stack([f[j] for f in finals], 0) for j in range(len(finals[0])))
        return x, stacked

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """An Elman RNN, ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu), over
    (T, B, input_size) (``batch_first``: (B, T, input_size)), (T, input_size) unbatched, or a
    ``PackedSequence``. Returns ``(output, h_n)``.

    >>> rnn = tapegrad.nn.RNN(10, 20, 2)
    >>> output, hn = rnn(tapegrad.randn(5, 3, 10), tapegrad.randn(2, 3, 20))
    >>> output.shape, hn.shape
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype)


class LSTM(RNNBase):
    """A long short-term memory layer (gates i, f, g, o, as PyTorch), optionally projecting h
    to ``proj_size`` (``weight_hr``). Returns ``(output, (h_n, c_n))``.

    >>> lstm = tapegrad.nn.LSTM(10, 20, 2, batch_first=True)
    >>> output, (hn, cn) = lstm(tapegrad.randn(3, 5, 10))
    >>> output.shape, hn.shape, cn.shape
    ((3, 5, 20), (2, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """A gated recurrent unit layer (gates r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).
    Returns ``(output, h_n)``.

    >>> gru = tapegrad.nn.GRU(10, 20, bidirectional=True)
    >>> output, hn = gru(tapegrad.randn(5, 3, 10))
    >>> output.shape, hn.shape
    ((5, 3, 40), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype)


# ---------------------------------------------------------------- the cells
class RNNCellBase(Module):
    """The shared parameters (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``) and checks of the cells."""

    _mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(creation.empty(num_chunks * hidden_size, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(creation.empty(num_chunks * hidden_size, hidden_size, dtype=dtype,
                                                  device=device))
        if bias:
            self.bias_ih = Parameter(creation.empty(num_chunks * hidden_size, dtype=dtype, device=device))
            self.bias_hh = Parameter(creation.empty(num_chunks * hidden_size, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias from U(-b, b) with ``b = 1 / sqrt(hidden_size)``."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _cell(self, input, states, what):
        """One step: checks, unbatched inputs, zeros for omitted states; ``states`` a tuple or None."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead "
                             f"(shape {_shape(input)})")
        if states is not None:
            for k, s in enumerate(states):
                if s.ndim not in (1, 2):
                    raise ValueError(f"{name}: Expected {what.format(k)} to be 1D or 2D, got {s.ndim}D instead "
                                     f"(shape {_shape(s)})")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
        if input.shape[1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[1]} expected "
                               f"{self.input_size} (input shape {_shape(input)})")
        batch = input.shape[0]
        if states is None:
            z = creation.zeros(batch, self.hidden_size, dtype=input.dtype)
            states = (z,) * (2 if self._mode == "LSTM" else 1)
        elif not batched:
            states = tuple(s.unsqueeze(0) for s in states)
        for k, s in enumerate(states):
            if _shape(s) != (batch, self.hidden_size):
                raise RuntimeError(f"{name}: Expected {what.format(k)} of shape {(batch, self.hidden_size)} "
                                   f"(batch, hidden_size), got {_shape(s)} (input shape {_shape(input)})")
        gi = _input_projection(self._mode, input, self.weight_ih, self.bias_ih, self.bias_hh)
        if recurrent.fused(self._mode, 0, gi, self.weight_hh, self.bias_hh, *states):
            out = recurrent.cell(self._mode, gi, states, self.weight_hh, self.bias_hh)
        else:
            w = recurrent.Weights(self.weight_hh, self.bias_hh, None, self.hidden_size)
            out = recurrent.STEPS[self._mode](gi, states, w)
        return out if batched else tuple(s.squeeze(0) for s in out)


class RNNCell(RNNCellBase):
    """One step of an Elman RNN: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu).

    >>> cell = tapegrad.nn.RNNCell(10, 20)
    >>> cell(tapegrad.randn(3, 10)).shape
    (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    @property
    def _mode(self):
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"

    def forward(self, input, hx=None):
        return self._cell(input, None if hx is None else (hx,), "hidden")[0]


class LSTMCell(RNNCellBase):
    """One LSTM step; returns ``(h', c')``.

    >>> cell = tapegrad.nn.LSTMCell(10, 20)
    >>> h, c = cell(tapegrad.randn(3, 10))
    """

    _mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        return self._cell(input, None if hx is None else tuple(hx), "hx[{}]")


class GRUCell(RNNCellBase):
    """One GRU step; returns ``h'``.

    >>> cell = tapegrad.nn.GRUCell(10, 20)
    >>> cell(tapegrad.randn(3, 10)).shape
    (3, 20)
    """

    _mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        return self._cell(input, None if hx is None else (hx,), "hidden")[0]
