// The tape's two hot paths in C++: recording an op (`apply`) and the backward loop
// (`run_backward`).
//
// These are line-for-line translations of tapegrad/ops/registry.py:apply and
// tapegrad/autograd/engine.py:run_backward, which stay the reference implementation
// (TAPEGRAD_PURE_PYTHON=1 runs them, and CI runs the autograd tests both ways). Read those
// first: this file adds no behaviour, it only removes the interpreter's per-op cost
// (~3 us an op recorded, ~2.5 us a node run), which dominates small graphs.
//
// Everything that is rare or produces an error message calls back into the Python
// helpers registered by `tape_register` (hooks, leaf accumulation, version errors), so the
// wording and semantics live in one place.
//
// Tensor, Node and Op are ordinary Python classes with __slots__; their fields are read
// and written here at the slot offsets CPython reports for them (no attribute lookup).
#include "tape.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <structmember.h>

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tapegrad::tape {
namespace {

// ----------------------------------------------------------------- owned references
class Ref {  // an owned reference; nullptr when empty
 public:
  Ref() = default;
  explicit Ref(PyObject* p) : p_(p) {}  // steals
  static Ref borrow(PyObject* p) { Py_XINCREF(p); return Ref(p); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  Ref(Ref&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  Ref& operator=(Ref&& o) noexcept { if (this != &o) { Py_XDECREF(p_); p_ = o.p_; o.p_ = nullptr; } return *this; }
  ~Ref() { Py_XDECREF(p_); }
  PyObject* get() const { return p_; }
  PyObject* release() { PyObject* p = p_; p_ = nullptr; return p; }
  void reset(PyObject* p = nullptr) { Py_XDECREF(p_); p_ = p; }  // steals p
  explicit operator bool() const { return p_ != nullptr; }
 private:
  PyObject* p_ = nullptr;
};

// ----------------------------------------------------------------- registered objects
struct Registry {
  bool apply_ready = false, engine_ready = false;
  PyTypeObject* tensor = nullptr;  // tapegrad.Tensor (exact type of results)
  PyTypeObject* node = nullptr;    // _tape.node.Node
  PyTypeObject* op = nullptr;      // _tape.registry.Op
  PyObject* ndarray = nullptr;
  PyObject* asarray = nullptr;
  PyObject* grad_state = nullptr;  // grad_mode.state
  PyObject* seq = nullptr;         // node._seq (itertools.count): one numbering for both paths
  PyObject* pkg_dir = nullptr;     // tapegrad's directory: frames inside it are not the user's
  PyObject* inside = nullptr;      // registry._INSIDE: co_filename -> whether it is tapegrad's
  PyObject* forward_failed = nullptr;
  // engine helpers
  PyObject* arrive = nullptr;
  PyObject* check_versions = nullptr;
  PyObject* saved_output_changed = nullptr;
  PyObject* new_meta = nullptr;
  PyObject* meta_cache = nullptr;
  PyObject* to_leaf = nullptr;
  PyObject* run_hooks = nullptr;
  PyObject* freed_msg = nullptr;
  PyObject* nan_gradient = nullptr;
};
Registry R;

struct TensorSlots { Py_ssize_t data, requires_grad, grad, grad_fn, version, base, retains_grad, hooks; } T;
struct NodeSlots {
  Py_ssize_t op, attrs, saved, versions, out_data, out_version, aux, edges, meta, out_meta, where, seq, released,
      pre_hooks, retained;
} N;
struct OpSlots { Py_ssize_t name, forward, vjps, saves, saves_output, view, aux, differentiable, all_differentiable,
                 partial_saves, node_type; } O;
Py_ssize_t state_enabled = -1, state_check_nan = -1;

PyObject* s_shape; PyObject* s_dtype; PyObject* s_sum_to_size; PyObject* s_to; PyObject* s_aux;

// A field at a slot offset: borrowed, never null once the object is initialised.
inline PyObject*& slot(PyObject* obj, Py_ssize_t off) { return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + off); }

inline void set(PyObject* obj, Py_ssize_t off, PyObject* value) {  // new reference to value
  Py_INCREF(value);
  Py_XSETREF(slot(obj, off), value);
}

inline void set_steal(PyObject* obj, Py_ssize_t off, PyObject* value) { Py_XSETREF(slot(obj, off), value); }

inline int truth(PyObject* v) { return v == Py_True ? 1 : v == Py_False || v == Py_None ? 0 : PyObject_IsTrue(v); }

bool slot_offset(PyObject* cls, const char* name, Py_ssize_t* off) {
  PyObject* d = PyObject_GetAttrString(cls, name);  // the class attribute: a member descriptor
  if (d == nullptr) return false;
  bool ok = Py_IS_TYPE(d, &PyMemberDescr_Type);
  if (ok) {
    PyMemberDef* m = reinterpret_cast<PyMemberDescrObject*>(d)->d_member;
#ifdef Py_T_OBJECT_EX  // 3.12+ names it so; structmember.h's T_OBJECT_EX is the same value
    ok = m->type == Py_T_OBJECT_EX;
#else
    ok = m->type == T_OBJECT_EX;
#endif
    *off = m->offset;
  }
  Py_DECREF(d);
  if (!ok) PyErr_Format(PyExc_TypeError, "tape_register: %s.%s is not a __slots__ field", reinterpret_cast<PyTypeObject*>(cls)->tp_name, name);
  return ok;
}

// The fields this file reads, checked before it reads them: a half-built object (a subclass
// that skipped __init__, a field deleted by hand) raises instead of crashing.
bool all_set(PyObject* obj, const Py_ssize_t* offs, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (slot(obj, offs[i]) == nullptr) {
      PyErr_Format(PyExc_AttributeError, "tapegrad: this %s is missing one of its fields (was __init__ skipped?)",
                   Py_TYPE(obj)->tp_name);
      return false;
    }
  }
  return true;
}

bool checked_tensor(PyObject* x, const char* what) {
  if (!PyObject_TypeCheck(x, R.tensor)) {
    PyErr_Format(PyExc_TypeError, "%s must be a Tensor, got %s", what, Py_TYPE(x)->tp_name);
    return false;
  }
  const Py_ssize_t offs[] = {T.data, T.requires_grad, T.grad, T.grad_fn, T.version, T.base, T.retains_grad, T.hooks};
  if (!all_set(x, offs, sizeof offs / sizeof *offs)) return false;
  PyObject* box = slot(x, T.version);
  if (!PyList_Check(box) || PyList_GET_SIZE(box) < 1) {
    PyErr_Format(PyExc_TypeError, "%s: its version counter is not a one-element list", what);
    return false;
  }
  return true;
}

bool checked_op(PyObject* op) {
  if (!PyObject_TypeCheck(op, R.op)) {
    PyErr_Format(PyExc_TypeError, "apply: expected an op from the op table, got %s", Py_TYPE(op)->tp_name);
    return false;
  }
  const Py_ssize_t offs[] = {O.name, O.forward, O.vjps, O.saves, O.saves_output, O.view, O.aux, O.differentiable,
                             O.all_differentiable, O.partial_saves, O.node_type};
  if (!all_set(op, offs, sizeof offs / sizeof *offs)) return false;
  PyObject* nt = slot(op, O.node_type);
  if (!PyType_Check(nt) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(nt), R.node)) {
    PyErr_SetString(PyExc_TypeError, "apply: an op's node_type must be a Node subclass");
    return false;
  }
  if (!PyAnySet_Check(slot(op, O.saves))) {
    PyErr_SetString(PyExc_TypeError, "apply: an op's saves must be a frozenset");
    return false;
  }
  return true;
}

bool checked_node(PyObject* node) {
  const Py_ssize_t offs[] = {N.op, N.attrs, N.saved, N.versions, N.out_data, N.out_version, N.aux, N.edges, N.meta,
                             N.out_meta, N.where, N.seq, N.released, N.pre_hooks, N.retained};
  if (!all_set(node, offs, sizeof offs / sizeof *offs) || !checked_op(slot(node, N.op))) return false;
  PyObject* edges = slot(node, N.edges);
  PyObject* meta = slot(node, N.meta);
  PyObject* saved = slot(node, N.saved);
  PyObject* versions = slot(node, N.versions);
  PyObject* ov = slot(node, N.out_version);
  bool ok = PyList_Check(edges) && PyList_Check(meta) && PyDict_Check(slot(node, N.attrs)) &&
            PyList_GET_SIZE(meta) == PyList_GET_SIZE(edges);
  for (Py_ssize_t i = 0; ok && i < PyList_GET_SIZE(meta); ++i) {
    PyObject* m = PyList_GET_ITEM(meta, i);
    ok = PyTuple_Check(m) && PyTuple_GET_SIZE(m) == 2;
  }
  if (ok && slot(node, N.released) != Py_True) {  // a released node is refused later, with its own message
    ok = PyTuple_Check(saved) && PyTuple_GET_SIZE(saved) == PyList_GET_SIZE(edges) &&
         (PySet_GET_SIZE(slot(slot(node, N.op), O.saves)) == 0 ||
          (PyList_Check(versions) && PyList_GET_SIZE(versions) == PyList_GET_SIZE(edges))) &&
         (ov == Py_None || (PyTuple_Check(ov) && PyTuple_GET_SIZE(ov) == 2 && PyList_Check(PyTuple_GET_ITEM(ov, 0)) &&
                            PyList_GET_SIZE(PyTuple_GET_ITEM(ov, 0)) >= 1));
  }
  if (!ok) PyErr_Format(PyExc_TypeError, "tapegrad engine: a %S node is malformed", slot(slot(node, N.op), O.name));
  return ok;
}

// ----------------------------------------------------------------- apply
// (filename, line) of the first frame outside tapegrad: where the user created a node.
PyObject* user_frame() {
  PyFrameObject* f = PyEval_GetFrame();  // borrowed: the Python function that called apply
  Py_XINCREF(f);
  while (f != nullptr) {
    PyCodeObject* code = PyFrame_GetCode(f);
    PyObject* name = code->co_filename;
    PyObject* own = PyDict_GetItemWithError(R.inside, name);
    int inside;
    if (own != nullptr) {
      inside = own == Py_True;
    } else {
      if (PyErr_Occurred()) { Py_DECREF(code); Py_DECREF(f); return nullptr; }
      inside = PyUnicode_Tailmatch(name, R.pkg_dir, 0, PY_SSIZE_T_MAX, -1) > 0;
      if (PyDict_SetItem(R.inside, name, inside ? Py_True : Py_False) < 0) { Py_DECREF(code); Py_DECREF(f); return nullptr; }
    }
    if (!inside) {
      PyObject* res = Py_BuildValue("(Oi)", name, PyFrame_GetLineNumber(f));
      Py_DECREF(code);
      Py_DECREF(f);
      return res;
    }
    Py_DECREF(code);
    PyFrameObject* back = PyFrame_GetBack(f);
    Py_DECREF(f);
    f = back;
  }
  return Py_BuildValue("(si)", "?", 0);
}

// Node.__init__ for a node recorded by apply (of the op's Node subclass, e.g. MulBackward0).
PyObject* make_node(PyObject* op, PyObject* const* inputs, Py_ssize_t n, PyObject* attrs, PyObject* out,
                    PyObject* out_version, PyObject* aux) {
  PyTypeObject* type = reinterpret_cast<PyTypeObject*>(slot(op, O.node_type));  // checked by apply
  Ref node(type->tp_alloc(type, 0));
  if (!node) return nullptr;
  Ref meta(PyList_New(n)), versions(PyList_New(n)), edges(PyList_New(n));
  if (!meta || !versions || !edges) return nullptr;
  PyObject* vjps = slot(op, O.vjps);
  bool all_diff = slot(op, O.all_differentiable) == Py_True;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* t = inputs[i];
    PyObject* d = slot(t, T.data);
    Ref shape(PyObject_GetAttr(d, s_shape));
    if (!shape) return nullptr;
    Ref dtype(PyObject_GetAttr(d, s_dtype));
    if (!dtype) return nullptr;
    PyObject* m = PyTuple_Pack(2, shape.get(), dtype.get());
    if (m == nullptr) return nullptr;
    PyList_SET_ITEM(meta.get(), i, m);
    PyObject* v = PyList_GET_ITEM(slot(t, T.version), 0);  // checked by apply
    Py_INCREF(v);
    PyList_SET_ITEM(versions.get(), i, v);
    PyObject* e = Py_None;
    if (truth(slot(t, T.requires_grad))) {
      PyObject* fn = slot(t, T.grad_fn);
      e = (fn != nullptr && fn != Py_None) ? fn : t;
      if (!all_diff) {
        Ref vjp(PySequence_GetItem(vjps, i));
        if (!vjp) return nullptr;
        if (vjp.get() == Py_None) e = Py_None;
      }
    }
    Py_INCREF(e);
    PyList_SET_ITEM(edges.get(), i, e);
  }
  // saved: every input, none, or those the op names
  PyObject* saves = slot(op, O.saves);
  Py_ssize_t n_saves = PySet_GET_SIZE(saves);
  Ref saved(PyTuple_New(n));
  if (!saved) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* s = Py_None;
    if (n_saves == n) {
      s = inputs[i];
    } else if (n_saves) {
      Ref key(PyLong_FromSsize_t(i));
      int has = PySet_Contains(saves, key.get());
      if (has < 0) return nullptr;
      if (has) s = inputs[i];
    }
    Py_INCREF(s);
    PyTuple_SET_ITEM(saved.get(), i, s);
  }
  PyObject* nd = node.get();
  set(nd, N.op, op);
  set(nd, N.attrs, attrs);
  set_steal(nd, N.saved, saved.release());
  set_steal(nd, N.versions, versions.release());
  if (slot(op, O.saves_output) == Py_True) {
    set(nd, N.out_data, out);
    PyObject* ov = PyTuple_Pack(2, out_version, PyList_GET_ITEM(out_version, 0));
    if (ov == nullptr) return nullptr;
    set_steal(nd, N.out_version, ov);
  } else {
    set(nd, N.out_data, Py_None);
    set(nd, N.out_version, Py_None);
  }
  set(nd, N.aux, aux);
  set_steal(nd, N.edges, edges.release());
  set_steal(nd, N.meta, meta.release());
  {
    Ref shape(PyObject_GetAttr(out, s_shape));
    if (!shape) return nullptr;
    Ref dtype(PyObject_GetAttr(out, s_dtype));
    if (!dtype) return nullptr;
    PyObject* om = PyTuple_Pack(2, shape.get(), dtype.get());
    if (om == nullptr) return nullptr;
    set_steal(nd, N.out_meta, om);
  }
  PyObject* where = user_frame();
  if (where == nullptr) return nullptr;
  set_steal(nd, N.where, where);
  PyObject* seq = PyIter_Next(R.seq);
  if (seq == nullptr) return nullptr;
  set_steal(nd, N.seq, seq);
  set(nd, N.released, Py_False);
  set(nd, N.pre_hooks, Py_None);
  set(nd, N.retained, Py_None);
  return node.release();
}

// registry.apply(op, *inputs, **attrs)
PyObject* apply(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  if (!R.apply_ready) {
    PyErr_SetString(PyExc_RuntimeError, "tapegrad._C.apply: tape_register has not run");
    return nullptr;
  }
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "apply(op, *tensors, **attrs): missing op");
    return nullptr;
  }
  PyObject* op = args[0];
  if (!checked_op(op)) return nullptr;
  PyObject* const* inputs = args + 1;
  Py_ssize_t n = nargs - 1;
  Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  // forward(*[t._data for t in inputs], **attrs); slot 0 is scratch for PY_VECTORCALL_ARGUMENTS_OFFSET
  PyObject* small[9];
  std::vector<PyObject*> big;
  PyObject** stack = small;
  if (n + nkw + 1 > 9) {
    big.resize(n + nkw + 1);
    stack = big.data();
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!PyObject_TypeCheck(inputs[i], R.tensor)) {
      PyErr_Format(PyExc_TypeError, "%S: input %zd must be a Tensor, got %s", slot(op, O.name), i, Py_TYPE(inputs[i])->tp_name);
      return nullptr;
    }
    if (!checked_tensor(inputs[i], "apply: an input")) return nullptr;
    stack[1 + i] = slot(inputs[i], T.data);
  }
  for (Py_ssize_t k = 0; k < nkw; ++k) stack[1 + n + k] = args[nargs + k];
  Ref out(PyObject_Vectorcall(slot(op, O.forward), stack + 1, n | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames));
  if (!out) {
    if (PyErr_ExceptionMatches(PyExc_ValueError)) {  // numpy's words, said with the op and the shapes
#if PY_VERSION_HEX >= 0x030C0000
      Ref v(PyErr_GetRaisedException());
#else
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      PyErr_NormalizeException(&type, &value, &tb);
      Ref t(type), v(value), trace(tb);
#endif
      Ref tup(PyTuple_New(n));
      if (!tup) return nullptr;
      for (Py_ssize_t i = 0; i < n; ++i) { Py_INCREF(inputs[i]); PyTuple_SET_ITEM(tup.get(), i, inputs[i]); }
      Ref r(PyObject_CallFunctionObjArgs(R.forward_failed, op, tup.get(), v.get(), nullptr));  // raises
    }
    return nullptr;
  }
  Ref aux = Ref::borrow(Py_None);
  if (slot(op, O.aux) == Py_True) {
    if (!PyTuple_Check(out.get()) || PyTuple_GET_SIZE(out.get()) != 2) {
      PyErr_Format(PyExc_TypeError, "%S: a forward with aux must return (out, aux)", slot(op, O.name));
      return nullptr;
    }
    aux = Ref::borrow(PyTuple_GET_ITEM(out.get(), 1));
    out = Ref::borrow(PyTuple_GET_ITEM(out.get(), 0));
  }
  if (reinterpret_cast<PyObject*>(Py_TYPE(out.get())) != R.ndarray) {  // numpy returns scalars from 0-d work
    out.reset(PyObject_CallOneArg(R.asarray, out.get()));
    if (!out) return nullptr;
  }
  Ref result(R.tensor->tp_alloc(R.tensor, 0));
  if (!result) return nullptr;
  PyObject* r = result.get();
  set(r, T.data, out.get());
  set(r, T.grad, Py_None);
  set(r, T.retains_grad, Py_False);
  set(r, T.hooks, Py_None);
  if (slot(op, O.view) == Py_True && n >= 1) {
    PyObject* base = inputs[0];
    set(r, T.version, slot(base, T.version));
    PyObject* b = Py_None;
    if (truth(slot(base, T.requires_grad))) {  // only a view of a tensor that requires grad needs its base
      PyObject* bb = slot(base, T.base);
      b = (bb == nullptr || bb == Py_None) ? base : bb;
    }
    set(r, T.base, b);
  } else {
    PyObject* box = PyList_New(1);
    if (box == nullptr) return nullptr;
    PyList_SET_ITEM(box, 0, PyLong_FromLong(0));
    set_steal(r, T.version, box);
    set(r, T.base, Py_None);
  }
  int enabled = truth(slot(R.grad_state, state_enabled));
  if (enabled < 0) return nullptr;
  if (enabled && slot(op, O.differentiable) == Py_True) {
    for (Py_ssize_t i = 0; i < n; ++i) {
      int rg = truth(slot(inputs[i], T.requires_grad));
      if (rg < 0) return nullptr;
      if (!rg) continue;
      Ref attrs(PyDict_New());
      if (!attrs) return nullptr;
      for (Py_ssize_t k = 0; k < nkw; ++k)
        if (PyDict_SetItem(attrs.get(), PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) < 0) return nullptr;
      PyObject* node = make_node(op, inputs, n, attrs.get(), out.get(), slot(r, T.version), aux.get());
      if (node == nullptr) return nullptr;
      set(r, T.requires_grad, Py_True);
      set_steal(r, T.grad_fn, node);
      return result.release();
    }
  }
  set(r, T.requires_grad, Py_False);
  set(r, T.grad_fn, Py_None);
  return result.release();
}

// ----------------------------------------------------------------- backward
PyObject* wrap(PyObject* arr) {  // Tensor._wrap(arr)
  PyObject* t = R.tensor->tp_alloc(R.tensor, 0);
  if (t == nullptr) return nullptr;
  set(t, T.data, arr);
  set(t, T.requires_grad, Py_False);
  set(t, T.grad, Py_None);
  set(t, T.grad_fn, Py_None);
  set(t, T.base, Py_None);
  set(t, T.hooks, Py_None);
  PyObject* box = PyList_New(1);
  if (box == nullptr) { Py_DECREF(t); return nullptr; }
  PyList_SET_ITEM(box, 0, PyLong_FromLong(0));
  set_steal(t, T.version, box);
  set(t, T.retains_grad, Py_False);
  return t;
}

inline bool is_node(PyObject* e) { return PyObject_TypeCheck(e, R.node); }

// `a + b` of two gradients (the tapegrad op, recorded when create_graph)
PyObject* add(PyObject* a, PyObject* b) { return PyNumber_Add(a, b); }

struct Engine {
  // Node -> summed upstream gradient (owned); consumers still to report per node.
  std::unordered_map<PyObject*, PyObject*> pending;
  std::unordered_map<PyObject*, Py_ssize_t> deps;
  std::vector<PyObject*> ready;  // owned
  std::vector<PyObject*> owned;  // the nodes counted in deps (kept alive while we run)
  ~Engine() {
    for (auto& kv : pending) { Py_DECREF(kv.first); Py_DECREF(kv.second); }
    for (PyObject* p : ready) Py_DECREF(p);
    for (PyObject* p : owned) Py_DECREF(p);
  }

  bool accumulate(PyObject* node, PyObject* g) {  // steals g
    auto it = pending.find(node);
    if (it == pending.end()) {
      Py_INCREF(node);
      pending.emplace(node, g);
      return true;
    }
    PyObject* sum = add(it->second, g);
    Py_DECREF(g);
    if (sum == nullptr) return false;
    Py_SETREF(it->second, sum);
    return true;
  }

  // engine._graph: consumer counts of every node reachable from roots (iterative DFS)
  bool count(const std::vector<PyObject*>& roots) {
    std::vector<PyObject*> stack(roots.begin(), roots.end());
    // one root: no edge can reach it; several: a set, as engine._graph (autograd.grad may get many)
    std::unordered_set<PyObject*> root_set;
    if (roots.size() > 1) root_set.insert(roots.begin(), roots.end());
    auto is_root = [&](PyObject* e) { return !root_set.empty() && root_set.count(e) > 0; };
    while (!stack.empty()) {
      PyObject* node = stack.back();
      stack.pop_back();
      if (!checked_node(node)) return false;
      PyObject* edges = slot(node, N.edges);
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(edges); ++i) {
        PyObject* e = PyList_GET_ITEM(edges, i);
        if (!is_node(e)) continue;
        auto it = deps.find(e);
        if (it == deps.end()) {
          deps.emplace(e, 1);
          Py_INCREF(e);
          owned.push_back(e);
          if (!is_root(e)) stack.push_back(e);
        } else {
          ++it->second;
        }
      }
    }
    return true;
  }
};

// engine._saved_output: the node's output, refused if it was modified in place
PyObject* saved_output(PyObject* node, bool create_graph) {
  PyObject* ov = slot(node, N.out_version);
  PyObject* box = PyTuple_GET_ITEM(ov, 0);
  int same = PyObject_RichCompareBool(PyList_GET_ITEM(box, 0), PyTuple_GET_ITEM(ov, 1), Py_EQ);
  if (same < 0) return nullptr;
  if (!same) return PyObject_CallFunctionObjArgs(R.saved_output_changed, node, nullptr);  // raises
  PyObject* out = wrap(slot(node, N.out_data));
  if (out != nullptr && create_graph) {  // the output is a function of the inputs through this very node
    set(out, T.requires_grad, Py_True);
    set(out, T.grad_fn, node);
  }
  return out;
}

// run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None)
// As engine.run_backward; with inputs it returns (leaf_grads, captured) for the caller to finish.
PyObject* run_backward(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  if (!R.engine_ready) {
    PyErr_SetString(PyExc_RuntimeError, "tapegrad._C.run_backward: tape_register has not run");
    return nullptr;
  }
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs != 5 || kwnames != nullptr) {
    PyErr_SetString(PyExc_TypeError, "run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs)");
    return nullptr;
  }
  Ref outputs(PySequence_Fast(args[0], "run_backward: outputs must be a sequence"));
  if (!outputs) return nullptr;
  Ref grads(PySequence_Fast(args[1], "run_backward: grad_outputs must be a sequence"));
  if (!grads) return nullptr;
  int retain_graph = PyObject_IsTrue(args[2]);
  int create_graph = PyObject_IsTrue(args[3]);
  if (retain_graph < 0 || create_graph < 0) return nullptr;
  PyObject* inputs = args[4];
  bool leaves_get_grad = inputs == Py_None;

  Engine eng;
  Ref leaf_grads(PyDict_New()), wanted, captured, nonleaf_wanted;
  if (!leaf_grads) return nullptr;
  if (!leaves_get_grad) {
    Ref seq(PySequence_Fast(inputs, "run_backward: inputs must be a sequence"));
    if (!seq) return nullptr;
    wanted.reset(PyDict_New());
    captured.reset(PyDict_New());
    nonleaf_wanted.reset(PyDict_New());
    if (!wanted || !captured || !nonleaf_wanted) return nullptr;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
      PyObject* t = PySequence_Fast_GET_ITEM(seq.get(), i);
      if (!checked_tensor(t, "autograd.grad: an input")) return nullptr;
      Ref key(PyLong_FromVoidPtr(t));
      if (!key || PyDict_SetItem(wanted.get(), key.get(), t) < 0) return nullptr;
      PyObject* fn = slot(t, T.grad_fn);
      if (fn != nullptr && fn != Py_None) {  // nonleaf_wanted.setdefault(t.grad_fn, []).append(t)
        PyObject* lst = PyDict_GetItemWithError(nonleaf_wanted.get(), fn);
        if (lst == nullptr) {
          if (PyErr_Occurred()) return nullptr;
          Ref fresh(PyList_New(0));
          if (!fresh || PyDict_SetItem(nonleaf_wanted.get(), fn, fresh.get()) < 0) return nullptr;
          lst = fresh.get();
        }
        if (PyList_Append(lst, t) < 0) return nullptr;
      }
    }
  }
  auto leaf_accumulate = [&](PyObject* t, PyObject* g) -> bool {  // engine._accumulate(leaf_grads, id(t), g)
    Ref key(PyLong_FromVoidPtr(t));
    if (!key) return false;
    PyObject* prev = PyDict_GetItemWithError(leaf_grads.get(), key.get());
    if (prev == nullptr) {
      if (PyErr_Occurred()) return false;
      return PyDict_SetItem(leaf_grads.get(), key.get(), g) == 0;
    }
    Ref sum(add(prev, g));
    return sum && PyDict_SetItem(leaf_grads.get(), key.get(), sum.get()) == 0;
  };
  auto is_wanted = [&](PyObject* t) -> int {
    Ref key(PyLong_FromVoidPtr(t));
    if (!key) return -1;
    return PyDict_Contains(wanted.get(), key.get());
  };
  auto call_to_leaf = [&](PyObject* e, PyObject* g) -> bool {
    PyObject* a[3] = {e, g, create_graph ? Py_True : Py_False};
    Ref r(PyObject_Vectorcall(R.to_leaf, a, 3, nullptr));
    return bool(r);
  };

  std::vector<PyObject*> roots;
  Py_ssize_t n_out = PySequence_Fast_GET_SIZE(outputs.get());
  if (PySequence_Fast_GET_SIZE(grads.get()) != n_out) {
    PyErr_SetString(PyExc_RuntimeError, "run_backward: one gradient per output");
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < n_out; ++i) {
    PyObject* out = PySequence_Fast_GET_ITEM(outputs.get(), i);
    PyObject* g = PySequence_Fast_GET_ITEM(grads.get(), i);
    if (!checked_tensor(out, "backward: an output")) return nullptr;
    PyObject* fn = slot(out, T.grad_fn);
    if (fn != Py_None && !is_node(fn)) {
      PyErr_Format(PyExc_TypeError, "backward: an output's grad_fn is a %s, not a Node", Py_TYPE(fn)->tp_name);
      return nullptr;
    }
    if (fn == Py_None) {
      if (!leaves_get_grad) {
        int w = is_wanted(out);
        if (w < 0) return nullptr;
        if (w && !leaf_accumulate(out, g)) return nullptr;
      } else if (truth(slot(out, T.requires_grad))) {
        if (!call_to_leaf(out, g)) return nullptr;
      }
      continue;
    }
    if (eng.pending.find(fn) == eng.pending.end()) roots.push_back(fn);
    Py_INCREF(g);
    if (!eng.accumulate(fn, g)) return nullptr;
  }

  if (!eng.count(roots)) return nullptr;
  for (PyObject* r : roots)
    if (eng.deps.find(r) == eng.deps.end()) { Py_INCREF(r); eng.ready.push_back(r); }

  int nonleaf_any = nonleaf_wanted && PyDict_GET_SIZE(nonleaf_wanted.get()) > 0;
  int check_nan = truth(slot(R.grad_state, state_check_nan));
  if (check_nan < 0) return nullptr;
  PyObject* prev_mode = slot(R.grad_state, state_enabled);
  Py_INCREF(prev_mode);
  set(R.grad_state, state_enabled, create_graph ? Py_True : Py_False);
  bool ok = true;
  std::vector<std::pair<PyObject*, PyObject*>> to_leaves;  // owned
  while (ok && !eng.ready.empty()) {
    Ref node(eng.ready.back());
    eng.ready.pop_back();
    PyObject* nd = node.get();
    if (!checked_node(nd)) { ok = false; break; }
    Ref g;
    {
      auto it = eng.pending.find(nd);
      if (it == eng.pending.end()) { PyErr_SetString(PyExc_RuntimeError, "tapegrad engine: a ready node has no gradient"); ok = false; break; }
      g.reset(it->second);
      Py_DECREF(it->first);
      eng.pending.erase(it);
    }
    if (slot(nd, N.pre_hooks) != Py_None || slot(nd, N.retained) != Py_None || nonleaf_any) {
      PyObject* a[4] = {nd, g.get(), nonleaf_any ? nonleaf_wanted.get() : Py_None, captured ? captured.get() : Py_None};
      g.reset(PyObject_Vectorcall(R.arrive, a, 4, nullptr));
      if (!g) { ok = false; break; }
    }
    PyObject* op = slot(nd, N.op);
    if (slot(nd, N.released) == Py_True) {
      PyErr_Format(PyExc_RuntimeError, "%S: %S", slot(op, O.name), R.freed_msg);
      ok = false;
      break;
    }
    Ref saved = Ref::borrow(slot(nd, N.saved));
    bool op_saves = PySet_GET_SIZE(slot(op, O.saves)) > 0;
    Py_ssize_t n_in = PyList_GET_SIZE(slot(nd, N.edges));
    if (op_saves) {
      PyObject* versions = slot(nd, N.versions);
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(saved.get()); ++i) {
        PyObject* t = PyTuple_GET_ITEM(saved.get(), i);
        if (t == Py_None) continue;
        if (!checked_tensor(t, "a saved input")) { ok = false; break; }
        int same = PyObject_RichCompareBool(PyList_GET_ITEM(slot(t, T.version), 0), PyList_GET_ITEM(versions, i), Py_EQ);
        if (same <= 0) {
          if (same == 0) Ref r(PyObject_CallOneArg(R.check_versions, nd));  // raises
          ok = false;
          break;
        }
      }
      if (!ok) break;
    }
    if (slot(op, O.partial_saves) == Py_True) {  // shape-and-dtype stand-ins for the inputs the op did not keep
      PyObject* metas = slot(nd, N.meta);
      Ref stand(PyTuple_New(n_in));
      if (!stand) { ok = false; break; }
      for (Py_ssize_t i = 0; i < n_in; ++i) {
        PyObject* t = PyTuple_GET_ITEM(saved.get(), i);
        if (t == Py_None) {
          PyObject* m = PyList_GET_ITEM(metas, i);
          t = PyDict_GetItemWithError(R.meta_cache, m);
          if (t != nullptr) {
            Py_INCREF(t);
          } else {
            if (PyErr_Occurred()) { ok = false; break; }
            t = PyObject_CallOneArg(R.new_meta, m);
            if (t == nullptr) { ok = false; break; }
          }
        } else {
          Py_INCREF(t);
        }
        PyTuple_SET_ITEM(stand.get(), i, t);
      }
      if (!ok) break;
      saved = std::move(stand);
    }
    Ref out = Ref::borrow(Py_None);
    if (slot(nd, N.out_version) != Py_None) {
      out.reset(saved_output(nd, create_graph));
      if (!out) { ok = false; break; }
    }
    Ref attrs = Ref::borrow(slot(nd, N.attrs));
    if (slot(nd, N.aux) != Py_None) {  // {**node.attrs, "aux": node.aux}
      attrs.reset(PyDict_Copy(attrs.get()));
      if (!attrs || PyDict_SetItem(attrs.get(), s_aux, slot(nd, N.aux)) < 0) { ok = false; break; }
    }
    PyObject* vjps = slot(op, O.vjps);
    PyObject* metas = slot(nd, N.meta);
    Ref edges = Ref::borrow(slot(nd, N.edges));
    // the VJP's arguments: g, out, *saved
    std::vector<PyObject*> call(2 + n_in);
    for (Py_ssize_t i = 0; i < n_in; ++i) {
      PyObject* e = PyList_GET_ITEM(edges.get(), i);
      if (e == Py_None) continue;
      Ref vjp(PyTuple_Check(vjps) ? Ref::borrow(PyTuple_GET_ITEM(vjps, i)) : Ref(PySequence_GetItem(vjps, i)));
      if (!vjp) { ok = false; break; }
      call[0] = g.get();
      call[1] = out.get();
      for (Py_ssize_t j = 0; j < n_in; ++j) call[2 + j] = PyTuple_GET_ITEM(saved.get(), j);
      Ref gi(PyDict_GET_SIZE(attrs.get()) ? PyObject_VectorcallDict(vjp.get(), call.data(), 2 + n_in, attrs.get())
                                          : PyObject_Vectorcall(vjp.get(), call.data(), 2 + n_in, nullptr));
      if (!gi) { ok = false; break; }
      if (gi.get() == Py_None) continue;
      if (!PyObject_TypeCheck(gi.get(), R.tensor)) {
        PyErr_Format(PyExc_TypeError, "%S: a gradient formula returned %s, not a Tensor", slot(op, O.name), Py_TYPE(gi.get())->tp_name);
        ok = false;
        break;
      }
      if (!checked_tensor(gi.get(), "a gradient")) { ok = false; break; }
      if (check_nan) {
        Ref index(PyLong_FromSsize_t(i));
        Ref r(index ? PyObject_CallFunctionObjArgs(R.nan_gradient, nd, index.get(), gi.get(), nullptr) : nullptr);
        if (!r) { ok = false; break; }
      }
      PyObject* m = PyList_GET_ITEM(metas, i);
      PyObject* shape = PyTuple_GET_ITEM(m, 0);
      PyObject* dtype = PyTuple_GET_ITEM(m, 1);
      {
        PyObject* d = slot(gi.get(), T.data);
        Ref dshape(PyObject_GetAttr(d, s_shape));
        if (!dshape) { ok = false; break; }
        int same = PyObject_RichCompareBool(dshape.get(), shape, Py_EQ);
        if (same < 0) { ok = false; break; }
        Ref ddtype(PyObject_GetAttr(d, s_dtype));
        if (!ddtype) { ok = false; break; }
        if (!same) {  // reduce broadcast dims, once for every op
          gi.reset(PyObject_CallMethodOneArg(gi.get(), s_sum_to_size, shape));
          if (!gi) { ok = false; break; }
        }
        if (ddtype.get() != dtype) {
          int eq = PyObject_RichCompareBool(ddtype.get(), dtype, Py_EQ);
          if (eq < 0) { ok = false; break; }
          if (!eq) {
            gi.reset(PyObject_CallMethodOneArg(gi.get(), s_to, dtype));
            if (!gi) { ok = false; break; }
          }
        }
      }
      if (is_node(e)) {
        if (!eng.accumulate(e, gi.release())) { ok = false; break; }
        auto it = eng.deps.find(e);
        if (it == eng.deps.end()) { PyErr_SetString(PyExc_RuntimeError, "tapegrad engine: an edge leads outside the graph"); ok = false; break; }
        if (--it->second == 0) { Py_INCREF(e); eng.ready.push_back(e); }
      } else if (leaves_get_grad) {
        Py_INCREF(e);
        to_leaves.emplace_back(e, gi.release());
      } else {
        int w = is_wanted(e);
        if (w < 0) { ok = false; break; }
        if (w) {
          if (!checked_tensor(e, "a leaf")) { ok = false; break; }
          PyObject* hooks = slot(e, T.hooks);
          if (hooks != Py_None && truth(hooks)) {
            gi.reset(PyObject_CallFunctionObjArgs(R.run_hooks, e, gi.get(), nullptr));
            if (!gi) { ok = false; break; }
          }
          if (!leaf_accumulate(e, gi.get())) { ok = false; break; }
        }
      }
    }
    if (!ok) break;
    if (!retain_graph && (op_saves || slot(op, O.saves_output) == Py_True || slot(nd, N.aux) != Py_None)) {
      set(nd, N.released, Py_True);  // a node that saved nothing can be run again
      set(nd, N.saved, Py_None);
      set(nd, N.versions, Py_None);
      set(nd, N.out_data, Py_None);
      set(nd, N.aux, Py_None);
    }
    // Drop this node's references first: a leaf may then take over a gradient buffer that
    // nothing else holds (engine._unshared) instead of copying it.
    g.reset();
    out.reset();
    saved.reset();
    attrs.reset();
    while (ok && !to_leaves.empty()) {
      auto [e, gi] = to_leaves.back();
      to_leaves.pop_back();
      ok = call_to_leaf(e, gi);
      Py_DECREF(gi);
      Py_DECREF(e);
    }
  }
  for (auto& [e, gi] : to_leaves) { Py_DECREF(e); Py_DECREF(gi); }
  set_steal(R.grad_state, state_enabled, prev_mode);
  if (!ok) return nullptr;
  if (leaves_get_grad) Py_RETURN_NONE;
  return PyTuple_Pack(2, leaf_grads.get(), captured.get());
}

// ----------------------------------------------------------------- registration
// tape_register(name, obj): the Python side hands over its classes and helpers.
PyObject* tape_register(PyObject*, PyObject* args) {
  const char* name;
  PyObject* obj;
  if (!PyArg_ParseTuple(args, "sO", &name, &obj)) return nullptr;
  std::string k(name);
  auto keep = [&](PyObject** field) { Py_INCREF(obj); Py_XSETREF(*field, obj); };
  if (k == "Tensor") {
    if (!PyType_Check(obj)) { PyErr_SetString(PyExc_TypeError, "tape_register: Tensor must be a class"); return nullptr; }
    const std::pair<const char*, Py_ssize_t*> fields[] = {
        {"_data", &T.data}, {"_requires_grad", &T.requires_grad}, {"grad", &T.grad}, {"grad_fn", &T.grad_fn},
        {"_version", &T.version}, {"_base", &T.base}, {"_retains_grad", &T.retains_grad}, {"_hooks", &T.hooks}};
    for (auto& [f, off] : fields) if (!slot_offset(obj, f, off)) return nullptr;
    keep(reinterpret_cast<PyObject**>(&R.tensor));
  } else if (k == "Node") {
    const std::pair<const char*, Py_ssize_t*> fields[] = {
        {"op", &N.op}, {"attrs", &N.attrs}, {"saved", &N.saved}, {"versions", &N.versions}, {"out_data", &N.out_data},
        {"out_version", &N.out_version}, {"aux", &N.aux}, {"edges", &N.edges}, {"meta", &N.meta},
        {"out_meta", &N.out_meta}, {"where", &N.where}, {"seq", &N.seq}, {"released", &N.released},
        {"pre_hooks", &N.pre_hooks}, {"retained", &N.retained}};
    for (auto& [f, off] : fields) if (!slot_offset(obj, f, off)) return nullptr;
    keep(reinterpret_cast<PyObject**>(&R.node));
  } else if (k == "Op") {
    const std::pair<const char*, Py_ssize_t*> fields[] = {
        {"name", &O.name}, {"forward", &O.forward}, {"vjps", &O.vjps}, {"saves", &O.saves},
        {"saves_output", &O.saves_output}, {"view", &O.view}, {"aux", &O.aux}, {"differentiable", &O.differentiable},
        {"all_differentiable", &O.all_differentiable}, {"partial_saves", &O.partial_saves},
        {"node_type", &O.node_type}};
    for (auto& [f, off] : fields) if (!slot_offset(obj, f, off)) return nullptr;
    keep(reinterpret_cast<PyObject**>(&R.op));
  } else if (k == "grad_state") {
    if (!slot_offset(reinterpret_cast<PyObject*>(Py_TYPE(obj)), "enabled", &state_enabled) ||
        !slot_offset(reinterpret_cast<PyObject*>(Py_TYPE(obj)), "check_nan", &state_check_nan))
      return nullptr;
    keep(&R.grad_state);
  } else {
    const std::pair<const char*, PyObject**> objects[] = {
        {"ndarray", &R.ndarray}, {"asarray", &R.asarray}, {"seq", &R.seq}, {"pkg_dir", &R.pkg_dir},
        {"inside", &R.inside}, {"forward_failed", &R.forward_failed}, {"arrive", &R.arrive},
        {"check_versions", &R.check_versions}, {"saved_output_changed", &R.saved_output_changed},
        {"new_meta", &R.new_meta}, {"meta_cache", &R.meta_cache}, {"to_leaf", &R.to_leaf},
        {"run_hooks", &R.run_hooks}, {"freed_msg", &R.freed_msg}, {"nan_gradient", &R.nan_gradient}};
    bool found = false;
    for (auto& [f, field] : objects) if (k == f) { keep(field); found = true; }
    if (!found) { PyErr_Format(PyExc_KeyError, "tape_register: unknown name %s", name); return nullptr; }
  }
  R.apply_ready = R.tensor && R.node && R.op && state_enabled >= 0 && R.ndarray && R.asarray && R.seq &&
                  R.pkg_dir && R.inside && R.forward_failed;
  R.engine_ready = R.apply_ready && R.arrive && R.check_versions && R.saved_output_changed && R.new_meta &&
                   R.meta_cache && R.to_leaf && R.run_hooks && R.freed_msg && R.nan_gradient;
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"apply", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(apply)), METH_FASTCALL | METH_KEYWORDS,
     "apply(op, *tensors, **attrs): run an op and record it (tapegrad/ops/registry.py:apply, in C++)"},
    {"run_backward", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(run_backward)),
     METH_FASTCALL | METH_KEYWORDS,
     "run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs) (autograd/engine.py, in C++)"},
    {"tape_register", tape_register, METH_VARARGS, "tape_register(name, obj): hand a class or helper to the C++ tape"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

int add_to_module(PyObject* module) {
  s_shape = PyUnicode_InternFromString("shape");
  s_dtype = PyUnicode_InternFromString("dtype");
  s_sum_to_size = PyUnicode_InternFromString("sum_to_size");
  s_to = PyUnicode_InternFromString("to");
  s_aux = PyUnicode_InternFromString("aux");
  if (!s_shape || !s_dtype || !s_sum_to_size || !s_to || !s_aux) return -1;
  return PyModule_AddFunctions(module, methods);
}

}  // namespace tapegrad::tape
