"""``torch.utils._pytree``: nested containers ("pytrees") flattened to a list of leaves and a
``TreeSpec`` of their structure, and rebuilt from them, with PyTorch's names and semantics.

Libraries written against PyTorch import it directly (``from torch.utils._pytree import
tree_map``): x-transformers, ema-pytorch, code that maps a function over a model's nested
outputs or a batch. The containers are nodes (tuple, list, dict, namedtuple, OrderedDict,
defaultdict, deque, and any type given to ``register_pytree_node``); everything else, None
included, is a leaf. Dicts keep their insertion order.

>>> leaves, spec = tree_flatten({"a": [1, 2], "b": (3, None)})
>>> leaves
[1, 2, 3, None]
>>> tree_unflatten([x * 10 for x in leaves[:3]] + [None], spec)
{'a': [10, 20], 'b': (30, None)}
>>> tree_map(lambda x: x + 1, [1, (2, 3)])
[2, (3, 4)]
"""
from __future__ import annotations

import dataclasses
import functools
import json
from collections import OrderedDict, defaultdict, deque, namedtuple
from typing import Any, Callable, Iterable, NamedTuple

__all__ = ["PyTree", "Context", "FlattenFn", "UnflattenFn", "TreeSpec", "PyTreeSpec", "LeafSpec", "keystr", "key_get",
           "register_pytree_node", "register_dataclass", "tree_is_leaf", "tree_flatten", "tree_flatten_with_path",
           "tree_unflatten", "tree_iter", "tree_leaves", "tree_leaves_with_path", "tree_structure", "tree_map",
           "tree_map_with_path", "tree_map_", "tree_map_only", "tree_map_only_", "tree_all", "tree_any",
           "tree_all_only", "tree_any_only", "treespec_dumps", "treespec_loads", "treespec_pprint", "is_namedtuple",
           "is_namedtuple_class", "is_namedtuple_instance", "is_structseq", "is_structseq_class",
           "is_structseq_instance", "SequenceKey", "MappingKey", "GetAttrKey", "arg_tree_leaves"]

PyTree = Any
Context = Any
FlattenFn = Callable[[PyTree], "tuple[list, Context]"]
UnflattenFn = Callable[[Iterable, Context], PyTree]


class NodeDef(NamedTuple):
    type: type
    flatten_fn: Callable
    unflatten_fn: Callable
    flatten_with_keys_fn: Callable | None


SUPPORTED_NODES: dict = {}
SUPPORTED_SERIALIZED_TYPES: dict = {}  # type -> serialized name
_SERIALIZED_NAMES: dict = {}  # serialized name -> type


# ------------------------------------------------------------------ keys (paths to a leaf)
@dataclasses.dataclass(frozen=True)
class SequenceKey:
    idx: int

    def __str__(self) -> str:
        return f"[{self.idx!r}]"

    def get(self, sequence):
        return sequence[self.idx]


@dataclasses.dataclass(frozen=True)
class MappingKey:
    key: Any

    def __str__(self) -> str:
        return f"[{self.key!r}]"

    def get(self, mapping):
        return mapping[self.key]


@dataclasses.dataclass(frozen=True)
class GetAttrKey:
    name: str

    def __str__(self) -> str:
        return f".{self.name}"

    def get(self, obj):
        return getattr(obj, self.name)


def keystr(kp) -> str:
    """A key path as source text: ``['a'][1].x``."""
    return "".join(str(k) for k in kp)


def key_get(obj, kp):
    """The subtree of ``obj`` at the key path ``kp``."""
    for k in kp:
        obj = k.get(obj)
    return obj


# ------------------------------------------------------------------ namedtuple / structseq
def is_namedtuple_class(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple) \
        and all(isinstance(f, str) for f in cls._fields) \
        and callable(getattr(cls, "_make", None)) and callable(getattr(cls, "_asdict", None))


def is_namedtuple_instance(obj) -> bool:
    return is_namedtuple_class(type(obj))


def is_namedtuple(obj) -> bool:
    return is_namedtuple_class(obj if isinstance(obj, type) else type(obj))


def is_structseq_class(cls) -> bool:
    """A C struct sequence (``os.stat_result``, ``time.struct_time``): a tuple subclass with
    ``n_sequence_fields``, not a namedtuple."""
    return isinstance(cls, type) and issubclass(cls, tuple) and not is_namedtuple_class(cls) \
        and all(isinstance(getattr(cls, a, None), int) for a in ("n_fields", "n_sequence_fields", "n_unnamed_fields"))


def is_structseq_instance(obj) -> bool:
    return is_structseq_class(type(obj))


def is_structseq(obj) -> bool:
    return is_structseq_class(obj if isinstance(obj, type) else type(obj))


class structseq(tuple):  # noqa: N801  (PyTorch's name: the node type every struct sequence flattens as)
    """The node type of every struct sequence, as ``namedtuple`` is of every namedtuple."""


# ------------------------------------------------------------------ registering node types
def register_pytree_node(cls, flatten_fn, unflatten_fn, *, serialized_type_name: str | None = None,
                         to_dumpable_context=None, from_dumpable_context=None, flatten_with_keys_fn=None) -> None:
    """Make ``cls`` a node: ``flatten_fn(obj) -> (children, context)`` and
    ``unflatten_fn(children, context) -> obj``; ``flatten_with_keys_fn(obj) -> ([(key, child)],
    context)`` for the ``*_with_path`` functions."""
    if cls in SUPPORTED_NODES:
        raise ValueError(f"{cls} is already registered as pytree node.")
    SUPPORTED_NODES[cls] = NodeDef(cls, flatten_fn, unflatten_fn, flatten_with_keys_fn)
    name = serialized_type_name or f"{cls.__module__}.{cls.__qualname__}"
    SUPPORTED_SERIALIZED_TYPES[cls] = name
    _SERIALIZED_NAMES[name] = cls


def _register_pytree_node(cls, flatten_fn, unflatten_fn, to_str_fn=None, maybe_from_str_fn=None, *,
                          serialized_type_name=None, to_dumpable_context=None, from_dumpable_context=None,
                          flatten_with_keys_fn=None) -> None:
    """The older spelling of ``register_pytree_node`` (its string functions are not used)."""
    register_pytree_node(cls, flatten_fn, unflatten_fn, serialized_type_name=serialized_type_name,
                         flatten_with_keys_fn=flatten_with_keys_fn)


def _deregister_pytree_node(cls) -> None:
    SUPPORTED_NODES.pop(cls, None)
    _SERIALIZED_NAMES.pop(SUPPORTED_SERIALIZED_TYPES.pop(cls, None), None)


def register_dataclass(cls, *, field_names=None, drop_field_names=None, serialized_type_name=None):
    """A dataclass as a node over its fields (all of ``dataclasses.fields`` with ``init=True``, or
    ``field_names``); ``drop_field_names`` are left out and rebuilt from their defaults."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"register_dataclass: {cls!r} is not a dataclass")
    drop = set(drop_field_names or ())
    names = list(field_names) if field_names is not None else \
        [f.name for f in dataclasses.fields(cls) if f.init and f.name not in drop]

    def flatten(obj):
        return [getattr(obj, n) for n in names], names

    def unflatten(values, context):
        return cls(**dict(zip(context, values)))

    def flatten_with_keys(obj):
        return [(GetAttrKey(n), getattr(obj, n)) for n in names], names

    register_pytree_node(cls, flatten, unflatten, serialized_type_name=serialized_type_name,
                         flatten_with_keys_fn=flatten_with_keys)
    return cls


def _seq_keys(children):
    return [(SequenceKey(i), c) for i, c in enumerate(children)]


# dict's node functions under PyTorch's private names: libraries register dict-like types with them
# (transformers' ModelOutput: ``flatten_with_keys_fn=_dict_flatten_with_keys``)
def _dict_flatten(d):
    return list(d.values()), list(d.keys())


def _dict_unflatten(values, context):
    return dict(zip(context, values))


def _dict_flatten_with_keys(d):
    values, context = _dict_flatten(d)
    return [(MappingKey(k), v) for k, v in zip(context, values)], context


for _cls, _flat, _unflat, _keys in (
        (tuple, lambda t: (list(t), None), lambda v, c: tuple(v), lambda t: (_seq_keys(t), None)),
        (list, lambda t: (list(t), None), lambda v, c: list(v), lambda t: (_seq_keys(t), None)),
        (dict, _dict_flatten, _dict_unflatten, _dict_flatten_with_keys),
        (namedtuple, lambda t: (list(t), type(t)), lambda v, c: c(*v),
         lambda t: ([(GetAttrKey(f), x) for f, x in zip(t._fields, t)], type(t))),
        (OrderedDict, lambda d: (list(d.values()), list(d.keys())), lambda v, c: OrderedDict(zip(c, v)),
         lambda d: ([(MappingKey(k), x) for k, x in d.items()], list(d.keys()))),
        (defaultdict, lambda d: (list(d.values()), [d.default_factory, list(d.keys())]),
         lambda v, c: defaultdict(c[0], zip(c[1], v)),
         lambda d: ([(MappingKey(k), x) for k, x in d.items()], [d.default_factory, list(d.keys())])),
        (deque, lambda d: (list(d), d.maxlen), lambda v, c: deque(v, maxlen=c),
         lambda d: (_seq_keys(d), d.maxlen)),
        (structseq, lambda t: (list(t), type(t)), lambda v, c: c(v), lambda t: (_seq_keys(t), type(t)))):
    register_pytree_node(_cls, _flat, _unflat, serialized_type_name=f"collections.{_cls.__name__}"
                         if _cls not in (tuple, list, dict) else f"builtins.{_cls.__name__}",
                         flatten_with_keys_fn=_keys)
BUILTIN_TYPES = frozenset(SUPPORTED_NODES)
_DICTS = frozenset((dict, OrderedDict, defaultdict))


def _node_type(tree):
    t = type(tree)
    if t in SUPPORTED_NODES:
        return t
    if is_namedtuple_class(t):
        return namedtuple
    if is_structseq_class(t):
        return structseq
    return t


def tree_is_leaf(tree, is_leaf=None) -> bool:
    """Whether ``tree`` is a leaf: not a node type, or ``is_leaf(tree)``."""
    if is_leaf is not None and is_leaf(tree):
        return True
    return _node_type(tree) not in SUPPORTED_NODES


# ------------------------------------------------------------------ TreeSpec
class TreeSpec:
    """The structure of a pytree: the root node's ``type`` and ``context``, and a spec per child.
    A leaf's spec has type None (``LeafSpec``; printed ``*``)."""

    __slots__ = ("type", "_context", "_children", "num_nodes", "num_leaves", "num_children")

    def __init__(self, type, context, children_specs):  # noqa: A002  (PyTorch's argument name)
        self.type, self._context, self._children = type, context, list(children_specs)
        if type is None:
            if context is not None or self._children:
                raise ValueError("a leaf's TreeSpec has no context and no children")
            self.num_nodes = self.num_leaves = 1
        else:
            self.num_nodes = 1 + sum(c.num_nodes for c in self._children)
            self.num_leaves = sum(c.num_leaves for c in self._children)
        self.num_children = len(self._children)

    @property
    def context(self):
        return self._context

    @property
    def children_specs(self) -> list:
        return self._children

    def is_leaf(self) -> bool:
        return self.type is None

    def children(self) -> list:
        return list(self._children)

    def child(self, index: int) -> "TreeSpec":
        return self._children[index]

    def __repr__(self, indent: int = 0) -> str:
        if self.type is None:
            return "*"
        inner = ""
        if self._children:
            indent += 2
            parts = [c.__repr__(indent) for c in self._children]
            inner = parts[0] + ("," if len(parts) > 1 else "") + ",".join("\n" + " " * indent + p for p in parts[1:])
        return f"TreeSpec({self.type.__name__}, {self._context}, [{inner}])"

    def __eq__(self, other):
        if self is other:
            return True
        if not isinstance(other, TreeSpec):
            return NotImplemented
        return self.type == other.type and self._context == other._context and self._children == other._children

    def __hash__(self):
        ctx = self._context
        if self.type is defaultdict:
            ctx = (ctx[0], tuple(ctx[1]))
        elif self.type in (dict, OrderedDict):
            ctx = tuple(ctx)
        elif self.type is not None and self.type not in BUILTIN_TYPES:
            ctx = None  # a user type's context may not be hashable: equal specs still hash equal
        return hash((self.type, ctx, tuple(self._children)))

    def __reduce__(self):
        return TreeSpec, (self.type, self._context, self._children)

    def flatten_up_to(self, tree) -> list:
        """The subtrees of ``tree`` at this spec's leaves (``tree`` has this structure down to them)."""
        out: list = []
        _flatten_up_to(self, tree, out)
        return out

    def unflatten(self, leaves) -> PyTree:
        """The pytree of this structure holding ``leaves``."""
        leaves = leaves if isinstance(leaves, (list, tuple)) else list(leaves)
        if len(leaves) != self.num_leaves:
            raise ValueError(f"treespec.unflatten(leaves): `leaves` has length {len(leaves)} but the spec refers to "
                             f"a pytree that holds {self.num_leaves} items ({self}).")
        return _unflatten(self, iter(leaves))


PyTreeSpec = TreeSpec


class LeafSpec(TreeSpec):
    """The spec of a leaf."""

    __slots__ = ()

    def __init__(self):
        super().__init__(None, None, [])


_LEAF = LeafSpec()


def _unflatten(spec, it):
    if spec.type is None:
        return next(it)
    children = [_unflatten(c, it) for c in spec._children]
    return SUPPORTED_NODES[spec.type].unflatten_fn(children, spec._context)


def _flatten_up_to(spec, node, out):
    if spec.type is None:
        out.append(node)
        return
    nt = _node_type(node)
    if spec.type in _DICTS and nt in _DICTS:  # the dict kinds match each other, by keys
        keys = spec._context[1] if spec.type is defaultdict else spec._context
        if set(node) != set(keys):
            missing, extra = set(keys) - set(node), set(node) - set(keys)
            raise ValueError("Node keys mismatch" + (f"; missing key(s): {missing}" if missing else "")
                             + (f"; extra key(s): {extra}" if extra else "") + ".")
        children = [node[k] for k in keys]
    else:
        if nt != spec.type:
            raise ValueError(f"Node type mismatch; expected {spec.type!r}, but got {nt!r}.")
        children, context = SUPPORTED_NODES[nt].flatten_fn(node)
        if len(children) != spec.num_children:
            raise ValueError(f"Node arity mismatch; expected {spec.num_children}, but got {len(children)}.")
        if nt is not deque and context != spec._context:
            raise ValueError(f"Node context mismatch for node type {spec.type!r}; expected {spec._context!r}, "
                             f"but got {context!r}.")
    for c, s in zip(children, spec._children):
        _flatten_up_to(s, c, out)


# ------------------------------------------------------------------ flatten / unflatten / map
def tree_flatten(tree, is_leaf=None) -> tuple:
    """(the leaves in order, the TreeSpec of the structure)."""
    leaves: list = []

    def walk(node):
        if is_leaf is not None and is_leaf(node):
            leaves.append(node)
            return _LEAF
        nt = _node_type(node)
        nd = SUPPORTED_NODES.get(nt)
        if nd is None:
            leaves.append(node)
            return _LEAF
        children, context = nd.flatten_fn(node)
        return TreeSpec(nt, context, [walk(c) for c in children])

    spec = walk(tree)
    return leaves, spec


def tree_unflatten(leaves, treespec: TreeSpec) -> PyTree:
    """The pytree of ``treespec``'s structure holding ``leaves``."""
    if not isinstance(treespec, TreeSpec):
        raise TypeError(f"tree_unflatten(leaves, treespec): Expected `treespec` to be instance of TreeSpec but got "
                        f"item of type {type(treespec)}.")
    return treespec.unflatten(leaves)


def tree_iter(tree, is_leaf=None):
    """The leaves, one at a time."""
    if tree_is_leaf(tree, is_leaf):
        yield tree
        return
    children, _ = SUPPORTED_NODES[_node_type(tree)].flatten_fn(tree)
    for c in children:
        yield from tree_iter(c, is_leaf)


def tree_leaves(tree, is_leaf=None) -> list:
    return list(tree_iter(tree, is_leaf))


def tree_structure(tree, is_leaf=None) -> TreeSpec:
    return tree_flatten(tree, is_leaf)[1]


def tree_map(func, tree, *rests, is_leaf=None) -> PyTree:
    """``func`` applied to each leaf (to the leaves of ``tree`` and of each of ``rests`` at the same
    place: they have ``tree``'s structure, or deeper subtrees where ``tree`` has leaves)."""
    leaves, spec = tree_flatten(tree, is_leaf)
    others = [spec.flatten_up_to(r) for r in rests]
    return spec.unflatten(map(func, leaves, *others))


def tree_map_(func, tree, *rests, is_leaf=None) -> PyTree:
    """``func`` called on each leaf for its effect (in-place updates); returns ``tree``."""
    leaves, spec = tree_flatten(tree, is_leaf)
    others = [spec.flatten_up_to(r) for r in rests]
    for args in zip(leaves, *others):
        func(*args)
    return tree


def map_only(type_or_types_or_pred):
    """A decorator: ``func`` applied where a leaf is of the type(s) (or the predicate holds), the
    leaf returned as it is elsewhere."""
    if isinstance(type_or_types_or_pred, (type, tuple)):
        types = type_or_types_or_pred

        def pred(x):
            return isinstance(x, types)
    elif callable(type_or_types_or_pred):
        pred = type_or_types_or_pred
    else:
        raise TypeError(f"map_only: expected a type, a tuple of types or a predicate, got {type_or_types_or_pred!r}")

    def wrapper(func):
        @functools.wraps(func)
        def wrapped(x):
            return func(x) if pred(x) else x
        return wrapped
    return wrapper


def tree_map_only(type_or_types_or_pred, func, tree, is_leaf=None) -> PyTree:
    return tree_map(map_only(type_or_types_or_pred)(func), tree, is_leaf=is_leaf)


def tree_map_only_(type_or_types_or_pred, func, tree, is_leaf=None) -> PyTree:
    return tree_map_(map_only(type_or_types_or_pred)(func), tree, is_leaf=is_leaf)


def tree_all(pred, tree, is_leaf=None) -> bool:
    return all(map(pred, tree_iter(tree, is_leaf)))


def tree_any(pred, tree, is_leaf=None) -> bool:
    return any(map(pred, tree_iter(tree, is_leaf)))


def tree_all_only(type_or_types, pred, tree, is_leaf=None) -> bool:
    return all(pred(x) for x in tree_iter(tree, is_leaf) if isinstance(x, type_or_types))


def tree_any_only(type_or_types, pred, tree, is_leaf=None) -> bool:
    return any(pred(x) for x in tree_iter(tree, is_leaf) if isinstance(x, type_or_types))


def arg_tree_leaves(*args, **kwargs) -> list:
    """The leaves of the arguments of a call, positional then keyword."""
    leaves: list = []
    for a in args:
        leaves.extend(tree_iter(a))
    for v in kwargs.values():
        leaves.extend(tree_iter(v))
    return leaves


# ------------------------------------------------------------------ key paths
def _key_children(node, nt):
    nd = SUPPORTED_NODES[nt]
    if nd.flatten_with_keys_fn is None:
        raise ValueError(f"Did not find a flatten_with_keys_fn for type: {nt}. Please pass a flatten_with_keys_fn "
                         f"argument to register_pytree_node.")
    return nd.flatten_with_keys_fn(node)[0]


def tree_flatten_with_path(tree, is_leaf=None) -> tuple:
    """([(key path, leaf)], TreeSpec)."""
    _, spec = tree_flatten(tree, is_leaf)
    return tree_leaves_with_path(tree, is_leaf), spec


def tree_leaves_with_path(tree, is_leaf=None) -> list:
    out: list = []

    def walk(node, path):
        if tree_is_leaf(node, is_leaf):
            out.append((path, node))
            return
        for key, child in _key_children(node, _node_type(node)):
            walk(child, path + (key,))

    walk(tree, ())
    return out


def tree_map_with_path(func, tree, *rests, is_leaf=None) -> PyTree:
    """``func(key path, leaf, *other leaves)`` at each leaf."""
    pairs, spec = tree_flatten_with_path(tree, is_leaf)
    others = [spec.flatten_up_to(r) for r in rests]
    return spec.unflatten(func(kp, leaf, *rest) for (kp, leaf), *rest in zip(pairs, *others))


# ------------------------------------------------------------------ serialising a TreeSpec
def _spec_json(spec):
    if spec.type is None:
        return {"type": None, "context": None, "children_spec": []}
    name = SUPPORTED_SERIALIZED_TYPES.get(spec.type)
    if spec.type in (namedtuple, structseq):
        ctx = {"class": f"{spec._context.__module__}.{spec._context.__qualname__}",
               "fields": list(getattr(spec._context, "_fields", ()))}
    elif spec.type is defaultdict:
        f = spec._context[0]
        ctx = {"default_factory": None if f is None else f"{f.__module__}.{f.__qualname__}", "keys": spec._context[1]}
    else:
        ctx = spec._context
    try:
        json.dumps(ctx)
    except TypeError:
        raise TypeError(f"treespec_dumps: the context of a {spec.type!r} node ({ctx!r}) is not JSON") from None
    return {"type": name, "context": ctx, "children_spec": [_spec_json(c) for c in spec._children]}


def treespec_dumps(treespec: TreeSpec, protocol: int | None = None) -> str:
    """The spec as JSON text (``treespec_loads`` reads it back)."""
    return json.dumps([1, _spec_json(treespec)])


def _resolve(dotted: str):
    import importlib
    module, _, rest = dotted.partition(".")
    obj = importlib.import_module(module)
    for i, part in enumerate(rest.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join([module] + rest.split(".")[:i + 1]))
    return obj


def _spec_from_json(d):
    if d["type"] is None:
        return _LEAF
    if d["type"] not in _SERIALIZED_NAMES:
        raise ValueError(f"treespec_loads: unknown node type {d['type']!r}")
    t = _SERIALIZED_NAMES[d["type"]]
    ctx = d["context"]
    if t in (namedtuple, structseq):
        ctx = _resolve(ctx["class"])
    elif t is defaultdict:
        ctx = [None if ctx["default_factory"] is None else _resolve(ctx["default_factory"]), ctx["keys"]]
    return TreeSpec(t, ctx, [_spec_from_json(c) for c in d["children_spec"]])


def treespec_loads(serialized: str) -> TreeSpec:
    protocol, d = json.loads(serialized)
    if protocol != 1:
        raise ValueError(f"treespec_loads: unknown protocol {protocol}")
    return _spec_from_json(d)


def treespec_pprint(treespec: TreeSpec) -> str:
    """The structure with ``*`` at each leaf: ``([*, (*, *)], {'a': *})``."""
    class _Star:
        def __repr__(self):
            return "*"
    return repr(treespec.unflatten([_Star()] * treespec.num_leaves))
