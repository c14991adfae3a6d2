"""tapegrad.nn.common_types: the aliases custom layers annotate with, as PyTorch's module has them."""
import typing

import pytest

from tapegrad.nn import common_types as ct


def test_aliases_are_typing_unions_of_ints_and_tuples():
    assert typing.get_args(ct._size_2_t) == (int, typing.Tuple[int, int])
    assert typing.get_args(ct._size_any_t) == (int, typing.Tuple[int, ...])
    torch = pytest.importorskip("torch")
    import torch.nn.common_types as tct
    names = [n for n in vars(tct) if n.startswith("_") and n.endswith("_t") and not n.startswith("__")]
    assert names and [n for n in names if not hasattr(ct, n)] == []
