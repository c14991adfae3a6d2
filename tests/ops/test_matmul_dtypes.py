"""Products never promote: float32 @ float64 (and float @ int, float16 @ float32) raise
RuntimeError with PyTorch's message, where tapegrad silently returned float64."""
import pytest

import tapegrad


def _calls(M):
    F = M.nn.functional
    a, b = M.ones(2, 3), M.ones(3, 2, dtype=M.float64)
    return {
        "matmul": lambda: a @ b, "rmatmul": lambda: b.T @ a.T, "mm": lambda: M.mm(a, b),
        "bmm": lambda: M.bmm(a[None], b[None]), "matmul3d": lambda: M.matmul(a[None], b[None]),
        "mv": lambda: M.mv(a, b[:, 0]), "dot": lambda: M.dot(a[0], b[:, 0]), "matmul1d": lambda: a[0] @ b[:, 0],
        "addmm": lambda: M.addmm(M.ones(2, 2), a, b), "addmm_self": lambda: M.addmm(M.ones(2, 2, dtype=M.float64), a, b.float()),
        "addmv": lambda: M.addmv(M.ones(2), a, b[:, 0]), "baddbmm": lambda: M.baddbmm(M.ones(1, 2, 2), a[None], b[None]),
        "addbmm": lambda: M.addbmm(M.ones(2, 2), a[None], b[None]),
        "linear": lambda: F.linear(b.T, a), "linear3d": lambda: F.linear(M.ones(4, 2, 3, dtype=M.float64), a),
        "linear_bias": lambda: F.linear(a, b.float().T, M.ones(2, dtype=M.float64)),
        "Linear": lambda: M.nn.Linear(3, 2)(M.ones(2, 3, dtype=M.float64)),
        "Linear_nobias": lambda: M.nn.Linear(3, 2, bias=False)(M.ones(2, 3, dtype=M.float64)),
        "half": lambda: M.ones(2, 3, dtype=M.float16) @ a.T, "int": lambda: M.ones(2, 3, dtype=M.int64) @ a.T,
        "int32_int64": lambda: M.ones(2, 3, dtype=M.int32) @ M.ones(3, 2, dtype=M.int64),
        "einsum": lambda: M.einsum("ij,jk->ik", a, b), "tensordot": lambda: M.tensordot(a, b, 1),
        "inner": lambda: M.inner(a, b.T),
        "bilinear": lambda: F.bilinear(M.ones(2, 3), M.ones(2, 3, dtype=M.float64), M.ones(4, 3, 3)),
    }


@pytest.mark.parametrize("name", sorted(_calls(tapegrad)))
def test_mixed_dtypes_raise(name):
    with pytest.raises(RuntimeError, match="dtype|scalar type"):
        _calls(tapegrad)[name]()


def test_float32_linear_fed_float64_names_both():
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype, but got Double and Float"):
        tapegrad.nn.Linear(3, 2)(tapegrad.ones(2, 3, dtype=tapegrad.float64))


def test_same_dtype_and_scalars_still_work():
    a = tapegrad.ones(2, 3, dtype=tapegrad.float64)
    assert (a @ a.T).dtype == tapegrad.float64
    assert tapegrad.outer(tapegrad.ones(2), tapegrad.ones(2, dtype=tapegrad.float64)).dtype == tapegrad.float64


@pytest.mark.parametrize("name", sorted(_calls(tapegrad)))
def test_messages_match_torch(name):
    torch = pytest.importorskip("torch")
    msgs = []
    for M in (tapegrad, torch):
        with pytest.raises(RuntimeError) as e:
            _calls(M)[name]()
        msgs.append(str(e.value))
    assert msgs[0].startswith(msgs[1]), msgs


def _int_scaled_calls(M):
    i2, t3 = M.tensor([[1, 2], [3, 4]]), M.tensor([[[3, -1]], [[2, 5]]])
    b, u, w = M.tensor([[True, False], [False, False]]), M.tensor([True, False]), M.tensor([True, True])
    calls = {
        "addmv": lambda: M.addmv(M.tensor([3, 5]), i2, M.tensor([1, -1]), beta=0.2, alpha=0.6),
        "addmm": lambda: M.addmm(M.tensor([[3, 5]]), i2, i2, beta=0.5, alpha=2.5),
        "baddbmm": lambda: M.baddbmm(M.tensor([[[1]]]), t3, t3.transpose(1, 2), beta=1.5, alpha=-1.5),
        "addbmm": lambda: M.addbmm(M.tensor([[7]]), t3, t3.transpose(1, 2), beta=2.5, alpha=1.5),
        "addr_int": lambda: M.addr(M.tensor([[1, 2]]), M.tensor([2]), M.tensor([3, 4]), beta=2, alpha=3),
    }
    for k, (be, al) in enumerate([(3, 2), (0, 1), (True, False), (1, 0), (0, 0)]):
        calls[f"addr_bool{k}"] = lambda be=be, al=al: M.addr(b, u, w, beta=be, alpha=al)
    return calls


@pytest.mark.parametrize("name", sorted(_int_scaled_calls(tapegrad)))
def test_integer_and_bool_scaled_products_keep_their_dtype_as_torch(name):
    # op_db's int64 addmv/addbmm/baddbmm samples (beta=0.2, alpha=0.6) came back float32: PyTorch
    # truncates the scalars to the integer dtype; bool addr is logical and/or, not an int64 sum
    torch = pytest.importorskip("torch")
    got, want = _int_scaled_calls(tapegrad)[name](), _int_scaled_calls(torch)[name]()
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    assert got.tolist() == want.tolist()


def test_integer_addr_refuses_float_scalars_as_torch():
    for M in (tapegrad, pytest.importorskip("torch")):
        with pytest.raises(RuntimeError, match="beta"):
            M.addr(M.tensor([[1, 2]]), M.tensor([2]), M.tensor([3, 4]), beta=0.5)
