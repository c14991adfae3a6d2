"""In-place ops. Each bumps the tensor's version counter, so the engine can tell when a tensor
the tape saved was overwritten. While recording, an in-place op on a tensor in the graph is
recorded as its out-of-place op, and the tensor is moved onto the new node ("rebased").
In-place ops on leaves that require grad are refused outside ``no_grad()``.

Views share their base's version counter. A write through a view is recorded on the base too
(PyTorch's CopySlices), and a view whose base was written since its graph was set takes its
graph from the base's new one the next time it is used (``_regenerate_view``, called by the
tape), as PyTorch regenerates a view's ``grad_fn``: both hold for bases that don't require grad.

``inplace`` is the rule every in-place form follows: the ones ``surface.public(inplace=True)``
generates and the few written out beside their ops (``fill_``, ``masked_fill_``, ``unsqueeze_``, ...).
"""
from __future__ import annotations

import builtins
import weakref

import numpy as np

from .. import _C, _dtype
from .._tape import grad_mode
from .._tape.registry import apply

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
_setitem = None  # indexing.py's setitem and getitem ops, bound there: indexing sits above this file
_getitem = None
_view_as_real = None  # complex.py's view_as_real/view_as_complex ops, bound there: a view of another
_view_as_complex = None  # dtype (view_as_real, .real, .imag) takes its graph from its base through them


# autograd.graph.allow_mutation_on_saved_tensors: while such a block is open this holds its one
# callable, run with each tensor an in-place op is about to write into (the block clones what the
# tape saved of that memory first); empty otherwise, so a write pays one truth test. Every
# in-place path of the ops calls ``before_write`` before it writes.
WRITE_WATCHERS: list = []


def before_write(t) -> None:
    """Tell an open ``allow_mutation_on_saved_tensors`` block that ``t``'s memory is about to be
    written in place (callers test ``WRITE_WATCHERS`` first)."""
    for watcher in tuple(WRITE_WATCHERS):
        watcher(t)


def _check_leaf(self: Tensor, opname: str, view_positions: bool = False):
    """Refuse an in-place write that autograd can't follow. With ``view_positions``, a view of a
    non-leaf tensor, or of one that doesn't require grad, is allowed: returns, for each of the
    view's elements, its index in the base (``inplace`` then records the write on the base too),
    else None."""
    if self._requires_grad and self.grad_fn is None:
        raise RuntimeError(f"{opname}: a leaf Variable that requires grad is being used in an in-place "
                           f"operation. Wrap it in `with tapegrad.no_grad():` if you mean to update it.")
    base = self._base
    if base is None or not (view_positions or base._requires_grad) or self._data.dtype.kind not in "fc":
        return None
    if base._requires_grad and base.grad_fn is None:
        raise RuntimeError(f"{opname}: a view of a leaf Variable that requires grad is being used in an in-place "
                           f"operation (view of shape {tuple(self.shape)}, leaf of shape {tuple(base.shape)}).")
    pos = _positions_in_base(self._data, base._data) if view_positions else None
    if pos is None:
        raise RuntimeError(f"{opname}: this in-place write through a view (of shape {tuple(self.shape)}, base of "
                           f"shape {tuple(base.shape)}) can't be recorded by tapegrad (the gradient would "
                           f"silently be wrong); use an out-of-place op, or clone() the view first.")
    return pos


def _positions_in_base(view: np.ndarray, base: np.ndarray):
    """The index in ``base`` (as a tuple of int arrays) of each element of ``view``, a numpy view
    into ``base``'s memory; None when the two can't be related element by element (a dtype view,
    a copy, a stride that isn't a whole number of elements)."""
    size = base.itemsize
    if base.ndim == 0:  # no index array can address a 0-d base (see _regenerate_view)
        return None
    if view.size == 0 and view.dtype == base.dtype:  # no element: no position (numpy says it shares no memory)
        return tuple(np.zeros(view.shape, np.int64) for _ in range(base.ndim))
    if view.dtype != base.dtype or not np.shares_memory(view, base) or any(
            st % size for st in base.strides + view.strides) or 0 in base.strides and base.size > 1:
        return None
    if base.flags.c_contiguous:  # the usual base: each position from the view's strides, O(view.size)
        offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // size
        flat = np.full(view.shape, offset, np.int64)
        for d, (n, st) in enumerate(zip(view.shape, view.strides)):
            flat += (np.arange(n, dtype=np.int64) * (st // size)).reshape((n,) + (1,) * (view.ndim - d - 1))
        if view.size and (flat.min() < 0 or flat.max() >= base.size):
            return None
        return np.unravel_index(flat, base.shape)
    # every element of base, labelled with its flat index, in a buffer laid out as base's memory
    lo, hi = _extent(base)
    start = base.__array_interface__["data"][0] + lo
    labels = np.full((hi - lo) // size + 1, -1, np.int64)
    as_strided = np.lib.stride_tricks.as_strided
    in_base = as_strided(labels[-lo // size:], base.shape, tuple(st // size * 8 for st in base.strides))
    in_base[...] = np.arange(base.size).reshape(base.shape)
    offset = (view.__array_interface__["data"][0] - start) // size
    vlo, vhi = (e // size for e in _extent(view))
    if view.size and (offset + vlo < 0 or offset + vhi >= len(labels)):
        return None
    flat = as_strided(labels[offset:], view.shape, tuple(st // size * 8 for st in view.strides)).copy()
    if view.size and flat.min() < 0:
        return None
    return np.unravel_index(flat, base.shape)


def _extent(a: np.ndarray):
    """(lowest, highest) byte offset of ``a``'s elements from its first one (negative strides reach below it)."""
    lo = builtins.sum((n - 1) * st for n, st in zip(a.shape, a.strides) if st < 0)
    hi = builtins.sum((n - 1) * st for n, st in zip(a.shape, a.strides) if st > 0)
    return lo, hi


def _move_retained(t: Tensor, old, node):
    """``t`` moves from node ``old`` onto ``node``: a ``retain_grad()`` moves with it, as PyTorch
    moves its retains_grad hook to the new ``grad_fn`` (``.grad`` is the gradient of the tensor's
    latest value). Left on ``old``, ``.grad`` got the gradient of the value before the write."""
    if not t._retains_grad or old is node:
        return
    if old is not None:
        ref = old.retained
        if ref is not None and ref() is t:
            old.retained = None
    if node is not None:
        node.retained = weakref.ref(t)


def _write_through_base(base: Tensor, positions, value: Tensor):
    """Record that ``value`` was written at ``positions`` of ``base`` (whose memory already holds
    it): ``base`` moves onto a setitem node, so gradients through ``base`` see the write, as
    PyTorch's CopySlices does."""
    before = Tensor._wrap(base._data)
    before.grad_fn, before._requires_grad = base.grad_fn, base._requires_grad
    res = apply(_setitem, before, value, index=positions, into=True)  # the values are there: rewritten, not copied
    node = res.grad_fn
    if node.out_version is not None:
        node.out_data = base._data
        node.out_version = (base._version_box, base._version)
    _move_retained(base, before.grad_fn, node)
    base.grad_fn, base._requires_grad = node, True


def _regenerate_view(view: Tensor):
    """``view``'s base was written in place after ``view``'s graph was set: ``view`` becomes the
    elements it covers of the base's current graph (PyTorch's regenerated AsStridedBackward).
    Called by the tape when a stale view is read (apply, backward, ``grad_fn``, ``requires_grad``)."""
    base = view._base
    src = base
    with grad_mode.enable_grad():
        positions = _positions_in_base(view._data, base._data)
        if positions is None and view._data.dtype != base._data.dtype:  # view_as_real, .real, .imag (or back)
            src = _same_dtype_view(base, view._data.dtype)
            positions = None if src is None else _positions_in_base(view._data, src._data)
        if positions is None and src is not None and src._data.ndim == 0:  # a 0-d base: its one element, seen as shape (1,)
            src = apply(_getitem, src, index=(None,), basic=True)
            positions = _positions_in_base(view._data, src._data)
        if positions is None:  # a copy, or a dtype view that isn't a complex/real pair: not element by element
            return
        res = apply(_getitem, src, index=positions, basic=False)
    if view._retains_grad:
        view._base = base  # marks the view current, so that reading its old graph doesn't regenerate it again
        _move_retained(view, view.grad_fn, res.grad_fn)
    view.grad_fn, view._requires_grad = res.grad_fn, True


def _same_dtype_view(base: Tensor, dtype):
    """``base`` seen as ``dtype`` through a differentiable op (view_as_real of a complex base,
    view_as_complex of a real one), or None when there is none."""
    a = base._data
    if a.dtype.kind == "c" and dtype.kind == "f" and _view_as_real is not None:
        return apply(_view_as_real, base)
    if (a.dtype.kind == "f" and dtype.kind == "c" and _view_as_complex is not None and a.ndim and a.shape[-1] == 2
            and a.strides[-1] == a.itemsize and not any(st % (2 * a.itemsize) for st in a.strides[:-1])):
        return apply(_view_as_complex, base)
    return None


_C._set_view_regenerator(_regenerate_view)


def _write(self: Tensor, value: np.ndarray, opname: str):
    if WRITE_WATCHERS:
        before_write(self)
    if self._data.dtype.kind == "c" and value.dtype.kind != "c":  # abs_, angle_: a real result, as PyTorch refuses
        raise RuntimeError(f"In-place {opname.rstrip('_')} is not supported for complex tensors.")
    if value.dtype != self._data.dtype and not _dtype.can_cast(value.dtype, self._data.dtype):
        raise RuntimeError(f"{opname}: result type {_dtype.name(value.dtype)} can't be cast to the desired "
                           f"output type {_dtype.name(self._data.dtype)}")
    if value.shape != self._data.shape:
        try:
            value = np.broadcast_to(value, self._data.shape)
        except ValueError:
            raise RuntimeError(f"{opname}: output with shape {tuple(self._data.shape)} doesn't match the "
                               f"broadcast shape {tuple(value.shape)}") from None
    try:
        np.copyto(self._data, value, casting="unsafe")
    except ValueError as e:  # read-only: an expanded (stride-0) view
        raise RuntimeError(f"{opname}: unsupported operation: this tensor is a read-only or expanded view "
                           f"({e}); clone() it first") from None
    self._bump_version()


def inplace(self: Tensor, result_fn, opname: str, *others, snapshot: bool = True):
    """Apply ``result_fn(self, *others)`` (out of place) and store the result in ``self``. Without
    ``snapshot``, ``result_fn`` writes into the memory of the tensor it is given and returns it
    (setitem): allowed only for an op whose VJPs don't read that input."""
    if WRITE_WATCHERS:
        before_write(self)
    recording = grad_mode.state.enabled and (
        self._requires_grad or any(isinstance(o, Tensor) and o._requires_grad for o in others))
    if not recording:
        with grad_mode.no_grad():
            res = result_fn(self, *others)
        _write(self, res._data, opname)
        return self
    positions = _check_leaf(self, opname, view_positions=True)
    # the pre-op value, as the tape will see it: a snapshot (PyTorch's ``original_self`` clone),
    # since the op's VJPs may read it after the write below
    before = Tensor._wrap(self._data.copy() if snapshot else self._data)
    before.grad_fn, before._requires_grad = self.grad_fn, self._requires_grad
    res = result_fn(before, *others)
    if snapshot or res._data is not self._data:
        _write(self, res._data, opname)
    else:
        self._bump_version()
    node = res.grad_fn
    if node is not None:
        if node.out_version is not None:
            node.out_data = self._data
            node.out_version = (self._version_box, self._version)
        _move_retained(self, before.grad_fn, node)
        self.grad_fn, self._requires_grad = node, True
        if positions is not None:  # a view: its base holds the new values too
            _write_through_base(self._base, positions, res)
            # and the view is now its positions of the base's new graph, as PyTorch regenerates a
            # written view's grad_fn from its base's CopySlices: else the base's graph read the
            # view's, the other way round, and autograd.grad of the base or the view was wrong
            _regenerate_view(self)
    return self


def _tensors(*xs):
    return [x for x in xs if isinstance(x, Tensor)]


# ---------------------------------------------------------------- the in-place form of a function that is not a declared op
def _inplace_of(fn, name):

    def method(self, *args, **kwargs):
        tensors = [a for a in args if isinstance(a, Tensor)]
        rest = [a for a in args if not isinstance(a, Tensor)]
        if rest or kwargs:  # non-tensor arguments bound in a closure, tensor ones passed to be recorded
            pos = [(i, a) for i, a in enumerate(args)]

            def call(s, *ts):
                it = iter(ts)
                return fn(s, *[next(it) if isinstance(a, Tensor) else a for _, a in pos], **kwargs)
            return inplace(self, call, name, *tensors)
        return inplace(self, lambda s, *ts: fn(s, *ts), name, *tensors)
    method.__name__ = name
    method.__doc__ = f"``{name[:-1]}``, in place."
    return method




def python_fill(self, fn, others, opname):
    """``apply_``/``map_``/``map2_``: ``self`` overwritten with a Python callable of its elements
    (and of ``others``' broadcast elements), one call per element. Not differentiable, so
    refused on tensors that require grad, as PyTorch refuses them."""
    if self._requires_grad:
        raise RuntimeError(f"{opname}: can't call it on a tensor that requires grad (a Python callback has no gradient)")
    arrays = [self._data] + [np.broadcast_to(o._data, self._data.shape) for o in others]
    values = np.array([fn(*(a.item() for a in items)) for items in zip(*(a.reshape(-1) for a in arrays))],
                      dtype=self._data.dtype).reshape(self._data.shape)
    _write(self, values, opname)
    return self
