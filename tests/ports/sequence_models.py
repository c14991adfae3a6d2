# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# Part 1 follows pytorch/examples time_sequence_prediction (two LSTMCells over sine waves,
# float64, LBFGS, then predicting the future); part 2 is a character-level language model
# (Embedding -> 2-layer LSTM on a packed batch of variable-length words -> Linear).
rnn_utils = nn.utils.rnn  # import torch.nn.utils.rnn as rnn_utils (the harness binds names, not imports)

rng = np.random.default_rng(0)


def fill_(model, seed):
    """Deterministic weights, the same in both frameworks."""
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.tensor(np.random.default_rng(seed + i).uniform(-0.3, 0.3, tuple(p.shape))))


# ---------------------------------------------------------------- time_sequence_prediction
T, L, N = 20, 30, 6
x = np.empty((N, L), "int64")
x[:] = np.array(range(L)) + rng.integers(-4 * T, 4 * T, N).reshape(N, 1)
data = np.sin(x / 1.0 / T).astype("float64")
input = torch.from_numpy(data[2:, :-1])
target = torch.from_numpy(data[2:, 1:])
test_input = torch.from_numpy(data[:2, :-1])
test_target = torch.from_numpy(data[:2, 1:])


class Sequence(nn.Module):
    def __init__(self):
        super(Sequence, self).__init__()
        self.lstm1 = nn.LSTMCell(1, 12)
        self.lstm2 = nn.LSTMCell(12, 12)
        self.linear = nn.Linear(12, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), 12, dtype=torch.double)
        c_t = torch.zeros(input.size(0), 12, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), 12, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), 12, dtype=torch.double)

        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for i in range(future):  # if we should predict the future
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        outputs = torch.cat(outputs, dim=1)
        return outputs


seq = Sequence()
seq.double()
fill_(seq, 100)
criterion = nn.MSELoss()
optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=4)
losses = []
for i in range(2):
    def closure():
        optimizer.zero_grad()
        out = seq(input)
        loss = criterion(out, target)
        losses.append(loss.item())
        loss.backward()
        return loss
    optimizer.step(closure)
    with torch.no_grad():
        future = 5
        pred = seq(test_input, future=future)
        loss = criterion(pred[:, :-future], test_target)
        losses.append(loss.item())
        y = pred.detach().numpy()
out["sine_losses"] = losses
out["sine_prediction"] = y
out["sine_params"] = [p.detach() for p in seq.parameters()]

# ---------------------------------------------------------------- char-level language model
words = ["tensor", "tape", "grad", "lstm", "gru", "packed", "seq", "rnn"]
chars = sorted(set("".join(words)))
stoi = {c: i + 1 for i, c in enumerate(chars)}  # 0 is padding
V = len(chars) + 1


class CharLM(nn.Module):
    def __init__(self, vocab, emb=6, hidden=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb, padding_idx=0)
        self.rnn = nn.LSTM(emb, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens, lengths):
        packed = rnn_utils.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
        output, (h_n, c_n) = self.rnn(packed)
        padded, _ = rnn_utils.pad_packed_sequence(output, batch_first=True, total_length=tokens.size(1))
        return self.head(padded), h_n


seqs = [torch.tensor([stoi[c] for c in w]) for w in words]
lengths = [len(w) - 1 for w in words]
batch = rnn_utils.pad_sequence(seqs, batch_first=True)
inputs, targets = batch[:, :-1], batch[:, 1:]
model = CharLM(V)
fill_(model, 200)
opt = optim.Adam(model.parameters(), lr=0.02)
lm_losses = []
for step in range(6):
    opt.zero_grad()
    logits, h_n = model(inputs, lengths)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=0)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    lm_losses.append(loss.item())
out["lm_losses"] = lm_losses
out["lm_h_n"] = h_n
out["lm_state_keys"] = list(model.state_dict().keys())
model.eval()
with torch.no_grad():
    logits, _ = model(inputs[:1], [len(words[0]) - 1])
out["lm_next_chars"] = logits.argmax(-1)
