"""``Parameter``: a tensor that a ``Module`` registers as one of its learnable weights."""
from __future__ import annotations

import numpy as np

from .. import _dtype
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and that ``Module.__setattr__`` registers.

    >>> w = tapegrad.nn.Parameter(tapegrad.zeros(2))
    >>> w
    Parameter containing:
    tensor([0., 0.], requires_grad=True)
    """

    # a __dict__: libraries mark parameters (``p._no_weight_decay = True``, ``_is_hf_initialized``);
    # parameters are few, so their being in the cycle collector costs nothing measurable
    __slots__ = ("__dict__",)

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            arr = np.empty(0, dtype=np.float32)
        elif isinstance(data, Tensor):
            arr = data._data  # shares memory, as torch.nn.Parameter does
        else:
            arr = np.asarray(data)
        self._data = arr
        self._init_meta()
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        """A new Parameter on a copy of the data, without ``.grad``, as PyTorch's: a deep-copied
        model (an EMA, ``best_model = copy.deepcopy(model)``) starts with no gradients."""
        if id(self) in memo:
            return memo[id(self)]
        new = super().__deepcopy__(memo)
        new.grad = None
        return new


class Buffer(Tensor):
    """Marks a tensor as a buffer when assigned to a module attribute (``torch.nn.Buffer``)."""

    __slots__ = {"persistent": "Whether the buffer goes into the module's ``state_dict`` (True by default).",
                 "__dict__": "Attributes set on the buffer."}

    def __init__(self, data=None, *, persistent: bool = True):
        arr = np.empty(0, dtype=np.float32) if data is None else (
            data._data if isinstance(data, Tensor) else np.asarray(data))
        self._data = arr
        self._init_meta()
        self.persistent = persistent


class UninitializedTensorMixin:
    """What the uninitialised parameter and buffer share (PyTorch's base of both, which
    :func:`is_lazy` checks for)."""

    __slots__ = ()


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    """A parameter whose shape is not known yet (the lazy modules' weights): ``materialize(shape)``
    gives it uninitialised storage of that shape and turns it into a plain :class:`Parameter`."""

    __slots__ = ()
    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device=None, dtype=None):
        super().__init__(np.empty(0, dtype=_dtype.to_dtype(dtype) if dtype is not None
                                  else _dtype.default_float()), requires_grad)

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Allocate (uninitialised) storage of ``shape`` in place; the object becomes a Parameter."""
        self._data = np.empty(tuple(shape), dtype=_dtype.to_dtype(dtype) if dtype is not None else self._data.dtype)
        self._bump_version()
        self.__class__ = self.cls_to_become

    def __repr__(self) -> str:
        return "<UninitializedParameter>"


class UninitializedBuffer(UninitializedTensorMixin, Tensor):
    """A buffer whose shape is not known yet (the lazy norms' running statistics):
    ``materialize(shape)`` allocates it and turns it into a plain tensor."""

    __slots__ = ()
    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device=None, dtype=None):
        self._data = np.empty(0, dtype=_dtype.to_dtype(dtype) if dtype is not None else _dtype.default_float())
        self._init_meta()

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Allocate (uninitialised) storage of ``shape`` in place; the object becomes a Tensor."""
        self._data = np.empty(tuple(shape), dtype=_dtype.to_dtype(dtype) if dtype is not None else self._data.dtype)
        self._bump_version()
        self.__class__ = self.cls_to_become

    def __repr__(self) -> str:
        return "<UninitializedBuffer>"


def is_lazy(param) -> bool:
    """Whether ``param`` is an :class:`UninitializedParameter` or :class:`UninitializedBuffer`
    (a lazy module's weight before its first call).

    >>> tapegrad.nn.parameter.is_lazy(tapegrad.nn.LazyLinear(3).weight)
    True
    """
    return isinstance(param, UninitializedTensorMixin)


def zero_grads(params, set_to_none: bool = True) -> None:
    """``Module.zero_grad`` and ``Optimizer.zero_grad``: drop each ``.grad`` or zero it in place."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad = p.grad.detach()
            p.grad._data.fill(0)
