"""tapegrad.utils._pytree against torch.utils._pytree (where PyTorch is installed) and on its own:
leaves, specs (and their printed form), unflatten, map over several trees, key paths, registered
node types, dataclasses, errors, JSON round trips."""
import collections
import dataclasses
import pickle
from collections import OrderedDict, defaultdict, deque, namedtuple

import pytest

import tapegrad as tg
from tapegrad.utils import _pytree as pt

Point = namedtuple("Point", ["x", "y"])

TREES = [
    1, None, [], (), {}, [1, 2, 3], (1, [2, (3, None)]), {"b": 1, "a": [2, 3]},
    OrderedDict(z=1, y=(2, 3)), defaultdict(list, {"k": [1, 2]}), deque([1, (2,)], maxlen=4),
    Point(1, [2, 3]), [Point(x={"a": 1}, y=()), "str", b"bytes", 2.5], {"nested": {"deep": [[[]], [1]]}},
]


@pytest.mark.parametrize("tree", TREES, ids=repr)
def test_flatten_unflatten_and_map(tree):
    leaves, spec = pt.tree_flatten(tree)
    assert pt.tree_unflatten(leaves, spec) == tree and type(pt.tree_unflatten(leaves, spec)) is type(tree)
    assert spec.num_leaves == len(leaves) == len(pt.tree_leaves(tree)) and pt.tree_structure(tree) == spec
    assert hash(spec) == hash(pt.tree_structure(tree))
    doubled = pt.tree_map(lambda v: ("x", v), tree)
    assert pt.tree_leaves(doubled, is_leaf=lambda v: isinstance(v, tuple) and v[:1] == ("x",)) == \
        [("x", v) for v in leaves]
    assert pt.tree_structure(pt.tree_map(lambda a, b: b, tree, tree)) == spec
    assert pt.treespec_loads(pt.treespec_dumps(spec)) == spec
    assert pickle.loads(pickle.dumps(spec)) == spec


@pytest.mark.parametrize("tree", TREES, ids=repr)
def test_matches_torch(tree):
    torch = pytest.importorskip("torch")
    tp = torch.utils._pytree
    leaves, spec = pt.tree_flatten(tree)
    tleaves, tspec = tp.tree_flatten(tree)
    assert leaves == tleaves
    if not isinstance(tree, Point) and "Point" not in repr(tree):  # PyTorch prints a namedtuple's node by class
        assert repr(spec) == repr(tspec)
    assert [(pt.keystr(k), v) for k, v in pt.tree_leaves_with_path(tree)] == \
        [(tp.keystr(k), v) for k, v in tp.tree_leaves_with_path(tree)]
    assert pt.treespec_pprint(spec) == tp.treespec_pprint(tspec)
    for k, v in pt.tree_leaves_with_path(tree):
        assert pt.key_get(tree, k) is v


def test_tensors_and_return_types_are_leaves_and_nodes():
    x = tg.ones(2, 3)
    out = {"loss": x.sum(), "max": x.max(0), "list": [x, None]}
    leaves, spec = pt.tree_flatten(out)
    assert len(leaves) == 5 and leaves[0] is out["loss"] and leaves[-1] is None
    back = pt.tree_unflatten(leaves, spec)
    assert type(back["max"]) is type(out["max"]) and back["max"].indices is out["max"].indices
    halves = pt.tree_map_only(tg.Tensor, lambda t: t / 2, out)
    assert halves["list"][1] is None and halves["list"][0].tolist() == [[0.5] * 3] * 2
    assert pt.tree_all_only(tg.Tensor, lambda t: t.dim() <= 2, out)
    assert not pt.tree_all_only(tg.Tensor, lambda t: t.dtype == tg.float32, out)  # the indices
    assert pt.tree_any(lambda v: v is None, out) and not pt.tree_all(lambda v: v is None, out)
    seen = []
    assert pt.tree_map_(seen.append, [x, (x,)]) == [x, (x,)] and len(seen) == 2
    assert pt.arg_tree_leaves(1, [2, 3], k={"a": 4}) == [1, 2, 3, 4]


def test_map_over_several_trees_and_prefixes():
    assert pt.tree_map(lambda a, b: a + b, [1, (2, 3)], [10, (20, 30)]) == [11, (22, 33)]
    # a leaf of the first tree takes the whole subtree of the others there
    assert pt.tree_map(lambda a, b: (a, b), [1, 2], [[5, 6], {"k": 7}]) == [(1, [5, 6]), (2, {"k": 7})]
    assert pt.tree_map(lambda a, b: a + b, {"a": 1, "b": 2}, OrderedDict(b=20, a=10)) == {"a": 11, "b": 22}
    with pytest.raises(ValueError, match="Node type mismatch"):
        pt.tree_map(lambda a, b: a, [1, 2], (1, 2))
    with pytest.raises(ValueError, match="arity mismatch"):
        pt.tree_map(lambda a, b: a, [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="missing key"):
        pt.tree_map(lambda a, b: a, {"a": 1, "b": 2}, {"a": 1})
    with pytest.raises(ValueError, match="has length 1 but the spec refers to a pytree that holds 2"):
        pt.tree_unflatten([1], pt.tree_structure([1, 2]))
    with pytest.raises(TypeError, match="TreeSpec"):
        pt.tree_unflatten([1], [1])
    assert pt.tree_map_with_path(lambda kp, v: pt.keystr(kp), {"a": [1, Point(2, 3)]}) == \
        {"a": ["['a'][0]", Point("['a'][1].x", "['a'][1].y")]}


class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def __eq__(self, other):
        return isinstance(other, Pair) and (self.a, self.b) == (other.a, other.b)


@dataclasses.dataclass
class Batch:
    inputs: object
    labels: object
    note: str = "n"


def test_registered_types_and_dataclasses():
    pt.register_pytree_node(Pair, lambda p: ([p.a, p.b], None), lambda v, c: Pair(*v),
                            flatten_with_keys_fn=lambda p: ([(pt.GetAttrKey("a"), p.a), (pt.GetAttrKey("b"), p.b)],
                                                            None))
    try:
        tree = [Pair(1, (2, 3))]
        assert pt.tree_leaves(tree) == [1, 2, 3]
        assert pt.tree_map(lambda v: v * 2, tree) == [Pair(2, (4, 6))]
        assert [pt.keystr(k) for k, _ in pt.tree_leaves_with_path(tree)] == ["[0].a", "[0].b[0]", "[0].b[1]"]
        with pytest.raises(ValueError, match="already registered"):
            pt.register_pytree_node(Pair, None, None)
        pt.register_dataclass(Batch)
        b = Batch(tg.ones(2), [1, 2])
        leaves, spec = pt.tree_flatten(b)
        assert len(leaves) == 4 and pt.tree_unflatten(leaves, spec).labels == [1, 2]
    finally:
        pt._deregister_pytree_node(Pair)
        pt._deregister_pytree_node(Batch)
    assert pt.tree_leaves(Pair(1, 2))[0].a == 1  # a leaf again


def test_predicates():
    stat = __import__("os").stat(".")
    assert pt.is_namedtuple(Point) and pt.is_namedtuple_instance(Point(1, 2)) and not pt.is_namedtuple((1, 2))
    assert pt.is_structseq_instance(stat) and not pt.is_structseq_instance(Point(1, 2))
    leaves, spec = pt.tree_flatten(stat)
    assert pt.tree_unflatten(leaves, spec) == stat and type(pt.tree_unflatten(leaves, spec)) is type(stat)
    assert pt.tree_is_leaf(None) and pt.tree_is_leaf(tg.ones(1)) and not pt.tree_is_leaf([1])
    assert pt.tree_is_leaf((1, 2), is_leaf=lambda v: isinstance(v, tuple))
    assert isinstance(pt.tree_structure(1), pt.LeafSpec) and repr(pt.tree_structure(1)) == "*"
    assert collections.OrderedDict in pt.SUPPORTED_NODES
