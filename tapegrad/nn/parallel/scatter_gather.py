"""``torch.nn.parallel.scatter_gather``: split a structure of inputs into one piece per device and
join the per-device outputs again, as ``DataParallel`` does around its replicas.

tapegrad runs on the CPU, so the devices here are CPU ones (``"cpu"``, ``tapegrad.device("cpu")``,
or -1, PyTorch's name for the CPU in ``gather``). PyTorch refuses CPU tensors in both
functions (they move data between GPUs); tapegrad splits and joins them on the CPU instead,
with the same structure rules, so code written around them runs. A GPU index raises.
Both are differentiable: the pieces are ``chunk`` views and the join is ``cat``.
"""
from __future__ import annotations

from ...device import check_cpu
from ...ops import cat
from ...tensor import Tensor

__all__ = ["scatter", "scatter_kwargs", "gather"]


def _require_cpu(targets, fn: str):
    """Each target a CPU device (``device.check_cpu``'s rule, and -1), or an error naming ``fn``."""
    for t in targets:
        if t == -1:
            continue
        try:
            check_cpu(t)
        except RuntimeError:
            raise RuntimeError(f"{fn}: tapegrad runs on the CPU; device {t!r} is not available "
                               f"(targets: {list(targets)})") from None


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_asdict") and hasattr(obj, "_fields")


def scatter(inputs, target_gpus, dim: int = 0):
    """``inputs`` sliced into one piece per target: each tensor in ``len(target_gpus)`` chunks
    along ``dim`` (fewer when it has fewer elements there, as ``chunk``), other objects repeated;
    tuples, lists, dicts and namedtuples are walked. Returns a list with one structure per piece."""

    def scatter_map(obj):
        if isinstance(obj, Tensor):
            _require_cpu(target_gpus, "scatter")
            return list(obj.chunk(len(target_gpus), dim)) if target_gpus else []
        if _is_namedtuple(obj):
            return [type(obj)(*args) for args in zip(*map(scatter_map, obj))]
        if isinstance(obj, tuple) and len(obj) > 0:
            return list(zip(*map(scatter_map, obj)))
        if isinstance(obj, list) and len(obj) > 0:
            return [list(i) for i in zip(*map(scatter_map, obj))]
        if isinstance(obj, dict) and len(obj) > 0:
            return [type(obj)(i) for i in zip(*map(scatter_map, obj.items()))]
        return [obj for _ in target_gpus]

    # scatter_map is recursive and refers to itself through the closure only while it runs
    try:
        return scatter_map(inputs)
    finally:
        scatter_map = None  # noqa: F841  (as PyTorch: breaks the closure's reference cycle)


def scatter_kwargs(inputs, kwargs, target_gpus, dim: int = 0):
    """:func:`scatter` of the positional and the keyword arguments, padded to the same number of
    pieces (empty tuples / dicts). Returns ``(inputs_per_piece, kwargs_per_piece)``, two tuples."""
    scattered_inputs = scatter(inputs, target_gpus, dim) if inputs else []
    scattered_kwargs = scatter(kwargs, target_gpus, dim) if kwargs else []
    if len(scattered_inputs) < len(scattered_kwargs):
        scattered_inputs.extend(() for _ in range(len(scattered_kwargs) - len(scattered_inputs)))
    elif len(scattered_kwargs) < len(scattered_inputs):
        scattered_kwargs.extend({} for _ in range(len(scattered_inputs) - len(scattered_kwargs)))
    return tuple(scattered_inputs), tuple(scattered_kwargs)


def gather(outputs, target_device, dim: int = 0):
    """The per-piece ``outputs`` joined: tensors concatenated along ``dim`` on ``target_device``
    (a CPU device, or -1), dicts key by key, sequences and namedtuples item by item; None stays None."""
    _require_cpu([target_device], "gather")

    def gather_map(outputs):
        out = outputs[0]
        if isinstance(out, Tensor):
            return cat([o if o.dim() else o.reshape(1) for o in outputs], dim if out.dim() else 0)
        if out is None:
            return None
        if isinstance(out, dict):
            if not all(len(out) == len(d) for d in outputs):
                raise ValueError("gather: all dicts must have the same number of keys")
            return type(out)((k, gather_map([d[k] for d in outputs])) for k in out)
        if _is_namedtuple(out):
            return type(out)._make(map(gather_map, zip(*outputs)))
        return type(out)(map(gather_map, zip(*outputs)))

    try:
        return gather_map(outputs)
    finally:
        gather_map = None  # noqa: F841
