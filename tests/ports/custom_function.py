# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# The tutorials' custom autograd.Function examples: polynomial_custom_function.py (LegendrePolynomial3
# with save_for_backward, fitted by hand-written SGD under no_grad with a -= lr * a.grad), the
# "Extending PyTorch" Functions (the setup_context form, mark_non_differentiable, needs_input_grad,
# non-tensor arguments getting None, save_for_backward of the output, set_materialize_grads,
# once_differentiable, gradcheck / gradgradcheck in float64); grad-mode switches (inference_mode as
# context and decorator, is_inference, set_grad_enabled as function and context, enable_grad inside
# no_grad); and the save/load round trips of "Saving and Loading Models" (state_dict, strict=False's
# missing/unexpected keys, size-mismatch errors, a general checkpoint with the optimizer).
import math
import os

once_differentiable = torch.autograd.function.once_differentiable

# ---------------------------------------------------------------- polynomial_custom_function.py


class LegendrePolynomial3(torch.autograd.Function):
    """
    We can implement our own custom autograd Functions by subclassing
    torch.autograd.Function and implementing the forward and backward passes
    which operate on Tensors.
    """

    @staticmethod
    def forward(ctx, input):
        """
        In the forward pass we receive a Tensor containing the input and return
        a Tensor containing the output. ctx is a context object that can be used
        to stash information for backward computation. You can cache arbitrary
        objects for use in the backward pass using the ctx.save_for_backward method.
        """
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        """
        In the backward pass we receive a Tensor containing the gradient of the loss
        with respect to the output, and we need to compute the gradient of the loss
        with respect to the input.
        """
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


dtype = torch.float
device = torch.device("cpu")
x = torch.linspace(-math.pi, math.pi, 200, device=device, dtype=dtype)
y = torch.sin(x)
a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
learning_rate = 5e-6
losses = []
for t in range(50):
    # To apply our Function, we use Function.apply method. We alias this as 'P3'.
    P3 = LegendrePolynomial3.apply
    # Forward pass: compute predicted y using operations; we compute
    # P3 using our custom autograd operation.
    y_pred = a + b * P3(c + d * x)
    # Compute and print loss
    loss = (y_pred - y).pow(2).sum()
    if t % 10 == 9:
        losses.append(loss.item())
    # Use autograd to compute the backward pass.
    loss.backward()
    # Update weights using gradient descent
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad
        # Manually zero the gradients after updating weights
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None
out["legendre_losses"] = losses
out["legendre_result"] = [a.item(), b.item(), c.item(), d.item()]
out["grad_fn_name"] = type(LegendrePolynomial3.apply(a * 1)).__name__


# ---------------------------------------------------------------- extending PyTorch


class LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(input, weight, bias):
        output = input.mm(weight.t())
        if bias is not None:
            output += bias.unsqueeze(0).expand_as(output)
        return output

    @staticmethod
    # inputs is a Tuple of all of the inputs passed to forward.
    # output is the output of the forward().
    def setup_context(ctx, inputs, output):
        input, weight, bias = inputs
        ctx.save_for_backward(input, weight, bias)

    # This function has only a single output, so it gets only one gradient
    @staticmethod
    def backward(ctx, grad_output):
        input, weight, bias = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_output.mm(weight)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_output.t().mm(input)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(0)
        return grad_input, grad_weight, grad_bias


class MulConstant(torch.autograd.Function):
    @staticmethod
    def forward(tensor, constant):
        return tensor * constant

    @staticmethod
    def setup_context(ctx, inputs, output):
        # ctx is a context object that can be used to stash information
        # for backward computation
        tensor, constant = inputs
        ctx.constant = constant

    @staticmethod
    def backward(ctx, grad_output):
        # We return as many input gradients as there were arguments.
        # Gradients of non-Tensor arguments to forward must be None.
        return grad_output * ctx.constant, None


class MyCube(torch.autograd.Function):
    @staticmethod
    def forward(x):
        # We wish to save dx for backward. In order to do so, it must
        # be returned as an output.
        dx = 3 * x ** 2
        result = x ** 3
        return result, dx

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, = inputs
        result, dx = output
        ctx.save_for_backward(x, dx)

    @staticmethod
    def backward(ctx, grad_output, grad_dx):
        x, dx = ctx.saved_tensors
        # In order for the autograd.Function to work with higher-order
        # gradients, we must add the gradient contribution of `dx`,
        # which is grad_dx * 6 * x.
        result = grad_output * dx + grad_dx * 6 * x
        return result


def my_cube(x):
    result, dx = MyCube.apply(x)
    return result


class Exp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        result = i.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        result, = ctx.saved_tensors
        return grad_output * result


class SortWithIndices(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        sorted_x, idx = x.sort()
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        ctx.set_materialize_grads(False)
        return sorted_x, idx

    @staticmethod
    @once_differentiable
    def backward(ctx, g1, g2):  # still need to accept g2
        idx, = ctx.saved_tensors
        grad_input = torch.zeros_like(g1)
        grad_input.index_add_(0, idx, g1)
        return grad_input


rng = np.random.default_rng(0)
inp = torch.tensor(rng.standard_normal((5, 4)), requires_grad=True)
W = torch.tensor(rng.standard_normal((3, 4)), requires_grad=True)
bias = torch.tensor(rng.standard_normal(3), requires_grad=True)
out["linear_gradcheck"] = torch.autograd.gradcheck(LinearFunction.apply, (inp, W, bias), eps=1e-6, atol=1e-4)
LinearFunction.apply(inp, W, bias).pow(2).sum().backward()
out["linear_grads"] = [inp.grad, W.grad, bias.grad]
out["linear_no_bias"] = LinearFunction.apply(inp.detach(), W, None)
v = torch.tensor(rng.standard_normal(4), requires_grad=True)
MulConstant.apply(v, 2.5).sum().backward()
out["mul_constant"] = v.grad
out["cube_gradgradcheck"] = torch.autograd.gradgradcheck(my_cube, (v,))
g, = torch.autograd.grad(my_cube(v).sum(), v, create_graph=True)
out["cube_second"] = torch.autograd.grad(g.sum(), v)[0]
e = Exp.apply(v)
e.backward(torch.ones_like(e))
out["exp_grad"] = v.grad
v.grad = None
s, idx = SortWithIndices.apply(v)
out["sort_flags"] = [s.requires_grad, idx.requires_grad, idx.dtype == torch.int64]
(s * torch.arange(4.0, dtype=torch.float64)).sum().backward()
out["sort_grad"] = v.grad


# ---------------------------------------------------------------- grad modes
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


torch.manual_seed(0)
model = Net()
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).uniform(-0.5, 0.5, tuple(p.shape)).astype(np.float32)))
xb = torch.from_numpy(rng.standard_normal((6, 4)).astype(np.float32))
model.eval()
with torch.inference_mode():
    y_inf = model(xb)
    inner = [torch.is_inference_mode_enabled(), torch.is_grad_enabled()]
with torch.no_grad():
    no_grad_is_inference = torch.is_inference_mode_enabled()
out["inference"] = [y_inf.requires_grad, inner, torch.is_inference_mode_enabled(), no_grad_is_inference]


@torch.inference_mode()
def predict(m, x):
    return m(x).argmax(1)


out["predict"] = predict(model, xb)
with torch.no_grad():
    y1 = model(xb)
    with torch.enable_grad():
        y2 = model(xb)
out["no_grad_enable_grad"] = [y1.requires_grad, y2.requires_grad]
torch.set_grad_enabled(False)
y3 = model(xb)
torch.set_grad_enabled(True)
with torch.set_grad_enabled(False):
    y4 = model(xb)
out["set_grad_enabled"] = [y3.requires_grad, y4.requires_grad, torch.is_grad_enabled()]
with torch.inference_mode(mode=False):
    out["inference_off"] = model(xb).requires_grad

# ---------------------------------------------------------------- saving and loading
optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
model.train()
for _ in range(2):
    optimizer.zero_grad()
    F.cross_entropy(model(xb), torch.tensor([0, 1, 0, 1, 1, 0])).backward()
    optimizer.step()
PATH = os.path.join(tmpdir, "model.pt")
torch.save(model.state_dict(), PATH)
model2 = Net()
res = model2.load_state_dict(torch.load(PATH, weights_only=True))
out["load_result"] = [list(res.missing_keys), list(res.unexpected_keys)]
model2.eval()
model.eval()
out["loaded_same"] = bool(torch.equal(model(xb), model2(xb)))
out["state_keys"] = list(model.state_dict().keys())
out["num_batches_tracked"] = model2.bn.num_batches_tracked

sd = model.state_dict()
sd.pop("fc2.bias")
sd["extra.weight"] = torch.zeros(1)
res = model2.load_state_dict(sd, strict=False)
out["strict_false"] = [res.missing_keys, res.unexpected_keys]
try:
    model2.load_state_dict(sd)
    out["strict_error"] = None
except RuntimeError as err:
    out["strict_error"] = ["Missing key(s)" in str(err), "Unexpected key(s)" in str(err)]
bad = model.state_dict()
bad["fc1.weight"] = torch.zeros(3, 3)
try:
    model2.load_state_dict(bad)
    out["size_mismatch"] = None
except RuntimeError as err:
    out["size_mismatch"] = "size mismatch for fc1.weight" in str(err)

torch.save({
    'epoch': 2,
    'model_state_dict': model.state_dict(),
    'optimizer_state_dict': optimizer.state_dict(),
    'loss': 0.5,
}, PATH)
model3 = Net()
optimizer3 = optim.SGD(model3.parameters(), lr=0.5)
checkpoint = torch.load(PATH, map_location="cpu")
model3.load_state_dict(checkpoint['model_state_dict'])
optimizer3.load_state_dict(checkpoint['optimizer_state_dict'])
out["checkpoint"] = [checkpoint['epoch'], checkpoint['loss'], optimizer3.param_groups[0]['lr'],
                     optimizer3.param_groups[0]['momentum']]
out["momentum_buffer"] = optimizer3.state_dict()['state'][0]['momentum_buffer']
model3.train()
optimizer3.zero_grad()
F.cross_entropy(model3(xb), torch.tensor([0, 1, 0, 1, 1, 0])).backward()
optimizer3.step()
out["resumed"] = model3.fc2.weight
