"""Single ops forward + backward, tapegrad against PyTorch CPU (when ``import torch`` works):
the elementwise, row and normalisation workloads of issue 12 (GELU, SiLU, dropout, layer_norm,
softmax, cross_entropy, embedding, batch_norm, group_norm), its single-pixel convolution
weight gradient, cumsum, reductions along dims (sum, mean, amax; vector_norm, logsumexp, prod,
max / min with indices, var / std; sum / mean's backward fill, mse_loss; max / min / argmax /
argmin along dims 0 and 1), the shrink/threshold/Huber kernels, in-place updates with nothing
recorded, topk, sort / argsort / unique / nonzero / masked_select (the sorting group; clamp with
tensor bounds and masked_select of broadcast input: clamp_select), gather /
scatter_add / index_add along a dim (the index group), cdist, lerp / addcmul / addcdiv (the
ternary group, float32 and float64), and small batched products (bmm, batched @ with broadcast
batch dims, einsum's batched contractions) with cosine_similarity (the bmm group).

Run: python benchmarks/bench_ops.py [--repeats 5] [--rounds 2] [--threads 1 2] [--only gelu]

Each case times ``y = op(x); y.backward(g)`` on float32 inputs that require grad (g a fixed
upstream gradient, so no loss-like reduction is timed outside the reductions' own cases). Each
figure is wall time, the best of ``--repeats`` medians (a median over >= 0.2 s and >= 10
iterations), and the best over ``--rounds`` rounds in which the two sides alternate: on a machine
shared with other work the best of many is the figure least disturbed by it. Each side runs in its
own process per thread count, so the two OpenMP runtimes never compete for the cores. ratio = tapegrad /
PyTorch (below 1: tapegrad is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import tapegrad as tg  # noqa: E402

try:
    import torch
except ImportError:  # the table then shows tapegrad alone
    torch = None


def median_seconds(fn, min_time=0.2, min_runs=10):
    fn()  # warm up
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def leaf(lib, a):
    return lib.tensor(a, requires_grad=True)


def fwd_bwd(lib, op, shape, seed=0, n_params=0, classes=None, param_dim=-1, dtype=np.float32):
    """A step running op(x, *params) forward and backward with a fixed upstream gradient; the
    params are vectors the size of x's dim ``param_dim``."""
    rng = np.random.default_rng(seed)
    x = leaf(lib, rng.standard_normal(shape).astype(dtype))
    # param_dim None: params of x's own shape (a loss's target); values in (0, 1)
    params = [leaf(lib, rng.standard_normal(shape[param_dim]).astype(np.float32)) if param_dim is not None else
              lib.tensor(rng.uniform(0, 1, shape).astype(np.float32)) for _ in range(n_params)]
    out_shape = () if classes or (param_dim is None and n_params) else shape
    g = lib.tensor(rng.standard_normal(out_shape).astype(dtype))
    target = lib.tensor(rng.integers(0, shape[-1], shape[0])) if classes else None
    F = lib.nn.functional

    def step():
        x.grad = None
        for p in params:
            p.grad = None
        y = op(F, x, *params) if target is None else op(F, x, target)
        y.backward(g)

    return step


def forward_only(lib, op, shape, dtype=np.float32, bias=False):
    """op(x, y) with recording off: y of x's shape, or a row of its last dim (a bias)."""
    rng = np.random.default_rng(0)
    x = lib.tensor((np.abs(rng.standard_normal(shape)) + 0.1).astype(dtype))
    y = lib.tensor(rng.standard_normal(shape[-1:] if bias else shape).astype(dtype))

    def step():
        with lib.no_grad():
            op(lib, x, y)

    return step


def fwd_only(lib, op, shape, dtype):
    """A step running op(x) forward only, without recording."""
    x = lib.tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype))
    F = lib.nn.functional

    def step():
        with lib.no_grad():
            op(F, x)

    return step


# float64 activations and row functions (vmath.h's double polynomials), and sin / cos / tan
_F64_OPS = (
    ("GELU", lambda F, x: F.gelu(x)),
    ("GELU tanh", lambda F, x: F.gelu(x, approximate="tanh")),
    ("SiLU", lambda F, x: F.silu(x)),
    ("softmax rows of 1000", lambda F, x: F.softmax(x, -1)),
    ("log_softmax rows of 1000", lambda F, x: F.log_softmax(x, -1)),
    ("erf", lambda F, x: x.erf()),
    ("tanh", lambda F, x: x.tanh()),
    ("sigmoid", lambda F, x: x.sigmoid()),
    ("softplus", lambda F, x: F.softplus(x)),
    ("sin", lambda F, x: x.sin()),
    ("cos", lambda F, x: x.cos()),
    ("tan", lambda F, x: x.tan()),
)


def conv_weight_grad(lib):
    """Conv2d(512, 512, 3, padding=1) on a 32x512x1x1 input, forward and the weight's gradient."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((32, 512, 1, 1)).astype(np.float32))
    w = leaf(lib, rng.standard_normal((512, 512, 3, 3)).astype(np.float32) * 0.02)
    g = lib.tensor(rng.standard_normal((32, 512, 1, 1)).astype(np.float32))

    def step():
        w.grad = None
        lib.nn.functional.conv2d(x, w, padding=1).backward(g)

    return step


def embedding_step(lib, num, dim, idx_shape, **kw):
    """Embedding(num, dim) looked up at random indices of idx_shape, forward and the weight's gradient."""
    rng = np.random.default_rng(0)
    w = leaf(lib, rng.standard_normal((num, dim)).astype(np.float32))
    idx = lib.tensor(rng.integers(0, num, idx_shape))
    g = lib.tensor(rng.standard_normal(idx_shape + (dim,)).astype(np.float32))

    def step():
        w.grad = None
        lib.nn.functional.embedding(idx, w, **kw).backward(g)

    return step


def traffic_floor(lib, shape):
    """The memory traffic of a one-pass elementwise op's forward and backward with no arithmetic:
    a copy of x (read x, write y) and x * g (read both, write one). An op whose time is near this
    runs at the speed the machine moves its bytes; no kernel can go below it by much."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal(shape).astype(np.float32))
    g = lib.tensor(rng.standard_normal(shape).astype(np.float32))

    def step():
        x.clone()
        x * g

    return step


def index_step(lib, op, dim, backward=False, dtype=np.float32):
    """op(x, idx, src) on x and src 1000x1000 standard normal and an int64 index of 1000x1000 (gather,
    scatter_add along ``dim``) or of 1000 entries (index_add along ``dim``), values in [0, 1000):
    with nothing recorded, or forward and backward into x and src."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((1000, 1000)).astype(dtype), requires_grad=backward)
    src = lib.tensor(rng.standard_normal((1000, 1000)).astype(dtype), requires_grad=backward)
    idx = lib.tensor(rng.integers(0, 1000, (1000, 1000)))
    vec = lib.tensor(rng.integers(0, 1000, 1000))
    g = lib.tensor(rng.standard_normal((1000, 1000)).astype(dtype))

    def step():
        x.grad = src.grad = None
        op(x, dim, idx, vec, src).backward(g)

    def forward():
        with lib.no_grad():
            op(x, dim, idx, vec, src)

    return step if backward else forward


_INDEX_OPS = (
    ("gather", lambda x, d, i, v, s: x.gather(d, i)),
    ("scatter_add", lambda x, d, i, v, s: x.scatter_add(d, i, s)),
    ("index_add", lambda x, d, i, v, s: x.index_add(d, v, s)),
)


# issue 12: clamp with tensor bounds (clamp.h's one pass, forward and gradients), clamp_ through a
# strided view, and masked_select of a broadcast or transposed input (read where it lies)
_CLAMP_BOUNDS = {  # the bounds' shapes against x's 1000x1000
    "full": ((1000, 1000), (1000, 1000)),
    "broadcast row / column": ((1000,), (1000, 1)),
}

CASES = {
    "floor": [(f"memory floor: x.clone() and x * g, {n} f32", lambda lib, s=s: traffic_floor(lib, s))
              for n, s in (("1e6", (1000, 1000)), ("1e7", (10000, 1000)))],
    "silu": [(f"SiLU {n} f32", lambda lib, s=s: fwd_bwd(lib, lambda F, x: F.silu(x), s))
             for n, s in (("1e6", (1000, 1000)), ("1e7", (10000, 1000)))],
    "dropout": [(f"dropout p=0.5 {n} f32 (training)", lambda lib, s=s: fwd_bwd(lib, lambda F, x: F.dropout(x, 0.5), s))
                for n, s in (("1e6", (1000, 1000)), ("1e7", (10000, 1000)))],
    "embedding": [("Embedding 1000x128 at 20x35 indices (the LSTM LM's)", lambda lib: embedding_step(lib, 1000, 128, (20, 35))),
                  ("Embedding 50000x512 at 64x128 indices", lambda lib: embedding_step(lib, 50000, 512, (64, 128))),
                  ("Embedding 1000x128 at 20x35, padding_idx=0, scale_grad_by_freq",
                   lambda lib: embedding_step(lib, 1000, 128, (20, 35), padding_idx=0, scale_grad_by_freq=True))],
    "gelu": [("GELU 1e6 f32", lambda lib: fwd_bwd(lib, lambda F, x: F.gelu(x), (1000, 1000))),
             ("GELU 1e7 f32", lambda lib: fwd_bwd(lib, lambda F, x: F.gelu(x), (10000, 1000))),
             ("GELU tanh 1e6 f32", lambda lib: fwd_bwd(lib, lambda F, x: F.gelu(x, approximate="tanh"),
                                                       (1000, 1000)))],
    "layer_norm": [(f"layer_norm {n} f32 (rows of 1024, weight, bias)",
                    lambda lib, r=r: fwd_bwd(lib, lambda F, x, w, b: F.layer_norm(x, (1024,), w, b), (r, 1024),
                                             n_params=2))
                   for n, r in (("1e6", 1024), ("1e7", 10240))],
    "softmax": [("softmax rows of 1024, 1e6 f32", lambda lib: fwd_bwd(lib, lambda F, x: F.softmax(x, -1), (1024, 1024))),
                ("log_softmax rows of 1024, 1e6 f32",
                 lambda lib: fwd_bwd(lib, lambda F, x: F.log_softmax(x, -1), (1024, 1024)))],
    # the one-pass pointwise kernels (csrc/kernels/pointwise.h) and the losses built on them
    "activations": [(f"{name} 1e6 f32", lambda lib, f=f: fwd_bwd(lib, f, (1000, 1000))) for name, f in (
        ("sigmoid", lambda F, x: F.sigmoid(x)),
        ("tanh", lambda F, x: F.tanh(x)),
        ("softplus", lambda F, x: F.softplus(x)),
        ("logsigmoid", lambda F, x: F.logsigmoid(x)),
        ("elu", lambda F, x: F.elu(x)),
        ("leaky_relu", lambda F, x: F.leaky_relu(x, 0.1)),
        ("hardswish", lambda F, x: F.hardswish(x)),
        ("mish", lambda F, x: F.mish(x)),
        ("erf", lambda F, x: x.erf()),
    )] + [("binary_cross_entropy_with_logits 1e6 f32 (mean)",
           lambda lib: fwd_bwd(lib, lambda F, x, y: F.binary_cross_entropy_with_logits(x, y), (1000, 1000),
                               n_params=1, param_dim=None)),
          ("mse_loss 1e6 f32 (mean)",
           lambda lib: fwd_bwd(lib, lambda F, x, y: F.mse_loss(x, y), (1000, 1000), n_params=1, param_dim=None))],
    # session 19's one-pass kernels of the ops that were where-composites or numpy chains
    "shrink": [(f"{name} 1e6 f32", lambda lib, f=f: fwd_bwd(lib, f, (1000, 1000))) for name, f in (
        ("hardshrink", lambda F, x: F.hardshrink(x, 0.5)),
        ("softshrink", lambda F, x: F.softshrink(x, 0.5)),
        ("threshold", lambda F, x: F.threshold(x, 0.1, 20.0)),
        ("frac", lambda F, x: x.frac()),
        ("x ** 3", lambda F, x: x ** 3),
        ("nan_to_num", lambda F, x: x.nan_to_num()),
        ("prelu (one weight)", lambda F, x: F.prelu(x, x.new_full((1,), 0.25))),
    )] + [(f"{name} 1e6 f32 (mean)", lambda lib, f=f: fwd_bwd(lib, f, (1000, 1000), n_params=1, param_dim=None))
          for name, f in (("smooth_l1_loss", lambda F, x, y: F.smooth_l1_loss(x, y)),
                          ("huber_loss", lambda F, x, y: F.huber_loss(x, y)))],
    # in-place updates with nothing recorded (an optimizer or an EMA written by hand), and topk
    "inplace": [(f"{name}, 1e6 f32, no grad", lambda lib, f=f: no_grad_step(lib, f)) for name, f in (
        ("x.add_(y)", lambda x, y: x.add_(y)),
        ("x.mul_(0.999).add_(y, alpha=0.001)", lambda x, y: x.mul_(0.999).add_(y, alpha=0.001)),
        ("x.add_(y, alpha=-0.01)", lambda x, y: x.add_(y, alpha=-0.01)),
        ("x.sub(y, alpha=0.5)", lambda x, y: x.sub(y, alpha=0.5)),
        ("x.copy_(y)", lambda x, y: x.copy_(y)),
        ("y.relu_()", lambda x, y: y.relu_()),
    )],
    # cdist's product route (p = 2): 1024 x 128 rows against 1024, forward alone and forward + backward
    "cdist": [("cdist 1024x128 vs 1024x128 f32, no grad", lambda lib: no_grad_step(
                  lib, lambda x, y: lib.cdist(x, y), (1024, 128))),
              ("cdist 1024x128 vs 1024x128 f32, fw + bw (both inputs)", lambda lib: cdist_step(lib))],
    "topk": [(f"topk k={k} of {s[0]}x{s[1]} along dim {d}, f32", lambda lib, s=s, k=k, d=d: no_grad_step(
        lib, lambda x, y: x.topk(k, d), s)) for s, k, d in (((1000, 1000), 5, 1), ((1000, 1000), 5, 0),
                                                           ((64, 50000), 5, 1), ((1000, 1000), 500, 1))],
    # sort / argsort / unique / nonzero (csrc/kernels/sort.h, select.h's nonzero; numpy's before), forward
    "sorting": [(name, lambda lib, f=f, a=a: array_step(lib, f, a)) for name, f, a in (
        ("sort 1000x1000 f32 along dim 1", lambda L, x: L.sort(x, 1), ("normal", (1000, 1000), np.float32)),
        ("argsort 1000x1000 f32 along dim 1", lambda L, x: L.argsort(x, 1), ("normal", (1000, 1000), np.float32)),
        ("sort 1000x1000 f32 along dim 0", lambda L, x: L.sort(x, 0), ("normal", (1000, 1000), np.float32)),
        ("sort 1e6 f32 in one row", lambda L, x: L.sort(x), ("normal", (1000000,), np.float32)),
        ("sort 1000x1000 f32 stable, descending", lambda L, x: L.sort(x, dim=1, descending=True, stable=True),
         ("normal", (1000, 1000), np.float32)),
        ("sort 1000x1000 f64 along dim 1", lambda L, x: L.sort(x, 1), ("normal", (1000, 1000), np.float64)),
        ("sort 1000x1000 i64 along dim 1", lambda L, x: L.sort(x, 1), ("ints", (1000, 1000), np.int64)),
        ("topk k=5 of 1000x1000 f32 along dim 0", lambda L, x: L.topk(x, 5, 0), ("normal", (1000, 1000), np.float32)),
        ("unique of 16 i64", lambda L, x: L.unique(x), ("ints", (16,), np.int64)),
        ("unique of 16 i64, inverse + counts", lambda L, x: L.unique(x, return_inverse=True, return_counts=True),
         ("ints", (16,), np.int64)),
        ("unique 1e6 i64", lambda L, x: L.unique(x), ("ints", (1000000,), np.int64)),
        ("unique 1e6 i64, inverse", lambda L, x: L.unique(x, return_inverse=True), ("ints", (1000000,), np.int64)),
        ("unique 1e6 i64, inverse + counts", lambda L, x: L.unique(x, return_inverse=True, return_counts=True),
         ("ints", (1000000,), np.int64)),
        ("nonzero 1e6 f32 (half nonzero)", lambda L, x: L.nonzero(x), ("half", (1000, 1000), np.float32)),
        ("nonzero(as_tuple=True) 1e6 f32", lambda L, x: L.nonzero(x, as_tuple=True), ("half", (1000, 1000), np.float32)),
        ("argwhere 1e6 f32", lambda L, x: L.argwhere(x), ("half", (1000, 1000), np.float32)),
        ("masked_select 1e6 f32 (x > 0)", lambda L, x: L.masked_select(x, x > 0), ("normal", (1000, 1000), np.float32)),
    )],
    "f64": [(f"{name} 1e6 f64, {kind}", lambda lib, f=f, k=kind: (fwd_only(lib, f, (1000, 1000), np.float64)
                                                                  if k == "forward" else
                                                                  fwd_bwd(lib, f, (1000, 1000), dtype=np.float64)))
            for name, f in _F64_OPS for kind in ("forward", "forward + backward")],
    "trig": [(f"{name} 1e6 f32, {kind}", lambda lib, f=f, k=kind: (fwd_only(lib, f, (1000, 1000), np.float32)
                                                                   if k == "forward" else fwd_bwd(lib, f, (1000, 1000))))
             for name, f in _F64_OPS[-3:] for kind in ("forward", "forward + backward")],
    "cross_entropy": [("cross_entropy 50k classes, batch 64, f32",
                       lambda lib: fwd_bwd(lib, lambda F, x, t: F.cross_entropy(x, t), (64, 50000), classes=True))],
    "conv": [("Conv2d(512, 512, 3, padding=1) on 32x512x1x1, forward + weight grad", conv_weight_grad)],
    # running sums along the innermost dim (independent chains) and across rows (vectorised)
    "cumsum": [(f"cumsum {s[0]}x{s[1]} f32 along dim {d}", lambda lib, s=s, d=d: fwd_bwd(lib, lambda F, x: x.cumsum(d), s))
               for s, d in (((1000, 1000), 1), ((1000, 1000), 0))] +
              [("cumsum 1e7 f32 (one line)", lambda lib: fwd_bwd(lib, lambda F, x: x.cumsum(0), (10**7,)))],
    "batch_norm": [(f"batch_norm {'x'.join(map(str, s))} f32 (training, running stats, weight, bias)",
                    lambda lib, s=s: batch_norm_step(lib, s))
                   for s in ((32, 16, 32, 32), (32, 64, 8, 8), (100, 16, 80, 80))],
    "group_norm": [(f"group_norm {'x'.join(map(str, s))} f32, {g} groups (weight, bias)",
                    lambda lib, s=s, g=g: fwd_bwd(lib, lambda F, x, w, b: F.group_norm(x, g, w, b), s, n_params=2,
                                                  param_dim=1))
                   for s, g in (((32, 16, 32, 32), 4), ((32, 64, 8, 8), 32), ((100, 16, 80, 80), 4))],
    # forwards on numpy's own loops split over the threads (csrc/elementwise.h), a bias broadcast's
    # add (native at one thread too), and ones_like's threaded fill
    "binary": [(f"{name} 1e6 {dt}", lambda lib, f=f, d=d, b=b: forward_only(lib, f, (1000, 1000), d, b))
               for name, f, b in (
                   ("maximum(x, y)", lambda L, x, y: L.maximum(x, y), False),
                   ("atan2(x, y)", lambda L, x, y: L.atan2(x, y), False),
                   ("clamp(x, 0.2, 0.8)", lambda L, x, y: L.clamp(x, 0.2, 0.8), False),
                   ("clamp(x, min=y)", lambda L, x, y: L.clamp(x, min=y), False),
                   ("x ** 2", lambda L, x, y: x ** 2, False),
                   ("x ** 0.5", lambda L, x, y: x ** 0.5, False),
                   ("exp2(x)", lambda L, x, y: L.exp2(x), False),
                   ("round(x)", lambda L, x, y: L.round(x), False),
                   ("log(x)", lambda L, x, y: L.log(x), False),
                   ("exp(x)", lambda L, x, y: L.exp(x), False),
                   ("x + bias", lambda L, x, y: x + y, True),
                   ("ones_like(x)", lambda L, x, y: L.ones_like(x), False))
               for dt, d in (("f32", np.float32), ("f64", np.float64))],
    # lerp / addcmul / addcdiv and their in-place forms (csrc/kernels/ternary.h): forward with
    # nothing recorded, and forward + backward (input and end / tensor1 require grad; for the
    # tensor weight, the weight too)
    "ternary": [(f"{name} 1e6 {np.dtype(dt).name[:1]}{np.dtype(dt).itemsize * 8}, {'fw + bw' if bw else 'no grad'}",
                 lambda lib, f=f, dt=dt, bw=bw, k=k: ternary_step(lib, f, dt, bw, k))
                for dt in (np.float32, np.float64) for name, f, k, bws in (
                    ("lerp(x, y, 0.3)", lambda L, x, y, z: L.lerp(x, y, 0.3), 2, (False, True)),
                    ("lerp(x, y, w)", lambda L, x, y, z: L.lerp(x, y, z), 3, (False, True)),
                    ("x.lerp_(y, 0.1)", lambda L, x, y, z: x.lerp_(y, 0.1), 2, (False,)),
                    ("addcmul(x, y, z, value=0.5)", lambda L, x, y, z: L.addcmul(x, y, z, value=0.5), 2, (False, True)),
                    ("x.addcmul_(y, z, value=1e-3)", lambda L, x, y, z: x.addcmul_(y, z, value=1e-3), 2, (False,)),
                    ("addcdiv(x, y, z, value=0.5)", lambda L, x, y, z: L.addcdiv(x, y, z, value=0.5), 2, (False, True)),
                    ("x.addcdiv_(y, z, value=1e-3)", lambda L, x, y, z: x.addcdiv_(y, z, value=1e-3), 2, (False,)),
                ) for bw in bws],
    # the transcendental forwards of session 20 (vmath.h): the log family, float32 sin / cos in double, erf;
    # neg(x) first, a pass with no arithmetic: 1e6 elements read and written take 0.27 / 0.54 ms (f32 /
    # f64, one thread) either side, about 0.8 times PyTorch's float32 sin and float64 log (session 25)
    "math2": [(f"{name} 1e6 {dt}", lambda lib, f=f, d=d, pos=pos: math_forward(lib, f, d, pos))
              for name, f, pos, dts in (
                  ("neg(x) (memory traffic alone)", lambda L, F, x: L.neg(x), False, "both"),
                  ("log(x)", lambda L, F, x: L.log(x), True, "both"),
                  ("log2(x)", lambda L, F, x: L.log2(x), True, "both"),
                  ("log10(x)", lambda L, F, x: L.log10(x), True, "both"),
                  ("log1p(x)", lambda L, F, x: L.log1p(x), True, "both"),
                  ("expm1(x)", lambda L, F, x: L.expm1(x), False, "both"),
                  ("exp2(x)", lambda L, F, x: L.exp2(x), False, "both"),
                  ("sin(x)", lambda L, F, x: L.sin(x), False, "f32"),
                  ("cos(x)", lambda L, F, x: L.cos(x), False, "f32"),
                  ("softplus(x)", lambda L, F, x: F.softplus(x), False, "f64"),
                  ("logsigmoid(x)", lambda L, F, x: F.logsigmoid(x), False, "f64"),
                  ("erf(x)", lambda L, F, x: L.erf(x), False, "f64"),
                  ("erf(4x)", lambda L, F, x: L.erf(4 * x), False, "f64"),
                  ("erfc(x)", lambda L, F, x: L.erfc(x), False, "f64"))
              for dt, d in (("f32", np.float32), ("f64", np.float64)) if dts in ("both", dt)],
    # the float64 log family and erf / erfc forwards alone (vmath.h's log, erf, erfc_below3 /
    # erfc_to6, GELU's erfc_upto6; log2 / log10 numpy's), without the rest of f64 and math2
    "math64": [(f"{name} 1e6 f64", lambda lib, f=f, pos=pos: math_forward(lib, f, np.float64, pos))
               for name, f, pos in (
                   ("neg(x) (memory traffic alone)", lambda L, F, x: L.neg(x), False),
                   ("log(x)", lambda L, F, x: L.log(x), True),
                   ("log2(x)", lambda L, F, x: L.log2(x), True),
                   ("log10(x)", lambda L, F, x: L.log10(x), True),
                   ("erf(x)", lambda L, F, x: L.erf(x), False),
                   ("erf(4x)", lambda L, F, x: L.erf(4 * x), False),
                   ("erfc(x)", lambda L, F, x: L.erfc(x), False),
                   ("erfc(4x)", lambda L, F, x: L.erfc(4 * x), False),
                   ("gelu(x)", lambda L, F, x: F.gelu(x), False))],
    # sum / mean / amax along dims (csrc/kernels/reduce.h): rows, columns, everything, a leading block
    "reductions": [(f"{name} f32", lambda lib, s=s, f=f: reduce_step(lib, f, s)) for name, s, f in (
        ("sum(1) 1000x1000", (1000, 1000), lambda x: x.sum(1)),
        ("mean(1) 1000x1000", (1000, 1000), lambda x: x.mean(1)),
        ("amax(1) 1000x1000", (1000, 1000), lambda x: x.amax(1)),
        ("sum(0) 1000x1000", (1000, 1000), lambda x: x.sum(0)),
        ("sum() 1000x1000", (1000, 1000), lambda x: x.sum()),
        ("sum(-1) 64x512x1024", (64, 512, 1024), lambda x: x.sum(-1)),
        ("sum((0, 1)) 64x512x1024", (64, 512, 1024), lambda x: x.sum((0, 1))),
    )],
    # the reductions beyond a sum (csrc/kernels/reduce.h): forward + backward in float32 and float64
    # (prod over values near 1, whose products stay finite), then some forwards alone
    "reductions2": [(f"{name} 1000x1000 {np.dtype(dt).name[:1]}{np.dtype(dt).itemsize * 8}{'' if bw else ' forward'}",
                     lambda lib, f=f, dt=dt, bw=bw, name=name: reduce_step(lib, f, (1000, 1000), dt, bw,
                                                                          near_one=name == "prod(1)"))
                    for bw in (True, False) for name, f in (
        ("vector_norm(dim=1)", lambda x: _lib(x).linalg.vector_norm(x, dim=1)),
        ("logsumexp(1)", lambda x: _lib(x).logsumexp(x, 1)),
        ("prod(1)", lambda x: x.prod(1)),
        ("max(1) values", lambda x: x.max(1)[0]),
        ("min(0) values", lambda x: x.min(0)[0]),
        ("var(1)", lambda x: x.var(1)),
        ("std(1)", lambda x: x.std(1)),
        ("mean(1)", lambda x: x.mean(1)),
    ) for dt in (np.float32, np.float64)],
    # sum / mean's backward as one threaded fill that becomes .grad, mse_loss's forward as one
    # threaded pass (csrc/kernels/reduce.h's broadcast_middle and sumsq_diff), float32 and float64
    "reductions3": [(f"{name} 1000x1000 {np.dtype(dt).name[:1]}{np.dtype(dt).itemsize * 8}{'' if bw else ' forward'}",
                     lambda lib, f=f, dt=dt, bw=bw, name=name: (mse_step(lib, dt, bw) if name == "mse_loss" else
                                                                reduce_step(lib, f, (1000, 1000), dt, bw)))
                    for bw in (True, False) for name, f in (
        ("sum(1)", lambda x: x.sum(1)),
        ("sum(0)", lambda x: x.sum(0)),
        ("sum()", lambda x: x.sum()),
        ("mean(1)", lambda x: x.mean(1)),
        ("mse_loss", None),
    ) for dt in (np.float32, np.float64)],
    # max / min with indices and argmax / argmin along dims 1 (rows) and 0 (columns), forward alone,
    # float32 and float64 (csrc/kernels/reduce.h's select_middle; numpy's argmax before)
    "select": [(f"{name} 1000x1000 {np.dtype(dt).name[:1]}{np.dtype(dt).itemsize * 8} forward",
                lambda lib, f=f, dt=dt: select_step(lib, f, dt))
               for name, f in (
        ("max(1)", lambda x: x.max(1)),
        ("max(0)", lambda x: x.max(0)),
        ("min(1)", lambda x: x.min(1)),
        ("min(0)", lambda x: x.min(0)),
        ("argmax(1)", lambda x: x.argmax(1)),
        ("argmax(0)", lambda x: x.argmax(0)),
        ("argmin(1)", lambda x: x.argmin(1)),
        ("argmin(0)", lambda x: x.argmin(0)),
        ("argmax()", lambda x: x.argmax()),
    ) for dt in (np.float32, np.float64)],
    # F.interpolate (bilinear, nearest) and adaptive_avg_pool2d on NCHW planes (csrc/kernels/resample.cpp)
    "resample": [(f"{name} 16x64x{h}x{h} f32{'' if bw else ' forward'}",
                  lambda lib, f=f, h=h, bw=bw: resample_step(lib, f, (16, 64, h, h), bw))
                 for bw in (False, True) for name, f, h in (
        ("interpolate x2 bilinear", lambda F, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), 32),
        ("interpolate x2 bilinear align_corners", lambda F, x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                                              align_corners=True), 32),
        ("interpolate x0.5 bilinear", lambda F, x: F.interpolate(x, scale_factor=0.5, mode="bilinear"), 32),
        ("interpolate x2 nearest", lambda F, x: F.interpolate(x, scale_factor=2, mode="nearest"), 32),
        ("interpolate size 45 nearest", lambda F, x: F.interpolate(x, size=45, mode="nearest"), 32),
        ("adaptive_avg_pool2d(1)", lambda F, x: F.adaptive_avg_pool2d(x, 1), 32),
        ("adaptive_avg_pool2d(7)", lambda F, x: F.adaptive_avg_pool2d(x, 7), 14),
        ("adaptive_avg_pool2d(5)", lambda F, x: F.adaptive_avg_pool2d(x, 5), 14),
        ("adaptive_max_pool2d(7)", lambda F, x: F.adaptive_max_pool2d(x, 7), 14),
    )],
    # normal samples by Box-Muller from the generator's raw words (csrc/kernels/random.h) and the
    # float32 <-> float16 / bfloat16 conversions every 16-bit op goes through (convert.h)
    "index": [(f"{name} 1000x1000 f32 along dim {d}, {'fw + bw' if bw else 'no grad'}",
               lambda lib, f=f, d=d, bw=bw: index_step(lib, f, d, bw))
              for bw in (False, True) for name, f in _INDEX_OPS for d in (0, 1)]
              + [("scatter_add_ into zeros 1000x1000 f32 along dim 1, no grad (issue 12's)",
                  lambda lib: index_step(lib, lambda x, d, i, v, s: _lib(x).zeros(1000, 1000).scatter_add_(1, i, s), 1))],
    "sampling16": [(f"{name} 1e6", lambda lib, f=f: no_grad_step(lib, lambda x, y: f(lib, x)))
                   for name, f in (
                       ("randn f32", lambda L, x: L.randn(1000, 1000)),
                       ("randn f64", lambda L, x: L.randn(1000, 1000, dtype=L.float64)),
                       ("x.normal_(0, 0.02)", lambda L, x: x.normal_(0, 0.02)),
                       ("x.half()", lambda L, x: x.half()),
                       ("x.bfloat16()", lambda L, x: x.bfloat16()),
                       ("x.half().float()", lambda L, x: x.half().float()),
                       ("x.bfloat16() * 2", lambda L, x: x.bfloat16() * 2))],
    # elementwise ops on 16-bit tensors: each in one fused pass (csrc/kernels/convert.h's map_half:
    # a block widened to float32, the float32 kernel, rounded once), forward alone on 1e6 elements,
    # and forward + backward of the common activations (their VJPs fused the same way)
    "unary16": [(f"{name} {dt} 1e6", lambda lib, f=f, dt=dt, pos=pos: half_step(lib, f, dt, pos))
                for dt in ("f16", "bf16") for name, f, pos in (
                    ("exp", lambda F, x: x.exp(), False),
                    ("log", lambda F, x: x.log(), True),
                    ("sqrt", lambda F, x: x.sqrt(), True),
                    ("rsqrt", lambda F, x: x.rsqrt(), True),
                    ("tanh", lambda F, x: x.tanh(), False),
                    ("sigmoid", lambda F, x: x.sigmoid(), False),
                    ("relu", lambda F, x: F.relu(x), False),
                    ("gelu", lambda F, x: F.gelu(x), False),
                    ("gelu tanh", lambda F, x: F.gelu(x, approximate="tanh"), False),
                    ("silu", lambda F, x: F.silu(x), False),
                    ("neg", lambda F, x: -x, False),
                    ("abs", lambda F, x: x.abs(), False),
                    ("x * x", lambda F, x: x * x, False),
                    ("sum()", lambda F, x: x.sum(), False),
                    ("mean(1)", lambda F, x: x.mean(1), False))]
    + [(f"{name} {dt} 1e6 fwd+bwd", lambda lib, f=f, dt=dt: half_step(lib, f, dt, False, backward=True))
       for dt in ("f16", "bf16") for name, f in (
           ("relu", lambda F, x: F.relu(x)),
           ("gelu", lambda F, x: F.gelu(x)),
           ("silu", lambda F, x: F.silu(x)),
           ("sigmoid", lambda F, x: x.sigmoid()),
           ("tanh", lambda F, x: x.tanh()))],
    # sums and means of 16-bit tensors (csrc/kernels/reduce.h's reduce_middle_half: float32 sums, each
    # run widened in L1, rounded once), and the ops on the sign bit (convert.h's bits_half) beside
    # sqrt (map_half), forward alone on 1000 x 1000
    "reduce16": [(f"{name} {dt} 1000x1000", lambda lib, f=f, dt=dt: half_step(lib, f, dt, False))
                 for dt in ("f16", "bf16") for name, f in (
                     ("sum()", lambda F, x: x.sum()),
                     ("sum(0)", lambda F, x: x.sum(0)),
                     ("sum(1)", lambda F, x: x.sum(1)),
                     ("mean()", lambda F, x: x.mean()),
                     ("mean(1)", lambda F, x: x.mean(1)))],
    "bits16": [(f"{name} {dt} 1e6", lambda lib, f=f, dt=dt, pos=pos: half_step(lib, f, dt, pos))
               for dt in ("f16", "bf16") for name, f, pos in (
                   ("sqrt", lambda F, x: x.sqrt(), True),
                   ("relu", lambda F, x: F.relu(x), False),
                   ("neg", lambda F, x: -x, False),
                   ("abs", lambda F, x: x.abs(), False))],
    # column sums (reduce.h's chunks of rows, their partials combined), forward alone
    "colsum": [(f"{name} {s[0]}x{s[1]} {np.dtype(dt).name[:1]}{np.dtype(dt).itemsize * 8} forward",
                lambda lib, f=f, dt=dt, s=s: reduce_step(lib, f, s, dt, False))
               for s in ((1000, 1000), (4096, 256))
               for name, f in (("sum(0)", lambda x: x.sum(0)), ("mean(0)", lambda x: x.mean(0)))
               for dt in (np.float32, np.float64)]
    # and of 16-bit tensors (reduce.h's reduce_middle_half, each element widened in a register)
    + [(f"{name} {s[0]}x{s[1]} {dt} forward", lambda lib, f=f, dt=dt, s=s: half_step(lib, f, dt, False, shape=s))
       for s in ((1000, 1000), (4096, 256))
       for name, f in (("sum(0)", lambda F, x: x.sum(0)), ("mean(0)", lambda F, x: x.mean(0)))
       for dt in ("f16", "bf16")],
    # issue 12's clamp, pad and triangles: forward alone (nothing recorded) and forward + backward
    "clamp_select": [(f"x.clamp(lo, hi) 1e6 f32, {b} bounds, {how}",
                      lambda lib, b=b, how=how: clamp_step(lib, _CLAMP_BOUNDS[b], how))
                     for b in _CLAMP_BOUNDS for how in ("no grad", "fw + bw", "fw + bw, bounds too")]
    + [("x[:, ::2].clamp_(-0.5, 0.5) 1000x2000 f32, no grad",
        lambda lib: no_grad_step(lib, lambda x, y: x[:, ::2].clamp_(-0.5, 0.5), (1000, 2000))),
       ("masked_select 1e6 f32, input a broadcast row", lambda lib: masked_select_step(lib, "row")),
       ("masked_select 1e6 f32, input transposed", lambda lib: masked_select_step(lib, "transposed"))],
    "clamp_pad_tri": [(f"{name} {'x'.join(map(str, s))} f32, {'fw + bw' if bw else 'no grad'}",
                       lambda lib, f=f, s=s, bw=bw: shape_step(lib, f, s, bw))
                      for name, f, s in (
                          ("x.clamp(min=0)", lambda L, x: x.clamp(min=0), (1000, 1000)),
                          ("x.clamp(-0.5, 0.5)", lambda L, x: x.clamp(-0.5, 0.5), (1000, 1000)),
                          ("x.clamp(lo, hi) tensor bounds", lambda L, x: x.clamp(x[0] * 0 - 0.5, x[:, :1] * 0 + 0.5),
                           (1000, 1000)),
                          ("F.pad constant 1", lambda L, x: L.nn.functional.pad(x, (1, 1, 1, 1)), (32, 64, 32, 32)),
                          ("F.pad reflect 1", lambda L, x: L.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"),
                           (32, 64, 32, 32)),
                          ("F.pad replicate 1", lambda L, x: L.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"),
                           (32, 64, 32, 32)),
                          ("tril", lambda L, x: x.tril(), (1000, 1000)),
                          ("triu(1)", lambda L, x: x.triu(1), (1000, 1000)),
                          ("tril batched", lambda L, x: x.tril(), (64, 128, 128)))
                      for bw in (False, True)]
    + [("x.clamp_(min=0) 1000x1000 f32, no grad", lambda lib: no_grad_step(lib, lambda x, y: x.clamp_(min=0))),
       ("x.clamp_(-0.5, 0.5) 1000x1000 f32, no grad", lambda lib: no_grad_step(lib, lambda x, y: x.clamp_(-0.5, 0.5)))],
}

# issue 12's small batched products (bmm, batched @ with broadcast batch dims, einsum's batched
# contractions) and cosine_similarity, forward alone and forward + backward
_BMM_OPS = (
    [(f"bmm {b}x{m}x{k} @ {b}x{k}x{n}", lambda L, x, y: L.bmm(x, y), ((b, m, k), (b, k, n)))
     for b, m, k, n in ((256, 32, 32, 32), (64, 128, 128, 128), (1024, 8, 8, 8), (512, 16, 16, 16),
                        (256, 64, 8, 64), (256, 8, 64, 8), (128, 64, 64, 16),
                        # attention heads (batch * heads 64, seq 64, head dim 32): q k^T and p v
                        (64, 64, 32, 64), (64, 64, 64, 32))]
    + [("matmul 256x32x32 @ 32x32 (broadcast)", lambda L, x, y: x @ y, ((256, 32, 32), (32, 32))),
       ("matmul 8x1x32x32 @ 1x16x32x32 (broadcast)", lambda L, x, y: x @ y, ((8, 1, 32, 32), (1, 16, 32, 32))),
       ("einsum bij,bjk->bik 256x32x32", lambda L, x, y: L.einsum("bij,bjk->bik", x, y),
        ((256, 32, 32), (256, 32, 32))),
       ("einsum bhqd,bhkd->bhqk 8x8x64x32", lambda L, x, y: L.einsum("bhqd,bhkd->bhqk", x, y),
        ((8, 8, 64, 32), (8, 8, 64, 32))),
       ("einsum ij,jk->ik 256x256", lambda L, x, y: L.einsum("ij,jk->ik", x, y), ((256, 256), (256, 256))),
       ("einsum bi,bi->b 1024x256", lambda L, x, y: L.einsum("bi,bi->b", x, y), ((1024, 256), (1024, 256))),
       ("cosine_similarity 1000x1000 dim 1", lambda L, x, y: L.nn.functional.cosine_similarity(x, y, 1),
        ((1000, 1000), (1000, 1000)))])
CASES["bmm"] = [(f"{name}, {'fw + bw' if bw else 'forward'}", lambda lib, f=f, s=s, bw=bw: product_step(lib, f, s, bw))
                for bw in (False, True) for name, f, s in _BMM_OPS]


def product_step(lib, op, shapes, backward):
    """op(lib, *xs) on standard normal float32 operands of ``shapes``: forward alone with nothing
    recorded, or forward and backward (every operand a leaf, a fixed upstream gradient)."""
    rng = np.random.default_rng(0)
    xs = [lib.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=backward) for s in shapes]
    with lib.no_grad():
        out_shape = tuple(op(lib, *xs).shape)
    g = lib.tensor(rng.standard_normal(out_shape).astype(np.float32))

    def forward():
        with lib.no_grad():
            op(lib, *xs)

    def step():
        for x in xs:
            x.grad = None
        op(lib, *xs).backward(g)

    return step if backward else forward


def shape_step(lib, op, shape, backward):
    """op(lib, x) on a standard normal float32 x of ``shape``: with nothing recorded, or forward and
    backward from a fixed upstream gradient of the output's shape."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=backward)
    if not backward:
        def step():
            with lib.no_grad():
                op(lib, x)
        return step
    with lib.no_grad():
        g = lib.tensor(rng.standard_normal(tuple(op(lib, x).shape)).astype(np.float32))

    def step():
        x.grad = None
        op(lib, x).backward(g)

    return step


def half_step(lib, op, dt, positive, backward=False, shape=(1000, 1000)):
    """op(F, x) on a float16 ('f16') or bfloat16 ('bf16') tensor of ``shape``, standard normal (|x| +
    0.1 when ``positive``): forward alone with nothing recorded, or forward + backward with a fixed
    upstream gradient of the same dtype."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape)
    x = lib.tensor((np.abs(a) + 0.1 if positive else a).astype(np.float32))
    x = (x.half() if dt == "f16" else x.bfloat16()).detach().requires_grad_(backward)
    g = lib.tensor(rng.standard_normal(shape).astype(np.float32))
    g = g.half() if dt == "f16" else g.bfloat16()
    F = lib.nn.functional

    def step():
        with lib.no_grad():
            op(F, x)

    def step_bwd():
        x.grad = None
        op(F, x).backward(g)

    return step_bwd if backward else step


def ternary_step(lib, op, dtype, backward, n_grad=2):
    """op(L, x, y, z) on 1000x1000 arrays of ``dtype`` (z in [0.5, 1.5): a divisor, a weight near
    the lerp's branch point): forward + backward with the first ``n_grad`` requiring grad, or
    forward alone with nothing recorded (the in-place updates)."""
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((1000, 1000)).astype(dtype) for _ in range(2))
    z = rng.uniform(0.5, 1.5, (1000, 1000)).astype(dtype) - (0.5 if n_grad == 3 else 0.0)
    ts = [lib.tensor(a, requires_grad=backward and k < n_grad) for k, a in enumerate((x, y, z))]
    g = lib.tensor(rng.standard_normal((1000, 1000)).astype(dtype))

    def step():
        for t in ts:
            t.grad = None
        op(lib, *ts).backward(g)

    def forward():
        with lib.no_grad():
            op(lib, *ts)

    return step if backward else forward


def mse_step(lib, dtype, backward):
    """mse_loss(x, y) ('mean') of two standard normal 1000 x 1000 tensors, forward and backward, or
    forward alone (no_grad)."""
    rng = np.random.default_rng(0)
    x = leaf(lib, rng.standard_normal((1000, 1000)).astype(dtype))
    y = lib.tensor(rng.standard_normal((1000, 1000)).astype(dtype))

    def step():
        x.grad = None
        lib.nn.functional.mse_loss(x, y).backward()

    def forward():
        with lib.no_grad():
            lib.nn.functional.mse_loss(x, y)

    return step if backward else forward


def cdist_step(lib, P=1024, R=1024, M=128):
    """cdist(a, b).sum() backward into both inputs, a (P, M) and b (R, M) float32."""
    rng = np.random.default_rng(0)
    a = leaf(lib, rng.standard_normal((P, M)).astype(np.float32))
    b = leaf(lib, rng.standard_normal((R, M)).astype(np.float32))

    def step():
        a.grad = b.grad = None
        lib.cdist(a, b).sum().backward()

    return step


def clamp_step(lib, bounds, how):
    """x.clamp(lo, hi) on a standard normal float32 x of 1000x1000, lo and hi of the shapes
    ``bounds`` (lo below hi): forward with nothing recorded ('no grad'), or forward and backward from
    a fixed upstream gradient, for x alone ('fw + bw') or for x, lo and hi ('fw + bw, bounds too')."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((1000, 1000)).astype(np.float32), requires_grad=how != "no grad")
    lo = lib.tensor((rng.standard_normal(bounds[0]) * 0.5 - 0.5).astype(np.float32),
                    requires_grad=how.endswith("too"))
    hi = lib.tensor((rng.standard_normal(bounds[1]) * 0.5 + 0.5).astype(np.float32),
                    requires_grad=how.endswith("too"))
    if how == "no grad":
        def step():
            with lib.no_grad():
                x.clamp(lo, hi)
        return step
    g = lib.tensor(rng.standard_normal((1000, 1000)).astype(np.float32))

    def step():
        for t in (x, lo, hi):
            t.grad = None
        x.clamp(lo, hi).backward(g)

    return step


def masked_select_step(lib, kind):
    """masked_select with nothing recorded of a 1000x1000 mask (half true) and an input that is a
    broadcast row of 1000 ('row') or a transposed 1000x1000 ('transposed')."""
    rng = np.random.default_rng(0)
    mask = lib.tensor(rng.random((1000, 1000)) < 0.5)
    x = lib.tensor(rng.standard_normal(1000 if kind == "row" else (1000, 1000)).astype(np.float32))
    if kind != "row":
        x = x.t()

    def step():
        with lib.no_grad():
            lib.masked_select(x, mask)

    return step


def no_grad_step(lib, op, shape=(1000, 1000)):
    """op(x, y) with nothing recorded (an in-place update, a selection), x and y float32 of ``shape``."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal(shape).astype(np.float32))
    y = lib.tensor(rng.standard_normal(shape).astype(np.float32))

    def step():
        with lib.no_grad():
            op(x, y)

    return step


def array_step(lib, op, spec):
    """op(lib, x) forward with nothing recorded; spec = (kind, shape, dtype): x standard normal
    ('normal'), integers in [0, 10^5) ('ints'; [0, 8) below 100 entries), or standard normal with
    half of it zeroed ('half')."""
    kind, shape, dtype = spec
    rng = np.random.default_rng(0)
    if kind == "ints":
        a = rng.integers(0, 100000 if np.prod(shape) >= 100 else 8, shape)
    else:
        a = rng.standard_normal(shape)
        if kind == "half":
            a[rng.random(shape) < 0.5] = 0
    x = lib.tensor(a.astype(dtype))

    def step():
        with lib.no_grad():
            op(lib, x)

    return step


def math_forward(lib, op, dtype, positive):
    """op(lib, F, x) forward with nothing recorded, x 1000x1000 standard normal (|x| + 0.1 when
    ``positive``: the logs' domain)."""
    x = np.random.default_rng(0).standard_normal((1000, 1000))
    x = lib.tensor((np.abs(x) + 0.1 if positive else x).astype(dtype))
    F = lib.nn.functional

    def step():
        with lib.no_grad():
            op(lib, F, x)

    return step


def _lib(x):
    return tg if isinstance(x, tg.Tensor) else torch


def reduce_step(lib, op, shape, dtype=np.float32, backward=True, near_one=False):
    """op(x) forward and backward (a broadcast of the fixed upstream gradient), or forward alone
    (no_grad); x standard normal, or exp(0.01 N(0, 1)) with near_one."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape)
    x = leaf(lib, (np.exp(0.01 * a) if near_one else a).astype(dtype))
    g = lib.tensor(rng.standard_normal(op(x).shape).astype(dtype))

    def step():
        x.grad = None
        op(x).backward(g)

    def forward():
        with lib.no_grad():
            op(x)

    return step if backward else forward


def select_step(lib, op, dtype):
    """op(x) forward alone (no_grad), x standard normal 1000x1000 of ``dtype``: for the ops that
    return indices (or a (values, indices) pair), whose result has no shape to take a gradient of."""
    x = lib.tensor(np.random.default_rng(0).standard_normal((1000, 1000)).astype(dtype))

    def forward():
        with lib.no_grad():
            op(x)

    return forward


def batch_norm_step(lib, shape):
    """batch_norm in training mode as BatchNorm2d runs it: batch statistics, running ones updated."""
    c = shape[1]
    rm, rv = lib.zeros(c), lib.ones(c)
    return fwd_bwd(lib, lambda F, x, w, b: F.batch_norm(x, rm, rv, w, b, True), shape, n_params=2, param_dim=1)


def resample_step(lib, op, shape, backward):
    """op(x) on an NCHW float32 x: with recording off, or forward and backward with a fixed
    upstream gradient of the output's shape."""
    rng = np.random.default_rng(0)
    x = leaf(lib, rng.standard_normal(shape).astype(np.float32))
    F = lib.nn.functional
    with lib.no_grad():
        out_shape = tuple(op(F, x).shape)
    g = lib.tensor(rng.standard_normal(out_shape).astype(np.float32))

    def step():
        if not backward:
            with lib.no_grad():
                op(F, x)
            return
        x.grad = None
        op(F, x).backward(g)

    return step


def run_side(side, repeats, threads, groups):
    """Seconds per case for one framework, in this process."""
    lib = torch if side == "torch" else tg
    lib.set_num_threads(threads)
    return [min(median_seconds(make(lib)) for _ in range(repeats)) for g in groups for _, make in CASES[g]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="alternating process rounds per side; best per case")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    ap.add_argument("--side", choices=["tapegrad", "torch"], help="time one framework here and print JSON")
    args = ap.parse_args(argv)
    if args.side:
        print(json.dumps(run_side(args.side, args.repeats, args.threads[0], args.only)))
        return

    def side(name, threads):
        cmd = [sys.executable, __file__, "--side", name, "--repeats", str(args.repeats), "--threads", str(threads),
               "--only", *args.only]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    names = [name for g in args.only for name, _ in CASES[g]]
    pt_name = f"PyTorch {torch.__version__}" if torch is not None else "PyTorch (not installed)"
    print(f"wall time, best of {args.repeats} medians x {args.rounds} rounds; ratio = tapegrad / {pt_name}")
    print("| workload (forward + backward) | threads | tapegrad | PyTorch | ratio |")
    print("|---|---:|---:|---:|---:|")
    for threads in args.threads:
        ours, theirs = [float("inf")] * len(names), [None] * len(names)
        for _ in range(args.rounds):
            ours = [min(a, b) for a, b in zip(ours, side("tapegrad", threads))]
            if torch is not None:
                theirs = [min(a, b) if a else b for a, b in zip(theirs, side("torch", threads))]
        for name, a, b in zip(names, ours, theirs):
            ratio = f"{a / b:.2f}" if b else "-"
            pt = f"{b * 1e3:.3f} ms" if b else "-"
            print(f"| {name} | {threads} | {a * 1e3:.3f} ms | {pt} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
