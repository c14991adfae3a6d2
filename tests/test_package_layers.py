"""The package's layers, checked on its source (``ast``): each layer imports only the layers below
it, no import sits at the bottom of a file, imports inside functions are for optional
dependencies only, and no import cycle is wider than 4 files.

    _tape (and _C, _dtype, device, random, _shared, storage)  <  ops  <  tensor  <  autograd  <  the rest

(CONTRIBUTING.md, "Where code lives".)
"""
from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "tapegrad"
LAYERS = [  # (name, module prefixes), lowest first; a module belongs to the first layer it matches
    ("tape", ("tapegrad._tape", "tapegrad._C", "tapegrad._dtype", "tapegrad.device", "tapegrad.random",
              "tapegrad._shared", "tapegrad.storage")),
    ("ops", ("tapegrad.ops",)),
    ("tensor", ("tapegrad.tensor",)),
    ("autograd", ("tapegrad.autograd",)),
    ("api", ("tapegrad",)),
]
OPTIONAL = ("mpi4py", "h5py", "einops", "tabulate", "graphviz", "ml_dtypes", "safetensors", "hypothesis", "tqdm", "matplotlib", "importlib",
            "numpy._core", "numpy.core", "PIL")
MAX_CYCLE = 4

def _modules():
    mods = {"tapegrad._C": None}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _target(mod: str, node) -> list[str]:
    """The tapegrad modules an import statement in ``mod`` loads."""
    path = MODULES[mod]
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.level:
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    else:
        names = [node.module] if node.module else []
    out = []
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != mod:
            out.append(name)
    return out


def _imports():
    """[(module, imported module, is_module_level, lineno)] and [(module, lineno) of bottom imports],
    [(module, dependency, lineno) of imports inside functions]."""
    edges, bottom, inner = [], [], []
    for mod, path in MODULES.items():
        if path is None:
            continue
        tree = ast.parse(path.read_text())
        top = set()
        seen_def = False
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                seen_def = True
            for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    top.add(id(sub))
                    if seen_def and sub is node:
                        bottom.append((mod, node.lineno))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for dep in _target(mod, node):
                    edges.append((mod, dep, id(node) in top, node.lineno))
                if id(node) not in top:
                    name = node.names[0].name if isinstance(node, ast.Import) else ("." * node.level + (node.module or ""))
                    if not any(name.lstrip(".").startswith(o) for o in OPTIONAL):
                        inner.append((mod, (_target(mod, node) or [name])[0], node.lineno))
    return edges, bottom, inner


EDGES, BOTTOM, INNER = _imports()


def _layer(mod: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(mod == p or mod.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(mod)


def largest_cycle(edges) -> list[str]:
    """The largest strongly connected set of modules (iterative Tarjan)."""
    graph: dict[str, set] = {m: set() for m in MODULES}
    for a, b in edges:
        graph[a].add(b)
    index, low, on, stack, best, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(graph[w])))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > len(best):
                        best = sorted(comp)
    return best


def test_no_layer_imports_a_higher_one():
    upward = sorted({(a, b, line) for a, b, _, line in EDGES
                     if _layer(b) > _layer(a)})
    assert not upward, "imports of a higher layer:\n" + "\n".join(f"  {a}:{line} -> {b}" for a, b, line in upward)


def test_no_import_at_the_bottom_of_a_file():
    late = sorted(BOTTOM)
    assert not late, "module-level imports after the first def/class: " + ", ".join(f"{m}:{n}" for m, n in late)


def test_imports_inside_functions_are_only_of_optional_dependencies():
    inner = sorted(INNER)
    assert not inner, "imports inside functions: " + ", ".join(f"{m}:{n} ({d})" for m, d, n in inner)


def test_the_largest_import_cycle_has_at_most_four_files():
    cycle = largest_cycle({(a, b) for a, b, _, _ in EDGES})
    print(f"largest import cycle: {len(cycle)} files {cycle}")
    assert len(cycle) <= MAX_CYCLE, f"an import cycle of {len(cycle)} files: {cycle}"



@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_every_module_belongs_to_a_layer(layer):
    assert any(LAYERS[_layer(m)][0] == layer for m in MODULES)
