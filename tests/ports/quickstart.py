# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
rng = np.random.default_rng(0)
X_train = torch.from_numpy(rng.random((256, 1, 28, 28), dtype=np.float32))
y_train = torch.from_numpy(rng.integers(0, 10, 256))
X_test = torch.from_numpy(rng.random((64, 1, 28, 28), dtype=np.float32))
y_test = torch.from_numpy(rng.integers(0, 10, 64))
training_data = TensorDataset(X_train, y_train)
test_data = TensorDataset(X_test, y_test)
batch_size = 64
train_dataloader = DataLoader(training_data, batch_size=batch_size)
test_dataloader = DataLoader(test_data, batch_size=batch_size)
for X, y in test_dataloader:
    out["X_shape"] = tuple(X.shape)
    out["y_shape_dtype"] = (tuple(y.shape), str(y.dtype).split(".")[-1])
    break
out["len_loader"] = len(train_dataloader)
out["len_ds"] = len(training_data)
out["ds_item"] = training_data[3][1]
device = (
    "cuda" if torch.cuda.is_available()
    else "mps" if torch.backends.mps.is_available()
    else "cpu"
)
out["device"] = device

class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28*28, 64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, 10)
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits

model = NeuralNetwork().to(device)
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).uniform(-0.05, 0.05, tuple(p.shape)).astype(np.float32)))
out["param_names"] = [n for n, _ in model.named_parameters()]
out["param_shapes"] = [tuple(p.shape) for p in model.parameters()]
out["n_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
out["children"] = [type(m).__name__ for m in model.children()]
out["modules"] = [type(m).__name__ for m in model.modules()]
out["stack0"] = type(model.linear_relu_stack[0]).__name__
out["stack_slice_len"] = len(model.linear_relu_stack[:3])
out["repr"] = repr(model).replace("tapegrad", "torch")
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
losses = []
def train(dataloader, model, loss_fn, optimizer):
    size = len(dataloader.dataset)
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        X, y = X.to(device), y.to(device)
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss, current = loss.item(), (batch + 1) * len(X)
        losses.append(loss)

def test(dataloader, model, loss_fn):
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            X, y = X.to(device), y.to(device)
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    test_loss /= num_batches
    correct /= size
    return test_loss, correct

epochs = 3
for t in range(epochs):
    train(train_dataloader, model, loss_fn, optimizer)
    out[f"test{t}"] = test(test_dataloader, model, loss_fn)
out["losses"] = losses
torch.save(model.state_dict(), tmpdir + "/model.pth")
model2 = NeuralNetwork().to(device)
res = model2.load_state_dict(torch.load(tmpdir + "/model.pth", weights_only=True))
out["load_res"] = (list(res.missing_keys), list(res.unexpected_keys))
out["sd_keys"] = list(model2.state_dict().keys())
model2.eval()
x = X_test[0:2]
with torch.no_grad():
    pred = model2(x)
    out["pred"] = pred
    out["pred_cls"] = pred[0].argmax(0)
    out["softmax"] = nn.Softmax(dim=1)(pred)
