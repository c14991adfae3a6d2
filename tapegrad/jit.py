"""``torch.jit`` for scripts that script or trace a model: tapegrad runs eagerly, so ``script`` and
``trace`` return the module or function unchanged (it already runs as it would after compiling;
as ``tapegrad.compile``), and the decorators that steer the compiler (``ignore``, ``export``,
``unused``) leave the function as it is. A TorchScript file is compiled code tapegrad cannot
run: ``save`` / ``load`` raise and point at ``tapegrad.save`` / ``tapegrad.load``."""
from __future__ import annotations

__all__ = ["script", "trace", "trace_module", "ignore", "export", "unused", "is_scripting", "is_tracing",
           "annotate", "Final", "freeze", "optimize_for_inference", "save", "load", "ScriptModule",
           "ScriptFunction"]


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
    if fn is None or isinstance(fn, bool):  # @ignore(drop=True), @ignore(True)
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
