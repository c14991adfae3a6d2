# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# PyTorch Geometric's building blocks as its pure-PyTorch fallbacks write them: utils/scatter.py's
# scatter (src.new_zeros(size).scatter_add_(dim, index.view(-1, 1).expand_as(src), src) for sum and
# mean with a clamp(min=1) count, scatter_reduce_(..., include_self=False) for max/min), add_self_loops
# by torch.arange + torch.cat, degree via scatter_add_ on ones, the "Creating Message Passing
# Networks" tutorial's GCNConv (deg.pow(-0.5) with inf masked to 0, norm.view(-1, 1) * x_j over
# x.index_select(0, row), aggregation by index_add_), a GraphSAGE mean/max layer, global_mean_pool
# and global_max_pool over a batch vector, trained on a two-graph toy classification with Adam.
rng = np.random.default_rng(17)


def scatter(src, index, dim=0, dim_size=None, reduce='sum'):
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() > 0 else 0
    size = list(src.size())
    size[dim] = dim_size
    index = index.view(-1, 1).expand_as(src) if src.dim() == 2 else index
    if reduce == 'sum' or reduce == 'add':
        return src.new_zeros(size).scatter_add_(dim, index, src)
    if reduce == 'mean':
        count = src.new_zeros(dim_size)
        count.scatter_add_(0, index[:, 0] if src.dim() == 2 else index, src.new_ones(src.size(dim)))
        count = count.clamp(min=1)
        out = src.new_zeros(size).scatter_add_(dim, index, src)
        return out / count.view(-1, 1) if src.dim() == 2 else out / count
    if reduce == 'max' or reduce == 'min':
        return src.new_zeros(size).scatter_reduce_(dim, index, src, reduce='a' + reduce, include_self=False)
    raise ValueError(f"Encountered invalid `reduce` argument '{reduce}'")


def add_self_loops(edge_index, num_nodes):
    loop_index = torch.arange(0, num_nodes, dtype=torch.long, device=edge_index.device)
    loop_index = loop_index.unsqueeze(0).repeat(2, 1)
    return torch.cat([edge_index, loop_index], dim=1)


def degree(index, num_nodes, dtype):
    out = torch.zeros((num_nodes, ), dtype=dtype, device=index.device)
    one = torch.ones((index.size(0), ), dtype=out.dtype, device=out.device)
    return out.scatter_add_(0, index, one)


class GCNConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self):
        self.lin.reset_parameters()
        self.bias.data.zero_()

    def forward(self, x, edge_index):
        # Step 1: Add self-loops to the adjacency matrix.
        edge_index = add_self_loops(edge_index, num_nodes=x.size(0))
        # Step 2: Linearly transform node feature matrix.
        x = self.lin(x)
        # Step 3: Compute normalization.
        row, col = edge_index
        deg = degree(col, x.size(0), dtype=x.dtype)
        deg_inv_sqrt = deg.pow(-0.5)
        deg_inv_sqrt[deg_inv_sqrt == float('inf')] = 0
        norm = deg_inv_sqrt[row] * deg_inv_sqrt[col]
        # Step 4-5: Start propagating messages.
        x_j = x.index_select(0, row)
        msg = norm.view(-1, 1) * x_j
        out = torch.zeros_like(x).index_add_(0, col, msg)
        # Step 6: Apply a final bias vector.
        out = out + self.bias
        return out


class SAGEConv(nn.Module):
    def __init__(self, in_channels, out_channels, aggr='mean'):
        super().__init__()
        self.aggr = aggr
        self.lin_l = nn.Linear(in_channels, out_channels)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x, edge_index):
        row, col = edge_index[0], edge_index[1]
        agg = scatter(x[row], col, 0, dim_size=x.size(0), reduce=self.aggr)
        out = self.lin_l(agg) + self.lin_r(x)
        return F.normalize(out, p=2., dim=-1)


def global_mean_pool(x, batch, size=None):
    return scatter(x, batch, dim=0, dim_size=size, reduce='mean')


def global_max_pool(x, batch, size=None):
    return scatter(x, batch, dim=0, dim_size=size, reduce='max')


class Net(nn.Module):
    def __init__(self, num_features, hidden, num_classes):
        super().__init__()
        self.conv1 = GCNConv(num_features, hidden)
        self.conv2 = SAGEConv(hidden, hidden, aggr='max')
        self.conv3 = SAGEConv(hidden, hidden, aggr='mean')
        self.lin = nn.Linear(2 * hidden, num_classes)

    def forward(self, x, edge_index, batch):
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.5, training=False)
        x = F.relu(self.conv2(x, edge_index))
        x = self.conv3(x, edge_index)
        x = torch.cat([global_mean_pool(x, batch), global_max_pool(x, batch)], dim=1)
        return F.log_softmax(self.lin(x), dim=1)


def make_graphs(n_graphs):
    xs, eis, bs, ys, off = [], [], [], [], 0
    for g in range(n_graphs):
        n = int(rng.integers(4, 8))
        y = g % 2
        src = rng.integers(0, n, 2 * n)
        dst = (src + 1 + (rng.integers(0, n - 1, 2 * n) if y else 0)) % n
        ei = np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]) + off
        xs.append(rng.standard_normal((n, 3)) + y)
        eis.append(ei)
        bs.append(np.full(n, g))
        ys.append(y)
        off += n
    isolated = np.zeros((1, 3))  # a node with no edges: degree 1 after the self loop, empty in SAGE
    return (torch.tensor(np.concatenate(xs + [isolated]), dtype=torch.float32),
            torch.from_numpy(np.concatenate(eis, 1)), torch.from_numpy(np.concatenate(bs + [[n_graphs - 1]])),
            torch.tensor(ys))


x, edge_index, batch, y = make_graphs(6)
out["degree"] = degree(add_self_loops(edge_index, x.size(0))[1], x.size(0), x.dtype)
model = Net(3, 8, 2)
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).normal(0, 0.4, tuple(p.shape)).astype(np.float32)))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
losses = []
for epoch in range(15):
    model.train()
    optimizer.zero_grad()
    o = model(x, edge_index, batch)
    loss = F.nll_loss(o, y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
out["losses"] = losses
out["grads"] = {n: p.grad for n, p in model.named_parameters()}
model.eval()
with torch.no_grad():
    pred = model(x, edge_index, batch).argmax(dim=1)
out["pred"] = pred
out["acc"] = int((pred == y).sum()) / int(y.size(0))
# the scatter reductions on their own, with gradients
src = torch.tensor(rng.standard_normal((7, 2)), requires_grad=True)
idx = torch.tensor([0, 2, 2, 0, 3, 2, 0])
parts = [scatter(src, idx, 0, 5, r) for r in ("sum", "mean", "max", "min")]
torch.stack(parts).mul(torch.arange(40.).view(4, 5, 2).double()).sum().backward()
out["scatter"] = parts
out["scatter_grad"] = src.grad
