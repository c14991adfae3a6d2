"""DistributedDataParallel under mpiexec (see workers/ddp_lenet.py for what is checked)."""
import pytest

from mpirun import run


@pytest.mark.parametrize("n", [1, 2, 4])
def test_ddp_lenet_matches_one_process(n):
    out = run(n, "ddp_lenet.py", timeout=180).stdout
    assert out.count(": ok") == n, out


@pytest.mark.parametrize("n", [1, 3])
def test_ddp_unused_parameters_errors_syncbn_and_async(n):
    out = run(n, "ddp_features.py", timeout=120).stdout
    assert out.count(": ok") == n, out
