"""Join with uneven inputs: rank r has 3 + 2 r batches; every iteration all-reduces a 1 (the
ranks still training), and a joined rank's hook shadows that all-reduce with a 0."""
import sys

import tapegrad
import tapegrad.distributed as dist
from tapegrad.distributed.algorithms import Join, Joinable, JoinHook

from common import check


class _Shadow(JoinHook):
    def __init__(self, counter):
        self.counter = counter

    def main_hook(self):
        dist.all_reduce(tapegrad.zeros(1))  # the collective the others run this iteration

    def post_hook(self, is_last_joiner):
        self.counter.last = is_last_joiner


class Counter(Joinable):
    def __init__(self):
        super().__init__()
        self.seen, self.last = [], None

    def step(self):
        work = Join.notify_join_context(self)
        if work is not None:
            work.wait()
        t = tapegrad.ones(1)
        dist.all_reduce(t)
        self.seen.append(int(t.item()))

    def join_hook(self, **kwargs):
        return _Shadow(self)

    @property
    def join_device(self):
        return tapegrad.device("cpu")

    @property
    def join_process_group(self):
        return None


dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
steps = [3 + 2 * r for r in range(world)]
c = Counter()
with Join([c]):
    for _ in range(steps[rank]):
        c.step()
want = [sum(s > i for s in steps) for i in range(steps[rank])]
check(c.seen == want, f"rank {rank}: {c.seen} != {want}")
check(c.last == (rank == world - 1), f"rank {rank}: is_last_joiner {c.last}")
# throw_on_early_termination: the first rank to run out makes every rank raise
c2, raised = Counter(), None
try:
    with Join([c2], throw_on_early_termination=True):
        for _ in range(steps[rank]):
            c2.step()
except RuntimeError as e:
    raised = str(e)
check(raised is not None and ("exhausted" in raised), f"rank {rank}: {raised}")
check(len(c2.seen) == steps[0], f"rank {rank}: {len(c2.seen)} iterations")
# disabled: no collective of its own
with Join([Counter()], enable=False):
    pass
try:
    Join([])
except ValueError as e:
    check("at least one joinable" in str(e), str(e))
else:
    check(False, "Join([]) did not raise")
print(f"rank {rank}: ok", flush=True)
sys.stdout.flush()
