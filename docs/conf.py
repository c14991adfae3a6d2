"""Sphinx configuration: ``bash scripts/docs.sh`` builds the site into docs/_build/html.

The API reference (docs/api/, generated at each build, not committed) lists every public name
of the namespaces below, read from the package itself, so a new op appears without editing
a page; tests/test_docstrings.py checks each of them has a docstring.
"""
from __future__ import annotations

import importlib
import inspect
import os
import types

import tapegrad

project = "tapegrad"
author = "the tapegrad authors"
copyright = "the tapegrad authors, MIT licence"
release = version = tapegrad.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "eager tensors, a reverse-mode tape, C++ kernels", "fixed_sidebar": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # signatures already show them; keeps long op pages readable
autodoc_inherit_docstrings = True
autosummary_generate = False  # the pages below document each name in place
napoleon_google_docstring = True
napoleon_numpy_docstring = True
myst_heading_anchors = 3

# namespace -> page title; the order of the API reference
NAMESPACES = {
    "tapegrad": "tapegrad",
    "tapegrad.Tensor": "tapegrad.Tensor",
    "tapegrad.nn": "tapegrad.nn",
    "tapegrad.nn.functional": "tapegrad.nn.functional",
    "tapegrad.nn.init": "tapegrad.nn.init",
    "tapegrad.nn.grad": "tapegrad.nn.grad",
    "tapegrad.nn.utils": "tapegrad.nn.utils",
    "tapegrad.nn.parallel": "tapegrad.nn.parallel",
    "tapegrad.optim": "tapegrad.optim",
    "tapegrad.optim.lr_scheduler": "tapegrad.optim.lr_scheduler",
    "tapegrad.autograd": "tapegrad.autograd",
    "tapegrad.autograd.functional": "tapegrad.autograd.functional",
    "tapegrad.autograd.graph": "tapegrad.autograd.graph",
    "tapegrad.storage": "tapegrad.storage",
    "tapegrad.overrides": "tapegrad.overrides",
    "tapegrad.func": "tapegrad.func",
    "tapegrad.linalg": "tapegrad.linalg",
    "tapegrad.fft": "tapegrad.fft",
    "tapegrad.sparse": "tapegrad.sparse",
    "tapegrad.library": "tapegrad.library",
    "tapegrad.special": "tapegrad.special",
    "tapegrad.distributions": "tapegrad.distributions",
    "tapegrad.utils.data": "tapegrad.utils.data",
    "tapegrad.distributed": "tapegrad.distributed",
    "tapegrad.futures": "tapegrad.futures",
    "tapegrad.amp": "tapegrad.amp",
    "tapegrad.testing": "tapegrad.testing",
    "tapegrad.profiler": "tapegrad.profiler",
    "tapegrad.quasirandom": "tapegrad.quasirandom",
    "tapegrad.multiprocessing": "tapegrad.multiprocessing",
    "tapegrad.compiler": "tapegrad.compiler",
    "tapegrad.fx": "tapegrad.fx",
    "tapegrad.hub": "tapegrad.hub",
    "tapegrad.onnx": "tapegrad.onnx",
    "tapegrad.utils.benchmark": "tapegrad.utils.benchmark",
}


def _ours(obj) -> bool:
    mod = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    return isinstance(mod, str) and (mod == "tapegrad" or mod.startswith("tapegrad."))


def _public(modname):
    """(modules, classes, functions) of a namespace: its ``__all__`` and other public names
    that tapegrad defines (what tests/test_docstrings.py walks)."""
    mod = importlib.import_module(modname)
    names = set(getattr(mod, "__all__", ())) | {n for n in vars(mod) if not n.startswith("_")}
    if modname == "tapegrad":
        names |= {"testing"}
    mods, classes, funcs = [], [], []
    for name in sorted(names, key=str.lower):
        obj = getattr(mod, name)
        if isinstance(obj, types.ModuleType):
            if _ours(obj):
                mods.append((name, obj))
        elif callable(obj) and _ours(obj):
            (classes if isinstance(obj, type) else funcs).append(name)
    return mods, classes, funcs


def _summary(obj) -> str:
    return (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")


def _homes() -> dict:
    """id(class) -> the namespace whose page documents it in full: the deepest one its module
    lies in (``Adam`` in tapegrad.optim, not in tapegrad), else the first listing it. Other
    pages show its docstring without indexing it again (Sphinx would see a duplicate)."""
    listed: dict = {}
    for modname in NAMESPACES:
        if modname != "tapegrad.Tensor":
            mod = importlib.import_module(modname)
            for name in _public(modname)[1]:
                cls = getattr(mod, name)
                listed.setdefault(id(cls), (cls, []))[1].append(modname)
    homes = {}
    for key, (cls, where) in listed.items():
        inside = [ns for ns in where if cls.__module__ == ns or cls.__module__.startswith(ns + ".")]
        homes[key] = max(inside, key=len) if inside else where[0]
    homes[id(tapegrad.Tensor)] = "tapegrad.Tensor"
    return homes


def _page(modname: str, homes: dict) -> str:
    title = NAMESPACES[modname]
    lines = [title, "=" * len(title), ""]
    if modname == "tapegrad.Tensor":
        lines += [".. currentmodule:: tapegrad", "",
                  ".. autoclass:: Tensor", "   :members:", "   :inherited-members:", "   :undoc-members:",
                  "   :special-members: __getitem__", ""]
        return "\n".join(lines)
    lines += [f".. automodule:: {modname}", "   :no-members:", "", f".. currentmodule:: {modname}", ""]
    mods, classes, funcs = _public(modname)
    if "Tensor" in classes:
        classes = [c for c in classes if c != "Tensor"]
        lines += [f"``{modname}.Tensor`` is the tensor class: :doc:`tapegrad.Tensor`.", ""]
    if mods:
        lines += ["Submodules", "----------", ""]
        for name, obj in mods:
            full = obj.__name__
            if full in NAMESPACES:
                lines.append(f"* ``{modname}.{name}``: :doc:`{full}`")
            else:
                lines.append(f"* ``{modname}.{name}`` (``{full}``): {_summary(obj)}")
        lines.append("")
    for heading, names, directive in (("Classes", classes, "autoclass"), ("Functions", funcs, "autofunction")):
        if not names:
            continue
        lines += [heading, "-" * len(heading), "", ".. autosummary::", ""]
        lines += [f"   {n}" for n in names] + [""]
        mod = importlib.import_module(modname)
        for n in names:
            lines.append(f".. {directive}:: {n}")
            if directive == "autoclass":
                home = homes[id(getattr(mod, n))]
                if home == modname:
                    lines += ["   :members:", "   :show-inheritance:"]
                else:
                    # a second full entry would register the class's canonical name twice (Sphinx
                    # does so even under :no-index:): its summary and a link to its home page
                    lines[-1] = f".. class:: {n}"
                    lines += ["   :no-index:", "", f"   {_summary(getattr(mod, n))} Documented in :doc:`{home}`."]
            lines.append("")
    return "\n".join(lines)


def _write_api(app):
    out = os.path.join(app.srcdir, "api")
    os.makedirs(out, exist_ok=True)
    homes = _homes()
    for modname in NAMESPACES:
        text = _page(modname, homes)
        path = os.path.join(out, f"{modname}.rst")
        # rewrite only what changed, so an incremental build stays incremental
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as f:
                f.write(text)


def setup(app):
    app.connect("builder-inited", _write_api)
