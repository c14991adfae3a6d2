// Tape objects and the cycle collector.
//
// The tape makes no reference cycles by itself (a node never refers to its output), yet CPython
// tracks every tensor and node it records: a chain of 10k small ops spent half its time in
// collections walking a graph that can hold no garbage cycle. So tensors and nodes of types that
// add no fields (tapegrad.Tensor, nn.Parameter, the MulBackward0 node types) are kept out of the
// collector while no cycle can pass through them, and put back as soon as one could.
//
// Kinds of object, as seen from a tape object's field:
//   atomic     can be on no cycle: not a GC type, a tuple of atomics, a weakref without callback,
//              a version box (the engine refuses a box holding anything but an int)
//   untracked  a tape object out of the collector (in the list below, with a stamp)
//   tame       a tracked tape object of the current epoch: it refers only to tame and atomic
//              objects, and only the tape's setters and engine (which call gc_store) change it
//   wild       everything else (dicts of hooks, closures, custom Function nodes, subclasses with
//              a __dict__, and tape objects of an older epoch)
// Invariants: (1) an untracked object refers only to atomic, tame and untracked objects of a
// lower stamp; (2) a tame object refers only to atomic and tame objects. By (2) no path from a
// tracked object leads into an untracked one through tape objects, and by (1) untracked objects
// form no cycle among themselves; as wild objects are out of their reach, no cycle passes through
// an untracked object: the collector misses nothing.
//
// Keeping them: a new object is untracked when its fields allow (gc_settle). When x gains a
// reference to r (gc_store): atomic r changes nothing; a lower-stamped untracked or a tame r
// keeps (1); otherwise x and everything untracked it and r reach become tame (tracked), which
// costs each object once. A wild r makes x wild; when something untracked or tame may refer to
// x (`referenced`: we cannot find who), every untracked object is tracked and the epoch moves
// on, so all that was tame is wild ("flush": a hook on a tensor already in a graph) until a new
// node refers to it and finds it tame again (retame).
// All of it runs with the GIL held.
#include "tape.h"

#include <algorithm>
#include <vector>

namespace tapegrad::tape {
namespace {

GcState* g_head = nullptr;  // the list of untracked tape objects
unsigned long long g_stamp = 0;
unsigned long long g_epoch = 1;
unsigned long long g_flushes = 0;
Py_ssize_t g_listed = 0;

enum Kind { kAtomic, kUntracked, kTame, kWild };

// The node type last found to be a Node subclass (a strong reference, so its address is not
// reused): the op table's node types are few, and a subclass check walks the MRO.
PyTypeObject* g_node_type = nullptr;

// The state of a tape object whose type adds no fields (so the tape sees all it refers to), or null.
// Only GC types get here (see kind).
GcState* state_of(PyObject* o) {
  PyTypeObject* t = Py_TYPE(o);
  if (t->tp_dictoffset != 0) return nullptr;
  if (t->tp_basicsize == static_cast<Py_ssize_t>(sizeof(TensorObject)))
    return t == tensor_class || PyType_IsSubtype(t, &TensorBaseType) ? &T(o)->gc : nullptr;
  if (t->tp_basicsize == static_cast<Py_ssize_t>(sizeof(NodeObject))) {
    if (t == g_node_type) return &N(o)->gc;
    if (!PyType_IsSubtype(t, &NodeType)) return nullptr;
    Py_INCREF(t);
    Py_XSETREF(g_node_type, t);
    return &N(o)->gc;
  }
  return nullptr;
}

void link(PyObject* o, GcState* s) {
  s->prev = nullptr;
  s->next = g_head;
  s->owner = o;
  if (g_head != nullptr) g_head->prev = s;
  g_head = s;
  s->listed = true;
  ++g_listed;
}

void unlink(PyObject*, GcState* s) {
  if (!s->listed) return;
  if (s->prev != nullptr) s->prev->next = s->next;
  else g_head = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
  s->listed = false;
  --g_listed;
}

void track(PyObject* o, GcState* s) {
  unlink(o, s);
  if (!PyObject_GC_IsTracked(o)) PyObject_GC_Track(o);
}

bool not_gc(PyObject* o) { return !PyType_IS_GC(Py_TYPE(o)); }  // None, numbers, str, ndarray, dtype

bool atomic(PyObject* o, int depth = 0) {
  if (not_gc(o) || !PyObject_IS_GC(o)) return true;
  if (PyTuple_CheckExact(o)) {
    // CPython and shape_dtype untrack tuples of atomics; a node's own untracked tuples are
    // never a value (each_ref looks inside them, the getters hand out copies)
    if (!PyObject_GC_IsTracked(o)) return true;
    if (depth > 2) return false;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); ++i)
      if (!atomic(PyTuple_GET_ITEM(o, i), depth + 1)) return false;
    return true;
  }
  if (PyWeakref_CheckRefExact(o)) return reinterpret_cast<PyWeakReference*>(o)->wr_callback == nullptr;
  // a version box: the engine refuses one that holds anything but an int
  return PyList_CheckExact(o) && !PyObject_GC_IsTracked(o) && PyList_GET_SIZE(o) == 1 &&
         PyLong_CheckExact(PyList_GET_ITEM(o, 0));
}


// Calls f on everything a tape object refers to; a node's own tuples (node_fill made them, only
// it holds them, node_traverse visits their items) and its attrs dict (the getter hands out a
// copy) count through their items. Stops early when f returns false.
template <typename F>
bool each_ref(PyObject* o, F f) {
  auto field = [&](PyObject* v) {
    if (v == nullptr) return true;
    if (PyTuple_CheckExact(v) && !PyObject_GC_IsTracked(v)) {
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); ++i)
        if (!f(PyTuple_GET_ITEM(v, i))) return false;
      return true;
    }
    return f(v);
  };
  if (is_tensor(o)) {
    TensorObject* t = T(o);
    return field(t->data) && field(t->grad) && field(t->grad_fn) && field(t->version) && field(t->base) &&
           field(t->hooks) && field(t->post_hooks);
  }
  NodeObject* n = N(o);
  if (n->attrs != nullptr && PyDict_CheckExact(n->attrs)) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(n->attrs, &pos, &key, &value))
      if (!f(value)) return false;
  } else if (!field(n->attrs)) {
    return false;
  }
  // n->op: an entry of the op table, alive as long as tapegrad is (only apply settles nodes)
  return field(n->saved) && field(n->versions) && field(n->out_data) && field(n->out_box) && field(n->out_ver) &&
         field(n->aux) && field(n->edges) && field(n->meta) && field(n->out_meta) && field(n->where) &&
         field(n->pre_hooks) && field(n->post_hooks) && field(n->retained) && field(n->unpack);
}

// o and every untracked object it reaches become tame (tracked). Iterative: graphs are long.
void make_tame(PyObject* root) {
  std::vector<PyObject*> stack{root};
  while (!stack.empty()) {
    PyObject* o = stack.back();
    stack.pop_back();
    GcState* s = state_of(o);
    if (s == nullptr || !s->listed) continue;  // tracked already: tame (or wild) with its reach
    track(o, s);
    s->epoch = g_epoch;
    each_ref(o, [&](PyObject* r) {
      if (state_of(r) != nullptr) stack.push_back(r);
      return true;
    });
  }
}

bool retame(PyObject* root);

Kind kind(PyObject* o) {
  if (not_gc(o)) return kAtomic;
  GcState* s = state_of(o);
  if (s == nullptr) return atomic(o) ? kAtomic : kWild;
  if (s->listed) return kUntracked;
  if (s->epoch == g_epoch) return kTame;
  return s->epoch != 0 && retame(o) ? kTame : kWild;
}

// A tape object of an older epoch (a parameter or a cached constant after a flush) is tame again
// when all it reaches, through at most a few tape objects, is: checked when a new node would
// refer to it, so one hook does not leave every later graph in the collector. Whatever stands
// in the way (a hook, a subclass) makes it wild for good (epoch 0), so the check is not repeated.
bool retame(PyObject* root) {
  constexpr size_t kMaxObjects = 64;
  std::vector<PyObject*> seen{root}, stack{root};
  bool ok = true;
  while (ok && !stack.empty()) {
    PyObject* o = stack.back();
    stack.pop_back();
    ok = each_ref(o, [&](PyObject* r) {
      if (atomic(r)) return true;
      GcState* rs = state_of(r);
      if (rs == nullptr || (!rs->listed && rs->epoch == 0)) return false;
      if (rs->listed || rs->epoch == g_epoch) return true;  // untracked ones are made tame below
      if (std::find(seen.begin(), seen.end(), r) != seen.end()) return true;
      if (seen.size() >= kMaxObjects) return false;
      seen.push_back(r);
      stack.push_back(r);
      return true;
    });
  }
  if (!ok) {
    state_of(root)->epoch = 0;
    return false;
  }
  for (PyObject* o : seen) {
    state_of(o)->epoch = g_epoch;
    each_ref(o, [](PyObject* r) {
      GcState* rs = state_of(r);
      if (rs != nullptr && rs->listed) make_tame(r);
      return true;
    });
  }
  return true;
}

void flush() {
  while (g_head != nullptr) track(g_head->owner, g_head);
  ++g_epoch;
  ++g_flushes;
}

void make_wild(PyObject* x, GcState* s) {
  if (s->referenced && (s->listed || s->epoch == g_epoch)) {
    flush();
    return;
  }
  track(x, s);
  s->epoch = 0;
}

}  // namespace

void gc_settle(PyObject* o) {
  GcState* s = state_of(o);
  if (s == nullptr) return;
  GcState* refs[24];  // the tape objects among its fields, marked referenced once it is settled
  int n_refs = 0;
  bool wild = !each_ref(o, [&](PyObject* r) {
    Kind k = kind(r);
    if (k == kWild) return false;
    if (k != kAtomic) {
      GcState* rs = state_of(r);
      if (n_refs < 24) refs[n_refs++] = rs;
      else rs->referenced = true;
    }
    return true;
  });
  if (wild) {
    track(o, s);
    s->epoch = 0;
    return;
  }
  for (int i = 0; i < n_refs; ++i) refs[i]->referenced = true;
  if (PyObject_GC_IsTracked(o)) PyObject_GC_UnTrack(o);
  if (!s->listed) link(o, s);
  s->stamp = ++g_stamp;
  s->epoch = g_epoch;
}

void gc_store(PyObject* x, PyObject* r) {
  GcState* s = state_of(x);
  if (s == nullptr || (!s->listed && s->epoch != g_epoch)) return;  // x is wild: tracked, anything goes
  Kind k = kind(r);
  if (k == kAtomic) return;
  if (k == kWild) {
    make_wild(x, s);
    return;
  }
  GcState* rs = state_of(r);
  rs->referenced = true;
  if (s->listed) {
    if (k == kTame || rs->stamp < s->stamp) return;  // (1) holds
    make_tame(x);
  }
  make_tame(r);
}

void gc_forget(PyObject* o) {  // o's dealloc: o is a TensorBase or a Node
  GcState* s = is_tensor(o) ? &T(o)->gc : &N(o)->gc;
  unlink(o, s);
}

// _C._gc_stats() -> (untracked tape objects, flushes): for tests and benchmarks
PyObject* gc_stats(PyObject*, PyObject*) { return Py_BuildValue("(nK)", g_listed, g_flushes); }

}  // namespace tapegrad::tape
