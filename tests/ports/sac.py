# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pranz24/pytorch-soft-actor-critic: model.py, sac.py and utils.py as written (weights_init_ with
# xavier_uniform_(gain=1) and constant_, twin-Q QNetwork on torch.cat([state, action], 1),
# GaussianPolicy with LOG_SIG_MIN/MAX clamp, Normal(mean, std).rsample(), the tanh squash with
# action_scale/action_bias buffers registered as tensors and the log_prob correction
# log(action_scale * (1 - y_t.pow(2)) + epsilon).sum(1, keepdim=True), soft_update / hard_update by
# target_param.data.copy_, automatic entropy tuning with log_alpha = torch.zeros(1, requires_grad=True)
# and target_entropy = -torch.prod(torch.Tensor(action_space.shape)).item()). rsample's noise differs
# between frameworks, so the one change is normal.rsample() written as mean + std * eps with eps
# from numpy; ReplayMemory samples with numpy in place of random.sample.
LOG_SIG_MAX = 2
LOG_SIG_MIN = -20
epsilon = 1e-6
rng = np.random.default_rng(31)
Normal = torch.distributions.Normal


def weights_init_(m):
    if isinstance(m, nn.Linear):
        torch.nn.init.xavier_uniform_(m.weight, gain=1)
        torch.nn.init.constant_(m.bias, 0)


class QNetwork(nn.Module):
    def __init__(self, num_inputs, num_actions, hidden_dim):
        super(QNetwork, self).__init__()
        # Q1 architecture
        self.linear1 = nn.Linear(num_inputs + num_actions, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, hidden_dim)
        self.linear3 = nn.Linear(hidden_dim, 1)
        # Q2 architecture
        self.linear4 = nn.Linear(num_inputs + num_actions, hidden_dim)
        self.linear5 = nn.Linear(hidden_dim, hidden_dim)
        self.linear6 = nn.Linear(hidden_dim, 1)
        self.apply(weights_init_)

    def forward(self, state, action):
        xu = torch.cat([state, action], 1)
        x1 = F.relu(self.linear1(xu))
        x1 = F.relu(self.linear2(x1))
        x1 = self.linear3(x1)
        x2 = F.relu(self.linear4(xu))
        x2 = F.relu(self.linear5(x2))
        x2 = self.linear6(x2)
        return x1, x2


class GaussianPolicy(nn.Module):
    def __init__(self, num_inputs, num_actions, hidden_dim, action_space=None):
        super(GaussianPolicy, self).__init__()
        self.linear1 = nn.Linear(num_inputs, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, hidden_dim)
        self.mean_linear = nn.Linear(hidden_dim, num_actions)
        self.log_std_linear = nn.Linear(hidden_dim, num_actions)
        self.apply(weights_init_)
        # action rescaling
        if action_space is None:
            self.action_scale = torch.tensor(1.)
            self.action_bias = torch.tensor(0.)
        else:
            self.action_scale = torch.FloatTensor(
                (action_space.high - action_space.low) / 2.)
            self.action_bias = torch.FloatTensor(
                (action_space.high + action_space.low) / 2.)

    def forward(self, state):
        x = F.relu(self.linear1(state))
        x = F.relu(self.linear2(x))
        mean = self.mean_linear(x)
        log_std = self.log_std_linear(x)
        log_std = torch.clamp(log_std, min=LOG_SIG_MIN, max=LOG_SIG_MAX)
        return mean, log_std

    def sample(self, state):
        mean, log_std = self.forward(state)
        std = log_std.exp()
        normal = Normal(mean, std)
        x_t = mean + std * next_eps(mean.shape)  # normal.rsample(): reparameterization trick
        y_t = torch.tanh(x_t)
        action = y_t * self.action_scale + self.action_bias
        log_prob = normal.log_prob(x_t)
        # Enforcing Action Bound
        log_prob -= torch.log(self.action_scale * (1 - y_t.pow(2)) + epsilon)
        log_prob = log_prob.sum(1, keepdim=True)
        mean = torch.tanh(mean) * self.action_scale + self.action_bias
        return action, log_prob, mean

    def to(self, device):
        self.action_scale = self.action_scale.to(device)
        self.action_bias = self.action_bias.to(device)
        return super(GaussianPolicy, self).to(device)


def next_eps(shape):
    return torch.from_numpy(rng.standard_normal(tuple(shape)).astype(np.float32))


def soft_update(target, source, tau):
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.data.copy_(target_param.data * (1.0 - tau) + param.data * tau)


def hard_update(target, source):
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.data.copy_(param.data)


class Box:
    def __init__(self, low, high):
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.shape = self.low.shape


class SAC(object):
    def __init__(self, num_inputs, action_space, args):
        self.gamma = args["gamma"]
        self.tau = args["tau"]
        self.alpha = args["alpha"]
        self.target_update_interval = args["target_update_interval"]
        self.automatic_entropy_tuning = args["automatic_entropy_tuning"]
        self.device = torch.device("cpu")

        self.critic = QNetwork(num_inputs, action_space.shape[0], args["hidden_size"]).to(device=self.device)
        same_weights_(self.critic, 0)
        self.critic_optim = optim.Adam(self.critic.parameters(), lr=args["lr"])
        self.critic_target = QNetwork(num_inputs, action_space.shape[0], args["hidden_size"]).to(self.device)
        hard_update(self.critic_target, self.critic)

        if self.automatic_entropy_tuning is True:
            self.target_entropy = -torch.prod(torch.Tensor(action_space.shape).to(self.device)).item()
            self.log_alpha = torch.zeros(1, requires_grad=True, device=self.device)
            self.alpha_optim = optim.Adam([self.log_alpha], lr=args["lr"])
        self.policy = GaussianPolicy(num_inputs, action_space.shape[0], args["hidden_size"], action_space).to(self.device)
        same_weights_(self.policy, 100)
        self.policy_optim = optim.Adam(self.policy.parameters(), lr=args["lr"])

    def select_action(self, state, evaluate=False):
        state = torch.FloatTensor(state).to(self.device).unsqueeze(0)
        if evaluate is False:
            action, _, _ = self.policy.sample(state)
        else:
            _, _, action = self.policy.sample(state)
        return action.detach().cpu().numpy()[0]

    def update_parameters(self, memory, batch_size, updates):
        state_batch, action_batch, reward_batch, next_state_batch, mask_batch = memory.sample(batch_size=batch_size)
        state_batch = torch.FloatTensor(state_batch).to(self.device)
        next_state_batch = torch.FloatTensor(next_state_batch).to(self.device)
        action_batch = torch.FloatTensor(action_batch).to(self.device)
        reward_batch = torch.FloatTensor(reward_batch).to(self.device).unsqueeze(1)
        mask_batch = torch.FloatTensor(mask_batch).to(self.device).unsqueeze(1)

        with torch.no_grad():
            next_state_action, next_state_log_pi, _ = self.policy.sample(next_state_batch)
            qf1_next_target, qf2_next_target = self.critic_target(next_state_batch, next_state_action)
            min_qf_next_target = torch.min(qf1_next_target, qf2_next_target) - self.alpha * next_state_log_pi
            next_q_value = reward_batch + mask_batch * self.gamma * (min_qf_next_target)
        qf1, qf2 = self.critic(state_batch, action_batch)
        qf1_loss = F.mse_loss(qf1, next_q_value)
        qf2_loss = F.mse_loss(qf2, next_q_value)
        qf_loss = qf1_loss + qf2_loss

        self.critic_optim.zero_grad()
        qf_loss.backward()
        self.critic_optim.step()

        pi, log_pi, _ = self.policy.sample(state_batch)

        qf1_pi, qf2_pi = self.critic(state_batch, pi)
        min_qf_pi = torch.min(qf1_pi, qf2_pi)

        policy_loss = ((self.alpha * log_pi) - min_qf_pi).mean()

        self.policy_optim.zero_grad()
        policy_loss.backward()
        self.policy_optim.step()

        if self.automatic_entropy_tuning:
            alpha_loss = -(self.log_alpha * (log_pi + self.target_entropy).detach()).mean()

            self.alpha_optim.zero_grad()
            alpha_loss.backward()
            self.alpha_optim.step()

            self.alpha = self.log_alpha.exp()
            alpha_tlogs = self.alpha.clone()  # For TensorboardX logs
        else:
            alpha_loss = torch.tensor(0.).to(self.device)
            alpha_tlogs = torch.tensor(self.alpha)  # For TensorboardX logs

        if updates % self.target_update_interval == 0:
            soft_update(self.critic_target, self.critic, self.tau)

        return qf1_loss.item(), qf2_loss.item(), policy_loss.item(), alpha_loss.item(), alpha_tlogs.item()


class ReplayMemory:
    def __init__(self, capacity):
        self.capacity = capacity
        self.buffer = []
        self.position = 0

    def push(self, state, action, reward, next_state, done):
        if len(self.buffer) < self.capacity:
            self.buffer.append(None)
        self.buffer[self.position] = (state, action, reward, next_state, done)
        self.position = (self.position + 1) % self.capacity

    def sample(self, batch_size):
        idx = rng.choice(len(self.buffer), batch_size, replace=False)  # random.sample in the original
        batch = [self.buffer[i] for i in idx]
        state, action, reward, next_state, done = map(np.stack, zip(*batch))
        return state, action, reward, next_state, done

    def __len__(self):
        return len(self.buffer)


def same_weights_(model, seed):
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + i).normal(0, 0.3, tuple(p.shape)).astype(np.float32)))


args = dict(gamma=0.99, tau=0.005, alpha=0.2, target_update_interval=1, automatic_entropy_tuning=True,
            hidden_size=16, lr=0.003)
action_space = Box([-2.0, -1.0], [2.0, 1.0])
agent = SAC(3, action_space, args)
out["target_entropy"] = agent.target_entropy
out["xavier_bias_zero"] = bool((QNetwork(3, 2, 4).linear1.bias == 0).all())
memory = ReplayMemory(100)
state = rng.standard_normal(3).astype(np.float32)
log = []
for t in range(24):  # a point mass pushed by the action toward the origin
    action = agent.select_action(state)
    next_state = (state + 0.1 * np.concatenate([action, action[:1]])).astype(np.float32)
    reward = -float(np.sum(next_state ** 2))
    memory.push(state, action, reward, next_state, float(t % 12 != 11))
    state = next_state if t % 12 != 11 else rng.standard_normal(3).astype(np.float32)
    if len(memory) > 8:
        log.append(agent.update_parameters(memory, 8, t))
out["log"] = log
out["eval_action"] = agent.select_action(state, evaluate=True)
out["critic_target"] = dict(agent.critic_target.state_dict())
out["policy"] = dict(agent.policy.state_dict())
out["log_alpha"] = agent.log_alpha
