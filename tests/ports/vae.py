# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples vae/main.py on a small synthetic "MNIST" (pixels in [0, 1]) with the layers
# shrunk (784 -> 400 -> 20 becomes 64 -> 32 -> 8). The reparameterisation noise comes from numpy
# so both frameworks draw the same eps; torch.randn_like itself is checked for shape and dtype.
rng = np.random.default_rng(3)
D, H, Z = 64, 32, 8


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()

        self.fc1 = nn.Linear(D, H)
        self.fc21 = nn.Linear(H, Z)
        self.fc22 = nn.Linear(H, Z)
        self.fc3 = nn.Linear(Z, H)
        self.fc4 = nn.Linear(H, D)
        self.noise = None  # the test's stand-in for torch.randn_like

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5*logvar)
        eps = torch.randn_like(std) if self.noise is None else self.noise
        return mu + eps*std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, D))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


# Reconstruction + KL divergence losses summed over all elements and batch
def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, D), reduction='sum')

    # see Appendix B from VAE paper:
    # Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
    # https://arxiv.org/abs/1312.6114
    # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    return BCE + KLD


torch.manual_seed(1)
model = VAE()
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(10 + i).uniform(-0.2, 0.2, tuple(p.shape)).astype(np.float32)))
optimizer = optim.Adam(model.parameters(), lr=1e-3)

images = torch.from_numpy(rng.uniform(0, 1, (24, 1, 8, 8)).astype(np.float32))
labels = torch.from_numpy(rng.integers(0, 10, 24))
train_loader = DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=False)
noise = [torch.from_numpy(rng.standard_normal((8, Z)).astype(np.float32)) for _ in range(6)]

train_losses = []
k = 0
for epoch in range(1, 3):
    model.train()
    train_loss = 0
    for batch_idx, (data, _) in enumerate(train_loader):
        model.noise = noise[k]
        k += 1
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        train_losses.append(loss.item())
    out[f"epoch{epoch}_avg"] = train_loss / len(train_loader.dataset)
out["train_losses"] = train_losses

model.eval()
model.noise = None
test_loss = 0
with torch.no_grad():
    data = images[:8]
    recon_batch, mu, logvar = model(data)  # really draws with randn_like
    out["recon_shape"] = tuple(recon_batch.shape)
    out["recon_dtype"] = str(recon_batch.dtype).split(".")[-1]  # tapegrad dtypes are numpy dtypes
    out["recon_in_01"] = bool(((recon_batch > 0) & (recon_batch < 1)).all())
    out["mu"] = mu
    out["logvar"] = logvar
    n = min(data.size(0), 8)
    comparison = torch.cat([data[:n], recon_batch.view(8, 1, 8, 8)[:n]])
    out["comparison_shape"] = list(comparison.shape)
    sample = torch.randn(16, Z)
    sample = model.decode(sample).cpu()
    out["sample_shape"] = list(sample.view(16, 1, 8, 8).size())
    out["decoded_fixed"] = model.decode(noise[0])
out["params"] = [p.detach() for p in model.parameters()]
