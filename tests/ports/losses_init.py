# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
rng = np.random.default_rng(3)
logits = torch.tensor(rng.standard_normal((6, 4)), requires_grad=True)
target = torch.tensor([0, 3, 2, 1, 2, 0])
w = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
res = {}
for name, crit in [
    ("ce", nn.CrossEntropyLoss()),
    ("ce_ls", nn.CrossEntropyLoss(label_smoothing=0.2)),
    ("ce_ii", nn.CrossEntropyLoss(ignore_index=2)),
    ("ce_w", nn.CrossEntropyLoss(weight=w)),
    ("ce_w_ls_ii", nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, ignore_index=0)),
    ("ce_none", nn.CrossEntropyLoss(reduction="none")),
    ("ce_sum", nn.CrossEntropyLoss(reduction="sum", weight=w)),
]:
    if logits.grad is not None:
        logits.grad = None
    l = crit(logits, target)
    l.sum().backward()
    res[name] = (l, logits.grad.clone())
out["ce"] = res
probs_t = torch.softmax(torch.tensor(rng.standard_normal((6, 4))), dim=1)
out["ce_probs"] = F.cross_entropy(logits, probs_t)
out["ce_probs_ls"] = F.cross_entropy(logits, probs_t, label_smoothing=0.1)
x4 = torch.tensor(rng.standard_normal((2, 4, 3, 3)), requires_grad=True)
t4 = torch.tensor(rng.integers(0, 4, (2, 3, 3)))
l4 = F.cross_entropy(x4, t4, ignore_index=1)
l4.backward()
out["ce_4d"] = (l4, x4.grad)
lsm = F.log_softmax(logits, dim=1)
out["nll"] = nn.NLLLoss()(lsm, target)
out["nll_w"] = nn.NLLLoss(weight=w, reduction="mean")(lsm, target)
out["nll_ii"] = F.nll_loss(lsm, target, ignore_index=3, reduction="none")
z = torch.tensor(rng.standard_normal((5, 3)), requires_grad=True)
yb = torch.tensor(rng.integers(0, 2, (5, 3)).astype(np.float64))
pw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
bce = nn.BCEWithLogitsLoss(pos_weight=pw)(z, yb)
bce.backward()
out["bcel"] = (bce, z.grad)
out["bcel_w"] = nn.BCEWithLogitsLoss(weight=torch.tensor([0.5, 1., 2.], dtype=torch.float64), reduction="sum")(z, yb)
out["bce"] = nn.BCELoss()(torch.sigmoid(z), yb)
out["bce_none"] = F.binary_cross_entropy(torch.sigmoid(z), yb, reduction="none")
out["mse_none"] = F.mse_loss(z, yb, reduction="none")
out["mse_sum"] = nn.MSELoss(reduction="sum")(z, yb)
out["l1"] = nn.L1Loss()(z, yb)
out["smoothl1"] = nn.SmoothL1Loss(beta=0.5)(z, yb)
out["huber"] = nn.HuberLoss(delta=0.3)(z, yb)
out["kl"] = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(z, 1), F.softmax(yb, 1))
out["kl_logt"] = F.kl_div(F.log_softmax(z, 1), F.log_softmax(yb, 1), reduction="sum", log_target=True)
out["cos_emb"] = nn.CosineEmbeddingLoss(margin=0.1)(z, yb, torch.tensor([1, -1, 1, -1, 1]))
out["margin_rank"] = nn.MarginRankingLoss(margin=0.2)(z[:, 0], z[:, 1], torch.tensor([1., -1, 1, 1, -1], dtype=torch.float64))
out["triplet"] = nn.TripletMarginLoss(margin=1.0)(z, yb, z.flip(0))
out["hinge_emb"] = nn.HingeEmbeddingLoss()(z, torch.tensor(rng.choice([-1, 1], (5, 3)).astype(np.float64)))
out["multi_margin"] = nn.MultiMarginLoss()(logits, target)
out["soft_margin"] = nn.SoftMarginLoss()(z, torch.tensor(rng.choice([-1, 1], (5, 3)).astype(np.float64)))
out["poisson"] = nn.PoissonNLLLoss()(z, yb)
out["gauss"] = nn.GaussianNLLLoss()(z, yb, torch.ones(5, 3, dtype=torch.float64))
out["multilabel_soft"] = nn.MultiLabelSoftMarginLoss()(z, yb)
# reproducibility
torch.manual_seed(42)
a = torch.randn(3, 4)
r1 = torch.rand(2)
torch.manual_seed(42)
b = torch.randn(3, 4)
r2 = torch.rand(2)
out["repro"] = torch.equal(a, b) and torch.equal(r1, r2)
torch.manual_seed(0)
l1 = nn.Linear(10, 5)
torch.manual_seed(0)
l2 = nn.Linear(10, 5)
out["repro_linear"] = torch.equal(l1.weight, l2.weight)
g = torch.Generator().manual_seed(1)
out["gen_randn_shape"] = tuple(torch.randn(3, generator=g).shape)
# init statistics (values differ per RNG; check ranges/shapes/std)
torch.manual_seed(0)
W = torch.empty(400, 300)
nn.init.xavier_uniform_(W)
bound = (6 / (400 + 300)) ** 0.5
out["xavier_u"] = bool(W.abs().max() <= bound) and abs(W.std().item() - bound / 3 ** 0.5) < 0.01
nn.init.xavier_normal_(W, gain=nn.init.calculate_gain("relu"))
out["xavier_n"] = abs(W.std().item() - 2 ** 0.5 * (2 / 700) ** 0.5) < 0.005
nn.init.kaiming_normal_(W, mode="fan_out", nonlinearity="relu")
out["kaiming_n"] = abs(W.std().item() - (2 / 400) ** 0.5) < 0.005
nn.init.kaiming_uniform_(W, a=5 ** 0.5)
out["kaiming_u"] = bool(W.abs().max() <= 1 / 300 ** 0.5)
nn.init.normal_(W, mean=1.0, std=0.02)
out["normal"] = abs(W.mean().item() - 1.0) < 0.01
nn.init.uniform_(W, -0.1, 0.1)
out["uniform"] = bool(W.abs().max() <= 0.1)
nn.init.trunc_normal_(W, std=0.02, a=-0.04, b=0.04)
out["trunc"] = bool(W.abs().max() <= 0.04)
nn.init.orthogonal_(W[:100, :100])
out["ones"] = nn.init.ones_(torch.empty(2))
out["zeros"] = nn.init.zeros_(torch.empty(2))
out["eye"] = nn.init.eye_(torch.empty(2, 3))
out["const"] = nn.init.constant_(torch.empty(2), 0.3)
out["gains"] = [nn.init.calculate_gain(n) for n in ["linear", "conv2d", "sigmoid", "tanh", "relu", "selu"]] + [nn.init.calculate_gain("leaky_relu", 0.2)]
out["dirac"] = nn.init.dirac_(torch.empty(2, 2, 3, 3))
C = torch.empty(4, 3, 5, 5)
nn.init.kaiming_normal_(C)
out["conv_kaiming"] = abs(C.std().item() - (2 / 75) ** 0.5) < 0.05
