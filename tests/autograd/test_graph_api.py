"""autograd.graph's hooks on several tensors, gradient edges and mutation of saved tensors
(register_multi_grad_hook, GradientEdge/get_gradient_edge, allow_mutation_on_saved_tensors), the
engine's per-pass primitives under them (_C._current_graph_task_id, _will_engine_execute_node,
_queue_callback), and PyTorch's behaviour where torch is installed."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.autograd import graph as G


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    a = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    return a, b


# ---------------------------------------------------------------- register_multi_grad_hook
def test_all_mode_sees_which_gradients_each_pass_computes():
    a, b = _pair()
    c, d = a * b, a * b
    seen = []
    h = G.register_multi_grad_hook((a, b, c, d), lambda grads: seen.append([g is not None for g in grads]))
    c.sum().backward(retain_graph=True)
    c.sum().backward(inputs=(a,), retain_graph=True)
    assert seen == [[True, True, True, False], [True, False, True, False]]
    h.remove()
    c.sum().backward(retain_graph=True)
    assert len(seen) == 2


def test_all_mode_gets_the_gradients_once_all_are_ready():
    a, b = _pair(1)
    c = a * b
    got = []
    order = []
    a.register_hook(lambda g: order.append("a"))
    b.register_hook(lambda g: order.append("b"))
    G.register_multi_grad_hook((a, b), lambda grads: (order.append("fn"), got.append(grads)))
    (c * 2).sum().backward()
    assert order.index("fn") > max(order.index("a"), order.index("b"))
    ga, gb = got[0]
    np.testing.assert_allclose(ga.numpy(), 2 * b.detach().numpy())
    np.testing.assert_allclose(gb.numpy(), 2 * a.detach().numpy())


def test_all_mode_with_autograd_grad_and_an_unreached_tensor():
    a, b = _pair(2)
    unused = tg.ones(3, requires_grad=True)
    got = []
    G.register_multi_grad_hook((a, unused, b), got.append)
    tg.autograd.grad((a * b).sum(), (a, b))
    assert [g is not None for g in got[0]] == [True, False, True]


def test_all_mode_fires_at_the_end_when_a_reached_tensor_gets_no_gradient():
    class NoGrad(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return None

    a = tg.ones(3, requires_grad=True)
    b = tg.ones(3, requires_grad=True)
    t = a * 2
    got = []
    G.register_multi_grad_hook((t, b), got.append)
    (NoGrad.apply(t).sum() + b.sum()).backward()
    assert len(got) == 1 and got[0][0] is None and np.array_equal(got[0][1].numpy(), np.ones(3))


def test_any_mode_runs_once_per_pass_with_the_first_gradient():
    a, b = _pair(3)
    c = a * b
    got = []
    h = G.register_multi_grad_hook((a, b, tg.ones(2)), got.append, mode="any")  # no grad: skipped
    c.sum().backward(retain_graph=True)
    c.sum().backward()
    assert len(got) == 2 and all(g.shape == (2, 3) for g in got)
    h.remove()


def test_multi_grad_hook_errors():
    a, _ = _pair()
    with pytest.raises(ValueError, match=r"Expects mode to be one of \('all', 'any'\) but got some"):
        G.register_multi_grad_hook((a,), print, mode="some")
    with pytest.raises(AssertionError, match="register_multi_grad_hook: expected gradient function to be set"):
        G.register_multi_grad_hook((tg.ones(2),), print)  # all mode: every tensor needs a place in the graph


def test_handle_removes_every_hook_and_works_as_a_context():
    a, b = _pair()
    got = []
    with G.register_multi_grad_hook((a, b), got.append):
        pass
    (a * b).sum().backward()
    assert got == [] and a._hooks == {} and b._hooks == {}


def test_state_is_per_pass_when_a_hook_runs_a_pass_inside_a_pass():
    a, b = _pair(4)
    inner_x = tg.ones(2, requires_grad=True)
    calls = []

    def on_a(g):
        # a nested pass, with its own tensors, while the outer one waits for b
        with tg.enable_grad():
            (inner_x * 3).sum().backward()
        return None

    a.register_hook(on_a)
    G.register_multi_grad_hook((a, b), lambda grads: calls.append("outer"))
    G.register_multi_grad_hook((inner_x,), lambda grads: calls.append("inner"))
    (a * b).sum().backward()
    assert calls == ["inner", "outer"]


def test_passes_in_several_threads_each_call_the_hook():
    a, b = _pair(5)
    counts = []
    lock = threading.Lock()

    def fn(grads):
        with lock:
            counts.append(sum(g is not None for g in grads))

    G.register_multi_grad_hook((a, b), fn)

    def work():
        for _ in range(20):
            (a * b).sum().backward()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [2] * 80


# ---------------------------------------------------------------- the engine's primitives
def test_graph_task_id_and_will_execute_inside_a_pass_only():
    assert _C._current_graph_task_id() == -1
    with pytest.raises(RuntimeError, match="_will_engine_execute_node should only be called during the backward pass"):
        _C._will_engine_execute_node(tg.ones(1))
    a, b = _pair()
    c = a * b
    d = a + b
    seen = {}

    def hook(g):
        seen["id"] = _C._current_graph_task_id()
        seen["c"] = _C._will_engine_execute_node(c.grad_fn)
        seen["d"] = _C._will_engine_execute_node(d.grad_fn)
        seen["a"] = _C._will_engine_execute_node(a)

    c.register_hook(hook)
    c.sum().backward()
    assert seen["id"] >= 0 and seen["c"] and not seen["d"] and seen["a"]
    with pytest.raises(TypeError):
        c2 = a * b
        c2.register_hook(lambda g: _C._will_engine_execute_node(3))
        c2.sum().backward()


def test_queue_callback_runs_after_the_graph():
    a, b = _pair()
    order = []
    engine = tg.autograd.Variable._execution_engine

    def hook(g):
        order.append("hook")
        engine.queue_callback(lambda: (order.append("cb"), engine.queue_callback(lambda: order.append("cb2"))))

    a.register_hook(hook)
    b.register_post_accumulate_grad_hook(lambda t: order.append("b acc"))
    (a * b).sum().backward()
    assert order[-2:] == ["cb", "cb2"] and "b acc" in order and a.grad is not None
    with pytest.raises(RuntimeError, match="Final callbacks can only be installed during backward pass"):
        engine.queue_callback(print)


# ---------------------------------------------------------------- gradient edges
def test_gradient_edge_of_a_leaf_and_of_a_non_leaf():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.exp()
    ex, ey = G.get_gradient_edge(x), G.get_gradient_edge(y)
    assert isinstance(ex, G.GradientEdge) and ex.output_nr == 0 and ex.node.variable is x
    assert ey.node is y.grad_fn and ey == (y.grad_fn, 0, None)
    loss = (y * 2).sum()
    (gx, gy) = tg.autograd.grad(loss, (ex, ey), retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), 2 * np.exp([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(gy.numpy(), [2.0, 2.0, 2.0])
    # an edge among the outputs: the gradient of the tensor it was taken from
    (g,) = tg.autograd.grad(ey, x, tg.ones(3))
    np.testing.assert_allclose(g.numpy(), np.exp([1.0, 2.0, 3.0]))


def test_gradient_edge_errors():
    with pytest.raises(RuntimeError, match="It is not possible to get the gradient edge for a Tensor that does not "
                                           "require gradients"):
        G.get_gradient_edge(tg.ones(2))
    x = tg.ones(3, requires_grad=True)
    y = x * 2
    z = x * 3
    with pytest.raises(RuntimeError, match="materialize_grads cannot be used when the given input is a GradientEdge"):
        tg.autograd.grad(y.sum(), G.get_gradient_edge(z), materialize_grads=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        tg.autograd.grad(G.get_gradient_edge(y), x)
    with pytest.raises(RuntimeError, match="backward: inputs= holds the GradientEdge of a MulBackward0 node"):
        tg.autograd.backward(y.sum(), inputs=[G.get_gradient_edge(y)])
    tg.autograd.backward(y.sum(), inputs=[G.get_gradient_edge(x)])
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_grad_takes_a_dict_of_inputs():
    a, b = _pair()
    got = tg.autograd.grad((a * b).sum(), {"a": a, "b": b})
    assert list(got) == ["a", "b"]
    np.testing.assert_allclose(got["a"].numpy(), b.detach().numpy())
    with pytest.raises(TypeError, match="must be a dict"):
        import types
        tg.autograd.grad((a * b).sum(), types.MappingProxyType({"a": a}))


# ---------------------------------------------------------------- allow_mutation_on_saved_tensors
def test_mutation_of_a_saved_tensor_keeps_the_gradient():
    with G.allow_mutation_on_saved_tensors() as ctx:
        a = tg.ones(2, 3, requires_grad=True)
        b = a.clone()
        out = (b ** 2).sum()
        b.sin_()
        out.backward()
        assert ctx.cloned == 1
    np.testing.assert_allclose(a.grad.numpy(), np.full((2, 3), 2.0))
    np.testing.assert_allclose(b.detach().numpy(), np.full((2, 3), np.sin(1.0)))


def test_outside_the_block_the_version_check_raises():
    a = tg.ones(2, 3, requires_grad=True)
    b = a.clone()
    out = (b ** 2).sum()
    b.sin_()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        out.backward()


@pytest.mark.parametrize("write", [
    lambda t: t.add_(1.0), lambda t: t.mul_(3.0), lambda t: t.zero_(), lambda t: t.fill_(2.0),
    lambda t: t.copy_(tg.zeros(4)), lambda t: t.__setitem__(slice(1, 3), 5.0), lambda t: t.clamp_(0.0, 0.5),
    lambda t: t.relu_(), lambda t: t[1:].add_(1.0), lambda t: t.view(2, 2).mul_(2.0), lambda t: t.exp_(),
    lambda t: t.detach().add_(1.0), lambda t: t.uniform_(),
], ids=["add_", "mul_", "zero_", "fill_", "copy_", "setitem", "clamp_", "relu_", "view add_", "view mul_", "exp_",
        "detach add_", "uniform_"])
def test_every_write_path_clones_first(write):
    x = tg.tensor([0.1, 0.2, 0.3, 0.4], dtype=tg.float64, requires_grad=True)
    with G.allow_mutation_on_saved_tensors():
        h = x * 1.0
        out = (h * h * h).sum()   # mul saves h (twice)
        with tg.no_grad():
            write(h)
        out.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([0.1, 0.2, 0.3, 0.4]) ** 2)


def test_a_saved_output_is_cloned_too():
    x = tg.tensor([0.5, 1.0, 1.5], dtype=tg.float64, requires_grad=True)
    with G.allow_mutation_on_saved_tensors():
        y = x.exp()          # exp saves its output
        out = y.sum()
        with tg.no_grad():
            y.mul_(0.0)
        out.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.0, 1.5]))


def test_optimizer_style_write_of_a_saved_leaf_keeps_double_backward():
    w = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    with G.allow_mutation_on_saved_tensors():
        loss = (w * w * w).sum()
        (g,) = tg.autograd.grad(loss, w, create_graph=True)
        with tg.no_grad():
            w.sub_(10.0)
        (gg,) = tg.autograd.grad(g.sum(), w)
    np.testing.assert_allclose(g.detach().numpy(), 3 * np.array([1.0, 2.0]) ** 2)
    np.testing.assert_allclose(gg.numpy(), 6 * np.array([1.0, 2.0]))


def test_backward_after_the_block_raises_and_blocks_do_not_nest():
    with G.allow_mutation_on_saved_tensors():
        a = tg.ones(3, requires_grad=True)
        out = (a * a).sum()
        with pytest.raises(RuntimeError, match="cannot be nested"):
            with G.allow_mutation_on_saved_tensors():
                pass
    with pytest.raises(RuntimeError, match="Trying to backward outside of the 'allow_mutation_on_saved_tensors' "
                                           "context"):
        out.backward()
    with G.allow_mutation_on_saved_tensors():  # usable again after the error
        pass
    assert tg.ops.inplace.WRITE_WATCHERS == []


def test_a_write_the_ops_do_not_see_is_refused():
    with G.allow_mutation_on_saved_tensors():
        a = tg.ones(3, requires_grad=True)
        h = a * 1.0
        out = (h * h).sum()
        h._data[...] = 7.0     # straight into the numpy memory
        h._bump_version()
        with pytest.raises(RuntimeError, match="could not see"):
            out.backward()


# ---------------------------------------------------------------- against PyTorch
def test_against_torch():
    torch = pytest.importorskip("torch")
    TG = torch.autograd.graph
    for lib, g in ((torch, TG), (tg, G)):
        a = lib.ones(2, 3, requires_grad=True)
        b = lib.ones(2, 3, requires_grad=True) * 2
        c, d = a * b, a * b
        seen = []
        g.register_multi_grad_hook((a, b, c, d), lambda grads: seen.append([x is not None for x in grads]))
        c.sum().backward(retain_graph=True)
        c.sum().backward(inputs=(a,), retain_graph=True)
        if lib is torch:
            expected = seen
        else:
            assert seen == expected
    results = []
    for lib, g in ((torch, TG), (tg, G)):
        with g.allow_mutation_on_saved_tensors():
            a = lib.tensor([0.3, 0.7], dtype=lib.float64, requires_grad=True)
            b = a.clone()
            out = (b ** 3).sum()
            b.mul_(5.0)
            out.backward()
        results.append(a.grad.numpy())
        x = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        y = x.sin()
        results.append(lib.autograd.grad((y * y).sum(), g.get_gradient_edge(y))[0].detach().numpy())
    np.testing.assert_allclose(results[0], results[2])
    np.testing.assert_allclose(results[1], results[3])
    for g in (TG, G):
        lib = torch if g is TG else tg
        with pytest.raises(RuntimeError, match="gradient edge for a Tensor that does not require gradients"):
            g.get_gradient_edge(lib.ones(1))
        with pytest.raises(AssertionError):
            g.register_multi_grad_hook((lib.ones(1),), print)
        with pytest.raises(ValueError, match="Expects mode to be one of"):
            g.register_multi_grad_hook((lib.ones(1, requires_grad=True),), print, mode="x")
        with pytest.raises(RuntimeError, match="cannot be nested"):
            with g.allow_mutation_on_saved_tensors():
                with g.allow_mutation_on_saved_tensors():
                    pass


# ---------------------------------------------------------------- Node.register_prehook, Node.metadata
def test_node_prehook_sees_and_replaces_the_output_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    seen = []
    h = y.grad_fn.register_prehook(lambda grads: (seen.append(grads), (grads[0] * 10,))[1])
    y.sum().backward(retain_graph=True)
    assert len(seen[0]) == 1 and seen[0][0].tolist() == [1.0, 1.0] and x.grad.tolist() == [30.0, 30.0]
    h.remove()
    x.grad = None
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    z = x * 2
    z.grad_fn.register_prehook(lambda grads: grads[0])
    with pytest.raises(RuntimeError, match="register_prehook returned Tensor: expected None or a tuple"):
        z.sum().backward()
    assert z.grad_fn.metadata == {} and z.grad_fn.metadata is z.grad_fn.metadata


def test_node_prehook_against_torch():
    torch = pytest.importorskip("torch")
    got = []
    for lib in (torch, tg):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).exp()
        y.grad_fn.register_prehook(lambda grads: (grads[0] * 0.5,))
        y.grad_fn.metadata["k"] = 1
        y.sum().backward()
        got.append((x.grad.tolist(), dict(y.grad_fn.metadata)))
    np.testing.assert_allclose(got[0][0], got[1][0])
    assert got[0][1] == got[1][1]


# ---------------------------------------------------------------- Node.register_hook (post hooks), AccumulateGrad
def test_node_post_hook_sees_inputs_and_output_gradients_and_replaces_them():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([[3.0], [4.0]], requires_grad=True)  # broadcast: its gradient is summed before the hook
    y = a * b
    seen = []

    def hook(grad_inputs, grad_outputs):
        seen.append(([g.tolist() for g in grad_inputs], grad_outputs[0].tolist()))
        return (grad_inputs[0] * 10, grad_inputs[1])

    h = y.grad_fn.register_hook(hook)
    y.sum().backward(retain_graph=True)
    assert seen == [([[7.0, 7.0], [[3.0], [3.0]]], [[1.0, 1.0], [1.0, 1.0]])]
    assert a.grad.tolist() == [70.0, 70.0] and b.grad.tolist() == [[3.0], [3.0]]
    h.remove()
    a.grad = b.grad = None
    y.sum().backward()
    assert a.grad.tolist() == [7.0, 7.0] and len(seen) == 1


def test_node_post_hooks_chain_and_none_keeps_the_gradients():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    order = []
    y.grad_fn.register_hook(lambda gi, go: order.append("first"))
    y.grad_fn.register_hook(lambda gi, go: (order.append("second"), (gi[0] * 2,))[1])
    y.grad_fn.register_hook(lambda gi, go: (order.append("third"), (gi[0] + 1,))[1])
    y.sum().backward()
    assert order == ["first", "second", "third"]
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]) + 1)


def test_node_post_hook_sees_none_for_an_input_without_gradient_and_whole_slices():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([5.0, 6.0])
    seen = []
    y = x * c
    y.grad_fn.register_hook(lambda gi, go: seen.append(gi))
    y.sum().backward()
    assert seen[0][1] is None and seen[0][0].tolist() == [5.0, 6.0]
    w = tg.arange(6.0, requires_grad=True)
    part = w[2:4]  # its VJP hands the engine a slice of the gradient: the hook sees it whole
    part.grad_fn.register_hook(lambda gi, go: seen.append(gi[0].tolist()))
    (part * 3).sum().backward()
    assert seen[1] == [0.0, 0.0, 3.0, 3.0, 0.0, 0.0] and w.grad.tolist() == seen[1]


def test_node_post_hook_bad_results_raise():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.grad_fn.register_hook(lambda gi, go: gi[0])
    with pytest.raises(RuntimeError, match="register_hook returned Tensor: expected None or a tuple of 2 "):
        y.sum().backward()
    y = x * 2
    y.grad_fn.register_hook(lambda gi, go: (tg.ones(3), None))
    with pytest.raises(RuntimeError, match="changed the size of the gradient of input 0: expected shape \\(2,\\)"):
        y.sum().backward()
    y = x * 2
    y.grad_fn.register_hook(lambda gi, go: (1.0, None))
    with pytest.raises(TypeError, match="returned float for input 0"):
        y.sum().backward()
    with pytest.raises(TypeError, match="expected a callable"):
        y.grad_fn.register_hook(3)


def test_node_post_hook_under_create_graph_is_differentiable():
    x = tg.tensor([1.5, -0.5], dtype=tg.float64, requires_grad=True)
    y = x ** 3
    y.grad_fn.register_hook(lambda gi, go: (gi[0] * x,))  # one input: the exponent is a number
    (g,) = tg.autograd.grad(y.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 3)
    (gg,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 9 * x.detach().numpy() ** 2)


def test_accumulate_grad_hooks_run_around_accumulation_and_outlive_the_object():
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    acc = (p * 2).grad_fn.next_functions[0][0]
    acc.register_prehook(lambda go: (seen.append(("pre", go[0].tolist(), p.grad)), (go[0] * 10,))[1])
    acc.register_hook(lambda gi, go: seen.append(("post", gi, go[0].tolist(), p.grad.tolist())))
    del acc  # PyTorch drops the hooks with the object; here they live on the tensor
    (p * 2).sum().backward()
    assert seen == [("pre", [2.0, 2.0], None), ("post", (), [20.0, 20.0], [20.0, 20.0])]


def test_node_post_hooks_against_torch():
    torch = pytest.importorskip("torch")
    got = []
    for lib in (torch, tg):
        a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
        y = (a * b).sin()
        seen = []
        y.grad_fn.register_hook(lambda gi, go: (seen.append((gi[0].tolist(), go[0].tolist())), (gi[0] * 3,))[1])
        z = y * b
        z.grad_fn.register_hook(lambda gi, go: (gi[0], gi[1] * 0.5))
        z.sum().backward()
        got.append((a.grad.tolist(), b.grad.tolist(), seen))
    np.testing.assert_allclose(got[0][0], got[1][0])
    np.testing.assert_allclose(got[0][1], got[1][1])
    np.testing.assert_allclose(got[0][2][0][0], got[1][2][0][0])
    np.testing.assert_allclose(got[0][2][0][1], got[1][2][0][1])


def test_grad_refuses_empty_inputs_as_torch():
    x = tg.ones(2, requires_grad=True)
    for inputs in ([], (), {}):
        with pytest.raises(RuntimeError, match="`inputs` argument to `grad\\(\\)` cannot be empty"):
            tg.autograd.grad((x * 2).sum(), inputs)
