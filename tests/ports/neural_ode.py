# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# rtqichen/torchdiffeq examples/ode_demo.py as written (true_y0, true_A, the Lambda module's
# torch.mm(y**3, true_A), get_batch by np.random.choice indices and torch.stack of the y0s and
# time windows, ODEFunc with an nn.Sequential of Linear/Tanh initialised by nn.init.normal_ /
# constant_ through self.modules(), RMSprop(lr=1e-3), the RunningAverageMeter), with torchdiffeq's
# odeint replaced by its fixed-grid 'rk4' solver written out (rk4_alt_step_func's 3/8 rule,
# stepping between the requested times in a Python loop and torch.stack of the solution),
# so gradients flow through the unrolled solver rather than the adjoint. Sizes shrunk.
data_size = 30
batch_time = 5
batch_size = 8
niters = 8
rng = np.random.default_rng(5)

true_y0 = torch.tensor([[2., 0.]])
t = torch.linspace(0., 2., data_size)
true_A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])


def rk4_alt_step_func(func, t0, dt, y0, f0=None):
    k1 = f0
    if k1 is None:
        k1 = func(t0, y0)
    _one_third = 1 / 3
    _two_thirds = 2 / 3
    k2 = func(t0 + dt * _one_third, y0 + dt * k1 * _one_third)
    k3 = func(t0 + dt * _two_thirds, y0 + dt * (k2 - k1 * _one_third))
    k4 = func(t0 + dt, y0 + dt * (k1 - k2 + k3))
    return (k1 + 3 * (k2 + k3) + k4) * dt * 0.125


def odeint(func, y0, t, method='rk4', options=None):
    step_size = (options or {}).get('step_size')
    solution = [y0]
    y = y0
    for t0, t1 in zip(t[:-1], t[1:]):
        n = 1 if step_size is None else max(1, int(round(float((t1 - t0) / step_size))))
        dt = (t1 - t0) / n
        for k in range(n):
            y = y + rk4_alt_step_func(func, t0 + k * dt, dt, y)
        solution.append(y)
    return torch.stack(solution)


class Lambda(nn.Module):

    def forward(self, t, y):
        return torch.mm(y**3, true_A)


with torch.no_grad():
    true_y = odeint(Lambda(), true_y0, t, method='dopri5')


def get_batch():
    s = torch.from_numpy(rng.choice(np.arange(data_size - batch_time, dtype=np.int64), batch_size, replace=False))
    batch_y0 = true_y[s]  # (M, D)
    batch_t = t[:batch_time]  # (T)
    batch_y = torch.stack([true_y[s + i] for i in range(batch_time)], dim=0)  # (T, M, D)
    return batch_y0, batch_t, batch_y


class ODEFunc(nn.Module):

    def __init__(self):
        super(ODEFunc, self).__init__()

        self.net = nn.Sequential(
            nn.Linear(2, 16),
            nn.Tanh(),
            nn.Linear(16, 2),
        )

        for m in self.net.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0, std=0.1)
                nn.init.constant_(m.bias, val=0)

    def forward(self, t, y):
        return self.net(y**3)


class RunningAverageMeter(object):
    """Computes and stores the average and current value"""

    def __init__(self, momentum=0.99):
        self.momentum = momentum
        self.reset()

    def reset(self):
        self.val = None
        self.avg = 0

    def update(self, val):
        if self.val is None:
            self.avg = val
        else:
            self.avg = self.avg * self.momentum + val * (1 - self.momentum)
        self.val = val


out["true_y"] = true_y
func = ODEFunc()
out["init_bias_zero"] = bool((func.net[0].bias == 0).all())
with torch.no_grad():
    for i, p in enumerate(func.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).normal(0, 0.1, tuple(p.shape)).astype(np.float32)))
optimizer = optim.RMSprop(func.parameters(), lr=1e-2)
time_meter = RunningAverageMeter(0.97)
loss_meter = RunningAverageMeter(0.97)
losses = []
for itr in range(1, niters + 1):
    optimizer.zero_grad()
    batch_y0, batch_t, batch_y = get_batch()
    pred_y = odeint(func, batch_y0, batch_t)
    loss = torch.mean(torch.abs(pred_y - batch_y))
    loss.backward()
    optimizer.step()
    loss_meter.update(loss.item())
    losses.append(loss.item())
    if itr % 4 == 0:
        with torch.no_grad():
            pred_y = odeint(func, true_y0, t[:10], options=dict(step_size=0.02))
            loss = torch.mean(torch.abs(pred_y - true_y[:10]))
            losses.append(loss.item())
out["losses"] = losses
out["meter"] = loss_meter.avg
out["params"] = dict(func.state_dict())
out["grads"] = [p.grad for p in func.parameters()]
