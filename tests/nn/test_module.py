"""Module behaviour: registration, traversal, modes, conversions, hooks, state_dict, repr."""
import numpy as np
import pytest

import tapegrad
import tapegrad.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
        self.scale = nn.Parameter(tapegrad.ones(1))
        self.register_buffer("steps", tapegrad.zeros(1))
        self.register_buffer("cache", tapegrad.zeros(2), persistent=False)
        self.plain = 5

    def forward(self, x):
        return self.head(self.bn(self.conv(x))) * self.scale


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "head.1.weight", "head.1.bias"]
    assert len(list(net.parameters())) == 7
    assert [n for n, _ in net.named_buffers()] == ["steps", "cache", "bn.running_mean", "bn.running_var",
                                                  "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["conv", "bn", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "conv", "bn", "head", "head.0", "head.1"]
    assert net.get_submodule("head.1") is net.head[1]
    assert net.get_parameter("head.1.bias") is net.head[1].bias
    assert net.plain == 5 and "plain" not in dict(net.named_parameters())
    # shared parameters are yielded once
    net.head[1].weight2 = net.head[1].weight
    assert len(list(net.parameters())) == 7
    # reassigning None to a parameter slot keeps it registered as None
    net.scale = None
    assert "scale" not in dict(net.named_parameters())
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        net.scale = tapegrad.ones(1)
    del net.head
    assert "head" not in dict(net.named_children())
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        net.nothing


def test_train_eval_zero_grad_requires_grad():
    net = Net()
    assert net.training and net.bn.training
    assert net.eval() is net and not net.head[1].training
    net.train()
    assert net.head[0].training
    net(tapegrad.randn(2, 1, 6, 6)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_and_apply():
    net = Net()
    w = net.conv.weight
    assert net.double() is net
    assert net.conv.weight is w and w.dtype == tapegrad.float64
    assert net.bn.running_mean.dtype == tapegrad.float64
    assert net.bn.num_batches_tracked.dtype == tapegrad.int64  # integer buffers are not cast
    assert net(tapegrad.randn(2, 1, 6, 6, dtype=tapegrad.float64)).dtype == tapegrad.float64
    net.to(tapegrad.float32).to("cpu")
    assert w.dtype == tapegrad.float32
    with pytest.raises(RuntimeError, match="CPU only"):
        net.to("cuda")
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "BatchNorm2d", "Flatten", "Linear", "Sequential", "Net"]

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
    net.apply(init)
    assert np.all(net.head[1].weight.detach().numpy() == 0)


def test_state_dict_round_trip_and_errors():
    a, b = Net(), Net()
    sd = a.state_dict()
    assert list(sd) == ["scale", "steps", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                        "bn.running_var", "bn.num_batches_tracked", "head.1.weight", "head.1.bias"]
    assert "cache" not in sd  # non-persistent
    assert not sd["conv.weight"].requires_grad
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == [] and repr(res) == "<All keys matched successfully>"
    for k, v in b.state_dict().items():
        assert np.array_equal(v.numpy(), sd[k].numpy()) and v.dtype == sd[k].dtype
    assert b.conv.weight._data is not a.conv.weight._data  # copied, not aliased

    bad = dict(sd)
    del bad["conv.bias"]
    bad["extra.weight"] = tapegrad.zeros(1)
    with pytest.raises(RuntimeError) as e:
        b.load_state_dict(bad)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "conv.bias"' in msg and 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    missing, unexpected = b.load_state_dict(bad, strict=False)
    assert missing == ["conv.bias"] and unexpected == ["extra.weight"]
    bad = dict(sd)
    bad["head.1.weight"] = tapegrad.zeros(3, 5)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.1.weight: copying a param with shape \(3, 5\) "
                                           r"from checkpoint, the shape in current model is \(3, 32\)"):
        b.load_state_dict(bad, strict=False)


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    out = lin(tapegrad.ones(1, 2))
    np.testing.assert_allclose(out.detach().numpy(), lin.bias.detach().numpy()[None] + 1, rtol=1e-6)
    assert calls == [(1, 2)]
    h1.remove()
    h2.remove()
    x = tapegrad.ones(1, 2)
    np.testing.assert_allclose(lin(x).detach().numpy(), (x @ lin.weight.t() + lin.bias).detach().numpy())
    assert calls == [(1, 2)]


def test_parameter_and_repr():
    p = nn.Parameter(tapegrad.zeros(2))
    assert p.requires_grad and p.is_leaf and isinstance(p, tapegrad.Tensor)
    assert repr(p) == "Parameter containing:\ntensor([0., 0.], requires_grad=True)"
    assert not nn.Parameter(tapegrad.zeros(2), requires_grad=False).requires_grad
    assert repr(Net()) == """Net(
  (conv): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))
  (bn): BatchNorm2d(2, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (head): Sequential(
    (0): Flatten(start_dim=1, end_dim=-1)
    (1): Linear(in_features=32, out_features=3, bias=True)
  )
)"""


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.Linear)
    sub = seq[:2]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[0] is seq[0]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    out = seq(tapegrad.randn(5, 2))
    assert out.shape == (5, 1) and np.all((out.detach().numpy() > 0) & (out.detach().numpy() < 1))
    with pytest.raises(IndexError):
        seq[10]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert named.fc is named[0]
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    ml.append(nn.Linear(1, 2))
    ml += [nn.ReLU()]
    assert len(ml) == 5 and len(list(ml.parameters())) == 8 and isinstance(ml[-1], nn.ReLU)
    md = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.ReLU()})
    md["c"] = nn.Linear(1, 2)
    assert list(md.keys()) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]


def test_deepcopy_of_a_model_has_no_gradients_but_a_tensor_keeps_its_own():
    import copy
    m = tapegrad.nn.Linear(3, 2)
    m(tapegrad.ones(1, 3)).sum().backward()
    m2 = copy.deepcopy(m)  # PyTorch's Parameter.__deepcopy__ leaves .grad out
    assert m2.weight.grad is None and type(m2.weight) is tapegrad.nn.Parameter and m2.weight.requires_grad
    assert np.array_equal(m2.weight.detach().numpy(), m.weight.detach().numpy())
    assert m2.weight._data is not m.weight._data and m.weight.grad is not None
    t = tapegrad.ones(2, requires_grad=True)
    (t * 3).sum().backward()
    assert copy.deepcopy(t).grad.tolist() == [3.0, 3.0]  # a plain tensor's grad is copied, as in PyTorch
