# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
import math
class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * 2)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * 2, dim)
    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(self.norm(x))))

class TinyLM(nn.Module):
    def __init__(self, vocab=11, dim=8, depth=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.scales = nn.ParameterList([nn.Parameter(torch.ones(dim)) for _ in range(depth)])
        self.gates = nn.ParameterDict({"a": nn.Parameter(torch.zeros(1)), "b": nn.Parameter(torch.ones(1))})
        self.register_buffer("pos", torch.arange(16).float() / 16)
        self.register_buffer("tmp", torch.zeros(1), persistent=False)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.heads = nn.ModuleDict({"aux": nn.Linear(dim, 2)})
    def forward(self, idx):
        x = self.embed(idx) + self.pos[: idx.shape[1]].unsqueeze(-1)
        for blk, s in zip(self.blocks, self.scales):
            x = blk(x) * s
        x = x * torch.sigmoid(self.gates["a"]) + self.gates["b"]
        return self.head(x), self.heads["aux"](x.mean(1))

model = TinyLM()
def det_init(m):
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(m.named_parameters())):
            p.copy_(torch.from_numpy(np.random.default_rng(i).normal(0, 0.3, tuple(p.shape)).astype(np.float32)))
det_init(model)
out["names"] = [n for n, _ in model.named_parameters()]
out["buffers"] = [n for n, _ in model.named_buffers()]
out["sd_keys"] = list(model.state_dict().keys())
out["named_modules"] = [n for n, _ in model.named_modules()]
out["named_children"] = [n for n, _ in model.named_children()]
idx = torch.tensor([[1, 2, 0, 4], [5, 0, 7, 10]])
logits, aux = model(idx)
targets = torch.tensor([[2, 0, 4, 5], [0, 7, 10, 1]])
loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=0)
loss = loss + F.cross_entropy(aux, torch.tensor([0, 1]))
loss.backward()
out["loss"] = loss
out["embed_grad_pad_row"] = model.embed.weight.grad[0]
out["grads"] = {n: p.grad for n, p in model.named_parameters()}
out["ln_grad"] = model.blocks[0].norm.weight.grad
# state dict round trip
sd = model.state_dict()
torch.save(sd, tmpdir + "/lm.pt")
m2 = TinyLM()
missing = m2.load_state_dict(torch.load(tmpdir + "/lm.pt"))
out["missing"] = (missing.missing_keys, missing.unexpected_keys)
with torch.no_grad():
    out["same_after_load"] = torch.allclose(m2(idx)[0], model(idx)[0])
sd2 = {k: v for k, v in sd.items() if k != "head.weight"}
sd2["extra"] = torch.zeros(1)
r = m2.load_state_dict(sd2, strict=False)
out["nonstrict"] = (r.missing_keys, r.unexpected_keys)
try:
    m2.load_state_dict(sd2)
    out["strict_err"] = "none"
except RuntimeError as e:
    out["strict_err"] = "RuntimeError"
bad = dict(sd); bad["head.weight"] = torch.zeros(3, 3)
try:
    m2.load_state_dict(bad)
except RuntimeError:
    out["shape_err"] = "RuntimeError"
# checkpoint dict with optimizer
opt = optim.Adam(model.parameters(), lr=1e-3)
opt.step()
torch.save({"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(), "loss": 0.5},
           tmpdir + "/ckpt.pt")
ck = torch.load(tmpdir + "/ckpt.pt")
out["ck_epoch"] = ck["epoch"]
out["ck_loss"] = ck["loss"]
opt2 = optim.Adam(TinyLM().parameters(), lr=1e-3)
opt2.load_state_dict(ck["optimizer_state_dict"])
out["opt2_step"] = float(opt2.state_dict()["state"][0]["step"])
out["opt2_lr"] = opt2.param_groups[0]["lr"]
# module utilities
out["n_params"] = sum(p.numel() for p in model.parameters())
model.requires_grad_(False)
out["frozen"] = any(p.requires_grad for p in model.parameters())
model.requires_grad_(True)
for p in model.embed.parameters():
    p.requires_grad = False
out["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
model.zero_grad()
out["zg"] = [p.grad is None for p in model.parameters()]
out["apply"] = None
def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.constant_(m.weight, 0.01)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
model.apply(init_weights)
out["after_apply"] = model.blocks[1].fc1.weight[0, :3]
model.double()
out["double"] = str(model.head.weight.dtype).split(".")[-1]
out["double_buf"] = str(model.pos.dtype).split(".")[-1]
model.float()
model.to(torch.float64)
out["to_double"] = str(model.blocks[0].fc1.bias.dtype).split(".")[-1]
out["param_is_param"] = isinstance(model.head.weight, nn.Parameter)
out["param_repr_start"] = repr(nn.Parameter(torch.tensor([1., 2.])))[:9]
out["module_getattr_err"] = None
try:
    model.nope
except AttributeError:
    out["module_getattr_err"] = "AttributeError"
out["ml_len"] = len(model.blocks)
model.blocks.append(Block(8))
out["ml_len2"] = len(model.blocks)
out["ml_idx"] = type(model.blocks[-1]).__name__
out["pl_len"] = len(model.scales)
out["md_keys"] = list(model.heads.keys())
seq = nn.Sequential()
seq.add_module("lin", nn.Linear(2, 2))
seq.append(nn.ReLU())
out["seq_names"] = [n for n, _ in seq.named_children()]
from collections import OrderedDict
seq2 = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(1, 2, 3)), ("relu1", nn.ReLU())]))
out["seq2"] = [n for n, _ in seq2.named_children()]
out["seq2_attr"] = type(seq2.conv1).__name__
out["get_submodule"] = type(model.get_submodule("blocks.0.fc1")).__name__
out["get_parameter"] = tuple(model.get_parameter("blocks.0.fc1.weight").shape)
