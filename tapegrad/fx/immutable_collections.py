"""``torch.fx.immutable_collections``: the list and dict a node's ``args`` / ``kwargs`` hold, so a pass
edits a graph through ``Node.args = ...`` (which keeps ``users`` right), never by mutating them."""
from __future__ import annotations

__all__ = ["immutable_list", "immutable_dict"]


def _no_mutation(self, *args, **kwargs):
    raise NotImplementedError(f"'{type(self).__name__}' object does not support mutation. "
                              "Assign a new value to node.args / node.kwargs instead")


class immutable_list(list):
    """A list that refuses in-place changes (hashable, as PyTorch's)."""
    __delitem__ = __iadd__ = __imul__ = __setitem__ = append = clear = extend = insert = pop = remove = \
        reverse = sort = _no_mutation

    def __hash__(self):
        return hash(tuple(self))

    def __reduce__(self):
        return (immutable_list, (tuple(self),))


class immutable_dict(dict):
    """A dict that refuses in-place changes (hashable, as PyTorch's)."""
    __delitem__ = __setitem__ = clear = pop = popitem = setdefault = update = _no_mutation
    __ior__ = _no_mutation

    def __hash__(self):
        return hash(tuple(self.items()))

    def __reduce__(self):
        return (immutable_dict, (tuple(self.items()),))
