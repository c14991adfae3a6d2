# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# The pieces of Hugging Face transformers (5.x) that stopped its tiny GPT-2, BERT and Llama when
# run on tapegrad, as transformers writes them:
# - BertEmbeddings' `position_ids` buffer, an `expand((1, -1))` view of an arange, which
#   `_init_weights` overwrites in place with `init.copy_` (a size-1 expanded dim is writable);
# - `get_torch_context_manager_or_global_device() != torch.device("meta")` in `post_init`;
# - ModelOutput registered as a pytree node with `flatten_with_keys_fn=_dict_flatten_with_keys`;
# - `Fp8QuantizedLayer`'s class attributes (`torch.float8_e4m3fn`, its finfo max) and its
#   quantize / dequantize round trip;
# - `sdpa_mask` (causal and padding, bool) for a left-padded batch into
#   `scaled_dot_product_attention` with GQA: the padded query rows attend to no key and must give
#   zeros, not NaN (greedy generation of the padded row depended on it);
# - `TransformGetItemToIndex` around the vmapped mask functions of masking_utils.
from collections import OrderedDict
from functools import partial

import torch.utils._pytree as torch_pytree
from torch._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex

R = np.random.default_rng(0)


# ---------------------------------------------------------------- BertEmbeddings' buffers
class BertEmbeddings(nn.Module):
    def __init__(self, max_position_embeddings=8):
        super().__init__()
        self.position_ids = nn.Buffer(torch.arange(max_position_embeddings).expand((1, -1)), persistent=False)
        self.token_type_ids = nn.Buffer(torch.zeros(self.position_ids.size(), dtype=torch.long), persistent=False)


def get_torch_context_manager_or_global_device():
    device_in_context = torch.tensor([]).device
    default_device = torch.get_default_device()
    if device_in_context == default_device:
        if default_device != torch.device("cpu"):
            return default_device
        return None
    return device_in_context


emb = BertEmbeddings()
if get_torch_context_manager_or_global_device() != torch.device("meta"):
    with torch.no_grad():  # transformers.initialization.copy_ / zeros_
        emb.position_ids.copy_(torch.arange(emb.position_ids.shape[-1]).flip(0).expand((1, -1)))
        emb.token_type_ids.zero_()
out["position_ids"] = emb.position_ids
out["position_ids_slice"] = emb.position_ids[:, 2:5]
out["meta_is_not_cpu"] = torch.device("meta") != torch.device("cpu")
out["meta_str"] = str(torch.device("meta"))


# ---------------------------------------------------------------- ModelOutput as a pytree node
class ModelOutput(OrderedDict):
    def __init_subclass__(cls):
        torch_pytree.register_pytree_node(
            cls,
            lambda o: (list(o.values()), list(o.keys())),
            partial(lambda values, context, output_type: output_type(**dict(zip(context, values))), output_type=cls),
            serialized_type_name=f"{cls.__module__}.{cls.__name__}",
            flatten_with_keys_fn=torch_pytree._dict_flatten_with_keys,
        )


class CausalLMOutput(ModelOutput):
    pass


o = CausalLMOutput(loss=torch.tensor(1.5), logits=torch.ones(2, 3))
leaves, spec = torch_pytree.tree_flatten(o)
paths = torch_pytree.tree_flatten_with_path(o)[0]
out["pytree_keys"] = [torch_pytree.keystr(p) for p, _ in paths]
out["pytree_roundtrip"] = list(torch_pytree.tree_unflatten([x * 2 for x in leaves], spec).items())


# ---------------------------------------------------------------- Fp8QuantizedLayer
class Fp8QuantizedLayer:
    fp8_dtype = torch.float8_e4m3fn
    fp8_max = torch.finfo(fp8_dtype).max

    def quantize(self, t):
        scale = t.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / self.fp8_max
        return (t / scale).to(self.fp8_dtype), scale

    def dequantize(self, q, scale):
        return q.to(scale.dtype) * scale


fp8 = Fp8QuantizedLayer()
x = torch.tensor(R.standard_normal((3, 8)) * 50)
q8, scale = fp8.quantize(x)
out["fp8_max"] = fp8.fp8_max
out["fp8_dequantized"] = fp8.dequantize(q8, scale)
out["fp8_saturates"] = torch.tensor([500.0, -1e6, 464.0, 0.1]).to(torch.float8_e4m3fn).float()
out["e5m2_roundtrip"] = torch.tensor([1e5, 3.3, -7e-6]).to(torch.float8_e5m2).double()


# ---------------------------------------------------------------- sdpa_mask + sdpa, left padding
def sdpa_mask(attention_mask, q_length, kv_length):
    """masking_utils' causal-and-padding mask without vmap: (batch, 1, q, kv), True = attend."""
    q_idx = torch.arange(q_length)[:, None]
    kv_idx = torch.arange(kv_length)[None, :]
    causal = kv_idx <= q_idx + (kv_length - q_length)
    padding = attention_mask.bool()[:, None, None, :]
    return causal[None, None] & padding


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


pad = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
mask = sdpa_mask(pad, 5, 5)
q = torch.tensor(R.standard_normal((2, 4, 5, 6)), requires_grad=True)
k = torch.tensor(R.standard_normal((2, 2, 5, 6)), requires_grad=True)
v = torch.tensor(R.standard_normal((2, 2, 5, 6)), requires_grad=True)
att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
(att * torch.tensor(R.standard_normal(att.shape))).sum().backward()
out["sdpa_left_padded"] = att
out["sdpa_grads"] = [q.grad, k.grad, v.grad]
additive = torch.zeros(mask.shape, dtype=torch.float64).masked_fill(~mask, float("-inf"))
out["sdpa_float_mask"] = F.scaled_dot_product_attention(q, repeat_kv(k, 2), repeat_kv(v, 2), attn_mask=additive)
# the same with a mask that needs a gradient (the composite path) and with create_graph
bias = additive.clone().requires_grad_(True)
y = F.scaled_dot_product_attention(q, repeat_kv(k, 2), repeat_kv(v, 2), attn_mask=bias)
gq, = torch.autograd.grad(y.sum(), q, create_graph=True)
out["sdpa_composite"] = y
out["sdpa_double_backward"] = torch.autograd.grad(gq.pow(2).sum(), k)[0]


# ---------------------------------------------------------------- masking_utils under vmap
def padding_mask_function(padding_mask):
    def inner_mask(batch_idx, head_idx, q_idx, kv_idx):
        return padding_mask[batch_idx, kv_idx]
    return inner_mask


def causal_mask_function(batch_idx, head_idx, q_idx, kv_idx):
    return kv_idx <= q_idx


def and_masks(*fns):
    def inner(batch_idx, head_idx, q_idx, kv_idx):
        result = q_idx.new_ones((), dtype=torch.bool)
        for fn in fns:
            result = result & fn(batch_idx, head_idx, q_idx, kv_idx)
        return result
    return inner


mask_function = and_masks(causal_mask_function, padding_mask_function(pad.bool()))
dims = [(None, None, None, 0), (None, None, 0, None), (None, 0, None, None), (0, None, None, None)]
fn = mask_function
for d in dims:
    fn = torch.vmap(fn, in_dims=d, out_dims=0)
with TransformGetItemToIndex():
    vmapped = fn(torch.arange(2), torch.arange(1), torch.arange(5), torch.arange(5))
out["vmap_mask"] = vmapped
out["vmap_mask_equals_sdpa_mask"] = bool((vmapped == mask).all())
