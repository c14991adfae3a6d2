# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
rng = np.random.default_rng(1)
def init_(model):
    with torch.no_grad():
        for i, (name, p) in enumerate(model.named_parameters()):
            if "bn" in name or p.dim() == 1 and "weight" in name:
                continue
            p.copy_(torch.from_numpy(np.random.default_rng(i).normal(0, 0.2, tuple(p.shape)).astype(np.float32)))

class Net(nn.Module):
    def __init__(self, p=0.25):
        super(Net, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.dropout = nn.Dropout(p)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.features(x)
        x = self.flatten(x)
        x = self.dropout(x)
        return self.fc(x)

net = Net(p=0.0)
init_(net)
x = torch.from_numpy(rng.standard_normal((8, 3, 12, 12)).astype(np.float32))
y = torch.from_numpy(rng.integers(0, 5, 8))
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
hist = []
for step in range(4):
    optimizer.zero_grad()
    outputs = net(x)
    loss = criterion(outputs, y)
    loss.backward()
    optimizer.step()
    hist.append(loss.item())
out["hist"] = hist
bn = net.features[1]
out["running_mean"] = bn.running_mean
out["running_var"] = bn.running_var
out["nbt"] = bn.num_batches_tracked
out["nbt_dtype"] = str(bn.num_batches_tracked.dtype).split(".")[-1]
out["sd_keys"] = list(net.state_dict().keys())
out["n_buffers"] = len(list(net.buffers()))
net.eval()
with torch.no_grad():
    o = net(x)
out["eval_out"] = o
_, predicted = torch.max(o.data, 1)
out["predicted"] = predicted
out["correct"] = (predicted == y).sum().item()
out["training_flags"] = [m.training for m in net.modules()]
net.train()
out["training_flags2"] = all(m.training for m in net.modules())
# dropout: train mode zeros and rescales, eval identity
d = nn.Dropout(p=0.5)
t = torch.ones(1000)
dt = d(t)
out["dropout_vals"] = sorted(set(dt.tolist()))
out["dropout_frac_ok"] = 0.4 < (dt == 0).float().mean().item() < 0.6
d.eval()
out["dropout_eval"] = torch.equal(d(t), t)
out["f_dropout_eval"] = torch.equal(F.dropout(t, p=0.5, training=False), t)
# functional CNN pieces
img = torch.from_numpy(rng.standard_normal((2, 3, 9, 9)).astype(np.float32))
wt = torch.from_numpy(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
out["conv_s2"] = F.conv2d(img, wt, stride=2, padding=1)
out["conv_dil"] = F.conv2d(img, wt, dilation=2)
out["conv_grp"] = F.conv2d(img, torch.from_numpy(rng.standard_normal((6, 1, 3, 3)).astype(np.float32)), groups=3)
out["maxpool"] = F.max_pool2d(img, 2)
out["maxpool_s1"] = F.max_pool2d(img, kernel_size=3, stride=1, padding=1)
out["maxpool_ceil"] = F.max_pool2d(img, 2, ceil_mode=True)
out["avgpool"] = F.avg_pool2d(img, 3, stride=2)
out["avgpool_pad"] = F.avg_pool2d(img, 3, stride=2, padding=1, count_include_pad=False)
out["adaptive"] = F.adaptive_avg_pool2d(img, 4)
out["adaptive_max"] = F.adaptive_max_pool2d(img, (2, 3))
out["mp_idx"] = F.max_pool2d(img, 3, return_indices=True)[1]
out["relu6"] = F.relu6(img * 4)
out["leaky"] = F.leaky_relu(img, 0.2)
out["pad"] = F.pad(img, (1, 2, 0, 1))
out["pad_reflect"] = F.pad(img, (1, 1, 1, 1), mode="reflect")
out["interp"] = F.interpolate(img, scale_factor=2, mode="nearest")
out["interp_bil"] = F.interpolate(img, size=(5, 7), mode="bilinear", align_corners=False)
bn1 = nn.BatchNorm1d(4, momentum=None, affine=False)
v = torch.from_numpy(rng.standard_normal((6, 4)).astype(np.float32))
bn1(v); bn1(v * 2)
out["bn_cma"] = (bn1.running_mean, bn1.running_var)
out["bn_repr"] = repr(nn.BatchNorm2d(8))
out["conv_repr"] = repr(nn.Conv2d(3, 8, kernel_size=3, padding=1))
out["conv_repr2"] = repr(nn.Conv2d(3, 8, 3, stride=2, bias=False))
out["mp_repr"] = repr(nn.MaxPool2d(2, 2))
out["lin_repr"] = repr(nn.Linear(4, 2))
out["drop_repr"] = repr(nn.Dropout(0.3))
out["aap_repr"] = repr(nn.AdaptiveAvgPool2d((1, 1)))
out["flat_repr"] = repr(nn.Flatten())
out["relu_repr"] = repr(nn.ReLU(inplace=True))
out["conv_weight_shape"] = tuple(nn.Conv2d(3, 8, 5).weight.shape)
out["conv_bias_shape"] = tuple(nn.Conv2d(3, 8, 5).bias.shape)
