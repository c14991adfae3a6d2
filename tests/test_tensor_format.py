"""``format(t, spec)``: the number of a 0-d tensor, PyTorch's rule for everything else."""
import pytest

import tapegrad


def test_zero_dim_formats_its_number():
    assert f"{tapegrad.tensor(1.23456):.4f}" == "1.2346"
    assert "{:+.2f}".format(tapegrad.tensor(2.5, requires_grad=True)) == "+2.50"
    assert f"{tapegrad.tensor(3):>4d}" == "   3"
    assert f"{tapegrad.nn.Parameter(tapegrad.tensor(1.5)):.1f}" == "1.5"  # PyTorch refuses subclasses


def test_other_tensors_take_only_the_empty_spec():
    t = tapegrad.tensor([1.0, 2.0])
    assert f"{t}" == repr(t)
    with pytest.raises(TypeError, match="unsupported format string"):
        f"{t:.4f}"
    with pytest.raises(TypeError, match="unsupported format string"):
        f"{tapegrad.tensor([1.5]):.4f}"  # one element but 1-D: PyTorch refuses it too


def test_matches_torch():
    torch = pytest.importorskip("torch")
    for v in (1.23456, -2.0, 7):
        for spec in ("", ".3f", "+.2e", ">10"):
            if isinstance(v, float) or "f" not in spec and "e" not in spec:
                assert format(tapegrad.tensor(v), spec) == format(torch.tensor(v), spec)
