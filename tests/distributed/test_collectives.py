"""tapegrad.distributed's collectives under mpiexec on 2 and 3 ranks (workers/collectives.py),
and what works without MPI running."""
import subprocess
import sys

import pytest

import tapegrad
import tapegrad.distributed as dist
from mpirun import run


@pytest.mark.parametrize("n", [2, 3])
def test_collectives_against_numpy(n):
    out = run(n, "collectives.py", timeout=120).stdout
    assert out.count(": ok") == n, out


def test_collectives_without_the_metadata_exchange(monkeypatch):
    monkeypatch.setenv("TAPEGRAD_DISTRIBUTED_CHECK", "0")
    out = run(2, "collectives.py", "nocheck", timeout=120).stdout
    assert out.count(": ok") == 2, out


def test_import_tapegrad_needs_no_mpi():
    code = "import sys, tapegrad, tapegrad.distributed, tapegrad.nn.parallel; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_collectives_before_init_say_what_to_do():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(tapegrad.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()


def test_init_without_mpi4py_names_the_extra():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import tapegrad.distributed as d\n"
            "print(d.is_available())\n"
            "try:\n    d.init_process_group('mpi')\nexcept RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tapegrad[distributed]" in out


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend='mpi'"):
        dist.init_process_group("nccl")


@pytest.mark.parametrize("n", [2, 3])
def test_differentiable_collectives(n):
    """tapegrad.distributed.nn.functional (torch.distributed.nn): gradients across ranks."""
    out = run(n, "functional.py", timeout=120).stdout
    assert out.count(": ok") == n, out
