# torch.fx's documentation examples and the Conv/BN fusion tutorial, as a PyTorch user writes them:
# trace, read the graph and code, edit the graph (swap an op, insert a node, replace a pattern),
# Interpreter/Transformer, ShapeProp, and fusing BatchNorm into the convolution before it.
import copy
fx = torch.fx  # (the runner binds torch; an import statement would always find PyTorch's)
ShapeProp = torch.fx.passes.shape_prop.ShapeProp

torch.manual_seed(0)


class MyModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.param = nn.Parameter(torch.from_numpy(np.random.default_rng(0).random((3, 4))))
        self.linear = nn.Linear(4, 5).double()

    def forward(self, x):
        return self.linear(x + self.param).clamp(min=0.0, max=1.0)


m = MyModule()
with torch.no_grad():
    m.linear.weight.copy_(torch.from_numpy(np.random.default_rng(1).normal(size=(5, 4))))
    m.linear.bias.copy_(torch.from_numpy(np.random.default_rng(2).normal(size=5)))
x = torch.from_numpy(np.random.default_rng(3).normal(size=(3, 4)))
gm = fx.symbolic_trace(m)
out["code"] = gm.code
out["nodes"] = [(n.op, n.name, str(n.target) if isinstance(n.target, str) else n.target.__name__, str(n.args))
                for n in gm.graph.nodes]
out["traced"] = gm(x)

# swap add for mul
for node in gm.graph.nodes:
    if node.op == "call_function" and node.target.__name__ == "add":
        node.target = torch.mul
gm.recompile()
out["mul_code"] = gm.code
out["mul"] = gm(x)

# insert a relu after the linear layer
for node in gm.graph.nodes:
    if node.op == "call_module":
        with gm.graph.inserting_after(node):
            new_node = gm.graph.call_function(torch.relu, (node,))
            node.replace_all_uses_with(new_node)
            new_node.args = (node,)
gm.graph.lint()
gm.recompile()
out["relu_code"] = gm.code
out["relu"] = gm(x)


# Transformer: sigmoid <-> neg
def fn(x):
    return torch.sigmoid(x).neg()


class NegSigmoidSwapXformer(fx.Transformer):
    def call_function(self, target, args, kwargs):
        if target == torch.sigmoid:
            return torch.neg(*args, **kwargs)
        return super().call_function(target, args, kwargs)

    def call_method(self, target, args, kwargs):
        if target == "neg":
            call_self, *args_tail = args
            return call_self.sigmoid(*args_tail, **kwargs)
        return super().call_method(target, args, kwargs)


transformed = NegSigmoidSwapXformer(fx.symbolic_trace(fn)).transform()
out["xformer_code"] = transformed.code
out["xformer"] = transformed(x)


class NegSigmoidSwapInterpreter(fx.Interpreter):
    def call_function(self, target, args, kwargs):
        if target == torch.sigmoid:
            return torch.neg(*args, **kwargs)
        return super().call_function(target, args, kwargs)


out["interpreter"] = NegSigmoidSwapInterpreter(fx.symbolic_trace(fn)).run(x)


# replace_pattern, as in its docstring
class M(nn.Module):
    def forward(self, x, w1, w2):
        m1 = torch.cat([w1, w2]).sum()
        m2 = torch.cat([w1, w2]).sum()
        return x + torch.max(m1) + torch.max(m2)


def pattern(w1, w2):
    return torch.cat([w1, w2]).sum()


def replacement(w1, w2):
    return torch.stack([w1, w2])


rgm = fx.symbolic_trace(M())
matches = fx.replace_pattern(rgm, pattern, replacement)
out["n_matches"] = len(matches)
out["replaced_code"] = rgm.code
w1, w2 = x[0], x[1]
out["replaced"] = rgm(x[2, :1], w1, w2)

# ShapeProp
ShapeProp(gm).propagate(x)
out["shapes"] = [(n.name, list(n.meta["tensor_meta"].shape), str(n.meta["tensor_meta"].dtype).split(".")[-1])
                 for n in gm.graph.nodes if "tensor_meta" in n.meta]


# Conv/BN fusion (the FX tutorial's fuse())
class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1).double()
        self.bn = nn.BatchNorm2d(3).double()
        self.head = nn.Conv2d(3, 2, 1).double()

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    bn_var_rsqrt = torch.rsqrt(bn_rv + bn_eps)
    conv_w = conv_w * (bn_w * bn_var_rsqrt).reshape([-1] + [1] * (len(conv_w.shape) - 1))
    conv_b = (conv_b - bn_rm) * bn_var_rsqrt * bn_w + bn_b
    return nn.Parameter(conv_w), nn.Parameter(conv_b)


def fuse(model):
    model = copy.deepcopy(model)
    fx_model = fx.symbolic_trace(model)
    modules = dict(fx_model.named_modules())
    for node in fx_model.graph.nodes:
        if node.op != "call_module":
            continue
        if type(modules[node.target]) is nn.BatchNorm2d and type(modules[node.args[0].target]) is nn.Conv2d:
            if len(node.args[0].users) > 1:
                continue
            conv, bn = modules[node.args[0].target], modules[node.target]
            with torch.no_grad():
                conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                              bn.eps, bn.weight, bn.bias)
            node.replace_all_uses_with(node.args[0])
            fx_model.graph.erase_node(node)
    fx_model.graph.lint()
    fx_model.delete_all_unused_submodules()
    fx_model.recompile()
    return fx_model


cb = ConvBN()
for i, (name, p) in enumerate(sorted(cb.named_parameters())):
    with torch.no_grad():
        p.copy_(torch.from_numpy(np.random.default_rng(10 + i).normal(size=tuple(p.shape))))
img = torch.from_numpy(np.random.default_rng(4).normal(size=(2, 2, 5, 5)))
cb.train()
cb(img)  # running statistics
cb.eval()
fused = fuse(cb)
out["fused_code"] = fused.code
out["fused_modules"] = sorted(name for name, _ in fused.named_children())
out["fused"] = fused(img)
out["unfused"] = cb(img)
out["tolerance"] = (1e-10, 1e-12)  # float64 throughout
