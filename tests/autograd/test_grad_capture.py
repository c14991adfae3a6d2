"""``autograd.grad`` of a non-leaf input captures the gradient at that tensor and does not run the
node that made it (PyTorch's ``captures_`` against ``needed_``): that node keeps its saved
tensors, so a later ``autograd.grad`` through it works without ``retain_graph`` (captum's
neuron attributions do exactly this), and only the tensor's hooks run there, not the node's."""
import numpy as np
import pytest

import tapegrad


def _layered(mod):
    mod.manual_seed(0)
    x = mod.randn(3, 4, dtype=mod.float64, requires_grad=True)
    w = mod.randn(4, 5, dtype=mod.float64, requires_grad=True)
    h = x @ w
    y = (h.tanh() * 2).sum()
    return x, w, h, y


def test_grad_of_a_non_leaf_leaves_its_node_runnable():
    x, w, h, y = _layered(tapegrad)
    gh, = tapegrad.autograd.grad(y, h)  # no retain_graph: the nodes above h are freed, h's is not run
    np.testing.assert_allclose(gh.numpy(), 2 * (1 - np.tanh(h.detach().numpy()) ** 2))
    gx, = tapegrad.autograd.grad(h[:, 0].sum(), x)  # through h's node: its saved w is still there
    np.testing.assert_allclose(gx.numpy(), np.broadcast_to(w.detach().numpy()[:, 0], (3, 4)))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        tapegrad.autograd.grad(y, x)  # the nodes above h were run and freed


def test_a_node_below_a_wanted_one_still_runs():
    x, w, h, y = _layered(tapegrad)
    gh, gx = tapegrad.autograd.grad(y, [h, x])
    np.testing.assert_allclose(gx.numpy(), gh.numpy() @ w.detach().numpy().T)


def test_hooks_at_a_captured_node_match_pytorch():
    torch = pytest.importorskip("torch")
    seen = {}
    for mod in (tapegrad, torch):
        x, w, h, y = _layered(mod)
        calls = []
        h.register_hook(lambda g: calls.append("tensor"))
        h.grad_fn.register_prehook(lambda go: calls.append("node_pre"))
        h.grad_fn.register_hook(lambda gi, go: calls.append("node_post"))
        mod.autograd.grad(y, h, retain_graph=True)
        calls.append("|")
        mod.autograd.grad(y, [h, x], retain_graph=True)
        calls.append("|")
        y.backward(inputs=[h])  # backward(inputs=) runs the node of a non-leaf input, as PyTorch's
        seen[mod.__name__] = calls
    assert seen["tapegrad"] == seen["torch"]
    assert seen["tapegrad"][:2] == ["tensor", "|"]


def test_backward_inputs_of_a_non_leaf_runs_and_frees_its_node_as_pytorch():
    torch = pytest.importorskip("torch")
    outcome = {}
    for mod in (tapegrad, torch):
        x = mod.ones(2, 3, requires_grad=True)
        h = x * 3
        h.sum().backward(inputs=[h])
        try:
            mod.autograd.grad(h.sum(), x)
            outcome[mod.__name__] = "ran"
        except RuntimeError:
            outcome[mod.__name__] = "freed"
    assert outcome["tapegrad"] == outcome["torch"] == "freed"
