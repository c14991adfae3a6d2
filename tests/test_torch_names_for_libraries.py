"""Names that libraries touch at import (torch_geometric's, found running it with torch aliased to
tapegrad): each as PyTorch has it, checked against PyTorch where it is importable."""
import numpy as np
import pytest

import tapegrad as tg


def test_jit_overload_returns_the_declaration():
    @tg.jit._overload
    def f(x: int) -> int:
        ...

    def g(x):
        return x
    assert tg.jit._overload(g) is g and tg.jit._overload_method(g) is g and callable(f)


def test_cuda_stream_and_event_exist_but_need_a_gpu():
    torch = pytest.importorskip("torch")
    for M in (tg, torch):
        assert isinstance(M.cuda.Stream, type) and isinstance(M.cuda.Event, type)
    with pytest.raises(RuntimeError, match="torch.cuda.Stream requires CUDA support"):
        tg.cuda.Stream()
    with pytest.raises(RuntimeError, match="requires CUDA support"):
        tg.cuda.Event()


def test_tensor_str_matches_pytorch():
    torch = pytest.importorskip("torch")
    from torch._tensor_str import PRINT_OPTS as want_opts, _tensor_str as want

    from tapegrad._tensor_str import PRINT_OPTS, _tensor_str
    for a in (np.array([[1.0, 2.5], [3.0, 4.0]]), np.arange(6).reshape(2, 3), np.linspace(0, 1, 7)):
        for indent in (0, 4):
            assert _tensor_str(tg.tensor(a), indent=indent) == want(torch.tensor(a), indent=indent)
    for k in ("precision", "threshold", "edgeitems", "linewidth", "sci_mode"):
        assert getattr(PRINT_OPTS, k) == getattr(want_opts, k)


def test_print_opts_follow_set_printoptions():
    from tapegrad._tensor_str import PRINT_OPTS
    try:
        tg.set_printoptions(threshold=7)
        assert PRINT_OPTS.threshold == 7
    finally:
        tg.set_printoptions(profile="default")
    with pytest.raises(AttributeError):
        PRINT_OPTS.nothing


def test_layouts_have_pytorch_names():
    torch = pytest.importorskip("torch")
    for name in ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "jagged"):
        assert repr(getattr(tg, name)) == repr(getattr(torch, name)).replace("torch.", "tapegrad.")
    x = tg.ones(2)
    assert x.layout == tg.strided and x.layout != tg.sparse_csr
    import pickle
    assert pickle.loads(pickle.dumps(tg.sparse_csr)) is tg.sparse_csr


def test_rpc_is_not_available_and_says_so():
    from tapegrad.distributed import rpc
    assert rpc.is_available() is False
    with pytest.raises(RuntimeError, match="tapegrad has no RPC framework"):
        rpc.init_rpc("worker0", rank=0, world_size=1)
    with pytest.raises(RuntimeError, match="no RPC framework"):
        rpc.TensorPipeRpcBackendOptions()


def test_dataloader_iterators_have_pytorch_names():
    from tapegrad.utils.data import dataloader as dl
    loader = tg.utils.data.DataLoader(list(range(4)), batch_size=2)
    it = iter(loader)
    assert isinstance(it, dl._BaseDataLoaderIter) and isinstance(it, dl._SingleProcessDataLoaderIter)
    assert not isinstance(it, dl._MultiProcessingDataLoaderIter)


def test_numpy_under_no_grad_as_pytorch():
    x = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        x.numpy()
    with tg.no_grad():
        assert x.numpy().tolist() == [1.0, 1.0]  # PyTorch allows it with grad mode off
