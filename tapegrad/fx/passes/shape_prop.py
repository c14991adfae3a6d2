"""``torch.fx.passes.shape_prop``: run a GraphModule on example inputs and record each tensor
value's shape, dtype, strides, ... in ``node.meta['tensor_meta']``."""
from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Tuple

import tapegrad
from tapegrad.tensor import Tensor

from ..interpreter import Interpreter
from ..node import Node, map_aggregate

__all__ = ["TensorMetadata", "ShapeProp"]


class TensorMetadata(NamedTuple):
    shape: Any
    dtype: Any
    requires_grad: bool
    stride: Tuple[int, ...]
    memory_format: Optional[Any]
    is_quantized: bool
    qparams: Dict[str, Any]


def _extract_tensor_metadata(result: Tensor, include_contiguity: bool = True) -> TensorMetadata:
    memory_format = None
    if include_contiguity:
        for query_format in (tapegrad.contiguous_format, tapegrad.channels_last, tapegrad.channels_last_3d):
            if result.is_contiguous(memory_format=query_format):
                memory_format = query_format
                break
    return TensorMetadata(result.shape, result.dtype, result.requires_grad, result.stride(), memory_format,
                          False, {})


class ShapeProp(Interpreter):
    """``ShapeProp(gm).propagate(x)``: the output, and every node producing tensors gets
    ``meta['tensor_meta']`` (a TensorMetadata, or a structure of them) and ``meta['type']``."""

    def run_node(self, n: Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as e:
            raise RuntimeError(f"ShapeProp error for: node={n.format_node()} with meta={n.meta}") from e
        found_tensor = False

        def extract_tensor_meta(obj):
            nonlocal found_tensor
            if isinstance(obj, Tensor):
                found_tensor = True
                return _extract_tensor_metadata(obj)
            return obj

        meta = map_aggregate(result, extract_tensor_meta)
        if found_tensor:
            n.meta["tensor_meta"] = meta
        n.meta["type"] = type(result)
        return result

    def propagate(self, *args) -> Any:
        return super().run(*args)
