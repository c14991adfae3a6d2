# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
rng = np.random.default_rng(2)
X = torch.tensor(rng.uniform(-1, 1, (128, 3)), dtype=torch.float32)
true_w = torch.tensor([[1.5], [-2.0], [0.5]])
Y = X @ true_w + 0.3 + 0.05 * torch.tensor(rng.standard_normal((128, 1)), dtype=torch.float32)
model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.tensor(np.random.default_rng(10 + i).uniform(-0.5, 0.5, tuple(p.shape))))
criterion = nn.MSELoss()
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
ds = TensorDataset(X, Y)
loader = DataLoader(ds, batch_size=32, shuffle=False, drop_last=True)
losses, lrs = [], []
for epoch in range(12):
    running = 0.0
    for xb, yb in loader:
        optimizer.zero_grad(set_to_none=True)
        pred = model(xb)
        loss = criterion(pred, yb)
        loss.backward()
        optimizer.step()
        running += loss.item() * xb.size(0)
    scheduler.step()
    losses.append(running / len(ds))
    lrs.append(scheduler.get_last_lr()[0])
    lrs.append(optimizer.param_groups[0]["lr"])
out["losses"] = losses
out["lrs"] = lrs
out["grad_none"] = [p.grad is None for p in model.parameters()]
optimizer.zero_grad(set_to_none=True)
out["grad_none2"] = [p.grad is None for p in model.parameters()]
optimizer.zero_grad()
out["grad_none3"] = [p.grad is None for p in model.parameters()]
with torch.no_grad():
    out["final"] = model(X[:4])
# param groups
m2 = nn.Linear(3, 2)
with torch.no_grad():
    m2.weight.fill_(0.1); m2.bias.fill_(-0.1)
opt2 = optim.SGD([{"params": [m2.weight]}, {"params": m2.bias, "lr": 0.01}], lr=0.1, momentum=0.5)
out["pg_lrs"] = [g["lr"] for g in opt2.param_groups]
out["pg_keys"] = sorted(opt2.param_groups[1].keys())
out["defaults"] = sorted(opt2.defaults.items())
for _ in range(3):
    opt2.zero_grad()
    m2(X[:8]).pow(2).mean().backward()
    opt2.step()
for g in opt2.param_groups:
    g["lr"] = g["lr"] * 0.1
opt2.zero_grad()
m2(X[:8]).pow(2).mean().backward()
opt2.step()
out["m2"] = (m2.weight, m2.bias)
opt2.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": 1.0})
out["n_groups"] = len(opt2.param_groups)
out["added_group_momentum"] = opt2.param_groups[2]["momentum"]
sd = opt2.state_dict()
out["opt_sd_keys"] = sorted(sd.keys())
out["opt_sd_groups_params"] = [g["params"] for g in sd["param_groups"]]
out["opt_state_keys"] = sorted(sd["state"].keys())
out["opt_state_0"] = sorted(sd["state"][0].keys())
# Adam + schedulers
m3 = nn.Linear(3, 1)
with torch.no_grad():
    m3.weight.copy_(torch.tensor([[0.2, -0.3, 0.1]])); m3.bias.zero_()
opt3 = optim.Adam(m3.parameters(), lr=0.05, betas=(0.9, 0.99), weight_decay=1e-3)
sch3 = optim.lr_scheduler.CosineAnnealingLR(opt3, T_max=10, eta_min=1e-4)
l3 = []
for i in range(10):
    opt3.zero_grad()
    loss = F.mse_loss(m3(X), Y)
    loss.backward()
    opt3.step()
    sch3.step()
    l3.append(loss.item())
    l3.append(sch3.get_last_lr()[0])
out["adam_cos"] = l3
m4 = nn.Linear(3, 1)
with torch.no_grad():
    m4.weight.copy_(torch.tensor([[0.2, -0.3, 0.1]])); m4.bias.zero_()
opt4 = optim.AdamW(m4.parameters(), lr=0.01)
sch4 = optim.lr_scheduler.ReduceLROnPlateau(opt4, mode="min", factor=0.5, patience=1)
vals = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7]
lr4 = []
for v in vals:
    sch4.step(v)
    lr4.append(opt4.param_groups[0]["lr"])
out["plateau"] = lr4
opt5 = optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
sch5 = optim.lr_scheduler.MultiStepLR(opt5, milestones=[2, 4], gamma=0.1)
l5 = []
for i in range(6):
    opt5.step(); sch5.step(); l5.append(sch5.get_last_lr()[0])
out["multistep"] = l5
opt6 = optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
sch6 = optim.lr_scheduler.ExponentialLR(opt6, gamma=0.9)
l6 = []
for i in range(4):
    opt6.step(); sch6.step(); l6.append(sch6.get_last_lr()[0])
out["exp"] = l6
opt7 = optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
sch7 = optim.lr_scheduler.LambdaLR(opt7, lr_lambda=lambda epoch: 0.95 ** epoch)
l7 = []
for i in range(4):
    opt7.step(); sch7.step(); l7.append(opt7.param_groups[0]["lr"])
out["lambda"] = l7
opt8 = optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
sch8 = optim.lr_scheduler.OneCycleLR(opt8, max_lr=1.0, total_steps=10)
l8 = []
for i in range(9):
    opt8.step(); sch8.step(); l8.append((opt8.param_groups[0]["lr"], opt8.param_groups[0]["momentum"]))
out["onecycle"] = l8
opt9 = optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
warm = optim.lr_scheduler.LinearLR(opt9, start_factor=0.1, total_iters=3)
cos = optim.lr_scheduler.CosineAnnealingLR(opt9, T_max=5)
seq = optim.lr_scheduler.SequentialLR(opt9, schedulers=[warm, cos], milestones=[3])
l9 = []
for i in range(8):
    opt9.step(); seq.step(); l9.append(opt9.param_groups[0]["lr"])
out["seq"] = l9
