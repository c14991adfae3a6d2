# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# locuslab/TCN: TCN/tcn.py as written (Chomp1d, TemporalBlock with torch.nn.utils.weight_norm on
# dilated causal Conv1d layers, init_weights through .weight.data.normal_ -- which weight_norm's
# pre-forward hook recomputes away --, the 1x1 downsample residual, TemporalConvNet) and
# TCN/adding_problem (the model's linear head on the last step, data_generator, train with Adam,
# clip_grad_norm_, MSE, evaluate under no_grad), then the same network with the newer
# torch.nn.utils.parametrizations.weight_norm and a remove_weight_norm round trip.
# Dropout is 0 so both frameworks make the same forward passes.
weight_norm = torch.nn.utils.weight_norm  # from torch.nn.utils import weight_norm


class Chomp1d(nn.Module):
    def __init__(self, chomp_size):
        super(Chomp1d, self).__init__()
        self.chomp_size = chomp_size

    def forward(self, x):
        return x[:, :, :-self.chomp_size].contiguous()


class TemporalBlock(nn.Module):
    def __init__(self, n_inputs, n_outputs, kernel_size, stride, dilation, padding, dropout=0.2):
        super(TemporalBlock, self).__init__()
        self.conv1 = weight_norm(nn.Conv1d(n_inputs, n_outputs, kernel_size,
                                           stride=stride, padding=padding, dilation=dilation))
        self.chomp1 = Chomp1d(padding)
        self.relu1 = nn.ReLU()
        self.dropout1 = nn.Dropout(dropout)

        self.conv2 = weight_norm(nn.Conv1d(n_outputs, n_outputs, kernel_size,
                                           stride=stride, padding=padding, dilation=dilation))
        self.chomp2 = Chomp1d(padding)
        self.relu2 = nn.ReLU()
        self.dropout2 = nn.Dropout(dropout)

        self.net = nn.Sequential(self.conv1, self.chomp1, self.relu1, self.dropout1,
                                 self.conv2, self.chomp2, self.relu2, self.dropout2)
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
        self.relu = nn.ReLU()
        self.init_weights()

    def init_weights(self):
        self.conv1.weight.data.normal_(0, 0.01)
        self.conv2.weight.data.normal_(0, 0.01)
        if self.downsample is not None:
            self.downsample.weight.data.normal_(0, 0.01)

    def forward(self, x):
        out = self.net(x)
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class TemporalConvNet(nn.Module):
    def __init__(self, num_inputs, num_channels, kernel_size=2, dropout=0.2):
        super(TemporalConvNet, self).__init__()
        layers = []
        num_levels = len(num_channels)
        for i in range(num_levels):
            dilation_size = 2 ** i
            in_channels = num_inputs if i == 0 else num_channels[i-1]
            out_channels = num_channels[i]
            layers += [TemporalBlock(in_channels, out_channels, kernel_size, stride=1, dilation=dilation_size,
                                     padding=(kernel_size-1) * dilation_size, dropout=dropout)]

        self.network = nn.Sequential(*layers)

    def forward(self, x):
        return self.network(x)


class TCN(nn.Module):
    def __init__(self, input_size, output_size, num_channels, kernel_size, dropout):
        super(TCN, self).__init__()
        self.tcn = TemporalConvNet(input_size, num_channels, kernel_size=kernel_size, dropout=dropout)
        self.linear = nn.Linear(num_channels[-1], output_size)
        self.init_weights()

    def init_weights(self):
        self.linear.weight.data.normal_(0, 0.01)

    def forward(self, x):
        y1 = self.tcn(x)
        return self.linear(y1[:, :, -1])


def data_generator(N, seq_length, rng):
    """
    Args:
        seq_length: Length of the adding problem data
        N: # of data in the set
    """
    X_num = torch.from_numpy(rng.uniform(0, 1, (N, 1, seq_length)).astype(np.float32))  # torch.rand([N, 1, seq_length])
    X_mask = torch.zeros([N, 1, seq_length])
    Y = torch.zeros([N, 1])
    for i in range(N):
        positions = rng.choice(seq_length, size=2, replace=False)
        X_mask[i, 0, positions[0]] = 1
        X_mask[i, 0, positions[1]] = 1
        Y[i,0] = X_num[i, 0, positions[0]] + X_num[i, 0, positions[1]]
    X = torch.cat((X_num, X_mask), dim=1)
    return Variable(X), Variable(Y)


Variable = torch.autograd.Variable
rng = np.random.default_rng(0)
input_channels = 2
n_classes = 1
batch_size = 8
seq_length = 24
epochs = 2
channel_sizes = [6] * 3
kernel_size = 3
clip = 1.0
lr = 4e-3

X_train, Y_train = data_generator(32, seq_length, rng)
X_test, Y_test = data_generator(16, seq_length, rng)


def fill(model):
    with torch.no_grad():
        for k, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(k).normal(0, 0.3, tuple(p.shape)).astype(np.float32)))


def train(model, optimizer, epoch, log):
    model.train()
    batch_idx = 1
    total_loss = 0
    for i in range(0, X_train.size(0), batch_size):
        if i + batch_size > X_train.size(0):
            x, y = X_train[i:], Y_train[i:]
        else:
            x, y = X_train[i:(i+batch_size)], Y_train[i:(i+batch_size)]
        optimizer.zero_grad()
        output = model(x)
        loss = F.mse_loss(output, y)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        batch_idx += 1
        total_loss += loss.item()
        log.append(loss.item())


def evaluate(model):
    model.eval()
    with torch.no_grad():
        output = model(X_test)
        test_loss = F.mse_loss(output, Y_test)
        return test_loss.item()


torch.manual_seed(1111)
model = TCN(input_channels, n_classes, channel_sizes, kernel_size=kernel_size, dropout=0.0)
out["param_names"] = [n for n, _ in model.named_parameters()]
out["weight_g_shape"] = tuple(model.tcn.network[0].conv1.weight_g.shape)
fill(model)
optimizer = getattr(optim, "Adam")(model.parameters(), lr=lr)
log = []
for ep in range(1, epochs+1):
    train(model, optimizer, ep, log)
    out[f"test_loss{ep}"] = evaluate(model)
out["train_losses"] = log
out["conv1_weight"] = model.tcn.network[0].conv1.weight
out["params"] = {n: p.detach() for n, p in model.named_parameters()}
sd = model.state_dict()
out["state_keys"] = sorted(sd)

# the same network with the parametrization API, loaded from the old-style state_dict
weight_norm = torch.nn.utils.parametrizations.weight_norm
model2 = TCN(input_channels, n_classes, channel_sizes, kernel_size=kernel_size, dropout=0.0)
out["param_names2"] = [n for n, _ in model2.named_parameters()]
missing, unexpected = model2.load_state_dict(sd, strict=False)
out["load2"] = (sorted(missing), sorted(unexpected))
with torch.no_grad():
    for name, m in model2.named_modules():
        if hasattr(m, "parametrizations"):
            old = model.get_submodule(name)
            m.parametrizations.weight.original0.copy_(old.weight_g)
            m.parametrizations.weight.original1.copy_(old.weight_v)
out["same_output"] = bool(torch.allclose(model2(X_test), model(X_test), atol=1e-6))
optimizer2 = optim.Adam(model2.parameters(), lr=lr)
log2 = []
train(model2, optimizer2, 1, log2)
out["train_losses2"] = log2
out["original0_grad"] = model2.tcn.network[1].conv2.parametrizations.weight.original0.grad

# remove_weight_norm folds g * v / ||v|| back into a plain weight
block = model.tcn.network[2]
before = block(X_test[:, :, :] if block.conv1.in_channels == 2 else model.tcn.network[1](model.tcn.network[0](X_test)))
torch.nn.utils.remove_weight_norm(block.conv1)
torch.nn.utils.remove_weight_norm(block.conv2)
after = block(model.tcn.network[1](model.tcn.network[0](X_test)))
out["removed_names"] = [n for n, _ in block.named_parameters()]
out["removed_same"] = bool(torch.allclose(before, after, atol=1e-6))
