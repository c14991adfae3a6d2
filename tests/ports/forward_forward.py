# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples mnist_forward_forward/main.py: Hinton's forward-forward algorithm. A Layer
# subclasses nn.Linear (passing bias, device, dtype positionally), owns its Adam, overrides
# Module.train with its own local training loop, and normalises its input by x.norm(2, 1,
# keepdim=True); labels are overlaid on the image by advanced-index assignment with a Python
# range and a 0-d tensor (x.max()); prediction sums goodness per label. Tiny synthetic data.
Adam = optim.Adam  # from torch.optim import Adam
device = torch.device("cpu")


def overlay_y_on_x(x, y):
    """Replace the first 10 pixels of data [x] with one-hot-encoded label [y]
    """
    x_ = x.clone()
    x_[:, :10] *= 0.0
    x_[range(x.shape[0]), y] = x.max()
    return x_


class Net(torch.nn.Module):

    def __init__(self, dims):
        super().__init__()
        self.layers = []
        for d in range(len(dims) - 1):
            self.layers += [Layer(dims[d], dims[d + 1]).to(device)]

    def predict(self, x):
        goodness_per_label = []
        for label in range(10):
            h = overlay_y_on_x(x, label)
            goodness = []
            for layer in self.layers:
                h = layer(h)
                goodness += [h.pow(2).mean(1)]
            goodness_per_label += [sum(goodness).unsqueeze(1)]
        goodness_per_label = torch.cat(goodness_per_label, 1)
        return goodness_per_label.argmax(1)

    def train(self, x_pos, x_neg):
        h_pos, h_neg = x_pos, x_neg
        for i, layer in enumerate(self.layers):
            h_pos, h_neg = layer.train(h_pos, h_neg)


class Layer(nn.Linear):
    def __init__(self, in_features, out_features,
                 bias=True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.relu = torch.nn.ReLU()
        self.opt = Adam(self.parameters(), lr=0.03)
        self.threshold = 2.0
        self.num_epochs = 8
        self.losses = []

    def forward(self, x):
        x_direction = x / (x.norm(2, 1, keepdim=True) + 1e-4)
        return self.relu(
            torch.mm(x_direction, self.weight.T) +
            self.bias.unsqueeze(0))

    def train(self, x_pos, x_neg):
        for i in range(self.num_epochs):
            g_pos = self.forward(x_pos).pow(2).mean(1)
            g_neg = self.forward(x_neg).pow(2).mean(1)
            # The following loss pushes pos (neg) samples to
            # values larger (smaller) than the self.threshold.
            loss = torch.log(1 + torch.exp(torch.cat([
                -g_pos + self.threshold,
                g_neg - self.threshold]))).mean()
            self.opt.zero_grad()
            # this backward just compute the derivative and hence
            # is not considered backpropagation.
            loss.backward()
            self.opt.step()
            self.losses.append(loss.item())
        return self.forward(x_pos).detach(), self.forward(x_neg).detach()


rng = np.random.default_rng(0)
x = torch.from_numpy(rng.uniform(0, 1, (16, 20)).astype(np.float32))
y = torch.from_numpy(rng.integers(0, 10, 16))
torch.manual_seed(1234)
net = Net([20, 12, 12])
with torch.no_grad():
    for k, layer in enumerate(net.layers):
        layer.weight.copy_(torch.from_numpy(np.random.default_rng(k).uniform(-0.5, 0.5, (12, layer.in_features))
                                            .astype(np.float32)))
        layer.bias.fill_(0.1)
x_pos = overlay_y_on_x(x, y)
rnd = torch.from_numpy(np.random.default_rng(2).permutation(x.size(0)))  # torch.randperm(x.size(0))
x_neg = overlay_y_on_x(x, y[rnd])
out["x_pos"] = x_pos
out["overlay_int"] = overlay_y_on_x(x, 3)
net.train(x_pos, x_neg)
out["losses"] = [layer.losses for layer in net.layers]
out["train_error"] = 1.0 - net.predict(x).eq(y).float().mean().item()
out["predict"] = net.predict(x)
out["weights"] = [layer.weight for layer in net.layers]
out["training_flags"] = [net.training, net.layers[0].training]
out["randperm"] = [torch.randperm(x.size(0)).shape[0], str(torch.randperm(4).dtype).split(".")[-1]]
