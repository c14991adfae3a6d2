# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# jzbontar/pixelcnn-pytorch: main.py as written (MaskedConv2d subclassing nn.Conv2d, its mask
# buffer cloned from weight.data and cut by slice assignment with a bool added to an int, the
# forward's in-place `self.weight.data *= self.mask`, the Sequential of masked convs with
# BatchNorm2d and ReLU(True), the 256-way cross-entropy on (input.data[:, 0] * 255).long(),
# Adam, and the pixel-by-pixel sampling loop with net.train(False), Variable(volatile=True) and
# F.softmax without dim). Modernised where PyTorch no longer runs it: loss.data[0] is
# loss.item(), .cuda() is dropped. The multinomial draws come from numpy (inverse CDF); MNIST is
# replaced by 8x8 images of 256 grey levels, and fm = 8 with three masked layers.
Variable = torch.autograd.Variable


class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, *args, **kwargs):
        super(MaskedConv2d, self).__init__(*args, **kwargs)
        assert mask_type in {'A', 'B'}
        self.register_buffer('mask', self.weight.data.clone())
        _, _, kH, kW = self.weight.size()
        self.mask.fill_(1)
        self.mask[:, :, kH // 2, kW // 2 + (mask_type == 'B'):] = 0
        self.mask[:, :, kH // 2 + 1:] = 0

    def forward(self, x):
        self.weight.data *= self.mask
        return super(MaskedConv2d, self).forward(x)


fm = 8
net = nn.Sequential(
    MaskedConv2d('A', 1,  fm, 7, 1, 3, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
    MaskedConv2d('B', fm, fm, 7, 1, 3, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
    MaskedConv2d('B', fm, fm, 7, 1, 3, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
    nn.Conv2d(fm, 256, 1))
with torch.no_grad():
    for k, p in enumerate(net.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(k).normal(0, 0.3, tuple(p.shape)).astype(np.float32)))
out["mask_A"] = net[0].mask[0, 0]
out["mask_B"] = net[3].mask[0, 0]
out["buffers"] = sorted(n for n, _ in net.named_buffers())

rng = np.random.default_rng(0)
pixels = torch.from_numpy((rng.integers(0, 256, (16, 1, 8, 8)) / 255.).astype(np.float32))
tr = DataLoader(TensorDataset(pixels, torch.zeros(16)), batch_size=8, shuffle=False)
sample = torch.Tensor(4, 1, 8, 8)
optimizer = optim.Adam(net.parameters())
draws = np.random.default_rng(1)
for epoch in range(2):
    # train
    err_tr = []
    net.train(True)
    for input, _ in tr:
        input = Variable(input)
        target = Variable((input.data[:,0] * 255).long())
        loss = F.cross_entropy(net(input), target)
        err_tr.append(loss.item())  # loss.data[0] in the original
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out[f"err_tr{epoch}"] = err_tr
    out[f"weights_masked{epoch}"] = bool((net[3].weight * (1 - net[3].mask)).abs().max() == 0)

    # sample
    sample.fill_(0)
    net.train(False)
    for i in range(8):
        for j in range(8):
            out_ = net(Variable(sample, volatile=True))
            probs = F.softmax(out_[:, :, i, j]).data
            # torch.multinomial(probs, 1), drawn by inverting the CDF on numpy uniforms
            u = torch.from_numpy(draws.uniform(size=(probs.shape[0], 1)).astype(np.float32))
            idx = (probs.cumsum(1) < u).sum(1, keepdim=True).clamp(max=255)
            sample[:, :, i, j] = idx.float() / 255.
    out[f"sample{epoch}"] = sample.clone()
out["params"] = [p.detach() for p in net.parameters()]
out["running"] = [net[1].running_mean, net[7].running_var]
out["multinomial_shape"] = tuple(torch.multinomial(probs, 1).shape)
