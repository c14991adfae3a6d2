# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
data = [[1, 2], [3, 4]]
x_data = torch.tensor(data)
out["x_data"] = x_data
out["x_data_dtype"] = str(x_data.dtype).split(".")[-1]
np_array = np.array(data)
x_np = torch.from_numpy(np_array)
out["x_np"] = x_np
x_ones = torch.ones_like(x_data)
out["x_ones"] = x_ones
x_rand = torch.rand_like(x_data, dtype=torch.float)
out["x_rand_shape"] = tuple(x_rand.shape)
shape = (2, 3,)
out["ones"] = torch.ones(shape)
out["zeros"] = torch.zeros(shape)
tensor = torch.ones(4, 4)
out["first_row"] = tensor[0]
out["first_col"] = tensor[:, 0]
out["last_col"] = tensor[..., -1]
tensor[:, 1] = 0
out["tensor"] = tensor
t1 = torch.cat([tensor, tensor, tensor], dim=1)
out["t1"] = t1
y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
y3 = torch.rand_like(y1)
torch.matmul(tensor, tensor.T, out=y3)
out["y1"] = y1; out["y2"] = y2; out["y3"] = y3
z1 = tensor * tensor
z2 = tensor.mul(tensor)
z3 = torch.rand_like(tensor)
torch.mul(tensor, tensor, out=z3)
out["z"] = (z1, z2, z3)
agg = tensor.sum()
agg_item = agg.item()
out["agg_item"] = agg_item
out["agg_type"] = type(agg_item).__name__
tensor.add_(5)
out["tensor_add5"] = tensor
t = torch.ones(5)
n = t.numpy()
t.add_(1)
out["n_shared"] = n.copy()
n = np.ones(5)
t = torch.from_numpy(n)
np.add(n, 1, out=n)
out["t_shared"] = t
out["size"] = list(torch.zeros(2, 3, 4).size())
out["size1"] = torch.zeros(2, 3, 4).size(1)
out["shape_eq"] = torch.zeros(2, 3).shape == (2, 3)
out["shape_eq2"] = torch.zeros(2, 3).shape == torch.Size([2, 3])
a = torch.arange(12)
out["arange"] = a
out["arange_f"] = torch.arange(0, 1, 0.25)
out["arange_dtype"] = torch.arange(5, dtype=torch.float32)
out["linspace"] = torch.linspace(0, 1, steps=5)
b = a.view(3, 4)
out["view"] = b
out["reshape"] = a.reshape(2, -1)
out["view_m1"] = a.view(-1, 6)
out["permute"] = torch.arange(24).view(2, 3, 4).permute(2, 0, 1)
out["permute_shape"] = tuple(torch.arange(24).view(2, 3, 4).permute(2, 0, 1).shape)
c = torch.tensor([[1., 5., 3.], [4., 2., 6.]])
out["argmax"] = c.argmax()
out["argmax1"] = c.argmax(dim=1)
out["argmax1k"] = torch.argmax(c, dim=1, keepdim=True)
vals, idx = torch.topk(c, 2)
out["topk"] = (vals, idx)
tk = c.topk(k=2, dim=0, largest=False)
out["topk_nt"] = (tk.values, tk.indices)
s = torch.sort(c, dim=1, descending=True)
out["sort"] = (s.values, s.indices)
sv, si = c.sort()
out["sort2"] = (sv, si)
out["max_dim"] = tuple(torch.max(c, dim=1))
out["max_all"] = torch.max(c)
out["max_binary"] = torch.max(c, torch.full_like(c, 3.))
out["where"] = torch.where(c > 3, c, torch.zeros_like(c))
out["where_scalar"] = torch.where(c > 3, c, 0.)
out["where1"] = torch.where(c > 3)
out["clamp"] = torch.clamp(c, min=2, max=4)
out["clamp_min"] = c.clamp(min=3)
out["clamp_max"] = c.clamp(max=3)
mask = c > 3
out["masked_fill"] = c.masked_fill(mask, -1.0)
out["masked_fill_inf"] = c.masked_fill(~mask, float("-inf"))
out["gather"] = torch.gather(c, 1, torch.tensor([[0, 0], [1, 0]]))
out["scatter"] = torch.zeros(3, 5).scatter_(0, torch.tensor([[0, 1, 2, 0, 0]]), 1.0)
out["scatter_src"] = torch.zeros(2, 4).scatter(1, torch.tensor([[2], [3]]), torch.tensor([[5.], [7.]]))
out["eq"] = torch.eq(c, torch.tensor([[1., 2., 3.], [4., 5., 6.]]))
out["all"] = (c > 0).all()
out["any"] = (c > 5).any()
out["all_dim"] = (c > 1).all(dim=1)
out["any_dim"] = torch.any(c > 5, dim=0)
out["sum0"] = c.sum(dim=0)
out["sum1k"] = c.sum(1, keepdim=True)
out["sum_tuple"] = c.sum(dim=(0, 1))
out["mean"] = c.mean(dim=-1)
out["std"] = c.std()
out["std_dim"] = c.std(dim=1)
out["var_unb"] = c.var(dim=0, unbiased=False)
out["stack"] = torch.stack([c, c], dim=0)
out["stack1"] = torch.stack((c, c), 1)
out["hstack"] = torch.hstack([c, c])
out["vstack"] = torch.vstack([c, c])
out["item_int"] = torch.tensor(3).item()
out["item_int_type"] = type(torch.tensor(3).item()).__name__
out["tolist"] = c.tolist()
out["numel"] = c.numel()
out["dim"] = c.dim()
out["float_int"] = torch.tensor([1, 2]).float()
out["long"] = torch.tensor([1.7, -2.5]).long()
out["int_div"] = torch.tensor([5, 7]) / 2
out["int_floordiv"] = torch.tensor([5, -7]) // 2
out["squeeze"] = tuple(torch.zeros(1, 3, 1).squeeze().shape)
out["unsqueeze"] = tuple(torch.zeros(3).unsqueeze(0).shape)
out["unsqueeze_neg"] = tuple(torch.zeros(3, 4).unsqueeze(-1).shape)
out["transpose"] = torch.arange(6).view(2, 3).transpose(0, 1)
out["contig"] = torch.arange(6).view(2, 3).t().contiguous().view(-1)
out["chunk"] = torch.arange(10).chunk(3)
out["split"] = torch.arange(10).split(4)
out["split_list"] = torch.arange(10).split([3, 7])
out["bool_idx"] = c[c > 2]
out["fancy_idx"] = c[[0, 1], [2, 0]]
out["idx_tensor"] = c[torch.tensor([1, 0])]
out["neg_step"] = torch.arange(10)[2:8:2]
out["none_idx"] = tuple(c[None, :, None].shape)
out["eye"] = torch.eye(3)
out["full"] = torch.full((2, 2), 7)
out["full_f"] = torch.full((2, 2), 7.)
out["abs_neg"] = torch.tensor([-1.5, 2.0]).abs()
out["pow"] = torch.tensor([1., 2., 3.]) ** 2
out["rpow"] = 2 ** torch.tensor([1., 2., 3.])
out["exp"] = torch.exp(torch.tensor([0., 1.]))
out["log"] = torch.log(torch.tensor([1., 2.]))
out["sqrt"] = torch.tensor([4., 9.]).sqrt()
out["cumsum"] = torch.cumsum(torch.arange(5), dim=0)
out["numpy_dtype_int"] = str(torch.tensor([1, 2]).numpy().dtype)
out["flatten"] = torch.flatten(torch.arange(24).view(2, 3, 4), start_dim=1)
out["unique"] = torch.unique(torch.tensor([3, 1, 2, 3, 1]))
out["bincount"] = torch.bincount(torch.tensor([0, 1, 1, 3]))
out["mm"] = torch.mm(c, c.T)
out["bmm"] = torch.bmm(torch.ones(2, 2, 3), torch.ones(2, 3, 4))
out["einsum"] = torch.einsum("ij,kj->ik", c, c)
out["norm"] = c.norm()
out["norm_dim"] = torch.norm(c, dim=1)
out["min_dim"] = c.min(dim=0)[0]
out["min_dim_idx"] = c.min(0).indices
out["diff_dtype_add"] = torch.tensor([1, 2]) + torch.tensor([0.5, 0.5])
out["int_plus_float_scalar"] = torch.tensor([1, 2]) + 1.5
out["bool_sum"] = (c > 2).sum()
out["float_mean_of_bool"] = (c > 2).float().mean()
out["is_tensor"] = torch.is_tensor(c)
out["numel_fn"] = torch.numel(c)
out["zeros_dtype"] = str(torch.zeros(2, dtype=torch.int64).dtype).split(".")[-1]
out["tensor_dtype_f64"] = str(torch.tensor([1., 2.], dtype=torch.float64).dtype).split(".")[-1]
out["randn_shape"] = tuple(torch.randn(2, 3).shape)
out["randint_range"] = bool(((torch.randint(0, 10, (100,)) >= 0) & (torch.randint(0, 10, (100,)) < 10)).all())
