"""Parameters as one flat vector, and back."""
from __future__ import annotations

import numpy as np

from ...tensor import Tensor
from ... import ops


def parameters_to_vector(parameters) -> Tensor:
    """Concatenate the parameters, flattened, into one 1-D tensor (differentiable)."""
    params = list(parameters)
    if not params:
        raise RuntimeError("parameters_to_vector: got no parameters")
    flat = [p.reshape(-1) for p in params]
    if hasattr(ops, "cat"):
        return ops.cat(flat)
    if not any(p.requires_grad for p in params):
        return Tensor._wrap(np.concatenate([p._data.reshape(-1) for p in params]))
    # without a cat op: scatter each piece into its slot (recorded through setitem)
    out = Tensor._wrap(np.zeros(sum(p.numel() for p in params), dtype=params[0].dtype))
    i = 0
    for f in flat:
        out[i:i + f.numel()] = f
        i += f.numel()
    return out


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy slices of the flat ``vec`` into the parameters (their arrays become views of ``vec``,
    as ``param.data = ...`` does in PyTorch)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected vec to be a Tensor, but got {type(vec).__name__}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.numel() != total:
        raise RuntimeError(f"vector_to_parameters: vec has shape {tuple(vec.shape)} but the parameters hold "
                           f"{total} elements")
    i = 0
    for p in params:
        n = p.numel()
        p._data = vec._data[i:i + n].reshape(p.shape)
        p._bump_version()
        i += n
