# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples super_resolution (model.py's Net: Conv2d stack + PixelShuffle, orthogonal init
# with calculate_gain('relu'); main.py's MSELoss/Adam/PSNR loop) with 64/64/32 channels shrunk
# to 16/16/8 and random 8x8 low-res crops. orthogonal_ really runs (its draws differ between
# frameworks, so its orthogonality is recorded); then both get the same numpy weights.
init = nn.init  # import torch.nn.init as init
rng = np.random.default_rng(7)


class Net(nn.Module):
    def __init__(self, upscale_factor):
        super(Net, self).__init__()

        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 16, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(16, 16, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(16, 8, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(8, upscale_factor ** 2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

        self._initialize_weights()

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        x = self.pixel_shuffle(self.conv4(x))
        return x

    def _initialize_weights(self):
        init.orthogonal_(self.conv1.weight, init.calculate_gain('relu'))
        init.orthogonal_(self.conv2.weight, init.calculate_gain('relu'))
        init.orthogonal_(self.conv3.weight, init.calculate_gain('relu'))
        init.orthogonal_(self.conv4.weight)


upscale_factor = 2
model = Net(upscale_factor=upscale_factor)
out["gains"] = [init.calculate_gain(n) for n in ("relu", "tanh", "sigmoid", "linear", "conv2d")] + [
    init.calculate_gain("leaky_relu", 0.2), init.calculate_gain("selu")]
ortho = []
for conv, gain in ((model.conv1, 2 ** 0.5), (model.conv2, 2 ** 0.5), (model.conv3, 2 ** 0.5), (model.conv4, 1.0)):
    w = conv.weight.detach().reshape(conv.weight.size(0), -1)
    gram = w @ w.t()
    ortho.append(bool(torch.allclose(gram, gain ** 2 * torch.eye(w.size(0)), atol=1e-4)))
out["orthogonal"] = ortho
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(70 + i).normal(0, 0.15, tuple(p.shape)).astype(np.float32)))

lr_imgs = torch.from_numpy(rng.uniform(0, 1, (6, 1, 8, 8)).astype(np.float32))
hr_imgs = torch.from_numpy(np.clip(np.kron(lr_imgs.numpy(), np.ones((1, 1, 2, 2)))
                                   + rng.normal(0, 0.05, (6, 1, 16, 16)), 0, 1).astype(np.float32))
training_data_loader = DataLoader(TensorDataset(lr_imgs[:4], hr_imgs[:4]), batch_size=2, shuffle=False)
testing_data_loader = DataLoader(TensorDataset(lr_imgs[4:], hr_imgs[4:]), batch_size=1, shuffle=False)
device = torch.device("cpu")
criterion = nn.MSELoss()
optimizer = optim.Adam(model.parameters(), lr=0.01)


def train(epoch):
    epoch_loss = 0
    for iteration, batch in enumerate(training_data_loader, 1):
        input, target = batch[0].to(device), batch[1].to(device)

        optimizer.zero_grad()
        loss = criterion(model(input), target)
        epoch_loss += loss.item()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return epoch_loss / len(training_data_loader)


def test():
    avg_psnr = 0
    with torch.no_grad():
        for batch in testing_data_loader:
            input, target = batch[0].to(device), batch[1].to(device)

            prediction = model(input)
            mse = criterion(prediction, target)
            psnr = 10 * np.log10(1 / mse.item())
            avg_psnr += psnr
    return avg_psnr / len(testing_data_loader)


losses = []
out["epochs"] = [[train(epoch), test()] for epoch in range(1, 4)]
out["losses"] = losses
out["sr_shape"] = list(model(lr_imgs[:1]).shape)
out["sr"] = model(lr_imgs[4:]).detach()
out["params"] = [p.detach() for p in model.parameters()]
