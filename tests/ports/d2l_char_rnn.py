# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# Part 1: Dive into Deep Learning's softmax-regression / MLP chapter utilities as the d2l package
# writes them for PyTorch (Accumulator, accuracy with argmax(axis=1) and .type(y.dtype),
# evaluate_accuracy with isinstance(net, torch.nn.Module), train_epoch_ch3 for both a built-in
# optimizer and a custom updater, init_weights applied with net.apply, reduction='none' losses,
# and the from-scratch softmax / sgd / cross_entropy). Part 2: the "Classifying Names with a
# Character-Level RNN" tutorial (a hand-written RNN module of two Linears, one-hot line tensors
# filled by indexing, step-by-step hidden state, NLLLoss, the manual update
# p.data.add_(p.grad.data, alpha=-lr), topk to name the category).
import string
import unicodedata


# ---------------------------------------------------------------- d2l
class Accumulator:  #@save
    """For accumulating sums over `n` variables."""
    def __init__(self, n):
        self.data = [0.0] * n

    def add(self, *args):
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def reset(self):
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx):
        return self.data[idx]


def accuracy(y_hat, y):  #@save
    """Compute the number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def evaluate_accuracy(net, data_iter):  #@save
    """Compute the accuracy for a model on a dataset."""
    if isinstance(net, torch.nn.Module):
        net.eval()  # Set the model to evaluation mode
    metric = Accumulator(2)  # No. of correct predictions, no. of predictions
    with torch.no_grad():
        for X, y in data_iter:
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def train_epoch_ch3(net, train_iter, loss, updater):  #@save
    """The training loop defined in Chapter 3."""
    # Set the model to training mode
    if isinstance(net, torch.nn.Module):
        net.train()
    # Sum of training loss, sum of training accuracy, no. of examples
    metric = Accumulator(3)
    for X, y in train_iter:
        # Compute gradients and update parameters
        y_hat = net(X)
        l = loss(y_hat, y)
        if isinstance(updater, torch.optim.Optimizer):
            # Using PyTorch in-built optimizer & loss criterion
            updater.zero_grad()
            l.mean().backward()
            updater.step()
        else:
            # Using custom built optimizer & loss criterion
            l.sum().backward()
            updater(X.shape[0])
        metric.add(float(l.sum()), accuracy(y_hat, y), y.numel())
    # Return training loss and training accuracy
    return metric[0] / metric[2], metric[1] / metric[2]


def load_array(data_arrays, batch_size, is_train=True):  #@save
    """Construct a PyTorch data iterator."""
    dataset = torch.utils.data.TensorDataset(*data_arrays)
    return torch.utils.data.DataLoader(dataset, batch_size, shuffle=is_train)


rng = np.random.default_rng(0)
features = torch.tensor(rng.standard_normal((60, 1, 4, 4)), dtype=torch.float32)
labels = torch.tensor(rng.integers(0, 5, 60))
train_iter = load_array((features[:40], labels[:40]), 10, is_train=False)
test_iter = load_array((features[40:], labels[40:]), 10, is_train=False)

# concise implementation
net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))


def init_weights(m):
    if type(m) == nn.Linear:
        nn.init.normal_(m.weight, std=0.01)


net.apply(init_weights)
with torch.no_grad():
    for i, p in enumerate(net.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).normal(0, 0.3, tuple(p.shape)).astype(np.float32)))
loss = nn.CrossEntropyLoss(reduction='none')
trainer = torch.optim.SGD(net.parameters(), lr=0.1)
hist = []
for epoch in range(3):
    train_metrics = train_epoch_ch3(net, train_iter, loss, trainer)
    hist.append([*train_metrics, evaluate_accuracy(net, test_iter)])
out["concise"] = hist

# from scratch
num_inputs, num_outputs = 16, 5
W = torch.normal(0, 0.01, size=(num_inputs, num_outputs), requires_grad=True)
b = torch.zeros(num_outputs, requires_grad=True)
with torch.no_grad():
    W.copy_(torch.from_numpy(np.random.default_rng(9).normal(0, 0.1, (16, 5)).astype(np.float32)))


def softmax(X):
    X_exp = torch.exp(X)
    partition = X_exp.sum(1, keepdim=True)
    return X_exp / partition  # The broadcasting mechanism is applied here


def net_scratch(X):
    return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)


def cross_entropy(y_hat, y):
    return - torch.log(y_hat[range(len(y_hat)), y])


def sgd(params, lr, batch_size):  #@save
    """Minibatch stochastic gradient descent."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def updater(batch_size):
    return sgd([W, b], 0.1, batch_size)


hist = []
for epoch in range(3):
    train_metrics = train_epoch_ch3(net_scratch, train_iter, cross_entropy, updater)
    hist.append([*train_metrics, evaluate_accuracy(net_scratch, test_iter)])
out["scratch"] = hist
out["scratch_W"] = W
out["normal_shape"] = list(torch.normal(0, 1, size=(2, 3)).shape)

# ---------------------------------------------------------------- char_rnn_classification_tutorial
all_letters = string.ascii_letters + " .,;'"
n_letters = len(all_letters)


def unicodeToAscii(s):
    return ''.join(
        c for c in unicodedata.normalize('NFD', s)
        if unicodedata.category(c) != 'Mn'
        and c in all_letters
    )


category_lines = {"English": ["Smith", "Jones", "Brown"], "French": ["Bélanger", "Dubois", "Lefèvre"],
                  "Italian": ["Rossi", "Bianchi", "Romano"]}
category_lines = {k: [unicodeToAscii(n) for n in v] for k, v in category_lines.items()}
all_categories = list(category_lines)
n_categories = len(all_categories)


# Find letter index from all_letters, e.g. "a" = 0
def letterToIndex(letter):
    return all_letters.find(letter)


# Just for demonstration, turn a letter into a <1 x n_letters> Tensor
def letterToTensor(letter):
    tensor = torch.zeros(1, n_letters)
    tensor[0][letterToIndex(letter)] = 1
    return tensor


# Turn a line into a <line_length x 1 x n_letters>,
# or an array of one-hot letter vectors
def lineToTensor(line):
    tensor = torch.zeros(len(line), 1, n_letters)
    for li, letter in enumerate(line):
        tensor[li][0][letterToIndex(letter)] = 1
    return tensor


out["letter"] = letterToTensor('J')
out["line_shape"] = list(lineToTensor('Jones').size())
out["line_sum"] = lineToTensor('Jones').sum((1, 2))


class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super(RNN, self).__init__()

        self.hidden_size = hidden_size

        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        hidden = self.i2h(combined)
        output = self.i2o(combined)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self):
        return torch.zeros(1, self.hidden_size)


n_hidden = 32
rnn = RNN(n_letters, n_hidden, n_categories)
with torch.no_grad():
    for i, p in enumerate(rnn.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).uniform(-0.1, 0.1, tuple(p.shape)).astype(np.float32)))


def categoryFromOutput(output):
    top_n, top_i = output.topk(1)
    category_i = top_i[0].item()
    return all_categories[category_i], category_i


criterion = nn.NLLLoss()
learning_rate = 0.005 # If you set this too high, it might explode. If too low, it might not learn


def train(category_tensor, line_tensor):
    hidden = rnn.initHidden()

    rnn.zero_grad()

    for i in range(line_tensor.size()[0]):
        output, hidden = rnn(line_tensor[i], hidden)

    loss = criterion(output, category_tensor)
    loss.backward()

    # Add parameters' gradients to their values, multiplied by learning rate
    for p in rnn.parameters():
        p.data.add_(p.grad.data, alpha=-learning_rate)

    return output, loss.item()


order = np.random.default_rng(3).integers(0, 9, 24)
examples = [(c, l) for c in all_categories for l in category_lines[c]]
losses = []
for k in order:
    category, line = examples[k]
    category_tensor = torch.tensor([all_categories.index(category)], dtype=torch.long)
    line_tensor = lineToTensor(line)
    output, loss = train(category_tensor, line_tensor)
    losses.append(loss)
out["rnn_losses"] = losses
out["guess"] = categoryFromOutput(output)


def evaluate(line_tensor):
    hidden = rnn.initHidden()

    for i in range(line_tensor.size()[0]):
        output, hidden = rnn(line_tensor[i], hidden)

    return output


with torch.no_grad():
    output = evaluate(lineToTensor("Dubois"))
    topv, topi = output.topk(3, 1, True)
    out["predict"] = [[topv[0][i].item(), all_categories[topi[0][i].item()]] for i in range(3)]
