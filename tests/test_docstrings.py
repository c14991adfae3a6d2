"""Every public name of tapegrad has a docstring (issue 13): this walks the public API and lists
the names without one.

The public API: the namespaces below, each one's ``__all__`` together with its other public
attributes (names without a leading underscore) that tapegrad defines: functions, classes,
submodules; plus the public methods and properties of ``Tensor`` and of every public class.
Values that are not callables (dtypes, constants) carry no docstring of their own and are not
walked. A method that only overrides a documented one of a base class inherits its docstring
(``inspect.getdoc``), as Sphinx shows it.
"""
from __future__ import annotations

import doctest
import importlib
import inspect
import pathlib
import types

import pytest

import tapegrad

NAMESPACES = [
    "tapegrad", "tapegrad.nn", "tapegrad.nn.functional", "tapegrad.nn.init", "tapegrad.nn.utils",
    "tapegrad.nn.parallel", "tapegrad.optim", "tapegrad.optim.lr_scheduler", "tapegrad.optim.swa_utils",
    "tapegrad.nn.attention", "tapegrad.nn.attention.flex_attention", "tapegrad.autograd",
    "tapegrad.autograd.functional", "tapegrad.autograd.graph", "tapegrad.nn.grad", "tapegrad.storage",
    "tapegrad.overrides", "tapegrad.linalg", "tapegrad.special", "tapegrad.distributions",
    "tapegrad.utils.data", "tapegrad.distributed", "tapegrad.futures", "tapegrad.amp", "tapegrad.testing",
    "tapegrad.library",
]

# Methods every class has, documented by Python itself, or the protocol of a base class.
_SKIP_MEMBERS = {"mro"}


def _ours(obj) -> bool:
    mod = getattr(obj, "__module__", None) or (obj.__name__ if isinstance(obj, types.ModuleType) else "")
    return isinstance(mod, str) and (mod == "tapegrad" or mod.startswith("tapegrad."))


def _public_names(mod):
    names = set(getattr(mod, "__all__", ()))
    names.update(n for n in vars(mod) if not n.startswith("_"))
    if mod.__name__ == "tapegrad":
        names.add("testing")  # imported on first use (tapegrad.__getattr__)
    return sorted(names)


def _members(cls):
    """Public methods and properties that ``cls`` itself defines (inherited ones are walked
    where they are defined)."""
    for name, attr in vars(cls).items():
        if name.startswith("_") or name in _SKIP_MEMBERS:
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if isinstance(attr, property) or inspect.isdatadescriptor(attr) or callable(attr):
            yield name, attr


def _has_doc(obj, owner=None, name=None) -> bool:
    doc = inspect.getdoc(obj)
    if not doc and owner is not None:
        # an override of a documented base-class method or property (inspect.getdoc does this
        # for functions from Python 3.5 on, not for properties)
        for base in owner.__mro__[1:]:
            if name in vars(base) and inspect.getdoc(vars(base)[name]):
                return True
    if isinstance(obj, type) and doc == inspect.getdoc(object):
        return False
    return bool(doc and doc.strip())


def public_api():
    """(qualified name, object, owner class, member name) of every public name walked."""
    seen_classes: set = set()
    out = []
    classes = []
    for modname in NAMESPACES:
        mod = importlib.import_module(modname)
        for name in _public_names(mod):
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType):
                if _ours(obj):
                    out.append((f"{modname}.{name}", obj, None, None))
                continue
            if not callable(obj) or not _ours(obj):
                continue
            out.append((f"{modname}.{name}", obj, None, None))
            if isinstance(obj, type) and obj not in seen_classes:
                seen_classes.add(obj)
                classes.append((f"{modname}.{name}", obj))
    if tapegrad.Tensor not in seen_classes:
        classes.insert(0, ("tapegrad.Tensor", tapegrad.Tensor))
    walked: set = set()
    for qual, cls in classes:
        # the class's own members, and those of its tapegrad bases that no public name walks
        # (Tensor's C++ base with .grad and .grad_fn, a private _Loss, ...)
        for base in cls.__mro__:
            if base in walked or not _ours(base) or (base is not cls and base in seen_classes):
                continue
            walked.add(base)
            for mname, attr in _members(base):
                out.append((f"{qual}.{mname}", attr, base, mname))
    return out


def missing_docstrings():
    return sorted({qual for qual, obj, owner, name in public_api() if not _has_doc(obj, owner, name)})


def test_every_public_name_has_a_docstring():
    missing = missing_docstrings()
    assert not missing, f"{len(missing)} public names without a docstring:\n  " + "\n  ".join(missing)


def test_the_walk_sees_the_api():
    # the walker itself: it must see the names a user reaches for first, or it could pass vacuously
    quals = {q for q, *_ in public_api()}
    for q in ("tapegrad.tensor", "tapegrad.Tensor.backward", "tapegrad.Tensor.grad", "tapegrad.nn.Linear",
              "tapegrad.nn.Linear.forward", "tapegrad.optim.Optimizer.step", "tapegrad.autograd.grad",
              "tapegrad.utils.data.DataLoader", "tapegrad.nn.functional.conv2d", "tapegrad.linalg.solve"):
        assert q in quals, q
    assert len(quals) > 1000


if __name__ == "__main__":
    api = public_api()
    missing = missing_docstrings()
    print(f"{len({q for q, *_ in api})} public names, {len(missing)} without a docstring")
    for q in missing:
        print(" ", q)


# ---------------------------------------------------------------- the documentation's examples
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.rst")))
def test_doc_page_examples_run(page, tmp_path, monkeypatch):
    """The ``>>>`` examples of each page of docs/ run and print what the page says (the pages
    write their files into a temporary folder)."""
    monkeypatch.chdir(tmp_path)
    state, threads = tapegrad.get_rng_state(), tapegrad.get_num_threads()
    try:
        result = doctest.testfile(str(DOCS / page), module_relative=False, report=False, verbose=False,
                                  optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    finally:
        tapegrad.set_rng_state(state)
        tapegrad.set_num_threads(threads)
    assert result.failed == 0, f"{result.failed} of the {result.attempted} examples in docs/{page} failed (run " \
                               f"python -m doctest -o ELLIPSIS -o NORMALIZE_WHITESPACE docs/{page})"
