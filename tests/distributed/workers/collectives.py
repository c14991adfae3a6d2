"""Every collective against numpy, blocking and async, every ReduceOp and dtype; mismatches
across ranks raise the same clear error on every rank (and the job goes on: no hang)."""
import sys

import numpy as np

import tapegrad
import tapegrad.distributed as dist
from common import check

dist.init_process_group("mpi")
rank, n = dist.get_rank(), dist.get_world_size()
R = dist.ReduceOp
DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8"]


def data(r, dtype, shape=(2, 3)):
    """Rank r's input: small distinct values (products of 3 ranks stay inside int8)."""
    a = (np.arange(np.prod(shape)).reshape(shape) % 3 + 1 + r)
    return a.astype(dtype)


def every_rank(dtype, shape=(2, 3)):
    return [data(r, dtype, shape) for r in range(n)]


def expect(got, want, what):
    if got.dtype.kind == "f":
        ok = np.allclose(got, want, rtol=1e-6)
    else:
        ok = np.array_equal(got, want)
    check(ok and got.dtype == want.dtype, f"rank {rank}: {what}: got {got!r}, want {want!r}")


def finish(work, async_op):
    if async_op:
        check(work is not None, "async_op=True returned no work")
        work.wait()
        check(work.is_completed() and work.is_success(), "work not completed after wait()")
    else:
        check(work is None, "a blocking collective returned a work object")


REDUCE = {R.SUM: lambda xs: np.sum(xs, 0), R.PRODUCT: lambda xs: np.prod(xs, 0), R.MIN: lambda xs: np.min(xs, 0),
          R.MAX: lambda xs: np.max(xs, 0), R.BAND: lambda xs: np.bitwise_and.reduce(xs, 0),
          R.BOR: lambda xs: np.bitwise_or.reduce(xs, 0), R.BXOR: lambda xs: np.bitwise_xor.reduce(xs, 0),
          R.AVG: lambda xs: np.mean(xs, 0)}

for async_op in (False, True):
    for dtype in DTYPES:
        xs = np.stack(every_rank(dtype))
        for op, fn in REDUCE.items():
            floating = np.dtype(dtype).kind == "f"
            if (op is R.AVG and not floating) or (op in (R.BAND, R.BOR, R.BXOR) and floating):
                try:
                    dist.all_reduce(tapegrad.tensor(data(rank, dtype)), op=op)
                except TypeError:
                    continue
                raise AssertionError(f"all_reduce {op} on {dtype} did not raise TypeError")
            want = fn(xs).astype(dtype)
            t = tapegrad.tensor(data(rank, dtype))
            finish(dist.all_reduce(t, op=op, async_op=async_op), async_op)
            expect(t.numpy(), want, f"all_reduce {op.name} {dtype} async={async_op}")
            for dst in {op.code % n, n - 1}:  # every root over the ops, not every pair
                t = tapegrad.tensor(data(rank, dtype))
                finish(dist.reduce(t, dst=dst, op=op, async_op=async_op), async_op)
                expect(t.numpy(), want if rank == dst else data(rank, dtype), f"reduce {op.name} to {dst}")
            out = tapegrad.zeros(3, dtype=dtype)
            inp = tapegrad.tensor(np.concatenate([data(rank, dtype, (3,)) * (k + 1) for k in range(n)]))
            finish(dist.reduce_scatter_tensor(out, inp, op=op, async_op=async_op), async_op)
            blocks = np.stack([np.concatenate([data(r, dtype, (3,)) * (k + 1) for k in range(n)]) for r in range(n)])
            expect(out.numpy(), fn(blocks).astype(dtype)[3 * rank:3 * rank + 3], f"reduce_scatter {op.name} {dtype}")
        for src in range(n):
            t = tapegrad.tensor(data(rank, dtype))
            finish(dist.broadcast(t, src=src, async_op=async_op), async_op)
            expect(t.numpy(), data(src, dtype), f"broadcast from {src}")
        # an odd element count per rank: 7 x 3 ranks does not split into powers of two
        lst = [tapegrad.zeros(7, dtype=dtype) for _ in range(n)]
        finish(dist.all_gather(lst, tapegrad.tensor(data(rank, dtype, (7,))), async_op=async_op), async_op)
        for r in range(n):
            expect(lst[r].numpy(), data(r, dtype, (7,)), f"all_gather[{r}]")
        out = tapegrad.zeros(n, 7, dtype=dtype)
        finish(dist.all_gather_into_tensor(out, tapegrad.tensor(data(rank, dtype, (7,))), async_op=async_op),
               async_op)
        expect(out.numpy(), np.stack(every_rank(dtype, (7,))), "all_gather_into_tensor")
        for root in range(n):
            lst = [tapegrad.zeros(5, dtype=dtype) for _ in range(n)] if rank == root else None
            finish(dist.gather(tapegrad.tensor(data(rank, dtype, (5,))), lst, dst=root, async_op=async_op), async_op)
            if rank == root:
                for r in range(n):
                    expect(lst[r].numpy(), data(r, dtype, (5,)), f"gather[{r}] at {root}")
            t = tapegrad.zeros(5, dtype=dtype)
            lst = [tapegrad.tensor(data(r, dtype, (5,)) * 2) for r in range(n)] if rank == root else None
            finish(dist.scatter(t, lst, src=root, async_op=async_op), async_op)
            expect(t.numpy(), data(rank, dtype, (5,)) * 2, f"scatter from {root}")
        # point to point: a ring
        right, left = (rank + 1) % n, (rank - 1) % n
        t = tapegrad.zeros(4, dtype=dtype)
        if async_op:
            ws = [dist.isend(tapegrad.tensor(data(rank, dtype, (4,))), right), dist.irecv(t, left)]
            for w in ws:
                w.wait()
        elif rank % 2 == 0:
            dist.send(tapegrad.tensor(data(rank, dtype, (4,))), right)
            check(dist.recv(t, left) == left, "recv returned the wrong sender")
        else:
            check(dist.recv(t, None) == left, "recv from any source returned the wrong sender")
            dist.send(tapegrad.tensor(data(rank, dtype, (4,))), right)
        expect(t.numpy(), data(left, dtype, (4,)), "send/recv ring")

# uneven all_gather: rank r passes r + 1 elements (PyTorch allows differing sizes)
for async_op in (False, True):
    for dtype in ("float32", "int64"):
        lst = [tapegrad.zeros(r + 1, 2, dtype=dtype) for r in range(n)]
        finish(dist.all_gather(lst, tapegrad.tensor(data(rank, dtype, (rank + 1, 2))), async_op=async_op), async_op)
        for r in range(n):
            expect(lst[r].numpy(), data(r, dtype, (r + 1, 2)), f"uneven all_gather[{r}] async={async_op}")
        # reduce_scatter (the list form), even and uneven
        for sizes in ([3] * n, [r + 2 for r in range(n)]):
            for op in (R.SUM, R.MAX, R.AVG) if dtype == "float32" else (R.SUM, R.MAX):
                out = tapegrad.zeros(sizes[rank], dtype=dtype)
                ins = [tapegrad.tensor(data(rank, dtype, (sizes[k],)) * (k + 1)) for k in range(n)]
                finish(dist.reduce_scatter(out, ins, op=op, async_op=async_op), async_op)
                want = REDUCE[op](np.stack([data(r, dtype, (sizes[rank],)) * (rank + 1) for r in range(n)]))
                expect(out.numpy(), want.astype(dtype), f"reduce_scatter {op.name} sizes={sizes} async={async_op}")

# Work.get_future: the output tensors, and then() chains on them
t = tapegrad.tensor([float(rank + 1)])
fut = dist.all_reduce(t, async_op=True).get_future()
halved = fut.then(lambda f: f.value()[0] / 2)
check(abs(float(halved.wait()) - n * (n + 1) / 4) < 1e-6 and fut.done() and fut.value()[0] is t, "get_future/then")
lst = [tapegrad.zeros(1) for _ in range(n)]
got = dist.all_gather(lst, tapegrad.tensor([float(rank)]), async_op=True).get_future().wait()
check(got[0] is lst and [float(x) for x in lst] == [float(r) for r in range(n)], "all_gather future")

# bool: logical reductions
t = tapegrad.tensor(np.array([rank == 0, True, False]))
dist.all_reduce(t, op=R.MAX)
expect(t.numpy(), np.array([True, True, False]), "all_reduce MAX on bool")

# objects travel as JSON
objs = [None] * n
dist.all_gather_object(objs, {"rank": rank, "xs": [rank] * rank})
check(objs == [{"rank": r, "xs": [r] * r} for r in range(n)], f"all_gather_object: {objs}")
lst = [{"lr": 0.1, "name": "x"}, 3] if rank == 1 else [None, None]
dist.broadcast_object_list(lst, src=1)
check(lst == [{"lr": 0.1, "name": "x"}, 3], f"broadcast_object_list: {lst}")


def raises_everywhere(exc, words, fn):
    try:
        fn()
    except exc as e:
        for w in words:
            check(w in str(e), f"error message {str(e)!r} lacks {w!r}")
    else:
        raise AssertionError(f"rank {rank}: no {exc.__name__} ({words})")


if sys.argv[1:] == ["nocheck"]:  # TAPEGRAD_DISTRIBUTED_CHECK=0: mismatches would hang, as in raw MPI
    dist.barrier()
    print(f"rank {rank}: ok")
    sys.exit(0)

# mismatches: a clear error on every rank, and the group still works afterwards
raises_everywhere(RuntimeError, ["all_reduce", "shape (3,)", "shape (4,)"],
                  lambda: dist.all_reduce(tapegrad.ones(3 if rank == 0 else 4)))
raises_everywhere(RuntimeError, ["float32", "float64"],
                  lambda: dist.all_reduce(tapegrad.ones(3, dtype="float32" if rank == 0 else "float64")))
raises_everywhere(RuntimeError, ["different collectives", "broadcast", "all_reduce"],
                  lambda: dist.all_reduce(tapegrad.ones(3)) if rank == 0 else dist.broadcast(tapegrad.ones(3), 0))
raises_everywhere(RuntimeError, ["src=0", "src=1"], lambda: dist.broadcast(tapegrad.ones(2), src=min(rank, 1)))
raises_everywhere(RuntimeError, ["all_gather", "tensor_list"],
                  lambda: dist.all_gather([tapegrad.zeros(2)] * (n if rank else n + 1), tapegrad.ones(2)))
raises_everywhere(TypeError, ["JSON", "never pickle"],
                  lambda: dist.all_gather_object(objs, {1, 2} if rank == n - 1 else 1))
raises_everywhere(ValueError, ["contiguous"], lambda: dist.all_reduce(tapegrad.ones(3, 4).t()))
if rank == 0:
    dist.send(tapegrad.ones(3), 1)
elif rank == 1:
    raises_everywhere(RuntimeError, ["recv", "shape (3,)", "shape (5,)"], lambda: dist.recv(tapegrad.zeros(5), 0))
raises_everywhere(RuntimeError, ["all_gather", "tensor_list[0]", "this rank's entry"] if rank == 0 else
                  ["all_gather", "rank 0"],
                  lambda: dist.all_gather([tapegrad.zeros(2 if r else 3) for r in range(n)], tapegrad.ones(2)))
raises_everywhere(RuntimeError, ["reduce_scatter", "input_list"],
                  lambda: dist.reduce_scatter(tapegrad.zeros(2), [tapegrad.ones(2)] * (n + (rank == 1))))
t = tapegrad.ones(2)
dist.all_reduce(t)
expect(t.numpy(), np.full(2, float(n), np.float32), "all_reduce after the errors")

# sub-groups: ranks [0, n-1]; the others are outside
g = dist.new_group([0, n - 1])
if rank in (0, n - 1):
    t = tapegrad.tensor([float(rank)])
    dist.all_reduce(t, group=g)
    expect(t.numpy(), np.array([float(n - 1)], np.float32), "all_reduce in a sub-group")
    check(dist.get_world_size(g) == 2 and dist.get_rank(g) == (0 if rank == 0 else 1), "group ranks")
else:
    raises_everywhere(ValueError, ["not a member"], lambda: dist.all_reduce(tapegrad.ones(1), group=g))
dist.barrier()
print(f"rank {rank}: ok")
