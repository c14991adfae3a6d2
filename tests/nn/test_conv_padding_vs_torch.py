"""nn.Conv1d / nn.Conv2d padding modes against PyTorch (skipped without torch)."""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"])
@pytest.mark.parametrize("kernel", [3, (2, 4)])
def test_conv2d_padding_modes_match_torch(mode, padding, kernel):
    tm = torch.nn.Conv2d(2, 3, kernel, padding=padding, padding_mode=mode).double()
    gm = tg.nn.Conv2d(2, 3, kernel, padding=padding, padding_mode=mode, dtype=tg.float64)
    gm.load_state_dict({k: tg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).random((2, 2, 7, 6))
    tx = torch.tensor(x, requires_grad=True)
    gx = tg.tensor(x, requires_grad=True)
    ty, gy = tm(tx), gm(gx)
    np.testing.assert_allclose(gy.detach().numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    ty.square().sum().backward()
    gy.square().sum().backward()
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gm.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv1d_padding_modes_match_torch(mode):
    tm = torch.nn.Conv1d(2, 3, 4, padding="same", padding_mode=mode).double()
    gm = tg.nn.Conv1d(2, 3, 4, padding="same", padding_mode=mode, dtype=tg.float64)
    gm.load_state_dict({k: tg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = np.random.default_rng(1).random((2, 2, 9))
    np.testing.assert_allclose(gm(tg.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-10)


def test_conv1d_errors_name_conv1d_and_its_shapes():
    """conv1d runs as conv2d on a unit-height image; its errors said "conv2d" and gave 4-D shapes."""
    for call, torch_call in (
            (lambda: tg.nn.functional.conv1d(tg.ones(1, 4, 5), tg.ones(4, 2, 3), groups=3),
             lambda: torch.nn.functional.conv1d(torch.ones(1, 4, 5), torch.ones(4, 2, 3), groups=3)),
            (lambda: tg.nn.functional.conv1d(tg.ones(1, 3, 5), tg.ones(4, 2, 3)),
             lambda: torch.nn.functional.conv1d(torch.ones(1, 3, 5), torch.ones(4, 2, 3)))):
        with pytest.raises(RuntimeError):
            torch_call()
        with pytest.raises(RuntimeError, match=r"^conv1d \(input \(1, \d, 5\), weight \(4, 2, 3\)\): ") as e:
            call()
        assert "conv2d" not in str(e.value)
