# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
x = torch.ones(5)
y = torch.zeros(3)
w = torch.tensor(np.linspace(-1, 1, 15).reshape(5, 3).astype(np.float32), requires_grad=True)
b = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
z = torch.matmul(x, w) + b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
out["grad_fn_z"] = type(z.grad_fn).__name__ != "NoneType"
out["grad_fn_loss_none"] = loss.grad_fn is None
loss.backward()
out["w_grad"] = w.grad
out["b_grad"] = b.grad
z = torch.matmul(x, w) + b
out["z_rg"] = z.requires_grad
with torch.no_grad():
    z = torch.matmul(x, w) + b
out["z_rg_nograd"] = z.requires_grad
z_det = (torch.matmul(x, w) + b).detach()
out["z_det_rg"] = z_det.requires_grad
inp = torch.eye(4, 5, requires_grad=True)
o = (inp + 1).pow(2).t()
o.backward(torch.ones_like(o), retain_graph=True)
out["first"] = inp.grad.clone()
o.backward(torch.ones_like(o))
out["second"] = inp.grad.clone()
inp.grad.zero_()
o2 = (inp + 1).pow(2).t()
o2.backward(torch.ones_like(o2))
out["after_zero"] = inp.grad
a = torch.tensor([2., 3.], requires_grad=True)
b = torch.tensor([6., 4.], requires_grad=True)
Q = 3 * a ** 3 - b ** 2
external_grad = torch.tensor([1., 1.])
Q.backward(gradient=external_grad)
out["a_grad"] = a.grad
out["check_a"] = 9 * a ** 2 == a.grad
out["b_grad2"] = b.grad
x = torch.randn(3, requires_grad=True)
y = x * 2
y.retain_grad()
z = (y * y).sum()
z.backward()
out["y_grad_eq"] = torch.allclose(y.grad, 2 * y)
out["x_grad_eq"] = torch.allclose(x.grad, 8 * x)
out["is_leaf"] = (x.is_leaf, y.is_leaf)
out["requires_grad_int"] = torch.tensor([1, 2]).requires_grad
t = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
s = (t ** 2).sum()
(g,) = torch.autograd.grad(s, t, create_graph=True)
out["g"] = g
(gg,) = torch.autograd.grad(g.sum(), t)
out["gg"] = gg
xx = torch.tensor(2.0, requires_grad=True)
yy = xx ** 3
dy, = torch.autograd.grad(yy, xx, create_graph=True)
d2y, = torch.autograd.grad(dy, xx)
out["d2y"] = d2y
with torch.set_grad_enabled(False):
    out["sge"] = (xx * 2).requires_grad
out["ige"] = torch.is_grad_enabled()
@torch.no_grad()
def f(v):
    return v * 2
out["deco"] = f(xx).requires_grad
p = torch.tensor([1., 2.], requires_grad=True)
q = p.detach()
q[0] = 10.
out["shared_after_detach"] = p.detach().clone()
p2 = torch.zeros(3, requires_grad=True)
p2.requires_grad_(False)
out["rg_false"] = p2.requires_grad
m = torch.tensor([1.0, -1.0, 0.5], requires_grad=True)
out_relu = torch.relu(m)
out_relu.sum().backward()
out["relu_grad"] = m.grad
h = torch.tensor([1., 2., 3.], requires_grad=True)
handle = h.register_hook(lambda grad: grad * 2)
(h * h).sum().backward()
out["hook_grad"] = h.grad
handle.remove()
v = torch.tensor([3.0, 4.0], requires_grad=True)
n = v.norm()
n.backward()
out["norm_grad"] = v.grad
x1 = torch.tensor([1.0, 2.0], requires_grad=True)
y1 = x1 * 3
y1.sum().backward(retain_graph=True)
y1.sum().backward()
out["accum"] = x1.grad
try:
    y1.sum().backward()
    y1.sum().backward()
    out["second_backward_err"] = "none"
except RuntimeError:
    out["second_backward_err"] = "RuntimeError"
try:
    torch.tensor([1., 2.], requires_grad=True).numpy()
except RuntimeError:
    out["numpy_rg"] = "RuntimeError"
try:
    (torch.ones(2, requires_grad=True) * 2).backward()
except RuntimeError:
    out["nonscalar"] = "RuntimeError"
x3 = torch.tensor([1., 2., 3.], requires_grad=True)
y3 = x3.sum() * 2
grads = torch.autograd.grad(outputs=y3, inputs=[x3])
out["grads_tuple"] = type(grads).__name__
out["grad_fn_name"] = str((x3 * 2).grad_fn).split()[0].strip("<>")
out["next_functions_len"] = len((x3 * 2).grad_fn.next_functions) > 0
z3 = x3.exp().mean()
out["item"] = z3.item()
out["grad_none_before"] = torch.ones(2, requires_grad=True).grad is None
