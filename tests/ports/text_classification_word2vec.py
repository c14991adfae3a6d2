# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# Part 1: the "Text classification with the torchtext library" tutorial
# (text_sentiment_ngrams_tutorial.py) as written, on a tiny made-up AG_NEWS: a vocabulary with
# '<unk>' as default index (torchtext's build_vocab_from_iterator written out), collate_batch
# building one flat int64 text tensor plus offsets by torch.tensor(offsets[:-1]).cumsum(dim=0),
# TextClassificationModel over nn.EmbeddingBag(text, offsets) + Linear initialised through
# .data.uniform_ / .data.zero_(), CrossEntropyLoss, clip_grad_norm_(0.1), SGD with StepLR(1.0,
# gamma=0.1) stepped only when validation accuracy drops, random_split lengths, predict() with
# offsets torch.tensor([0]).
# Part 2: Adoni/word2vec_pytorch's SkipGramModel as written (u/v nn.Embedding(sparse=True),
# init.uniform_ / init.constant_, torch.mul(...).sum(dim=1), torch.clamp, -F.logsigmoid, bmm of
# the negatives against unsqueeze(2), squeeze) with lr_scheduler.CosineAnnealingLR; the unigram^0.75
# negative table is numpy's, as in the original. The original's optim.SparseAdam is optim.SGD here
# (which takes sparse gradients too): tapegrad's Embedding(sparse=True) gives dense gradients.
from torch.utils.data import random_split

rng = np.random.default_rng(21)
device = torch.device("cpu")
words = ["stocks", "market", "team", "game", "win", "bank", "shares", "coach", "season", "profit",
         "score", "rates", "player", "trade", "league", "oil"]
topic_words = [[0, 1, 5, 6, 9, 11, 13, 15], [2, 3, 4, 7, 8, 10, 12, 14]]
train_iter = []
for i in range(48):
    label = int(rng.integers(1, 3))
    n = int(rng.integers(3, 9))
    ws = [words[j] for j in rng.choice(topic_words[label - 1], n)] + (["zzz"] if i % 7 == 0 else [])
    train_iter.append((label, " ".join(ws)))


def tokenizer(s):
    return s.lower().split()


class Vocab:  # torchtext.vocab.build_vocab_from_iterator(..., specials=["<unk>"]) + set_default_index
    def __init__(self, iterator, specials):
        counts = {}
        for toks in iterator:
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
        self.itos = list(specials) + sorted(counts, key=lambda t: (-counts[t], t))
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.default = None

    def set_default_index(self, i):
        self.default = i

    def __call__(self, tokens):
        return [self.stoi.get(t, self.default) for t in tokens]

    def __len__(self):
        return len(self.itos)


def yield_tokens(data_iter):
    for _, text in data_iter:
        yield tokenizer(text)


vocab = Vocab(yield_tokens(train_iter[:40]), specials=["<unk>"])
vocab.set_default_index(vocab.stoi["<unk>"])
text_pipeline = lambda x: vocab(tokenizer(x))  # noqa: E731
label_pipeline = lambda x: int(x) - 1  # noqa: E731
out["pipeline"] = [text_pipeline("stocks market zzz"), label_pipeline("2")]


def collate_batch(batch):
    label_list, text_list, offsets = [], [], [0]
    for _label, _text in batch:
        label_list.append(label_pipeline(_label))
        processed_text = torch.tensor(text_pipeline(_text), dtype=torch.int64)
        text_list.append(processed_text)
        offsets.append(processed_text.size(0))
    label_list = torch.tensor(label_list, dtype=torch.int64)
    offsets = torch.tensor(offsets[:-1]).cumsum(dim=0)
    text_list = torch.cat(text_list)
    return label_list.to(device), text_list.to(device), offsets.to(device)


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size, embed_dim, num_class):
        super(TextClassificationModel, self).__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, sparse=False)
        self.fc = nn.Linear(embed_dim, num_class)
        self.init_weights()

    def init_weights(self):
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text, offsets):
        embedded = self.embedding(text, offsets)
        return self.fc(embedded)


num_class = len(set([label for (label, text) in train_iter]))
vocab_size = len(vocab)
emsize = 8
model = TextClassificationModel(vocab_size, emsize, num_class).to(device)
out["init_ranges"] = [bool(model.embedding.weight.abs().max() <= 0.5), bool((model.fc.bias == 0).all())]
with torch.no_grad():  # the same weights in both frameworks
    model.embedding.weight.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, (vocab_size, emsize)).astype(np.float32)))
    model.fc.weight.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, (num_class, emsize)).astype(np.float32)))


def train(dataloader):
    model.train()
    total_acc, total_count = 0, 0
    for idx, (label, text, offsets) in enumerate(dataloader):
        optimizer.zero_grad()
        predicted_label = model(text, offsets)
        loss = criterion(predicted_label, label)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        total_acc += (predicted_label.argmax(1) == label).sum().item()
        total_count += label.size(0)
        log.append(loss.item())
    return total_acc / total_count


def evaluate(dataloader):
    model.eval()
    total_acc, total_count = 0, 0
    with torch.no_grad():
        for idx, (label, text, offsets) in enumerate(dataloader):
            predicted_label = model(text, offsets)
            loss = criterion(predicted_label, label)
            total_acc += (predicted_label.argmax(1) == label).sum().item()
            total_count += label.size(0)
    return total_acc / total_count


EPOCHS, LR, BATCH_SIZE = 4, 5, 8
criterion = torch.nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=LR)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.1)
total_accu = None
train_dataset = list(train_iter[:40])
test_dataset = list(train_iter[40:])
num_train = int(len(train_dataset) * 0.95)
split_train_, split_valid_ = random_split(train_dataset, [num_train, len(train_dataset) - num_train])
out["split_lengths"] = [len(split_train_), len(split_valid_)]
out["split_cover"] = sorted(list(split_train_.indices) + list(split_valid_.indices)) == list(range(40))
# random_split draws from each framework's own generator: train on a fixed split instead
split_train_, split_valid_ = train_dataset[:32], train_dataset[32:]
train_dataloader = DataLoader(split_train_, batch_size=BATCH_SIZE, shuffle=False, collate_fn=collate_batch)
valid_dataloader = DataLoader(split_valid_, batch_size=BATCH_SIZE, shuffle=False, collate_fn=collate_batch)
test_dataloader = DataLoader(test_dataset, batch_size=BATCH_SIZE, shuffle=False, collate_fn=collate_batch)
log, accs = [], []
for epoch in range(1, EPOCHS + 1):
    accs.append(train(train_dataloader))
    accu_val = evaluate(valid_dataloader)
    if total_accu is not None and total_accu > accu_val:
        scheduler.step()
    else:
        total_accu = accu_val
    accs.append(accu_val)
    accs.append(scheduler.get_last_lr()[0])
out["log"] = log
out["accs"] = accs
out["test_acc"] = evaluate(test_dataloader)
ag_news_label = {1: "World", 2: "Sports"}


def predict(text, text_pipeline):
    with torch.no_grad():
        text = torch.tensor(text_pipeline(text))
        output = model(text, torch.tensor([0]))
        return output.argmax(1).item() + 1


out["predict"] = ag_news_label[predict("the team won the game this season", text_pipeline)]
out["weights"] = dict(model.state_dict())
# the EmbeddingBag modes on the same bags
bag_text, bag_off = collate_batch(train_iter[:3])[1:]
for mode in ("sum", "max"):
    eb = nn.EmbeddingBag.from_pretrained(model.embedding.weight.detach(), mode=mode, freeze=False)
    r = eb(bag_text, bag_off)
    r.pow(2).sum().backward()
    out["bag_" + mode] = [r, eb.weight.grad]
psw = torch.linspace(0.5, 1.5, bag_text.numel())
out["bag_psw"] = nn.functional.embedding_bag(bag_text, model.embedding.weight, bag_off, mode="sum",
                                             per_sample_weights=psw)


# ------------------------------------------------------------------ part 2: skip-gram word2vec
class SkipGramModel(nn.Module):

    def __init__(self, emb_size, emb_dimension):
        super(SkipGramModel, self).__init__()
        self.emb_size = emb_size
        self.emb_dimension = emb_dimension
        self.u_embeddings = nn.Embedding(emb_size, emb_dimension, sparse=True)
        self.v_embeddings = nn.Embedding(emb_size, emb_dimension, sparse=True)

        initrange = 1.0 / self.emb_dimension
        nn.init.uniform_(self.u_embeddings.weight.data, -initrange, initrange)
        nn.init.constant_(self.v_embeddings.weight.data, 0)

    def forward(self, pos_u, pos_v, neg_v):
        emb_u = self.u_embeddings(pos_u)
        emb_v = self.v_embeddings(pos_v)
        emb_neg_v = self.v_embeddings(neg_v)

        score = torch.sum(torch.mul(emb_u, emb_v), dim=1)
        score = torch.clamp(score, max=10, min=-10)
        score = -F.logsigmoid(score)

        neg_score = torch.bmm(emb_neg_v, emb_u.unsqueeze(2)).squeeze()
        neg_score = torch.clamp(neg_score, max=10, min=-10)
        neg_score = -torch.sum(F.logsigmoid(-neg_score), dim=1)

        return torch.mean(score + neg_score)


corpus = [vocab(tokenizer(t)) for _, t in train_iter]
freq = np.bincount(np.concatenate(corpus), minlength=vocab_size).astype(np.float64)
pow_frequency = freq ** 0.75
ratio = pow_frequency / pow_frequency.sum()
negatives = np.repeat(np.arange(vocab_size), np.round(ratio * 1000).astype(np.int64))
rng.shuffle(negatives)
pairs = [(s[i], s[j]) for s in corpus for i in range(len(s)) for j in range(max(0, i - 2), min(len(s), i + 3)) if i != j]
skip_gram_model = SkipGramModel(vocab_size, 6)
out["v_zero"] = bool((skip_gram_model.v_embeddings.weight == 0).all())
out["u_range"] = bool(skip_gram_model.u_embeddings.weight.abs().max() <= 1 / 6)
with torch.no_grad():
    skip_gram_model.u_embeddings.weight.copy_(torch.from_numpy(rng.uniform(-1 / 6, 1 / 6, (vocab_size, 6))
                                                               .astype(np.float32)))
optimizer = optim.SGD(list(skip_gram_model.parameters()), lr=0.5)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 6)
w2v_log = []
for epoch in range(2):
    for i in range(0, 96, 32):
        batch = pairs[i:i + 32]
        pos_u = torch.LongTensor([u for u, _ in batch]).to(device)
        pos_v = torch.LongTensor([v for _, v in batch]).to(device)
        neg_v = torch.from_numpy(negatives[rng.integers(0, len(negatives), (len(batch), 5))]).to(device)
        optimizer.zero_grad()
        loss = skip_gram_model.forward(pos_u, pos_v, neg_v)
        loss.backward()
        if i == 0 and epoch == 0:
            g = skip_gram_model.u_embeddings.weight.grad
            out["sparse_grad"] = g.to_dense()
        optimizer.step()
        scheduler.step()
        w2v_log.append([loss.item(), scheduler.get_last_lr()[0]])
out["w2v_log"] = w2v_log
out["w2v_emb"] = skip_gram_model.u_embeddings.weight.cpu().data
