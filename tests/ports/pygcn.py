# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# tkipf/pygcn: layers.py, models.py, utils.py and train.py as written (GraphConvolution with
# Parameter(torch.FloatTensor(in, out)) initialised by .data.uniform_, torch.mm then torch.spmm
# with the sparse adjacency, the custom __repr__, GCN with F.dropout(training=self.training),
# encode_onehot, row normalization, sparse_mx_to_torch_sparse_tensor through the legacy
# torch.sparse.FloatTensor(indices, values, torch.Size(shape)), accuracy with
# max(1)[1].type_as / eq / double, and train/test with Adam + weight decay, nll_loss on index
# tensors). The Cora files are replaced by a random 40-node graph; scipy.sparse's normalization is
# done with numpy (the same matrices); dropout is 0 and the uniform_ init is re-drawn by numpy.
import math
import time

Parameter = nn.Parameter  # from torch.nn.parameter import Parameter
Module = nn.Module  # from torch.nn.modules.module import Module


class GraphConvolution(Module):
    """
    Simple GCN layer, similar to https://arxiv.org/abs/1609.02907
    """

    def __init__(self, in_features, out_features, bias=True):
        super(GraphConvolution, self).__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(torch.FloatTensor(in_features, out_features))
        if bias:
            self.bias = Parameter(torch.FloatTensor(out_features))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1. / math.sqrt(self.weight.size(1))
        self.weight.data.uniform_(-stdv, stdv)
        if self.bias is not None:
            self.bias.data.uniform_(-stdv, stdv)

    def forward(self, input, adj):
        support = torch.mm(input, self.weight)
        output = torch.spmm(adj, support)
        if self.bias is not None:
            return output + self.bias
        else:
            return output

    def __repr__(self):
        return self.__class__.__name__ + ' (' \
               + str(self.in_features) + ' -> ' \
               + str(self.out_features) + ')'


class GCN(nn.Module):
    def __init__(self, nfeat, nhid, nclass, dropout):
        super(GCN, self).__init__()

        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        x = F.dropout(x, self.dropout, training=self.training)
        x = self.gc2(x, adj)
        return F.log_softmax(x, dim=1)


def encode_onehot(labels):
    classes = set(labels)
    classes_dict = {c: np.identity(len(classes))[i, :] for i, c in
                    enumerate(sorted(classes))}
    labels_onehot = np.array(list(map(classes_dict.get, labels)),
                             dtype=np.int32)
    return labels_onehot


def normalize(mx):
    """Row-normalize sparse matrix"""
    rowsum = np.array(mx.sum(1))
    with np.errstate(divide="ignore"):
        r_inv = np.power(rowsum, -1).flatten()
    r_inv[np.isinf(r_inv)] = 0.
    r_mat_inv = np.diag(r_inv)  # sp.diags(r_inv)
    mx = r_mat_inv.dot(mx)
    return mx


def accuracy(output, labels):
    preds = output.max(1)[1].type_as(labels)
    correct = preds.eq(labels).double()
    correct = correct.sum()
    return correct / len(labels)


def sparse_mx_to_torch_sparse_tensor(sparse_mx):
    """Convert a scipy sparse matrix to a torch sparse tensor."""
    row, col = np.nonzero(sparse_mx)  # sparse_mx = sparse_mx.tocoo().astype(np.float32)
    data = sparse_mx[row, col].astype(np.float32)
    indices = torch.from_numpy(
        np.vstack((row, col)).astype(np.int64))
    values = torch.from_numpy(data)
    shape = torch.Size(sparse_mx.shape)
    return torch.sparse.FloatTensor(indices, values, shape)


def load_data(n=40, nfeat=12, seed=0):
    """A random graph in Cora's layout (features, string labels, an undirected edge list)."""
    rng = np.random.default_rng(seed)
    raw_features = (rng.uniform(size=(n, nfeat)) < 0.3).astype(np.float32)
    raw_labels = np.array(["Theory", "Neural_Networks", "Rule_Learning"])[rng.integers(0, 3, n)]
    labels = encode_onehot(list(raw_labels))
    edges = rng.integers(0, n, (60, 2))
    adj = np.zeros((n, n), dtype=np.float32)
    adj[edges[:, 0], edges[:, 1]] = 1
    # build symmetric adjacency matrix
    adj = adj + adj.T * (adj.T > adj) - adj * (adj.T > adj)
    features = normalize(raw_features)
    adj = normalize(adj + np.eye(adj.shape[0], dtype=np.float32))

    idx_train = range(14)
    idx_val = range(14, 27)
    idx_test = range(27, 40)

    features = torch.FloatTensor(np.array(features))
    labels = torch.LongTensor(np.where(labels)[1])
    adj = sparse_mx_to_torch_sparse_tensor(adj)

    idx_train = torch.LongTensor(idx_train)
    idx_val = torch.LongTensor(idx_val)
    idx_test = torch.LongTensor(idx_test)

    return adj, features, labels, idx_train, idx_val, idx_test


class args:
    seed, epochs, lr, weight_decay, hidden, dropout, fastmode = 42, 5, 0.01, 5e-4, 16, 0.0, False


np.random.seed(args.seed)
torch.manual_seed(args.seed)

# Load data
adj, features, labels, idx_train, idx_val, idx_test = load_data()
out["adj_dense"] = adj.to_dense()
out["adj_nnz"] = adj._nnz()
out["labels"] = labels

# Model and optimizer
model = GCN(nfeat=features.shape[1],
            nhid=args.hidden,
            nclass=labels.max().item() + 1,
            dropout=args.dropout)
out["repr"] = repr(model.gc1)
with torch.no_grad():
    for k, p in enumerate(model.parameters()):
        stdv = 1. / math.sqrt(p.shape[-1])
        p.copy_(torch.from_numpy(np.random.default_rng(k).uniform(-stdv, stdv, tuple(p.shape)).astype(np.float32)))
optimizer = optim.Adam(model.parameters(),
                       lr=args.lr, weight_decay=args.weight_decay)
log = []


def train(epoch):
    t = time.time()
    model.train()
    optimizer.zero_grad()
    output = model(features, adj)
    loss_train = F.nll_loss(output[idx_train], labels[idx_train])
    acc_train = accuracy(output[idx_train], labels[idx_train])
    loss_train.backward()
    if epoch == 0:
        out["grads0"] = [p.grad.clone() for p in model.parameters()]
    optimizer.step()

    if not args.fastmode:
        # Evaluate validation set performance separately,
        # deactivates dropout during validation run.
        model.eval()
        output = model(features, adj)

    loss_val = F.nll_loss(output[idx_val], labels[idx_val])
    acc_val = accuracy(output[idx_val], labels[idx_val])
    log.append((loss_train.item(), acc_train.item(), loss_val.item(), acc_val.item()))


def test():
    model.eval()
    output = model(features, adj)
    loss_test = F.nll_loss(output[idx_test], labels[idx_test])
    acc_test = accuracy(output[idx_test], labels[idx_test])
    out["test"] = (loss_test.item(), acc_test.item(), str(acc_test.dtype).split(".")[-1])


# Train model
for epoch in range(args.epochs):
    train(epoch)
out["log"] = log
test()
out["params"] = [p.detach() for p in model.parameters()]
