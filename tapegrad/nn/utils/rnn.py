"""``tapegrad.nn.utils.rnn``: variable-length batches for the recurrent layers, as
``torch.nn.utils.rnn``.

A ``PackedSequence`` holds the time steps of a batch of sequences back to back, longest
sequence first: ``data`` is (sum of lengths, *), and ``batch_sizes[t]`` says how many
sequences are still running at step t. Every conversion here is one gather
(``index_select``) of the rows, so gradients flow through packing and padding.

>>> seqs = [tapegrad.ones(3, 2), tapegrad.ones(1, 2)]
>>> packed = pack_sequence(seqs)
>>> packed.batch_sizes
tensor([2, 1, 1])
>>> pad_packed_sequence(packed)[0].shape
(3, 2, 2)
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ...ops import creation
from ...ops import plain as _ops  # the ops without their out= wrappers
from ...tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]


def _int64(values) -> Tensor:
    return Tensor._wrap(np.asarray(values, dtype=np.int64).reshape(-1))


def _as_array(x) -> np.ndarray:
    return np.asarray(x._data if isinstance(x, Tensor) else x).astype(np.int64).reshape(-1)


def invert_permutation(permutation):
    """The permutation that undoes ``permutation`` (None stays None)."""
    if permutation is None:
        return None
    p = _as_array(permutation)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.size)
    return _int64(inv)


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """``(data, batch_sizes, sorted_indices, unsorted_indices)``; build it with
    ``pack_padded_sequence`` or ``pack_sequence`` rather than by hand.

    ``sorted_indices[k]`` is the position in the caller's batch of the k-th longest sequence
    (None: the batch was already sorted); ``unsorted_indices`` is its inverse.
    """

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PackedSequence(data, batch_sizes) given as one tuple
            data, batch_sizes = data
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = _int64(batch_sizes)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        return self if data is self.data else type(self)(data, self.batch_sizes, self.sorted_indices,
                                                         self.unsorted_indices)

    def cpu(self):
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def detach(self):
        return type(self)(self.data.detach(), self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False


def _lengths_of(batch_sizes: np.ndarray) -> np.ndarray:
    """Each (sorted) sequence's length from the number of sequences running at each step."""
    return (batch_sizes[None, :] > np.arange(batch_sizes[0])[:, None]).sum(1)


def _gather_rows(x: Tensor, rows: np.ndarray, shape) -> Tensor:
    """``x``'s rows ``rows`` (one index_select), reshaped to ``shape`` + x's trailing dims."""
    out = _ops.index_select(x, 0, _int64(rows))
    return out.reshape(*shape, *x.shape[1:])


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"):
    """Stack sequences of shapes (L_i, *) into (T, B, *) (or (B, T, *) with ``batch_first``),
    filling the steps past each sequence's end with ``padding_value``.

    >>> pad_sequence([tapegrad.ones(3), tapegrad.ones(1)], batch_first=True)
    tensor([[1., 1., 1.],
            [1., 0., 0.]])
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if s.ndim == 0 or tuple(s.shape[1:]) != trailing:
            raise RuntimeError(f"pad_sequence: every sequence must have shape (L, *{trailing}), got "
                               f"{tuple(s.shape)} at position {i} (and {tuple(sequences[0].shape)} at 0)")
    lengths = np.array([s.shape[0] for s in sequences], dtype=np.int64)
    t = int(lengths.max())
    data = _ops.cat(sequences, 0)
    pad_row = creation.full((1,) + trailing, padding_value, dtype=data.dtype)
    n = data.shape[0]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    steps = np.arange(t)[None, :]  # (B, T) grid of source rows, the pad row where past the end
    if padding_side == "right":
        rows = np.where(steps < lengths[:, None], starts[:, None] + steps, n)
    else:
        shift = t - lengths[:, None]
        rows = np.where(steps >= shift, starts[:, None] + steps - shift, n)
    if not batch_first:
        rows = rows.T
    return _gather_rows(_ops.cat([data, pad_row], 0), rows.reshape(-1), rows.shape)


def unpad_sequence(padded_sequences, lengths, batch_first: bool = False):
    """The list of sequences ``pad_sequence`` was given."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[i, :int(n)] for i, n in enumerate(_as_array(lengths))]


def pack_padded_sequence(input, lengths, batch_first: bool = False, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *) with ``batch_first``) of sequences of the
    given lengths. With ``enforce_sorted`` the lengths must be decreasing; otherwise the batch
    is sorted here and the RNN layers put their results back in the caller's order."""
    lengths = _as_array(lengths)
    b_dim, t_dim = (0, 1) if batch_first else (1, 0)
    if input.ndim < 2:
        raise RuntimeError(f"pack_padded_sequence: expected a padded batch of at least 2 dims, got shape "
                           f"{tuple(input.shape)}")
    b, t = input.shape[b_dim], input.shape[t_dim]
    if lengths.size != b:
        raise RuntimeError(f"pack_padded_sequence: expected {b} lengths (the batch size of input shape "
                           f"{tuple(input.shape)}), got {lengths.size}")
    if enforce_sorted:
        if np.any(lengths[:-1] < lengths[1:]):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                               "to sidestep this requirement if you do not need ONNX exportability.")
        order, sorted_indices = np.arange(b), None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = _int64(order)
    sorted_lengths = lengths[order]
    if b and sorted_lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if b and sorted_lengths[0] > t:
        raise RuntimeError(f"pack_padded_sequence: a length of {sorted_lengths[0]} is longer than the padded "
                           f"input's {t} steps (input shape {tuple(input.shape)})")
    batch_sizes = (sorted_lengths[None, :] > np.arange(sorted_lengths[0])[:, None]).sum(1)
    steps = np.repeat(np.arange(batch_sizes.size), batch_sizes)
    who = order[np.concatenate([np.arange(n) for n in batch_sizes])]
    rows = who * t + steps if batch_first else steps * b + who
    flat = input.reshape(b * t, *input.shape[2:])
    return PackedSequence(_gather_rows(flat, rows, (rows.size,)), _int64(batch_sizes), sorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length=None):
    """The inverse of ``pack_padded_sequence``: ``(padded, lengths)``, in the caller's batch
    order, padded to the longest sequence or to ``total_length`` steps."""
    data, batch_sizes, _, unsorted = sequence
    bs = _as_array(batch_sizes)
    lengths = _lengths_of(bs)
    t = bs.size
    if total_length is not None:
        if total_length < t:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {t}")
        t = int(total_length)
    b = int(bs[0])
    pos = np.arange(b) if unsorted is None else _as_array(unsorted)  # sorted position of each output column
    starts = np.concatenate([[0], np.cumsum(bs)[:-1]])
    steps = np.arange(t)[:, None]
    n = data.shape[0]
    rows = np.where(steps < lengths[pos][None, :], starts[np.minimum(steps, bs.size - 1)] + pos[None, :], n)
    if batch_first:
        rows = rows.T
    pad_row = creation.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)
    padded = _gather_rows(_ops.cat([data, pad_row], 0), rows.reshape(-1), rows.shape)
    return padded, _int64(lengths[pos])


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (L_i, *) (decreasing lengths unless ``enforce_sorted=False``)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence):
    """The list of sequences ``pack_sequence`` was given."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
