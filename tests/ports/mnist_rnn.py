# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples mnist_rnn/main.py: an LSTM reads the image row by row (batch_first), its last
# output goes through BatchNorm1d, Dropout2d on a 2-D input (channel-wise: whole rows), two Linear
# layers and log_softmax; Adadelta with StepLR, train()/test() as written, on 8x8 fake digits.
# The compared run sets the dropouts' p to 0; a p=0.5 pass checks Dropout2d's structure.
StepLR = optim.lr_scheduler.StepLR  # from torch.optim.lr_scheduler import StepLR
S = 8


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.rnn = nn.LSTM(input_size=S, hidden_size=16, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(16)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(16, 12)
        self.fc2 = nn.Linear(12, 10)

    def forward(self, input):
        # Shape of input is (batch_size,1, 28, 28)
        # converting shape of input to (batch_size, 28, 28)
        # as required by RNN when batch_first is set True
        input = input.reshape(-1, S, S)
        output, hidden = self.rnn(input)

        # RNN output shape is (seq_len, batch, input_size)
        # Get last output of RNN
        output = output[:, -1, :]
        output = self.batchnorm(output)
        output = self.dropout1(output)
        output = self.fc1(output)
        output = F.relu(output)
        output = self.dropout2(output)
        output = self.fc2(output)
        output = F.log_softmax(output, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch, log):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args["log_interval"] == 0:
            log.append([epoch, batch_idx * len(data), len(train_loader.dataset),
                        100. * batch_idx / len(train_loader), loss.item()])


def test(args, model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)
    return [test_loss, correct, 100. * correct / len(test_loader.dataset)]


rng = np.random.default_rng(0)
images = rng.normal(0, 1, (40, 1, S, S)).astype(np.float32)
labels = rng.integers(0, 10, 40)
images[np.arange(40), 0, labels % S, :] += 2.0  # a learnable hint: the bright row is the label
train_set = TensorDataset(torch.from_numpy(images[:32]), torch.from_numpy(labels[:32]))
test_set = TensorDataset(torch.from_numpy(images[32:]), torch.tensor(labels[32:]))
args = {"batch_size": 8, "test_batch_size": 4, "epochs": 3, "lr": 0.1, "gamma": 0.7, "log_interval": 2}
device = torch.device("cpu")
train_loader = DataLoader(train_set, batch_size=args["batch_size"], shuffle=False)
test_loader = DataLoader(test_set, batch_size=args["test_batch_size"], shuffle=False)

torch.manual_seed(1)
model = Net().to(device)
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
model.dropout1.p = model.dropout2.p = 0.0
optimizer = optim.Adadelta(model.parameters(), lr=args["lr"])

scheduler = StepLR(optimizer, step_size=1, gamma=args["gamma"])
log, tests = [], []
for epoch in range(1, args["epochs"] + 1):
    train(args, model, device, train_loader, optimizer, epoch, log)
    tests.append(test(args, model, device, test_loader))
    scheduler.step()
out["log"] = log
out["tests"] = tests
out["lr"] = scheduler.get_last_lr()
out["running_mean"] = model.batchnorm.running_mean
out["running_var"] = model.batchnorm.running_var
out["num_batches_tracked"] = model.batchnorm.num_batches_tracked
out["lstm_grad"] = model.rnn.weight_hh_l0.grad
out["state_keys"] = list(model.state_dict().keys())

# Dropout2d on (N, C): the input is taken as one unbatched (C=N, L=C) map, so each row is kept
# (scaled by 1/(1-p)) or zeroed as a whole
drop = nn.Dropout2d(0.5)
y = drop(torch.ones(64, 6))
rows = y.sum(1)
out["dropout2d_rows_whole"] = bool(((rows == 0) | (rows == 12)).all())
out["dropout2d_shape"] = list(y.shape)
