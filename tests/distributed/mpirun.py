"""Run a worker script under ``mpiexec -n N`` with a timeout: a hang fails the test, it never
blocks pytest. Skips when mpi4py or mpiexec is missing."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

WORKERS = Path(__file__).parent / "workers"


def mpiexec() -> str | None:
    """The MPI launcher next to this interpreter (the mpich wheel puts it in the venv), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def require_mpi():
    if importlib.util.find_spec("mpi4py") is None or mpiexec() is None:
        pytest.skip("MPI is not installed (pip install 'tapegrad[distributed]')")


def run(n: int, script: str, *args, timeout: float = 60, check: bool = True,
        python_args=()) -> subprocess.CompletedProcess:
    """``mpiexec -n n python [python_args] workers/script args``; returns the finished process
    (output in .stdout)."""
    require_mpi()
    # One thread per rank (the ranks share this machine's cores); ranks on one host talk through
    # shared memory and hydra starts them with fork, so no network interface is involved. Waiting
    # ranks poll: on an oversubscribed machine let them sleep between polls instead of spinning.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", HYDRA_LAUNCHER="fork",
               MPIR_CVAR_CH4_PROGRESS_THROTTLE="1" if n > (os.cpu_count() or 1) else "0")
    cmd = [mpiexec(), "-n", str(n), sys.executable, *python_args, str(WORKERS / script), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and every rank: they share its session
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {script} {' '.join(map(str, args))} hung for {timeout} s:\n{out[-4000:]}")
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, "")
    if check and proc.returncode != 0:
        pytest.fail(f"mpiexec -n {n} {script} {' '.join(map(str, args))} exited with {proc.returncode}:\n"
                    f"{out[-6000:]}")
    return result
