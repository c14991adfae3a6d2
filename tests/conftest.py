"""Test-suite settings shared by every directory.

Under CI (``CI`` set, as .ci/run's runner does) hypothesis draws a fixed, derandomized sample
with no example database: a run's verdict depends on the code alone, never on a lucky draw or
on the machine's load (no deadlines). Locally it keeps drawing new examples, which is where
new counterexamples are found.
"""
import os

# The kernels run a region on one thread while the machine is oversubscribed (csrc/kernels/parallel.h);
# the tests' 1- against 2-thread comparisons must run real teams however loaded the machine is.
os.environ.setdefault("TAPEGRAD_THREADS_IGNORE_LOAD", "1")

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def restore_threads():
    """The kernel thread count (process-wide) put back after a test that sets it."""
    from tapegrad import _C

    old = _C.get_num_threads()
    yield
    _C.set_num_threads(old)
