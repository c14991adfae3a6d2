"""PyTorch's own operator database (``op_db``, the OpInfos of its test suite) as an oracle.

For every OpInfo whose name maps to a tapegrad function (and Tensor method), its sample inputs
(float32, float64, int64, bool) run through both frameworks: values, dtypes, gradients (float64,
a random cotangent), and ``error_inputs`` (does tapegrad raise where PyTorch raises). One JSON
line per result goes to OUT.jsonl; a count per kind of mismatch is printed at the end.

    python scripts/opinfo_diff.py OUT.jsonl [name-substring ...]

Needs PyTorch (``pip install torch==2.13.0``); a few minutes for the whole database. Not run by
the test suite: the fixes it led to have regression tests of their own (tests/ops, tests/nn).
"""
import functools
import json
import math
import re
import signal
import sys
import traceback
import types

import numpy as np

if "expecttest" not in sys.modules:  # imported by torch's test utilities, not used by op_db
    try:
        import expecttest  # noqa: F401
    except ImportError:
        import unittest
        sys.modules["expecttest"] = types.SimpleNamespace(ACCEPT=False, TestCase=unittest.TestCase)
import torch  # noqa: E402
from torch.testing._internal.common_methods_invocations import op_db

import tapegrad as tg  # noqa: E402

OUT = sys.argv[1]
ONLY = sys.argv[2:]
MAX_SAMPLES = 25
METHODS = True
RANDOM = re.compile(r"rand|dropout|bernoulli|multinomial|normal$|^normal|uniform|exponential|geometric|cauchy|"
                    r"log_normal|empty|rrelu|fractional_max_pool|lowrank")

NAMESPACES = [("", torch, tg), ("nn.functional.", torch.nn.functional, tg.nn.functional),
              ("linalg.", torch.linalg, tg.linalg), ("special.", torch.special, tg.special),
              ("fft.", torch.fft, tg.fft)]


class Timeout(Exception):
    pass


def _alarm(*_):
    raise Timeout()


signal.signal(signal.SIGALRM, _alarm)


def tg_path(path):
    obj = tg
    for p in path.split("."):
        obj = getattr(obj, p, None)
        if obj is None:
            return None
    return obj


def torch_to_tg_callable(f):
    """tapegrad's counterpart of a torch callable, or None."""
    if isinstance(f, functools.partial):
        g = torch_to_tg_callable(f.func)
        return None if g is None else functools.partial(g, *[conv(a) for a in f.args],
                                                       **{k: conv(v) for k, v in f.keywords.items()})
    name = getattr(f, "__name__", None)
    if name == "<lambda>":
        # run the lambda's code with torch and F rebound to tapegrad
        glb = dict(f.__globals__)
        glb["torch"] = tg
        glb["F"] = tg.nn.functional
        return types.FunctionType(f.__code__, glb, name, f.__defaults__, f.__closure__)
    if name is None:
        return None
    for prefix, tns, tgns in NAMESPACES:
        if getattr(tns, name, None) is f:
            return getattr(tgns, name, None)
    if getattr(torch.Tensor, name, None) is f:
        m = getattr(tg.Tensor, name, None)
        return m
    return None


def conv(x):
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided or x.is_complex() or x.dtype in (torch.bfloat16, torch.float16):
            raise Skip(f"unsupported tensor {x.dtype} {x.layout}")
        return tg.tensor(x.detach().numpy().copy(), requires_grad=x.requires_grad)
    if isinstance(x, torch.dtype):
        return getattr(tg, str(x).split(".")[1])
    if isinstance(x, torch.device):
        return str(x)
    if isinstance(x, torch.Size):
        return tuple(x)
    if isinstance(x, torch.layout):
        return getattr(tg, str(x).split(".")[1])
    if isinstance(x, torch.memory_format):
        return getattr(tg, str(x).split(".")[1])
    if isinstance(x, torch.Generator):
        raise Skip("generator")
    if isinstance(x, tuple):
        return tuple(conv(a) for a in x)
    if isinstance(x, list):
        return [conv(a) for a in x]
    if isinstance(x, dict):
        return {k: conv(v) for k, v in x.items()}
    if callable(x) and not isinstance(x, type) and getattr(x, "__module__", "") and "torch" in getattr(x, "__module__", ""):
        g = torch_to_tg_callable(x)
        if g is None:
            raise Skip(f"callable arg {x}")
        return g
    return x


class Skip(Exception):
    pass


def leaves(x, acc):
    if isinstance(x, (torch.Tensor, tg.Tensor)):
        acc.append(x)
    elif isinstance(x, (tuple, list)):
        for a in x:
            leaves(a, acc)
    elif isinstance(x, dict):
        for a in x.values():
            leaves(a, acc)
    return acc


def flat_out(x):
    if isinstance(x, (torch.Tensor, tg.Tensor)):
        return [x]
    if isinstance(x, (tuple, list)):
        r = []
        for a in x:
            r += flat_out(a)
        return r
    return [x]


def np_of(t):
    if isinstance(t, torch.Tensor):
        t = t.detach()
        if t._is_zerotensor():
            return np.zeros(tuple(t.shape), dtype=str(t.dtype).replace("torch.", ""))
        return t.resolve_conj().numpy()
    return np.asarray(t.detach().numpy() if hasattr(t, "detach") else t)


def tg_dtype_name(t):
    return str(t.dtype).replace("torch.", "").replace("tapegrad.", "")


def compare_vals(a, b, dtype, grad=False):
    """a torch (or python), b tapegrad. Returns None or a reason."""
    if isinstance(a, torch.Tensor):
        if not isinstance(b, tg.Tensor):
            return f"type: torch Tensor vs {type(b).__name__}"
        da, db = tg_dtype_name(a), tg_dtype_name(b)
        if da != db:
            return f"dtype: torch {da} vs tg {db}"
        if tuple(a.shape) != tuple(b.shape):
            return f"shape: torch {tuple(a.shape)} vs tg {tuple(b.shape)}"
        x, y = np_of(a), np_of(b)
        if x.dtype.kind in "fc":
            if dtype == torch.float32 or x.dtype in (np.float32, np.complex64):
                rtol, atol = (1e-3, 1e-4)
            else:
                rtol, atol = (1e-6, 1e-7) if grad else (1e-7, 1e-8)
            if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
                with np.errstate(invalid="ignore"):
                    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
                    d = np.where(np.isnan(x) & np.isnan(y), 0, d)
                    d = np.nan_to_num(d, nan=np.inf)
                i = np.unravel_index(np.argmax(d), d.shape) if d.ndim else ()
                return f"values: max|d|={d.max():.3g} at {i}: torch {x[i]!r} vs tg {y[i]!r}"
        else:
            if not np.array_equal(x, y):
                return f"values(exact): {x.ravel()[:6]} vs {y.ravel()[:6]}"
        return None
    if isinstance(b, tg.Tensor):
        return f"type: torch {type(a).__name__} vs tg Tensor"
    try:
        if a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
            if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-6):
                return None
            return f"python value: {a!r} vs {b!r}"
    except Exception as e:
        return f"python compare: {a!r} vs {b!r}"
    return None


def short_exc(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


results = []


def rec(**kw):
    results.append(kw)


def run_sample(opname, info, tgfn, sample, dtype, i, do_grad, is_random):
    # attention with dropout draws a mask: compare shapes and dtypes only
    if sample.kwargs.get("dropout_p", 0) or (opname.endswith("multi_head_attention_forward") and sample.args[9]
                                             and sample.kwargs.get("training", True)):
        is_random = True
    base = dict(op=opname, dtype=str(dtype).replace("torch.", ""), i=i)
    try:
        targs = (sample.input, *sample.args)
        try:
            g_inp = conv(sample.input)
            g_args = conv(tuple(sample.args))
            g_kw = conv(dict(sample.kwargs))
        except Skip as e:
            rec(**base, kind="skip", detail=str(e))
            return
        # torch
        try:
            tout = info.op(sample.input, *sample.args, **sample.kwargs)
        except Exception as e:
            rec(**base, kind="torch_error", detail=short_exc(e))
            return
        signal.alarm(10)
        try:
            gout = tgfn(g_inp, *g_args, **g_kw)
        except Timeout:
            rec(**base, kind="timeout")
            return
        except Exception as e:
            rec(**base, kind="tg_error", detail=short_exc(e), sample=repr(sample)[:300])
            return
        finally:
            signal.alarm(0)
        ta, ga = flat_out(tout), flat_out(gout)
        if len(ta) != len(ga):
            rec(**base, kind="nouts", detail=f"{len(ta)} vs {len(ga)}")
            return
        for k, (a, b) in enumerate(zip(ta, ga)):
            if is_random:
                if isinstance(a, torch.Tensor):
                    if not isinstance(b, tg.Tensor) or tuple(a.shape) != tuple(b.shape) or tg_dtype_name(a) != tg_dtype_name(b):
                        rec(**base, kind="value", detail=f"out{k} random: shape/dtype {a.shape} {a.dtype} vs {getattr(b,'shape',None)} {getattr(b,'dtype',None)}")
                        return
                continue
            r = compare_vals(a, b, dtype)
            if r:
                rec(**base, kind="dtype" if r.startswith("dtype") else "value", detail=f"out{k} {r}",
                    sample=repr(sample)[:300])
                return
        if not do_grad or is_random:
            rec(**base, kind="ok")
            return
        # gradients
        tin = [t for t in leaves(targs, []) + leaves(sample.kwargs, []) if t.requires_grad]
        gin = [t for t in leaves((g_inp, *g_args), []) + leaves(g_kw, []) if t.requires_grad]
        if len(tin) != len(gin) or not tin:
            rec(**base, kind="ok")
            return
        touts = [(k, a) for k, a in enumerate(ta) if isinstance(a, torch.Tensor) and a.requires_grad and a.dtype.is_floating_point]
        if not touts:
            rec(**base, kind="ok")
            return
        rng = np.random.default_rng(i)
        cts = [rng.standard_normal(tuple(a.shape)) for _, a in touts]
        tl = sum((a * torch.tensor(c, dtype=a.dtype)).sum() for (_, a), c in zip(touts, cts))
        try:
            tg_grads = torch.autograd.grad(tl, tin, allow_unused=True)
        except Exception as e:
            rec(**base, kind="ok", detail="torch grad failed")
            return
        signal.alarm(10)
        nograd = []
        try:
            gl = None
            for (k, _), c in zip(touts, cts):
                b = ga[k]
                if not getattr(b, "requires_grad", False):
                    nograd.append(k)
                    continue
                term = (b * tg.tensor(c, dtype=b.dtype)).sum()
                gl = term if gl is None else gl + term
            gg = tg.autograd.grad(gl, gin, allow_unused=True) if gl is not None else [None] * len(gin)
        except Timeout:
            rec(**base, kind="timeout", detail="grad")
            return
        except Exception as e:
            rec(**base, kind="grad_error", detail=short_exc(e), sample=repr(sample)[:300])
            return
        finally:
            signal.alarm(0)
        for j, (a, b) in enumerate(zip(tg_grads, gg)):
            if a is None and b is None:
                continue
            if a is None:
                a = torch.zeros_like(tin[j])
            if b is None:
                b = tg.zeros(tuple(gin[j].shape), dtype=gin[j].dtype)
            r = compare_vals(a, b, dtype, grad=True)
            if r:
                rec(**base, kind="grad", detail=f"grad{j} {r}" + (f" (tg out{nograd} no grad)" if nograd else ""),
                    sample=repr(sample)[:300])
                return
        if nograd:
            rec(**base, kind="nograd", detail=f"outs {nograd} need no grad in tg (torch's gradient is zero)")
            return
        rec(**base, kind="ok")
    except Timeout:
        rec(**base, kind="timeout")
    except Exception as e:
        rec(**base, kind="harness_error", detail=short_exc(e) + " " + traceback.format_exc().splitlines()[-3][:200])


def run_errors(opname, info, tgfn):
    try:
        eis = list(info.error_inputs(torch.device("cpu")))
    except Exception as e:
        return
    for i, ei in enumerate(eis):
        s = ei.sample_input
        base = dict(op=opname, dtype="err", i=i)
        try:
            g_inp, g_args, g_kw = conv(s.input), conv(tuple(s.args)), conv(dict(s.kwargs))
        except Skip as e:
            rec(**base, kind="skip", detail=str(e))
            continue
        except Exception as e:
            rec(**base, kind="skip", detail=short_exc(e))
            continue
        signal.alarm(10)
        try:
            tgfn(g_inp, *g_args, **g_kw)
            rec(**base, kind="err_noraise", detail=f"torch: {ei.error_type.__name__}: {ei.error_regex[:120]}",
                sample=repr(s)[:300])
        except Timeout:
            rec(**base, kind="timeout")
        except Exception as e:
            if isinstance(e, ei.error_type):
                rec(**base, kind="ok")
            else:
                rec(**base, kind="err_type", detail=f"torch {ei.error_type.__name__} ({ei.error_regex[:80]}) vs tg {short_exc(e)}",
                    sample=repr(s)[:300])
        finally:
            signal.alarm(0)


def main():
    torch.manual_seed(0)
    for info in op_db:
        opname = info.name + ("." + info.variant_test_name if info.variant_test_name else "")
        if ONLY and not any(o == info.name or o == opname for o in ONLY):
            continue
        tgfn = torch_to_tg_callable(info.op)
        how = "callable"
        if tgfn is None:
            tgfn = tg_path(info.name)
            how = "name"
        if tgfn is None and info.method_variant is not None and hasattr(tg.Tensor, info.name):
            tgfn = getattr(tg.Tensor, info.name)
            how = "method"
        if tgfn is None:
            rec(op=opname, kind="missing_op", detail=f"{info.op}")
            continue
        rec(op=opname, kind="mapped", detail=how)
        is_random = bool(RANDOM.search(info.name))
        dtypes = [torch.float32, torch.float64, torch.int64, torch.bool]
        supported = info.supported_dtypes("cpu")
        for dtype in dtypes:
            if dtype not in supported:
                continue
            grad = dtype == torch.float64 and info.supports_autograd
            try:
                samples = list(info.sample_inputs("cpu", dtype, requires_grad=grad))
            except Exception as e:
                rec(op=opname, dtype=str(dtype), kind="sample_error", detail=short_exc(e))
                continue
            for i, s in enumerate(samples[:MAX_SAMPLES]):
                run_sample(opname, info, tgfn, s, dtype, i, grad, is_random)
        if not is_random:
            run_errors(opname, info, tgfn)
        # the method variant, forward only (float32 and int64)
        mname = getattr(info.method_variant, "__name__", None)
        if METHODS and info.method_variant is not None and mname and not mname.startswith("<"):
            if not hasattr(tg.Tensor, mname):
                rec(op=opname + "[method]", kind="missing_method", detail=mname)
            else:
                for dtype in (torch.float32, torch.int64):
                    if dtype not in supported:
                        continue
                    try:
                        samples = list(info.sample_inputs("cpu", dtype, requires_grad=False))
                    except Exception:
                        continue
                    for i, s in enumerate(samples[:MAX_SAMPLES]):
                        if not isinstance(s.input, torch.Tensor):
                            continue
                        mfn = (lambda mn: lambda x, *a, **k: getattr(x, mn)(*a, **k))(mname)
                        info_m = types.SimpleNamespace(op=(lambda mn: lambda x, *a, **k: getattr(x, mn)(*a, **k))(mname))
                        run_sample(opname + "[method]", info_m, mfn, s, dtype, i, False, is_random)
        with open(OUT, "a") as f:
            for r in results:
                f.write(json.dumps(r, default=str) + "\n")
        results.clear()


KINDS = ["value", "grad", "dtype", "nograd", "tg_error", "grad_error", "timeout", "nouts", "err_noraise",
         "err_type", "missing_method", "harness_error"]


def summary(path):
    """Counts per kind of mismatch (and the ops behind each), function and method forms apart."""
    import collections
    rows = [json.loads(line) for line in open(path)]
    mapped = sum(r["kind"] == "mapped" for r in rows)
    missing = sum(r["kind"] == "missing_op" for r in rows)
    for label, method in (("function", False), ("method", True)):
        sub = [r for r in rows if ("[method]" in r["op"]) == method and r["kind"] not in ("mapped", "missing_op")]
        count = collections.Counter(r["kind"] for r in sub)
        ops = collections.defaultdict(set)
        for r in sub:
            ops[r["kind"]].add(r["op"])
        print(f"[{label}] OpInfos mapped {mapped}, missing {missing}; results {len(sub)}: ok {count['ok']}, "
              f"skipped {count['skip']}, PyTorch raised {count['torch_error']}")
        print("   " + "  ".join(f"{k}={count[k]} ({len(ops[k])} ops)" for k in KINDS if count[k]))


if __name__ == "__main__":
    open(OUT, "w").close()
    main()
    summary(OUT)
