"""A tensor that cannot be allocated raises an error naming the op and what was asked for.

Sizes no machine could hold are refused before numpy is asked (PyTorch's "Storage size
calculation overflowed" for a number of elements past int64); sizes numpy refuses as past its
index range (a bare ValueError, "array is too big") become a RuntimeError naming the op and its
arguments; an allocation that fails (numpy's MemoryError, which says the bytes but not the op)
stays a MemoryError, prefixed with the op. The last is checked in a subprocess under an
address-space limit, where the allocation really fails, followed by a kernel call that shows
tapegrad is still usable.
"""
import subprocess
import sys
import textwrap

import pytest

import tapegrad as tg
import tapegrad.nn.functional as F

BIG = 2 ** 40


@pytest.mark.parametrize("make", [
    lambda: tg.zeros(BIG, BIG), lambda: tg.randn(BIG, BIG), lambda: tg.rand(BIG, BIG), lambda: tg.empty(BIG, BIG),
    lambda: tg.ones((BIG, BIG)), lambda: tg.full((BIG, BIG), 1.0), lambda: tg.randint(0, 3, (BIG, BIG)),
    lambda: tg.zeros(2).new_zeros(BIG, BIG),
], ids=["zeros", "randn", "rand", "empty", "ones", "full", "randint", "new_zeros"])
def test_a_number_of_elements_past_int64_is_pytorchs_overflow(make):
    with pytest.raises(RuntimeError, match=r"Storage size calculation overflowed with sizes=\[1099511627776, "
                                           r"1099511627776\]"):
        make()


@pytest.mark.parametrize("opname,make", [
    ("randn", lambda: tg.randn(2 ** 31, 2 ** 31)), ("rand", lambda: tg.rand(2 ** 31, 2 ** 31)),
    ("arange", lambda: tg.arange(2 ** 62)), ("linspace", lambda: tg.linspace(0, 1, 2 ** 62)),
    ("eye", lambda: tg.eye(2 ** 40)), ("randperm", lambda: tg.randperm(2 ** 62)),
    ("normal", lambda: tg.normal(0.0, 1.0, (2 ** 31, 2 ** 31))),
])
def test_sizes_past_numpys_range_name_the_op_and_its_arguments(opname, make):
    """numpy's own words here ("array is too big; `arr.size * arr.dtype.itemsize` is larger than the
    maximum possible size", a ValueError) named neither."""
    with pytest.raises(RuntimeError, match=rf"^{opname}: the tensor asked for is too large to allocate \({opname}\(") as e:
        make()
    assert "2147483648" in str(e.value) or "4611686018427387904" in str(e.value) or "1099511627776" in str(e.value)


def test_negative_sizes_are_refused_in_pytorchs_words():
    for make in (lambda: tg.zeros(-1, 3), lambda: tg.randn(-2), lambda: tg.full((-3,), 1.0)):
        with pytest.raises(RuntimeError, match="Trying to create tensor with negative dimension"):
            make()


LIMITED = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import tapegrad as tg
    import tapegrad.nn.functional as F
    N = 1 << 16  # 4 Gi elements: 16 GiB as float32
    cases = {
        "randn": lambda: tg.randn(N, N), "rand": lambda: tg.rand(N, N), "zeros": lambda: tg.zeros(N, N),
        "cat": lambda: tg.cat([tg.zeros(1, 1).expand(N, N)] * 2),
        "tensor": lambda: tg.tensor(np.broadcast_to(np.float32(0), (N, N))),
        "arange": lambda: tg.arange(N * N), "eye": lambda: tg.eye(N), "randint": lambda: tg.randint(0, 5, (N, N)),
        "randperm": lambda: tg.randperm(N * N), "zeros_like": lambda: tg.zeros_like(tg.zeros(1, 1).expand(N, N)),
        "multinomial": lambda: tg.multinomial(tg.ones(N), N * N, replacement=True),
        "sort": lambda: tg.zeros(1).expand(N * N).sort(), "topk": lambda: tg.zeros(1).expand(N * N).topk(5),
        "matmul": lambda: tg.zeros(N, 1).expand(N, 64) @ tg.zeros(64, 1).expand(64, N),
        "max_pool2d": lambda: F.max_pool2d(tg.zeros(1, 1, 1, 1).expand(64, 64, 1024, 1024), 1),
        "pad": lambda: F.pad(tg.zeros(2, 2), (N * N, 0)),
    }
    x = tg.randn(64, 64, requires_grad=True)
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.RLIM_INFINITY))
    for name, make in cases.items():
        try:
            make()
            print(name, "no error")
        except MemoryError as e:
            print(name, "MemoryError", str(e).replace(chr(10), " "))
    (x @ x).tanh().sum().backward()  # still usable: kernels, tape, grad mode
    print("after", tg.is_grad_enabled(), tuple(x.grad.shape))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS")
def test_failed_allocations_name_the_op_under_an_address_space_limit():
    r = subprocess.run([sys.executable, "-c", LIMITED], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert lines.pop("after") == "True (64, 64)"
    for name, said in lines.items():
        assert said.startswith(f"MemoryError {name}: "), (name, said)
        assert "Unable to allocate" in said or "can't allocate" in said, (name, said)
