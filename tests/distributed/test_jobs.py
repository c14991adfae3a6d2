"""SyncBatchNorm, checkpoints across rank counts, and failing ranks, under mpiexec."""
import time

import pytest

from mpirun import run


@pytest.mark.parametrize("n", [2, 3])
def test_sync_batchnorm_matches_one_process_on_the_whole_batch(n):
    out = run(n, "syncbn.py").stdout
    assert out.count(": ok") == n, out


def test_checkpoint_saved_on_two_ranks_resumes_on_three(tmp_path):
    path = tmp_path / "ckpt.h5"
    run(2, "checkpoint.py", "save", path)
    assert path.exists()
    out = run(3, "checkpoint.py", "resume", path).stdout
    assert out.count(": ok") == 3, out


@pytest.mark.parametrize("how", ["raise", "kill", "exit"])
def test_a_failing_rank_ends_the_job_within_seconds(how):
    # sys.exit() bypasses sys.excepthook: `python -m mpi4py script.py` turns it into MPI_Abort too
    t0 = time.perf_counter()
    res = run(2, "fail.py", how, timeout=30, check=False, python_args=("-m", "mpi4py") if how == "exit" else ())
    assert res.returncode != 0, res.stdout
    assert time.perf_counter() - t0 < 15, res.stdout
    assert "unreachable" not in res.stdout
    if how == "raise":  # that rank's traceback is in the job's output
        assert "ValueError: boom on rank 1" in res.stdout and "Traceback" in res.stdout, res.stdout
