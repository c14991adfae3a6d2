"""``torch.distributed.algorithms.join`` (accelerate imports ``Join`` at load time): uneven
inputs on 2 and 3 ranks, the shadowing hooks, ``throw_on_early_termination``; its names
against PyTorch's."""
import inspect

import pytest

from tapegrad.distributed.algorithms import Join, Joinable, JoinHook

from mpirun import run



@pytest.mark.parametrize("n", [2, 3])
def test_join_shadows_the_ranks_still_training(n):
    out = run(n, "join.py", timeout=120).stdout
    assert out.count(": ok") == n, out


def test_join_names_match_pytorch():
    torch = pytest.importorskip("torch")
    from torch.distributed.algorithms import join as theirs
    for ours, want in ((Join, theirs.Join), (Joinable, theirs.Joinable), (JoinHook, theirs.JoinHook)):
        names = {n for n in vars(want) if not n.startswith("__")}
        assert names <= set(dir(ours)), names - set(dir(ours))
    assert list(inspect.signature(Join).parameters) == list(inspect.signature(theirs.Join).parameters)
    with pytest.raises(ValueError, match="at least one joinable"):
        Join([])
    with pytest.raises(TypeError):
        Joinable()  # abstract, as PyTorch's
