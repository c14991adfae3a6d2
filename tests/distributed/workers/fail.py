"""One rank fails while the others wait in a collective: the whole job must end at once."""
import os
import signal
import sys

import tapegrad
import tapegrad.distributed as dist

dist.init_process_group("mpi")
if dist.get_rank() == 1:
    if sys.argv[1] == "raise":
        raise ValueError("boom on rank 1")
    if sys.argv[1] == "exit":
        sys.exit("rank 1 gives up")
    os.kill(os.getpid(), signal.SIGKILL)
dist.all_reduce(tapegrad.ones(3))  # the others wait here for rank 1, which never comes
dist.barrier()
print("unreachable: the job should have been aborted")
