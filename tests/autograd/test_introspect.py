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
