# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# The three torch.func tutorials as written, shrunk: "Per-sample-gradients" (SimpleCNN, the
# autograd.grad loop stacked by zip(*...), then vmap(grad(compute_loss), in_dims=(None, None, 0, 0))
# over functional_call with detached params/buffers dicts); "Model ensembling" (stack_module_state,
# a deepcopy of the base model moved to the 'meta' device, vmap(fmodel) with and without in_dims);
# "Jacobians, Hessians, hvp, vhp, and more" (the unit-vector autograd.grad loop, vmap(vjp_fn),
# jacrev with argnums ints and tuples, jacfwd, hessian, jacfwd(jacfwd) / jacrev(jacrev), batch
# jacobians by vmap and by summing over the batch then movedim, hvp as jvp(grad(f))). The
# tutorials' torch.randn/randint data come from numpy here.
import copy
from functools import partial

functional_call, vmap, grad = torch.func.functional_call, torch.func.vmap, torch.func.grad
jacrev, jacfwd, hessian = torch.func.jacrev, torch.func.jacfwd, torch.func.hessian
vjp, jvp, stack_module_state = torch.func.vjp, torch.func.jvp, torch.func.stack_module_state
rng = np.random.default_rng(11)


def randn(*shape):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


def same_weights_(model, seed):
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + i).normal(0, 0.2, tuple(p.shape)).astype(np.float32)))
    return model


# ------------------------------------------------------------------ per-sample gradients
class SimpleCNN(nn.Module):
    def __init__(self):
        super(SimpleCNN, self).__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 6, 3, 1)
        self.fc1 = nn.Linear(6 * 2 * 2, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def loss_fn(predictions, targets):
    return F.nll_loss(predictions, targets)


device = 'cpu'
num_models = 4
batch_size = 6
data = randn(batch_size, 1, 8, 8)
targets = torch.from_numpy(rng.integers(0, 10, batch_size))
model = same_weights_(SimpleCNN().to(device=device), 0)


def compute_grad(sample, target):
    sample = sample.unsqueeze(0)  # prepend batch dimension for processing
    target = target.unsqueeze(0)
    prediction = model(sample)
    loss = loss_fn(prediction, target)
    return torch.autograd.grad(loss, list(model.parameters()))


per_sample_grads = [compute_grad(data[i], targets[i]) for i in range(batch_size)]
per_sample_grads = zip(*per_sample_grads)
per_sample_grads = [torch.stack(shards) for shards in per_sample_grads]
out["loop_grads"] = per_sample_grads

params = {k: v.detach() for k, v in model.named_parameters()}
buffers = {k: v.detach() for k, v in model.named_buffers()}


def compute_loss(params, buffers, sample, target):
    batch = sample.unsqueeze(0)
    targets = target.unsqueeze(0)
    predictions = functional_call(model, (params, buffers), (batch,))
    loss = loss_fn(predictions, targets)
    return loss


ft_compute_grad = grad(compute_loss)
ft_compute_sample_grad = vmap(ft_compute_grad, in_dims=(None, None, 0, 0))
ft_per_sample_grads = ft_compute_sample_grad(params, buffers, data, targets)
out["ft_keys"] = list(ft_per_sample_grads.keys())
out["ft_grads"] = dict(ft_per_sample_grads)
out["ft_match"] = [bool(torch.allclose(a, b, atol=3e-3, rtol=1e-5))
                   for a, b in zip(per_sample_grads, ft_per_sample_grads.values())]
out["ft_requires_grad"] = [g.requires_grad for g in ft_per_sample_grads.values()]


# ------------------------------------------------------------------ model ensembling
class SimpleMLP(nn.Module):
    def __init__(self):
        super(SimpleMLP, self).__init__()
        self.fc1 = nn.Linear(36, 16)
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 10)

    def forward(self, x):
        x = x.flatten(1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.fc2(x)
        x = F.relu(x)
        x = self.fc3(x)
        return x


data = randn(10, 5, 1, 6, 6)
models = [same_weights_(SimpleMLP().to(device), 10 * i) for i in range(num_models)]
minibatches = data[:num_models]
predictions_diff_minibatch_loop = [model(minibatch) for model, minibatch in zip(models, minibatches)]
minibatch = data[0]
predictions2 = [model(minibatch) for model in models]

params, buffers = stack_module_state(models)
base_model = copy.deepcopy(models[0])
base_model = base_model.to('meta')
out["meta_shapes"] = [list(p.shape) for p in base_model.parameters()]


def fmodel(params, buffers, x):
    return functional_call(base_model, (params, buffers), (x,))


out["stacked_sizes"] = [p.size(0) for p in params.values()]
out["stacked_requires_grad"] = [p.requires_grad for p in params.values()]
predictions1_vmap = vmap(fmodel)(params, buffers, minibatches)
out["ens1"] = predictions1_vmap
out["ens1_close"] = bool(torch.allclose(predictions1_vmap, torch.stack(predictions_diff_minibatch_loop), atol=1e-3,
                                        rtol=1e-5))
predictions2_vmap = vmap(fmodel, in_dims=(0, 0, None))(params, buffers, minibatch)
out["ens2"] = predictions2_vmap
out["ens2_close"] = bool(torch.allclose(predictions2_vmap, torch.stack(predictions2), atol=1e-3, rtol=1e-5))
# the stacked params are leaves: an ensemble can be trained through vmap
ens_loss = F.cross_entropy(predictions2_vmap.flatten(0, 1), torch.from_numpy(rng.integers(0, 10, num_models * 5)))
ens_loss.backward()
out["ens_grads"] = {k: p.grad for k, p in params.items()}


# ------------------------------------------------------------------ jacobians and hessians
def predict(weight, bias, x):
    return F.linear(x, weight, bias).tanh()


D = 8
weight = randn(D, D)
bias = randn(D)
x = randn(D)


def compute_jac(xp):
    jacobian_rows = [torch.autograd.grad(predict(weight, bias, xp), xp, vec)[0]
                     for vec in unit_vectors]
    return torch.stack(jacobian_rows)


xp = x.clone().requires_grad_()
unit_vectors = torch.eye(D)
jacobian = compute_jac(xp)
out["jac_shape"] = list(jacobian.shape)
out["jac_loop"] = jacobian

_, vjp_fn = vjp(partial(predict, weight, bias), x)
ft_jacobian, = vmap(vjp_fn)(unit_vectors)
out["jac_vmap_vjp"] = ft_jacobian
# the tutorial's allclose at its default atol=1e-8: tapegrad's create_graph backward (vjp's) and its
# fused no-graph backward (the loop's) may round an entry differently by one float32 ulp
out["jac_vmap_close"] = bool(torch.allclose(ft_jacobian, jacobian, atol=1e-7))
ft_jacobian = jacrev(predict, argnums=2)(weight, bias, x)
out["jacrev"] = ft_jacobian
ft_jac_weight, ft_jac_bias = jacrev(predict, argnums=(0, 1))(weight, bias, x)
out["jacrev_wb"] = [ft_jac_weight, ft_jac_bias]
out["jacrev_w_shape"] = list(ft_jac_weight.shape)
jacfwd_x = jacfwd(predict, argnums=2)(weight, bias, x)
out["jacfwd"] = jacfwd_x
out["jacfwd_close"] = bool(torch.allclose(jacfwd_x, ft_jacobian, atol=1e-6))

hess_api = hessian(predict, argnums=2)(weight, bias, x)
hess_fwdfwd = jacfwd(jacfwd(predict, argnums=2), argnums=2)(weight, bias, x)
hess_revrev = jacrev(jacrev(predict, argnums=2), argnums=2)(weight, bias, x)
out["hess"] = [hess_api, hess_fwdfwd, hess_revrev]
out["hess_close"] = bool(torch.allclose(hess_api, hess_revrev, atol=1e-5))

batch_size = 5
Din = 4
Dout = 3
weight = randn(Dout, Din)
bias = randn(Dout)
x = randn(batch_size, Din)
compute_batch_jacobian = vmap(jacrev(predict, argnums=2), in_dims=(None, None, 0))
batch_jacobian0 = compute_batch_jacobian(weight, bias, x)


def predict_with_output_summed(weight, bias, x):
    return predict(weight, bias, x).sum(0)


batch_jacobian1 = jacrev(predict_with_output_summed, argnums=2)(weight, bias, x).movedim(1, 0)
out["batch_jac"] = [batch_jacobian0, batch_jacobian1]
out["batch_jac_close"] = bool(torch.allclose(batch_jacobian0, batch_jacobian1))
compute_batch_hessian = vmap(hessian(predict, argnums=2), in_dims=(None, None, 0))
# in float64: a float32 second derivative of tanh near 0 is all rounding in its last digits
batch_hess = compute_batch_hessian(weight.double(), bias.double(), x.double())
out["batch_hess_shape"] = list(batch_hess.shape)
out["batch_hess"] = batch_hess


def hvp(f, primals, tangents):
    return jvp(grad(f), primals, tangents)[1]


def f(x):
    return x.sin().sum()


x = randn(32)
tangent = randn(32)
result = hvp(f, (x,), (tangent,))
out["hvp"] = result
out["hvp_close"] = bool(torch.allclose(result, -x.sin() * tangent, atol=1e-6))
