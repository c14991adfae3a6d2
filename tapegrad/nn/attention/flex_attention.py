"""``flex_attention``: attention whose scores a user function edits (``score_mod``) and whose
pattern a mask function sets (``mask_mod`` inside a :class:`BlockMask`), as PyTorch's.

tapegrad materialises the (B, H, L, S) scores: ``score_mod`` and ``mask_mod`` are called once, on
broadcast index tensors ``b`` (B, 1, 1, 1), ``h`` (1, H, 1, 1), ``q_idx`` (1, 1, L, 1) and
``kv_idx`` (1, 1, 1, S), so they must be written in tensor ops (``torch.where``, comparisons),
as they are for PyTorch's compiled kernel. Everything is differentiable; a query row that may
attend to no key gives zeros (and a log-sum-exp of -inf), as PyTorch's flex does.

>>> def causal(b, h, q_idx, kv_idx):
...     return q_idx >= kv_idx
>>> mask = create_block_mask(causal, None, None, 16, 16)
>>> out = flex_attention(q, k, v, block_mask=mask)
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable, NamedTuple, TypedDict

import numpy as np

from ... import ops as _ops
from ...tensor import Tensor

__all__ = ["BlockMask", "flex_attention", "AuxRequest", "AuxOutput", "FlexKernelOptions", "create_block_mask",
           "create_mask", "or_masks", "and_masks", "noop_mask"]

_DEFAULT_SPARSE_BLOCK_SIZE = 128


@dataclasses.dataclass(frozen=True)
class AuxRequest:
    """Which auxiliary outputs ``flex_attention(..., return_aux=AuxRequest(...))`` returns: ``lse``
    (the log-sum-exp of each query's scores), ``max_scores`` (each query's largest score).

    >>> out, aux = flex_attention(q, k, v, return_aux=AuxRequest(lse=True))
    """

    lse: bool = False
    max_scores: bool = False


class FlexKernelOptions(TypedDict, total=False):
    """Tuning options of PyTorch's compiled flex kernel (tile sizes, warps, stages); tapegrad
    computes the scores whole, and accepts and ignores them.

    >>> out = flex_attention(q, k, v, kernel_options={"BLOCK_M": 64})
    """

    BLOCK_M: int
    BLOCK_N: int
    num_warps: int
    num_stages: int
    PRESCALE_QK: bool
    ROWS_GUARANTEED_SAFE: bool
    BLOCKS_ARE_CONTIGUOUS: bool
    FORCE_USE_FLEX_ATTENTION: bool
    BACKEND: str


class AuxOutput(NamedTuple):
    """The auxiliary outputs of ``flex_attention``: ``lse`` and ``max_scores`` (None unless asked for)."""

    lse: Tensor | None = None
    max_scores: Tensor | None = None


def noop_mask(b, h, q_idx, kv_idx):
    """The mask that lets every query attend to every key (a True scalar).

    >>> mask = create_block_mask(noop_mask, 1, 1, 8, 8)
    """
    return Tensor._wrap(np.ones((), dtype=bool))


def and_masks(*mask_mods: Callable) -> Callable:
    """The mask that allows what every one of ``mask_mods`` allows.

    >>> both = and_masks(causal, sliding_window)
    """
    if not all(callable(m) for m in mask_mods):
        raise RuntimeError(f"and_masks: all inputs should be callable, got {mask_mods}")

    def and_mask(b, h, q_idx, kv_idx):
        result = Tensor._wrap(np.ones((), dtype=bool))
        for mod in mask_mods:
            result = result & mod(b, h, q_idx, kv_idx)
        return result
    return and_mask


def or_masks(*mask_mods: Callable) -> Callable:
    """The mask that allows what any one of ``mask_mods`` allows.

    >>> either = or_masks(causal, prefix)
    """
    if not all(callable(m) for m in mask_mods):
        raise RuntimeError(f"or_masks: all inputs should be callable, got {mask_mods}")

    def or_mask(b, h, q_idx, kv_idx):
        result = Tensor._wrap(np.zeros((), dtype=bool))
        for mod in mask_mods:
            result = result | mod(b, h, q_idx, kv_idx)
        return result
    return or_mask


def _indices(B, H, L, S):
    return (Tensor._wrap(np.arange(B, dtype=np.int64).reshape(B, 1, 1, 1)),
            Tensor._wrap(np.arange(H, dtype=np.int64).reshape(1, H, 1, 1)),
            Tensor._wrap(np.arange(L, dtype=np.int64).reshape(1, 1, L, 1)),
            Tensor._wrap(np.arange(S, dtype=np.int64).reshape(1, 1, 1, S)))


def _is_score_mod(fn) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return False
    return len(params) == 5


def _dense_mask(mask_mod, B, H, L, S) -> np.ndarray:
    """``mask_mod`` over every (b, h, q, kv): a bool array of shape (B, H, L, S)."""
    out = mask_mod(*_indices(B, H, L, S))
    arr = out._data if isinstance(out, Tensor) else np.asarray(out)
    if arr.dtype != np.bool_:
        raise TypeError(f"mask_mod must return a bool tensor, got dtype {arr.dtype}")
    return np.broadcast_to(arr, (B, H, L, S))


def create_mask(mod_fn: Callable, B, H, Q_LEN: int, KV_LEN: int, device=None) -> Tensor:
    """The dense (B, H, Q_LEN, KV_LEN) bool mask of a ``mask_mod``, or of a ``score_mod`` (5
    arguments: where it leaves all-zero scores above -inf). ``B``/``H`` None mean 1.

    >>> create_mask(lambda b, h, q, kv: q >= kv, 1, 1, 3, 3)[0, 0].tolist()
    [[True, False, False], [True, True, False], [True, True, True]]
    """
    B, H = B or 1, H or 1
    if _is_score_mod(mod_fn):
        out = mod_fn(Tensor._wrap(np.zeros((B, H, Q_LEN, KV_LEN), dtype=np.float32)), *_indices(B, H, Q_LEN, KV_LEN))
        arr = out._data if isinstance(out, Tensor) else np.asarray(out)
        return Tensor._wrap(np.broadcast_to(~np.isneginf(arr), (B, H, Q_LEN, KV_LEN)).copy())
    return Tensor._wrap(np.array(_dense_mask(mod_fn, B, H, Q_LEN, KV_LEN)))


def _to_block_lists(blocks: np.ndarray):
    """(num_blocks, indices) of a (B, H, nQ, nKV) bool block table, as PyTorch's: the selected blocks'
    indices first (in order), then the others."""
    num = blocks.sum(-1).astype(np.int32)
    idx = np.argsort(~blocks, axis=-1, kind="stable").astype(np.int32)
    return Tensor._wrap(num), Tensor._wrap(idx)


class BlockMask:
    """Which (query block, key block) pairs attend at all (``kv_num_blocks`` / ``kv_indices``:
    the partial blocks, where ``mask_mod`` is evaluated; ``full_kv_num_blocks`` /
    ``full_kv_indices``: blocks that attend fully), with the ``mask_mod`` itself; made by
    :func:`create_block_mask`.

    >>> mask = create_block_mask(causal, 1, 1, 256, 256)
    >>> mask.sparsity()
    25.0
    """

    def __init__(self, seq_lengths, kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices,
                 BLOCK_SIZE=(_DEFAULT_SPARSE_BLOCK_SIZE, _DEFAULT_SPARSE_BLOCK_SIZE), mask_mod=None):
        self.seq_lengths = tuple(seq_lengths)
        self.kv_num_blocks, self.kv_indices = kv_num_blocks, kv_indices
        self.full_kv_num_blocks, self.full_kv_indices = full_kv_num_blocks, full_kv_indices
        self.BLOCK_SIZE = tuple(BLOCK_SIZE)
        self.mask_mod = noop_mask if mask_mod is None else mask_mod

    @staticmethod
    def _blocks(num, idx) -> np.ndarray:
        if num is None:
            return None
        n, ix = num._data, idx._data
        table = np.zeros(ix.shape, dtype=bool)
        rank = np.arange(ix.shape[-1])
        sel = rank < n[..., None]
        np.put_along_axis(table, ix.astype(np.int64), sel, axis=-1)
        return table

    def _tables(self):
        partial = self._blocks(self.kv_num_blocks, self.kv_indices)
        full = self._blocks(self.full_kv_num_blocks, self.full_kv_indices)
        return partial, (np.zeros_like(partial) if full is None else full)

    @property
    def shape(self):
        """(B, H, Q_LEN, KV_LEN)."""
        B, H = self.kv_num_blocks.shape[:2]
        return (B, H) + self.seq_lengths

    def numel(self) -> int:
        """The number of (b, h, q, kv) elements the mask covers."""
        return math.prod(self.shape)

    def to_dense(self) -> Tensor:
        """The (B, H, nQ, nKV) int32 table of the blocks that attend (partial or full)."""
        partial, full = self._tables()
        return Tensor._wrap((partial | full).astype(np.int32))

    def sparsity(self) -> float:
        """The percentage of the (B, H, L, S) score elements that blocks skip, as PyTorch counts it
        (a computed block counts its whole tile)."""
        dense = self.to_dense()._data
        bq, bkv = self.BLOCK_SIZE
        return 100 * (1 - float(dense.sum()) * bq * bkv / self.numel())

    def to(self, device) -> "BlockMask":
        """Returns ``self``: the CPU is the only device."""
        return self

    def _element_mask(self, B, H, L, S) -> np.ndarray:
        """The mask flex_attention applies: full blocks attend, partial blocks as ``mask_mod`` says
        (called with the real batch and head indices), the rest not."""
        if (L, S) != self.seq_lengths:
            raise ValueError(f"flex_attention: block_mask was created for (Q_LEN, KV_LEN) = {self.seq_lengths}, but "
                             f"got query length {L} and key length {S}")
        partial, full = self._tables()
        bq, bkv = self.BLOCK_SIZE

        def expand(t):
            t = np.repeat(np.repeat(t, bq, axis=2), bkv, axis=3)[:, :, :L, :S]
            return np.broadcast_to(t, (B, H, L, S))
        mask = expand(full).copy()
        if partial.any():
            mask |= expand(partial) & _dense_mask(self.mask_mod, B, H, L, S)
        return mask

    def __repr__(self):
        return f"BlockMask(shape={self.shape}, sparsity={self.sparsity():.2f}%, BLOCK_SIZE={self.BLOCK_SIZE})"


def create_block_mask(mask_mod: Callable, B, H, Q_LEN: int, KV_LEN: int, device=None,
                      BLOCK_SIZE=_DEFAULT_SPARSE_BLOCK_SIZE, _compile=False, separate_full_blocks: bool = True,
                      **kwargs) -> BlockMask:
    """The :class:`BlockMask` of ``mask_mod(b, h, q_idx, kv_idx)`` for ``B`` batches and ``H`` heads
    (None: broadcast over them) and the given lengths, in ``BLOCK_SIZE`` tiles.

    >>> def causal(b, h, q_idx, kv_idx):
    ...     return q_idx >= kv_idx
    >>> block_mask = create_block_mask(causal, None, None, 128, 128)
    """
    if not callable(mask_mod):
        raise TypeError(f"create_block_mask: mask_mod must be callable, got {type(mask_mod).__name__}")
    if _is_score_mod(mask_mod):
        raise ValueError("create_block_mask: mask_mod takes (b, h, q_idx, kv_idx); a 5-argument score_mod was given")
    bq, bkv = (BLOCK_SIZE, BLOCK_SIZE) if isinstance(BLOCK_SIZE, int) else tuple(BLOCK_SIZE)
    if bq <= 0 or bkv <= 0:
        raise ValueError(f"create_block_mask: BLOCK_SIZE must be positive, got {BLOCK_SIZE}")
    B, H = B or 1, H or 1
    dense = _dense_mask(mask_mod, B, H, Q_LEN, KV_LEN)
    nq, nkv = math.ceil(Q_LEN / bq), math.ceil(KV_LEN / bkv)
    pad = np.zeros((B, H, nq * bq, nkv * bkv), dtype=bool)
    pad[:, :, :Q_LEN, :KV_LEN] = dense
    tiles = pad.reshape(B, H, nq, bq, nkv, bkv)  # as PyTorch's, the padding is False: an edge tile is not full
    any_ = tiles.any(axis=(3, 5))
    all_ = tiles.all(axis=(3, 5))
    if not separate_full_blocks:
        all_ = np.zeros_like(all_)
    partial = any_ & ~all_
    kv_num, kv_idx = _to_block_lists(partial)
    full_num, full_idx = _to_block_lists(all_) if separate_full_blocks else (None, None)
    return BlockMask((Q_LEN, KV_LEN), kv_num, kv_idx, full_num, full_idx, (bq, bkv), mask_mod)


def flex_attention(query: Tensor, key: Tensor, value: Tensor, score_mod: Callable | None = None,
                   block_mask: BlockMask | None = None, scale: float | None = None, enable_gqa: bool = False,
                   return_lse: bool = False, kernel_options=None, *, return_aux=None):
    """``softmax(score_mod(q k^T * scale) masked by block_mask) v`` for (B, H, L, E) queries and
    (B, Hkv, S, E) keys / (B, Hkv, S, Ev) values; ``enable_gqa`` lets H be a multiple of Hkv. With
    ``return_lse`` also returns the (B, H, L) log-sum-exp of the scores.

    >>> def relative_bias(score, b, h, q_idx, kv_idx):
    ...     return score + (q_idx - kv_idx)
    >>> out = flex_attention(q, k, v, score_mod=relative_bias)
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor) or t.ndim != 4:
            raise ValueError(f"flex_attention: {name} must be a 4-D tensor (B, H, seq, dim), got "
                             f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
    B, Hq, L, E = query.shape
    Bk, Hkv, S, Ek = key.shape
    if value.shape[:3] != key.shape[:3]:
        raise ValueError(f"flex_attention: key {tuple(key.shape)} and value {tuple(value.shape)} must agree in batch, "
                         f"heads and length")
    if Ek != E:
        raise ValueError(f"flex_attention: query and key must have the same embedding size, got {E} and {Ek}")
    if Bk != B:
        raise ValueError(f"flex_attention: query batch {B} and key batch {Bk} must be equal")
    if Hkv != Hq:
        if not enable_gqa:
            raise ValueError(f"flex_attention: query has {Hq} heads and key/value {Hkv}; pass enable_gqa=True for "
                             f"grouped-query attention")
        if Hq % Hkv:
            raise ValueError(f"flex_attention: the number of query heads {Hq} must be a multiple of the number of "
                             f"key/value heads {Hkv}")
        key = _ops.repeat_interleave(key, Hq // Hkv, 1)
        value = _ops.repeat_interleave(value, Hq // Hkv, 1)
    if kernel_options is not None and not isinstance(kernel_options, dict):
        raise TypeError(f"flex_attention: kernel_options must be a dict (FlexKernelOptions), got "
                        f"{type(kernel_options).__name__}")
    if block_mask is not None and not isinstance(block_mask, BlockMask):
        raise TypeError(f"flex_attention: block_mask must be a BlockMask (create_block_mask), got "
                        f"{type(block_mask).__name__}")
    scale = 1.0 / math.sqrt(E) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    if score_mod is not None:
        scores = score_mod(scores, *_indices(B, Hq, L, S))
    if block_mask is not None:
        mask = block_mask._element_mask(B, Hq, L, S)
        if not mask.all():
            scores = scores.masked_fill(Tensor._wrap(~mask), float("-inf"))
    m = scores.detach().amax(-1, keepdim=True)
    m = _ops.where(m.isfinite(), m, 0.0)  # a row with nothing to attend to: shift by 0, its exps are all 0
    p = (scores - m).exp()
    denom = p.sum(-1, keepdim=True)
    empty = denom == 0
    out = (p / _ops.where(empty, 1.0, denom)) @ value
    if not (return_lse or return_aux is not None):
        return out
    lse = _ops.where(empty, float("-inf"), _ops.where(empty, 1.0, denom).log() + m).squeeze(-1)
    if return_aux is None:
        return out, lse
    if not isinstance(return_aux, AuxRequest):
        raise TypeError(f"flex_attention: return_aux must be an AuxRequest, got {type(return_aux).__name__}")
    if return_lse:
        raise ValueError("flex_attention: give either return_lse or return_aux, not both")
    return out, AuxOutput(lse if return_aux.lse else None, scores.amax(-1) if return_aux.max_scores else None)
