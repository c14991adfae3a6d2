# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# cccntu/minLoRA: model.py and utils.py as written (LoRAParametrization registered through
# torch.nn.utils.parametrize on Linear, Embedding and Conv2d weights, add_lora through model.apply
# with functools.partial, enable/disable, get_lora_params by the "parametrizations" parameter
# names, get_lora_state_dict, merge_lora with leave_parametrized=True, remove_lora, tie_weights)
# and its demo: fine-tune only the LoRA parameters of a small pretrained model, save and load the
# LoRA state_dict into a fresh model, then merge. Same numpy weights in both frameworks.
import math
from functools import partial

parametrize = torch.nn.utils.parametrize  # the original: import torch.nn.utils.parametrize as parametrize


class LoRAParametrization(nn.Module):
    def __init__(self, fan_in, fan_out, fan_in_fan_out=False, rank=4, lora_dropout_p=0.0, lora_alpha=1):
        super().__init__()
        # if weight is stored as (fan_out, fan_in), the memory layout of A & B follows (W + BA)x
        # otherwise, it's x(W + AB). This allows us to tie the weights between linear layers and embeddings
        self.swap = (lambda x: (x[1], x[0])) if fan_in_fan_out else (lambda x: x)
        self.lora_A = nn.Parameter(torch.zeros(self.swap((rank, fan_in))))
        self.lora_B = nn.Parameter(torch.zeros(self.swap((fan_out, rank))))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_alpha, self.rank = lora_alpha, rank
        self.scaling = lora_alpha / rank
        self.lora_dropout = nn.Dropout(p=lora_dropout_p) if lora_dropout_p > 0 else lambda x: x
        self.dropout_fn = self._dropout if lora_dropout_p > 0 else lambda x: x
        self.register_buffer("lora_dropout_mask", torch.ones(self.swap((1, fan_in)), dtype=self.lora_A.dtype))
        self.forward_fn = self.lora_forward

    def _dropout(self, A):
        # to mimic the original implementation: A @ dropout(x), we do (A * dropout(ones)) @ x
        return A * self.lora_dropout(self.lora_dropout_mask)

    def lora_forward(self, X):
        return X + torch.matmul(*self.swap((self.lora_B, self.dropout_fn(self.lora_A)))).view(X.shape) * self.scaling

    def forward(self, X):
        return self.forward_fn(X)

    def disable_lora(self):
        self.forward_fn = lambda x: x

    def enable_lora(self):
        self.forward_fn = self.lora_forward

    @classmethod
    def from_linear(cls, layer, rank=4, lora_dropout_p=0.0, lora_alpha=1):
        fan_out, fan_in = layer.weight.shape
        return cls(
            fan_in, fan_out, fan_in_fan_out=False, rank=rank, lora_dropout_p=lora_dropout_p, lora_alpha=lora_alpha
        )

    @classmethod
    def from_conv2d(cls, layer, rank=4, lora_dropout_p=0.0, lora_alpha=1):
        fan_out, fan_in = layer.weight.view(layer.weight.shape[0], -1).shape
        return cls(
            fan_in, fan_out, fan_in_fan_out=False, rank=rank, lora_dropout_p=lora_dropout_p, lora_alpha=lora_alpha
        )

    @classmethod
    def from_embedding(cls, layer, rank=4, lora_dropout_p=0.0, lora_alpha=1):
        fan_in, fan_out = layer.weight.shape
        return cls(
            fan_in, fan_out, fan_in_fan_out=True, rank=rank, lora_dropout_p=lora_dropout_p, lora_alpha=lora_alpha
        )


default_lora_config = {  # specify which layers to add lora to, by default only add to linear layers
    nn.Linear: {
        "weight": partial(LoRAParametrization.from_linear, rank=4),
    },
}


def apply_lora(layer, register=True, merge=False, lora_config=default_lora_config):
    """add lora parametrization to a layer, designed to be used with model.apply"""
    if register:
        if type(layer) in lora_config:
            for attr_name, parametrization in lora_config[type(layer)].items():
                parametrize.register_parametrization(layer, attr_name, parametrization(layer))
    else:  # this will remove all parametrizations, use with caution
        if hasattr(layer, "parametrizations"):
            # the original iterates layer.parametrizations.keys(), a live view that PyTorch 2.x's
            # plain-dict _modules invalidates on the first removal ("dictionary changed size")
            for attr_name in list(layer.parametrizations.keys()):
                parametrize.remove_parametrizations(layer, attr_name, leave_parametrized=merge)


def add_lora(model, lora_config=default_lora_config):
    """add lora parametrization to all layers in a model. Calling it twice will add lora twice"""
    model.apply(partial(apply_lora, lora_config=lora_config))


def add_lora_by_name(model, target_module_names, lora_config=default_lora_config):
    """Add LoRA parameterization to specific layers in a model by names"""
    for name, layer in model.named_modules():
        if any([m in name for m in target_module_names]):
            add_lora(layer, lora_config=lora_config)


def merge_lora(model):
    """merge lora parametrization to all layers in a model. This will remove all parametrization"""
    model.apply(partial(apply_lora, register=False, merge=True))


def remove_lora(model):
    """remove lora parametrization to all layers in a model. This will remove all parametrization"""
    model.apply(partial(apply_lora, register=False, merge=False))


# ---- utils.py
def apply_to_lora(fn):
    """apply a function to LoRAParametrization layers, designed to be used with model.apply"""

    def apply_fn(layer):
        if isinstance(layer, LoRAParametrization):
            fn(layer)

    return apply_fn


enable_lora = lambda model: model.apply(apply_to_lora(lambda x: x.enable_lora()))
disable_lora = lambda model: model.apply(apply_to_lora(lambda x: x.disable_lora()))


def name_is_lora(name):
    return (
        len(name.split(".")) >= 4
        and (name.split(".")[-4]) == "parametrizations"
        and name.split(".")[-1] in ["lora_A", "lora_B"]
    )


def name_is_bias(name):
    return name.split(".")[-1] == "bias"


def get_params_by_name(model, print_shapes=False, name_filter=None):
    for n, p in model.named_parameters():
        if name_filter is None or name_filter(n):
            if print_shapes:
                print(n, p.shape)
            yield p


def get_lora_params(model, print_shapes=False):
    return get_params_by_name(model, print_shapes=print_shapes, name_filter=name_is_lora)


def get_bias_params(model, print_shapes=False):
    return get_params_by_name(model, print_shapes=print_shapes, name_filter=name_is_bias)


def get_lora_state_dict(model):
    return {k: v for k, v in model.state_dict().items() if name_is_lora(k)}


def tie_weights(linear: nn.Linear, embedding: nn.Embedding):
    """tie the weights of the linear layer and the embedding layer both with the same lora"""
    # this line below is optional if the original is already tied
    embedding.parametrizations.weight.original = linear.parametrizations.weight.original
    embedding.parametrizations.weight[0].lora_A = linear.parametrizations.weight[0].lora_B
    embedding.parametrizations.weight[0].lora_B = linear.parametrizations.weight[0].lora_A


# ---- the demo: a small "pretrained" model, fine-tuned through LoRA only
class Net(nn.Module):
    def __init__(self, vocab=12, d=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc1 = nn.Linear(d * 3, 16)
        self.fc2 = nn.Linear(16, vocab)

    def forward(self, tokens):
        h = self.emb(tokens)                        # (B, T, d)
        h = F.relu(self.conv(h.unsqueeze(1)))       # (B, 3, T, d)
        h = h.mean(2).flatten(1)                    # (B, 3 * d)
        return self.fc2(torch.tanh(self.fc1(h)))


def fill(model, seed):
    with torch.no_grad():
        for k, (n, p) in enumerate(model.named_parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + k).normal(0, 0.3, tuple(p.shape)).astype(np.float32)))


rng = np.random.default_rng(0)
x = torch.from_numpy(rng.integers(0, 12, (6, 5)))
y = torch.from_numpy(rng.integers(0, 12, 6))

torch.manual_seed(0)
model = Net()
fill(model, 100)
base_out = model(x)
out["base_out"] = base_out

lora_config = {
    nn.Embedding: {"weight": partial(LoRAParametrization.from_embedding, rank=2)},
    nn.Linear: {"weight": partial(LoRAParametrization.from_linear, rank=4, lora_alpha=2)},
    nn.Conv2d: {"weight": partial(LoRAParametrization.from_conv2d, rank=2)},
}
add_lora(model, lora_config=lora_config)
out["is_parametrized"] = [parametrize.is_parametrized(m) for m in (model.emb, model.conv, model.fc1, model)]
out["is_parametrized_weight"] = parametrize.is_parametrized(model.fc1, "weight")
out["type_before"] = parametrize.type_before_parametrizations(model.fc1).__name__
out["param_names"] = [n for n, _ in model.named_parameters()]
out["state_keys"] = sorted(model.state_dict().keys())
out["lora_names"] = [n for n, _ in model.named_parameters() if name_is_lora(n)]
out["weight_shape"] = tuple(model.fc1.weight.shape)
out["original_shape"] = tuple(model.fc1.parametrizations.weight.original.shape)
# lora_B starts at zero: the model is unchanged
out["after_add_equal"] = bool(torch.allclose(model(x), base_out))
fill(model, 200)  # now every parameter, LoRA ones included, has numpy values shared by both runs
for n, p in model.named_parameters():
    if not name_is_lora(n):
        p.requires_grad_(False)

parameters = [{"params": list(get_lora_params(model))}]
optimizer = optim.AdamW(parameters, lr=1e-2)
losses = []
for step in range(5):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    if step == 0:
        out["grads0"] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        out["frozen_grad_none"] = model.fc1.parametrizations.weight.original.grad is None
    optimizer.step()
    losses.append(loss.item())
out["losses"] = losses
lora_out = model(x)
out["lora_out"] = lora_out

disable_lora(model)
out["disabled_out"] = model(x)
enable_lora(model)
out["enabled_again_equal"] = bool(torch.allclose(model(x), lora_out))

# save only the LoRA weights, load them into a fresh copy of the pretrained model
lora_state_dict = get_lora_state_dict(model)
out["lora_state_keys"] = sorted(lora_state_dict)
torch.save(lora_state_dict, tmpdir + "/lora.pt")
new_model = Net()
fill(new_model, 200)
add_lora(new_model, lora_config=lora_config)
missing, unexpected = new_model.load_state_dict(torch.load(tmpdir + "/lora.pt"), strict=False)
out["missing"] = sorted(missing)
out["unexpected"] = list(unexpected)
out["loaded_out"] = new_model(x)

# with the parametrization cached, the weight is computed once per forward
with parametrize.cached():
    out["cached_out"] = new_model(x)

merge_lora(new_model)
out["merged_is_parametrized"] = parametrize.is_parametrized(new_model.fc1)
out["merged_params"] = [n for n, _ in new_model.named_parameters()]
out["merged_out"] = new_model(x)
out["merged_weight"] = new_model.fc1.weight
remove_lora(model)
out["removed_out"] = model(x)  # back to the frozen pretrained weights

# tie_weights: an output layer and an embedding share one original weight and swapped A/B
tied = nn.ModuleDict({"emb": nn.Embedding(12, 8), "head": nn.Linear(8, 12, bias=False)})
fill(tied, 300)
tied["emb"].weight = tied["head"].weight
add_lora(tied, lora_config=lora_config)
tie_weights(linear=tied["head"], embedding=tied["emb"])
fill(tied, 400)
out["tied_param_count"] = len(list(tied.parameters()))
out["tied_emb_weight_T"] = bool(torch.allclose(tied["emb"].weight, tied["head"].weight))
out["tied_emb_out"] = tied["emb"](x)
