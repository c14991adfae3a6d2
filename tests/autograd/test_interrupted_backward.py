"""Ctrl-C during a backward pass: the KeyboardInterrupt reaches Python while the pass runs (not
after it), and tapegrad stays usable: grad mode back on, no pass left counted (a fork would wait
for it), a new backward works, and a graph whose interrupted pass freed part of it says so.
In a subprocess, which sends itself the SIGINT half way down the pass (from a tensor hook)."""
import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import tapegrad as tg
    from tapegrad import _C
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (a background job starts with it ignored)
    kind = sys.argv[1]
    x = tg.randn(16, requires_grad=True)
    y = x
    for i in range(20000):
        y = y * 1.0001 + 0.0001 if kind == "scalar" else (y.sin() if i % 2 else y.cos())
        if i == 10000:  # half way down the pass, the signal arrives (as from a terminal: asynchronously)
            y.register_hook(lambda g: os.kill(os.getpid(), signal.SIGINT))
    loss = y.sum()
    reached = []
    def hook(g):  # the pass's first gradient reaching x would mean the whole chain ran
        reached.append(1)
    x.register_hook(hook)
    out = {}
    try:
        loss.backward()
        out["interrupted"] = False
    except KeyboardInterrupt:
        out["interrupted"] = True
    out["ran_to_x"] = bool(reached)
    out["grad_enabled"] = tg.is_grad_enabled()
    out["passes"] = list(_C._backward_passes())
    z = tg.randn(3, requires_grad=True)
    (z * 2).sum().backward()
    out["new_backward"] = z.grad.tolist()
    try:
        loss.backward()
        out["again"] = "ran"
    except RuntimeError as e:
        out["again"] = str(e)[:200]
    out["kernels"] = (tg.ones(300, 300) @ tg.ones(300, 300))[0, 0].item()
    print(json.dumps(out))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill")
@pytest.mark.parametrize("kind", ["scalar", "saving"])
def test_ctrl_c_during_backward_stops_it_and_leaves_tapegrad_usable(kind):
    r = subprocess.run([sys.executable, "-c", SCRIPT, kind], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["interrupted"] and not out["ran_to_x"], out
    assert out["grad_enabled"] and out["passes"] == [0, 0] and out["new_backward"] == [2.0, 2.0, 2.0], out
    assert out["kernels"] == 300.0
    if kind == "saving":  # sin/cos keep their inputs: the nodes the interrupted pass ran freed them
        assert "backward through the graph a second time" in out["again"], out
