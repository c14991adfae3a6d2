"""tapegrad.func (torch.func's transforms and functional_call) against PyTorch's, in float64:
values, nesting (grad of grad, jacfwd of jacrev, vmap of grad), structured arguments (a module's
parameter dict), the per-sample-gradient and model-ensembling recipes of PyTorch's tutorials,
composition with ordinary backward(), and the errors."""
import copy
import threading

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as tnn
import tapegrad.nn.functional as tF
from tapegrad import func as tfunc

torch = pytest.importorskip("torch")
import torch.func as thfunc  # noqa: E402

R = np.random.default_rng(0)


def close(got, want, path="out"):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{path}[{i}]")
    elif isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            close(got[k], want[k], f"{path}[{k}]")
    else:
        g = got.detach().numpy() if isinstance(got, tg.Tensor) else np.asarray(got)
        w = want.detach().numpy()
        assert g.shape == w.shape, f"{path}: {g.shape} vs {w.shape}"
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=path)


def both(*arrays):
    return [tg.tensor(a) for a in arrays], [torch.tensor(a) for a in arrays]


def f_scalar(M):
    return lambda x, y: (M.sin(x) * y ** 2).sum() + (x * y).prod()


def f_multi(M):
    return lambda x, y: (M.tanh(x) * y[:3], (x ** 3).sum() * y)


X, Y = R.standard_normal(3), R.standard_normal(4)


@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1, 0), -1])
def test_grad_and_value(argnums):
    (a, b), (ta, tb) = both(X, Y[:3])
    close(tfunc.grad(f_scalar(tg), argnums)(a, b), thfunc.grad(f_scalar(torch), argnums)(ta, tb))
    close(tfunc.grad_and_value(f_scalar(tg), argnums)(a, b), thfunc.grad_and_value(f_scalar(torch), argnums)(ta, tb))


def test_grad_has_aux_and_results_detached():
    (a,), (ta,) = both(X)
    g, aux = tfunc.grad(lambda x: ((x ** 2).sum(), {"y": x.exp()}), has_aux=True)(a)
    tgw, taux = thfunc.grad(lambda x: ((x ** 2).sum(), {"y": x.exp()}), has_aux=True)(ta)
    close((g, aux), (tgw, taux))
    assert not g.requires_grad and not aux["y"].requires_grad and not a.requires_grad


def test_grad_over_a_parameter_dict():
    model = tnn.Sequential(tnn.Linear(4, 5), tnn.Tanh(), tnn.Linear(5, 2)).double()
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    tmodel.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    x = R.standard_normal((6, 4))

    def loss(M, F, m):
        return lambda p, x: F.mse_loss(M.func.functional_call(m, p, (x,)), M.zeros(6, 2, dtype=M.float64))
    p = {k: v.detach() for k, v in model.named_parameters()}
    tp = {k: v.detach() for k, v in tmodel.named_parameters()}
    close(tfunc.grad(loss(tg, tF, model))(p, tg.tensor(x)), thfunc.grad(loss(torch, torch.nn.functional, tmodel))(tp, torch.tensor(x)))
    # The module got its own parameters back, untouched.
    assert all(isinstance(v, tnn.Parameter) for v in model._modules["0"]._parameters.values())


@pytest.mark.parametrize("name", ["jacrev", "jacfwd"])
@pytest.mark.parametrize("argnums", [0, (0, 1)])
def test_jacobians(name, argnums):
    (a, b), (ta, tb) = both(X, Y)
    close(getattr(tfunc, name)(f_multi(tg), argnums)(a, b), getattr(thfunc, name)(f_multi(torch), argnums)(ta, tb))


def test_hessian_and_nesting():
    (a, b), (ta, tb) = both(X, Y[:3])
    close(tfunc.hessian(f_scalar(tg), (0, 1))(a, b), thfunc.hessian(f_scalar(torch), (0, 1))(ta, tb))
    close(tfunc.jacrev(tfunc.jacrev(f_scalar(tg)))(a, b), thfunc.jacrev(thfunc.jacrev(f_scalar(torch)))(ta, tb))
    g3 = tfunc.grad(tfunc.grad(tfunc.grad(lambda x: x.sin() * x)))(tg.tensor(0.7))
    close(g3, thfunc.grad(thfunc.grad(thfunc.grad(lambda x: x.sin() * x)))(torch.tensor(0.7)))
    # A closure over the outer transform's variable is differentiated too.
    h = tfunc.grad(lambda x: tfunc.grad(lambda y: (x * y ** 2))(tg.tensor(1.5)))(tg.tensor(2.0))
    close(h, thfunc.grad(lambda x: thfunc.grad(lambda y: (x * y ** 2))(torch.tensor(1.5)))(torch.tensor(2.0)))


def test_vjp_jvp_linearize():
    (a, b), (ta, tb) = both(X, Y)
    out, fn = tfunc.vjp(f_multi(tg), a, b)
    tout, tfn = thfunc.vjp(f_multi(torch), ta, tb)
    close(out, tout)
    ct = [R.standard_normal(3), R.standard_normal(4)]
    close(fn(tuple(tg.tensor(c) for c in ct)), tfn(tuple(torch.tensor(c) for c in ct)))
    close(fn(tuple(tg.tensor(c) for c in ct)), tfn(tuple(torch.tensor(c) for c in ct)))  # callable again
    with pytest.raises(RuntimeError, match="structure"):
        fn([tg.tensor(c) for c in ct])
    (u, v), (tu, tv) = both(R.standard_normal(3), R.standard_normal(4))
    close(tfunc.jvp(f_multi(tg), (a, b), (u, v)), thfunc.jvp(f_multi(torch), (ta, tb), (tu, tv)))
    out, jfn = tfunc.linearize(lambda x: x.sin() * x, a)
    tout, tjfn = thfunc.linearize(lambda x: x.sin() * x, ta)
    close((out, jfn(u), jfn(u * 2)), (tout, tjfn(tu), tjfn(tu * 2)))


def test_per_sample_gradients_recipe():
    """PyTorch's per-sample-gradients tutorial: vmap(grad(loss over functional_call))."""
    def model_and_loss(M, nn, F, seed_model=None):
        model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).double()
        return model

    model = model_and_loss(tg, tnn, tF)
    tmodel = model_and_loss(torch, torch.nn, torch.nn.functional)
    tmodel.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    data, targets = R.standard_normal((7, 1, 6, 6)), R.integers(0, 5, 7)

    def run(M, F, m, data, targets):
        params = {k: v.detach() for k, v in m.named_parameters()}
        buffers = {k: v.detach() for k, v in m.named_buffers()}

        def compute_loss(params, buffers, sample, target):
            batch, targets = sample.unsqueeze(0), target.unsqueeze(0)
            predictions = M.func.functional_call(m, (params, buffers), (batch,))
            return F.cross_entropy(predictions, targets)
        return M.func.vmap(M.func.grad(compute_loss), in_dims=(None, None, 0, 0))(params, buffers, data, targets)

    got = run(tg, tF, model, tg.tensor(data), tg.tensor(targets))
    want = run(torch, torch.nn.functional, tmodel, torch.tensor(data), torch.tensor(targets))
    close(got, want)
    # Each row is that sample's ordinary gradient.
    model.zero_grad()
    tF.cross_entropy(model(tg.tensor(data[2:3])), tg.tensor(targets[2:3])).backward()
    close(got["3.weight"][2], torch.tensor(model[3].weight.grad.numpy()))


def test_model_ensembling_recipe():
    models = [tnn.Linear(4, 3).double() for _ in range(5)]
    tmodels = [torch.nn.Linear(4, 3).double() for _ in range(5)]
    for m, tm in zip(models, tmodels):
        tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()})
    x = R.standard_normal((2, 4))

    def run(M, ms, x):
        params, buffers = M.func.stack_module_state(ms)
        base = copy.deepcopy(ms[0])
        return params, M.func.vmap(lambda p, b, x: M.func.functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))(
            params, buffers, x)

    (p, out), (tp, tout) = run(tg, models, tg.tensor(x)), run(torch, tmodels, torch.tensor(x))
    close((p, out), (tp, tout))
    assert p["weight"].requires_grad and p["weight"].grad_fn is None


def test_vmap_structures_and_out_dims():
    (a, b), (ta, tb) = both(R.standard_normal((4, 3)), R.standard_normal((3, 4)))

    def fn(M):
        return lambda d: {"s": d["x"] * d["y"], "t": (d["x"].sum(), d["y"] * 2)}
    got = tfunc.vmap(fn(tg), in_dims=({"x": 0, "y": 1},), out_dims=-1)({"x": a, "y": b})
    want = thfunc.vmap(fn(torch), in_dims=({"x": 0, "y": 1},), out_dims=-1)({"x": ta, "y": tb})
    close(got["s"], want["s"])
    close(got["t"], want["t"])
    assert tg.vmap is tfunc.vmap


def test_composes_with_backward():
    """A gradient penalty: the input gradient from func.grad, then backward() into the weights."""
    w = tg.tensor(R.standard_normal(3), requires_grad=True)
    tw = torch.tensor(w.detach().numpy(), requires_grad=True)
    x, tx = tg.tensor(X), torch.tensor(X)
    gx = tfunc.grad(lambda x: (x * w).tanh().sum())(x)
    tgx = thfunc.grad(lambda x: (x * tw).tanh().sum())(tx)
    assert gx.requires_grad and tgx.requires_grad
    (gx ** 2).sum().backward()
    (tgx ** 2).sum().backward()
    close(w.grad, tw.grad)
    # An input that requires grad: the gradient keeps its history to it, as PyTorch's.
    xr, txr = tg.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    tfunc.grad(lambda x: (x ** 3).sum())(xr).sum().backward()
    thfunc.grad(lambda x: (x ** 3).sum())(txr).sum().backward()
    close(xr.grad, txr.grad)


def test_functional_call_buffers_ties_strict_and_restore():
    bn = tnn.BatchNorm1d(3).double()
    rm = tg.zeros(3, dtype=tg.float64)
    tfunc.functional_call(bn, {"running_mean": rm}, tg.tensor(R.standard_normal((5, 3))))
    assert rm.abs().sum().item() > 0 and bn.running_mean.abs().sum().item() == 0  # the given buffer was updated

    class Tied(tnn.Module):
        def __init__(self):
            super().__init__()
            self.a = tnn.Linear(2, 2, bias=False)
            self.b = tnn.Linear(2, 2, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))
    m = Tied()
    w = tg.eye(2)
    x = tg.tensor([[1.0, 2.0]])
    np.testing.assert_array_equal(tfunc.functional_call(m, {"a.weight": w}, x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="tied"):
        tfunc.functional_call(m, {"a.weight": w, "b.weight": w * 2}, x)
    tfunc.functional_call(m, {"a.weight": w}, x, strict=True)  # its tied name is given through it
    with pytest.raises(RuntimeError, match="Missing key\\(s\\): 'bias'"):
        tfunc.functional_call(tnn.Linear(2, 2), {"weight": w}, x, strict=True)
    with pytest.raises(RuntimeError, match="Unexpected key\\(s\\): 'c'"):
        tfunc.functional_call(m, {"a.weight": w, "c": w}, x, strict=True)
    with pytest.raises(ValueError, match="multiple dictionaries"):
        tfunc.functional_call(m, ({"a.weight": w}, {"a.weight": w}), x)
    before = m.a.weight
    with pytest.raises(RuntimeError):
        tfunc.functional_call(m, {"a.weight": tg.ones(3, 3)}, x)  # a shape error inside the call
    assert m.a.weight is before and m.b.weight is before
    assert tnn.utils.stateless.functional_call is tfunc.functional_call


def test_errors_name_the_transform():
    x = tg.tensor(X)
    with pytest.raises(RuntimeError, match="scalar Tensor.*shape \\(3,\\)"):
        tfunc.grad(lambda x: x * 2)(x)
    with pytest.raises(RuntimeError, match="argnums"):
        tfunc.grad(lambda x: x.sum(), argnums=2)(x)
    with pytest.raises(RuntimeError, match="floating-point"):
        tfunc.grad(lambda x: x.sum())(tg.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="Tensor"):
        tfunc.grad(lambda x: x * 2)(2.0)
    with pytest.raises(RuntimeError, match="tuples"):
        tfunc.jvp(lambda x: x, x, x)
    with pytest.raises(ValueError, match="same size"):
        tfunc.vmap(lambda a, b: a + b)(tg.ones(3, 2), tg.ones(4, 2))
    with pytest.raises(RuntimeError, match="cotangent"):
        tfunc.vjp(lambda x: x * 2, x)[1](tg.ones(4))


def test_threads_run_transforms_independently():
    """Each thread's nesting depth is its own: a transform in one thread does not make another
    thread's results keep their graph."""
    errors = []

    def work(seed):
        try:
            x = tg.tensor(np.random.default_rng(seed).standard_normal(5))
            for _ in range(50):
                g = tfunc.grad(lambda x: tfunc.grad(lambda y: (y ** 3).sum())(x).sum())(x)
                np.testing.assert_allclose(g.numpy(), 6 * x.numpy(), rtol=1e-12)
                assert not g.requires_grad
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("pattern, lengths", [
    ("b h w c -> b c h w", {}), ("b h w c -> (b h) w c", {}), ("b h w c -> h (b w) c", {}),
    ("b (h p) w c -> b h (p w) c", {"p": 2}), ("b h w c -> b (c h w)", {}), ("... c -> c ...", {}),
    ("b ... -> (b ...)", {}), ("b h w c -> b 1 h w c", {}), ("b h w c -> h b w c", {}),
    ("b (h1 h2) (w1 w2) c -> (b h1 w1) h2 w2 c", {"h2": 2, "w2": 5}),
])
def test_rearrange(pattern, lengths):
    a = R.standard_normal((2, 4, 10, 3))
    x = tg.tensor(a, requires_grad=True)
    out = tfunc.rearrange(x, pattern, **lengths)
    want = thfunc.rearrange(torch.tensor(a), pattern, **lengths)
    close(out, want)
    out.backward(tg.tensor(np.arange(out.numel(), dtype=np.float64).reshape(out.shape)))
    tx = torch.tensor(a, requires_grad=True)
    thfunc.rearrange(tx, pattern, **lengths).backward(torch.arange(out.numel(), dtype=torch.float64).reshape(out.shape))
    close(x.grad, tx.grad)


def test_rearrange_stacks_a_list_and_names_bad_patterns():
    parts = [R.standard_normal((3, 4)) for _ in range(5)]
    close(tfunc.rearrange([tg.tensor(p) for p in parts], "n h w -> h (n w)"),
          thfunc.rearrange([torch.tensor(p) for p in parts], "n h w -> h (n w)"))
    x = tg.zeros(2, 6)
    for bad, match in [("a b -> a", "only one side"), ("a (b c) -> a b c", "cannot infer"), ("a b c -> a b c", "has 3 dims"),
                       ("a b -> a b", None), ("a (b -> a b", "brackets"), ("a a -> a", "twice")]:
        if match is None:
            tfunc.rearrange(x, bad)
            continue
        with pytest.raises(ValueError, match=match):
            tfunc.rearrange(x, bad)
    with pytest.raises(ValueError, match="cannot be split"):
        tfunc.rearrange(x, "a (b c) -> a b c", b=4)


def test_replace_all_batch_norm_modules_():
    m = tnn.Sequential(tnn.Conv2d(1, 2, 3), tnn.BatchNorm2d(2))
    tfunc.replace_all_batch_norm_modules_(m)
    bn = m[1]
    assert bn.running_mean is None and bn.running_var is None and not bn.track_running_stats
    x = tg.tensor(R.standard_normal((3, 1, 5, 5)))
    m.eval()  # without running statistics, eval mode normalises with the batch's own, as PyTorch's
    out = m(x.float())
    assert out.shape == (3, 2, 3, 3)
