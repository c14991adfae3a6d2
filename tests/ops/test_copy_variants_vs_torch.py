"""The ``*_copy`` forms of the view ops (op_db's expand_copy, permute_copy, t_copy, ... had no
tapegrad counterpart): values, dtypes, gradients and an own memory, against PyTorch."""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")


def _calls(M, x):
    return {
        "alias_copy": lambda: M.alias_copy(x), "detach_copy": lambda: M.detach_copy(x),
        "as_strided_copy": lambda: M.as_strided_copy(x, (2, 2), (1, 2), 1),
        "diagonal_copy": lambda: M.diagonal_copy(x, 1, 1, 2), "expand_copy": lambda: M.expand_copy(x[:, :1], (2, 3, 4)),
        "permute_copy": lambda: M.permute_copy(x, (2, 0, 1)), "select_copy": lambda: M.select_copy(x, 1, -1),
        "slice_copy": lambda: M.slice_copy(x, 2, 1, None, 2), "slice_copy_default": lambda: M.slice_copy(x),
        "split_copy": lambda: M.split_copy(x, 2, 2), "split_with_sizes_copy": lambda: M.split_with_sizes_copy(x, [1, 2], 1),
        "squeeze_copy": lambda: M.squeeze_copy(x[:, :1]), "squeeze_copy_dim": lambda: M.squeeze_copy(x[:, :1], 1),
        "t_copy": lambda: M.t_copy(x[0]), "transpose_copy": lambda: M.transpose_copy(x, 0, 2),
        "unbind_copy": lambda: M.unbind_copy(x, 1), "unfold_copy": lambda: M.unfold_copy(x, 2, 2, 1),
        "unsqueeze_copy": lambda: M.unsqueeze_copy(x, -1), "view_copy": lambda: M.view_copy(x, (4, 6)),
        "view_copy_dtype": lambda: M.view_copy(x.detach(), M.int64),
        "view_as_real_copy": lambda: M.view_as_real_copy(M.tensor([1 + 2j, 3 - 1j])),
        "view_as_complex_copy": lambda: M.view_as_complex_copy(M.tensor([[1.0, 2.0], [3.0, 4.0]])),
    }


@pytest.mark.parametrize("name", sorted(_calls(tg, None)))
def test_copy_variant_matches_torch(name):
    res = []
    for M in (torch, tg):
        x = M.tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
        y = _calls(M, x)[name]()
        ys = list(y) if isinstance(y, (tuple, list)) else [y]
        if ys[0].requires_grad and name != "detach_copy":  # (PyTorch's detach_copy has no derivative)
            sum((t * M.arange(1.0, t.numel() + 1, dtype=t.dtype).reshape(tuple(t.shape))).sum() for t in ys).backward()
        res.append(([t.detach().numpy().tolist() for t in ys], [str(t.dtype).split(".")[-1] for t in ys],
                    None if x.grad is None else x.grad.numpy().tolist()))
        if M is tg:  # a copy: writing to it leaves the input alone
            ys[0].detach().zero_() if ys[0].numel() else None
            assert x.detach().numpy().tolist() == np.arange(24.0).reshape(2, 3, 4).tolist()
    assert res[1] == res[0]


def test_copy_variants_take_out():
    for M in (torch, tg):
        o = M.empty(0)
        assert M.t_copy(M.arange(12.0).reshape(3, 4), out=o) is o and tuple(o.shape) == (4, 3)
