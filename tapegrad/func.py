"""``torch.func``: function transforms (``grad``, ``grad_and_value``, ``vjp``, ``jvp``, ``jacrev``,
``jacfwd``, ``hessian``, ``linearize``, ``vmap``) and ``functional_call`` / ``stack_module_state``
for calling a module with parameters given as arguments.

PyTorch builds these on "levels" of wrapped tensors; tapegrad builds them on its one tape. Each
transform calls the function on its own copies of the inputs (a fresh leaf, or an alias node of an
input that already requires grad, so that an outer ``backward()`` or transform still reaches it)
and takes its derivatives with ``autograd.grad``, keeping the graph (``create_graph``) so that
transforms nest: ``grad(grad(f))``, ``jacfwd(jacrev(f))``, ``vmap(grad(f))``. A result that depends
on nothing outside the transform is returned detached, as PyTorch's; one that depends on a tensor
the caller is differentiating (an input or a captured parameter that requires grad) keeps its
history, as PyTorch's does when a transform runs inside ordinary autograd.

What differs, and why:
 - ``vmap`` runs the function once per batch element and stacks the results (PyTorch traces it
   once with batched tensors). Results and gradients are the same; the speed is a loop's; and the
   function may use data-dependent Python control flow and ``.item()``, which PyTorch's refuses.
 - ``jvp`` and ``jacfwd`` use the double-vjp trick (two reverse passes: ``J v`` is the derivative
   in ``u`` of ``u^T J``), since the tape is reverse-mode only; values and nesting are PyTorch's.
 - ``jacrev`` and ``jacfwd`` take one pass per output (input) element; ``chunk_size`` is accepted
   and has no effect.
"""
from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict

import numpy as np

from . import autograd
from . import ops as _ops
from ._tape import grad_mode
from ._tape.registry import apply as _apply
from .nn.modules.normalization import _BatchNorm
from .ops.shape import _reshape
from .tensor import Tensor

_state = threading.local()  # transforms being run by this thread (each thread has its own tape state)


@contextlib.contextmanager
def _transform():
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def _nested() -> bool:
    return getattr(_state, "depth", 0) > 0


# ---------------------------------------------------------------- pytrees (tuples, lists, dicts)
def _flatten(tree):
    """``(leaves, rebuild)``: the leaves of nested tuples, lists and dicts, in order, and a function
    that builds the same structure from a new list of leaves."""
    if isinstance(tree, (tuple, list)):
        parts = [_flatten(t) for t in tree]
        sizes = [len(p[0]) for p in parts]

        def rebuild(leaves):
            out, i = [], 0
            for (_, r), n in zip(parts, sizes):
                out.append(r(leaves[i:i + n]))
                i += n
            if hasattr(tree, "_fields"):  # a namedtuple
                return type(tree)(*out)
            return type(tree)(out)
        return [x for p in parts for x in p[0]], rebuild
    if isinstance(tree, dict):
        keys = list(tree)
        inner_leaves, inner = _flatten([tree[k] for k in keys])

        def rebuild(leaves):
            values = inner(leaves)
            d = type(tree)() if isinstance(tree, OrderedDict) else {}
            for k, v in zip(keys, values):
                d[k] = v
            return d
        return inner_leaves, rebuild
    return [tree], lambda leaves: leaves[0]


def _spec(tree):
    """The structure of a pytree, comparable with ``==`` (leaves are ``*``)."""
    if isinstance(tree, (tuple, list)):
        return (type(tree).__name__, tuple(_spec(t) for t in tree))
    if isinstance(tree, dict):
        return ("dict", tuple((k, _spec(v)) for k, v in tree.items()))
    return "*"


def _tree_map(fn, tree):
    leaves, rebuild = _flatten(tree)
    return rebuild([fn(x) for x in leaves])


# ---------------------------------------------------------------- inputs and results of a transform
def _check_argnums(argnums, nargs, name):
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    if not nums or not all(isinstance(i, int) and not isinstance(i, bool) for i in nums):
        raise RuntimeError(f"{name}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    norm = tuple(i + nargs if i < 0 else i for i in nums)
    bad = [i for i, n in zip(nums, norm) if not 0 <= n < nargs]
    if bad:
        raise RuntimeError(f"{name}: got argnums={argnums!r} but the function was called with {nargs} positional "
                           f"argument(s)")
    if len(set(norm)) != len(norm):
        raise RuntimeError(f"{name}: argnums must be unique, got {argnums!r}")
    return norm


def _own_input(x, name, what):
    """The transform's handle on input ``x``: an alias node if ``x`` requires grad (so derivatives
    still flow to it, and an input passed twice still gets one gradient per argument), else a fresh
    leaf over the same data."""
    if not isinstance(x, Tensor):
        raise RuntimeError(f"{name}: expected {what} to be a Tensor (or a tuple/list/dict of Tensors), got "
                           f"{type(x).__name__}")
    if x.dtype.kind not in "fc":
        raise RuntimeError(f"{name}: can only differentiate with respect to floating-point or complex Tensors, got "
                           f"{what} of dtype {x.dtype}")
    return _apply(_reshape, x, shape=tuple(x.shape)) if x.requires_grad else x.detach().requires_grad_(True)


def _prepare(args, argnums, name):
    """``(call_args, per_arg)``: the arguments with those in ``argnums`` replaced by the transform's
    own inputs, and for each of those ``(leaves, rebuild)``."""
    call, per_arg = list(args), []
    for i in argnums:
        leaves, rebuild = _flatten(args[i])
        own = [_own_input(x, name, f"argument {i}") for x in leaves]
        call[i] = rebuild(own)
        per_arg.append((own, rebuild))
    return call, per_arg


def _reaches_outside(tensors, own):
    """Whether any of ``tensors`` depends on a tensor requiring grad other than the transform's own
    fresh leaves ``own`` (an outer transform's input, or a captured parameter)."""
    own_ids = {id(x) for x in own if x.grad_fn is None}
    seen, stack = set(), [t.grad_fn for t in tensors if isinstance(t, Tensor) and t.grad_fn is not None]
    for t in tensors:
        if isinstance(t, Tensor) and t.requires_grad and t.grad_fn is None and id(t) not in own_ids:
            return True
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        var = getattr(node, "variable", None)
        if var is not None and id(var) not in own_ids:
            return True
        stack.extend(n for n, _ in node.next_functions)
    return False


def _finish(results, own):
    """``results`` (a pytree) as the transform returns them: detached unless the caller is itself
    differentiating them (a nested transform, or a graph reaching outside the transform)."""
    if _nested():
        return results
    leaves, rebuild = _flatten(results)
    keep = _reaches_outside([x for x in leaves if isinstance(x, Tensor)], own)
    return results if keep else rebuild([x.detach() if isinstance(x, Tensor) else x for x in leaves])


def _grads(outputs, inputs, cotangents, retain_graph=None):
    """``autograd.grad`` with zeros for inputs the outputs do not depend on; keeps the graph."""
    pairs = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
    if not pairs:
        return [_ops.zeros_like(x) for x in inputs]
    gs = autograd.grad([o for o, _ in pairs], inputs, [c for _, c in pairs], retain_graph=retain_graph,
                       create_graph=True, allow_unused=True)
    return [_ops.zeros_like(x) if g is None else g for g, x in zip(gs, inputs)]


def _split_aux(out, has_aux, name):
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise RuntimeError(f"{name}(f, ...)(*args): output of function f should be a tuple: (output, aux) if "
                           f"has_aux is True")
    return out[0], out[1]


def _call(func, args, kwargs, argnums, has_aux, name):
    """Runs ``func`` on the transform's own copies of the arguments ``argnums`` (inside the
    transform's context): ``(per_arg, own, out, aux)``, ``own`` the copies in order."""
    call, per_arg = _prepare(args, argnums, name)
    own = [x for leaves, _ in per_arg for x in leaves]
    out, aux = _split_aux(func(*call, **kwargs), has_aux, name)
    return per_arg, own, out, aux


def _tensor_leaves(out, name):
    """``(leaves, rebuild)`` of a function's output, which must hold only tensors."""
    leaves, rebuild = _flatten(out)
    for o in leaves:
        if not isinstance(o, Tensor):
            raise RuntimeError(f"{name}: expected the function to return only tensors (or tuples, lists or dicts "
                               f"of them), got {type(o).__name__}")
    return leaves, rebuild


def _per_argnums(per_arg, values, argnums):
    """``values`` (one per own input, in order) rebuilt into each argument's structure; a single
    argument's structure for an int ``argnums``, a tuple of them for a tuple."""
    out, i = [], 0
    for leaves, rebuild in per_arg:
        out.append(rebuild(values[i:i + len(leaves)]))
        i += len(leaves)
    return tuple(out) if isinstance(argnums, tuple) else out[0]


# ---------------------------------------------------------------- grad, grad_and_value, vjp
def grad_and_value(func, argnums=0, has_aux=False):
    """``func``'s gradient with respect to the arguments ``argnums`` together with its value:
    ``(grad, value)``, or ``(grad, (value, aux))`` with ``has_aux``. ``func`` must return a
    scalar (0-dim) tensor.

    >>> tapegrad.func.grad_and_value(lambda x: (x ** 2).sum())(tapegrad.tensor([1.0, 2.0]))
    (tensor([2., 4.]), tensor(5.))
    """
    def wrapper(*args, **kwargs):
        nums = _check_argnums(argnums, len(args), "grad_and_value")
        with grad_mode.enable_grad(), _transform():
            per_arg, own, out, aux = _call(func, args, kwargs, nums, has_aux, "grad_and_value")
            if not isinstance(out, Tensor):
                raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a Tensor, got "
                                   f"{type(out).__name__}")
            if out.dim() != 0:
                raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a scalar Tensor, got "
                                   f"tensor with {out.dim()} dims (shape {tuple(out.shape)}). Maybe you wanted to "
                                   f"use the vjp or jacrev APIs instead?")
            gs = _grads([out], own, [_ops.ones_like(out)])
        grads = _per_argnums(per_arg, gs, argnums)
        value = out if not has_aux else (out, aux)
        return _finish((grads, value), own)

    wrapper.__doc__ = getattr(func, "__doc__", None)
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """``func``'s gradient with respect to the arguments ``argnums`` (an int, or a tuple for a tuple
    of gradients), each shaped as its argument (tensors, or tuples/lists/dicts of tensors such as a
    module's parameters); ``(grad, aux)`` with ``has_aux``. ``func`` must return a scalar tensor.
    Transforms compose: ``grad(grad(f))`` is the second derivative.

    >>> tapegrad.func.grad(lambda x: x.sin().sum())(tapegrad.tensor([0.0]))
    tensor([1.])
    """
    gv = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    wrapper.__doc__ = getattr(func, "__doc__", None)
    return wrapper


def vjp(func, *primals, has_aux=False):
    """``(func(*primals), vjp_fn)`` (and ``aux`` with ``has_aux``): ``vjp_fn(cotangents)`` returns
    the vector-Jacobian products, a tuple with one entry per primal, and may be called again.

    >>> out, vjp_fn = tapegrad.func.vjp(tapegrad.sin, tapegrad.tensor([0.0, 1.0]))
    >>> vjp_fn(tapegrad.ones(2))
    (tensor([1.0000, 0.5403]),)
    """
    nums = tuple(range(len(primals)))
    with grad_mode.enable_grad(), _transform():
        per_arg, own, out, aux = _call(func, primals, {}, nums, has_aux, "vjp")
    out_leaves, _ = _tensor_leaves(out, "vjp")

    def vjp_fn(cotangents, *, retain_graph=True, create_graph=None):
        cts, _ = _flatten(cotangents)
        if _spec(cotangents) != _spec(out):
            raise RuntimeError(f"vjp_fn: expected cotangents of the outputs' structure {_spec(out)}, got "
                               f"{_spec(cotangents)}")
        for k, (c, o) in enumerate(zip(cts, out_leaves)):
            if not isinstance(c, Tensor) or tuple(c.shape) != tuple(o.shape):
                got = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
                raise RuntimeError(f"vjp_fn: cotangent {k} must be a Tensor of its output's shape "
                                   f"{tuple(o.shape)}, got {got}")
        with grad_mode.enable_grad(), _transform():
            gs = _grads(out_leaves, own, cts, retain_graph=True)
        return _finish(tuple(r(gs[i:i + len(lv)]) for (lv, r), i in zip(per_arg, _offsets(per_arg))), own)

    result = _finish(out, own)
    if has_aux:
        return result, vjp_fn, _finish(aux, own)
    return result, vjp_fn


def _offsets(per_arg):
    offs, i = [], 0
    for leaves, _ in per_arg:
        offs.append(i)
        i += len(leaves)
    return offs


# ---------------------------------------------------------------- forward mode by double vjp
def _jvp_parts(func, primals, has_aux, name):
    """Calls ``func`` on the transform's inputs and prepares ``J v`` as a function of ``v``: returns
    ``(own, per_arg, outs, out, aux, jv)`` where ``jv(tangent_leaves)`` gives one tangent per output."""
    nums = tuple(range(len(primals)))
    per_arg, own, out, aux = _call(func, primals, {}, nums, has_aux, name)
    outs, _ = _tensor_leaves(out, name)
    us = [_ops.zeros_like(o).requires_grad_(True) for o in outs]
    g = _grads(outs, own, us)  # u^T J, linear in u

    def jv(tangents):
        live = [(gi, t) for gi, t in zip(g, tangents) if gi.requires_grad]
        if not live:
            return [_ops.zeros_like(o) for o in outs]
        return _grads([gi for gi, _ in live], us, [t for _, t in live], retain_graph=True)
    return own, per_arg, outs, out, aux, jv


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """``(func(*primals), J @ tangents)``: the Jacobian-vector product (forward mode), the tangent
    of each output for the given tangent of each primal (``primals`` and ``tangents`` are tuples of
    the same structure).

    >>> tapegrad.func.jvp(tapegrad.sin, (tapegrad.tensor([0.0]),), (tapegrad.tensor([2.0]),))
    (tensor([0.]), tensor([2.]))
    """
    if not isinstance(primals, tuple) or not isinstance(tangents, tuple):
        raise RuntimeError(f"jvp(f, primals, tangents): Expected primals and tangents to be tuples, got "
                           f"{type(primals).__name__} and {type(tangents).__name__}")
    p_leaves, _ = _flatten(primals)
    t_leaves, _ = _flatten(tangents)
    if len(p_leaves) != len(t_leaves):
        raise RuntimeError(f"jvp: Expected primals and tangents to have the same structure, got {len(p_leaves)} "
                           f"and {len(t_leaves)} tensors")
    for k, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        if not isinstance(t, Tensor) or not isinstance(p, Tensor) or tuple(t.shape) != tuple(p.shape):
            raise RuntimeError(f"jvp: tangent {k} must be a Tensor of its primal's shape "
                               f"{tuple(getattr(p, 'shape', ()))}, got {getattr(t, 'shape', type(t).__name__)}")
    with grad_mode.enable_grad(), _transform():
        own, per_arg, outs, out, aux, jv = _jvp_parts(func, primals, has_aux, "jvp")
        tan = jv(t_leaves)
    _, rebuild = _flatten(out)
    result = _finish((out, rebuild(tan)), own)
    return (*result, _finish(aux, own)) if has_aux else result


def linearize(func, *primals):
    """``(func(*primals), jvp_fn)``: ``jvp_fn(*tangents)`` is the Jacobian-vector product at
    ``primals``, reusing the recorded graph for every call."""
    with grad_mode.enable_grad(), _transform():
        own, per_arg, outs, out, _, jv = _jvp_parts(func, primals, False, "linearize")
    _, rebuild = _flatten(out)

    def jvp_fn(*tangents):
        t_leaves, _ = _flatten(tangents)
        if len(t_leaves) != len(own):
            raise RuntimeError(f"linearize: jvp_fn expected {len(own)} tangent(s), one per primal, got "
                               f"{len(t_leaves)}")
        with grad_mode.enable_grad(), _transform():
            tan = jv(t_leaves)
        return _finish(rebuild(tan), own)
    return _finish(out, own), jvp_fn


# ---------------------------------------------------------------- Jacobians and the Hessian
def _unit(x, k):
    e = np.zeros(x.shape, x.dtype)
    e.reshape(-1)[k] = 1
    return Tensor._wrap(e)


def _assemble(outs, own, per_arg, argnums, block):
    """The Jacobian pytree: the outputs' structure, each output holding its ``per_arg`` structure of
    ``block(i, j)`` (output ``i`` against input ``j``, shape out.shape + in.shape)."""
    per_out = [_per_argnums(per_arg, [block(i, j) for j in range(len(own))], argnums) for i in range(len(outs))]
    return per_out


def jacrev(func, argnums=0, *, has_aux=False, chunk_size=None, _preallocate_and_copy=False):
    """The Jacobian of ``func`` with respect to the arguments ``argnums`` by reverse mode (one
    backward pass per output element): for each output, ``output.shape + input.shape``.

    >>> tapegrad.func.jacrev(lambda x: x ** 2)(tapegrad.tensor([1.0, 2.0]))
    tensor([[2., 0.],
            [0., 4.]])
    """
    def wrapper(*args, **kwargs):
        nums = _check_argnums(argnums, len(args), "jacrev")
        with grad_mode.enable_grad(), _transform():
            per_arg, own, out, aux = _call(func, args, kwargs, nums, has_aux, "jacrev")
            outs, rebuild = _tensor_leaves(out, "jacrev")
            rows = []  # rows[i][j]: output i against own input j
            for o in outs:
                per_elem = [_grads([o], own, [_unit(o, k)], retain_graph=True) for k in range(o.numel())]
                rows.append([_stack_rows([g[j] for g in per_elem], o, x) for j, x in enumerate(own)])
        jac = rebuild(_assemble(outs, own, per_arg, argnums, lambda i, j: rows[i][j]))
        return _finish((jac, aux), own) if has_aux else _finish(jac, own)

    wrapper.__doc__ = getattr(func, "__doc__", None)
    return wrapper


def _stack_rows(rows, o, x):
    shape = tuple(o.shape) + tuple(x.shape)
    if not rows:
        return _ops.zeros(shape, dtype=x.dtype)
    return _ops.stack(rows, 0).reshape(shape)


def jacfwd(func, argnums=0, has_aux=False, *, randomness="error"):
    """The Jacobian of ``func`` with respect to the arguments ``argnums`` by forward mode (one
    Jacobian-vector product per input element): for each output, ``output.shape + input.shape``.
    The same values as :func:`jacrev`; cheaper when the inputs are fewer than the outputs."""
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(f"jacfwd: randomness must be 'error', 'different' or 'same', got {randomness!r}")

    def wrapper(*args, **kwargs):
        nums = _check_argnums(argnums, len(args), "jacfwd")
        with grad_mode.enable_grad(), _transform():
            per_arg, own, out, aux = _call(func, args, kwargs, nums, has_aux, "jacfwd")
            outs, rebuild = _tensor_leaves(out, "jacfwd")
            us = [_ops.zeros_like(o).requires_grad_(True) for o in outs]
            g = _grads(outs, own, us)  # u^T J, linear in u
            cols = []  # cols[j][i]: output i against own input j
            for j, x in enumerate(own):
                per_elem = []
                for k in range(x.numel()):
                    if g[j].requires_grad:
                        per_elem.append(_grads([g[j]], us, [_unit(x, k)], retain_graph=True))
                    else:
                        per_elem.append([_ops.zeros_like(o) for o in outs])
                cols.append([_stack_cols([e[i] for e in per_elem], o, x) for i, o in enumerate(outs)])
        jac = rebuild(_assemble(outs, own, per_arg, argnums, lambda i, j: cols[j][i]))
        return _finish((jac, aux), own) if has_aux else _finish(jac, own)

    wrapper.__doc__ = getattr(func, "__doc__", None)
    return wrapper


def _stack_cols(cols, o, x):
    """The tangents of output ``o`` for each unit tangent of input ``x`` (x.numel() of them), as
    the block ``o.shape + x.shape``."""
    if not cols:
        return _ops.zeros(tuple(o.shape) + tuple(x.shape), dtype=o.dtype)
    s = _ops.stack(cols, -1)  # o.shape + (x.numel(),)
    return s.reshape(tuple(o.shape) + tuple(x.shape))


def hessian(func, argnums=0):
    """The Hessian of the scalar function ``func`` with respect to the arguments ``argnums``:
    ``jacfwd(jacrev(func, argnums), argnums)``, as PyTorch's."""
    return jacfwd(jacrev(func, argnums), argnums)


# ---------------------------------------------------------------- vmap
def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """``func`` mapped over a dimension of its inputs, as ``torch.vmap``: ``in_dims`` says which
    dimension of each argument is the batch (an int for all, or one entry per argument: an int,
    None for an argument passed whole, or a tuple/list/dict matching a structured argument); the
    results (tensors or tuples/lists/dicts of them) are stacked along ``out_dims``.

    tapegrad runs ``func`` once per batch element and stacks the results (PyTorch traces it
    once with batched tensors), so results and gradients are the same, the speed is a loop's,
    and ``func`` may even use data-dependent Python control flow, which PyTorch's vmap refuses.

    >>> tapegrad.vmap(tapegrad.dot)(tapegrad.ones(4, 3), tapegrad.ones(4, 3))
    tensor([3., 3., 3., 3.])
    """
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(f"vmap: randomness must be 'error', 'different' or 'same', got {randomness!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"vmap: chunk_size should be None or greater than 0, got {chunk_size!r}")

    def batched(*args, **kwargs):
        if isinstance(in_dims, (tuple, list)):
            if len(in_dims) != len(args):
                raise ValueError(f"vmap: in_dims has {len(in_dims)} entries but the function got {len(args)} "
                                 f"positional arguments")
            dims = list(in_dims)
        elif in_dims is None or isinstance(in_dims, int):
            dims = [in_dims] * len(args)
        else:
            raise ValueError(f"vmap: in_dims must be an int, None or a tuple matching the arguments, got "
                             f"{type(in_dims).__name__}")
        # One (tensor leaf, dim) list per argument: a dim given per argument applies to all its leaves.
        plans, sizes = [], set()
        for k, (a, d) in enumerate(zip(args, dims)):
            leaves, rebuild = _flatten(a)
            ds = _flatten(d)[0] if isinstance(d, (tuple, list, dict)) else [d] * len(leaves)
            if len(ds) != len(leaves):
                raise ValueError(f"vmap: in_dims[{k}] does not match the structure of argument {k}")
            for x, dd in zip(leaves, ds):
                if dd is None:
                    continue
                if not isinstance(x, Tensor):
                    raise ValueError(f"vmap: Got in_dim={dd} for an input but the input is of type "
                                     f"{type(x).__name__}. We cannot vmap over non-Tensor arguments")
                if not -x.dim() <= dd < max(x.dim(), 1) or x.dim() == 0:
                    raise ValueError(f"vmap: Got in_dim={dd} for argument {k} of shape {tuple(x.shape)}: the "
                                     f"dimension is out of range")
                sizes.add(x.shape[dd])
            plans.append((leaves, ds, rebuild))
        if not sizes:
            raise ValueError("vmap: at least one argument must be mapped over (in_dims all None, or no tensor "
                             "argument)")
        if len(sizes) > 1:
            raise ValueError(f"vmap: Expected all tensors to have the same size in the mapped dimension, got sizes "
                             f"{sorted(sizes)} for the mapped dimension")
        n = sizes.pop()
        results = []
        for i in range(n):
            call = [rebuild([x if d is None else _ops.select(x, d, i) for x, d in zip(leaves, ds)])
                    for leaves, ds, rebuild in plans]
            results.append(func(*call, **kwargs))
        return _stack_results(results, out_dims)

    batched.__doc__ = getattr(func, "__doc__", None)
    return batched


def _stack_results(results, out_dims):
    leaves0, rebuild = _flatten(results[0])
    per = [_flatten(r)[0] for r in results]
    if any(len(p) != len(leaves0) for p in per):
        raise ValueError("vmap: the function returned results of different structures for different batch elements")
    if isinstance(out_dims, (tuple, list)):
        ods = _flatten(out_dims)[0] if len(out_dims) != len(leaves0) or any(isinstance(o, (tuple, list, dict))
                                                                             for o in out_dims) else list(out_dims)
        if len(ods) != len(leaves0):
            raise ValueError(f"vmap: out_dims has {len(ods)} entries but the function returned {len(leaves0)} "
                             f"outputs")
    else:
        ods = [out_dims] * len(leaves0)
    stacked = []
    for k, od in enumerate(ods):
        items = [p[k] if isinstance(p[k], Tensor) else _ops.tensor(p[k]) for p in per]
        if od is None:
            stacked.append(items[0])
        else:
            stacked.append(_ops.stack(items, dim=od))
    return rebuild(stacked)


# ---------------------------------------------------------------- calling a module with given parameters
def _owner(module, name):
    """``(submodule, attribute)`` for a dotted name such as ``"layer1.0.weight"``."""
    *path, attr = name.split(".")
    mod = module
    for p in path:
        sub = mod._modules.get(p) if hasattr(mod, "_modules") else None
        if sub is None:
            raise AttributeError(f"functional_call: {type(module).__name__} has no submodule {p!r} (in key {name!r})")
        mod = sub
    return mod, attr


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True,
                    strict=False):
    """``module(*args, **kwargs)`` with the parameters and buffers named in
    ``parameter_and_buffer_dicts`` (a dict, or a tuple of dicts, name -> tensor) used in place of
    the module's own for this call; the module is restored afterwards, even if the call raises.
    Gradients flow to the given tensors. With ``tie_weights`` (the default), a parameter shared
    under two names (tied weights) takes the value given for either name. ``strict`` requires the
    dicts to name exactly the module's parameters and buffers.

    >>> params = {k: v.detach() for k, v in model.named_parameters()}
    >>> out = tapegrad.func.functional_call(model, params, (x,))
    """
    dicts = parameter_and_buffer_dicts
    if isinstance(dicts, dict):
        dicts = (dicts,)
    if not isinstance(dicts, (tuple, list)) or not all(isinstance(d, dict) for d in dicts):
        raise ValueError(f"functional_call: Expected parameter_and_buffer_dicts to be a dict, or a list/tuple of "
                         f"dicts, but got {type(parameter_and_buffer_dicts).__name__}")
    given = {}
    for d in dicts:
        dup = sorted(set(given) & set(d))
        if dup:
            raise ValueError(f"functional_call: {dup} appeared in multiple dictionaries; behavior of "
                             f"functional_call is ambiguous")
        given.update(d)
    for k, v in given.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"functional_call: the value for {k!r} must be a Tensor, got {type(v).__name__}")

    # Names sharing one tensor in the module (tied weights) take the value given for any of them.
    own = OrderedDict()
    for name, t in module.named_parameters(remove_duplicate=False):
        own[name] = t
    for name, t in module.named_buffers(remove_duplicate=False):
        own.setdefault(name, t)
    if tie_weights:
        by_tensor = {}
        for name, t in own.items():
            by_tensor.setdefault(id(t), []).append(name)
        for names in by_tensor.values():
            if len(names) < 2:
                continue
            values = {n: given[n] for n in names if n in given}
            if len({id(v) for v in values.values()}) > 1:
                raise ValueError(f"functional_call got multiple values for keys {sorted(values)}, which are tied. "
                                 f"Consider using tie_weights=False")
            if values:
                v = next(iter(values.values()))
                for n in names:
                    given.setdefault(n, v)
    if strict:
        missing = sorted(set(own) - set(given))
        unexpected = sorted(set(given) - set(own))
        if missing or unexpected:
            parts = ([f"Unexpected key(s): {', '.join(map(repr, unexpected))}."] if unexpected else []) + \
                    ([f"Missing key(s): {', '.join(map(repr, missing))}."] if missing else [])
            raise RuntimeError(f"Error(s) in reparametrizing for {type(module).__name__}:\n\t" + "\n\t".join(parts))

    swapped = []  # (submodule, store or None, attribute, previous value or a marker)
    try:
        for name, value in given.items():
            mod, attr = _owner(module, name)
            for store in ("_parameters", "_buffers"):
                table = mod.__dict__.get(store)
                if table is not None and attr in table:
                    swapped.append((mod, store, attr, table[attr]))
                    table[attr] = value
                    break
            else:
                swapped.append((mod, None, attr, mod.__dict__.get(attr, _MISSING)))
                object.__setattr__(mod, attr, value)
        if args is None:
            args = ()
        elif not isinstance(args, tuple):
            args = (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for mod, store, attr, previous in reversed(swapped):
            if store is not None:
                mod.__dict__[store][attr] = previous
            elif previous is _MISSING:
                mod.__dict__.pop(attr, None)
            else:
                object.__setattr__(mod, attr, previous)


_MISSING = object()


def stack_module_state(models):
    """``(params, buffers)``: for modules of one architecture, each parameter and buffer stacked
    along a new leading dimension (name -> tensor), for ``vmap`` over ``functional_call`` (model
    ensembling). The stacked parameters are new leaves that require grad where the originals do.

    >>> params, buffers = tapegrad.func.stack_module_state([nn.Linear(3, 2) for _ in range(5)])
    >>> params["weight"].shape
    tapegrad.Size([5, 2, 3])
    """
    models = list(models)
    if not models:
        raise RuntimeError("stack_module_state: Expected at least one model, got 0.")
    if not (all(m.training for m in models) or not any(m.training for m in models)):
        raise RuntimeError("stack_module_state: Expected all models to have the same training/eval mode.")
    kind = type(models[0])
    if not all(type(m) is kind for m in models):
        raise RuntimeError("stack_module_state: Expected all models to be of the same class.")
    names = [n for n, _ in models[0].named_parameters()]
    params = {}
    for n in names:
        ps = [dict(m.named_parameters())[n] for m in models]
        params[n] = _ops.stack([p.detach() for p in ps]).requires_grad_(ps[0].requires_grad)
    buffers = {n: _ops.stack([dict(m.named_buffers())[n] for m in models]) for n, _ in models[0].named_buffers()}
    return params, buffers


def functionalize(func, *, remove="mutations"):
    """``func`` itself: tapegrad's transforms already see in-place updates as the tape records them,
    so there are no mutations to remove."""
    if remove not in ("mutations", "mutations_and_views"):
        raise RuntimeError(f"functionalize: remove must be 'mutations' or 'mutations_and_views', got {remove!r}")
    return func


def replace_all_batch_norm_modules_(root):
    """Makes every batch-norm module under ``root`` stop tracking running statistics (in place), so
    it normalises with the batch's own statistics under a transform, as PyTorch's helper does."""
    for m in root.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
            m.track_running_stats = False
    return root


# ---------------------------------------------------------------- rearrange (einops' pattern language)
def _parse_side(side, where, pattern):
    """The dims of one side of a pattern: a list of ``(axis names, bracketed)``, ``"..."`` standing
    for the ellipsis and a ``1`` for an empty group (a dim of size 1)."""
    groups, cur = [], None
    for tok in side.replace("(", " ( ").replace(")", " ) ").split():
        if tok == "(":
            if cur is not None:
                raise ValueError(f"rearrange: nested brackets in the {where} of {pattern!r}")
            cur = []
        elif tok == ")":
            if cur is None:
                raise ValueError(f"rearrange: unbalanced brackets in the {where} of {pattern!r}")
            groups.append((cur, True))
            cur = None
        else:
            if tok != "..." and tok != "1" and not tok.isidentifier():
                raise ValueError(f"rearrange: invalid axis name {tok!r} in {pattern!r}")
            axes = [] if tok == "1" else [tok]
            if cur is None:
                groups.append((axes, False))
            else:
                cur.extend(axes)
    if cur is not None:
        raise ValueError(f"rearrange: unbalanced brackets in the {where} of {pattern!r}")
    names = [a for g, _ in groups for a in g]
    dup = {a for a in names if names.count(a) > 1}
    if dup:
        raise ValueError(f"rearrange: axis {sorted(dup)[0]!r} appears twice in the {where} of {pattern!r}")
    return groups


def _expand_ellipsis(groups, ell):
    """The groups with the ellipsis replaced by the axes ``ell``: a dim each where it stands alone,
    all in one dim inside brackets."""
    out = []
    for g, bracketed in groups:
        if not bracketed and g == ["..."]:
            out.extend([e] for e in ell)
        else:
            out.append([e for a in g for e in (ell if a == "..." else [a])])
    return out


def rearrange(tensor, pattern, **axes_lengths):
    """``einops.rearrange``: transpose, reshape, squeeze, unsqueeze, stack and concatenate written
    as one pattern.

    Patterns such as ``"b h w c -> b c h w"``, ``"b (h p) w -> b h (p w)"`` (with ``p=2``) or
    ``"... c -> c ..."``; a list or tuple of tensors is stacked first along a new leading axis. One
    reshape, one permute and one reshape, so gradients flow as through those.

    >>> tapegrad.func.rearrange(tapegrad.zeros(32, 30, 40, 3), "b h w c -> b (c h) w").shape
    tapegrad.Size([32, 90, 40])
    """
    if isinstance(tensor, (list, tuple)):
        tensor = _ops.stack(list(tensor))
    if not isinstance(pattern, str) or pattern.count("->") != 1:
        raise ValueError(f"rearrange: the pattern must be a string 'left -> right', got {pattern!r}")
    left_s, right_s = pattern.split("->")
    left, right = _parse_side(left_s, "left side", pattern), _parse_side(right_s, "right side", pattern)
    lnames = [a for g, _ in left for a in g]
    rnames = [a for g, _ in right for a in g]
    if set(lnames) != set(rnames):
        raise ValueError(f"rearrange: axes {sorted(set(lnames) ^ set(rnames))} appear on only one side of "
                         f"{pattern!r}")
    unknown = sorted(set(axes_lengths) - set(lnames))
    if unknown:
        raise ValueError(f"rearrange: axes {unknown} given as lengths do not appear in {pattern!r}")
    shape = tuple(tensor.shape)
    # The ellipsis stands for the dims not named on the left.
    ell = []
    if "..." in lnames:
        if any(b and "..." in g for g, b in left):
            raise ValueError(f"rearrange: the ellipsis cannot be inside brackets on the left of {pattern!r}")
        n_ell = len(shape) - (len(left) - 1)
        if n_ell < 0:
            raise ValueError(f"rearrange: {pattern!r} needs at least {len(left) - 1} dims, the tensor has shape {shape}")
        ell = [f"...{i}" for i in range(n_ell)]
    left, right = _expand_ellipsis(left, ell), _expand_ellipsis(right, ell)
    if len(left) != len(shape):
        raise ValueError(f"rearrange: the left side of {pattern!r} has {len(left)} dims, the tensor has shape {shape}")
    sizes = dict(axes_lengths)
    for g, n in zip(left, shape):
        free = [a for a in g if a not in sizes]
        known = int(np.prod([sizes[a] for a in g if a in sizes], dtype=np.int64))
        if len(free) > 1:
            raise ValueError(f"rearrange: cannot infer the lengths of {free} in {pattern!r}: give all but one")
        if free:
            if known == 0 or n % known:
                raise ValueError(f"rearrange: dim of size {n} cannot be split into {g} with lengths {sizes}")
            sizes[free[0]] = n // known
        elif known != n:
            raise ValueError(f"rearrange: the group {g} has {known} elements but its dim has {n} (shape {shape})")
    elementary = [a for g in left for a in g]
    x = tensor.reshape(tuple(sizes[a] for a in elementary))
    order = [elementary.index(a) for g in right for a in g]
    if order != sorted(order):
        x = x.permute(*order)
    out_shape = tuple(int(np.prod([sizes[a] for a in g], dtype=np.int64)) for g in right)
    return x.reshape(out_shape)


def debug_unwrap(tensor, *, recurse=True):
    """``tensor`` itself: tapegrad's transforms pass ordinary tensors, with nothing to unwrap."""
    return tensor


__all__ = ["grad", "grad_and_value", "vjp", "jvp", "linearize", "jacrev", "jacfwd", "hessian", "vmap",
           "functional_call", "stack_module_state", "functionalize", "replace_all_batch_norm_modules_", "rearrange", "debug_unwrap"]
