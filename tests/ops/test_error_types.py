"""Bad input raises PyTorch's exception type (code written against PyTorch catches that type):
a bad rounding_mode, a wrong-shaped class-index target, einsum arity, linspace to bool, and the
cases a sweep of bad calls against PyTorch 2.13 turned up."""
import pytest

import tapegrad

CALLS = {
    "div_rounding_mode": (RuntimeError, lambda M: M.div(M.ones(2), 2, rounding_mode="round")),
    "method_rounding_mode": (RuntimeError, lambda M: M.ones(2).div(M.ones(2), rounding_mode="bad")),
    "cross_entropy_2d_target": (RuntimeError, lambda M: M.nn.functional.cross_entropy(M.ones(2, 3), M.zeros(2, 2, dtype=M.int64))),
    "nll_loss_2d_target": (RuntimeError, lambda M: M.nn.functional.nll_loss(M.ones(2, 3), M.zeros(2, 2, dtype=M.int64))),
    "cross_entropy_spatial_target": (RuntimeError, lambda M: M.nn.functional.cross_entropy(M.ones(2, 3, 4), M.zeros(2, 5, dtype=M.int64))),
    "cross_entropy_prob_target": (RuntimeError, lambda M: M.nn.functional.cross_entropy(M.ones(2, 3), M.zeros(2, 4))),
    "cross_entropy_batch": (ValueError, lambda M: M.nn.functional.cross_entropy(M.ones(2, 3), M.zeros(3, dtype=M.int64))),
    "einsum_fewer": (RuntimeError, lambda M: M.einsum("ij,jk->ik", M.ones(2, 3))),
    "einsum_more": (RuntimeError, lambda M: M.einsum("ij->ij", M.ones(2, 3), M.ones(2, 3))),
    "linspace_bool": (NotImplementedError, lambda M: M.linspace(0, 1, 5, dtype=M.bool)),
    "logspace_bool": (NotImplementedError, lambda M: M.logspace(0, 1, 5, dtype=M.bool)),
    # a sweep of bad calls against PyTorch 2.13 (session 25)
    "linear_0d_input": (RuntimeError, lambda M: M.nn.functional.linear(M.ones(()), M.ones(4, 1))),
    "nll_loss_integer_input": (NotImplementedError, lambda M: M.nn.functional.nll_loss(M.ones(2, 3, dtype=M.int64),
                                                                                       M.tensor([0, 1]))),
    "interpolate_2d_input": (NotImplementedError, lambda M: M.nn.functional.interpolate(M.ones(4, 4), scale_factor=2)),
    "batch_norm_channels": (RuntimeError, lambda M: M.nn.BatchNorm2d(3)(M.ones(1, 4, 5, 5))),
    "cat_empty": (ValueError, lambda M: M.cat([])),
    "index_select_2d_index": (IndexError, lambda M: M.index_select(M.ones(3, 3), 0, M.tensor([[0]]))),
    "float_of_two_elements": (ValueError, lambda M: float(M.ones(2))),
    "int_of_two_elements": (ValueError, lambda M: int(M.ones(2))),
    "item_of_two_elements": (RuntimeError, lambda M: M.ones(2).item()),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_raises_pytorchs_type(name):
    expected, call = CALLS[name]
    with pytest.raises(expected) as e:
        call(tapegrad)
    assert type(e.value) is expected


@pytest.mark.parametrize("name", sorted(CALLS))
def test_same_type_as_torch(name):
    torch = pytest.importorskip("torch")
    types = []
    for M in (tapegrad, torch):
        with pytest.raises(Exception) as e:
            CALLS[name][1](M)
        types.append(type(e.value))
    assert types[0] is types[1]


@pytest.mark.parametrize("name, call", [
    ("fill_", lambda: tapegrad.ones(3, 1).expand(3, 4).fill_(2.0)),
    ("fill_", lambda: tapegrad.ones(3, 1).expand(3, 4).zero_()),
    (r"add\(\)", lambda: tapegrad.add(tapegrad.ones(3, 4), 1.0, out=tapegrad.empty(3, 1).expand(3, 4))),
])
def test_writes_into_an_expanded_view_raise_runtime_error_naming_the_op(name, call):
    """numpy's bare ``ValueError: assignment destination is read-only`` named neither the op nor
    the tensor; every other in-place op already raised a RuntimeError naming itself."""
    with pytest.raises(RuntimeError, match=name + ".*read-only or expanded view"):
        call()
