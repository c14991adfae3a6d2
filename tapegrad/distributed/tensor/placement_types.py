"""How a DTensor is laid out over a device mesh: PyTorch's placement value types.

tapegrad has no DTensor to place (see ``tapegrad.distributed.tensor``), but the placements are
plain values that libraries build, compare and hash (``Shard(0) == Shard(0)``, ``p.is_shard()``,
a dict keyed by placement) and they behave as PyTorch's do. What moves tensors between
placements lives with DTensor and is refused there.

>>> Shard(0), str(Replicate()), Partial("avg").is_partial("avg")
(Shard(dim=0), 'R', True)
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Placement", "Shard", "Replicate", "Partial"]


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    return value.__index__()


class Placement:
    """The base of ``Shard``, ``Replicate`` and ``Partial``: the three questions every placement answers."""

    def is_shard(self, dim: int | None = None) -> bool:
        return False

    def is_replicate(self) -> bool:
        return False

    def is_partial(self, reduce_op: str | None = None) -> bool:
        return False


@dataclass(frozen=True, eq=False, repr=False)
class Shard(Placement):
    """Each rank of the mesh dimension holds one ``torch.chunk`` of tensor dimension ``dim``
    (the last chunks may be smaller or empty)."""
    dim: int

    def __post_init__(self):
        object.__setattr__(self, "dim", _int(self.dim, "Shard: dim"))

    def is_shard(self, dim: int | None = None) -> bool:
        return dim is None or self.dim == dim

    @staticmethod
    def local_shard_size_and_offset(curr_local_size: int, num_chunks: int, rank: int) -> tuple[int, int]:
        """The size and offset of chunk ``rank`` when ``curr_local_size`` elements are split as
        ``torch.chunk`` splits them into ``num_chunks`` (an empty chunk sits at the end).

        >>> Shard.local_shard_size_and_offset(10, 4, 3)
        (1, 9)
        """
        if curr_local_size % num_chunks == 0:
            full = curr_local_size // num_chunks
            return full, full * rank
        full = (curr_local_size + num_chunks - 1) // num_chunks
        start = full * rank
        return max(0, min(curr_local_size, start + full) - start), min(curr_local_size, start)

    def _local_shard_size_and_offset(self, curr_local_size: int, num_chunks: int, rank: int) -> tuple[int, int]:
        return Shard.local_shard_size_and_offset(curr_local_size, num_chunks, rank)

    def __eq__(self, other):
        return type(other) is Shard and other.dim == self.dim

    def __hash__(self):
        return hash(self.dim)

    def __repr__(self):
        return f"Shard(dim={self.dim})"

    def __str__(self):
        return f"S({self.dim})"


@dataclass(frozen=True, eq=False, repr=False, init=False)
class _StridedShard(Placement):
    """FSDP2 + tensor parallel's right-to-left sharding of ``dim``: ``split_factor`` shards existed
    before this one. As in PyTorch it is not a ``Shard`` (``is_shard()`` is False)."""
    dim: int
    split_factor: int

    def __init__(self, dim: int, *, split_factor: int = 1, sf: int | None = None):
        if sf is not None:
            if split_factor != 1:
                raise TypeError("_StridedShard received both split_factor and sf")
            split_factor = sf
        object.__setattr__(self, "dim", _int(dim, "_StridedShard: dim"))
        object.__setattr__(self, "split_factor", _int(split_factor, "_StridedShard: split_factor"))

    def __eq__(self, other):
        return isinstance(other, _StridedShard) and (other.dim, other.split_factor) == (self.dim, self.split_factor)

    def __hash__(self):
        return hash((self.dim, self.split_factor))

    def __repr__(self):
        return f"_StridedShard(dim={self.dim}, sf={self.split_factor})"

    def __str__(self):
        return f"_S({self.dim}, {self.split_factor})"


@dataclass(frozen=True, eq=False, repr=False)
class Replicate(Placement):
    """Every rank of the mesh dimension holds the whole tensor."""

    def is_replicate(self) -> bool:
        return True

    def __eq__(self, other):
        return isinstance(other, Replicate)

    def __hash__(self):
        return -2  # PyTorch's value: every Replicate() is one key

    def __repr__(self):
        return "Replicate()"

    def __str__(self):
        return "R"


@dataclass(frozen=True, eq=False, repr=False)
class Partial(Placement):
    """Every rank holds a partial value; the tensor is their reduction by ``reduce_op``
    (``"sum"``, ``"avg"``, ``"max"``, ...)."""
    reduce_op: str = "sum"

    def is_partial(self, reduce_op: str | None = None) -> bool:
        return reduce_op is None or self.reduce_op == reduce_op

    def __eq__(self, other):
        return isinstance(other, Partial) and other.reduce_op == self.reduce_op

    def __hash__(self):
        return hash(self.reduce_op)

    def __repr__(self):
        return f"Partial({self.reduce_op})"

    def __str__(self):
        return f"P({self.reduce_op})"
