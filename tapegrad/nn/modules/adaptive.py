"""``AdaptiveLogSoftmaxWithLoss``: Grave et al.'s efficient softmax for large vocabularies, with
PyTorch's parameter layout (``head`` and ``tail.<i>.0/1``), so its checkpoints load."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ...ops import plain as _ops  # the ops without their out= wrappers
from ...tensor import Tensor
from .. import functional as F
from .container import ModuleList, Sequential
from .linear import Linear
from .module import Module

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


def _index(a) -> Tensor:
    return Tensor._wrap(np.ascontiguousarray(a, dtype=np.int64))


class AdaptiveLogSoftmaxWithLoss(Module):
    """The frequent classes (below ``cutoffs[0]``) get a full softmax in the ``head``; the others
    fall into clusters, each reached through one head entry and scored by a smaller projection
    (in_features / div_value**(i+1) wide). ``forward(input, target)`` returns
    ``(output, loss)``: the target's log-probability per row and the mean negative of it.

    >>> asm = tapegrad.nn.AdaptiveLogSoftmaxWithLoss(16, 100, cutoffs=[10, 40])
    >>> out, loss = asm(tapegrad.randn(8, 16), tapegrad.randint(0, 100, (8,)))
    """

    def __init__(self, in_features: int, n_classes: int, cutoffs, div_value: float = 4.0, head_bias: bool = False,
                 device=None, dtype=None):
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an increasing order, "
                             "where each value is between 1 and n_classes-1")
        self.in_features, self.n_classes = in_features, n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value, self.head_bias = div_value, head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(in_features, self.head_size, bias=head_bias, dtype=dtype)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hsz = int(in_features // (div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(in_features, hsz, bias=False, dtype=dtype),
                                        Linear(hsz, osz, bias=False, dtype=dtype)))

    def reset_parameters(self) -> None:
        """Draw new weights for the head and every cluster's projections."""
        self.head.reset_parameters()
        for i2h, h2o in self.tail:
            i2h.reset_parameters()
            h2o.reset_parameters()

    def forward(self, input_, target_):
        if target_.ndim == 1:
            if input_.shape[0] != target_.shape[0]:
                raise RuntimeError("Input and target should have the same size in the batch dimension.")
            if input_.ndim != 2:
                raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with size "
                                   f"{tuple(input_.shape)}")
        elif target_.ndim == 0:
            if input_.ndim != 1:
                raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with size "
                                   f"{tuple(input_.shape)}")
        else:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        batched = target_.ndim > 0
        input = input_ if batched else input_.unsqueeze(0)
        target = (target_._data if batched else target_._data.reshape(1)).astype(np.int64)
        n = target.shape[0]
        gather = target.copy()
        rows, values = [], []
        bounds = [0] + self.cutoffs
        for i in range(len(bounds) - 1):
            r = np.nonzero((target >= bounds[i]) & (target < bounds[i + 1]))[0]
            if r.size == 0:
                continue
            rows.append(r)
            if i == 0:
                values.append(_ops.zeros(r.size, dtype=input.dtype))
                continue
            cluster = F.log_softmax(self.tail[i - 1](_ops.index_select(input, 0, _index(r))), 1)
            values.append(_ops.gather(cluster, 1, _index(target[r, None] - bounds[i])).squeeze(1))
            gather[r] = self.shortlist_size + i - 1
        used = sum(r.size for r in rows)
        if used != n:
            raise RuntimeError(f"Target values should be in [0, {self.n_classes - 1}], but values in range "
                               f"[{target.min()}, {target.max()}] were found. ")
        order = np.concatenate(rows)
        inverse = np.empty(n, np.int64)
        inverse[order] = np.arange(n)
        output = _ops.index_select(_ops.cat(values), 0, _index(inverse))
        head = F.log_softmax(self.head(input), 1)
        output = output + _ops.gather(head, 1, _index(gather[:, None])).squeeze(1)
        loss = (-output).mean()
        return _ASMoutput(output if batched else output.squeeze(0), loss)

    def _get_full_log_prob(self, input, head_output):
        head = F.log_softmax(head_output, 1)
        parts = [head[:, :self.shortlist_size]]
        for i in range(self.n_clusters):
            parts.append(F.log_softmax(self.tail[i](input), 1) + head[:, self.shortlist_size + i].unsqueeze(1))
        return _ops.cat(parts, 1)

    def log_prob(self, input):
        """Log-probabilities of all ``n_classes`` classes, ``(N, n_classes)`` (or ``(n_classes,)``)."""
        batched = input.ndim > 1
        x = input if batched else input.unsqueeze(0)
        out = self._get_full_log_prob(x, self.head(x))
        return out if batched else out.squeeze(0)

    def predict(self, input):
        """The most likely class of each row: the head's argmax when it is a shortlist class, the
        full distribution's otherwise (as PyTorch, which spares the clusters when it can)."""
        head_output = self.head(input)
        out = head_output._data.argmax(1)
        outside = out >= self.shortlist_size
        if outside.any():
            rows = _index(np.nonzero(outside)[0])
            full = self._get_full_log_prob(_ops.index_select(input, 0, rows), _ops.index_select(head_output, 0, rows))
            out[outside] = full._data.argmax(1)
        return _index(out)
