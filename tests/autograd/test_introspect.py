"""autograd.dump / to_dot: the recorded tape as text, one node per line, in execution order."""
import inspect
import io

import tapegrad as tg
from tapegrad import autograd


def test_dump_lines_order_shapes_dtypes_bytes_and_user_location():
    x = tg.randn(3, 2, requires_grad=True)
    w = tg.randn(4, 2, dtype=tg.float64)
    line = inspect.currentframe().f_lineno + 1
    y = (x.double() @ w.T).relu().sum()
    buf = io.StringIO()
    text = autograd.dump(y, file=buf)
    assert buf.getvalue().strip() == text
    lines = text.splitlines()
    assert [ln.split()[1] for ln in lines] == ["to", "matmul", "relu", "sum"]  # w.T of a constant: no node
    to_line, mm_line, relu_line, sum_line = lines
    assert "float32[3, 2]<-leaf" in to_line and "-> float64[3, 2]" in to_line
    assert "float64[3, 2]<-#0" in mm_line and "-> float64[3, 4]" in mm_line
    assert "saved=112B" in mm_line  # both operands: 3*2*8 + 2*4*8 bytes
    assert "saved=96B" in relu_line  # its output
    assert "-> float64[]" in sum_line and "saved=0B" in sum_line
    for ln in lines:
        assert f"test_introspect.py:{line}" in ln


def test_dump_marks_freed_nodes_and_leaves():
    x = tg.randn(3, requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=False)
    assert "(freed)" in autograd.dump(y, file=io.StringIO())
    assert "leaf" in autograd.dump(x, file=io.StringIO())


def test_to_dot():
    x = tg.randn(3, requires_grad=True)
    y = (x.exp() * x).sum()
    dot = autograd.to_dot(y)
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    assert dot.count("[label=\"exp") == 1 and dot.count("[label=\"mul") == 1
    assert "leaf float32[3]" in dot
    assert dot.count("leaf0 [") == 2  # x feeds exp and mul: one ellipse, declared per edge


import gc
import os
import threading

import pytest

import tapegrad.nn as nn
import tapegrad.nn.functional as F


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
        self.head = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def _lines_by_op(text):
    return {ln.split()[1]: ln for ln in text.splitlines()}


def test_dump_names_parameters_and_modules_from_the_model():
    net = _Net()
    loss = F.cross_entropy(net(tg.randn(2, 1, 6, 6)), tg.tensor([0, 2]))
    ops = _lines_by_op(autograd.dump(loss, model=net, file=io.StringIO()))
    assert "<-features.0.weight" in ops["conv2d"] and "<-features.0.bias" in ops["conv2d"]
    assert ops["conv2d"].endswith("in features.0 (Conv2d)")
    assert ops["relu"].endswith("in features.1 (ReLU)")
    assert ops["reshape"].endswith("in (_Net)")  # flatten in the root module's own forward
    assert "<-head.weight" in ops["linear"] and ops["linear"].endswith("in head (Linear)")  # one node, as PyTorch's addmm
    assert " in " not in ops["cross_entropy"].split(" at ")[1]  # outside any module


def test_dump_with_params_only_names_modules_that_own_parameters():
    """torchviz's make_dot(params=dict(model.named_parameters())): parameter names, and the
    path of every module that owns one; parameterless modules by their class."""
    net = _Net()
    ops = _lines_by_op(autograd.dump(net(tg.randn(1, 1, 6, 6)).sum(), params=dict(net.named_parameters()),
                                     file=io.StringIO()))
    assert ops["conv2d"].endswith("in features.0 (Conv2d)") and ops["relu"].endswith("in (ReLU)")
    assert "<-head.bias" in ops["linear"]
    plain = _lines_by_op(autograd.dump(net(tg.randn(1, 1, 6, 6)).sum(), file=io.StringIO()))
    assert "<-leaf" in plain["conv2d"] and plain["conv2d"].endswith("in (Conv2d)")
    with pytest.raises(TypeError, match="params must be a dict"):
        autograd.dump(net(tg.randn(1, 1, 6, 6)).sum(), params=list(net.parameters()))


def test_to_dot_clusters_by_module_and_escapes_names():
    net = _Net()
    y = net(tg.randn(1, 1, 6, 6)).sum()
    dot = autograd.to_dot(y, model=net)
    assert 'label="features.0 (Conv2d)"' in dot and 'label="head (Linear)"' in dot
    assert 'label="features.0.weight\\nfloat32[2, 1, 3, 3]"' in dot
    w = net.head.weight
    dot = autograd.to_dot(y, params={'say "hi"\\': w})
    assert 'label="say \\"hi\\"\\\\\\nfloat32[3, 32]"' in dot


def test_module_scope_is_weak_thread_local_and_restored_after_errors():
    lin = nn.Linear(2, 2)
    y = lin(tg.randn(1, 2))
    where = y.grad_fn.where
    assert where[2]() is lin
    del lin
    gc.collect()
    assert where[2]() is None  # the graph does not keep the module alive
    assert autograd.dump(y, file=io.StringIO())  # and still prints

    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    with pytest.raises(ValueError):
        Boom()(tg.randn(1))
    z = tg.randn(2, requires_grad=True) * 2
    assert len(z.grad_fn.where) == 2  # no module left in scope after the exception

    # a module running in one thread does not claim the nodes another thread records
    started, release, seen = threading.Event(), threading.Event(), {}

    class Slow(nn.Module):
        def forward(self, x):
            started.set()
            release.wait(10)
            return x * 2

    slow = Slow()
    t = threading.Thread(target=lambda: seen.setdefault("y", slow(tg.randn(2, requires_grad=True))))
    t.start()
    started.wait(10)
    mine = tg.randn(2, requires_grad=True) * 3
    release.set()
    t.join()
    assert len(mine.grad_fn.where) == 2
    assert seen["y"].grad_fn.where[2]() is slow


def test_render_writes_an_image_or_says_what_to_install(tmp_path):
    x = tg.ones(3, requires_grad=True)
    y = (x * 2).sum()
    try:
        import graphviz
        graphviz.Source("digraph{}").pipe(format="svg")
    except Exception:  # no graphviz package or no dot program: the error says what to install
        with pytest.raises(RuntimeError, match="graphviz"):
            autograd.render(y, tmp_path / "g.svg")
        assert not (tmp_path / "g.svg").exists()
        return
    out = autograd.render(y, tmp_path / "g.svg", params={"x": x})
    assert (tmp_path / "g.svg").read_text().lstrip().startswith(("<?xml", "<svg")) and out.endswith("g.svg")
    autograd.render(y, tmp_path / "g.png")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "g.png").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no format"):
        autograd.render(y, tmp_path / "noext")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.svg"]  # no temporary left
