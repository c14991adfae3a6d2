"""Tape introspection (the heritage's ``net.dump()``): the recorded graph behind a tensor,
as text, as Graphviz DOT, or rendered to SVG/PNG.

Each node knows the user line that recorded it and, when it was recorded inside an
``nn.Module``'s forward, that module (a weak reference kept by ``Module.__call__``). Given the
model (``model=``) or its parameters (``params=dict(model.named_parameters())``, as torchviz's
``make_dot`` takes them), leaves are named by their parameter names and nodes by their
module's path, e.g. ``conv1 (Conv2d)``.
"""
from __future__ import annotations

import os

from .._tape.node import Node


def _graph(roots):
    """The nodes reachable from ``roots`` (iterative walk), each once."""
    seen, stack = {}, list(roots)
    while stack:
        for e in stack.pop().edges:
            if isinstance(e, Node) and e not in seen:
                seen[e] = True
                stack.append(e)
    return seen


def _nodes(t):
    """Nodes behind ``t`` in execution (recording) order."""
    if t.grad_fn is None:
        return []
    root = t.grad_fn
    return sorted({root: True, **_graph([root])}, key=lambda n: n.seq)


def _saved_bytes(n: Node) -> int:
    # what saved_tensors_hooks packed is the hook's own object: counted where it is a tensor or an array
    total = getattr(n.out_data, "nbytes", 0) or getattr(getattr(n.out_data, "_data", None), "nbytes", 0)
    for s in n.saved or ():
        data = getattr(s, "_data", None)
        if data is not None:
            total += data.nbytes
    return total


def _fmt_meta(shape, dtype):
    return f"{dtype}{list(shape)}"


class _Names:
    """Names for leaves (parameter names) and modules (paths in the model), from ``model`` and/or
    ``params`` ({name: tensor}); keyed by identity, as the graph holds the objects themselves."""

    def __init__(self, params=None, model=None):
        if params is not None and not hasattr(params, "items"):
            raise TypeError(f"autograd graph: params must be a dict of name -> tensor (e.g. "
                            f"dict(model.named_parameters())), got {type(params).__name__}")
        self.leaves, self.modules = {}, {}
        if model is not None:
            if not hasattr(model, "named_modules"):
                raise TypeError(f"autograd graph: model must be an nn.Module, got {type(model).__name__}")
            for name, m in model.named_modules():
                self.modules.setdefault(id(m), name)
            for name, p in model.named_parameters():
                self.leaves.setdefault(id(p), name)
        for name, p in (params or {}).items():
            self.leaves[id(p)] = str(name)
        self._params = dict(params or {})

    def leaf(self, t):
        return self.leaves.get(id(t))

    def module(self, where):
        """'path (Class)' of the module that recorded a node, '(Class)' when its path is not
        known, None outside any module (or when the module is gone)."""
        m = where[2]() if len(where) > 2 else None
        if m is None:
            return None
        path = self.modules.get(id(m))
        if path is None:  # a module with parameters: its path from a parameter's name
            own = {id(p) for p in m._parameters.values() if p is not None}
            path = next((n.rsplit(".", 1)[0] if "." in n else "" for n, p in self._params.items()
                         if id(p) in own), None)
        return f"{path} ({type(m).__name__})" if path else f"({type(m).__name__})"


def dump(t, file=None, *, params=None, model=None) -> str:
    """Print (and return) one line per recorded node behind ``t``, in execution order.

    Each line: the op, its inputs (shape/dtype and source: ``#k`` for node k, a parameter's name,
    ``leaf`` or ``const``), the output, the bytes saved for backward, where it was recorded and,
    inside a module's forward, which module (``in conv1 (Conv2d)``).

    Parameters
    ----------
    t : Tensor
        The tensor whose graph to show (typically a loss).
    file : file-like, optional
        Where to print (default: standard output).
    params : dict, optional
        ``{name: tensor}`` naming leaves, e.g. ``dict(model.named_parameters())``.
    model : nn.Module, optional
        Names both parameters and modules by their paths in ``model``.

    Examples
    --------
    >>> import io, tapegrad, tapegrad.nn as nn
    >>> lin = nn.Linear(3, 2)
    >>> text = tapegrad.autograd.dump(lin(tapegrad.ones(4, 3)).sum(), model=lin, file=io.StringIO())
    >>> print(text.splitlines()[0].split(" at ")[0])  # doctest: +NORMALIZE_WHITESPACE
    #0   addmm (float32[2]<-bias, float32[4, 3]<-const, float32[2, 3]<-weight) -> float32[4, 2] saved=48B
    """
    names = _Names(params, model)
    nodes = _nodes(t)
    ids = {n: i for i, n in enumerate(nodes)}
    lines = []
    for n in nodes:
        ins = []
        for (shape, dtype), e in zip(n.meta, n.edges):
            if isinstance(e, Node) and e in ids:
                src = f"#{ids[e]}"
            elif e is None:
                src = "const"
            else:
                src = names.leaf(e) or "leaf"
            ins.append(f"{_fmt_meta(shape, dtype)}<-{src}")
        fname, line = n.where[:2]
        module = names.module(n.where)
        state = " (freed)" if n.released else ""
        lines.append(f"#{ids[n]:<3} {n.op.name:<14} ({', '.join(ins)}) -> {_fmt_meta(*n.out_meta)} "
                     f"saved={_saved_bytes(n)}B{state} "
                     f"at {os.path.basename(fname)}:{line}" + (f" in {module}" if module else ""))
    text = "\n".join(lines) if lines else "(no recorded graph: the tensor is a leaf)"
    print(text, file=file)
    return text


def _quote(text: str) -> str:
    """A DOT string literal's contents: backslashes and quotes escaped, newlines as \\n."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(t, *, params=None, model=None) -> str:
    """The graph behind ``t`` as Graphviz DOT text (render with :func:`render` or ``dot -Tsvg``).

    Ops are boxes (the op, the module that recorded it, bytes saved for backward), grouped in a
    cluster per module; parameters are ellipses named by ``params``/``model`` (see :func:`dump`);
    edges carry the shape and dtype that flow along them.

    Examples
    --------
    >>> import tapegrad
    >>> x = tapegrad.ones(3, requires_grad=True)
    >>> print(tapegrad.autograd.to_dot((x * 2).sum(), params={"x": x}).splitlines()[0])
    digraph tape {
    """
    names = _Names(params, model)
    nodes = _nodes(t)
    ids = {n: i for i, n in enumerate(nodes)}
    out = ["digraph tape {", "  rankdir=BT;", '  node [shape=box, fontname="monospace", fontsize=10];',
           '  edge [fontname="monospace", fontsize=9];']
    clusters, body, leaves = {}, [], {}
    for n in nodes:
        module = names.module(n.where)
        # a module known by its path gets a cluster (which carries the name); the root model's own
        # ops, or a module known only by its class, are spread over the graph: the box says it
        clustered = module is not None and not module.startswith("(")
        text = f"{n.op.name}\n{module}" if module and not clustered else n.op.name
        label = f'  n{ids[n]} [label="{_quote(f"{text}{chr(10)}{_saved_bytes(n)} B saved")}"];'
        (clusters.setdefault(module, []) if clustered else body).append(label)
        for (shape, dtype), e in zip(n.meta, n.edges):
            if isinstance(e, Node) and e in ids:
                body.append(f'  n{ids[e]} -> n{ids[n]} [label="{_fmt_meta(shape, dtype)}"];')
            elif e is not None:
                lid = leaves.setdefault(id(e), f"leaf{len(leaves)}")
                name = names.leaf(e)
                text = f"{name}\n{_fmt_meta(shape, dtype)}" if name else f"leaf {_fmt_meta(shape, dtype)}"
                style = ", style=filled, fillcolor=lightblue" if name else ""
                body.append(f'  {lid} [shape=ellipse, label="{_quote(text)}"{style}];')
                body.append(f"  {lid} -> n{ids[n]};")
    for i, (module, labels) in enumerate(clusters.items()):
        out.append(f"  subgraph cluster_{i} {{")
        out.append(f'    label="{_quote(module)}"; style=rounded; color=gray;')
        out.extend("  " + ln for ln in labels)
        out.append("  }")
    out.extend(body)
    out.append("}")
    return "\n".join(out)


def render(t, filename, format=None, *, params=None, model=None):  # noqa: A002 (graphviz's name)
    """Render the graph behind ``t`` to an image file with Graphviz (``svg``, ``png``, ``pdf``).

    Needs the ``graphviz`` Python package (``pip install graphviz``, or the ``graph`` extra) and
    Graphviz's ``dot`` program (``apt-get install graphviz``, ``brew install graphviz``). The
    format defaults to the file's extension. The file is written whole or not at all: an image
    replaces an existing file only once it is complete.

    Parameters
    ----------
    t : Tensor
        The tensor whose graph to draw.
    filename : str or path
        The image to write.
    format : str, optional
        ``svg``, ``png``, ``pdf``, ... (default: from ``filename``'s extension).
    params, model :
        Names for parameters and modules, as in :func:`dump`.

    Returns
    -------
    str
        ``filename``.
    """
    filename = os.fspath(filename)
    fmt = format or os.path.splitext(filename)[1].lstrip(".").lower()
    if not fmt:
        raise ValueError(f"autograd.render: no format given and {filename!r} has no extension (use .svg or .png)")
    try:
        import graphviz
    except ImportError:
        raise RuntimeError("autograd.render needs the graphviz package: pip install graphviz (and Graphviz's "
                           "dot program: apt-get install graphviz / brew install graphviz); "
                           "autograd.to_dot gives the DOT text without it") from None
    dot = to_dot(t, params=params, model=model)
    try:
        image = graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RuntimeError("autograd.render: Graphviz's dot program is not installed (apt-get install graphviz / "
                           "brew install graphviz); autograd.to_dot gives the DOT text without it") from None
    except (ValueError, graphviz.CalledProcessError) as e:
        raise ValueError(f"autograd.render: Graphviz cannot write format {fmt!r}: {e}") from None
    # whole or not at all: a temporary file beside the target, renamed over it when complete;
    # O_CREAT with 0o666 gives it the umask's permissions (mkstemp's would be 0o600)
    target = os.path.realpath(filename)
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(image)
        if os.path.exists(target):
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return filename
