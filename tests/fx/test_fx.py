"""tapegrad.fx against PyTorch's torch.fx (where torch is importable): the same graphs (ops and
target names), outputs and gradients in float64; graph surgery, Interpreter / Transformer,
ShapeProp, pickling, hand-built graphs (e3nn's style), trace errors, and the function swap's
restoration and thread safety."""
from __future__ import annotations

import copy
import operator
import pickle
import threading

import numpy as np
import pytest

import tapegrad
import tapegrad.fx as fx
from tapegrad import nn
from tapegrad.nn import functional as F


# ---------------------------------------------------------------- models written once for both libraries
def make_models(lib):
    lnn, LF = lib.nn, lib.nn.functional

    class MLP(lnn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = lnn.Linear(4, 8)
            self.fc2 = lnn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(LF.relu(self.fc1(x))).softmax(-1)

    class ConvNet(lnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lnn.Conv2d(2, 4, 3, padding=1)
            self.bn = lnn.BatchNorm2d(4)
            self.head = lnn.Linear(4, 2)

        def forward(self, x):
            h = lib.relu(self.bn(self.conv(x)))
            h = LF.max_pool2d(h, 2)
            return self.head(h.mean(dim=(2, 3)))

    class Residual(lnn.Module):
        def __init__(self):
            super().__init__()
            self.body = lnn.Sequential(lnn.Linear(5, 5), lnn.Tanh(), lnn.Linear(5, 5))
            self.scale = lnn.Parameter(lib.ones(5, dtype=lib.float64))
            self.register_buffer("shift", lib.full((5,), 0.5, dtype=lib.float64))

        def forward(self, x):
            return lib.sigmoid(x + self.body(x) * self.scale - self.shift) + 2 * x

    class Shapes(lnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = lnn.Linear(6, 6)

        def forward(self, x):
            b = x.size(0)
            y = self.fc(x).view(b, 2, 3).transpose(1, 2)
            z = lib.cat([y, -y], dim=x.dim() - 1)
            return z.reshape(x.shape[0], -1).sum(1, keepdim=True) / x.size(1) + lib.exp(x[:, :1])

    class Flagged(lnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = lnn.Linear(3, 3)

        def forward(self, x, double):
            y = self.fc(x)
            if double:
                y = y * 2
            return y

    return {"mlp": MLP, "conv": ConvNet, "residual": Residual, "shapes": Shapes}, Flagged


INPUTS = {"mlp": (3, 4), "conv": (2, 2, 6, 6), "residual": (4, 5), "shapes": (2, 6)}


def _target_name(node, torch=None):
    """A node's target, with the library's own name replaced by ``lib`` so graphs compare."""
    t = node.target
    if isinstance(t, str):
        return t
    name = getattr(t, "__name__", repr(t))
    return name


def _structure(gm, torch=None):
    return [(n.op, _target_name(n)) for n in gm.graph.nodes]


def _copy_weights(tmod, gmod):
    import torch
    with torch.no_grad():
        for (n1, p1), (n2, p2) in zip(tmod.state_dict().items(), gmod.state_dict().items()):
            assert n1 == n2
            p1.copy_(torch.from_numpy(np.asarray(p2.numpy()).copy()))


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_traced_module_matches_eager_and_pytorch(name):
    models, _ = make_models(tapegrad)
    tapegrad.manual_seed(0)
    m = models[name]().double()
    gm = fx.symbolic_trace(m)
    gm.graph.lint()
    x = tapegrad.randn(*INPUTS[name], dtype=tapegrad.float64, requires_grad=True)
    out = gm(x)
    np.testing.assert_allclose(out.detach().numpy(), m(x).detach().numpy(), rtol=1e-12, atol=1e-12)
    out.pow(2).sum().backward()
    grads = [x.grad.numpy()] + [p.grad.numpy() for p in m.parameters()]

    torch = pytest.importorskip("torch")
    tmodels, _ = make_models(torch)
    tm = tmodels[name]().double()
    _copy_weights(tm, m)
    tgm = torch.fx.symbolic_trace(tm)
    assert _structure(gm) == _structure(tgm), (gm.code, tgm.code)
    tx = torch.from_numpy(x.detach().numpy().copy()).requires_grad_(True)
    tout = tgm(tx)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    tout.pow(2).sum().backward()
    tgrads = [tx.grad.numpy()] + [p.grad.numpy() for p in tm.parameters()]
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-12)


def test_concrete_args_specialise_control_flow():
    _, Flagged = make_models(tapegrad)
    m = Flagged().double()
    gm = fx.symbolic_trace(m, concrete_args={"double": True})
    x = tapegrad.randn(2, 3, dtype=tapegrad.float64)
    np.testing.assert_allclose(gm(x, True).detach().numpy(), (m.fc(x) * 2).detach().numpy())
    with pytest.raises(AssertionError, match="double has been specialized to have value True"):
        gm(x, False)
    torch = pytest.importorskip("torch")
    _, TFlagged = make_models(torch)
    tgm = torch.fx.symbolic_trace(TFlagged().double(), concrete_args={"double": True})
    assert _structure(gm) == _structure(tgm)


def test_control_flow_on_a_proxy_is_a_trace_error():
    def f(x):
        if x.sum() > 0:
            return x
        return -x
    with pytest.raises(fx.proxy.TraceError, match="symbolically traced variables cannot be used as inputs to "
                                                  "control flow"):
        fx.symbolic_trace(f)

    def g(x):
        return [y for y in x]
    with pytest.raises(fx.proxy.TraceError, match="Proxy object cannot be iterated"):
        fx.symbolic_trace(g)

    def h(x):
        return len(x)
    with pytest.raises(RuntimeError, match="'len' is not supported in symbolic tracing"):
        fx.symbolic_trace(h)


def test_function_swap_is_restored_after_an_error_mid_trace():
    relu, cat, add = tapegrad.relu, tapegrad.cat, tapegrad.Tensor.__add__

    def f(x):
        tapegrad.relu(x)
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        fx.symbolic_trace(f)
    assert tapegrad.relu is relu and tapegrad.cat is cat and tapegrad.Tensor.__add__ is add
    assert nn.Module.__call__.__name__ == "__call__" and not hasattr(nn.Module.__call__, "__wrapped__")


def test_eager_ops_in_another_thread_during_a_trace():
    started, release = threading.Event(), threading.Event()
    results = []

    def slow(x):
        y = tapegrad.relu(x) + 1
        started.set()
        release.wait(10)
        return tapegrad.cat([y, y])

    def eager():
        started.wait(10)
        a = tapegrad.arange(-3.0, 3.0)
        results.append((tapegrad.relu(a) + tapegrad.cat([a, a])[:6]).numpy())
        release.set()

    t = threading.Thread(target=eager)
    t.start()
    gm = fx.symbolic_trace(slow)
    t.join()
    a = np.arange(-3.0, 3.0)
    np.testing.assert_array_equal(results[0], np.maximum(a, 0) + a)
    x = tapegrad.randn(3)
    np.testing.assert_allclose(gm(x).numpy(), np.concatenate([np.maximum(x.numpy(), 0) + 1] * 2))


def test_tensor_on_the_left_of_a_proxy():
    c = tapegrad.tensor([1.0, 2.0])

    def f(x):
        return c * x + c

    gm = fx.symbolic_trace(f)
    assert [n.target for n in gm.graph.nodes if n.op == "call_function"] == [operator.mul, operator.add]
    np.testing.assert_allclose(gm(tapegrad.tensor([3.0, 4.0])).numpy(), [4.0, 10.0])


# ---------------------------------------------------------------- graph surgery
def _mlp():
    models, _ = make_models(tapegrad)
    tapegrad.manual_seed(1)
    return models["mlp"]().double()


def test_replace_relu_by_gelu_and_insert_nodes():
    m = _mlp()
    gm = fx.symbolic_trace(m)
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is F.relu:
            node.target = F.gelu
            with gm.graph.inserting_after(node):
                doubled = gm.graph.call_function(operator.mul, (node, 2.0))
            node.replace_all_uses_with(doubled, delete_user_cb=lambda u: u is not doubled)
    gm.graph.lint()
    gm.recompile()
    assert "relu = tapegrad.gelu(fc1)" in gm.code and "mul = relu * 2.0" in gm.code
    x = tapegrad.randn(2, 4, dtype=tapegrad.float64)
    expected = m.fc2(F.gelu(m.fc1(x)) * 2.0).softmax(-1)
    np.testing.assert_allclose(gm(x).detach().numpy(), expected.detach().numpy(), rtol=1e-12)


def test_dead_code_elimination_and_erase():
    def f(x):
        unused = tapegrad.exp(x) * 3  # noqa: F841
        return x + 1
    gm = fx.symbolic_trace(f)
    assert len(gm.graph.nodes) == 5
    assert gm.graph.eliminate_dead_code()
    gm.recompile()
    assert [n.op for n in gm.graph.nodes] == ["placeholder", "call_function", "output"]
    (add,) = [n for n in gm.graph.nodes if n.op == "call_function"]
    with pytest.raises(RuntimeError, match="still had 1 users"):
        gm.graph.erase_node(add)


def test_node_api():
    g = fx.Graph()
    x = g.placeholder("x")
    y = g.call_function(tapegrad.relu, (x,))
    z = g.call_method("sum", (y,), {"dim": 0})
    out = g.output(z)
    assert list(x.users) == [y] and y.all_input_nodes == [x] and out.args == (z,)
    assert y.next is z and z.prev is y
    w = g.call_function(tapegrad.sigmoid, (x,))  # goes last, before nothing: move it
    y.append(w)
    assert list(g.nodes) == [x, y, w, z, out]
    z.replace_input_with(y, w)
    assert list(y.users) == [] and list(w.users) == [z]
    g.erase_node(y)
    assert fx.map_arg((z, [w, 3]), lambda n: n.name) == ("sum_1", ["sigmoid", 3])
    with pytest.raises(NotImplementedError):
        z.args[0] if False else z.kwargs.update({"dim": 1})
    g.lint()
    gm = fx.GraphModule(nn.Module(), g)
    t = tapegrad.randn(3, 2)
    np.testing.assert_allclose(gm(t).numpy(), tapegrad.sigmoid(t).sum(dim=0).numpy(), rtol=1e-6)


def test_replace_pattern():
    def f(x, w):
        a = tapegrad.relu(tapegrad.matmul(x, w))
        b = tapegrad.relu(tapegrad.matmul(a, w))
        return a + b

    def pattern(x, w):
        return tapegrad.relu(tapegrad.matmul(x, w))

    def replacement(x, w):
        return tapegrad.sigmoid(tapegrad.matmul(x, w))

    gm = fx.symbolic_trace(f)
    matches = fx.replace_pattern(gm, pattern, replacement)
    assert len(matches) == 2
    assert [n.target for n in gm.graph.nodes if n.op == "call_function"].count(tapegrad.sigmoid) == 2
    x, w = tapegrad.randn(3, 3, dtype=tapegrad.float64), tapegrad.randn(3, 3, dtype=tapegrad.float64)
    a = tapegrad.sigmoid(x @ w)
    np.testing.assert_allclose(gm(x, w).numpy(), (a + tapegrad.sigmoid(a @ w)).numpy(), rtol=1e-12)


# ---------------------------------------------------------------- Interpreter, Transformer, ShapeProp
def test_interpreter_and_transformer():
    m = _mlp()
    gm = fx.symbolic_trace(m)
    x = tapegrad.randn(2, 4, dtype=tapegrad.float64)
    np.testing.assert_allclose(fx.Interpreter(gm).run(x).detach().numpy(), gm(x).detach().numpy())

    class NegRelu(fx.Interpreter):
        def call_function(self, target, args, kwargs):
            out = super().call_function(target, args, kwargs)
            return -out if target is F.relu else out

    expected = m.fc2(-F.relu(m.fc1(x))).softmax(-1)
    np.testing.assert_allclose(NegRelu(gm).run(x).detach().numpy(), expected.detach().numpy(), rtol=1e-12)

    class ReluToSigmoid(fx.Transformer):
        def call_function(self, target, args, kwargs):
            if target == F.relu:  # (during a transform F.relu is the recording wrapper: compare with ==)
                return tapegrad.sigmoid(*args)  # on a proxy: the swap records it
            return super().call_function(target, args, kwargs)

    new = ReluToSigmoid(gm).transform()
    assert tapegrad.sigmoid in [n.target for n in new.graph.nodes]
    np.testing.assert_allclose(new(x).detach().numpy(), m.fc2(tapegrad.sigmoid(m.fc1(x))).softmax(-1).detach().numpy(),
                               rtol=1e-12)


def test_shape_prop():
    from tapegrad.fx.passes.shape_prop import ShapeProp, TensorMetadata
    gm = fx.symbolic_trace(_mlp())
    ShapeProp(gm).propagate(tapegrad.randn(5, 4, dtype=tapegrad.float64))
    metas = {n.name: n.meta["tensor_meta"] for n in gm.graph.nodes if "tensor_meta" in n.meta}
    assert isinstance(metas["fc1"], TensorMetadata)
    assert tuple(metas["fc1"].shape) == (5, 8) and metas["fc1"].dtype == tapegrad.float64
    assert tuple(metas["softmax"].shape) == (5, 3) and metas["softmax"].stride == (3, 1)


# ---------------------------------------------------------------- GraphModule
def test_graph_module_pickle_deepcopy_recompile():
    m = _mlp()
    gm = fx.symbolic_trace(m)
    x = tapegrad.randn(2, 4, dtype=tapegrad.float64)
    expected = gm(x).detach().numpy()
    for clone in (pickle.loads(pickle.dumps(gm)), copy.deepcopy(gm)):
        np.testing.assert_allclose(clone(x).detach().numpy(), expected, rtol=1e-15)
        assert clone.code == gm.code
        assert clone.fc1.weight is not gm.fc1.weight
    g2 = copy.deepcopy(gm.graph)
    (relu,) = [n for n in g2.nodes if n.target is F.relu]
    relu.target = tapegrad.tanh
    gm.graph = g2  # the setter recompiles
    assert "tapegrad.tanh" in gm.code
    np.testing.assert_allclose(gm(x).detach().numpy(), m.fc2(tapegrad.tanh(m.fc1(x))).softmax(-1).detach().numpy())
    assert type(gm) is not type(fx.symbolic_trace(m))  # each instance its own class
    assert "class MLP" in gm.print_readable(print_output=False)


def test_graph_appending_tracer_in_e3nn_style():
    """e3nn builds its tensor products this way: proxies over a bare graph, tapegrad functions on them."""
    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    x1 = fx.Proxy(graph.placeholder("x1", tapegrad.Tensor), tracer=tracer)
    x2 = fx.Proxy(graph.placeholder("x2", tapegrad.Tensor), tracer=tracer)
    w3j = fx.Proxy(graph.get_attr("w3j"), tracer=tracer)
    shape = tapegrad.broadcast_tensors(x1[..., :1], x2[..., :1])[0].shape[:-1]
    out = tapegrad.einsum("ijk,zi,zj->zk", w3j, x1.reshape(-1, 3), x2.reshape(-1, 3)) / 3 ** 0.5
    out = tapegrad.cat([out, x1.new_zeros(1, 3).expand(out.shape[0], 3)], dim=1).reshape(shape + (6,))
    graph.output(out.node, tapegrad.Tensor)
    root = nn.Module()
    root.register_buffer("w3j", tapegrad.randn(3, 3, 3, dtype=tapegrad.float64))
    gm = fx.GraphModule(root, graph, class_name="tp_forward")
    del tracer, x1, x2, w3j, shape, out
    a, b = tapegrad.randn(4, 3, dtype=tapegrad.float64), tapegrad.randn(4, 3, dtype=tapegrad.float64)
    expected = np.einsum("ijk,zi,zj->zk", root.w3j.numpy(), a.numpy(), b.numpy()) / 3 ** 0.5
    np.testing.assert_allclose(gm(a, b).numpy()[:, :3], expected, rtol=1e-12)
    assert gm(a, b).shape == (4, 6)
    assert tapegrad.einsum.__module__ != "tapegrad.fx._function_swap"  # the tracer is gone: swap undone
    gm2 = pickle.loads(pickle.dumps(gm))
    np.testing.assert_allclose(gm2(a, b).numpy(), gm(a, b).numpy())


def test_wrap_and_autowrap():
    gm = fx.symbolic_trace(_uses_wrapped)
    assert [n.target for n in gm.graph.nodes if n.op == "call_function"] == [_scaled_norm]
    x = tapegrad.randn(4, dtype=tapegrad.float64)
    np.testing.assert_allclose(gm(x).numpy(), _scaled_norm(x).numpy())


def _scaled_norm(x):
    return x / len(x)


fx.wrap("_scaled_norm")


def _uses_wrapped(x):
    return _scaled_norm(x)


def test_import_tapegrad_does_not_import_fx():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import sys, tapegrad; print('tapegrad.fx' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_einsum_list_form_and_assert_on_proxies_as_pytorch():
    """opt_einsum calls torch.einsum(eq, [a, b]); e3nn calls torch._assert(x.shape[-1] == n, msg)."""
    def f(x, y):
        tapegrad._assert(x.shape[-1] == 3, "invalid input shape")
        return tapegrad.einsum("ij,jk->ik", [x, y])

    gm = fx.symbolic_trace(f)
    (einsum,) = [n for n in gm.graph.nodes if n.target is tapegrad.einsum]
    assert [str(a) for a in einsum.args] == ["ij,jk->ik", "x", "y"]
    assert tapegrad._assert in [n.target for n in gm.graph.nodes]
    a, b = tapegrad.randn(2, 3, dtype=tapegrad.float64), tapegrad.randn(3, 4, dtype=tapegrad.float64)
    np.testing.assert_allclose(gm(a, b).numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
    with pytest.raises(AssertionError, match="invalid input shape"):
        gm(b, b)
    torch = pytest.importorskip("torch")

    def tf(x, y):
        torch._assert(x.shape[-1] == 3, "invalid input shape")
        return torch.einsum("ij,jk->ik", [x, y])
    assert _structure(gm) == _structure(torch.fx.symbolic_trace(tf))
    (teinsum,) = [n for n in torch.fx.symbolic_trace(tf).graph.nodes if n.target is torch.einsum]
    assert [str(a) for a in teinsum.args] == ["ij,jk->ik", "x", "y"]


def test_optimized_module_wraps_a_module():
    from tapegrad._dynamo import OptimizedModule
    lin = nn.Linear(2, 3)
    m = OptimizedModule(lin)
    x = tapegrad.randn(4, 2)
    assert m.weight is lin.weight and isinstance(m, nn.Module)
    np.testing.assert_array_equal(m(x).detach().numpy(), lin(x).detach().numpy())
    assert not isinstance(tapegrad.compile(lin), OptimizedModule)  # compile returns the model itself
    torch = pytest.importorskip("torch")
    tm = torch.compile(torch.nn.Linear(2, 3))  # (compiles on first call only)
    assert isinstance(tm, torch._dynamo.OptimizedModule) and tm.weight is tm._orig_mod.weight


def test_code_names_dtypes_and_non_literal_constants():
    def f(x):
        return x.to(tapegrad.float32) + tapegrad.zeros(2, dtype=tapegrad.float64, device=tapegrad.device("cpu"))
    gm = fx.symbolic_trace(f)
    assert "x.to(tapegrad.float32)" in gm.code
    assert gm(tapegrad.ones(2, dtype=tapegrad.float64)).dtype == tapegrad.float64


def test_unpacking_a_proxy_and_a_builtin_named_input(tmp_path):
    def f(x):
        h, w = x.shape[-2:]
        a, b = x.unbind(0)
        return a.reshape(h * w) + b.flatten()
    gm = fx.symbolic_trace(f)
    x = tapegrad.randn(2, 3, 4)
    np.testing.assert_array_equal(gm(x).numpy(), f(x).numpy())

    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU())  # forward(self, input): a placeholder renamed input_1
    sgm = fx.symbolic_trace(seq)
    assert "input_1 = input\n" in sgm.code
    y = tapegrad.randn(2, 3)
    np.testing.assert_array_equal(sgm(y).detach().numpy(), seq(y).detach().numpy())
    sgm.to_folder(tmp_path / "pkg", "Foo")
    import importlib.util
    spec = importlib.util.spec_from_file_location("pkg", tmp_path / "pkg" / "__init__.py",
                                                  submodule_search_locations=[str(tmp_path / "pkg")])
    pkg = importlib.util.module_from_spec(spec)
    import sys
    sys.modules["pkg"] = pkg
    try:
        spec.loader.exec_module(pkg)
        np.testing.assert_array_equal(pkg.Foo()(y).detach().numpy(), seq(y).detach().numpy())
    finally:
        sys.modules.pop("pkg", None)
        sys.modules.pop("pkg.module", None)
    torch = pytest.importorskip("torch")
    tgm = torch.fx.symbolic_trace(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()))
    assert sgm.code == tgm.code
    assert gm.code == torch.fx.symbolic_trace(f).code  # f uses methods and operators only


def halve_fn(x):
    return x / 2


def test_autowrap_math_and_autowrap_functions():
    import math

    def f(x):
        return halve_fn(x * math.sqrt(x.size(0)))

    tracer = fx.Tracer(autowrap_functions=(halve_fn,))
    graph = tracer.trace(f)
    gm = fx.GraphModule(tracer.root, graph)
    assert [n.target for n in graph.nodes if n.op == "call_function"] == [math.sqrt, operator.mul, halve_fn]
    x = tapegrad.randn(4, dtype=tapegrad.float64)
    np.testing.assert_allclose(gm(x).numpy(), x.numpy() * 2 / 2, rtol=1e-15)
    assert math.sqrt.__module__ == "math"  # restored
    torch = pytest.importorskip("torch")
    ttracer = torch.fx.Tracer(autowrap_functions=(halve_fn,))
    tgm = torch.fx.GraphModule(torch.nn.Module(), ttracer.trace(f))
    assert gm.code == tgm.code.replace("torch.fx._symbolic_trace", "tapegrad.fx._symbolic_trace")
    regm = fx.symbolic_trace(gm)  # the code's wrap() lines keep halve_fn one node when traced again
    assert [n.target for n in regm.graph.nodes if n.op == "call_function"][-1] is halve_fn
