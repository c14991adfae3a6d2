# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples reinforcement_learning/reinforce.py with a hand-rolled balancing toy in place of
# gym's CartPole. Categorical comes from <framework>.distributions; m.sample() really runs (its
# draws differ between frameworks), and the action taken is the inverse-CDF pick of a numpy
# uniform, so both frameworks follow the same trajectory. Dropout is 0 (its masks would differ).
# The end is actor_critic.py's loss (namedtuple SavedAction, torch.tensor([R]) of a 0-d tensor,
# smooth_l1_loss, torch.stack(...).sum()).
from collections import deque

Categorical = torch.distributions.Categorical
gamma = 0.99
log_interval = 2


class ToyEnv:
    """A pole that falls towards its lean; action 1 pushes right, 0 left. Reward 1 per step."""
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def reset(self):
        self.s = self.rng.uniform(-0.05, 0.05, 4)
        self.t = 0
        return self.s.copy(), {}

    def step(self, action):
        x, v, th, w = self.s
        f = 1.0 if action == 1 else -1.0
        w = w + 0.1 * (np.sin(th) * 9.8 - f)
        th = th + 0.05 * w
        v = v + 0.05 * f
        x = x + 0.05 * v
        self.s = np.array([x, v, th, w])
        self.t += 1
        terminated = bool(abs(th) > 0.3 or abs(x) > 2.4)
        truncated = self.t >= 30
        return self.s.copy(), 1.0, terminated, truncated, {}


env = ToyEnv(0)
picks = np.random.default_rng(1)


class Policy(nn.Module):
    def __init__(self):
        super(Policy, self).__init__()
        self.affine1 = nn.Linear(4, 128)
        self.dropout = nn.Dropout(p=0.0)
        self.affine2 = nn.Linear(128, 2)

        self.saved_log_probs = []
        self.rewards = []

    def forward(self, x):
        x = self.affine1(x)
        x = self.dropout(x)
        x = F.relu(x)
        action_scores = self.affine2(x)
        return F.softmax(action_scores, dim=1)


policy = Policy()
with torch.no_grad():
    for i, p in enumerate(policy.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(30 + i).uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
optimizer = optim.Adam(policy.parameters(), lr=1e-2)
eps = np.finfo(np.float32).eps.item()
sample_checks = []


def select_action(state):
    state = torch.from_numpy(state).float().unsqueeze(0)
    probs = policy(state)
    m = Categorical(probs)
    action = m.sample()
    sample_checks.append((tuple(action.shape), str(action.dtype).split(".")[-1], 0 <= action.item() < 2))
    action = torch.tensor([int(picks.uniform() > probs[0, 0].item())])  # the same draw in both
    policy.saved_log_probs.append(m.log_prob(action))
    return action.item()


def finish_episode():
    R = 0
    policy_loss = []
    returns = deque()
    for r in policy.rewards[::-1]:
        R = r + gamma * R
        returns.appendleft(R)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + eps)
    for log_prob, R in zip(policy.saved_log_probs, returns):
        policy_loss.append(-log_prob * R)
    optimizer.zero_grad()
    terms = torch.cat(policy_loss)
    policy_loss = terms.sum()
    policy_loss.backward()
    optimizer.step()
    del policy.rewards[:]
    del policy.saved_log_probs[:]
    return terms.detach(), returns


running_reward = 10
log = []
for i_episode in range(1, 5):
    state, _ = env.reset()
    ep_reward = 0
    for t in range(1, 10000):  # Don't infinite loop while learning
        action = select_action(state)
        state, reward, terminated, truncated, _ = env.step(action)
        policy.rewards.append(reward)
        ep_reward += reward
        if terminated or truncated:
            break

    running_reward = 0.05 * ep_reward + (1 - 0.05) * running_reward
    terms, returns = finish_episode()
    log.append([t, ep_reward, running_reward])
    # The loss sums terms of both signs to about 0 (the returns are normalised): float32 rounding
    # of log_softmax differs by an ulp between the frameworks, so the terms are compared instead.
    out[f"returns{i_episode}"] = returns
    out[f"loss_terms{i_episode}"] = terms
out["log"] = log
out["sample_checks"] = sample_checks[:3] + [all(c == sample_checks[0] for c in sample_checks)]
out["params"] = [p.detach() for p in policy.parameters()]
probs = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
m = Categorical(probs)
out["entropy"] = m.entropy()
out["log_prob"] = m.log_prob(torch.tensor([1, 0]))
out["batch_shape"] = tuple(m.batch_shape)
out["sample_n_shape"] = tuple(m.sample((3,)).shape)
out["logits_probs"] = Categorical(logits=torch.log(probs)).probs

# ---------------------------------------------------------------- actor_critic.py's finish_episode
from collections import namedtuple
SavedAction = namedtuple('SavedAction', ['log_prob', 'value'])


class ActorCritic(nn.Module):
    def __init__(self):
        super(ActorCritic, self).__init__()
        self.affine1 = nn.Linear(4, 32)
        self.action_head = nn.Linear(32, 2)
        self.value_head = nn.Linear(32, 1)
        self.saved_actions = []
        self.rewards = []

    def forward(self, x):
        x = F.relu(self.affine1(x))
        action_prob = F.softmax(self.action_head(x), dim=-1)
        state_values = self.value_head(x)
        return action_prob, state_values


model = ActorCritic()
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(60 + i).uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
optimizer = optim.Adam(model.parameters(), lr=3e-2)
ac_log = []
for i_episode in range(3):
    state, _ = env.reset()
    for t in range(1, 10000):
        probs, state_value = model(torch.from_numpy(state).float())
        m = Categorical(probs)
        action = torch.tensor(int(picks.uniform() > probs[0].item()))
        model.saved_actions.append(SavedAction(m.log_prob(action), state_value))
        state, reward, done, truncated, _ = env.step(action.item())
        model.rewards.append(reward)
        if done or truncated:
            break
    R = 0
    saved_actions = model.saved_actions
    policy_losses = []  # list to save actor (policy) loss
    value_losses = []  # list to save critic (value) loss
    returns = []  # list to save the true values
    for r in model.rewards[::-1]:
        R = r + gamma * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + eps)
    for (log_prob, value), R in zip(saved_actions, returns):
        advantage = R - value.item()
        policy_losses.append(-log_prob * advantage)
        value_losses.append(F.smooth_l1_loss(value, torch.tensor([R])))
    optimizer.zero_grad()
    loss = torch.stack(policy_losses).sum() + torch.stack(value_losses).sum()
    loss.backward()
    optimizer.step()
    ac_log.append([t, torch.stack(value_losses).sum().item(), torch.stack(policy_losses).detach()])
    del model.rewards[:]
    del model.saved_actions[:]
out["ac_log"] = ac_log
out["ac_params"] = [p.detach() for p in model.parameters()]
