"""``torch._dynamo._trace_wrapped_higher_order_op``: the one name libraries import from it."""


class TransformGetItemToIndex:
    """PyTorch's context that turns ``x[index_tensor]`` into ``aten.index``, so that ``vmap`` can
    batch an index held in a tensor (PyTorch's ``__getitem__`` would call ``.item()`` on it).
    tapegrad's ``__getitem__`` already indexes with tensors, which ``vmap`` batches, so the
    context changes nothing.

    >>> with TransformGetItemToIndex():
    ...     mask = tapegrad.vmap(lambda i: x[i])(tapegrad.arange(3))
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
