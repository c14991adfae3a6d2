"""``torch.ops.aten``: ATen's core operators, each overload mapped onto tapegrad's own function.

ATen's argument conventions differ from the ``torch.*`` functions' in places
(``aten.sum.dim_IntList(x, [1], keepdim)``, ``aten._softmax.default(x, dim, half_to_float)``,
``aten.addmm.default(bias, a, b, beta=, alpha=)``), so each overload is its real schema (copied
from ATen's native_functions.yaml) and the schema binds the call. ``SCHEMAS`` lists them one a
line; an overload runs the tapegrad function (or else the ``Tensor`` method) of its op's name with
the schema's positional arguments in order, and its keyword-only arguments where they differ from
their default. ``ADAPTERS`` holds the overloads whose arguments need translating.

>>> tapegrad.ops.aten.addmm.default(bias, a, b, beta=0.5)   # 0.5 * bias + a @ b
"""
from __future__ import annotations

from .. import linalg, ops
from .._dtype import bool_
from ..nn import functional as F

__all__ = ["SCHEMAS", "ADAPTERS"]

SCHEMAS = """
abs(Tensor self) -> Tensor
neg(Tensor self) -> Tensor
exp(Tensor self) -> Tensor
log(Tensor self) -> Tensor
sqrt(Tensor self) -> Tensor
rsqrt(Tensor self) -> Tensor
sin(Tensor self) -> Tensor
cos(Tensor self) -> Tensor
tan(Tensor self) -> Tensor
tanh(Tensor self) -> Tensor
sigmoid(Tensor self) -> Tensor
relu(Tensor self) -> Tensor
reciprocal(Tensor self) -> Tensor
sign(Tensor self) -> Tensor
floor(Tensor self) -> Tensor
ceil(Tensor self) -> Tensor
round(Tensor self) -> Tensor
trunc(Tensor self) -> Tensor
erf(Tensor self) -> Tensor
log1p(Tensor self) -> Tensor
expm1(Tensor self) -> Tensor
log2(Tensor self) -> Tensor
asin(Tensor self) -> Tensor
acos(Tensor self) -> Tensor
atan(Tensor self) -> Tensor
sinh(Tensor self) -> Tensor
cosh(Tensor self) -> Tensor
isnan(Tensor self) -> Tensor
logical_not(Tensor self) -> Tensor
silu(Tensor self) -> Tensor
gelu(Tensor self, *, str approximate="none") -> Tensor
hardtanh(Tensor self, Scalar min_val=-1, Scalar max_val=1) -> Tensor
leaky_relu(Tensor self, Scalar negative_slope=0.01) -> Tensor
elu(Tensor self, Scalar alpha=1, Scalar scale=1, Scalar input_scale=1) -> Tensor
clone(Tensor self, *, MemoryFormat? memory_format=None) -> Tensor
detach(Tensor(a) self) -> Tensor(a)
alias(Tensor(a) self) -> Tensor(a)
add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor
add.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor
sub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor
sub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor
rsub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor
rsub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor
mul.Tensor(Tensor self, Tensor other) -> Tensor
mul.Scalar(Tensor self, Scalar other) -> Tensor
div.Tensor(Tensor self, Tensor other) -> Tensor
div.Scalar(Tensor self, Scalar other) -> Tensor
div.Tensor_mode(Tensor self, Tensor other, *, str? rounding_mode) -> Tensor
pow.Tensor_Tensor(Tensor self, Tensor exponent) -> Tensor
pow.Tensor_Scalar(Tensor self, Scalar exponent) -> Tensor
pow.Scalar(Scalar self, Tensor exponent) -> Tensor
maximum(Tensor self, Tensor other) -> Tensor
minimum(Tensor self, Tensor other) -> Tensor
eq.Tensor(Tensor self, Tensor other) -> Tensor
eq.Scalar(Tensor self, Scalar other) -> Tensor
ne.Tensor(Tensor self, Tensor other) -> Tensor
ne.Scalar(Tensor self, Scalar other) -> Tensor
lt.Tensor(Tensor self, Tensor other) -> Tensor
lt.Scalar(Tensor self, Scalar other) -> Tensor
le.Tensor(Tensor self, Tensor other) -> Tensor
le.Scalar(Tensor self, Scalar other) -> Tensor
gt.Tensor(Tensor self, Tensor other) -> Tensor
gt.Scalar(Tensor self, Scalar other) -> Tensor
ge.Tensor(Tensor self, Tensor other) -> Tensor
ge.Scalar(Tensor self, Scalar other) -> Tensor
where.self(Tensor condition, Tensor self, Tensor other) -> Tensor
atan2(Tensor self, Tensor other) -> Tensor
remainder.Tensor(Tensor self, Tensor other) -> Tensor
remainder.Scalar(Tensor self, Scalar other) -> Tensor
fmod.Tensor(Tensor self, Tensor other) -> Tensor
fmod.Scalar(Tensor self, Scalar other) -> Tensor
logical_and(Tensor self, Tensor other) -> Tensor
logical_or(Tensor self, Tensor other) -> Tensor
logical_xor(Tensor self, Tensor other) -> Tensor
clamp(Tensor self, Scalar? min=None, Scalar? max=None) -> Tensor
clamp.Tensor(Tensor self, Tensor? min=None, Tensor? max=None) -> Tensor
clamp_min(Tensor self, Scalar min) -> Tensor
clamp_max(Tensor self, Scalar max) -> Tensor
lerp.Scalar(Tensor self, Tensor end, Scalar weight) -> Tensor
addcmul(Tensor self, Tensor tensor1, Tensor tensor2, *, Scalar value=1) -> Tensor
addcdiv(Tensor self, Tensor tensor1, Tensor tensor2, *, Scalar value=1) -> Tensor
add_.Tensor(Tensor(a!) self, Tensor other, *, Scalar alpha=1) -> Tensor(a!)
add_.Scalar(Tensor(a!) self, Scalar other, Scalar alpha=1) -> Tensor(a!)
sub_.Tensor(Tensor(a!) self, Tensor other, *, Scalar alpha=1) -> Tensor(a!)
mul_.Tensor(Tensor(a!) self, Tensor other) -> Tensor(a!)
mul_.Scalar(Tensor(a!) self, Scalar other) -> Tensor(a!)
div_.Tensor(Tensor(a!) self, Tensor other) -> Tensor(a!)
copy_(Tensor(a!) self, Tensor src, bool non_blocking=False) -> Tensor(a!)
zero_(Tensor(a!) self) -> Tensor(a!)
fill_.Scalar(Tensor(a!) self, Scalar value) -> Tensor(a!)
sum(Tensor self, *, ScalarType? dtype=None) -> Tensor
sum.dim_IntList(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor
mean(Tensor self, *, ScalarType? dtype=None) -> Tensor
mean.dim(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor
amax(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor
amin(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor
max(Tensor self) -> Tensor
max.dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, Tensor indices)
min(Tensor self) -> Tensor
min.dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, Tensor indices)
argmax(Tensor self, int? dim=None, bool keepdim=False) -> Tensor
argmin(Tensor self, int? dim=None, bool keepdim=False) -> Tensor
prod(Tensor self, *, ScalarType? dtype=None) -> Tensor
prod.dim_int(Tensor self, int dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor
var.correction(Tensor self, int[1]? dim=None, *, Scalar? correction=None, bool keepdim=False) -> Tensor
std.correction(Tensor self, int[1]? dim=None, *, Scalar? correction=None, bool keepdim=False) -> Tensor
any(Tensor self) -> Tensor
any.dim(Tensor self, int dim, bool keepdim=False) -> Tensor
all(Tensor self) -> Tensor
all.dim(Tensor self, int dim, bool keepdim=False) -> Tensor
cumsum(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor
cumprod(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor
logsumexp(Tensor self, int[1] dim, bool keepdim=False) -> Tensor
linalg_vector_norm(Tensor self, Scalar ord=2, int[1]? dim=None, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor
mm(Tensor self, Tensor mat2) -> Tensor
bmm(Tensor self, Tensor mat2) -> Tensor
addmm(Tensor self, Tensor mat1, Tensor mat2, *, Scalar beta=1, Scalar alpha=1) -> Tensor
matmul(Tensor self, Tensor other) -> Tensor
dot(Tensor self, Tensor tensor) -> Tensor
mv(Tensor self, Tensor vec) -> Tensor
baddbmm(Tensor self, Tensor batch1, Tensor batch2, *, Scalar beta=1, Scalar alpha=1) -> Tensor
t(Tensor(a) self) -> Tensor(a)
view(Tensor(a) self, SymInt[] size) -> Tensor(a)
reshape(Tensor(a) self, SymInt[] shape) -> Tensor(a)
_unsafe_view(Tensor self, SymInt[] size) -> Tensor
permute(Tensor(a) self, int[] dims) -> Tensor(a)
transpose.int(Tensor(a) self, int dim0, int dim1) -> Tensor(a)
expand(Tensor(a) self, SymInt[] size, *, bool implicit=False) -> Tensor(a)
squeeze(Tensor(a) self) -> Tensor(a)
squeeze.dim(Tensor(a) self, int dim) -> Tensor(a)
squeeze.dims(Tensor(a) self, int[] dim) -> Tensor(a)
unsqueeze(Tensor(a) self, int dim) -> Tensor(a)
cat(Tensor[] tensors, int dim=0) -> Tensor
stack(Tensor[] tensors, int dim=0) -> Tensor
split.Tensor(Tensor(a -> *) self, SymInt split_size, int dim=0) -> Tensor(a)[]
split_with_sizes(Tensor(a -> *) self, SymInt[] split_sizes, int dim=0) -> Tensor(a)[]
chunk(Tensor(a -> *) self, int chunks, int dim=0) -> Tensor(a)[]
unbind.int(Tensor(a -> *) self, int dim=0) -> Tensor(a)[]
select.int(Tensor(a) self, int dim, SymInt index) -> Tensor(a)
slice.Tensor(Tensor(a) self, int dim=0, SymInt? start=None, SymInt? end=None, SymInt step=1) -> Tensor(a)
narrow(Tensor(a) self, int dim, SymInt start, SymInt length) -> Tensor(a)
flip(Tensor self, int[] dims) -> Tensor
roll(Tensor self, SymInt[1] shifts, int[1] dims=[]) -> Tensor
repeat(Tensor self, SymInt[] repeats) -> Tensor
flatten.using_ints(Tensor(a) self, int start_dim=0, int end_dim=-1) -> Tensor(a)
index_select(Tensor self, int dim, Tensor index) -> Tensor
gather(Tensor self, int dim, Tensor index, *, bool sparse_grad=False) -> Tensor
scatter.src(Tensor self, int dim, Tensor index, Tensor src) -> Tensor
scatter.value(Tensor self, int dim, Tensor index, Scalar value) -> Tensor
scatter_add(Tensor self, int dim, Tensor index, Tensor src) -> Tensor
scatter_reduce.two(Tensor self, int dim, Tensor index, Tensor src, str reduce, *, bool include_self=True) -> Tensor
index.Tensor(Tensor self, Tensor?[] indices) -> Tensor
index_put(Tensor self, Tensor?[] indices, Tensor values, bool accumulate=False) -> Tensor
index_add(Tensor self, int dim, Tensor index, Tensor source, *, Scalar alpha=1) -> Tensor
masked_fill.Scalar(Tensor self, Tensor mask, Scalar value) -> Tensor
masked_fill.Tensor(Tensor self, Tensor mask, Tensor value) -> Tensor
sort(Tensor self, int dim=-1, bool descending=False) -> (Tensor values, Tensor indices)
sort.stable(Tensor self, *, bool? stable, int dim=-1, bool descending=False) -> (Tensor values, Tensor indices)
topk(Tensor self, SymInt k, int dim=-1, bool largest=True, bool sorted=True) -> (Tensor values, Tensor indices)
tril(Tensor self, SymInt diagonal=0) -> Tensor
triu(Tensor self, SymInt diagonal=0) -> Tensor
_softmax(Tensor self, int dim, bool half_to_float) -> Tensor
_log_softmax(Tensor self, int dim, bool half_to_float) -> Tensor
softmax.int(Tensor self, int dim, ScalarType? dtype=None) -> Tensor
log_softmax.int(Tensor self, int dim, ScalarType? dtype=None) -> Tensor
convolution(Tensor input, Tensor weight, Tensor? bias, SymInt[] stride, SymInt[] padding, SymInt[] dilation, bool transposed, SymInt[] output_padding, SymInt groups) -> Tensor
native_layer_norm(Tensor input, SymInt[] normalized_shape, Tensor? weight, Tensor? bias, float eps) -> (Tensor, Tensor, Tensor)
embedding(Tensor weight, Tensor indices, SymInt padding_idx=-1, bool scale_grad_by_freq=False, bool sparse=False) -> Tensor
avg_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None) -> Tensor
max_pool2d_with_indices(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, int[2] dilation=1, bool ceil_mode=False) -> (Tensor, Tensor)
mse_loss(Tensor self, Tensor target, int reduction=1) -> Tensor
nll_loss_forward(Tensor self, Tensor target, Tensor? weight, int reduction, SymInt ignore_index) -> (Tensor output, Tensor total_weight)
native_dropout(Tensor input, float p, bool? train) -> (Tensor, Tensor)
zeros_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor
ones_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor
empty_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor
full_like(Tensor self, Scalar fill_value, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor
zeros(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
ones(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
full(SymInt[] size, Scalar fill_value, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
arange(Scalar end, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
arange.start(Scalar start, Scalar end, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
arange.start_step(Scalar start, Scalar end, Scalar step=1, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
scalar_tensor(Scalar s, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
_to_copy(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, bool non_blocking=False, MemoryFormat? memory_format=None) -> Tensor
to.dtype(Tensor(a) self, ScalarType dtype, bool non_blocking=False, bool copy=False, MemoryFormat? memory_format=None) -> Tensor(a)
_pin_memory(Tensor self, Device? device=None) -> Tensor
bernoulli.p(Tensor self, float p, *, Generator? generator=None) -> Tensor
new_zeros(Tensor self, SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
new_ones(Tensor self, SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
new_empty(Tensor self, SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
new_full(Tensor self, SymInt[] size, Scalar fill_value, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor
contiguous(Tensor(a) self, *, MemoryFormat memory_format=0) -> Tensor(a)
expand_as(Tensor(a) self, Tensor other) -> Tensor(a)
view_as(Tensor(a) self, Tensor other) -> Tensor(a)
type_as(Tensor self, Tensor other) -> Tensor
abs_(Tensor(a!) self) -> Tensor(a!)
relu_(Tensor(a!) self) -> Tensor(a!)
sigmoid_(Tensor(a!) self) -> Tensor(a!)
exp_(Tensor(a!) self) -> Tensor(a!)
sqrt_(Tensor(a!) self) -> Tensor(a!)
index_put_(Tensor(a!) self, Tensor?[] indices, Tensor values, bool accumulate=False) -> Tensor(a!)
scatter_.src(Tensor(a!) self, int dim, Tensor index, Tensor src) -> Tensor(a!)
scatter_add_(Tensor(a!) self, int dim, Tensor index, Tensor src) -> Tensor(a!)
index_add_(Tensor(a!) self, int dim, Tensor index, Tensor source, *, Scalar alpha=1) -> Tensor(a!)
masked_fill_.Scalar(Tensor(a!) self, Tensor mask, Scalar value) -> Tensor(a!)
clamp_(Tensor(a!) self, Scalar? min=None, Scalar? max=None) -> Tensor(a!)
empty.memory_format(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor
linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor
layer_norm(Tensor input, SymInt[] normalized_shape, Tensor? weight=None, Tensor? bias=None, float eps=1.0000000000000001e-05, bool cudnn_enable=True) -> Tensor
group_norm(Tensor input, int num_groups, Tensor? weight=None, Tensor? bias=None, float eps=1.0000000000000001e-05, bool cudnn_enabled=True) -> Tensor
var_mean.correction(Tensor self, int[1]? dim=None, *, Scalar? correction=None, bool keepdim=False) -> (Tensor, Tensor)
hardswish(Tensor self) -> Tensor
softplus(Tensor self, Scalar beta=1, Scalar threshold=20) -> Tensor
mish(Tensor self) -> Tensor
logit(Tensor self, float? eps=None) -> Tensor
constant_pad_nd(Tensor self, SymInt[] pad, Scalar value=0) -> Tensor
bitwise_and.Tensor(Tensor self, Tensor other) -> Tensor
exp2(Tensor self) -> Tensor
where.ScalarOther(Tensor condition, Tensor self, Scalar other) -> Tensor
erfinv(Tensor self) -> Tensor
pixel_shuffle(Tensor self, int upscale_factor) -> Tensor
add.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)
mul.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
sub.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)
div.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
mm.out(Tensor self, Tensor mat2, *, Tensor(a!) out) -> Tensor(a!)
bmm.out(Tensor self, Tensor mat2, *, Tensor(a!) out) -> Tensor(a!)
addmm.out(Tensor self, Tensor mat1, Tensor mat2, *, Scalar beta=1, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)
exp.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
sin.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
sum.IntList_out(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None, Tensor(a!) out) -> Tensor(a!)
mean.out(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None, Tensor(a!) out) -> Tensor(a!)
cat.out(Tensor[] tensors, int dim=0, *, Tensor(a!) out) -> Tensor(a!)
clamp.out(Tensor self, Scalar? min=None, Scalar? max=None, *, Tensor(a!) out) -> Tensor(a!)
where.self_out(Tensor condition, Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
_sparse_addmm(Tensor self, Tensor mat1, Tensor mat2, *, Scalar beta=1, Scalar alpha=1) -> Tensor
""".strip().splitlines()


def _rsub(self, other, alpha=1):
    return ops.rsub(self, other, alpha=alpha)


def _all_dims(name):
    def reduce(self, dim=(), keepdim=False):  # ATen's dim=[] is every dim
        return getattr(ops, name)(self, tuple(dim) if len(dim) else tuple(range(self.ndim)), keepdim)
    return reduce


def _vector_norm(self, ord=2, dim=None, keepdim=False, dtype=None):
    return linalg.vector_norm(self, ord, dim, keepdim, dtype=dtype)


def _expand(self, size, implicit=False):
    return self.expand(*size)


def _squeeze_dims(self, dim):
    return ops.squeeze(self, tuple(dim))


def _slice(self, dim=0, start=None, end=None, step=1):
    index = [slice(None)] * self.ndim
    index[dim] = slice(start, end, step)
    return self[tuple(index)]


def _roll(self, shifts, dims=()):
    return ops.roll(self, tuple(shifts), tuple(dims) if len(dims) else None)


def _indices(indices):
    # ATen's None in an index list is a full slice of that dim
    return tuple(slice(None) if i is None else i for i in indices)


def _index(self, indices):
    return self[_indices(indices)]


def _index_put(self, indices, values, accumulate=False):
    return _index_put_(self.clone(), indices, values, accumulate)


def _index_put_(self, indices, values, accumulate=False):
    if all(i is not None for i in indices):
        return self.index_put_(tuple(indices), values, accumulate)
    if accumulate:
        self[_indices(indices)] += values
    else:
        self[_indices(indices)] = values
    return self


def _softmax(name):
    def softmax(self, dim, half_to_float):
        if half_to_float:
            raise RuntimeError(f"aten::_{name}: half_to_float=True is for CUDA half inputs, not supported on CPU")
        return getattr(F, name)(self, dim)
    return softmax


def _native_layer_norm(input, normalized_shape, weight, bias, eps):
    """(output, mean, rstd): the statistics over the last ``len(normalized_shape)`` dims, kept."""
    dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    mean = input.mean(dims, keepdim=True)
    rstd = (input.var(dims, unbiased=False, keepdim=True) + eps).rsqrt()
    out = F.layer_norm(input, tuple(normalized_shape), weight, bias, eps)
    return out, mean, rstd


def _embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    return F.embedding(indices, weight, None if padding_idx < 0 else padding_idx,
                          scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)


def _avg_pool2d(self, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    return F.avg_pool2d(self, kernel_size, tuple(stride) or None, padding, ceil_mode, count_include_pad,
                           divisor_override)


def _max_pool2d_with_indices(self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return F.max_pool2d(self, kernel_size, tuple(stride) or None, padding, dilation, ceil_mode,
                           return_indices=True)


_REDUCTIONS = ("none", "mean", "sum")  # at::Reduction's values


def _mse_loss(self, target, reduction=1):
    return F.mse_loss(self, target, reduction=_REDUCTIONS[reduction])


def _nll_loss_forward(self, target, weight, reduction, ignore_index):
    """(output, total_weight): total_weight sums the weights of the targets not ignored."""
    tg = ops
    out = F.nll_loss(self, target, weight, ignore_index=ignore_index, reduction=_REDUCTIONS[reduction])
    kept = target != ignore_index
    w = tg.ones(self.shape[-1], dtype=self.dtype) if weight is None else weight
    total = tg.where(kept, w.detach()[target.clamp(0, self.shape[-1] - 1)], 0.0).sum() \
        if reduction == 1 else tg.zeros((), dtype=self.dtype)
    return out, total


def _to_copy(self, dtype=None, layout=None, device=None, pin_memory=None, non_blocking=False, memory_format=None):
    return self.to(dtype=dtype or self.dtype, device=device, copy=True)


def _native_dropout(input, p, train):
    if not train or p == 0:
        return input.clone(), ops.ones_like(input, dtype=bool_)
    mask = ops.rand_like(input) >= p
    return input * mask / (1 - p), mask


def _pin_memory(self, device=None):
    raise RuntimeError("Cannot access accelerator device when none is available.")  # PyTorch's, on a CPU-only machine


def _bernoulli(self, p, generator=None):
    return ops.bernoulli(ops.full_like(self, p), generator=generator)


def _sparse_addmm(self, mat1, mat2, beta=1, alpha=1):
    out = (mat1 @ mat2) * alpha  # a sparse COO mat1 times a dense mat2
    return out if beta == 0 else out + self * beta  # beta=0 ignores self (its NaNs too), as ATen's


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    return F.layer_norm(input, tuple(normalized_shape), weight, bias, eps)


def _group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    return F.group_norm(input, num_groups, weight, bias, eps)


def _constant_pad_nd(self, pad, value=0):
    return F.pad(self, tuple(pad), value=value)


def _alias(self):
    return self.view_as(self)


ADAPTERS = {
    "rsub.Scalar": _rsub, "amax.default": _all_dims("amax"), "amin.default": _all_dims("amin"),
    "linalg_vector_norm.default": _vector_norm, "_unsafe_view.default": "reshape", "expand.default": _expand,
    "squeeze.dims": _squeeze_dims, "slice.Tensor": _slice, "roll.default": _roll, "index.Tensor": _index,
    "index_put.default": _index_put, "index_put_.default": _index_put_,
    "_softmax.default": _softmax("softmax"), "_log_softmax.default": _softmax("log_softmax"),
    "native_layer_norm.default": _native_layer_norm, "embedding.default": _embedding,
    "avg_pool2d.default": _avg_pool2d, "max_pool2d_with_indices.default": _max_pool2d_with_indices,
    "mse_loss.default": _mse_loss, "nll_loss_forward.default": _nll_loss_forward, "_to_copy.default": _to_copy,
    "_pin_memory.default": _pin_memory, "native_dropout.default": _native_dropout,
    "layer_norm.default": _layer_norm, "group_norm.default": _group_norm,
    "constant_pad_nd.default": _constant_pad_nd, "linear.default": F.linear, "softplus.default": F.softplus,
    "hardswish.default": F.hardswish, "mish.default": F.mish, "pixel_shuffle.default": F.pixel_shuffle,
    "bernoulli.p": _bernoulli, "_sparse_addmm.default": _sparse_addmm, "alias.default": _alias, "copy_.default": "Tensor.copy_",
}
