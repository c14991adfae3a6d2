"""Docstrings of the ``Tensor`` methods and properties that tensor.py writes as one-liners.

As PyTorch's ``torch/_tensor_docs.py``: tensor.py stays a thin, one-line-per-method dispatcher
(STYLE.md), and the text a user reads in ``help(Tensor.view)`` and the API reference lives
here. A docstring written in tensor.py itself wins: entries here only fill missing ones.
Methods that call the op of the same name share its docstring (as the methods the op table
installs do), after a line that names the op.
"""
from __future__ import annotations

from . import ops as _ops
from .tensor import Size, Tensor

# methods that only call the top-level op of the same name on ``self``
# (expand, gather, permute, reshape and view are the ops themselves: public(method=True))
_SAME_AS_OP = ["bernoulli", "broadcast_to", "count_nonzero", "dsplit", "flip", "hsplit",
               "log_softmax", "max", "min", "multinomial", "polygamma", "ravel", "repeat",
               "repeat_interleave", "silu", "softmax", "split", "squeeze", "squeeze_",
               "sum_to_size", "swapaxes", "swapdims", "tile", "vsplit", "where"]

_DOCS = {
    # metadata
    "is_signed": "Whether the dtype is signed (floats and signed integers; not bool or uint8).",
    "is_inference": "False: tapegrad has no inference tensors (``inference_mode`` is ``no_grad``).",
    "is_distributed": "False, as PyTorch's for every ordinary tensor.",
    "is_same_size": "Whether ``self`` and ``other`` have the same shape.",
    "polygamma_": "``polygamma(n, self)`` written into ``self``.",
    "is_nonzero": "The truth of a one-element tensor; RuntimeError for any other size, as PyTorch.",
    "const_data_ptr": "The address of the first element (``data_ptr``; tapegrad has no read-only pointers).",
    "as_subclass": "The same memory as an instance of the ``Tensor`` subclass ``cls`` (no copy, no graph).",
    "new": "PyTorch's legacy constructor in ``self``'s dtype: ``x.new(2, 3)`` (sizes; zeros here, uninitialised\n"
           "in PyTorch), ``x.new([1, 2])`` (data) or ``x.new()`` (empty).",
    "new_empty_strided": "Zeros of ``size`` in ``self``'s dtype (or ``dtype``); C-contiguous whatever ``stride`` says.",
    "apply_": "Overwrite each element with ``callable(element)`` (a Python call per element; refused on tensors\n"
              "that require grad).",
    "map_": "Overwrite each element with ``callable(element, other_element)``, ``tensor`` broadcast to ``self``.",
    "map2_": "Overwrite each element with ``callable(element, x_element, y_element)``, ``x`` and ``y`` broadcast.",
    "device": "``tapegrad.device('cpu')``: tensors live in the CPU's memory.",
    "is_cuda": "False: tapegrad runs on the CPU only.",
    "is_leaf": "True for a tensor not produced by a recorded op (made by the user, or a parameter):\n"
               "backward accumulates into the ``.grad`` of leaves.",
    "is_floating_point": "``x.is_floating_point()``: whether the dtype is a floating type.",
    "requires_grad": "Whether ops on this tensor are recorded for backward. Settable on leaves\n"
                     "(``x.requires_grad = True``), floating dtypes only.",
    "retains_grad": "Whether ``retain_grad()`` was called on this non-leaf tensor.",
    "T": "The dimensions reversed (``x.permute(n-1, ..., 0)``); the transpose of a matrix.",
    "mT": "The last two dimensions swapped (a batch of transposed matrices), a view.",
    "H": "The conjugate transpose of a matrix (its transpose when it is real).",
    "mH": "The last two dimensions swapped, conjugated (``mT`` when real).",
    "real": "The real part, as a view (``self`` when real): :func:`tapegrad.real`.",
    "imag": "The imaginary part of a complex tensor, as a view: :func:`tapegrad.imag`.",
    "itemsize": "Bytes per element.",
    "nbytes": "Bytes of the elements (``numel() * itemsize``).",
    "size": "The shape as a :class:`tapegrad.Size`, or the size of dimension ``dim``.\n\n"
            ">>> tapegrad.zeros(2, 3).size()\ntapegrad.Size([2, 3])\n>>> tapegrad.zeros(2, 3).size(-1)\n3",
    "element_size": "Bytes per element.",
    "stride": "The strides in elements (not bytes), or the stride of dimension ``dim``.",
    "is_contiguous": "Whether the elements are laid out in C order without gaps.",
    "is_pinned": "False: there is no pinned memory on a CPU-only library.",
    "is_shared": "Whether the data lives in shared memory (``share_memory_()``, or received from another process that shared it).",
    "get_device": "-1, the CPU's index, as in PyTorch.",
    "data_ptr": "The address of the first element.",
    # conversion
    "item": "The value of a one-element tensor as a Python number.\n\n>>> tapegrad.tensor([2.5]).item()\n2.5",
    "tolist": "The elements as (nested) Python lists of numbers.",
    "cpu": "``self``: tensors already live on the CPU.",
    "cuda": "Raises RuntimeError: tapegrad runs on the CPU only.",
    "pin_memory": "``self``: a no-op kept for compatibility.",
    "share_memory_": "``self``, its data moved into shared memory (values kept): processes it is given to, forked or spawned or through a Queue, then write where this one reads. Views made before keep the old memory (warned); a view itself cannot move alone.",
    "float": "A float32 copy (``self`` if already float32); differentiable.",
    "double": "A float64 copy (``self`` if already float64); differentiable.",
    "half": "A float16 copy (``self`` if already float16); differentiable.",
    "cfloat": "A complex64 copy (``self`` if already complex64); differentiable.",
    "cdouble": "A complex128 copy (``self`` if already complex128); differentiable.",
    "bfloat16": "A bfloat16 copy (``self`` if already bfloat16; needs the ml_dtypes package); differentiable.",
    "long": "An int64 copy.",
    "int": "An int32 copy.",
    "short": "An int16 copy.",
    "char": "An int8 copy.",
    "byte": "A uint8 copy.",
    "bool": "A bool copy (nonzero is True).",
    "type": "The dtype's name (``'tapegrad.float32'``) without an argument, else a copy cast to ``dtype``.",
    "type_as": "A copy cast to ``other``'s dtype.",
    "view_as": "``view(other.shape)``.",
    "reshape_as": "``reshape(other.shape)``.",
    "expand_as": "``expand(other.shape)``.",
    # creation
    "new_zeros": "A zero tensor of ``size`` with this tensor's dtype (or ``dtype``).",
    "new_ones": "A tensor of ones of ``size`` with this tensor's dtype (or ``dtype``).",
    "new_empty": "An uninitialised tensor of ``size`` with this tensor's dtype (or ``dtype``).",
    "new_full": "A tensor of ``size`` filled with ``fill_value``, with this tensor's dtype (or ``dtype``).",
    "new_tensor": "A new tensor from ``data`` (copied) with this tensor's dtype (or ``dtype``).",
    # autograd
    "requires_grad_": "Set ``requires_grad`` in place (leaves only, floating dtypes only) and return ``self``.\n\n"
                      ">>> w = tapegrad.zeros(3).requires_grad_()",
    "detach_": "Detach this tensor from the tape in place: it becomes a leaf that does not require grad.",
}

_SIZE_DOCS = {"numel": "The number of elements of a tensor of this shape (the product of the sizes)."}


def _fill(cls, docs):
    for name, doc in docs.items():
        attr = cls.__dict__[name]  # KeyError: an entry for a name tensor.py no longer defines
        target = attr.fget if isinstance(attr, property) else attr
        if not target.__doc__:
            target.__doc__ = doc
            if isinstance(attr, property):
                attr.__doc__ = doc


_fill(Tensor, _DOCS)
_fill(Size, _SIZE_DOCS)
for _name in _SAME_AS_OP:
    _method = Tensor.__dict__[_name]
    if not _method.__doc__:
        _method.__doc__ = f"See :func:`tapegrad.{_name}`.\n\n" + (getattr(_ops, _name).__doc__ or "")
