# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples dcgan/main.py shrunk to 16x16 images (nz=8, ngf=ndf=4, 3 channels): the same
# Generator/Discriminator layer stacks, weights_init by class name, BCELoss, two Adams with
# betas and the D step on fake.detach(). weights_init really runs (its normal_ draws differ
# between frameworks, so only their spread is recorded); then both get the same numpy weights.
rng = np.random.default_rng(5)
nz, ngf, ndf, nc = 8, 4, 4, 3


# custom weights initialization called on netG and netD
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
        init_log.append(classname)
    elif classname.find('BatchNorm') != -1:
        m.weight.data.normal_(1.0, 0.02)  # the older examples' spelling
        m.bias.data.fill_(0)
        init_log.append(classname)


class Generator(nn.Module):
    def __init__(self, ngpu):
        super(Generator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. (ngf*4) x 4 x 4
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 8 x 8
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),
            nn.Tanh()
            # state size. (nc) x 16 x 16
        )

    def forward(self, input):
        output = self.main(input)
        return output


class Discriminator(nn.Module):
    def __init__(self, ngpu):
        super(Discriminator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is (nc) x 16 x 16
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 8 x 8
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 4 x 4
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid()
        )

    def forward(self, input):
        output = self.main(input)
        return output.view(-1, 1).squeeze(1)


def same_weights_(model, seed):
    with torch.no_grad():
        for i, (name, p) in enumerate(model.named_parameters()):
            mean = 1.0 if p.dim() == 1 and name.endswith("weight") else 0.0
            p.copy_(torch.from_numpy(np.random.default_rng(seed + i).normal(mean, 0.1, tuple(p.shape)).astype(np.float32)))


init_log = []
device = torch.device("cpu")
netG = Generator(0).to(device)
netG.apply(weights_init)
netD = Discriminator(0).to(device)
netD.apply(weights_init)
out["init_log"] = init_log
out["conv_std_ok"] = [bool(abs(m.weight.std().item() - 0.02) < 0.01) for m in netG.modules()
                      if m.__class__.__name__.find('Conv') != -1]
out["bn_bias_zero"] = [bool((m.bias == 0).all()) for m in netD.modules() if isinstance(m, nn.BatchNorm2d)]
same_weights_(netG, 0)
same_weights_(netD, 50)

criterion = nn.BCELoss()
fixed_noise = torch.from_numpy(rng.standard_normal((4, nz, 1, 1)).astype(np.float32))
real_label = 1
fake_label = 0

optimizerD = optim.Adam(netD.parameters(), lr=0.0002 * 10, betas=(0.5, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=0.0002 * 10, betas=(0.5, 0.999))

images = torch.from_numpy(np.tanh(rng.standard_normal((12, nc, 16, 16))).astype(np.float32))
dataloader = DataLoader(TensorDataset(images), batch_size=4)
noises = [torch.from_numpy(rng.standard_normal((4, nz, 1, 1)).astype(np.float32)) for _ in range(6)]
hist = []
k = 0
for epoch in range(2):
    for i, data in enumerate(dataloader, 0):
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        # train with real
        netD.zero_grad()
        real_cpu = data[0].to(device)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label,
                           dtype=real_cpu.dtype, device=device)

        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        # train with fake
        noise = noises[k]
        k += 1
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()

        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()

        hist.append([errD.item(), errG.item(), D_x, D_G_z1, D_G_z2])
out["hist"] = hist
fake = netG(fixed_noise)
out["fake_shape"] = list(fake.shape)
out["fake"] = fake.detach()
out["netG_sd"] = dict(netG.state_dict())
out["netD_sd"] = dict(netD.state_dict())
netG.eval()
netD.eval()
with torch.no_grad():
    out["eval_D_of_G"] = netD(netG(fixed_noise))
