# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# Part 1: pytorch/examples reinforcement_learning/actor_critic.py (SavedAction namedtuple,
# Categorical log_prob, returns normalised with np.finfo eps, smooth_l1_loss against
# torch.tensor([R]) of a 0-d tensor, torch.stack(...).sum(), del model.rewards[:]) on a toy
# CartPole-like environment; actions come from numpy so both frameworks take the same ones.
# Part 2: WGAN (weight clipping: p.data.clamp_, requires_grad toggling, backward(one) /
# backward(mone) on 0-d gradients, RMSprop) and WGAN-GP (autograd.grad with create_graph and
# grad_outputs, gradient norm penalty, Adam(betas=(0.5, 0.9)), weight_norm'd layers).
from collections import namedtuple

Categorical = torch.distributions.Categorical
autograd = torch.autograd

SavedAction = namedtuple('SavedAction', ['log_prob', 'value'])
gamma = 0.99


class Policy(nn.Module):
    """
    implements both actor and critic in one model
    """
    def __init__(self):
        super(Policy, self).__init__()
        self.affine1 = nn.Linear(4, 32)

        # actor's layer
        self.action_head = nn.Linear(32, 2)

        # critic's layer
        self.value_head = nn.Linear(32, 1)

        # action & reward buffer
        self.saved_actions = []
        self.rewards = []

    def forward(self, x):
        """
        forward of both actor and critic
        """
        x = F.relu(self.affine1(x))

        # actor: choses action to take from state s_t
        # by returning probability of each action
        action_prob = F.softmax(self.action_head(x), dim=-1)

        # critic: evaluates being in the state s_t
        state_values = self.value_head(x)

        # return values for both actor and critic as a tuple of 2 values:
        # 1. a list with the probability of each action over the action space
        # 2. the value from state s_t
        return action_prob, state_values


torch.manual_seed(543)
model = Policy()
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
optimizer = optim.Adam(model.parameters(), lr=3e-2)
eps = np.finfo(np.float32).eps.item()
action_rng = np.random.default_rng(7)


def select_action(state):
    state = torch.from_numpy(state).float()
    probs, state_value = model(state)

    # create a categorical distribution over the list of probabilities of actions
    m = Categorical(probs)

    # and sample an action using the distribution (numpy's draw, the same in both frameworks)
    action = m.sample()
    action = torch.tensor(int(action_rng.random() < probs[1].item()))

    # save to action buffer
    model.saved_actions.append(SavedAction(m.log_prob(action), state_value))

    # the action to take (left or right)
    return action.item()


def finish_episode():
    """
    Training code. Calculates actor and critic loss and performs backprop.
    """
    R = 0
    saved_actions = model.saved_actions
    policy_losses = [] # list to save actor (policy) loss
    value_losses = [] # list to save critic (value) loss
    returns = [] # list to save the true values

    # calculate the true value using rewards returned from the environment
    for r in model.rewards[::-1]:
        # calculate the discounted value
        R = r + gamma * R
        returns.insert(0, R)

    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + eps)

    for (log_prob, value), R in zip(saved_actions, returns):
        advantage = R - value.item()

        # calculate actor (policy) loss
        policy_losses.append(-log_prob * advantage)

        # calculate critic (value) loss using L1 smooth loss
        value_losses.append(F.smooth_l1_loss(value, torch.tensor([R])))

    # reset gradients
    optimizer.zero_grad()

    # sum up all the losses
    loss = torch.stack(policy_losses).sum() + torch.stack(value_losses).sum()

    # perform backprop
    loss.backward()
    optimizer.step()

    # reset rewards and action buffer
    del model.rewards[:]
    del model.saved_actions[:]
    return loss.item()


class ToyCartPole:
    def reset(self, seed):
        self.s = np.random.default_rng(seed).uniform(-0.05, 0.05, 4)
        return self.s.copy(), {}

    def step(self, action):
        x, v, th, w = self.s
        f = 1.0 if action == 1 else -1.0
        w = w + 0.05 * (9.8 * np.sin(th) - f * np.cos(th))
        th = th + 0.02 * w
        v = v + 0.02 * f
        x = x + 0.02 * v
        self.s = np.array([x, v, th, w])
        done = abs(th) > 0.2 or abs(x) > 2.4
        return self.s.copy(), 1.0, done, False, {}


env = ToyCartPole()
running_reward = 10
log = []
for i_episode in range(3):
    state, _ = env.reset(seed=i_episode)
    ep_reward = 0
    for t in range(1, 15):
        action = select_action(state)
        state, reward, done, _, _ = env.step(action)
        model.rewards.append(reward)
        ep_reward += reward
        if done:
            break
    running_reward = 0.05 * ep_reward + (1 - 0.05) * running_reward
    log.append([ep_reward, running_reward, finish_episode()])
out["ac_log"] = log
out["ac_weights"] = model.value_head.weight
out["ac_buffers_cleared"] = [len(model.rewards), len(model.saved_actions)]


# ---------------------------------------------------------------- WGAN / WGAN-GP
class Generator(nn.Module):
    def __init__(self, nz=4, nh=16, nx=6, wn=False):
        super().__init__()
        norm = nn.utils.parametrizations.weight_norm if wn else (lambda m: m)
        self.main = nn.Sequential(norm(nn.Linear(nz, nh)), nn.ReLU(True), nn.Linear(nh, nx), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, nx=6, nh=16, wn=False):
        super().__init__()
        norm = nn.utils.weight_norm if wn else (lambda m: m)
        self.main = nn.Sequential(norm(nn.Linear(nx, nh)), nn.LeakyReLU(0.2, inplace=True), nn.Linear(nh, 1))

    def forward(self, x):
        return self.main(x).view(-1)


def fill_(m, seed):
    with torch.no_grad():
        for i, p in enumerate(m.parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + i).uniform(-0.4, 0.4, tuple(p.shape))
                                     .astype(np.float32)))
    return m


def calc_gradient_penalty(netD, real_data, fake_data, alpha, LAMBDA=10):
    alpha = alpha.expand(real_data.size())
    interpolates = alpha * real_data + ((1 - alpha) * fake_data)
    interpolates = autograd.Variable(interpolates, requires_grad=True)
    disc_interpolates = netD(interpolates)
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                              grad_outputs=torch.ones(disc_interpolates.size()),
                              create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradients = gradients.view(gradients.size(0), -1)
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * LAMBDA
    return gradient_penalty


data_rng = np.random.default_rng(11)
real_all = torch.from_numpy(np.tanh(data_rng.standard_normal((64, 6))).astype(np.float32))
for variant in ("clip", "gp"):
    netG = fill_(Generator(wn=variant == "gp"), 0)
    netD = fill_(Discriminator(wn=variant == "gp"), 100)
    if variant == "clip":
        optimizerD = optim.RMSprop(netD.parameters(), lr=5e-3)
        optimizerG = optim.RMSprop(netG.parameters(), lr=5e-3)
    else:
        optimizerD = optim.Adam(netD.parameters(), lr=1e-3, betas=(0.5, 0.9))
        optimizerG = optim.Adam(netG.parameters(), lr=1e-3, betas=(0.5, 0.9))
    one = torch.tensor(1, dtype=torch.float)
    mone = one * -1
    log = []
    for it in range(4):
        ############################
        # (1) Update D network
        ###########################
        for p in netD.parameters():  # reset requires_grad
            p.requires_grad = True  # they are set to False below in netG update
        for j in range(2):
            if variant == "clip":
                # clamp parameters to a cube
                for p in netD.parameters():
                    p.data.clamp_(-0.3, 0.3)
            real = real_all[(it * 2 + j) * 8:(it * 2 + j + 1) * 8]
            netD.zero_grad()
            errD_real = netD(real).mean()
            errD_real.backward(mone)
            noise = torch.from_numpy(data_rng.standard_normal((8, 4)).astype(np.float32))
            with torch.no_grad():
                noisev = noise  # totally freeze netG
            fake = netG(noisev).data
            errD_fake = netD(fake).mean()
            errD_fake.backward(one)
            errD = errD_fake - errD_real
            if variant == "gp":
                alpha = torch.from_numpy(data_rng.uniform(0, 1, (8, 1)).astype(np.float32))
                gradient_penalty = calc_gradient_penalty(netD, real.data, fake.data, alpha)
                gradient_penalty.backward()
                errD = errD + gradient_penalty
            optimizerD.step()
        ############################
        # (2) Update G network
        ###########################
        for p in netD.parameters():
            p.requires_grad = False  # to avoid computation
        netG.zero_grad()
        noise = torch.from_numpy(data_rng.standard_normal((8, 4)).astype(np.float32))
        fake = netG(noise)
        errG = netD(fake).mean()
        errG.backward(mone)
        errG = -errG
        optimizerG.step()
        log.append([errD.item(), errG.item(), errD_real.item(), errD_fake.item()])
        out[f"{variant}_D_grad_none"] = [p.grad is None for p in netD.parameters()]
    out[f"{variant}_log"] = log
    out[f"{variant}_G"] = [p for p in netG.parameters()]
    out[f"{variant}_D_names"] = [n for n, _ in netD.named_parameters()]
