// The tape's Python types (see tape.h for their fields): _C.TensorBase, _C.Node, _C.Op, _C.Meta,
// and the thread-local grad mode (_C.grad_state, _C.is_grad_enabled).
//
// Python reads every field through a getter and writes only the ones it owns through a setter
// that checks the value, so the engine (tape.cpp) can trust what it reads: an edge tuple is
// fixed at record time and read-only, a version box is a list, a grad_fn is a Node or None.
#include "tape.h"

#include "elementwise.h"

#include <structmember.h>

#include <utility>
#include <vector>

// The types are filled in field by field in add_to_module (designated initialisers would
// have to follow CPython's field order exactly).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tapegrad::tape {

PyTypeObject* tensor_class = nullptr;
PyObject* slice_grad_class = nullptr;
PyObject* zeroed_grad_class = nullptr;
PyObject* post_hook_runner = nullptr;
PyObject* view_regenerator = nullptr;
// (get, set, delete) of tensor.py's attribute side table: get(t, name) and delete(t, name) raise
// AttributeError for an attribute it does not hold; set(t, name, value) stores one.
PyObject* attribute_store = nullptr;
// tensor.py's Size (a Python subclass of SizeBase below), registered by _set_size_class: what
// x.shape returns.
PyObject* size_class = nullptr;
// _dtype.py's dtype objects, registered by _set_dtype_map: x.dtype is the object of the array's
// numpy descr (a pointer compare over a short table: numpy's builtin descrs are singletons), or
// what `dtype_fallback(descr)` says for any other descr (a byte-swapped array's, say).
std::vector<std::pair<PyObject*, PyObject*>> dtype_table;
PyObject* dtype_fallback = nullptr;

// A new `cls` (a tuple subclass) holding the items of the plain tuple `items`: tuple's own
// __new__, which also keeps whatever a tuple caches (its hash) right on every Python version.
PyObject* new_size(PyTypeObject* cls, PyObject* items) {
  Ref args(PyTuple_Pack(1, items));
  return args ? PyTuple_Type.tp_new(cls, args.get(), nullptr) : nullptr;
}

// SizeBase: tuple with an indexing slot that keeps slices of a Size a Size (x.shape[1:]), as
// torch.Size's are, in C: x.shape[-1] is the hot form, and a Python __getitem__ cost it a frame.
PyObject* size_subscript(PyObject* self, PyObject* key) {
  PyObject* item = PyTuple_Type.tp_as_mapping->mp_subscript(self, key);
  if (item == nullptr || !PySlice_Check(key)) return item;
  Ref plain(item);
  return new_size(Py_TYPE(self), plain.get());
}
PyMappingMethods size_as_mapping = {nullptr, size_subscript, nullptr};
PyTypeObject SizeBaseType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// The count in a tensor's version box, or -1 when the box holds no int (the engine reports that).
Py_ssize_t version_count(TensorObject* t) {
  if (!PyList_Check(t->version) || PyList_GET_SIZE(t->version) < 1) return -1;
  Py_ssize_t v = PyLong_AsSsize_t(PyList_GET_ITEM(t->version, 0));
  if (v == -1 && PyErr_Occurred()) PyErr_Clear();
  return v;
}

int refresh_view(PyObject* self) {
  TensorObject* t = T(self);
  Py_ssize_t now = version_count(t);
  if (t->base == Py_None || now == t->view_version) return 0;
  if (!is_tensor(t->base) || view_regenerator == nullptr) {
    t->view_version = now;
    return 0;
  }
  // a base outside the graph: the view stays stale, so that it takes its graph from the base
  // once the base requires grad (PyTorch looks at the base's requires_grad on every access)
  if (!T(t->base)->requires_grad) return 0;
  // the regenerator reads no view's graph (so no recursion), and the view is marked current only
  // once its new graph is set: another thread reading it meanwhile regenerates it too
  PyObject* r = PyObject_CallOneArg(view_regenerator, self);
  if (r == nullptr) return -1;
  Py_DECREF(r);
  t->view_version = now;
  return 0;
}
PyObject* pkg_dir = nullptr;
PyObject* ndarray_type = nullptr;
PyObject* np_asarray = nullptr;

Modes& modes() {
  static thread_local Modes m;
  return m;
}

namespace {
std::atomic<long long> seq_counter{0};

PyObject* none_if_null(PyObject* p) { return Py_NewRef(p != nullptr ? p : Py_None); }

int refuse_delete(PyObject* value, const char* name) {
  if (value == nullptr) {
    PyErr_Format(PyExc_AttributeError, "can't delete the tensor's %s", name);
    return -1;
  }
  return 0;
}

void replace(PyObject** field, PyObject* value) { Py_XSETREF(*field, Py_NewRef(value)); }
}  // namespace

long long next_seq() { return seq_counter.fetch_add(1, std::memory_order_relaxed); }

// A version box holds one int and nothing else (the engine refuses a tampered one), so it can
// be in no reference cycle: it is left out of the cycle collector's lists, as CPython leaves out
// tuples of atoms. Every tensor has one; tracking them made full collections longer.
PyObject* new_version_box() {
  PyObject* box = PyList_New(1);
  if (box == nullptr) return nullptr;
  PyList_SET_ITEM(box, 0, PyLong_FromLong(0));
  PyObject_GC_UnTrack(box);
  return box;
}

void untrack_private(PyObject* tuple) {
  if (PyObject_GC_IsTracked(tuple)) PyObject_GC_UnTrack(tuple);
}

// ============================================================ TensorBase
namespace {

bool tensor_init_fields(TensorObject* t) {
  t->data = Py_NewRef(Py_None);
  t->grad = Py_NewRef(Py_None);
  t->grad_fn = Py_NewRef(Py_None);
  t->base = Py_NewRef(Py_None);
  t->hooks = Py_NewRef(Py_None);
  t->post_hooks = Py_NewRef(Py_None);
  t->version = new_version_box();
  t->requires_grad = t->retains_grad = false;
  t->has_attributes = false;
  t->view_version = 0;
  pthread_mutex_init(&t->grad_lock, nullptr);
  t->lock_owner.store(0);
  return t->version != nullptr;
}

PyObject* tensor_new(PyTypeObject* type, PyObject*, PyObject*) {
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) return nullptr;
  if (!tensor_init_fields(T(self))) { Py_DECREF(self); return nullptr; }
  gc_settle(self);
  return self;
}

// Attribute lookups and writes: the type's fields, properties and methods (and a subclass's
// __dict__) first, as for any object; only what that refuses goes to the side table, so the
// common path costs one call more in C and a Tensor never becomes a cycle-collected dict owner.
PyObject* tensor_getattro(PyObject* self, PyObject* name) {
  PyObject* found = PyObject_GenericGetAttr(self, name);
  if (found != nullptr || !T(self)->has_attributes || attribute_store == nullptr ||
      !PyErr_ExceptionMatches(PyExc_AttributeError))
    return found;
  PyErr_Clear();
  return PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(attribute_store, 0), self, name, nullptr);
}

int tensor_setattro(PyObject* self, PyObject* name, PyObject* value) {
  if (value == nullptr && T(self)->has_attributes && attribute_store != nullptr) {  // del x.name
    int rc = PyObject_GenericSetAttr(self, name, nullptr);
    if (rc == 0 || !PyErr_ExceptionMatches(PyExc_AttributeError)) return rc;
    PyErr_Clear();
    PyObject* r = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(attribute_store, 2), self, name, nullptr);
    if (r == nullptr) return -1;
    Py_DECREF(r);
    return 0;
  }
  int rc = PyObject_GenericSetAttr(self, name, value);
  if (rc == 0 || value == nullptr || attribute_store == nullptr || !PyErr_ExceptionMatches(PyExc_AttributeError))
    return rc;
  if (_PyType_Lookup(Py_TYPE(self), name) != nullptr) return rc;  // a property without setter, a method
  PyErr_Clear();
  PyObject* r = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(attribute_store, 1), self, name, value, nullptr);
  if (r == nullptr) return -1;
  Py_DECREF(r);
  T(self)->has_attributes = true;
  return 0;
}

int tensor_traverse(PyObject* self, visitproc visit, void* arg) {
  TensorObject* t = T(self);
  Py_VISIT(t->data);
  Py_VISIT(t->grad);
  Py_VISIT(t->grad_fn);
  Py_VISIT(t->version);
  Py_VISIT(t->base);
  Py_VISIT(t->hooks);
  Py_VISIT(t->post_hooks);
  return 0;
}

int tensor_clear(PyObject* self) {  // fields become None (the engine checks a box is a list)
  TensorObject* t = T(self);
  PyObject** fields[] = {&t->data, &t->grad, &t->grad_fn, &t->version, &t->base, &t->hooks, &t->post_hooks};
  for (PyObject** f : fields) replace(f, Py_None);
  return 0;
}

void tensor_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  gc_forget(self);
  Py_TRASHCAN_BEGIN(self, tensor_dealloc)
  TensorObject* t = T(self);
  if (t->weakreflist != nullptr) PyObject_ClearWeakRefs(self);
  Py_CLEAR(t->data);
  Py_CLEAR(t->grad);
  Py_CLEAR(t->grad_fn);
  Py_CLEAR(t->version);
  Py_CLEAR(t->base);
  Py_CLEAR(t->hooks);
  Py_CLEAR(t->post_hooks);
  pthread_mutex_destroy(&t->grad_lock);
  Py_TYPE(self)->tp_free(self);
  Py_TRASHCAN_END
}

PyObject* get_data(PyObject* self, void*) { return Py_NewRef(T(self)->data); }
int set_data(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "_data") < 0) return -1;
  replace(&T(self)->data, v);
  gc_store(self, v);
  return 0;
}
// A .grad assigned by the user has the tensor's shape and dtype (as PyTorch checks): the
// engine then accumulates into it in place, where a wrong shape would broadcast silently.
bool grad_fits(PyObject* self, PyObject* g) {
  PyObject *d = T(self)->data, *gd = T(g)->data;
  if (!is_exact_ndarray(d) || !is_exact_ndarray(gd)) return true;  // a tensor being built
  Ref shape(PyObject_GetAttrString(d, "shape")), gshape(PyObject_GetAttrString(gd, "shape"));
  if (!shape || !gshape) return false;
  int same = PyObject_RichCompareBool(shape.get(), gshape.get(), Py_EQ);
  if (same <= 0) {
    if (same == 0)
      PyErr_Format(PyExc_RuntimeError,
                   "attempting to assign a gradient of shape %S to a tensor of shape %S: the gradient and the "
                   "tensor must have the same shape",
                   gshape.get(), shape.get());
    return false;
  }
  Ref dtype(PyObject_GetAttrString(d, "dtype")), gdtype(PyObject_GetAttrString(gd, "dtype"));
  if (!dtype || !gdtype) return false;
  same = dtype.get() == gdtype.get() ? 1 : PyObject_RichCompareBool(dtype.get(), gdtype.get(), Py_EQ);
  if (same == 0)
    PyErr_Format(PyExc_RuntimeError,
                 "attempting to assign a gradient of dtype %S to a tensor of dtype %S: the gradient and the tensor "
                 "must have the same dtype",
                 gdtype.get(), dtype.get());
  return same == 1;
}
PyObject* get_grad(PyObject* self, void*) { return Py_NewRef(T(self)->grad); }
int set_grad(PyObject* self, PyObject* v, void*) {
  if (v == nullptr) v = Py_None;  // `del x.grad`, as PyTorch
  if (v != Py_None && !is_tensor(v)) {
    PyErr_Format(PyExc_TypeError, "assigned grad expected to be a Tensor or None but got grad of type %s",
                 Py_TYPE(v)->tp_name);
    return -1;
  }
  if (v != Py_None && !grad_fits(self, v)) return -1;
  replace(&T(self)->grad, v);
  gc_store(self, v);
  return 0;
}
PyObject* get_grad_fn(PyObject* self, void*) {
  if (fresh_view(self) < 0) return nullptr;
  return Py_NewRef(T(self)->grad_fn);
}
int set_grad_fn(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "grad_fn") < 0) return -1;
  if (v != Py_None && !is_node(v)) {
    PyErr_Format(PyExc_TypeError, "a tensor's grad_fn must be a Node or None, got %s", Py_TYPE(v)->tp_name);
    return -1;
  }
  replace(&T(self)->grad_fn, v);
  gc_store(self, v);
  T(self)->view_version = version_count(T(self));  // a view's graph is set now
  return 0;
}
PyObject* get_version_box(PyObject* self, void*) { return Py_NewRef(T(self)->version); }
// PyTorch's x._version: the count of in-place writes, an int shared with views (read-only there too)
PyObject* get_version(PyObject* self, void*) {
  PyObject* box = T(self)->version;
  if (!PyList_Check(box) || PyList_GET_SIZE(box) < 1) {
    PyErr_SetString(PyExc_TypeError, "a tensor's version box is not a one-element list");
    return nullptr;
  }
  return Py_NewRef(PyList_GET_ITEM(box, 0));
}
int set_version_box(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "_version_box") < 0) return -1;
  if (!PyList_Check(v) || PyList_GET_SIZE(v) < 1) {
    PyErr_SetString(PyExc_TypeError, "a tensor's _version_box must be a version box (a one-element list)");
    return -1;
  }
  if (PyList_GET_SIZE(v) == 1 && PyLong_CheckExact(PyList_GET_ITEM(v, 0)) && PyObject_GC_IsTracked(v))
    PyObject_GC_UnTrack(v);  // a box made in Python (`[0]`): as new_version_box's
  replace(&T(self)->version, v);
  gc_store(self, v);
  T(self)->view_version = version_count(T(self));
  return 0;
}
PyObject* get_base(PyObject* self, void*) { return Py_NewRef(T(self)->base); }
int set_base(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "_base") < 0) return -1;
  replace(&T(self)->base, v);
  gc_store(self, v);
  T(self)->view_version = version_count(T(self));
  return 0;
}
PyObject* get_hooks(PyObject* self, void*) { return Py_NewRef(T(self)->hooks); }
int set_hooks(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "_hooks") < 0) return -1;
  if (v != Py_None && !PyDict_Check(v)) {
    PyErr_SetString(PyExc_TypeError, "a tensor's _hooks must be a dict or None");
    return -1;
  }
  replace(&T(self)->hooks, v);
  gc_store(self, v);
  return 0;
}
PyObject* get_post_hooks(PyObject* self, void*) { return Py_NewRef(T(self)->post_hooks); }
int set_post_hooks(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "_post_accumulate_grad_hooks") < 0) return -1;
  if (v != Py_None && !PyDict_Check(v)) {
    PyErr_SetString(PyExc_TypeError, "a tensor's _post_accumulate_grad_hooks must be a dict or None");
    return -1;
  }
  replace(&T(self)->post_hooks, v);
  gc_store(self, v);
  return 0;
}
// x.shape: a Size read from the array's head (no `arr.shape` tuple, no Python frame).
PyObject* get_shape(PyObject* self, void*) {
  PyObject* d = T(self)->data;
  Ref dims;
  if (is_exact_ndarray(d)) {
    ArrayHead* a = array_head(d);
    dims.reset(PyTuple_New(a->nd));
    if (!dims) return nullptr;
    for (int i = 0; i < a->nd; ++i) {
      PyObject* n = PyLong_FromSsize_t(a->dims[i]);
      if (n == nullptr) return nullptr;
      PyTuple_SET_ITEM(dims.get(), i, n);
    }
  } else {  // an array subclass, or a tensor being built: ask it
    Ref shape(PyObject_GetAttrString(d, "shape"));
    if (!shape) return nullptr;
    dims.reset(PySequence_Tuple(shape.get()));
    if (!dims) return nullptr;
  }
  if (size_class == nullptr) return dims.release();
  return new_size(reinterpret_cast<PyTypeObject*>(size_class), dims.get());
}
PyObject* get_dtype(PyObject* self, void*) {
  PyObject* d = T(self)->data;
  Ref descr;
  if (is_exact_ndarray(d)) {
    descr.reset(Py_NewRef(array_head(d)->descr));
  } else {
    descr.reset(PyObject_GetAttrString(d, "dtype"));
    if (!descr) return nullptr;
  }
  for (const auto& [key, obj] : dtype_table)
    if (key == descr.get()) return Py_NewRef(obj);
  if (dtype_fallback == nullptr) return descr.release();
  return PyObject_CallOneArg(dtype_fallback, descr.get());
}
PyObject* get_requires_grad(PyObject* self, void*) {
  if (fresh_view(self) < 0) return nullptr;
  return PyBool_FromLong(T(self)->requires_grad);
}
int set_requires_grad(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "_requires_grad") < 0) return -1;
  int b = PyObject_IsTrue(v);
  if (b < 0) return -1;
  T(self)->requires_grad = b;
  return 0;
}
PyObject* get_retains_grad(PyObject* self, void*) { return PyBool_FromLong(T(self)->retains_grad); }
int set_retains_grad(PyObject* self, PyObject* v, void*) {
  if (refuse_delete(v, "_retains_grad") < 0) return -1;
  int b = PyObject_IsTrue(v);
  if (b < 0) return -1;
  T(self)->retains_grad = b;
  return 0;
}

// x.ndim, x.dim(), x.numel(): read from the array's head, as x.shape (a Python property or
// method cost a frame: x.dim() took 1.4-2.9x PyTorch's time). Another _data (a sparse tensor's
// storage, an array subclass) is asked for its own ndim / size.
PyObject* get_ndim(PyObject* self, void*) {
  PyObject* d = T(self)->data;
  if (is_exact_ndarray(d)) return PyLong_FromLong(array_head(d)->nd);
  return PyObject_GetAttrString(d, "ndim");
}
PyObject* tensor_dim(PyObject* self, PyObject*) { return get_ndim(self, nullptr); }
PyObject* tensor_numel(PyObject* self, PyObject*) {
  PyObject* d = T(self)->data;
  if (!is_exact_ndarray(d)) return PyObject_GetAttrString(d, "size");
  ArrayHead* a = array_head(d);
  Py_ssize_t n = 1;
  for (int i = 0; i < a->nd; ++i) n *= a->dims[i];
  return PyLong_FromSsize_t(n);
}

PyGetSetDef tensor_getset[] = {
    {"_data", get_data, set_data, "the numpy array", nullptr},
    {"shape", get_shape, nullptr, "the tensor's sizes, a tapegrad.Size (a tuple of ints, as torch.Size)", nullptr},
    {"dtype", get_dtype, nullptr, "the element type, a tapegrad.dtype (as torch.dtype)", nullptr},
    {"ndim", get_ndim, nullptr, "the number of dimensions (as dim())", nullptr},
    {"grad", get_grad, set_grad, "the accumulated gradient (None until backward reaches this tensor)", nullptr},
    {"grad_fn", get_grad_fn, set_grad_fn, "the Node that produced this tensor (None for a leaf)", nullptr},
    {"_version", get_version, nullptr, "the number of in-place writes to this tensor's memory (shared with views)",
     nullptr},
    {"_version_box", get_version_box, set_version_box, "version box: [_version], the list views share", nullptr},
    {"_base", get_base, set_base, "the tensor this is a view of (None unless a view)", nullptr},
    {"_hooks", get_hooks, set_hooks, "a leaf's gradient hooks {id: hook}", nullptr},
    {"_post_accumulate_grad_hooks", get_post_hooks, set_post_hooks,
     "a leaf's hooks {id: hook(tensor)}, run once per backward after .grad was updated", nullptr},
    {"_requires_grad", get_requires_grad, set_requires_grad, nullptr, nullptr},
    {"_retains_grad", get_retains_grad, set_retains_grad, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

// Tensor._wrap(arr): a new leaf of this class around arr (no copy; a numpy scalar from 0-d
// work becomes a 0-d array).
PyObject* new_tensor(PyTypeObject* type, PyObject* arr, bool settle = true) {
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) return nullptr;
  if (!tensor_init_fields(T(self))) { Py_DECREF(self); return nullptr; }
  Py_SETREF(T(self)->data, Py_NewRef(arr));
  if (settle) gc_settle(self);
  return self;
}

PyObject* tensor_wrap_method(PyObject* cls, PyObject* arr) {
  Ref data(is_exact_ndarray(arr) ? Py_NewRef(arr) : PyObject_CallOneArg(np_asarray, arr));
  return data ? new_tensor(reinterpret_cast<PyTypeObject*>(cls), data.get()) : nullptr;
}

PyObject* tensor_init_meta(PyObject* self, PyObject*) {
  TensorObject* t = T(self);
  PyObject* box = new_version_box();
  if (box == nullptr) return nullptr;
  Py_SETREF(t->version, box);
  replace(&t->grad, Py_None);
  replace(&t->grad_fn, Py_None);
  replace(&t->base, Py_None);
  replace(&t->hooks, Py_None);
  replace(&t->post_hooks, Py_None);
  t->requires_grad = t->retains_grad = false;
  Py_RETURN_NONE;
}

// x._bump_version(): one more in-place write (PyTorch's torch.autograd.graph.increment_version)
PyObject* tensor_bump_version(PyObject* self, PyObject*) {
  PyObject* box = T(self)->version;
  if (!PyList_Check(box) || PyList_GET_SIZE(box) < 1) {
    PyErr_SetString(PyExc_TypeError, "a tensor's version box is not a one-element list");
    return nullptr;
  }
  PyObject* v = PyList_GET_ITEM(box, 0);
  PyObject* next = PyLong_CheckExact(v) ? PyLong_FromSsize_t(PyLong_AsSsize_t(v) + 1) : nullptr;
  if (next == nullptr || PyErr_Occurred()) {  // a huge or tampered count: Python's arithmetic
    Py_XDECREF(next);
    PyErr_Clear();
    PyObject* one = PyLong_FromLong(1);
    if (one == nullptr) return nullptr;
    next = PyNumber_Add(v, one);
    Py_DECREF(one);
    if (next == nullptr) return nullptr;
  }
  PyList_SET_ITEM(box, 0, next);
  Py_DECREF(v);
  Py_RETURN_NONE;
}

PyMethodDef tensor_methods[] = {
    {"_bump_version", tensor_bump_version, METH_NOARGS, "count one more in-place write (shared with views)"},
    {"_wrap", tensor_wrap_method, METH_O | METH_CLASS,
     "_wrap(arr): a new leaf around arr (no copy; a numpy scalar becomes a 0-d array)"},
    {"_init_meta", tensor_init_meta, METH_NOARGS, "reset the tape's fields: a leaf that does not require grad"},
    {"dim", tensor_dim, METH_NOARGS, "dim() -> int: the number of dimensions (x.ndim)"},
    {"ndimension", tensor_dim, METH_NOARGS, "ndimension() -> int: dim()'s old name"},
    {"numel", tensor_numel, METH_NOARGS, "numel() -> int: the number of elements"},
    {"nelement", tensor_numel, METH_NOARGS, "nelement() -> int: numel()'s old name"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

PyTypeObject TensorBaseType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject* wrap(PyObject* arr) { return new_tensor(tensor_class, arr); }
PyObject* wrap_unsettled(PyObject* arr) { return new_tensor(tensor_class, arr, false); }

// ============================================================ Op
namespace {

int op_init(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"name", "forward", "vjps", "saves", "node_type", "saves_output", "view", "aux",
                             "differentiable", "all_differentiable", "partial_saves", "forward16", "reads", nullptr};
  OpObject* op = O(self);
  if (op->ready) {
    PyErr_SetString(PyExc_TypeError, "an Op is initialised once (the tape may be using its fields)");
    return -1;
  }
  PyObject *name, *forward, *vjps, *saves, *node_type, *forward16 = Py_None, *reads = Py_None;
  int saves_output = 0, view = 0, aux = 0, differentiable = 1, all_differentiable = 1, partial_saves = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UOOOO|ppppppOO", const_cast<char**>(kw), &name, &forward, &vjps,
                                   &saves, &node_type, &saves_output, &view, &aux, &differentiable,
                                   &all_differentiable, &partial_saves, &forward16, &reads))
    return -1;
  op->n_reads = 0;
  if (reads != Py_None) {
    if (!PyTuple_Check(reads) || PyTuple_GET_SIZE(reads) > OpObject::kMaxReads) {
      PyErr_Format(PyExc_TypeError, "Op: reads must be None or a tuple of at most %d bit masks",
                   OpObject::kMaxReads);
      return -1;
    }
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(reads); ++j) {
      unsigned long long m = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(reads, j));
      if (m == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return -1;
      op->reads[j] = m;
    }
    op->n_reads = static_cast<int>(PyTuple_GET_SIZE(reads));
  }
  if (!PyFrozenSet_Check(saves)) {
    PyErr_SetString(PyExc_TypeError, "Op: saves must be a frozenset of input indices");
    return -1;
  }
  if (!PyType_Check(node_type) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(node_type), &NodeType)) {
    PyErr_SetString(PyExc_TypeError, "Op: node_type must be a Node subclass");
    return -1;
  }
  if (!PySequence_Check(vjps)) {
    PyErr_SetString(PyExc_TypeError, "Op: vjps must be a sequence");
    return -1;
  }
  op->name = Py_NewRef(name);
  op->forward = Py_NewRef(forward);
  op->forward16 = forward16 == Py_None ? nullptr : Py_NewRef(forward16);
  op->vjps = Py_NewRef(vjps);
  op->saves = Py_NewRef(saves);
  op->node_type = Py_NewRef(node_type);
  op->n_saves = PySet_GET_SIZE(saves);
  op->saves_output = saves_output;
  op->view = view;
  op->aux = aux;
  op->differentiable = differentiable;
  op->all_differentiable = all_differentiable;
  op->partial_saves = partial_saves;
  op->ready = true;
  return 0;
}

int op_traverse(PyObject* self, visitproc visit, void* arg) {
  OpObject* op = O(self);
  Py_VISIT(op->name);
  Py_VISIT(op->forward);
  Py_VISIT(op->forward16);
  Py_VISIT(op->vjps);
  Py_VISIT(op->saves);
  Py_VISIT(op->node_type);
  return 0;
}

int op_clear(PyObject* self) {
  OpObject* op = O(self);
  op->ready = false;  // apply and the engine refuse it from now on
  Py_CLEAR(op->name);
  Py_CLEAR(op->forward);
  Py_CLEAR(op->forward16);
  Py_CLEAR(op->vjps);
  Py_CLEAR(op->saves);
  Py_CLEAR(op->node_type);
  return 0;
}

void op_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  op_clear(self);
  Py_TYPE(self)->tp_free(self);
}

#define OP_FIELD(f)                                                                         \
  PyObject* op_get_##f(PyObject* self, void*) { return none_if_null(O(self)->f); }
OP_FIELD(name)
OP_FIELD(forward)
OP_FIELD(forward16)
OP_FIELD(vjps)
OP_FIELD(saves)
OP_FIELD(node_type)
#define OP_FLAG(f) \
  PyObject* op_get_##f(PyObject* self, void*) { return PyBool_FromLong(O(self)->f); }
OP_FLAG(saves_output)
OP_FLAG(view)
OP_FLAG(aux)
OP_FLAG(differentiable)
OP_FLAG(all_differentiable)
OP_FLAG(partial_saves)

PyGetSetDef op_getset[] = {
    {"name", op_get_name, nullptr, nullptr, nullptr},
    {"forward", op_get_forward, nullptr, "the forward on numpy arrays", nullptr},
    {"forward16", op_get_forward16, nullptr, "the forward apply calls when an input has 2-byte elements", nullptr},
    {"vjps", op_get_vjps, nullptr, "one VJP (or None) per input", nullptr},
    {"saves", op_get_saves, nullptr, "indices of the inputs the VJPs read", nullptr},
    {"node_type", op_get_node_type, nullptr, "the Node subclass recorded", nullptr},
    {"saves_output", op_get_saves_output, nullptr, nullptr, nullptr},
    {"view", op_get_view, nullptr, nullptr, nullptr},
    {"aux", op_get_aux, nullptr, nullptr, nullptr},
    {"differentiable", op_get_differentiable, nullptr, nullptr, nullptr},
    {"all_differentiable", op_get_all_differentiable, nullptr, nullptr, nullptr},
    {"partial_saves", op_get_partial_saves, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

PyTypeObject OpType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// ============================================================ Node
namespace {

PyObject* pair(PyObject* a, PyObject* b) { return PyTuple_Pack(2, a, b); }

// Whether o can take part in no reference cycle whatever happens later: an object the collector
// ignores (int, str, ndarray, dtype), or a tuple of such (immutable, so it stays that way).
bool atomic(PyObject* o, int depth = 0) {
  if (!PyObject_IS_GC(o)) return true;
  if (!PyTuple_CheckExact(o) || depth > 2) return false;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); ++i)
    if (!atomic(PyTuple_GET_ITEM(o, i), depth + 1)) return false;
  return true;
}

PyObject* shape_dtype(PyObject* arr) {  // (arr.shape, arr.dtype), both left out of the collector
  static PyObject* s_shape = PyUnicode_InternFromString("shape");
  static PyObject* s_dtype = PyUnicode_InternFromString("dtype");
  Ref shape(PyObject_GetAttr(arr, s_shape));
  if (!shape) return nullptr;
  Ref dtype(PyObject_GetAttr(arr, s_dtype));
  if (!dtype) return nullptr;
  PyObject* p = pair(shape.get(), dtype.get());
  if (p != nullptr && atomic(p)) {
    untrack_private(shape.get());
    untrack_private(p);
  }
  return p;
}

// The producer's out_meta when it still describes arr (the usual input: the output of the node
// that made it, unless its data was replaced since): the same immutable pair, not a new one.
// Shared only while untracked, so node_traverse's visit of it stays a no-op.
PyObject* producer_meta(TensorObject* t) {
  if (t->grad_fn == Py_None || !is_node(t->grad_fn) || !is_exact_ndarray(t->data)) return nullptr;
  PyObject* om = N(t->grad_fn)->out_meta;
  if (om == nullptr || !PyTuple_CheckExact(om) || PyTuple_GET_SIZE(om) != 2 || PyObject_GC_IsTracked(om)) return nullptr;
  if (PyTuple_GET_ITEM(om, 1) != array_head(t->data)->descr || same_shape(t->data, PyTuple_GET_ITEM(om, 0)) != 1)
    return nullptr;
  return Py_NewRef(om);
}

}  // namespace

bool node_fill(NodeObject* node, PyObject* op_obj, PyObject* const* inputs, Py_ssize_t n, PyObject* attrs,
               PyObject* out, PyObject* out_version, PyObject* aux, PyObject* where) {
  OpObject* op = O(op_obj);
  Ref meta(PyTuple_New(n)), versions(PyTuple_New(n)), edges(PyTuple_New(n)), saved(PyTuple_New(n));
  if (!meta || !versions || !edges || !saved) return false;
  unsigned long long needed = ~0ULL;  // the inputs some VJP that will run reads (see OpObject::reads)
  if (op->n_reads >= n && op->n_saves) {  // (>: an op whose last inputs are optional, linear's bias)
    needed = 0;
    for (Py_ssize_t j = 0; j < n; ++j)
      if (T(inputs[j])->requires_grad) needed |= op->reads[j];
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    TensorObject* t = T(inputs[i]);
    PyObject* m = producer_meta(t);
    if (m == nullptr) m = shape_dtype(t->data);
    if (m == nullptr) return false;
    PyTuple_SET_ITEM(meta.get(), i, m);
    if (!PyList_Check(t->version) || PyList_GET_SIZE(t->version) < 1) {
      PyErr_SetString(PyExc_TypeError, "a tensor's version box is not a one-element list");
      return false;
    }
    PyTuple_SET_ITEM(versions.get(), i, Py_NewRef(PyList_GET_ITEM(t->version, 0)));
    PyObject* e = Py_None;
    if (t->requires_grad) {
      e = t->grad_fn != Py_None ? t->grad_fn : inputs[i];
      if (!op->all_differentiable) {
        Ref vjp(PySequence_GetItem(op->vjps, i));
        if (!vjp) return false;
        if (vjp.get() == Py_None) e = Py_None;
      }
    }
    PyTuple_SET_ITEM(edges.get(), i, Py_NewRef(e));
    PyObject* s = Py_None;
    if (i < 64 && !((needed >> i) & 1ULL)) {
      // no VJP that will run reads it: not kept (a VJP that runs gets None in its place)
    } else if (op->n_saves == n) {
      s = inputs[i];
    } else if (op->n_saves) {
      Ref key(PyLong_FromSsize_t(i));
      int has = key ? PySet_Contains(op->saves, key.get()) : -1;
      if (has < 0) return false;
      if (has) s = inputs[i];
    }
    PyTuple_SET_ITEM(saved.get(), i, Py_NewRef(s));
  }
  Ref out_meta(shape_dtype(out));
  if (!out_meta) return false;
  // autograd.graph.saved_tensors_hooks: every saved tensor, the output included, goes through the
  // pack hook and the node keeps what it returns (the backward unpacks it: Pass::run_node). The
  // hooks are off while the pack hook runs, so ops inside it save plainly.
  Ref packed_out, unpack = Ref::borrow(Py_None);
  if (PyObject* hooks = modes().saved_hooks) {
    Ref keep = Ref::borrow(hooks);
    PyObject* pack = PyTuple_GET_ITEM(hooks, 0);
    modes().saved_hooks = nullptr;
    bool ok = true;
    for (Py_ssize_t i = 0; ok && i < n; ++i) {
      PyObject* s = PyTuple_GET_ITEM(saved.get(), i);
      if (s == Py_None) continue;
      PyObject* p = PyObject_CallOneArg(pack, s);
      if (p == nullptr) ok = false;
      else {  // the tuple is new: no one else sees its slot change
        PyTuple_SET_ITEM(saved.get(), i, p);
        Py_DECREF(s);
      }
    }
    if (ok && op->saves_output) {
      Ref t(wrap(out));
      if (t && out_version != nullptr && out_version != Py_None) {  // the output's version counter, as
        Py_SETREF(T(t.get())->version, Py_NewRef(out_version));      // its memory: one tensor to the hook
        gc_store(t.get(), out_version);
      }
      packed_out.reset(t ? PyObject_CallOneArg(pack, t.get()) : nullptr);
      ok = bool(packed_out);
    }
    modes().saved_hooks = keep.get();
    if (!ok) return false;
    unpack = Ref::borrow(PyTuple_GET_ITEM(hooks, 1));
  }
  // The node's own tuples are left out of the collector: node_traverse visits their items in
  // their place (only the node holds them; the getters hand out copies). Seven fewer tracked
  // objects per recorded op, which made full collections dominate long chains of small ops.
  untrack_private(meta.get());
  untrack_private(versions.get());
  untrack_private(edges.get());
  untrack_private(saved.get());
  Ref w;
  if (where == nullptr || where == Py_None) {
    w.reset(user_frame_lazy());
    if (!w) return false;
    untrack_private(w.get());
  } else {
    w = Ref::borrow(where);
  }
  replace(&node->op, op_obj);
  replace(&node->attrs, attrs);
  Py_XSETREF(node->saved, saved.release());
  Py_XSETREF(node->versions, versions.release());
  node->out_packed = bool(packed_out);
  replace(&node->unpack, unpack.get());
  if (op->saves_output) {
    replace(&node->out_data, packed_out ? packed_out.get() : out);
    replace(&node->out_box, out_version);
    replace(&node->out_ver, PyList_GET_ITEM(out_version, 0));
  } else {
    replace(&node->out_data, Py_None);
    replace(&node->out_box, Py_None);
    replace(&node->out_ver, Py_None);
  }
  replace(&node->aux, aux);
  Py_XSETREF(node->edges, edges.release());
  Py_XSETREF(node->meta, meta.release());
  Py_XSETREF(node->out_meta, out_meta.release());
  Py_XSETREF(node->where, w.release());
  replace(&node->pre_hooks, Py_None);
  replace(&node->post_hooks, Py_None);
  replace(&node->retained, Py_None);
  node->seq = next_seq();
  node->released = false;
  node->ready = true;
  return true;
}

namespace {

// Node(op, inputs, attrs, out, out_version, aux, where=None): what apply records (custom
// autograd.Function builds its nodes this way).
int node_init(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"op", "inputs", "attrs", "out", "out_version", "aux", "where", nullptr};
  NodeObject* node = N(self);
  if (node->ready) {
    PyErr_SetString(PyExc_TypeError, "a Node is initialised once");
    return -1;
  }
  PyObject *op, *inputs, *attrs, *out, *out_version, *aux, *where = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO!OOO|O", const_cast<char**>(kw), &OpType, &op, &inputs,
                                   &PyDict_Type, &attrs, &out, &out_version, &aux, &where))
    return -1;
  if (!O(op)->ready) {
    PyErr_SetString(PyExc_TypeError, "Node: the op was not initialised");
    return -1;
  }
  if (!PyList_Check(out_version) || PyList_GET_SIZE(out_version) < 1) {
    PyErr_SetString(PyExc_TypeError, "Node: out_version must be the output's version box (a one-element list)");
    return -1;
  }
  Ref seq(PySequence_Tuple(inputs));
  if (!seq) return -1;
  Py_ssize_t n = PyTuple_GET_SIZE(seq.get());
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!is_tensor(PyTuple_GET_ITEM(seq.get(), i))) {
      PyErr_Format(PyExc_TypeError, "Node: input %zd must be a Tensor", i);
      return -1;
    }
  }
  return node_fill(node, op, &PyTuple_GET_ITEM(seq.get(), 0), n, attrs, out, out_version, aux, where) ? 0 : -1;
}

#define NODE_FIELDS(X) \
  X(op) X(attrs) X(saved) X(versions) X(out_data) X(out_box) X(out_ver) X(aux) X(edges) X(meta) X(out_meta) \
  X(where) X(pre_hooks) X(post_hooks) X(retained) X(unpack)

// A tuple the node made and took out of the collector (see node_fill) is visited through its
// items, as if the node held them directly; any other object is visited as usual.
int visit_field(PyObject* o, visitproc visit, void* arg) {
  if (o == nullptr) return 0;
  if (PyTuple_CheckExact(o) && !PyObject_GC_IsTracked(o)) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); ++i) Py_VISIT(PyTuple_GET_ITEM(o, i));
    return 0;
  }
  Py_VISIT(o);
  return 0;
}

int node_traverse(PyObject* self, visitproc visit, void* arg) {
  NodeObject* n = N(self);
#define VISIT(f) if (int r = visit_field(n->f, visit, arg)) return r;
  NODE_FIELDS(VISIT)
#undef VISIT
  return 0;
}

int node_clear(PyObject* self) {
  NodeObject* n = N(self);
  n->ready = false;  // the engine refuses it from now on
#define CLEAR(f) Py_CLEAR(n->f);
  NODE_FIELDS(CLEAR)
#undef CLEAR
  return 0;
}

void node_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  gc_forget(self);
  Py_TRASHCAN_BEGIN(self, node_dealloc)
  if (N(self)->weakreflist != nullptr) PyObject_ClearWeakRefs(self);
  node_clear(self);
  Py_TYPE(self)->tp_free(self);
  Py_TRASHCAN_END
}

#define NODE_FIELD(f) \
  PyObject* node_get_##f(PyObject* self, void*) { return none_if_null(N(self)->f); }
NODE_FIELD(op)
// a copy: the node's dict is its own (tape_gc.cpp counts what it holds as the node's)
PyObject* node_get_attrs(PyObject* self, void*) {
  PyObject* a = N(self)->attrs;
  return a != nullptr && PyDict_CheckExact(a) ? PyDict_Copy(a) : none_if_null(a);
}
NODE_FIELD(versions)
NODE_FIELD(out_data)
NODE_FIELD(aux)
NODE_FIELD(meta)
NODE_FIELD(out_meta)

// The node's untracked tuples of tensors and nodes stay private (node_traverse visits their
// items for them): Python gets a tracked copy, which may go into any cycle.
PyObject* private_copy(PyObject* o) {
  if (o == nullptr) Py_RETURN_NONE;
  if (!PyTuple_CheckExact(o) || PyObject_GC_IsTracked(o)) return Py_NewRef(o);
  Py_ssize_t n = PyTuple_GET_SIZE(o);
  PyObject* copy = PyTuple_New(n);
  if (copy == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(copy, i, Py_NewRef(PyTuple_GET_ITEM(o, i)));
  return copy;
}
PyObject* node_get_saved(PyObject* self, void*) { return private_copy(N(self)->saved); }
PyObject* node_get_edges(PyObject* self, void*) { return private_copy(N(self)->edges); }
PyObject* node_get_where(PyObject* self, void*) {
  NodeObject* n = N(self);
  if (n->where == nullptr) Py_RETURN_NONE;
  PyObject* w = resolve_where(n->where);  // once: the resolved tuple replaces the lazy one
  if (w == nullptr) return nullptr;
  if (w != n->where) {
    untrack_private(w);  // as node_fill's: only the node holds it
    Py_SETREF(n->where, w);
  } else {
    Py_DECREF(w);
  }
  return private_copy(n->where);
}
NODE_FIELD(pre_hooks)
NODE_FIELD(post_hooks)
NODE_FIELD(retained)

PyObject* node_get_seq(PyObject* self, void*) { return PyLong_FromLongLong(N(self)->seq); }
PyObject* node_get_released(PyObject* self, void*) { return PyBool_FromLong(N(self)->released); }

PyObject* node_get_out_version(PyObject* self, void*) {  // (box, version at record time) or None
  NodeObject* n = N(self);
  if (n->out_box == nullptr || n->out_box == Py_None) Py_RETURN_NONE;
  return pair(n->out_box, n->out_ver);
}

bool node_writable(NodeObject* n, PyObject* v, const char* name) {
  if (v == nullptr) {
    PyErr_Format(PyExc_AttributeError, "can't delete a Node's %s", name);
    return false;
  }
  if (!n->ready) {
    PyErr_SetString(PyExc_TypeError, "this Node was not initialised");
    return false;
  }
  return true;
}

// An in-place op that overwrote a node's saved output points the node at the new output.
int node_set_out_version(PyObject* self, PyObject* v, void*) {
  NodeObject* n = N(self);
  if (!node_writable(n, v, "out_version")) return -1;
  if (v == Py_None) {
    replace(&n->out_box, Py_None);
    replace(&n->out_ver, Py_None);
    return 0;
  }
  if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) != 2 || !PyList_Check(PyTuple_GET_ITEM(v, 0)) ||
      PyList_GET_SIZE(PyTuple_GET_ITEM(v, 0)) < 1) {
    PyErr_SetString(PyExc_TypeError, "out_version must be (version box, version) or None");
    return -1;
  }
  replace(&n->out_box, PyTuple_GET_ITEM(v, 0));
  replace(&n->out_ver, PyTuple_GET_ITEM(v, 1));
  gc_store(self, n->out_box);
  gc_store(self, n->out_ver);
  return 0;
}

int node_set_out_data(PyObject* self, PyObject* v, void*) {
  NodeObject* n = N(self);
  if (!node_writable(n, v, "out_data")) return -1;
  replace(&n->out_data, v);
  n->out_packed = false;  // an array put in place of the packed output (an in-place write's rebase)
  gc_store(self, v);
  return 0;
}

int node_set_pre_hooks(PyObject* self, PyObject* v, void*) {
  NodeObject* n = N(self);
  if (!node_writable(n, v, "pre_hooks")) return -1;
  if (v != Py_None && !PyDict_Check(v)) {
    PyErr_SetString(PyExc_TypeError, "a Node's pre_hooks must be a dict or None");
    return -1;
  }
  replace(&n->pre_hooks, v);
  gc_store(self, v);
  return 0;
}

int node_set_post_hooks(PyObject* self, PyObject* v, void*) {
  NodeObject* n = N(self);
  if (!node_writable(n, v, "post_hooks")) return -1;
  if (v != Py_None && !PyDict_Check(v)) {
    PyErr_SetString(PyExc_TypeError, "a Node's post_hooks must be a dict or None");
    return -1;
  }
  replace(&n->post_hooks, v);
  gc_store(self, v);
  return 0;
}

int node_set_retained(PyObject* self, PyObject* v, void*) {
  NodeObject* n = N(self);
  if (!node_writable(n, v, "retained")) return -1;
  if (v != Py_None && !PyCallable_Check(v)) {
    PyErr_SetString(PyExc_TypeError, "a Node's retained must be a weak reference or None");
    return -1;
  }
  replace(&n->retained, v);
  gc_store(self, v);
  return 0;
}

PyGetSetDef node_getset[] = {
    {"op", node_get_op, nullptr, "the Op applied", nullptr},
    {"attrs", node_get_attrs, nullptr, "the op's keyword arguments", nullptr},
    {"saved", node_get_saved, nullptr, "the inputs kept for the VJPs (None where not kept; None once freed)", nullptr},
    {"versions", node_get_versions, nullptr, "the inputs' versions at record time", nullptr},
    {"out_data", node_get_out_data, node_set_out_data, "the output array, when the VJPs read it", nullptr},
    {"out_version", node_get_out_version, node_set_out_version, "(output's version box, version) or None",
     nullptr},
    {"aux", node_get_aux, nullptr, "the forward's auxiliary result", nullptr},
    {"edges", node_get_edges, nullptr, "per input: the producing Node, the leaf tensor, or None (fixed)", nullptr},
    {"meta", node_get_meta, nullptr, "per input: (shape, dtype)", nullptr},
    {"out_meta", node_get_out_meta, nullptr, "(shape, dtype) of the output", nullptr},
    {"where", node_get_where, nullptr, "(filename, line) of the code that recorded it", nullptr},
    {"seq", node_get_seq, nullptr, "recording order", nullptr},
    {"released", node_get_released, nullptr, "whether backward freed what it saved", nullptr},
    {"pre_hooks", node_get_pre_hooks, node_set_pre_hooks, "hooks of the tensor this node produced", nullptr},
    {"post_hooks", node_get_post_hooks, node_set_post_hooks,
     "hooks called with (grad_inputs, grad_outputs) after the node's VJPs ran", nullptr},
    {"retained", node_get_retained, node_set_retained, "weakref to the tensor that retains its grad", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

PyTypeObject NodeType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// ============================================================ Meta
namespace {

struct MetaObject {
  PyObject_HEAD
  PyObject* shape;
  PyObject* dtype;
};

PyObject* meta_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"shape", "dtype", nullptr};
  PyObject *shape, *dtype;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO", const_cast<char**>(kw), &shape, &dtype)) return nullptr;
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) return nullptr;
  auto* m = reinterpret_cast<MetaObject*>(self);
  m->shape = Py_NewRef(shape);
  m->dtype = Py_NewRef(dtype);
  return self;
}

void meta_dealloc(PyObject* self) {
  auto* m = reinterpret_cast<MetaObject*>(self);
  Py_CLEAR(m->shape);
  Py_CLEAR(m->dtype);
  Py_TYPE(self)->tp_free(self);
}

PyObject* meta_ndim(PyObject* self, void*) {
  Py_ssize_t n = PyObject_Length(reinterpret_cast<MetaObject*>(self)->shape);
  return n < 0 ? nullptr : PyLong_FromSsize_t(n);
}

PyMemberDef meta_members[] = {
    {"shape", T_OBJECT, offsetof(MetaObject, shape), READONLY, nullptr},
    {"dtype", T_OBJECT, offsetof(MetaObject, dtype), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyGetSetDef meta_getset[] = {{"ndim", meta_ndim, nullptr, nullptr, nullptr},
                             {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

PyTypeObject MetaType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// ============================================================ grad mode
namespace {

PyTypeObject GradStateType = {PyVarObject_HEAD_INIT(nullptr, 0)};

template <bool Modes::*F>
PyObject* mode_get(PyObject*, void*) { return PyBool_FromLong(modes().*F); }

template <bool Modes::*F>
int mode_set(PyObject*, PyObject* v, void*) {
  if (v == nullptr) {
    PyErr_SetString(PyExc_AttributeError, "can't delete a mode");
    return -1;
  }
  int b = PyObject_IsTrue(v);
  if (b < 0) return -1;
  modes().*F = b;
  return 0;
}

PyGetSetDef state_getset[] = {
    {"enabled", mode_get<&Modes::grad_enabled>, mode_set<&Modes::grad_enabled>,
     "whether ops record onto the tape (this thread)", nullptr},
    {"check_nan", mode_get<&Modes::check_nan>, mode_set<&Modes::check_nan>,
     "whether backward refuses NaN gradients (this thread)", nullptr},
    {"anomaly", mode_get<&Modes::anomaly>, mode_set<&Modes::anomaly>, "anomaly detection (this thread)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyObject* is_grad_enabled(PyObject*, PyObject*) { return PyBool_FromLong(modes().grad_enabled); }

PyObject* set_tensor_class(PyObject*, PyObject* cls) {
  if (!PyType_Check(cls) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls), &TensorBaseType)) {
    PyErr_SetString(PyExc_TypeError, "_set_tensor_class: expected a subclass of TensorBase");
    return nullptr;
  }
  // tapegrad's directory (frames inside it are not the user's): the class's module's package
  Ref modname(PyObject_GetAttrString(cls, "__module__"));
  if (!modname) return nullptr;
  Ref module(PyImport_GetModule(modname.get()));
  if (!module) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "_set_tensor_class: the class's module is not loaded");
    return nullptr;
  }
  Ref file(PyObject_GetAttrString(module.get(), "__file__"));
  if (!file) return nullptr;
  Ref os_path(PyImport_ImportModule("os.path"));
  if (!os_path) return nullptr;
  Ref dir(PyObject_CallMethod(os_path.get(), "dirname", "O", file.get()));
  if (!dir) return nullptr;
  Py_XSETREF(pkg_dir, dir.release());
  Py_INCREF(cls);
  Py_XSETREF(tensor_class, reinterpret_cast<PyTypeObject*>(cls));
  Py_RETURN_NONE;
}

// Stores the class `cls` (a subclass of `base`) that tensor.py / registry.py registers in `slot`.
bool set_tuple_class(PyObject** slot, PyObject* cls, const char* what, PyTypeObject* base = &PyTuple_Type) {
  if (!PyType_Check(cls) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls), base)) {
    PyErr_Format(PyExc_TypeError, "%s: expected a subclass of %s", what, base->tp_name);
    return false;
  }
  Py_INCREF(cls);
  Py_XSETREF(*slot, cls);
  return true;
}
PyObject* set_slice_grad_class(PyObject*, PyObject* cls) {
  if (!set_tuple_class(&slice_grad_class, cls, "_set_slice_grad_class")) return nullptr;
  Py_RETURN_NONE;
}
PyObject* set_zeroed_grad_class(PyObject*, PyObject* cls) {
  if (!set_tuple_class(&zeroed_grad_class, cls, "_set_zeroed_grad_class")) return nullptr;
  Py_RETURN_NONE;
}

PyObject* set_view_regenerator(PyObject*, PyObject* fn) {
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "_set_view_regenerator: expected a callable");
    return nullptr;
  }
  Py_INCREF(fn);
  Py_XSETREF(view_regenerator, fn);
  Py_RETURN_NONE;
}

PyObject* set_attribute_store(PyObject*, PyObject* fns) {
  if (!PyTuple_Check(fns) || PyTuple_GET_SIZE(fns) != 3 || !PyCallable_Check(PyTuple_GET_ITEM(fns, 0)) ||
      !PyCallable_Check(PyTuple_GET_ITEM(fns, 1)) || !PyCallable_Check(PyTuple_GET_ITEM(fns, 2))) {
    PyErr_SetString(PyExc_TypeError, "_set_attribute_store: expected a tuple (get, set, delete) of callables");
    return nullptr;
  }
  Py_INCREF(fns);
  Py_XSETREF(attribute_store, fns);
  Py_RETURN_NONE;
}

PyObject* set_size_class(PyObject*, PyObject* cls) {
  if (!set_tuple_class(&size_class, cls, "_set_size_class", &SizeBaseType)) return nullptr;
  Py_RETURN_NONE;
}

// _set_dtype_map(table, fallback): table maps numpy dtypes to tapegrad.dtype objects (kept for
// the process: the interned objects never die), fallback(descr) answers any other descr.
PyObject* set_dtype_map(PyObject*, PyObject* args) {
  PyObject *table, *fallback;
  if (!PyArg_ParseTuple(args, "O!O:_set_dtype_map", &PyDict_Type, &table, &fallback)) return nullptr;
  if (!PyCallable_Check(fallback)) {
    PyErr_SetString(PyExc_TypeError, "_set_dtype_map: fallback must be callable");
    return nullptr;
  }
  std::vector<std::pair<PyObject*, PyObject*>> entries;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(table, &pos, &key, &value)) entries.emplace_back(Py_NewRef(key), Py_NewRef(value));
  for (auto& [k, v] : dtype_table) {
    Py_DECREF(k);
    Py_DECREF(v);
  }
  dtype_table = std::move(entries);
  Py_INCREF(fallback);
  Py_XSETREF(dtype_fallback, fallback);
  Py_RETURN_NONE;
}

PyObject* set_post_hook_runner(PyObject*, PyObject* fn) {
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "_set_post_hook_runner: expected a callable");
    return nullptr;
  }
  Py_INCREF(fn);
  Py_XSETREF(post_hook_runner, fn);
  Py_RETURN_NONE;
}

PyObject* next_sequence_nr(PyObject*, PyObject*) { return PyLong_FromLongLong(next_seq()); }

PyObject* py_user_frame(PyObject*, PyObject*) { return user_frame(); }

// _module_scope(module or weakref or None) -> the previous scope (a weakref, or None): sets the
// module whose forward runs in this thread. Module.__call__ sets it and puts the previous back
// in a finally, so the scope nests with the calls. A weak reference: a node must not keep a
// module alive or make a cycle through a module that holds a tensor.
PyObject* module_scope(PyObject*, PyObject* obj) {
  PyObject* next = nullptr;
  if (obj == Py_None) {
    next = nullptr;
  } else if (PyWeakref_CheckRef(obj)) {
    next = Py_NewRef(obj);
  } else {
    next = PyWeakref_NewRef(obj, nullptr);
    if (next == nullptr) return nullptr;
  }
  PyObject* prev = modes().scope;
  modes().scope = next;
  return prev != nullptr ? prev : Py_NewRef(Py_None);
}

// _saved_tensors_hooks((pack, unpack) or None) -> the previous pair, or None: the hooks that
// node_fill applies in this thread (autograd.graph.saved_tensors_hooks nests them in a finally).
PyObject* saved_tensors_hooks(PyObject*, PyObject* obj) {
  if (obj != Py_None && !(PyTuple_CheckExact(obj) && PyTuple_GET_SIZE(obj) == 2 &&
                          PyCallable_Check(PyTuple_GET_ITEM(obj, 0)) && PyCallable_Check(PyTuple_GET_ITEM(obj, 1)))) {
    PyErr_SetString(PyExc_TypeError, "saved_tensors_hooks: expected (pack_hook, unpack_hook), two callables, or None");
    return nullptr;
  }
  PyObject* prev = modes().saved_hooks;
  modes().saved_hooks = obj == Py_None ? nullptr : Py_NewRef(obj);
  return prev != nullptr ? prev : Py_NewRef(Py_None);
}

PyObject* py_wrap(PyObject*, PyObject* arr) {
  if (tensor_class == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "tapegrad: the Tensor class is not set (_C._set_tensor_class)");
    return nullptr;
  }
  return tensor_wrap_method(reinterpret_cast<PyObject*>(tensor_class), arr);
}

// _parallel_binary(ufunc, a, b): elementwise.h's parallel_binary, or None where it leaves the case to numpy.
PyObject* py_parallel_binary(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "_parallel_binary(ufunc, a, b)");
    return nullptr;
  }
  PyObject* out = parallel_binary(args[0], args[1], args[2]);
  return out != nullptr || PyErr_Occurred() ? out : Py_NewRef(Py_None);
}

// _parallel_unary(ufunc, a): elementwise.h's parallel_unary, or None where it leaves the case to numpy.
PyObject* py_parallel_unary(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_parallel_unary(ufunc, a)");
    return nullptr;
  }
  PyObject* out = parallel_unary(args[0], args[1]);
  return out != nullptr || PyErr_Occurred() ? out : Py_NewRef(Py_None);
}

// _parallel_ufunc(ufunc, *arrays): elementwise.h's parallel_ufunc, or None where it leaves the case to numpy.
PyObject* py_parallel_ufunc(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 2 || nargs > 4) {
    PyErr_SetString(PyExc_TypeError, "_parallel_ufunc(ufunc, *arrays) takes 1 to 3 arrays");
    return nullptr;
  }
  PyObject* out = parallel_ufunc(args[0], args + 1, int(nargs - 1));
  return out != nullptr || PyErr_Occurred() ? out : Py_NewRef(Py_None);
}

// _full(shape, dtype, value): elementwise.h's parallel_full, or None where numpy should make it.
PyObject* py_full(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "_full(shape, dtype, value)");
    return nullptr;
  }
  const double value = PyFloat_AsDouble(args[2]);
  if (value == -1.0 && PyErr_Occurred()) return nullptr;
  PyObject* out = parallel_full(args[0], args[1], value);
  return out != nullptr || PyErr_Occurred() ? out : Py_NewRef(Py_None);
}

// _copy(a): elementwise.h's parallel_copy, or None where numpy should copy it.
PyObject* py_copy(PyObject*, PyObject* a) {
  PyObject* out = parallel_copy(a);
  return out != nullptr || PyErr_Occurred() ? out : Py_NewRef(Py_None);
}

// _copy_into(a, b): elementwise.h's copy_in_place; False where it leaves the case to numpy.
PyObject* py_copy_into(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_copy_into(a, b)");
    return nullptr;
  }
  return PyBool_FromLong(copy_in_place(args[0], args[1]));
}

// _add_in_place(a, b): elementwise.h's add_in_place; False where it leaves the case to numpy.
PyObject* py_add_in_place(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_add_in_place(a, b)");
    return nullptr;
  }
  const int done = add_in_place(args[0], args[1]);
  return done < 0 ? nullptr : PyBool_FromLong(done);
}

// ---- shapes and views for the ops' Python (ops/shape.py): argument forms and a view built in C
// numpy's C API, two functions of it (their slots in numpy's ABI-stable table, as pybind11 reads
// them), fetched at import; null where that fails, and the callers then go numpy's way in Python.
using NewFromDescr = PyObject* (*)(PyTypeObject*, PyObject*, int, const Py_ssize_t*, const Py_ssize_t*, void*, int,
                                   PyObject*);
using SetBaseObject = int (*)(PyObject*, PyObject*);
NewFromDescr np_new_from_descr = nullptr;
SetBaseObject np_set_base = nullptr;

void load_numpy_api() {
  Ref mod(PyImport_ImportModule("numpy._core.multiarray"));
  if (!mod) {
    PyErr_Clear();
    mod.reset(PyImport_ImportModule("numpy.core.multiarray"));
  }
  Ref cap(mod ? PyObject_GetAttrString(mod.get(), "_ARRAY_API") : nullptr);
  void** api = cap && PyCapsule_CheckExact(cap.get()) ? static_cast<void**>(PyCapsule_GetPointer(cap.get(), nullptr))
                                                       : nullptr;
  if (api != nullptr) {
    np_new_from_descr = reinterpret_cast<NewFromDescr>(api[94]);  // PyArray_NewFromDescr
    np_set_base = reinterpret_cast<SetBaseObject>(api[282]);      // PyArray_SetBaseObject
  }
  PyErr_Clear();
}

// The sizes in a varargs size argument (x.view(2, 3), x.view((2, 3)), x.expand([2, 3]),
// x.reshape(x.shape)): a plain tuple of exact ints (`args` itself when it is one), or null
// without an error for any other form, which the Python path then parses or refuses.
PyObject* sizes_of(PyObject* args) {
  if (!PyTuple_Check(args)) return nullptr;
  PyObject* seq = args;
  if (PyTuple_GET_SIZE(args) == 1) {
    PyObject* only = PyTuple_GET_ITEM(args, 0);
    if (PyTuple_Check(only) || PyList_CheckExact(only)) seq = only;
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject** items = PySequence_Fast_ITEMS(seq);
  for (Py_ssize_t i = 0; i < n; ++i)
    if (!PyLong_CheckExact(items[i])) return nullptr;  // (bool, numpy ints, tensors: the Python path)
  if (PyTuple_CheckExact(seq)) return Py_NewRef(seq);
  PyObject* out = PyTuple_New(n);
  if (out == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(out, i, Py_NewRef(items[i]));
  return out;
}

// _sizes(args): sizes_of, None for another form.
PyObject* py_sizes(PyObject*, PyObject* args) {
  PyObject* r = sizes_of(args);
  return r != nullptr ? r : Py_NewRef(Py_None);
}

// _view_shape(args, arr): the shape that x.view(*args) / x.reshape(*args) asks of the exact
// ndarray arr, one -1 resolved; None for any other form or a shape arr's elements do not fill
// (the Python path then says what is wrong).
PyObject* py_view_shape(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !is_exact_ndarray(args[1])) return Py_NewRef(Py_None);
  Ref shape(sizes_of(args[0]));
  if (!shape) return Py_NewRef(Py_None);
  ArrayHead* a = array_head(args[1]);
  Py_ssize_t numel = 1, known = 1, infer = -1;
  for (int i = 0; i < a->nd; ++i) numel *= a->dims[i];
  const Py_ssize_t n = PyTuple_GET_SIZE(shape.get());
  for (Py_ssize_t i = 0; i < n; ++i) {
    int overflow = 0;
    const long long s = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(shape.get(), i), &overflow);
    if (overflow || s < -1 || (s == -1 && infer >= 0) || (s > 0 && known > PY_SSIZE_T_MAX / s)) {
      return Py_NewRef(Py_None);
    }
    if (s == -1) infer = i;
    else known *= s;
  }
  if (infer < 0) return known == numel ? shape.release() : Py_NewRef(Py_None);
  if (known == 0 || numel % known) return Py_NewRef(Py_None);
  PyObject* out = PyTuple_New(n);
  if (out == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = i == infer ? PyLong_FromSsize_t(numel / known) : Py_NewRef(PyTuple_GET_ITEM(shape.get(), i));
    if (item == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    PyTuple_SET_ITEM(out, i, item);
  }
  return out;
}

// _expand_view(x, shape, writeable): x (an exact ndarray) broadcast to `shape` (a tuple of
// non-negative ints, x's dims aligned to its end): a view of x's memory with stride 0 on the
// broadcast dims, what numpy's broadcast_to makes in ~2 us of Python (every expand, every sum's
// backward). Read-only, as numpy's, unless `writeable` and nothing repeats (the same shape, or only
// dims of size 1 added: expand's views are then writable, as PyTorch's) and x is. None where
// numpy's C API is not at hand or x does not broadcast so (the caller's numpy path says why).
PyObject* py_expand_view(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "_expand_view(x, shape, writeable)");
    return nullptr;
  }
  PyObject *x = args[0], *shape = args[1];
  if (np_new_from_descr == nullptr || !is_exact_ndarray(x) || !PyTuple_CheckExact(shape)) return Py_NewRef(Py_None);
  ArrayHead* a = array_head(x);
  const Py_ssize_t n = PyTuple_GET_SIZE(shape), k = a->nd;
  if (n < k || n > 64) return Py_NewRef(Py_None);
  Py_ssize_t dims[64], strides[64], size = 1, xsize = 1;
  bool same = n == k;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PyTuple_GET_ITEM(shape, i);
    if (!PyLong_CheckExact(item)) return Py_NewRef(Py_None);
    const Py_ssize_t t = PyLong_AsSsize_t(item);
    if (t < 0) {
      PyErr_Clear();
      return Py_NewRef(Py_None);
    }
    dims[i] = t;
    size *= t;
    const Py_ssize_t j = i - (n - k);  // x's dim here, or < 0 for a new leading dim
    if (j < 0) {
      strides[i] = 0;
      continue;
    }
    const Py_ssize_t s = a->dims[j];
    xsize *= s;
    if (s == t) strides[i] = a->strides[j];
    else if (s == 1) strides[i] = 0, same = false;
    else return Py_NewRef(Py_None);
  }
  const int writeable_bit = kArrayWriteable;
  const bool writeable = PyObject_IsTrue(args[2]) == 1 && (a->flags & kArrayWriteable) &&
                         (same || (xsize > 0 && size == xsize));
  PyObject* descr = a->descr;
  Py_INCREF(descr);  // (stolen by NewFromDescr)
  PyObject* v = np_new_from_descr(Py_TYPE(x), descr, int(n), dims, strides, a->data, writeable ? writeable_bit : 0,
                                  nullptr);
  if (v == nullptr) return nullptr;
  if (np_set_base(v, Py_NewRef(x)) < 0) {  // (steals the reference)
    Py_DECREF(v);
    return nullptr;
  }
  return v;
}

PyMethodDef methods[] = {
    {"apply", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(apply)), METH_FASTCALL | METH_KEYWORDS,
     "apply(op, *tensors, **attrs): run an op and record it when grad mode is on"},
    {"run_backward", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(run_backward)),
     METH_FASTCALL | METH_KEYWORDS,
     "run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, accumulate=True)"},
    {"is_grad_enabled", is_grad_enabled, METH_NOARGS, "True when ops record onto the tape (in this thread)"},
    {"_set_profile_hook", set_profile_hook, METH_O,
     "_set_profile_hook(hook or None): hook(name, start_ns, end_ns, arrays or None) after each op and backward node; "
     "returns the previous hook"},
    {"_fork_prepare", fork_prepare, METH_NOARGS, "before fork(): wait for other threads' backward passes"},
    {"_fork_parent", fork_parent, METH_NOARGS, "after fork(), in the parent: passes may start again"},
    {"_fork_child", fork_child, METH_NOARGS, "after fork(), in the child: only this thread's passes remain"},
    {"_backward_passes", backward_passes, METH_NOARGS, "(backward passes running, forks waiting or under way)"},
    {"_current_graph_task_id", current_graph_task_id, METH_NOARGS,
     "the id of the backward pass running in this thread (the innermost), -1 outside one"},
    {"_will_engine_execute_node", will_engine_execute_node, METH_O,
     "whether this thread's running backward pass runs a Node or delivers to a leaf tensor"},
    {"_queue_callback", queue_callback, METH_O, "run fn() once this thread's running backward pass has run its graph"},
    {"_set_tensor_class", set_tensor_class, METH_O, "the Tensor class that apply and backward create"},
    {"_set_slice_grad_class", set_slice_grad_class, METH_O, "the class of a VJP's (index, piece) gradient"},
    {"_set_zeroed_grad_class", set_zeroed_grad_class, METH_O,
     "the class of a VJP's (g, zero_in_place(array), zeroed_copy(g)) gradient: g with a region zeroed"},
    {"_set_size_class", set_size_class, METH_O, "_set_size_class(Size): the class x.shape returns"},
    {"_set_dtype_map", set_dtype_map, METH_VARARGS,
     "_set_dtype_map(table, fallback): x.dtype is table[numpy dtype], else fallback(numpy dtype)"},
    {"_set_attribute_store", set_attribute_store, METH_O,
     "(get, set, delete): the side table of attributes set on tensors without a __dict__"},
    {"_set_post_hook_runner", set_post_hook_runner, METH_O,
     "fn(node, raw_grads, grad_output) -> grads: runs a node's post_hooks (Node.register_hook)"},
    {"_set_view_regenerator", set_view_regenerator, METH_O, "fn(view): a stale view's graph from its base's"},
    {"_next_sequence_nr", next_sequence_nr, METH_NOARGS, "the seq the next recorded node gets (and skip it)"},
    {"_wrap", py_wrap, METH_O, "a new tapegrad.Tensor leaf around an array (no copy)"},
    {"_user_frame", py_user_frame, METH_NOARGS, "(filename, line) of the first caller outside tapegrad"},
    {"_module_scope", module_scope, METH_O, "set the nn.Module running in this thread; returns the previous"},
    {"_saved_tensors_hooks", saved_tensors_hooks, METH_O,
     "set this thread's (pack_hook, unpack_hook) for saved tensors, or None; returns the previous"},
    {"_gc_stats", gc_stats, METH_NOARGS, "(tape objects out of the cycle collector, flushes so far)"},
    {"_parallel_binary", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_parallel_binary)),
     METH_FASTCALL, "_parallel_binary(ufunc, a, b): the kernel threads' a op b, or None where numpy computes it"},
    {"_parallel_unary", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_parallel_unary)),
     METH_FASTCALL, "_parallel_unary(ufunc, a): the kernel threads' op(a), or None where numpy computes it"},
    {"_binary_into", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(binary_into)), METH_FASTCALL,
     "_binary_into(op, a, b): a op= b (0 add, 1 subtract, 2 multiply, 3 true_divide), threads or numpy's ufunc"},
    {"_parallel_ufunc", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_parallel_ufunc)),
     METH_FASTCALL, "_parallel_ufunc(ufunc, *arrays): the kernel threads' ufunc(*arrays), or None where numpy computes it"},
    {"_full", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_full)), METH_FASTCALL,
     "_full(shape, dtype, value): a large float array filled on the kernel threads, or None where numpy makes it"},
    {"_copy", py_copy, METH_O, "_copy(a): a copy of a large float array made on the kernel threads, or None"},
    {"_copy_into", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_copy_into)), METH_FASTCALL,
     "_copy_into(a, b): a[...] = b on the kernel threads (large float arrays of one shape); False where numpy does it"},
    {"_inplace_arith", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(inplace_arith)), METH_FASTCALL,
     "_inplace_arith(op, self, other): self op= other when nothing records it (float arrays); True done, False not"},
    {"_copy_tensor", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(copy_tensor)), METH_FASTCALL,
     "_copy_tensor(self, src): self.copy_(src) when nothing records it (one dtype); True done, False not"},
    {"_join_arrays", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(join_arrays)), METH_FASTCALL,
     "_join_arrays(tensors, same_shape): cat's and stack's arrays when nothing records and they join plainly, else None"},
    {"_sizes", py_sizes, METH_O,
     "_sizes(args): a varargs size argument (ints, or one tuple or list of them) as a tuple of ints, else None"},
    {"_view_shape", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_view_shape)), METH_FASTCALL,
     "_view_shape(args, arr): the shape view(*args) asks of arr, -1 resolved; None where the Python path decides"},
    {"_expand_view", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_expand_view)), METH_FASTCALL,
     "_expand_view(x, shape, writeable): x broadcast to shape as a view (stride 0 on new dims), or None"},
    {"_add_in_place", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_add_in_place)),
     METH_FASTCALL, "_add_in_place(a, b): the backward pass's a += b; False where numpy does it"},
    {nullptr, nullptr, 0, nullptr}};

bool ready_type(PyTypeObject* t, PyObject* module, const char* name) {
  if (PyType_Ready(t) < 0) return false;
  Py_INCREF(t);
  if (PyModule_AddObject(module, name, reinterpret_cast<PyObject*>(t)) < 0) {
    Py_DECREF(t);
    return false;
  }
  return true;
}

}  // namespace

int add_to_module(PyObject* module) {
  {
    Ref np(PyImport_ImportModule("numpy"));
    if (!np) return -1;
    ndarray_type = PyObject_GetAttrString(np.get(), "ndarray");
    np_asarray = PyObject_GetAttrString(np.get(), "asarray");
    if (ndarray_type == nullptr || np_asarray == nullptr) return -1;
    load_numpy_api();
  }
  TensorBaseType.tp_name = "tapegrad._C.TensorBase";
  TensorBaseType.tp_doc = "The fields of a tensor that the tape reads and writes (tapegrad.Tensor subclasses it).";
  TensorBaseType.tp_basicsize = sizeof(TensorObject);
  TensorBaseType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC;
  TensorBaseType.tp_new = tensor_new;
  TensorBaseType.tp_dealloc = tensor_dealloc;
  TensorBaseType.tp_traverse = tensor_traverse;
  TensorBaseType.tp_clear = tensor_clear;
  TensorBaseType.tp_getset = tensor_getset;
  TensorBaseType.tp_getattro = tensor_getattro;
  TensorBaseType.tp_setattro = tensor_setattro;
  TensorBaseType.tp_methods = tensor_methods;
  TensorBaseType.tp_weaklistoffset = offsetof(TensorObject, weakreflist);

  OpType.tp_name = "tapegrad._C.Op";
  OpType.tp_doc = "An entry of the op table: forward, VJPs and what the tape keeps for them.";
  OpType.tp_basicsize = sizeof(OpObject);
  OpType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC;
  OpType.tp_new = PyType_GenericNew;
  OpType.tp_init = op_init;
  OpType.tp_dealloc = op_dealloc;
  OpType.tp_traverse = op_traverse;
  OpType.tp_clear = op_clear;
  OpType.tp_getset = op_getset;

  NodeType.tp_name = "tapegrad._C.Node";
  NodeType.tp_doc = "One recorded op application: what its VJPs need and where its gradients go.";
  NodeType.tp_basicsize = sizeof(NodeObject);
  NodeType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC;
  NodeType.tp_new = PyType_GenericNew;
  NodeType.tp_init = node_init;
  NodeType.tp_dealloc = node_dealloc;
  NodeType.tp_traverse = node_traverse;
  NodeType.tp_clear = node_clear;
  NodeType.tp_getset = node_getset;
  NodeType.tp_weaklistoffset = offsetof(NodeObject, weakreflist);

  MetaType.tp_name = "tapegrad._C.Meta";
  MetaType.tp_doc = "Stands in for an input the op did not save: its VJPs may still read shape and dtype.";
  MetaType.tp_basicsize = sizeof(MetaObject);
  MetaType.tp_flags = Py_TPFLAGS_DEFAULT;
  MetaType.tp_new = meta_new;
  MetaType.tp_dealloc = meta_dealloc;
  MetaType.tp_members = meta_members;
  MetaType.tp_getset = meta_getset;

  SizeBaseType.tp_name = "tapegrad._C.SizeBase";
  SizeBaseType.tp_doc = "tuple, whose slices keep its class: the base of tapegrad.Size.";
  SizeBaseType.tp_base = &PyTuple_Type;
  SizeBaseType.tp_basicsize = PyTuple_Type.tp_basicsize;
  SizeBaseType.tp_itemsize = PyTuple_Type.tp_itemsize;
  SizeBaseType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE;
  SizeBaseType.tp_as_mapping = &size_as_mapping;

  GradStateType.tp_name = "tapegrad._C.GradState";
  GradStateType.tp_doc = "The calling thread's grad mode and anomaly mode (each thread has its own).";
  GradStateType.tp_basicsize = sizeof(PyObject);
  GradStateType.tp_flags = Py_TPFLAGS_DEFAULT;
  GradStateType.tp_getset = state_getset;

  if (!ready_type(&TensorBaseType, module, "TensorBase") || !ready_type(&OpType, module, "Op") ||
      !ready_type(&NodeType, module, "Node") || !ready_type(&MetaType, module, "Meta") ||
      !ready_type(&GradStateType, module, "GradState") || !ready_type(&SizeBaseType, module, "SizeBase"))
    return -1;
  PyObject* state = PyType_GenericAlloc(&GradStateType, 0);
  if (state == nullptr || PyModule_AddObject(module, "grad_state", state) < 0) {
    Py_XDECREF(state);
    return -1;
  }
  if (!engine_init()) return -1;
  return PyModule_AddFunctions(module, methods);
}

}  // namespace tapegrad::tape
