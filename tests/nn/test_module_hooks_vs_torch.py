"""nn.Module's backward hooks (full, pre, deprecated), the global module hooks, state_dict and
load_state_dict hooks, extra state, set_submodule, to_empty, compile: what the hooks see and what
the gradients become, against PyTorch."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
from tapegrad.nn.modules import module as tg_module  # noqa: E402

R = np.random.default_rng(0)
pytestmark = [pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning"),  # torch's own
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _np(t):
    return None if t is None else t.detach().numpy()


def _same(a, b):
    assert (a is None) == (b is None), (a, b)
    if a is not None:
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-10, atol=1e-12)


def _pair(make):
    tm = make(torch).double()
    gm = make(tg).double()
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    return tm, gm


def _inputs(*shapes, grad=True):
    arrs = [R.standard_normal(s) for s in shapes]
    return ([torch.tensor(a, requires_grad=grad) for a in arrs], [tg.tensor(a, requires_grad=grad) for a in arrs])


def _mlp(M):
    return M.nn.Sequential(M.nn.Linear(3, 4), M.nn.Tanh(), M.nn.Linear(4, 2))


def _recorder(log):
    def hook(m, gi, go):
        log.append((tuple(gi), tuple(go)))
    return hook


def _compare_logs(tl, gl):
    assert len(tl) == len(gl)
    for (tgi, tgo), (ggi, ggo) in zip(tl, gl):
        assert len(tgi) == len(ggi) and len(tgo) == len(ggo)
        for a, b in zip(tgi + tgo, ggi + ggo):
            _same(a, b)


def test_full_backward_hook_sees_module_gradients():
    tm, gm = _pair(_mlp)
    (tx,), (gx,) = _inputs((5, 3))
    tl, gl = [], []
    for m, log in ((tm, tl), (gm, gl)):
        for layer in m:
            layer.register_full_backward_hook(_recorder(log))
    tm(tx).pow(2).sum().backward()
    gm(gx).pow(2).sum().backward()
    _compare_logs(tl, gl)
    _same(tx.grad, gx.grad)


def test_pre_hook_replaces_grad_output_and_full_hook_replaces_grad_input():
    tm, gm = _pair(_mlp)
    (tx,), (gx,) = _inputs((5, 3))
    for m in (tm, gm):
        m[2].register_full_backward_pre_hook(lambda mod, go: (go[0] * 3,))
        m[0].register_full_backward_hook(lambda mod, gi, go: (gi[0] - 1,))
    tm(tx).sum().backward()
    gm(gx).sum().backward()
    _same(tx.grad, gx.grad)
    for (_, tp), (_, gp) in zip(tm.named_parameters(), gm.named_parameters()):
        _same(tp.grad, gp.grad)


class _TwoIn:
    """forward(x, y, scale): y may not require grad, scale is a float."""

    @staticmethod
    def make(M):
        class TwoIn(M.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = M.nn.Linear(3, 3)

            def forward(self, x, y, scale):
                return self.lin(x) * y * scale, (x * 2).sum(1)
        return TwoIn()


def test_inputs_without_grad_and_non_tensor_args_get_none():
    tm, gm = _pair(_TwoIn.make)
    (tx,), (gx,) = _inputs((4, 3))
    (ty,), (gy,) = _inputs((4, 3), grad=False)
    tl, gl = [], []
    tm.register_full_backward_hook(_recorder(tl))
    gm.register_full_backward_hook(_recorder(gl))
    to = tm(tx, ty, 0.5)
    go = gm(gx, gy, 0.5)
    to[0].sum().backward()  # the second output gets no gradient: None in grad_output
    go[0].sum().backward()
    _compare_logs(tl, gl)
    assert gl[0][0][2] is None and gl[0][1][1] is None  # PyTorch: zeros for y, None for the float
    _same(tx.grad, gx.grad)


def test_no_input_requires_grad_calls_hook_with_none_inputs():
    tm, gm = _pair(_mlp)
    (tx,), (gx,) = _inputs((5, 3), grad=False)
    tl, gl = [], []
    tm[0].register_full_backward_hook(_recorder(tl))
    gm[0].register_full_backward_hook(_recorder(gl))
    tm(tx).sum().backward()
    with pytest.warns(UserWarning, match="Full backward hook is firing when gradients are computed with respect "
                                         "to module outputs"):
        gm(gx).sum().backward()
    _compare_logs(tl, gl)
    assert gl[0][0] == (None,)
    gm[0].register_full_backward_hook(lambda m, gi, go: (tg.ones(1),))
    with pytest.raises(RuntimeError, match="no input requires gradient"):
        gm(gx).sum().backward()


def test_module_called_twice_and_handle_removal():
    tm, gm = _pair(lambda M: M.nn.Linear(3, 3))
    (tx,), (gx,) = _inputs((2, 3))
    tl, gl = [], []
    th = tm.register_full_backward_hook(_recorder(tl))
    gh = gm.register_full_backward_hook(_recorder(gl))
    tm(tm(tx)).sum().backward()
    gm(gm(gx)).sum().backward()
    _compare_logs(tl, gl)
    assert len(gl) == 2
    th.remove()
    gh.remove()
    gm(gx).sum().backward()
    assert len(gl) == 2
    assert not gm._forward_pre_hooks  # the no-hook fast path is back


def test_double_backward_through_hooked_module():
    tm, gm = _pair(lambda M: M.nn.Sequential(M.nn.Linear(3, 3), M.nn.Tanh()))
    (tx,), (gx,) = _inputs((2, 3))
    tl, gl = [], []
    tm.register_full_backward_hook(_recorder(tl))
    gm.register_full_backward_hook(_recorder(gl))
    (tg1,) = torch.autograd.grad(tm(tx).pow(2).sum(), tx, create_graph=True)
    (gg1,) = tg.autograd.grad(gm(gx).pow(2).sum(), gx, create_graph=True)
    _same(tg1, gg1)
    tg1.sum().backward()
    gg1.sum().backward()
    _compare_logs(tl, gl)
    _same(tx.grad, gx.grad)


def test_tuple_output_pre_hook_lengths_checked():
    _, gm = _pair(_TwoIn.make)
    (gx,) = _inputs((4, 3))[1]
    gm.register_full_backward_pre_hook(lambda m, go: (go[0],))
    out = gm(gx, tg.ones(4, 3), 1.0)
    with pytest.raises(RuntimeError, match="invalid number of grad_output, got 1, but expected 2"):
        out[0].sum().backward()


def test_dict_output_warns_and_skips_hooks():
    def make(M):
        class D(M.nn.Module):
            def forward(self, x):
                return {"y": x * 2}
        return D()
    for M in (torch, tg):
        m, log = make(M), []
        m.register_full_backward_hook(_recorder(log))
        x = M.ones(2, requires_grad=True)
        with pytest.warns(UserWarning, match="module output should be a Tensor or a tuple"):
            out = m(x)
        out["y"].sum().backward()
        assert log == [] and x.grad.tolist() == [2.0, 2.0]


def test_inplace_on_output_as_pytorch():
    tm, gm = _pair(lambda M: M.nn.Linear(3, 3))
    (tx,), (gx,) = _inputs((2, 3))
    tm.register_full_backward_hook(lambda *a: None)
    gm.register_full_backward_hook(lambda *a: None)
    try:
        y = tm(tx)
        y.relu_()
        y.sum().backward()
        torch_ok = True
    except RuntimeError:
        torch_ok = False
    if torch_ok:
        y = gm(gx)
        y.relu_()
        y.sum().backward()
        _same(tx.grad, gx.grad)
    else:
        with pytest.raises(RuntimeError):
            y = gm(gx)
            y.relu_()
            y.sum().backward()


def test_grad_cam():
    def make(M):
        return M.nn.Sequential(M.nn.Conv2d(2, 4, 3, padding=1), M.nn.ReLU(), M.nn.Conv2d(4, 3, 3, padding=1),
                               M.nn.ReLU(), M.nn.AdaptiveAvgPool2d(1), M.nn.Flatten(), M.nn.Linear(3, 5))
    tm, gm = _pair(make)
    (tx,), (gx,) = _inputs((1, 2, 6, 6), grad=False)
    cams = []
    for M, m, x in ((torch, tm, tx), (tg, gm, gx)):
        store = {}
        m[3].register_forward_hook(lambda mod, a, out: store.__setitem__("act", out.detach()))
        m[3].register_full_backward_hook(lambda mod, gi, go: store.__setitem__("grad", go[0].detach()))
        logits = m(x)
        logits[0, 2].backward()
        weights = store["grad"].mean(dim=(2, 3), keepdim=True)
        cams.append((weights * store["act"]).sum(1).relu())
    _same(cams[0], cams[1])


def test_deprecated_backward_hook_on_single_op_module():
    tm, gm = _pair(lambda M: M.nn.Tanh())
    (tx,), (gx,) = _inputs((3,))
    tl, gl = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm.register_backward_hook(_recorder(tl))
        gm.register_backward_hook(_recorder(gl))
        tm(tx).sum().backward()
    gm(gx).sum().backward()
    _compare_logs(tl, gl)
    with pytest.raises(RuntimeError, match="Cannot use both"):
        gm.register_full_backward_hook(_recorder(gl))


def test_global_module_hooks():
    calls = {torch: [], tg: []}
    mods = {torch: torch.nn.modules.module, tg: tg_module}
    handles = []
    for M in (torch, tg):
        mm, log = mods[M], calls[M]
        handles += [mm.register_module_forward_pre_hook(lambda m, a, log=log: log.append(("pre", type(m).__name__))),
                    mm.register_module_forward_hook(lambda m, a, o, log=log: log.append(("fwd", type(m).__name__))),
                    mm.register_module_full_backward_pre_hook(
                        lambda m, go, log=log: log.append(("bpre", type(m).__name__))),
                    mm.register_module_full_backward_hook(
                        lambda m, gi, go, log=log: log.append(("bwd", type(m).__name__)))]
    try:
        tm, gm = _pair(_mlp)
        (tx,), (gx,) = _inputs((2, 3))
        tm(tx).sum().backward()
        gm(gx).sum().backward()
    finally:
        for h in handles:
            h.remove()
    assert calls[tg] == calls[torch]
    plain = tg.nn.Module.__call__
    assert plain is tg.nn.Module.__dict__["__call__"] and plain is not tg_module._call_global
    n = len(calls[tg])
    gm(gx)
    assert len(calls[tg]) == n


def test_registration_hooks():
    seen = []
    hs = [tg_module.register_module_parameter_registration_hook(lambda m, n, p: seen.append(("p", n))),
          tg_module.register_module_buffer_registration_hook(lambda m, n, b: seen.append(("b", n))),
          tg_module.register_module_module_registration_hook(lambda m, n, s: seen.append(("m", n)))]
    try:
        tg.nn.Sequential(tg.nn.BatchNorm1d(2))
    finally:
        for h in hs:
            h.remove()
    want = []
    hs = [torch.nn.modules.module.register_module_parameter_registration_hook(lambda m, n, p: want.append(("p", n))),
          torch.nn.modules.module.register_module_buffer_registration_hook(lambda m, n, b: want.append(("b", n))),
          torch.nn.modules.module.register_module_module_registration_hook(lambda m, n, s: want.append(("m", n)))]
    try:
        torch.nn.Sequential(torch.nn.BatchNorm1d(2))
    finally:
        for h in hs:
            h.remove()
    assert seen == want


def test_always_call_forward_hook_runs_when_forward_raises():
    class Bad(tg.nn.Module):
        def forward(self, x):
            raise ValueError("boom")
    seen = []
    m = Bad()
    m.register_forward_hook(lambda mod, a, out: seen.append(out), always_call=True)
    with pytest.raises(ValueError, match="boom"):
        m(tg.ones(1))
    assert seen == [None]


def _extra(M):
    class WithExtra(M.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = M.nn.Linear(2, 2)
            self.calls = 3

        def get_extra_state(self):
            return {"calls": self.calls}

        def set_extra_state(self, state):
            self.calls = state["calls"]
    return WithExtra()


def test_extra_state_and_state_dict_hooks():
    tm, gm = _extra(torch), _extra(tg)
    assert list(tm.state_dict()) == list(gm.state_dict())
    assert gm.state_dict()["_extra_state"] == {"calls": 3}
    gm2 = _extra(tg)
    gm2.calls = 0
    gm2.load_state_dict(gm.state_dict())
    assert gm2.calls == 3
    sd = gm.state_dict()
    del sd["_extra_state"]
    with pytest.raises(RuntimeError, match='Missing key.*"_extra_state"'):
        gm2.load_state_dict(sd)
    for m in (tm, gm):
        log = []
        m.lin.register_state_dict_pre_hook(lambda mod, prefix, keep_vars: log.append(("pre", prefix)))
        m.lin.register_state_dict_post_hook(lambda mod, sd, prefix, meta: log.append(("post", prefix, len(sd))))
        m.state_dict()
        m.log = log
    assert tm.log == gm.log
    gm.lin.register_state_dict_post_hook(lambda mod, sd, prefix, meta: sd)
    with pytest.raises(RuntimeError, match="must return None"):
        gm.state_dict()


def test_load_state_dict_hooks_rename_keys_and_edit_incompatible_keys():
    for M in (torch, tg):
        m = M.nn.Sequential(M.nn.Linear(2, 2))
        old = {k.replace("weight", "w"): v for k, v in m.state_dict().items()}

        def rename(mod, sd, prefix, meta, strict, missing, unexpected, errors):
            for k in list(sd):
                if k.startswith(prefix) and k.endswith(".w"):
                    sd[k[:-2] + ".weight"] = sd.pop(k)
        m.register_load_state_dict_pre_hook(rename)
        keys = m.load_state_dict(old)
        assert keys.missing_keys == [] and keys.unexpected_keys == []
        assert "0.w" in old  # the caller's dict is not changed
        m2 = M.nn.Linear(2, 2)
        m2.register_load_state_dict_post_hook(lambda mod, k: k.unexpected_keys.clear())
        m2.load_state_dict({**m2.state_dict(), "junk": M.zeros(1)})  # strict, but the hook cleared it



def _legacy_mlp(M):
    """torchvision's MLPBlock: version 2 renamed linear_1/linear_2 to 0/3 and loads older
    checkpoints by overriding _load_from_state_dict."""
    class MLPBlock(M.nn.Sequential):
        _version = 2

        def __init__(self):
            super().__init__(M.nn.Linear(2, 3), M.nn.GELU(), M.nn.Dropout(0.0), M.nn.Linear(3, 2))

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                  error_msgs):
            version = local_metadata.get("version", None)
            if version is None or version < 2:
                for i in range(2):
                    for kind in ["weight", "bias"]:
                        old_key = f"{prefix}linear_{i + 1}.{kind}"
                        if old_key in state_dict:
                            state_dict[f"{prefix}{3 * i}.{kind}"] = state_dict.pop(old_key)
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                          error_msgs)
    m = M.nn.Sequential(M.nn.LayerNorm(2), MLPBlock(), M.nn.BatchNorm1d(2))
    with M.no_grad():
        for i, p in enumerate(m.parameters()):
            p.copy_(M.tensor(np.linspace(-1, 1, p.numel()).reshape(tuple(p.shape)) + i, dtype=M.float32))
    return m


def test_state_dict_metadata_and_load_from_state_dict_overrides_as_torch():
    res = {}
    for M in (torch, tg):
        m = _legacy_mlp(M)
        sd = m.state_dict()
        meta = {k: dict(v) for k, v in sd._metadata.items()}
        legacy = type(sd)((k.replace("1.0.", "1.linear_1.").replace("1.3.", "1.linear_2."), v * 2)
                          for k, v in sd.items() if not k.endswith("num_batches_tracked"))
        legacy._metadata = type(sd._metadata)((k, dict(v)) for k, v in sd._metadata.items())
        legacy._metadata["1"]["version"] = 1
        legacy._metadata["2"]["version"] = 1  # BatchNorm before num_batches_tracked
        m2 = _legacy_mlp(M)
        keys = m2.load_state_dict(legacy)
        plain = {k.replace("linear_1", "0"): v for k, v in legacy.items()}  # no _metadata: version None
        keys2 = _legacy_mlp(M).load_state_dict({k.replace("linear_2", "3"): v for k, v in plain.items()},
                                                strict=False)
        with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "1.junk", "2.x.y"'):
            m2.load_state_dict({**m2.state_dict(), "1.junk": M.zeros(1), "2.x.y": M.zeros(1)})
        res[M] = [meta, keys.missing_keys, keys.unexpected_keys, _np(m2[1][3].weight), _np(m2[2].num_batches_tracked),
                  keys2.missing_keys, keys2.unexpected_keys]
    assert res[tg][0] == res[torch][0]  # every module's version under its prefix ("" for the root)
    for a, b in zip(res[tg][1:], res[torch][1:]):
        assert (a == b) if isinstance(a, list) else np.array_equal(a, b), (a, b)


def test_torch_nn_modules_paths():
    from tapegrad.nn.modules.batchnorm import _BatchNorm
    from tapegrad.nn.modules.instancenorm import _InstanceNorm
    from tapegrad.nn.modules.utils import _pair, _quadruple, _reverse_repeat_tuple, _single, _triple
    from tapegrad.nn.modules.utils import consume_prefix_in_state_dict_if_present
    from torch.nn.modules import utils as tu
    for f, g in ((_single, tu._single), (_pair, tu._pair), (_triple, tu._triple), (_quadruple, tu._quadruple)):
        assert f(3) == g(3) and f((1, 2)) == g((1, 2))
    assert _reverse_repeat_tuple((1, 2), 2) == tu._reverse_repeat_tuple((1, 2), 2)
    assert isinstance(tg.nn.BatchNorm2d(2), _BatchNorm) and isinstance(tg.nn.SyncBatchNorm(2), _BatchNorm)
    assert isinstance(tg.nn.InstanceNorm1d(2), _InstanceNorm) and not isinstance(tg.nn.LayerNorm(2), _BatchNorm)
    assert tg.nn.modules.distance.CosineSimilarity is tg.nn.CosineSimilarity
    assert tg.nn.modules.upsampling.Upsample is tg.nn.Upsample and tg.nn.modules.fold.Fold is tg.nn.Fold
    assert tg.nn.utils.clip_grad_norm_ is not None  # nn.utils is nn's, not nn.modules.utils
    m = tg.nn.Sequential(tg.nn.Linear(2, 2))
    sd = tg.nn.DataParallel(m).state_dict()
    assert list(sd) == ["module.0.weight", "module.0.bias"] and "module.0" in sd._metadata
    consume_prefix_in_state_dict_if_present(sd, "module.")
    assert list(sd) == ["0.weight", "0.bias"] and "0" in sd._metadata and "" in sd._metadata
    m.load_state_dict(sd)
    with pytest.raises(AssertionError, match="bad rank"):
        tg._assert(tg.ones(2).dim() == 3, "bad rank")
    tg._assert(True, "never")

def test_set_submodule_to_empty_compile_and_memory_format():
    for M in (torch, tg):
        m = M.nn.Sequential(M.nn.Linear(2, 2), M.nn.Sequential(M.nn.ReLU()))
        m.set_submodule("1.0", M.nn.Tanh())
        assert type(m[1][0]).__name__ == "Tanh"
        with pytest.raises(AttributeError):
            m.set_submodule("2.0", M.nn.Tanh())
        with pytest.raises(ValueError):
            m.set_submodule("", M.nn.Tanh())
        with pytest.raises(AttributeError):
            m.set_submodule("1.5", M.nn.Tanh(), strict=True)
        assert m.compile() is None
        assert m.to(memory_format=M.channels_last) is m
        w = m[0].weight
        m.to_empty(device="cpu")
        assert m[0].weight is w and tuple(w.shape) == (2, 2)
    with pytest.raises(TypeError, match="Module.to: memory_format"):
        tg.nn.Linear(2, 2).to(memory_format="channels_last")


def test_module_to_meta_is_a_skeleton_for_functional_call():
    # the torch.func model-ensembling recipe: a deepcopy moved to 'meta', called with stacked params
    res = {}
    for M in (torch, tg):
        models = [M.nn.Sequential(M.nn.Linear(3, 4), M.nn.BatchNorm1d(4)) for _ in range(2)]
        for i, m in enumerate(models):
            with M.no_grad():
                for j, p in enumerate(m.parameters()):
                    p.copy_(M.from_numpy(np.random.default_rng(10 * i + j).standard_normal(tuple(p.shape))))
            m.eval()
        params, buffers = M.func.stack_module_state(models)
        base = models[0].__class__(M.nn.Linear(3, 4), M.nn.BatchNorm1d(4)).eval()
        base[0].weight.grad = M.ones(4, 3)
        assert base.to("meta") is base
        assert [tuple(p.shape) for p in base.parameters()] == [(4, 3), (4,), (4,), (4,)]
        assert tuple(base[0].weight.grad.shape) == (4, 3) and base[1].num_batches_tracked.dtype == M.int64
        x = M.from_numpy(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
        res[M] = M.func.vmap(lambda p, b, x: M.func.functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))(
            params, buffers, x)
    assert res[tg].requires_grad and res[torch].requires_grad
    np.testing.assert_allclose(res[tg].detach().numpy(), res[torch].detach().numpy(), rtol=1e-6)
    skeleton = tg.nn.Linear(2, 2).to("meta", tg.float64)
    assert skeleton.weight.dtype == tg.float64 and skeleton.weight.detach().numpy().strides == (0, 0)
    with pytest.raises((ValueError, RuntimeError)):
        with tg.no_grad():
            skeleton.weight.fill_(1.0)


def test_non_tensor_outputs_and_unused_outputs():
    logs = {}
    for M in (torch, tg):
        class A(M.nn.Module):
            def forward(self, x, n):
                return x * 2, n, x.sum()
        m, log = A(), []
        m.register_full_backward_hook(lambda mod, gi, go, log=log: log.append(
            ([None if g is None else tuple(g.shape) for g in gi], [None if g is None else tuple(g.shape) for g in go])))
        m.register_full_backward_pre_hook(lambda mod, go, log=log: log.append(len(go)))
        x = M.ones(3, requires_grad=True)
        o = m(x, 5)
        (o[0].sum() + o[2]).backward()
        m(x, 5)[2].backward()
        logs[M] = (log, x.grad.tolist())
    assert logs[tg] == logs[torch]
