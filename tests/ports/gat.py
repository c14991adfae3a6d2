# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples gat/main.py: multi-head graph attention (xavier_normal_ init, batched matmul
# against a (heads, 2*hidden, 1) attention vector, .mT, torch.where over the adjacency, concat or
# mean over heads), trained on a small synthetic "Cora" whose adjacency is built as a sparse COO
# tensor made symmetric and densified, with FloatTensor/LongTensor, NLLLoss and Adam + weight_decay.
# Dropout is 0 in the compared run.


class GraphAttentionLayer(nn.Module):
    """
    Graph Attention Layer (GAT) as described in the paper `"Graph Attention Networks" <https://arxiv.org/pdf/1710.10903.pdf>`.
    """
    def __init__(self, in_features: int, out_features: int,
                 n_heads: int, concat: bool = False, dropout: float = 0.4,
                 leaky_relu_slope: float = 0.2):
        super(GraphAttentionLayer, self).__init__()

        self.n_heads = n_heads  # Number of attention heads
        self.concat = concat  # wether to concatenate the final attention heads
        self.dropout = dropout  # Dropout rate

        if concat:  # concatenating the attention heads
            self.out_features = out_features  # Number of output features per node
            assert out_features % n_heads == 0  # Ensure that out_features is a multiple of n_heads
            self.n_hidden = out_features // n_heads
        else:  # averaging output over the attention heads (Used in the main paper)
            self.n_hidden = out_features

        #  A shared linear transformation, parametrized by a weight matrix W is applied to every node
        #  Initialize the weight matrix W
        self.W = nn.Parameter(torch.empty(size=(in_features, self.n_hidden * n_heads)))

        # Initialize the attention weights a
        self.a = nn.Parameter(torch.empty(size=(n_heads, 2 * self.n_hidden, 1)))

        self.leakyrelu = nn.LeakyReLU(leaky_relu_slope)  # LeakyReLU activation function
        self.softmax = nn.Softmax(dim=1)  # softmax activation function to the attention coefficients

        self.reset_parameters()  # Reset the parameters

    def reset_parameters(self):
        nn.init.xavier_normal_(self.W)
        nn.init.xavier_normal_(self.a)

    def _get_attention_scores(self, h_transformed: torch.Tensor):
        source_scores = torch.matmul(h_transformed, self.a[:, :self.n_hidden, :])
        target_scores = torch.matmul(h_transformed, self.a[:, self.n_hidden:, :])

        # broadcast add
        # (n_heads, n_nodes, 1) + (n_heads, 1, n_nodes) = (n_heads, n_nodes, n_nodes)
        e = source_scores + target_scores.mT
        return self.leakyrelu(e)

    def forward(self, h: torch.Tensor, adj_mat: torch.Tensor):
        n_nodes = h.shape[0]

        # Apply linear transformation to node feature -> W h
        # output shape (n_nodes, n_hidden * n_heads)
        h_transformed = torch.mm(h, self.W)
        h_transformed = F.dropout(h_transformed, self.dropout, training=self.training)

        # splitting the heads by reshaping the tensor and putting heads dim first
        # output shape (n_heads, n_nodes, n_hidden)
        h_transformed = h_transformed.view(n_nodes, self.n_heads, self.n_hidden).permute(1, 0, 2)

        # getting the attention scores
        # output shape (n_heads, n_nodes, n_nodes)
        e = self._get_attention_scores(h_transformed)

        # Set the attention score for non-existent edges to -9e15 (MASKING NON-EXISTENT EDGES)
        connectivity_mask = -9e16 * torch.ones_like(e)
        e = torch.where(adj_mat > 0, e, connectivity_mask)  # masked attention scores

        # attention coefficients are computed as a softmax over the rows
        # for each column j in the attention score matrix e
        attention = F.softmax(e, dim=-1)
        attention = F.dropout(attention, self.dropout, training=self.training)

        # final node embeddings are computed as a weighted average of the features of its neighbors
        h_prime = torch.matmul(attention, h_transformed)

        # concatenating/averaging the attention heads
        # output shape (n_nodes, out_features)
        if self.concat:
            h_prime = h_prime.permute(1, 0, 2).contiguous().view(n_nodes, self.out_features)
        else:
            h_prime = h_prime.mean(dim=0)

        return h_prime


class GAT(nn.Module):
    def __init__(self, in_features, n_hidden, n_heads, num_classes, concat=False, dropout=0.4, leaky_relu_slope=0.2):
        super(GAT, self).__init__()

        # Define the Graph Attention layers
        self.gat1 = GraphAttentionLayer(
            in_features=in_features, out_features=n_hidden, n_heads=n_heads,
            concat=concat, dropout=dropout, leaky_relu_slope=leaky_relu_slope
        )

        self.gat2 = GraphAttentionLayer(
            in_features=n_hidden, out_features=num_classes, n_heads=1,
            concat=False, dropout=dropout, leaky_relu_slope=leaky_relu_slope
        )

    def forward(self, input_tensor: torch.Tensor, adj_mat: torch.Tensor):
        # Apply the first Graph Attention layer
        x = self.gat1(input_tensor, adj_mat)
        x = F.elu(x)  # Apply ELU activation function to the output of the first layer

        # Apply the second Graph Attention layer
        x = self.gat2(x, adj_mat)

        return F.log_softmax(x, dim=1)  # Apply log softmax activation function


def load_cora(num_nodes=30, num_features=12, num_classes=4, num_edges=50):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, num_classes, num_nodes)
    features = torch.FloatTensor(rng.random((num_nodes, num_features)) < 0.3)
    features = features / features.sum(dim=1, keepdim=True).clamp(min=1)
    labels = torch.LongTensor(labels)
    edges = torch.LongTensor(rng.integers(0, num_nodes, (num_edges, 2)))
    # construct the adjacency matrix
    adj_mat = torch.sparse_coo_tensor(edges.T, torch.ones(len(edges)), size=(num_nodes, num_nodes),
                                      dtype=torch.float32)
    adj_mat = adj_mat + adj_mat.t()  # undirected graph: symmetrize
    adj_mat = adj_mat.to_dense() + torch.eye(num_nodes)  # self loops
    return features, labels, adj_mat


def train_iter(epoch, model, optimizer, criterion, input, target, mask_train, mask_val, log):
    model.train()
    optimizer.zero_grad()

    # Forward pass
    output = model(*input)
    loss = criterion(output[mask_train], target[mask_train])  # Compute the loss using the training mask

    loss.backward()
    optimizer.step()

    # Evaluate the model performance on training and validation sets
    loss_train, acc_train = test(model, criterion, input, target, mask_train)
    loss_val, acc_val = test(model, criterion, input, target, mask_val)
    log.append([epoch, loss.item(), loss_train, acc_train, loss_val, acc_val])


def test(model, criterion, input, target, mask):
    model.eval()
    with torch.no_grad():
        output = model(*input)
        output, target = output[mask], target[mask]

        loss = criterion(output, target)
        acc = (output.argmax(dim=1) == target).float().sum() / len(target)
    return loss.item(), acc.item()


features, labels, adj_mat = load_cora()
torch.manual_seed(13)
gat_net = GAT(in_features=features.shape[1], n_hidden=8, n_heads=2, num_classes=int(labels.max()) + 1,
              concat=True, dropout=0.0, leaky_relu_slope=0.2)
with torch.no_grad():
    for i, p in enumerate(gat_net.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).normal(0, 0.5, tuple(p.shape)).astype(np.float32)))
optimizer = torch.optim.Adam(gat_net.parameters(), lr=0.05, weight_decay=5e-4)
criterion = nn.NLLLoss()

idx = torch.from_numpy(np.random.default_rng(5).permutation(len(labels)))
idx_test, idx_val, idx_train = idx[:6], idx[6:12], idx[12:]
log = []
for epoch in range(5):
    train_iter(epoch + 1, gat_net, optimizer, criterion, (features, adj_mat), labels, idx_train, idx_val, log)
out["log"] = log
out["test"] = list(test(gat_net, criterion, (features, adj_mat), labels, idx_test))
out["adj"] = adj_mat
out["W_grad"] = gat_net.gat1.W.grad
out["a_grad"] = gat_net.gat1.a.grad
# the init itself: xavier_normal_ on a 3-D tensor uses fan_in = size(1)*size(2), fan_out = size(0)*size(2)
a = torch.empty(size=(2, 16, 1))
nn.init.xavier_normal_(a)
out["xavier_shape"] = list(a.shape)
out["features_dtype"] = str(features.dtype).split(".")[-1]  # dtypes print as numpy's: float32
