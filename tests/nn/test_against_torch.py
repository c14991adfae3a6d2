"""Optional: compare a few layers, losses and optimizers with PyTorch when it is importable
(tapegrad itself never imports torch). Skipped otherwise."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad  # noqa: E402
import tapegrad.nn as nn  # noqa: E402
import tapegrad.nn.functional as F  # noqa: E402
import tapegrad.optim as optim  # noqa: E402

pytestmark = pytest.mark.torch
R = np.random.default_rng(0)


def both(a, grad=True):
    return (tapegrad.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad))


@pytest.mark.parametrize("name,kw", [
    ("cross_entropy", dict(label_smoothing=0.1)),
    ("cross_entropy", dict(ignore_index=2, reduction="sum")),
    ("nll_loss", dict()),
])
def test_classification_losses_and_grads(name, kw):
    x = R.standard_normal((6, 4))
    y = np.array([0, 3, 2, 1, 2, 0])
    w = np.array([0.5, 1.0, 2.0, 1.5])
    a, b = both(x)
    la = getattr(F, name)(a, tapegrad.tensor(y), weight=tapegrad.tensor(w), **kw)
    lb = getattr(torch.nn.functional, name)(b, torch.tensor(y), weight=torch.tensor(w), **kw)
    la.backward()
    lb.backward()
    np.testing.assert_allclose(la.item(), lb.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name,kw", [("binary_cross_entropy_with_logits", dict(pos_weight=3.0)),
                                     ("smooth_l1_loss", dict(beta=0.5)), ("huber_loss", dict(delta=0.7)),
                                     ("kl_div", dict(reduction="batchmean")), ("mse_loss", dict()),
                                     ("l1_loss", dict())])
def test_pointwise_losses_and_grads(name, kw):
    x = R.standard_normal((5, 3))
    t = R.random((5, 3))
    a, b = both(x)
    kwa = {k: (tapegrad.tensor(v) if k == "pos_weight" else v) for k, v in kw.items()}
    kwb = {k: (torch.tensor(v) if k == "pos_weight" else v) for k, v in kw.items()}
    la = getattr(F, name)(a, tapegrad.tensor(t), **kwa)
    lb = getattr(torch.nn.functional, name)(b, torch.tensor(t), **kwb)
    la.backward()
    lb.backward()
    np.testing.assert_allclose(la.item(), lb.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_layers_with_copied_weights():
    ours = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.LayerNorm(5), nn.GELU()).double()
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5),
                                 torch.nn.LayerNorm(5), torch.nn.GELU()).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = R.standard_normal((4, 2, 8, 8))
    for _ in range(2):  # training mode twice (running statistics), then eval
        np.testing.assert_allclose(ours(tapegrad.tensor(x)).detach().numpy(),
                                   theirs(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-12)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k].numpy(), v.numpy(), rtol=1e-12)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(tapegrad.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                     ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
                                     ("AdamW", dict(lr=0.01)), ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
                                     ("Adadelta", dict(weight_decay=0.01)),
                                     ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizers_match_torch(name, kw, dtype):
    p0 = R.standard_normal((4, 3)).astype(dtype)
    pa = nn.Parameter(tapegrad.tensor(p0))
    pb = torch.nn.Parameter(torch.tensor(p0))
    oa = getattr(optim, name)([pa], **kw)
    ob = getattr(torch.optim, name)([pb], foreach=False, **kw)
    for step in range(6):
        g = R.standard_normal((4, 3)).astype(dtype)
        pa.grad = tapegrad.tensor(g)
        pb.grad = torch.tensor(g)
        oa.step()
        ob.step()
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(),
                                   rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-7 if dtype == "float32" else 0,
                                   err_msg=f"{name} step {step}")
    sa, sb = oa.state_dict(), ob.state_dict()
    assert sa["param_groups"][0].keys() >= {k for k in sb["param_groups"][0] if k not in ("foreach",)} - {
        "decoupled_weight_decay", "capturable", "differentiable", "fused"}
    assert set(sa["state"][0]) == set(sb["state"][0])


def test_schedulers_match_torch():
    for make in (lambda m, o: m.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
                 lambda m, o: m.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=12),
                 lambda m, o: m.lr_scheduler.MultiStepLR(o, [2, 5], gamma=0.3)):
        oa = optim.SGD([nn.Parameter(tapegrad.zeros(1))], lr=0.1, momentum=0.9)
        ob = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        sa, sb = make(optim, oa), make(torch.optim, ob)
        for _ in range(11):
            oa.step()
            ob.step()
            sa.step()
            sb.step()
            assert sa.get_last_lr() == pytest.approx(sb.get_last_lr(), rel=1e-12)
            assert oa.param_groups[0]["momentum"] == pytest.approx(ob.param_groups[0]["momentum"])


def test_safetensors_interop_with_torch(tmp_path):
    from safetensors.torch import load_file, save_file
    model = nn.Linear(3, 2)
    tapegrad.save(model.state_dict(), tmp_path / "a.safetensors")
    tl = torch.nn.Linear(3, 2)
    tl.load_state_dict(load_file(str(tmp_path / "a.safetensors")))
    x = R.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(tl(torch.tensor(x)).detach().numpy(), model(tapegrad.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    save_file(tl.state_dict(), str(tmp_path / "b.safetensors"))
    back = nn.Linear(3, 2)
    back.load_state_dict(tapegrad.load(tmp_path / "b.safetensors"))
    assert np.array_equal(back.weight.detach().numpy(), tl.weight.detach().numpy())


def test_conv1d_adaptive_max_pool_and_upsample_modules_match_torch():
    x = R.standard_normal((2, 4, 9))
    tm = torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2).double()
    m = nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2)
    assert tuple(m.weight.shape) == tuple(tm.weight.shape)
    with tapegrad.no_grad():
        m.weight.copy_(tapegrad.tensor(tm.weight.detach().numpy()))
        m.bias.copy_(tapegrad.tensor(tm.bias.detach().numpy()))
    np.testing.assert_allclose(m(tapegrad.tensor(x, dtype=tapegrad.float32)).detach().numpy(),
                               tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    img = R.standard_normal((1, 2, 5, 7))
    a = torch.nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(torch.tensor(img))
    b = nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(tapegrad.tensor(img))
    np.testing.assert_array_equal(b[0].numpy(), a[0].numpy())
    np.testing.assert_array_equal(b[1].numpy(), a[1].numpy())
    for kw in (dict(scale_factor=2), dict(size=(3, 4), mode="bilinear"), dict(scale_factor=0.6, mode="bilinear")):
        np.testing.assert_allclose(nn.Upsample(**kw)(tapegrad.tensor(img)).numpy(),
                                   torch.nn.Upsample(**kw)(torch.tensor(img)).numpy(), atol=1e-12)
