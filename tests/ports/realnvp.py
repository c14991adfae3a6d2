# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# Two well-known normalizing-flow programs as written:
# - senya-ashukha/real-nvp-pytorch (real-nvp-pytorch.ipynb): RealNVP with alternating binary masks
#   held in a requires_grad=False nn.Parameter, coupling nets from lambdas over nn.Sequential,
#   f / g / log_prob with a MultivariateNormal prior, Adam over the trainable parameters,
#   loss.backward(retain_graph=True), sampling;
# - karpathy/pytorch-normalizing-flows (nflib/flows.py): AffineHalfFlow (RealNVP, strided halves
#   by parity), ActNorm's data-dependent init through .data assignment, NormalizingFlow /
#   NormalizingFlowModel with the logistic prior TransformedDistribution(Uniform, SigmoidTransform().inv),
#   and the notebook's training step (Adam with weight_decay) and backward (inverse) pass.
# sklearn's make_moons is replaced by the same two half circles drawn with numpy; prior samples
# are checked for shape only, then fixed numpy draws go through g.
import itertools

distributions = torch.distributions


def make_moons(n_samples, noise, rng):
    n_out, n_in = n_samples // 2, n_samples - n_samples // 2
    outer_x, outer_y = np.cos(np.linspace(0, np.pi, n_out)), np.sin(np.linspace(0, np.pi, n_out))
    inner_x, inner_y = 1 - np.cos(np.linspace(0, np.pi, n_in)), 1 - np.sin(np.linspace(0, np.pi, n_in)) - .5
    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    return X + rng.normal(scale=noise, size=X.shape), None


def fill(module, seed, scale=0.3):
    with torch.no_grad():
        for k, p in enumerate(module.parameters()):
            if p.requires_grad:
                p.copy_(torch.from_numpy(np.random.default_rng(seed + k).normal(0, scale, tuple(p.shape)).astype(np.float32)))


# ---------------------------------------------------------------- senya-ashukha/real-nvp-pytorch
class RealNVP(nn.Module):
    def __init__(self, nets, nett, mask, prior):
        super(RealNVP, self).__init__()

        self.prior = prior
        self.mask = nn.Parameter(mask, requires_grad=False)
        self.t = torch.nn.ModuleList([nett() for _ in range(len(masks))])
        self.s = torch.nn.ModuleList([nets() for _ in range(len(masks))])

    def g(self, z):
        x = z
        for i in range(len(self.t)):
            x_ = x*self.mask[i]
            s = self.s[i](x_)*(1 - self.mask[i])
            t = self.t[i](x_)*(1 - self.mask[i])
            x = x_ + (1 - self.mask[i]) * (x * torch.exp(s) + t)
        return x

    def f(self, x):
        log_det_J, z = x.new_zeros(x.shape[0]), x
        for i in reversed(range(len(self.t))):
            z_ = self.mask[i] * z
            s = self.s[i](z_) * (1-self.mask[i])
            t = self.t[i](z_) * (1-self.mask[i])
            z = (1 - self.mask[i]) * (z - t) * torch.exp(-s) + z_
            log_det_J -= s.sum(dim=1)
        return z, log_det_J

    def log_prob(self,x):
        z, logp = self.f(x)
        return self.prior.log_prob(z) + logp

    def sample(self, batchSize):
        z = self.prior.sample((batchSize, 1))
        logp = self.prior.log_prob(z)
        x = self.g(z)
        return x


H = 32  # 256 in the notebook
nets = lambda: nn.Sequential(nn.Linear(2, H), nn.LeakyReLU(), nn.Linear(H, H), nn.LeakyReLU(), nn.Linear(H, 2), nn.Tanh())
nett = lambda: nn.Sequential(nn.Linear(2, H), nn.LeakyReLU(), nn.Linear(H, H), nn.LeakyReLU(), nn.Linear(H, 2))
masks = torch.from_numpy(np.array([[0, 1], [1, 0]] * 3).astype(np.float32))
prior = distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
flow = RealNVP(nets, nett, masks, prior)
fill(flow, 0)
out["mask_in_params"] = [n for n, p in flow.named_parameters() if not p.requires_grad]

optimizer = torch.optim.Adam([p for p in flow.parameters() if p.requires_grad==True], lr=1e-3)
moons = np.random.default_rng(4)
nvp_losses = []
for t in range(6):
    noisy_moons = make_moons(n_samples=100, noise=.05, rng=moons)[0].astype(np.float32)
    loss = -flow.log_prob(torch.from_numpy(noisy_moons)).mean()

    optimizer.zero_grad()
    loss.backward(retain_graph=True)
    if t == 0:
        out["nvp_grads0"] = [p.grad.clone() for p in flow.parameters() if p.requires_grad]
    optimizer.step()
    nvp_losses.append(loss.item())
out["nvp_losses"] = nvp_losses
out["nvp_mask_grad"] = flow.mask.grad is None

noisy_moons = torch.from_numpy(make_moons(n_samples=50, noise=.05, rng=moons)[0].astype(np.float32))
z = flow.f(noisy_moons)[0].detach().numpy()
out["nvp_z"] = z
out["nvp_sample_shape"] = tuple(flow.sample(7).shape)
z_fixed = torch.from_numpy(np.random.default_rng(8).standard_normal((5, 1, 2)).astype(np.float32))
out["nvp_g"] = flow.g(z_fixed)
out["nvp_roundtrip"] = bool(torch.allclose(flow.f(flow.g(noisy_moons))[0], noisy_moons, atol=1e-4))


# ---------------------------------------------------------------- karpathy/pytorch-normalizing-flows
class MLP(nn.Module):
    """ a simple 4-layer MLP """

    def __init__(self, nin, nout, nh):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(nin, nh),
            nn.LeakyReLU(0.2),
            nn.Linear(nh, nh),
            nn.LeakyReLU(0.2),
            nn.Linear(nh, nh),
            nn.LeakyReLU(0.2),
            nn.Linear(nh, nout),
        )
    def forward(self, x):
        return self.net(x)


class AffineConstantFlow(nn.Module):
    """
    Scales + Shifts the flow by (learned) constants per dimension.
    In NICE paper there is a Scaling layer which is a special case of this where t is None
    """
    def __init__(self, dim, scale=True, shift=True):
        super().__init__()
        self.s = nn.Parameter(torch.randn(1, dim, requires_grad=True)) if scale else None
        self.t = nn.Parameter(torch.randn(1, dim, requires_grad=True)) if shift else None

    def forward(self, x):
        s = self.s if self.s is not None else x.new_zeros(x.size())
        t = self.t if self.t is not None else x.new_zeros(x.size())
        z = x * torch.exp(s) + t
        log_det = torch.sum(s, dim=1)
        return z, log_det

    def backward(self, z):
        s = self.s if self.s is not None else z.new_zeros(z.size())
        t = self.t if self.t is not None else z.new_zeros(z.size())
        x = (z - t) * torch.exp(-s)
        log_det = torch.sum(-s, dim=1)
        return x, log_det


class ActNorm(AffineConstantFlow):
    """
    Really an AffineConstantFlow but with a data-dependent initialization,
    where on the very first batch we clever initialize the s,t so that the output
    is unit gaussian. As described in Glow paper.
    """
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_dep_init_done = False

    def forward(self, x):
        # first batch is used for init
        if not self.data_dep_init_done:
            assert self.s is not None and self.t is not None # for now
            self.s.data = (-torch.log(x.std(dim=0, keepdim=True))).detach()
            self.t.data = (-(x * torch.exp(self.s)).mean(dim=0, keepdim=True)).detach()
            self.data_dep_init_done = True
        return super().forward(x)


class AffineHalfFlow(nn.Module):
    """
    As seen in RealNVP, affine autoregressive flow (z = x * exp(s) + t), where half of the
    dimensions in x are linearly scaled/transfromed as a function of the other half.
    Which half is which is determined by the parity bit.
    - RealNVP both scales and shifts (default)
    - NICE only shifts
    """
    def __init__(self, dim, parity, net_class=MLP, nh=24, scale=True, shift=True):
        super().__init__()
        self.dim = dim
        self.parity = parity
        self.s_cond = lambda x: x.new_zeros(x.size(0), self.dim // 2)
        self.t_cond = lambda x: x.new_zeros(x.size(0), self.dim // 2)
        if scale:
            self.s_cond = net_class(self.dim // 2, self.dim // 2, nh)
        if shift:
            self.t_cond = net_class(self.dim // 2, self.dim // 2, nh)

    def forward(self, x):
        x0, x1 = x[:,::2], x[:,1::2]
        if self.parity:
            x0, x1 = x1, x0
        s = self.s_cond(x0)
        t = self.t_cond(x0)
        z0 = x0 # untouched half
        z1 = torch.exp(s) * x1 + t # transform this half as a function of the other
        if self.parity:
            z0, z1 = z1, z0
        z = torch.cat([z0, z1], dim=1)
        log_det = torch.sum(s, dim=1)
        return z, log_det

    def backward(self, z):
        z0, z1 = z[:,::2], z[:,1::2]
        if self.parity:
            z0, z1 = z1, z0
        s = self.s_cond(z0)
        t = self.t_cond(z0)
        x0 = z0 # this was the same
        x1 = (z1 - t) * torch.exp(-s) # reverse the transform on this half
        if self.parity:
            x0, x1 = x1, x0
        x = torch.cat([x0, x1], dim=1)
        log_det = torch.sum(-s, dim=1)
        return x, log_det


class NormalizingFlow(nn.Module):
    """ A sequence of Normalizing Flows is a Normalizing Flow """

    def __init__(self, flows):
        super().__init__()
        self.flows = nn.ModuleList(flows)

    def forward(self, x):
        m, _ = x.shape
        log_det = torch.zeros(m)
        zs = [x]
        for flow in self.flows:
            x, ld = flow.forward(x)
            log_det += ld
            zs.append(x)
        return zs, log_det

    def backward(self, z):
        m, _ = z.shape
        log_det = torch.zeros(m)
        xs = [z]
        for flow in self.flows[::-1]:
            z, ld = flow.backward(z)
            log_det += ld
            xs.append(z)
        return xs, log_det


class NormalizingFlowModel(nn.Module):
    """ A Normalizing Flow Model is a (prior, flow) pair """

    def __init__(self, prior, flows):
        super().__init__()
        self.prior = prior
        self.flow = NormalizingFlow(flows)

    def forward(self, x):
        zs, log_det = self.flow.forward(x)
        prior_logprob = self.prior.log_prob(zs[-1]).view(x.size(0), -1).sum(1)
        return zs, prior_logprob, log_det

    def backward(self, z):
        xs, log_det = self.flow.backward(z)
        return xs, log_det

    def sample(self, num_samples):
        z = self.prior.sample((num_samples,))
        xs, _ = self.flow.backward(z)
        return xs




# the notebook: from torch.distributions import ... (an import statement would load PyTorch itself)
TransformedDistribution, Uniform = distributions.TransformedDistribution, distributions.Uniform
SigmoidTransform = distributions.transforms.SigmoidTransform

prior = TransformedDistribution(Uniform(torch.zeros(2), torch.ones(2)), SigmoidTransform().inv) # Logistic distribution
flows = [AffineHalfFlow(dim=2, parity=i%2, nh=16) for i in range(4)]
norms = [ActNorm(dim=2) for _ in flows]
flows = list(itertools.chain(*zip(norms, flows)))
model = NormalizingFlowModel(prior, flows)
fill(model, 50)

optimizer = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
model.train()
flow_losses = []
for k in range(6):
    x = torch.from_numpy(make_moons(n_samples=64, noise=.05, rng=moons)[0].astype(np.float32))

    zs, prior_logprob, log_det = model(x)
    logprob = prior_logprob + log_det
    loss = -torch.sum(logprob) # NLL

    model.zero_grad()
    loss.backward()
    if k == 0:
        out["flow_grads0"] = {n: p.grad.clone() for n, p in model.named_parameters()}
    optimizer.step()
    flow_losses.append(loss.item())
out["flow_losses"] = flow_losses
out["actnorm_s"] = [f.s.detach() for f in norms]

model.eval()
x = torch.from_numpy(make_moons(n_samples=32, noise=.05, rng=moons)[0].astype(np.float32))
zs, prior_logprob, log_det = model(x)
z = zs[-1]
out["flow_z"] = z
out["flow_prior_logprob"] = prior_logprob
xs, log_det_back = model.backward(z)
out["flow_inverse"] = xs[-1]
out["flow_logdet_sum"] = log_det + log_det_back
out["flow_sample_shape"] = tuple(model.sample(16)[-1].shape)
