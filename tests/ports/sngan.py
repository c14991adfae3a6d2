# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# christiancosgrove/pytorch-spectral-normalization-gan: spectral_normalization.py as written (a
# SpectralNorm wrapper module that deletes module._parameters[name], registers name_u / name_v /
# name_bar Parameters made by w.data.new(h).normal_(0, 1), updates u and v through .data
# assignment of l2normalize(torch.mv(torch.t(...), ...)), and setattr's the normalized weight
# before every forward), model.py's DCGAN-style Generator and 7-conv Discriminator, and main.py's
# training loop (hinge, wasserstein and BCEWithLogits losses, Adam betas (0, 0.9), filter over
# requires_grad, ExponentialLR, disc_iters). Then the same discriminator with the library's
# torch.nn.utils.spectral_norm (weight_orig, weight_u / weight_v buffers, eval without power
# iteration, state_dict round trip). Widths are divided by 16, images are 32x32 as in CIFAR;
# the normal_ draws are replaced by numpy values after construction. The models run in float64
# (.double()): the generator's ConvTranspose biases feed BatchNorms, so their true gradient is 0
# and Adam turns float32 rounding into steps that differ between frameworks.
Parameter = nn.Parameter  # from torch.nn import Parameter
Variable = torch.autograd.Variable


def l2normalize(v, eps=1e-12):
    return v / (v.norm() + eps)


class SpectralNorm(nn.Module):
    def __init__(self, module, name='weight', power_iterations=1):
        super(SpectralNorm, self).__init__()
        self.module = module
        self.name = name
        self.power_iterations = power_iterations
        if not self._made_params():
            self._make_params()

    def _update_u_v(self):
        u = getattr(self.module, self.name + "_u")
        v = getattr(self.module, self.name + "_v")
        w = getattr(self.module, self.name + "_bar")

        height = w.data.shape[0]
        for _ in range(self.power_iterations):
            v.data = l2normalize(torch.mv(torch.t(w.view(height,-1).data), u.data))
            u.data = l2normalize(torch.mv(w.view(height,-1).data, v.data))

        # sigma = torch.dot(u.data, torch.mv(w.view(height,-1).data, v.data))
        sigma = u.dot(w.view(height, -1).mv(v))
        setattr(self.module, self.name, w / sigma.expand_as(w))

    def _made_params(self):
        try:
            u = getattr(self.module, self.name + "_u")
            v = getattr(self.module, self.name + "_v")
            w = getattr(self.module, self.name + "_bar")
            return True
        except AttributeError:
            return False

    def _make_params(self):
        w = getattr(self.module, self.name)

        height = w.data.shape[0]
        width = w.view(height, -1).data.shape[1]

        u = Parameter(w.data.new(height).normal_(0, 1), requires_grad=False)
        v = Parameter(w.data.new(width).normal_(0, 1), requires_grad=False)
        u.data = l2normalize(u.data)
        v.data = l2normalize(v.data)
        w_bar = Parameter(w.data)

        del self.module._parameters[self.name]

        self.module.register_parameter(self.name + "_u", u)
        self.module.register_parameter(self.name + "_v", v)
        self.module.register_parameter(self.name + "_bar", w_bar)

    def forward(self, *args):
        self._update_u_v()
        return self.module.forward(*args)


channels = 3
leak = 0.1
w_g = 4
D = 16  # the original's widths 64/128/256/512 are 4/8/16/32 here


class Generator(nn.Module):
    def __init__(self, z_dim):
        super(Generator, self).__init__()
        self.z_dim = z_dim

        self.model = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 512 // D, 4, stride=1),
            nn.BatchNorm2d(512 // D),
            nn.ReLU(),
            nn.ConvTranspose2d(512 // D, 256 // D, 4, stride=2, padding=(1,1)),
            nn.BatchNorm2d(256 // D),
            nn.ReLU(),
            nn.ConvTranspose2d(256 // D, 128 // D, 4, stride=2, padding=(1,1)),
            nn.BatchNorm2d(128 // D),
            nn.ReLU(),
            nn.ConvTranspose2d(128 // D, 64 // D, 4, stride=2, padding=(1,1)),
            nn.BatchNorm2d(64 // D),
            nn.ReLU(),
            nn.ConvTranspose2d(64 // D, channels, 3, stride=1, padding=(1,1)),
            nn.Tanh())

    def forward(self, z):
        return self.model(z.view(-1, self.z_dim, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, SpectralNorm=SpectralNorm):
        super(Discriminator, self).__init__()

        self.conv1 = SpectralNorm(nn.Conv2d(channels, 64 // D, 3, stride=1, padding=(1,1)))

        self.conv2 = SpectralNorm(nn.Conv2d(64 // D, 64 // D, 4, stride=2, padding=(1,1)))
        self.conv3 = SpectralNorm(nn.Conv2d(64 // D, 128 // D, 3, stride=1, padding=(1,1)))
        self.conv4 = SpectralNorm(nn.Conv2d(128 // D, 128 // D, 4, stride=2, padding=(1,1)))
        self.conv5 = SpectralNorm(nn.Conv2d(128 // D, 256 // D, 3, stride=1, padding=(1,1)))
        self.conv6 = SpectralNorm(nn.Conv2d(256 // D, 256 // D, 4, stride=2, padding=(1,1)))
        self.conv7 = SpectralNorm(nn.Conv2d(256 // D, 512 // D, 3, stride=1, padding=(1,1)))

        self.fc = SpectralNorm(nn.Linear(w_g * w_g * 512 // D, 1))

    def forward(self, x):
        m = x
        m = nn.LeakyReLU(leak)(self.conv1(m))
        m = nn.LeakyReLU(leak)(self.conv2(m))
        m = nn.LeakyReLU(leak)(self.conv3(m))
        m = nn.LeakyReLU(leak)(self.conv4(m))
        m = nn.LeakyReLU(leak)(self.conv5(m))
        m = nn.LeakyReLU(leak)(self.conv6(m))
        m = nn.LeakyReLU(leak)(self.conv7(m))

        return self.fc(m.view(-1,w_g * w_g * 512 // D))


def fill(model, seed):
    with torch.no_grad():
        for k, (n, t) in enumerate(list(model.named_parameters()) + list(model.named_buffers())):
            if n.endswith("num_batches_tracked") or n.endswith("running_var") or n.endswith("running_mean"):
                continue
            v = np.random.default_rng(seed + k).normal(0, 0.2, tuple(t.shape))
            if n.endswith("_u") or n.endswith("_v"):
                v /= np.linalg.norm(v)
            t.copy_(torch.from_numpy(v))


Z_dim = 8
batch_size = 4
disc_iters = 2
lr = 2e-4
rng = np.random.default_rng(0)
data_all = torch.from_numpy(rng.uniform(-1, 1, (10, 3, 32, 32)))
loader = DataLoader(TensorDataset(data_all, torch.zeros(10, dtype=torch.long)), batch_size=batch_size, drop_last=False)
zs = iter([torch.from_numpy(rng.standard_normal((batch_size, Z_dim))) for _ in range(200)])

for loss_kind in ("hinge", "wasserstein", "bce"):
    torch.manual_seed(0)
    discriminator = Discriminator().double()
    generator = Generator(Z_dim).double()
    fill(discriminator, 0)
    fill(generator, 100)
    if loss_kind == "hinge":
        out["disc_param_names"] = [n for n, p in discriminator.named_parameters() if p.requires_grad]
        out["disc_frozen_names"] = [n for n, p in discriminator.named_parameters() if not p.requires_grad]

    # because the spectral normalization module creates parameters that don't require gradients (u and v), we don't want to
    # optimize these using sgd. We only let the optimizer operate on parameters that _do_ require gradients
    # TODO: replace Parameters with buffers, which aren't returned from .parameters() method.
    optim_disc = optim.Adam(filter(lambda p: p.requires_grad, discriminator.parameters()), lr=lr, betas=(0.0,0.9))
    optim_gen  = optim.Adam(generator.parameters(), lr=lr, betas=(0.0,0.9))

    # use an exponentially decaying learning rate
    scheduler_d = optim.lr_scheduler.ExponentialLR(optim_disc, gamma=0.99)
    scheduler_g = optim.lr_scheduler.ExponentialLR(optim_gen, gamma=0.99)

    log = []
    for epoch in range(2 if loss_kind == "hinge" else 1):
        for batch_idx, (data, target) in enumerate(loader):
            if data.size()[0] != batch_size:
                continue
            data, target = Variable(data), Variable(target)

            # update discriminator
            for _ in range(disc_iters):
                z = Variable(next(zs))
                optim_disc.zero_grad()
                optim_gen.zero_grad()
                if loss_kind == 'hinge':
                    disc_loss = nn.ReLU()(1.0 - discriminator(data)).mean() + nn.ReLU()(1.0 + discriminator(generator(z))).mean()
                elif loss_kind == 'wasserstein':
                    disc_loss = -discriminator(data).mean() + discriminator(generator(z)).mean()
                else:
                    disc_loss = nn.BCEWithLogitsLoss()(discriminator(data), Variable(torch.ones(batch_size, 1, dtype=torch.float64))) + \
                        nn.BCEWithLogitsLoss()(discriminator(generator(z)), Variable(torch.zeros(batch_size, 1, dtype=torch.float64)))
                disc_loss.backward()
                optim_disc.step()

            z = Variable(next(zs))

            # update generator
            optim_disc.zero_grad()
            optim_gen.zero_grad()
            if loss_kind == 'hinge' or loss_kind == 'wasserstein':
                gen_loss = -discriminator(generator(z)).mean()
            else:
                gen_loss = nn.BCEWithLogitsLoss()(discriminator(generator(z)), Variable(torch.ones(batch_size, 1, dtype=torch.float64)))
            gen_loss.backward()
            optim_gen.step()
            log.append((disc_loss.item(), gen_loss.item()))
        scheduler_d.step()
        scheduler_g.step()
    out[f"{loss_kind}_log"] = log
    out[f"{loss_kind}_u"] = discriminator.conv3.module.weight_u
    out[f"{loss_kind}_disc"] = {n: p.detach() for n, p in discriminator.named_parameters()}
    out[f"{loss_kind}_gen"] = {n: p.detach() for n, p in generator.named_parameters()}

# the library's torch.nn.utils.spectral_norm in place of the hand-written wrapper
SN = lambda module: torch.nn.utils.spectral_norm(module)  # noqa: E731
discriminator = Discriminator(SpectralNorm=SN).double()
fill(discriminator, 0)
out["lib_param_names"] = [n for n, _ in discriminator.named_parameters()]
out["lib_buffer_names"] = [n for n, _ in discriminator.named_buffers()]
optim_disc = optim.Adam(filter(lambda p: p.requires_grad, discriminator.parameters()), lr=lr, betas=(0.0, 0.9))
lib_log = []
for batch_idx, (data, target) in enumerate(loader):
    optim_disc.zero_grad()
    disc_loss = nn.ReLU()(1.0 - discriminator(data)).mean()
    disc_loss.backward()
    optim_disc.step()
    lib_log.append(disc_loss.item())
out["lib_log"] = lib_log
out["lib_u"] = discriminator.conv3.weight_u
out["lib_weight"] = discriminator.conv3.weight
discriminator.eval()
u_before = discriminator.conv3.weight_u.clone()
out["lib_eval"] = discriminator(data_all[:2])
out["lib_eval_u_unchanged"] = bool(torch.equal(u_before, discriminator.conv3.weight_u))
sd = discriminator.state_dict()
out["lib_state_keys"] = sorted(sd)
fresh = Discriminator(SpectralNorm=SN).double()
fresh.load_state_dict(sd)
fresh.eval()
out["lib_reloaded_eval"] = fresh(data_all[:2])
torch.nn.utils.remove_spectral_norm(fresh.conv3)
out["lib_removed_names"] = [n for n, _ in fresh.conv3.named_parameters()]
out["lib_removed_eval"] = fresh(data_all[:2])
