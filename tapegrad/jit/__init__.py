"""``torch.jit`` for scripts that script or trace a model: tapegrad runs eagerly, so ``script`` and
``trace`` return the module or function unchanged (it already runs as it would after compiling;
as ``tapegrad.compile``), and the decorators that steer the compiler (``ignore``, ``export``,
``unused``) leave the function as it is. A TorchScript file is compiled code tapegrad cannot
run: ``save`` / ``load`` raise and point at ``tapegrad.save`` / ``tapegrad.load``."""
from __future__ import annotations

import builtins
import contextlib
import typing

from ..futures import Future

__all__ = ["script", "trace", "trace_module", "ignore", "export", "unused", "is_scripting", "is_tracing",
           "annotate", "Final", "freeze", "optimize_for_inference", "save", "load", "ScriptModule",
           "ScriptFunction", "fork", "wait", "Future", "isinstance", "Attribute", "script_if_tracing", "Error",
           "export_opnames", "enable_onednn_fusion", "onednn_fusion_enabled", "set_fusion_strategy", "strict_fusion"]


def script(obj, optimize=None, _frames_up=0, _rcb=None, example_inputs=None):
    """``tapegrad.jit.script(model)``: the model (or function) itself."""
    return obj


def trace(func, example_inputs=None, optimize=None, check_trace=True, check_inputs=None, check_tolerance=1e-5,
          strict=True, _force_outplace=False, _module_class=None, _compilation_unit=None,
          example_kwarg_inputs=None, _store_inputs=True):
    """``tapegrad.jit.trace(model, example)``: the model (or function) itself, run eagerly, so
    data-dependent control flow keeps working where a trace would freeze one path."""
    return func


def trace_module(mod, inputs, *args, **kwargs):
    return mod


def _decorator(fn=None, **kwargs):
    if fn is None or builtins.isinstance(fn, bool):  # @ignore(drop=True), @ignore(True)
        return lambda f: f
    return fn


def ignore(drop=False, **kwargs):
    """``@tapegrad.jit.ignore`` / ``@ignore(drop=True)``: the function, unchanged."""
    return _decorator(drop if callable(drop) else None)


def unused(fn):
    return fn


def export(fn):
    return fn


def interface(obj):
    return obj


def _overload(func):
    """``@torch.jit._overload``: a TorchScript overload declaration (a typed stub); eagerly the
    undecorated definition that follows replaces it, so the stub is returned as is."""
    return func


def _overload_method(func):
    """``@torch.jit._overload_method``: ``_overload`` for methods."""
    return func


def is_scripting() -> bool:
    return False


def is_tracing() -> bool:
    return False


def annotate(the_type, the_value):
    return the_value


def freeze(mod, preserved_attrs=None, optimize_numerics=True):
    return mod


def optimize_for_inference(mod, other_methods=None):
    return mod


class _FinalMeta(type):
    def __getitem__(cls, item):
        return item


class Final(metaclass=_FinalMeta):
    """``x: tapegrad.jit.Final[int]``: the annotated type."""


def _no_torchscript(what):
    raise NotImplementedError(f"tapegrad.jit.{what}: tapegrad has no TorchScript (models run eagerly); save and "
                              f"load a model's weights with tapegrad.save(model.state_dict(), path) and "
                              f"model.load_state_dict(tapegrad.load(path))")


def save(m, f, _extra_files=None):
    _no_torchscript("save")


def load(f, map_location=None, _extra_files=None, _restore_shapes=False):
    _no_torchscript("load")


class ScriptModule:
    """Never produced: ``script``/``trace`` return the module itself (``isinstance`` is False)."""


class ScriptFunction:
    """Never produced (see ``ScriptModule``)."""


# ---------------------------------------------------------------- the rest of torch.jit's surface
def fork(func, *args, **kwargs) -> Future:
    """``torch.jit.fork``: runs ``func(*args, **kwargs)`` now (eager code has no task to schedule)
    and returns a completed Future of its result; an exception is raised by ``wait``, as PyTorch's."""
    fut = Future()
    try:
        fut.set_result(func(*args, **kwargs))
    except Exception as e:  # delivered through the future, as a forked task's error is
        fut.set_exception(e)
    return fut


def wait(future):
    """The value of a ``fork``'s Future."""
    return future.wait()


def _matches(obj, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin is None:
        return tp is typing.Any or builtins.isinstance(obj, tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        return any(_matches(obj, a) for a in args)
    if not builtins.isinstance(obj, origin):
        return False
    if origin in (list, set, frozenset) and args:
        return all(_matches(x, args[0]) for x in obj)
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(x, args[0]) for x in obj)
        return len(obj) == len(args) and all(_matches(x, a) for x, a in zip(obj, args))
    if origin is dict and args:
        return all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in obj.items())
    return True


def isinstance(obj, target_type) -> bool:  # noqa: A001  (PyTorch's name: a typing-aware isinstance)
    """``torch.jit.isinstance(x, List[int])``: ``isinstance`` that also checks the element types of
    ``List``/``Tuple``/``Dict``/``Optional``/``Union`` annotations."""
    return _matches(obj, target_type)


def Attribute(value, type=None):  # noqa: N802,A002  (PyTorch's names)
    """``self.x = torch.jit.Attribute(value, type)``: ``value`` itself outside TorchScript."""
    return value


def script_if_tracing(fn):
    """``fn`` itself (nothing is traced)."""
    return fn


_script_if_tracing = script_if_tracing  # PyTorch keeps the old private name too (torchvision.ops uses it)


class Error(RuntimeError):
    """``torch.jit.Error``: the exception TorchScript code raises (never here)."""


def export_opnames(m) -> list:
    """The ops a scripted module uses: none are compiled here."""
    return []


_onednn_fusion = [False]


def enable_onednn_fusion(enabled: bool) -> None:
    """Kept and read back (there is no graph to fuse)."""
    _onednn_fusion[0] = bool(enabled)


def onednn_fusion_enabled() -> bool:
    return _onednn_fusion[0]


def set_fusion_strategy(strategy):
    """Returns the previous strategy (PyTorch's default); nothing is fused here."""
    previous = _fusion_strategy[0]
    _fusion_strategy[0] = list(strategy)
    return previous


_fusion_strategy = [[("STATIC", 2), ("DYNAMIC", 10)]]


@contextlib.contextmanager
def strict_fusion():
    """A no-op block (nothing to fuse, so nothing to check)."""
    yield

