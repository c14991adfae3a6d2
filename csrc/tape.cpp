// The tape: recording an op (`apply`) and the backward pass (`run_backward`). tapegrad's one engine.
//
// What is recorded. `apply(op, *inputs, **attrs)` runs the op's numpy forward. When grad mode
// is on (per thread) and an input requires grad, it records a Node: per input an edge (the
// producing Node, the leaf tensor itself, or None where no gradient flows), the (shape, dtype)
// of each input, the inputs the op's VJPs read (`op.saves`) with their versions, and the
// output array when the VJPs read it. A node never references its output tensor, so tensors
// and the tape form no reference cycles. Edges are a tuple fixed at record time.
//
// How backward orders nodes. (1) From the roots (the outputs' nodes), an iterative walk counts,
// for every node and every leaf that will receive a gradient, how many edges point at it.
// (2) A node runs once all its consumers have reported (Kahn's algorithm; the ready list is a
// stack, so the walk is depth-first and never recursive). Running a node calls one VJP per
// edge with `(g, out, *saved, **attrs)`, reduces broadcast dimensions and casts to the input's
// dtype (once here, for every op), and reports the result along the edge: summed into the
// producing node's pending gradient, or into the leaf's. A consumer whose VJP gives no
// gradient still reports, so nothing waits for it. (3) A tensor's gradient is complete when its
// count reaches zero: only then do its hooks run, once, on the summed gradient (PyTorch's
// semantics), and then it is accumulated into `.grad` or returned (`autograd.grad`).
//
// When saved tensors are freed. A node drops what it saved as soon as it has run, unless
// `retain_graph`; running it again raises. Leaf gradients are accumulated after the node's own
// references are dropped, so a gradient nothing else holds becomes `.grad` without a copy.
//
// Threads. Grad mode is thread-local (backward switches it for its own thread only), and
// accumulation into a `.grad` holds that tensor's lock. The engine holds its own references to
// every node, edge tuple, saved tuple and gradient it uses, so no Python callback (hook, VJP,
// custom Function.backward) can free what it is reading.
#include "tape.h"

#include "elementwise.h"

#include <frameobject.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iterator>
#include <optional>
#include <thread>
#include <unordered_set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tapegrad::tape {
namespace {

PyObject *s_shape, *s_dtype, *s_sum_to_size, *s_to, *s_aux, *s_base, *s_size, *s_kind, *s_copy, *s_name, *s_real,
    *s_itemsize;
PyObject* np_isnan = nullptr;
PyObject* np_ones = nullptr;
PyObject* np_zeros = nullptr;
PyObject* np_add = nullptr;
PyObject* meta_cache = nullptr;  // (shape, dtype) -> Meta: stand-ins are immutable, so they are shared
PyObject* inside = nullptr;      // co_filename -> whether it is tapegrad's own code
PyObject* wide_dtypes[6] = {};   // numpy's own float64, float32, int64, int32, bool, complex128 dtypes
PyObject* np_errstate = nullptr; // numpy's floating-point error state (a ContextVar) ...
PyObject* np_quiet = nullptr;    // ... and its value inside np.errstate(all="ignore")

// numpy's floating-point warnings are off while an op's forward or VJP runs: log(0), 1/0, exp(100)
// in float32 give -inf, inf, inf without a RuntimeWarning, as PyTorch's ops do (and a script run
// with -W error does not stop on them). One ContextVar set per outermost op and per backward pass
// (~0.15 us), so it holds in this thread and this context only; the user's own numpy calls keep
// their np.seterr/np.errstate, in hooks and custom Functions' backward too (UserFloat).
thread_local PyObject* t_user_state = nullptr;  // what the innermost QuietFloat replaced (it owns it)
thread_local bool t_quiet = false;              // a QuietFloat holds, and no UserFloat inside it

class QuietFloat {
 public:
  QuietFloat() {
    if (np_errstate == nullptr || t_quiet) return;  // inside another op or a backward pass already
    PyObject* now = nullptr;
    if (PyContextVar_Get(np_errstate, nullptr, &now) < 0) { PyErr_Clear(); return; }
    token_ = PyContextVar_Set(np_errstate, np_quiet);
    if (token_ == nullptr) {
      PyErr_Clear();
      Py_XDECREF(now);
      return;
    }
    user_ = now;
    outer_ = t_user_state;
    t_user_state = user_;
    t_quiet = true;
  }
  ~QuietFloat() {
    if (token_ == nullptr) return;
    PyObject *type, *value, *tb;  // an op's exception stays the one reported
    PyErr_Fetch(&type, &value, &tb);
    if (PyContextVar_Reset(np_errstate, token_) < 0) PyErr_Clear();
    Py_DECREF(token_);
    t_user_state = outer_;
    t_quiet = false;
    Py_XDECREF(user_);
    PyErr_Restore(type, value, tb);
  }
  QuietFloat(const QuietFloat&) = delete;
  QuietFloat& operator=(const QuietFloat&) = delete;

 private:
  PyObject* token_ = nullptr;
  PyObject* user_ = nullptr;   // the state replaced (None: numpy's default)
  PyObject* outer_ = nullptr;
};

// Around user code called from inside a QuietFloat (a hook, a custom Function's backward): the
// user's numpy state back for its duration.
class UserFloat {
 public:
  UserFloat() {
    if (np_errstate == nullptr || !t_quiet || t_user_state == nullptr) return;
    token_ = PyContextVar_Set(np_errstate, t_user_state);
    if (token_ == nullptr) {
      PyErr_Clear();
      return;
    }
    t_quiet = false;  // ops inside the user's code switch it again
  }
  ~UserFloat() {
    if (token_ == nullptr) return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyContextVar_Reset(np_errstate, token_) < 0) PyErr_Clear();
    Py_DECREF(token_);
    t_quiet = true;
    PyErr_Restore(type, value, tb);
  }
  UserFloat(const UserFloat&) = delete;
  UserFloat& operator=(const UserFloat&) = delete;

 private:
  PyObject* token_ = nullptr;
};

// Whether descr is one of numpy's dtypes above (not 2 bytes wide): a pointer test where
// `arr.itemsize` makes an int per input of every op.
bool is_wide_dtype(PyObject* descr) {
  for (PyObject* d : wide_dtypes)
    if (d == descr) return true;
  return false;
}

const char* const kFreedMsg =
    "Trying to backward through the graph a second time (or to use saved tensors after they were freed). "
    "Saved intermediate values are freed when you call .backward() or autograd.grad(); specify "
    "retain_graph=True on the first call if you need to backward through the graph again.";

// The value in a version box (borrowed), or null with TypeError when the box was tampered with.
PyObject* version_value(PyObject* box) {
  if (!PyList_Check(box) || PyList_GET_SIZE(box) < 1) {
    PyErr_SetString(PyExc_TypeError, "a tensor's version box is not a one-element list");
    return nullptr;
  }
  return PyList_GET_ITEM(box, 0);
}

// Keeps the calling thread's grad mode as it was on entry, whatever happens in between.
class ModeGuard {
 public:
  explicit ModeGuard(bool enabled) : prev_(modes().grad_enabled) { modes().grad_enabled = enabled; }
  ~ModeGuard() { modes().grad_enabled = prev_; }
 private:
  bool prev_;
};

}  // namespace

// ============================================================ recording
// (code, byte offset) of the first frame outside tapegrad: where the user created a node; inside
// an nn.Module's forward, (code, offset, weakref to the module). Finding the line of an offset
// scans the code's line table, which every recorded op paid and few nodes are ever asked:
// resolve_where does it when someone asks.
PyObject* user_frame_lazy() {
  if (inside == nullptr || pkg_dir == nullptr) return Py_BuildValue("(si)", "?", 0);
  PyFrameObject* f = PyEval_GetFrame();  // borrowed: the Python function that called apply
  Py_XINCREF(f);
  while (f != nullptr) {
    PyCodeObject* code = PyFrame_GetCode(f);
    PyObject* name = code->co_filename;
    PyObject* own = PyDict_GetItemWithError(inside, name);
    int in_pkg;
    if (own != nullptr) {
      in_pkg = own == Py_True;
    } else {
      if (PyErr_Occurred()) { Py_DECREF(code); Py_DECREF(f); return nullptr; }
      in_pkg = PyUnicode_Tailmatch(name, pkg_dir, 0, PY_SSIZE_T_MAX, -1) > 0;
      if (PyDict_SetItem(inside, name, in_pkg ? Py_True : Py_False) < 0) { Py_DECREF(code); Py_DECREF(f); return nullptr; }
    }
    if (!in_pkg) {
      PyObject* scope = modes().scope;
      PyObject* c = reinterpret_cast<PyObject*>(code);
      int lasti = PyFrame_GetLasti(f);
      PyObject* offset = PyLong_FromLong(lasti);
      PyObject* res = offset != nullptr ? PyTuple_New(scope != nullptr ? 3 : 2) : nullptr;
      if (res != nullptr) {
        PyTuple_SET_ITEM(res, 0, c);  // the frame's reference to its code becomes the tuple's
        PyTuple_SET_ITEM(res, 1, offset);
        if (scope != nullptr) PyTuple_SET_ITEM(res, 2, Py_NewRef(scope));
      } else {
        Py_XDECREF(offset);
        Py_DECREF(code);
      }
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

// where as (filename, line[, module]): a lazy (code, offset[, module]) resolved, anything else as is.
PyObject* resolve_where(PyObject* where) {
  if (!PyTuple_CheckExact(where) || PyTuple_GET_SIZE(where) < 2 || !PyCode_Check(PyTuple_GET_ITEM(where, 0)))
    return Py_NewRef(where);
  auto* code = reinterpret_cast<PyCodeObject*>(PyTuple_GET_ITEM(where, 0));
  long lasti = PyLong_AsLong(PyTuple_GET_ITEM(where, 1));
  if (lasti == -1 && PyErr_Occurred()) return nullptr;
  int line = lasti < 0 ? code->co_firstlineno : PyCode_Addr2Line(code, static_cast<int>(lasti));
  Py_ssize_t n = PyTuple_GET_SIZE(where);
  PyObject* res = PyTuple_New(n);
  if (res == nullptr) return nullptr;
  PyTuple_SET_ITEM(res, 0, Py_NewRef(code->co_filename));
  PyObject* l = PyLong_FromLong(line);
  if (l == nullptr) { Py_DECREF(res); return nullptr; }
  PyTuple_SET_ITEM(res, 1, l);
  for (Py_ssize_t i = 2; i < n; ++i) PyTuple_SET_ITEM(res, i, Py_NewRef(PyTuple_GET_ITEM(where, i)));
  return res;
}

PyObject* user_frame() {
  Ref lazy(user_frame_lazy());
  return lazy ? resolve_where(lazy.get()) : nullptr;
}

namespace {

// numpy's words (e.g. broadcasting, or an allocation it could not make), said with the op and
// the shapes: a ValueError becomes a RuntimeError, a MemoryError stays one
void forward_failed(OpObject* op, PyObject* const* inputs, Py_ssize_t n, PyObject* as) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  Ref t(type), v(value), trace(tb);
  Ref shapes(PyUnicode_FromString(""));
  for (Py_ssize_t i = 0; shapes && i < n; ++i) {
    Ref shape(PyObject_GetAttr(T(inputs[i])->data, s_shape));
    if (!shape) return;
    Ref s(PyUnicode_FromFormat(i ? "%U, %S" : "%U%S", shapes.get(), shape.get()));
    shapes = std::move(s);
  }
  if (shapes) PyErr_Format(as, "%U: %S (input shapes %U)", op->name, v.get(), shapes.get());
}

}  // namespace

PyObject* binary_into(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const int op = nargs == 3 ? static_cast<int>(PyLong_AsLong(args[0])) : -1;
  PyObject* ufunc = binary_ufunc(op);
  if (ufunc == nullptr) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_binary_into(op in 0..3, a, b)");
    return nullptr;
  }
  QuietFloat quiet;
  if (binary_in_place(op, args[1], args[2]) == 0) {
    Ref call_args(PyTuple_Pack(3, args[1], args[2], args[1]));  // ufunc(a, b, a): a's the output
    if (!call_args) return nullptr;
    Ref r(PyObject_Call(ufunc, call_args.get(), nullptr));
    if (!r) return nullptr;
  }
  Py_RETURN_NONE;
}

// The profiler's hook (tapegrad/profiler): called as hook(name, start_ns, end_ns, arrays) after
// each op's forward (arrays: its inputs' numpy arrays) and after each backward node (arrays None),
// times on the monotonic clock of Python's time.perf_counter_ns. nullptr, the usual state, costs
// apply one load. Set and read under the GIL.
static PyObject* profile_hook = nullptr;

static int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// hook(name, t0, now, arrays or None); false with the hook's error set when it raised
static bool profile_event(PyObject* name, int64_t t0, PyObject* const* arrays, Py_ssize_t n) {
  const int64_t t1 = monotonic_ns();
  Ref hook = Ref::borrow(profile_hook);  // the hook may unset itself
  Ref tup(arrays ? PyTuple_New(n) : Py_NewRef(Py_None));
  if (!tup) return false;
  for (Py_ssize_t i = 0; arrays && i < n; ++i) PyTuple_SET_ITEM(tup.get(), i, Py_NewRef(arrays[i]));
  Ref a(PyLong_FromLongLong(t0)), b(PyLong_FromLongLong(t1));
  if (!a || !b) return false;
  PyObject* call[] = {name, a.get(), b.get(), tup.get()};
  Ref r(PyObject_Vectorcall(hook.get(), call, 4, nullptr));
  return bool(r);
}

// apply(op, *inputs, **attrs): run op on tensors; record a node when grad mode is on and an
// input requires grad.
PyObject* apply(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  if (tensor_class == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "tapegrad: the Tensor class is not set (_C._set_tensor_class)");
    return nullptr;
  }
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 1 || !PyObject_TypeCheck(args[0], &OpType) || !O(args[0])->ready) {
    PyErr_SetString(PyExc_TypeError, "apply(op, *tensors, **attrs): op must be an initialised Op");
    return nullptr;
  }
  Ref op_ref = Ref::borrow(args[0]);
  OpObject* op = O(args[0]);
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
    if (!is_tensor(inputs[i])) {
      PyErr_Format(PyExc_TypeError, "%U: input %zd must be a Tensor, got %s", op->name, i, Py_TYPE(inputs[i])->tp_name);
      return nullptr;
    }
    stack[1 + i] = T(inputs[i])->data;
  }
  for (Py_ssize_t k = 0; k < nkw; ++k) stack[1 + n + k] = args[nargs + k];
  // float16/bfloat16 inputs go to forward16 (it computes in float32 and rounds once); the test is
  // one attribute per input, so every other op pays ~20 ns instead of a Python wrapper's ~1 us
  PyObject* forward = op->forward;
  for (Py_ssize_t i = 0; op->forward16 != nullptr && i < n; ++i) {
    if (is_exact_ndarray(stack[1 + i]) && is_wide_dtype(array_head(stack[1 + i])->descr)) continue;
    Ref size(PyObject_GetAttr(stack[1 + i], s_itemsize));
    if (!size) return nullptr;
    if (PyLong_AsLong(size.get()) == 2) {
      forward = op->forward16;
      break;
    }
  }
  Ref out;
  const int64_t t0 = profile_hook != nullptr ? monotonic_ns() : 0;
  {
    std::optional<QuietFloat> quiet;
    if (!op->view) quiet.emplace();  // a view computes nothing
    // numpy's arithmetic ufuncs, negative, absolute and sqrt on large float arrays: on the kernel
    // threads (elementwise.h)
    if (n == 2 && nkw == 0 && forward == op->forward) out.reset(parallel_binary(forward, stack[1], stack[2]));
    else if (n == 1 && nkw == 0 && forward == op->forward) out.reset(parallel_unary(forward, stack[1]));
    if (!out && !PyErr_Occurred())
      out.reset(PyObject_Vectorcall(forward, stack + 1, n | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames));
  }
  if (!out) {
    if (PyErr_ExceptionMatches(PyExc_ValueError)) forward_failed(op, inputs, n, PyExc_RuntimeError);
    else if (PyErr_ExceptionMatches(PyExc_MemoryError)) forward_failed(op, inputs, n, PyExc_MemoryError);
    return nullptr;
  }
  if (profile_hook != nullptr && !profile_event(op->name, t0, stack + 1, n)) return nullptr;
  Ref aux = Ref::borrow(Py_None);
  if (op->aux) {
    if (!PyTuple_Check(out.get()) || PyTuple_GET_SIZE(out.get()) != 2) {
      PyErr_Format(PyExc_TypeError, "%U: a forward with aux must return (out, aux)", op->name);
      return nullptr;
    }
    aux = Ref::borrow(PyTuple_GET_ITEM(out.get(), 1));
    out = Ref::borrow(PyTuple_GET_ITEM(out.get(), 0));
  }
  if (!is_exact_ndarray(out.get())) {  // numpy returns scalars from 0-d computations
    out.reset(PyObject_CallOneArg(np_asarray, out.get()));
    if (!out) return nullptr;
  }
  Ref result(wrap_unsettled(out.get()));
  if (!result) return nullptr;
  TensorObject* r = T(result.get());
  if (op->view && n >= 1) {  // shares memory with input 0, so it shares its version counter
    TensorObject* base = T(inputs[0]);
    Py_SETREF(r->version, Py_NewRef(base->version));
    // its base: to record writes through it and to bring its graph up to date after writes
    // through the base. Not for views a VJP makes of temporaries (grad mode is off there): they
    // would keep the temporaries alive, and a gradient that is a view of one could then no
    // longer be taken over by .grad or summed into in place.
    if (base->requires_grad || modes().grad_enabled) {
      Py_SETREF(r->base, Py_NewRef(base->base == Py_None ? inputs[0] : base->base));
      r->view_version = version_count(r);
    }
  }
  bool record = modes().grad_enabled && op->differentiable;
  if (record) {
    bool any = false;
    for (Py_ssize_t i = 0; i < n; ++i) {  // all of them: a stale view's graph is brought up to date
      if (fresh_view(inputs[i]) < 0) return nullptr;
      any = any || T(inputs[i])->requires_grad;
    }
    record = any;
  }
  if (!record) {
    gc_settle(result.get());  // once its fields are final
    return result.release();
  }
  Ref attrs(PyDict_New());
  if (!attrs) return nullptr;
  for (Py_ssize_t k = 0; k < nkw; ++k)
    if (PyDict_SetItem(attrs.get(), PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) < 0) return nullptr;
  PyTypeObject* type = reinterpret_cast<PyTypeObject*>(op->node_type);
  Ref node(type->tp_alloc(type, 0));
  if (!node) return nullptr;
  if (!node_fill(N(node.get()), args[0], inputs, n, attrs.get(), out.get(), r->version, aux.get(), nullptr))
    return nullptr;
  gc_settle(node.get());
  r->requires_grad = true;
  Py_SETREF(r->grad_fn, node.release());
  gc_settle(result.get());  // after its node: nothing else refers to the result yet
  return result.release();
}

// _set_profile_hook(hook or None): install the profiler's hook; returns the one it replaces.
PyObject* set_profile_hook(PyObject*, PyObject* hook) {
  PyObject* old = profile_hook != nullptr ? profile_hook : Py_NewRef(Py_None);
  profile_hook = hook == Py_None ? nullptr : Py_NewRef(hook);
  return old;  // the reference profile_hook held, handed to the caller
}

// ============================================================ backward
namespace {

// Serialises accumulation into one tensor's .grad across threads. The lock is never waited
// for while holding the GIL (the holder may need the GIL to finish: numpy releases and
// retakes it inside `grad += g`), and a thread that already holds it gets an error, not a hang.
class GradLock {
 public:
  explicit GradLock(TensorObject* t) : t_(t) {}
  bool acquire() {
    unsigned long me = PyThread_get_thread_ident();
    if (pthread_mutex_trylock(&t_->grad_lock) != 0) {
      if (t_->lock_owner.load() == me) {
        PyErr_SetString(PyExc_RuntimeError,
                        "backward: accumulating into a tensor's .grad re-entered itself (a hook or __add__ "
                        "that runs backward into the same tensor?)");
        return false;
      }
      Py_BEGIN_ALLOW_THREADS
      pthread_mutex_lock(&t_->grad_lock);
      Py_END_ALLOW_THREADS
    }
    t_->lock_owner.store(me);
    held_ = true;
    return true;
  }
  ~GradLock() {
    if (held_) {
      t_->lock_owner.store(0);
      pthread_mutex_unlock(&t_->grad_lock);
    }
  }
 private:
  TensorObject* t_;
  bool held_ = false;
};

// Whether g can become a leaf's .grad as is: nothing else can see it or its memory (our
// reference is its only one). A gradient that is also an upstream gradient, a retained .grad,
// a hook's capture or a view of part of an array is copied instead, as PyTorch's
// AccumulateGrad steals only unshared buffers.
bool unshared_data(PyObject* d);
bool unshared(PyObject* g) {
  TensorObject* t = T(g);
  return Py_REFCNT(g) == 1 && t->grad_fn == Py_None && unshared_data(t->data);
}

// Whether nothing but its tensor holds array d or its memory: the tensor may then write it.
bool unshared_data(PyObject* d) {
  if (!is_exact_ndarray(d) || Py_REFCNT(d) != 1) return false;
  ArrayHead* h = array_head(d);
  if ((h->flags & (kArrayCContiguous | kArrayWriteable)) != (kArrayCContiguous | kArrayWriteable)) return false;
  PyObject* base = h->base;
  if (base == nullptr || base == Py_None) return true;
  // a reshape of a temporary that nothing else holds (held by d alone) is owned too
  if (!is_exact_ndarray(base) || Py_REFCNT(base) != 1) return false;
  ArrayHead* b = array_head(base);
  if (!(b->flags & kArrayCContiguous) || b->descr != h->descr || (b->base != nullptr && b->base != Py_None)) return false;
  Py_ssize_t n = 1, nb = 1;
  for (int k = 0; k < h->nd; ++k) n *= h->dims[k];
  for (int k = 0; k < b->nd; ++k) nb *= b->dims[k];
  return n == nb;  // all of it
}

bool bump_version(PyObject* t) {
  PyObject* v = version_value(T(t)->version);
  if (v == nullptr) return false;
  Ref one(PyLong_FromLong(1));
  if (!one) return false;
  PyObject* next = PyNumber_Add(v, one.get());
  if (next == nullptr) return false;
  return PyList_SetItem(T(t)->version, 0, next) == 0;
}

// Accumulate g into t.grad (a fresh tensor the first time: never an alias of another's).
bool accumulate_grad(PyObject* t, Ref g, bool create_graph) {
  TensorObject* tt = T(t);
  GradLock lock(tt);
  if (!lock.acquire()) return false;
  if (tt->grad == Py_None) {
    if (create_graph || unshared(g.get())) {
      Py_SETREF(tt->grad, g.release());
      gc_store(t, tt->grad);
      return true;
    }
    Ref copy(parallel_copy(T(g.get())->data));  // a large float one on the threads (elementwise.h)
    if (!copy && !PyErr_Occurred()) copy.reset(PyObject_CallMethodNoArgs(T(g.get())->data, s_copy));
    if (!copy) return false;
    PyObject* fresh = wrap(copy.get());
    if (fresh == nullptr) return false;
    Py_SETREF(tt->grad, fresh);
    gc_store(t, tt->grad);
    return true;
  }
  if (create_graph) {
    Ref prev = Ref::borrow(tt->grad);  // ours: __add__ runs Python code
    PyObject* sum = PyNumber_Add(prev.get(), g.get());
    if (sum == nullptr) return false;
    Py_SETREF(tt->grad, sum);
    gc_store(t, tt->grad);
    return true;
  }
  // in place, as PyTorch: references to .grad and its memory stay valid
  Ref grad = Ref::borrow(tt->grad);
  if (!is_tensor(grad.get())) {
    PyErr_SetString(PyExc_TypeError, "a tensor's .grad is not a Tensor");
    return false;
  }
  Ref d = Ref::borrow(T(grad.get())->data), gd = Ref::borrow(T(g.get())->data);  // numpy may release the GIL
  int added = add_in_place(d.get(), gd.get());  // a small or a large float sum (elementwise.h)
  if (added < 0) return false;
  if (added) return bump_version(grad.get());
  Ref size(PyObject_GetAttr(d.get(), s_size));
  if (!size) return false;
  if (PyLong_Check(size.get()) && PyLong_AsLong(size.get()) == 1) {
    // numpy's in-place ufuncs take a slow path on one element: 0.79 us vs 0.45 us
    Ref sum(PyNumber_Add(d.get(), gd.get()));
    if (!sum || PyObject_SetItem(d.get(), Py_Ellipsis, sum.get()) < 0) return false;
  } else {
    Ref r(PyNumber_InPlaceAdd(d.get(), gd.get()));
    if (!r) return false;
  }
  return bump_version(grad.get());
}

// Run a leaf's post-accumulate-grad hooks (PyTorch 2.1's): once per pass, after .grad was
// updated, outside the grad lock (a hook may read or replace .grad, as an optimizer step does).
bool run_post_hooks(PyObject* t) {
  PyObject* hooks = T(t)->post_hooks;
  if (!PyDict_Check(hooks) || PyDict_GET_SIZE(hooks) == 0) return true;
  Ref keep = Ref::borrow(t);
  Ref values(PyDict_Values(hooks));  // a snapshot: a hook may add or remove hooks
  if (!values) return false;
  for (Py_ssize_t k = 0; k < PyList_GET_SIZE(values.get()); ++k) {
    Ref r;
    {
      UserFloat user;
      r.reset(PyObject_CallOneArg(PyList_GET_ITEM(values.get(), k), t));
    }
    if (!r) return false;
    if (r.get() != Py_None) {
      PyErr_Format(PyExc_RuntimeError, "post accumulate grad hooks should return None, got %s", Py_TYPE(r.get())->tp_name);
      return false;
    }
  }
  return true;
}

PyObject* hook_name(PyObject* hook) {
  PyObject* name = PyObject_GetAttr(hook, s_name);
  if (name != nullptr && PyUnicode_Check(name)) return name;
  Py_XDECREF(name);
  PyErr_Clear();
  return PyObject_Repr(hook);
}

// Run a tensor's hooks (a dict {id: hook}, None, or empty) on its complete gradient; each may
// return a replacement of the same shape and dtype.
// tensor_only: skip the hooks a Node's register_prehook made (they carry `node_prehook`), for a
// node whose output gradient is captured but that does not run: PyTorch calls only the tensor's
// hooks there.
bool run_hooks(PyObject* hooks, Ref& g, bool tensor_only = false) {
  if (hooks == nullptr || !PyDict_Check(hooks) || PyDict_GET_SIZE(hooks) == 0) return true;
  Ref values(PyDict_Values(hooks));  // a snapshot: a hook may add or remove hooks
  if (!values) return false;
  for (Py_ssize_t k = 0; k < PyList_GET_SIZE(values.get()); ++k) {
    PyObject* hook = PyList_GET_ITEM(values.get(), k);
    if (tensor_only) {
      int marked = PyObject_HasAttrString(hook, "node_prehook");
      if (marked) continue;
    }
    Ref r;
    {
      UserFloat user;
      r.reset(PyObject_CallOneArg(hook, g.get()));
    }
    if (!r) return false;
    if (r.get() == Py_None) continue;
    if (!is_tensor(r.get())) {
      Ref name(hook_name(hook));
      PyErr_Format(PyExc_TypeError, "hook '%U' returned %s: expected a Tensor or None", name.get(),
                   Py_TYPE(r.get())->tp_name);
      return false;
    }
    Ref old_shape(PyObject_GetAttr(T(g.get())->data, s_shape)), new_shape(PyObject_GetAttr(T(r.get())->data, s_shape));
    if (!old_shape || !new_shape) return false;
    int same = PyObject_RichCompareBool(old_shape.get(), new_shape.get(), Py_EQ);
    if (same < 0) return false;
    if (!same) {
      Ref name(hook_name(hook));
      PyErr_Format(PyExc_RuntimeError, "hook '%U' has changed the size of value (from %S to %S)", name.get(),
                   old_shape.get(), new_shape.get());
      return false;
    }
    Ref old_dtype(PyObject_GetAttr(T(g.get())->data, s_dtype)), new_dtype(PyObject_GetAttr(T(r.get())->data, s_dtype));
    if (!old_dtype || !new_dtype) return false;
    same = old_dtype.get() == new_dtype.get() ? 1 : PyObject_RichCompareBool(old_dtype.get(), new_dtype.get(), Py_EQ);
    if (same < 0) return false;
    if (!same) {
      Ref name(hook_name(hook));
      PyErr_Format(PyExc_RuntimeError, "hook '%U' has changed the type of value (was %S, got %S)", name.get(),
                   old_dtype.get(), new_dtype.get());
      return false;
    }
    g = std::move(r);
  }
  return true;
}

// g_sum = g_sum + g (either may be the first): the tapegrad op, recorded when create_graph.
// Without create_graph nothing records, so two plain gradients of the same shape and dtype are
// summed by numpy directly (what the add op's forward does), without the op's Python dispatch.
bool add_into(PyObject** sum, PyObject* g) {  // steals g
  if (*sum == nullptr) {
    *sum = g;
    return true;
  }
  if (!modes().grad_enabled && Py_TYPE(*sum) == tensor_class && Py_TYPE(g) == tensor_class) {
    PyObject *a = T(*sum)->data, *b = T(g)->data;
    if (is_exact_ndarray(a) && is_exact_ndarray(b)) {
      ArrayHead *ha = array_head(a), *hb = array_head(b);
      bool same = ha->descr == hb->descr && ha->nd == hb->nd;
      for (int k = 0; same && k < ha->nd; ++k) same = ha->dims[k] == hb->dims[k];
      if (same && unshared(*sum)) {  // the pending sum is the engine's alone: add onto it, no new array
        const int done = add_in_place(a, b);  // a small or a large float sum (elementwise.h)
        Ref r(done != 0 ? nullptr : PyNumber_InPlaceAdd(a, b));
        Py_DECREF(g);
        return done == 1 || bool(r);
      }
      if (same) {
        Ref r(parallel_binary(np_add, a, b));
        if (!r && !PyErr_Occurred()) r.reset(PyNumber_Add(a, b));
        Py_DECREF(g);
        if (!r) return false;
        if (!is_exact_ndarray(r.get())) {  // numpy returns scalars from 0-d arrays
          r.reset(PyObject_CallOneArg(np_asarray, r.get()));
          if (!r) return false;
        }
        PyObject* t = wrap(r.get());
        if (t == nullptr) return false;
        Py_SETREF(*sum, t);
        return true;
      }
    }
  }
  PyObject* s = PyNumber_Add(*sum, g);
  Py_DECREF(g);
  if (s == nullptr) return false;
  Py_SETREF(*sum, s);
  return true;
}

// g_sum = g_sum + (zeros of shape and dtype with `piece` at `index`): a basic-indexing VJP's
// gradient (SliceGrad) without the full-size zeros where it can: written into a fresh array when
// it is the first to arrive, added into the slice of the pending sum when that is the engine's
// alone (split, unbind and q, k, v = qkv pieces of one tensor fill one array).
bool add_slice_into(PyObject** sum, PyObject* index, PyObject* piece, PyObject* shape, PyObject* dtype) {
  PyObject* pd = T(piece)->data;
  if (*sum != nullptr && unshared(*sum)) {
    PyObject* a = T(*sum)->data;
    ArrayHead* h = array_head(a);
    if (h->descr == dtype && same_shape(a, shape) == 1) {
      Ref cur(PyObject_GetItem(a, index));  // a view (a scalar for a single element)
      if (!cur) return false;
      if (const int done = add_in_place(cur.get(), pd); done != 0) return done == 1;
      Ref r(PyNumber_InPlaceAdd(cur.get(), pd));
      if (!r) return false;
      return r.get() == cur.get() && is_exact_ndarray(cur.get()) ? true : PyObject_SetItem(a, index, r.get()) == 0;
    }
  }
  Ref z(PyObject_CallFunctionObjArgs(np_zeros, shape, dtype, nullptr));
  if (!z || PyObject_SetItem(z.get(), index, pd) < 0) return false;
  PyObject* t = wrap(z.get());
  if (t == nullptr) return false;
  return add_into(sum, t);
}

bool refuse_nan(PyObject* node, Py_ssize_t i, PyObject* g) {  // anomaly mode
  PyObject* d = T(g)->data;
  Ref dtype(PyObject_GetAttr(d, s_dtype));
  if (!dtype) return false;
  Ref kind(PyObject_GetAttr(dtype.get(), s_kind));
  if (!kind) return false;
  if (PyUnicode_CompareWithASCIIString(kind.get(), "f") != 0 && PyUnicode_CompareWithASCIIString(kind.get(), "c") != 0)
    return true;
  Ref nan(PyObject_CallOneArg(np_isnan, d));
  if (!nan) return false;
  Ref any(PyObject_CallMethod(nan.get(), "any", nullptr));
  if (!any) return false;
  int has = PyObject_IsTrue(any.get());
  if (has <= 0) return has == 0;
  NodeObject* n = N(node);
  Ref name(PyType_GetName(Py_TYPE(node)));
  Ref where(resolve_where(n->where));  // ours: formatting may run a __repr__ that replaces it
  if (!where) return false;
  Ref op = Ref::borrow(n->op);
  PyObject* w = where.get();
  PyObject* file = PyTuple_Check(w) && PyTuple_GET_SIZE(w) >= 2 ? PyTuple_GET_ITEM(w, 0) : Py_None;
  PyObject* line = PyTuple_Check(w) && PyTuple_GET_SIZE(w) >= 2 ? PyTuple_GET_ITEM(w, 1) : Py_None;
  PyErr_Format(PyExc_RuntimeError, "Function '%S' returned nan values in its %zdth output (the %U was recorded at %S:%S).",
               name.get(), i, O(op.get())->name, file, line);
  return false;
}

struct NodeState {
  Py_ssize_t deps = 0;      // consumers still to report
  PyObject* grad = nullptr;  // summed upstream gradient (owned), null while none arrived
  bool needed = true;        // with inputs given: an input is reachable from here (mark_needed)
};
struct LeafState {
  Py_ssize_t deps = 0;
  PyObject* grad = nullptr;
};

// One backward pass. Everything it holds is an owned reference, released by the destructor.
struct Pass {
  long long id = -1;  // PyTorch's graph task id: one per pass, never reused (_current_graph_task_id)
  bool retain_graph, create_graph;
  bool all_leaves;  // every leaf gets its gradient accumulated (Tensor.backward without inputs)
  bool accumulate;  // into .grad (backward) or returned (autograd.grad)
  std::unordered_map<PyObject*, NodeState> nodes;
  std::unordered_map<PyObject*, LeafState> leaves;
  std::unordered_map<PyObject*, std::vector<Py_ssize_t>> wanted_leaf;  // input tensor -> its positions
  std::unordered_map<PyObject*, std::vector<Py_ssize_t>> wanted_node;  // grad_fn of a non-leaf input -> positions
  std::vector<PyObject*> inputs;   // owned
  std::vector<PyObject*> results;  // owned, per input (null: no gradient)
  std::vector<PyObject*> ready;    // owned
  std::vector<PyObject*> done_leaves;  // borrowed (keys of `leaves`)
  std::vector<PyObject*> callbacks;    // owned: _queue_callback's, run in order once the graph is done

  ~Pass() {
    for (PyObject* p : callbacks) Py_DECREF(p);
    for (auto& [k, s] : nodes) { Py_XDECREF(s.grad); Py_DECREF(k); }
    for (auto& [k, s] : leaves) { Py_XDECREF(s.grad); Py_DECREF(k); }
    for (PyObject* p : inputs) Py_DECREF(p);
    for (PyObject* p : results) Py_XDECREF(p);
    for (PyObject* p : ready) Py_DECREF(p);
  }

  bool tracked(PyObject* leaf) const { return all_leaves || wanted_leaf.count(leaf) > 0; }

  NodeState& node_state(PyObject* node, bool* fresh) {
    auto [it, inserted] = nodes.try_emplace(node);
    if (inserted) Py_INCREF(node);
    *fresh = inserted;
    return it->second;
  }

  LeafState& leaf_state(PyObject* leaf) {
    auto [it, inserted] = leaves.try_emplace(leaf);
    if (inserted) Py_INCREF(leaf);
    return it->second;
  }

  // Consumer counts of every node and tracked leaf reachable from the roots (iterative DFS).
  // A node is pushed the first time an edge reaches it; roots are in `nodes` already.
  // With inputs given (autograd.grad, backward(inputs=)): a node runs only when one of them is
  // reachable from it, as PyTorch's init_to_execute; the others pass no gradient on, so their
  // hooks don't run and no retained .grad is set. Iterative post-order over the counted graph.
  void mark_needed(const std::vector<PyObject*>& roots) {
    std::vector<std::pair<PyObject*, Py_ssize_t>> stack;  // (node, next edge)
    std::unordered_set<PyObject*> seen;
    for (PyObject* r : roots) {
      if (!seen.insert(r).second) continue;
      stack.emplace_back(r, 0);
      while (!stack.empty()) {
        PyObject* node = stack.back().first;
        PyObject* edges = N(node)->edges;
        Py_ssize_t k = stack.back().second;
        if (k < PyTuple_GET_SIZE(edges)) {
          ++stack.back().second;
          PyObject* e = PyTuple_GET_ITEM(edges, k);
          if (is_node(e) && seen.insert(e).second) stack.emplace_back(e, 0);
          continue;
        }
        // A non-leaf input of autograd.grad is captured when its gradient is complete, but its
        // node runs only when something below it is wanted (PyTorch's captures_ against needed_):
        // otherwise it would free the saved tensors a later autograd.grad through it still needs.
        // backward(inputs=) runs the node of a non-leaf input, as PyTorch's does.
        bool needed = accumulate && wanted_node.count(node) > 0;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(edges) && !needed; ++i) {
          PyObject* e = PyTuple_GET_ITEM(edges, i);
          if (e == Py_None) continue;
          needed = is_node(e) ? nodes[e].needed || wanted_node.count(e) > 0 : wanted_leaf.count(e) > 0;
        }
        nodes[node].needed = needed;
        stack.pop_back();
      }
    }
  }

  bool count(std::vector<PyObject*> stack) {
    while (!stack.empty()) {
      NodeObject* node = N(stack.back());
      stack.pop_back();
      if (!node->ready) {
        PyErr_SetString(PyExc_RuntimeError, "backward: reached a Node that was never initialised (or was cleared)");
        return false;
      }
      PyObject* edges = node->edges;
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(edges); ++i) {
        PyObject* e = PyTuple_GET_ITEM(edges, i);
        if (e == Py_None) continue;
        if (is_node(e)) {
          bool fresh;
          NodeState& s = node_state(e, &fresh);
          ++s.deps;
          if (fresh) stack.push_back(e);
        } else if (tracked(e)) {
          ++leaf_state(e).deps;
        }
      }
    }
    return true;
  }

  // Consumer reports gradient g (stolen; null: none) along edge e.
  bool report(PyObject* e, PyObject* g) {
    if (is_node(e)) {
      auto it = nodes.find(e);
      if (it == nodes.end()) {
        Py_XDECREF(g);
        PyErr_SetString(PyExc_RuntimeError, "backward: an edge leads outside the graph");
        return false;
      }
      if (g != nullptr && !add_into(&it->second.grad, g)) return false;
      if (--it->second.deps == 0) ready.push_back(Py_NewRef(e));
      return true;
    }
    auto it = leaves.find(e);
    if (it == leaves.end()) {  // a leaf this pass does not deliver to
      Py_XDECREF(g);
      return true;
    }
    if (g != nullptr && !add_into(&it->second.grad, g)) return false;
    if (--it->second.deps == 0) done_leaves.push_back(e);
    return true;
  }

  // Consumer reports a SliceGrad (index, piece) along edge e, for an input of shape and dtype.
  bool report_slice(PyObject* e, PyObject* sg, PyObject* shape, PyObject* dtype) {
    PyObject* index = PyTuple_GET_ITEM(sg, 0);
    PyObject* piece = PyTuple_GET_ITEM(sg, 1);
    if (!is_tensor(piece)) {
      PyErr_SetString(PyExc_TypeError, "a SliceGrad's gradient is not a Tensor");
      return false;
    }
    PyObject** sum = nullptr;
    if (is_node(e)) {
      auto it = nodes.find(e);
      if (it != nodes.end()) sum = &it->second.grad;
    } else {
      auto it = leaves.find(e);
      if (it != leaves.end()) sum = &it->second.grad;
    }
    if (sum != nullptr && !add_slice_into(sum, index, piece, shape, dtype)) return false;
    return report(e, nullptr);  // counts the report (and says what report says of a foreign edge)
  }

  // A tensor's gradient is complete: deliver it to the positions of `inputs` it is.
  bool deliver(const std::vector<Py_ssize_t>& positions, Ref& g) {
    for (Py_ssize_t k : positions) {
      if (accumulate) {
        if (!accumulate_grad(inputs[k], Ref::borrow(g.get()), create_graph)) return false;
        if (!run_post_hooks(inputs[k])) return false;
      } else {
        Py_XSETREF(results[k], Py_NewRef(g.get()));
      }
    }
    return true;
  }

  bool flush_leaf(PyObject* leaf) {
    LeafState& s = leaves[leaf];
    Ref g(s.grad);
    s.grad = nullptr;
    if (!g) return true;
    if (!run_hooks(T(leaf)->hooks, g)) return false;
    // a leaf detach_()ed since the graph was recorded is out of autograd: PyTorch's
    // AccumulateGrad skips it too
    if (all_leaves) return !T(leaf)->requires_grad || (accumulate_grad(leaf, std::move(g), create_graph) && run_post_hooks(leaf));
    auto it = wanted_leaf.find(leaf);
    return it == wanted_leaf.end() || deliver(it->second, g);
  }

  bool flush_done_leaves() {
    while (!done_leaves.empty()) {
      PyObject* leaf = done_leaves.back();
      done_leaves.pop_back();
      if (!flush_leaf(leaf)) return false;
    }
    return true;
  }

  // A non-leaf tensor's gradient is complete: run its hooks, retain or deliver it.
  bool arrive(PyObject* node, Ref& g, bool runs) {
    NodeObject* n = N(node);
    if (!run_hooks(n->pre_hooks, g, !runs)) return false;
    if (n->retained != Py_None) {
      Ref retained = Ref::borrow(n->retained);  // ours: the call may run code that replaces it
      Ref t(PyObject_CallNoArgs(retained.get()));  // the weakref
      if (!t) return false;
      if (is_tensor(t.get())) {
        TensorObject* tt = T(t.get());
        GradLock lock(tt);
        if (!lock.acquire()) return false;
        if (tt->grad == Py_None) {
          Py_SETREF(tt->grad, Py_NewRef(g.get()));
          gc_store(t.get(), tt->grad);
        } else {
          Ref prev = Ref::borrow(tt->grad);
          PyObject* sum = PyNumber_Add(prev.get(), g.get());
          if (sum == nullptr) return false;
          Py_SETREF(tt->grad, sum);
          gc_store(t.get(), tt->grad);
        }
      }
    }
    auto it = wanted_node.find(node);
    return it == wanted_node.end() || deliver(it->second, g);
  }

  bool run_node(PyObject* node);
  bool pass_post_hooked(PyObject* node, std::vector<Ref>& held, Ref& g, PyObject* edges, PyObject* metas,
                        bool check_nan);
  bool report_gradient(PyObject* node, Py_ssize_t i, PyObject* e, Ref gi, PyObject* metas, bool check_nan);
  bool run();
};

// Refuse saved inputs (or a saved output) that were modified in place after they were recorded.
// unpack(packed), which must give a Tensor; new reference or nullptr
PyObject* unpack_one(PyObject* unpack, PyObject* packed, OpObject* op) {
  PyObject* t = PyObject_CallOneArg(unpack, packed);
  if (t != nullptr && !is_tensor(t)) {
    PyErr_Format(PyExc_TypeError, "%U: saved_tensors_hooks' unpack_hook must return a Tensor, got %s", op->name,
                 Py_TYPE(t)->tp_name);
    Py_DECREF(t);
    return nullptr;
  }
  return t;
}

// The saved tuple with each packed value unpacked (None stays None); new reference or nullptr
PyObject* unpack_saved(PyObject* unpack, PyObject* saved, OpObject* op) {
  if (!PyTuple_Check(saved)) {
    PyErr_Format(PyExc_RuntimeError, "%U: the node's saved tensors are malformed", op->name);
    return nullptr;
  }
  Ref r(PyTuple_New(PyTuple_GET_SIZE(saved)));
  if (!r) return nullptr;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(saved); ++i) {
    PyObject* p = PyTuple_GET_ITEM(saved, i);
    PyObject* t = p == Py_None ? Py_NewRef(Py_None) : unpack_one(unpack, p, op);
    if (t == nullptr) return nullptr;
    PyTuple_SET_ITEM(r.get(), i, t);
  }
  return r.release();
}

bool check_versions(NodeObject* n, OpObject* op, PyObject* saved, PyObject* versions) {
  if (!PyTuple_Check(saved) || !PyTuple_Check(versions) || PyTuple_GET_SIZE(versions) != PyTuple_GET_SIZE(saved)) {
    PyErr_Format(PyExc_RuntimeError, "%U: the node's saved tensors are malformed", op->name);
    return false;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(saved); ++i) {
    PyObject* t = PyTuple_GET_ITEM(saved, i);
    if (t == Py_None) continue;
    PyObject* v = version_value(T(t)->version);
    if (v == nullptr) return false;
    PyObject* v0 = PyTuple_GET_ITEM(versions, i);
    int same = v == v0 ? 1 : PyObject_RichCompareBool(v, v0, Py_EQ);
    if (same < 0) return false;
    if (!same) {
      Ref shape(PyObject_GetAttr(T(t)->data, s_shape));
      if (!shape) return false;
      PyErr_Format(PyExc_RuntimeError,
                   "one of the tensors needed for the gradient of %U (shape %S) has been modified by an in-place "
                   "operation: it is at version %S, expected version %S. Don't modify it in place, or clone() it "
                   "first.",
                   op->name, shape.get(), v, v0);
      return false;
    }
  }
  if (n->out_box != Py_None) {
    PyObject* v = version_value(n->out_box);
    if (v == nullptr) return false;
    int same = v == n->out_ver ? 1 : PyObject_RichCompareBool(v, n->out_ver, Py_EQ);
    if (same < 0) return false;
    if (!same) {
      PyErr_Format(PyExc_RuntimeError,
                   "the output of %U (needed for its gradient) has been modified by an in-place operation: it is at "
                   "version %S, expected version %S. Use an out-of-place op, or clone() the output first.",
                   op->name, v, n->out_ver);
      return false;
    }
  }
  return true;
}

// Shape-and-dtype stand-ins for the inputs the op did not keep.
PyObject* with_stand_ins(PyObject* saved, PyObject* metas) {
  Py_ssize_t n = PyTuple_GET_SIZE(saved);
  Ref res(PyTuple_New(n));
  if (!res) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* t = PyTuple_GET_ITEM(saved, i);
    if (t == Py_None && i < PyTuple_GET_SIZE(metas)) {
      PyObject* m = PyTuple_GET_ITEM(metas, i);
      t = PyDict_GetItemWithError(meta_cache, m);
      if (t == nullptr) {
        if (PyErr_Occurred()) return nullptr;
        if (PyDict_GET_SIZE(meta_cache) > 4096) PyDict_Clear(meta_cache);
        Ref stand(PyObject_Call(reinterpret_cast<PyObject*>(&MetaType), m, nullptr));
        if (!stand || PyDict_SetItem(meta_cache, m, stand.get()) < 0) return nullptr;
        t = stand.get();
      }
    }
    PyTuple_SET_ITEM(res.get(), i, Py_NewRef(t));
  }
  return res.release();
}

// A VJP's gradient for input i (edge e) of node, reduced to the input's shape and dtype, passed on.
bool Pass::report_gradient(PyObject* node, Py_ssize_t i, PyObject* e, Ref gi, PyObject* metas, bool check_nan) {
  if (!is_tensor(gi.get())) {
    PyErr_Format(PyExc_TypeError, "%U: a gradient formula returned %s, not a Tensor", O(N(node)->op)->name,
                 Py_TYPE(gi.get())->tp_name);
    return false;
  }
  if (check_nan && !refuse_nan(node, i, gi.get())) return false;
  PyObject* m = PyTuple_GET_ITEM(metas, i);
  PyObject* shape = PyTuple_GET_ITEM(m, 0);
  PyObject* dtype = PyTuple_GET_ITEM(m, 1);
  PyObject* gdata = T(gi.get())->data;
  bool exact = is_exact_ndarray(gdata);
  if (exact && array_head(gdata)->descr == dtype) {  // the usual gradient: right dtype, maybe right shape
    if (same_shape(gdata, shape) == 1) return report(e, gi.release());
  }
  Ref dshape(PyObject_GetAttr(gdata, s_shape));
  if (!dshape) return false;
  int same = PyObject_RichCompareBool(dshape.get(), shape, Py_EQ);
  if (same < 0) return false;
  if (!same) {  // reduce broadcast dims, once for every op
    gi.reset(PyObject_CallMethodOneArg(gi.get(), s_sum_to_size, shape));
    if (!gi) return false;
    if (!is_tensor(gi.get())) {
      PyErr_SetString(PyExc_TypeError, "sum_to_size did not return a Tensor");
      return false;
    }
  }
  Ref ddtype(PyObject_GetAttr(T(gi.get())->data, s_dtype));
  if (!ddtype) return false;
  if (ddtype.get() != dtype) {
    int eq = PyObject_RichCompareBool(ddtype.get(), dtype, Py_EQ);
    if (eq < 0) return false;
    if (!eq) {
      // A real input's gradient is the real part of a complex one (PyTorch's engine does the
      // same): taken here, without the warning that a user's complex-to-real cast gives.
      Ref gkind(PyObject_GetAttr(ddtype.get(), s_kind)), kind(PyObject_GetAttr(dtype, s_kind));
      if (!gkind || !kind) return false;
      if (PyUnicode_CompareWithASCIIString(gkind.get(), "c") == 0 && PyUnicode_CompareWithASCIIString(kind.get(), "c") != 0) {
        gi.reset(PyObject_GetAttr(gi.get(), s_real));
        if (!gi) return false;
      }
      gi.reset(PyObject_CallMethodOneArg(gi.get(), s_to, dtype));
      if (!gi) return false;
    }
  }
  return report(e, gi.release());
}

bool Pass::run_node(PyObject* node) {
  NodeObject* n = N(node);
  Ref g;
  bool needed;
  {
    NodeState& s = nodes[node];
    g.reset(s.grad);
    s.grad = nullptr;
    needed = s.needed;
    // no input of autograd.grad is reachable from here, and its own output's gradient is not
    // wanted: nothing to run
    if (!needed && wanted_node.count(node) == 0) g.reset();
  }
  if (!n->ready) {
    PyErr_SetString(PyExc_RuntimeError, "backward: reached a Node that was never initialised (or was cleared)");
    return false;
  }
  Ref edges = Ref::borrow(n->edges);  // fixed at record time
  Py_ssize_t n_in = PyTuple_GET_SIZE(edges.get());
  if (!g) {  // no consumer produced a gradient: none flows on from here either
    for (Py_ssize_t i = 0; i < n_in; ++i) {
      PyObject* e = PyTuple_GET_ITEM(edges.get(), i);
      if (e != Py_None && !report(e, nullptr)) return false;
    }
    return flush_done_leaves();
  }
  if (n->pre_hooks != Py_None || n->retained != Py_None || !wanted_node.empty()) {
    if (!arrive(node, g, needed)) return false;
  }
  if (!needed) {  // captured above; nothing below it is wanted, so it does not run (or free)
    g.reset();
    for (Py_ssize_t i = 0; i < n_in; ++i) {
      PyObject* e = PyTuple_GET_ITEM(edges.get(), i);
      if (e != Py_None && !report(e, nullptr)) return false;
    }
    return flush_done_leaves();
  }
  Ref op_ref = Ref::borrow(n->op);
  OpObject* op = O(op_ref.get());
  if (!op->ready) {
    PyErr_SetString(PyExc_RuntimeError, "backward: a node's Op was cleared");
    return false;
  }
  if (n->released) {
    PyErr_Format(PyExc_RuntimeError, "%U: %s", op->name, kFreedMsg);
    return false;
  }
  Ref saved = Ref::borrow(n->saved), versions = Ref::borrow(n->versions), metas = Ref::borrow(n->meta);
  if (!PyTuple_Check(saved.get()) || PyTuple_GET_SIZE(saved.get()) != n_in) {
    PyErr_Format(PyExc_RuntimeError, "%U: the node's saved tensors are malformed", op->name);
    return false;
  }
  const bool packed = n->unpack != nullptr && n->unpack != Py_None;
  if (packed) {  // saved_tensors_hooks: each saved value unpacked; no version check (PyTorch's rule)
    saved.reset(unpack_saved(n->unpack, saved.get(), op));
    if (!saved) return false;
  } else if ((op->n_saves || n->out_box != Py_None) && !check_versions(n, op, saved.get(), versions.get())) {
    return false;
  }
  bool stand_ins = op->partial_saves;  // or an input not kept for this node (OpObject::reads)
  for (Py_ssize_t i = 0; !stand_ins && i < n_in; ++i) stand_ins = PyTuple_GET_ITEM(saved.get(), i) == Py_None;
  if (stand_ins) {
    saved.reset(with_stand_ins(saved.get(), metas.get()));
    if (!saved) return false;
  }
  Ref out = Ref::borrow(Py_None);
  if (n->out_box != Py_None) {
    if (n->out_packed) {
      Ref t(unpack_one(n->unpack, n->out_data, op));
      if (!t) return false;
      out.reset(wrap(T(t.get())->data));  // a tensor of our own: create_graph below marks it
    } else {
      out.reset(wrap(n->out_data));
    }
    if (!out) return false;
    if (create_graph) {  // the output is a function of the inputs through this very node
      T(out.get())->requires_grad = true;
      Py_SETREF(T(out.get())->grad_fn, Py_NewRef(node));
      gc_store(out.get(), node);
    }
  }
  Ref attrs = Ref::borrow(n->attrs);
  if (n->aux != Py_None) {  // {**node.attrs, "aux": node.aux}
    attrs.reset(PyDict_Copy(attrs.get()));
    if (!attrs || PyDict_SetItem(attrs.get(), s_aux, n->aux) < 0) return false;
  }
  Ref vjps = Ref::borrow(op->vjps);
  bool check_nan = modes().check_nan;
  std::vector<PyObject*> call(2 + n_in);  // g, out, *saved (borrowed from the refs above)
  call[0] = g.get();
  call[1] = out.get();
  for (Py_ssize_t j = 0; j < n_in; ++j) call[2 + j] = PyTuple_GET_ITEM(saved.get(), j);
  std::vector<std::pair<Py_ssize_t, Ref>> zeroed;  // ZeroedGrad results, finished after every VJP ran
  // Node.register_hook: the VJPs' results are held, the hooks see (and may replace) them all, and
  // only then are they passed on
  const bool post = n->post_hooks != Py_None && PyDict_GET_SIZE(n->post_hooks) > 0;
  std::vector<Ref> held(post ? n_in : 0);
  for (Py_ssize_t i = 0; i < n_in; ++i) {
    PyObject* e = PyTuple_GET_ITEM(edges.get(), i);
    if (e == Py_None) continue;
    if (!is_node(e) && !tracked(e)) continue;  // no one wants this leaf's gradient: skip its VJP
    Ref vjp(PyTuple_Check(vjps.get()) ? (i < PyTuple_GET_SIZE(vjps.get()) ? Py_NewRef(PyTuple_GET_ITEM(vjps.get(), i)) : nullptr)
                                      : PySequence_GetItem(vjps.get(), i));
    if (!vjp) {
      if (!PyErr_Occurred()) PyErr_Format(PyExc_RuntimeError, "%U: no VJP for input %zd", op->name, i);
      return false;
    }
    Ref gi;
    if (vjp.get() != Py_None) {
      std::optional<UserFloat> user;
      if (op->forward == Py_None) user.emplace();  // a custom Function: the user's backward
      gi.reset(PyDict_GET_SIZE(attrs.get()) ? PyObject_VectorcallDict(vjp.get(), call.data(), 2 + n_in, attrs.get())
                                            : PyObject_Vectorcall(vjp.get(), call.data(), 2 + n_in, nullptr));
      if (!gi) return false;
    }
    if (post) {
      if (gi && gi.get() != Py_None) held[i] = std::move(gi);
      continue;
    }
    if (!gi || gi.get() == Py_None) {
      if (!report(e, nullptr)) return false;
      continue;
    }
    if (reinterpret_cast<PyObject*>(Py_TYPE(gi.get())) == slice_grad_class && slice_grad_class != nullptr &&
        PyTuple_GET_SIZE(gi.get()) == 2) {  // a piece of the input's gradient, at an index
      if (check_nan && !refuse_nan(node, i, PyTuple_GET_ITEM(gi.get(), 1))) return false;
      PyObject* m = PyTuple_GET_ITEM(metas.get(), i);
      if (!report_slice(e, gi.get(), PyTuple_GET_ITEM(m, 0), PyTuple_GET_ITEM(m, 1))) return false;
      continue;
    }
    if (reinterpret_cast<PyObject*>(Py_TYPE(gi.get())) == zeroed_grad_class && zeroed_grad_class != nullptr &&
        PyTuple_GET_SIZE(gi.get()) == 3) {  // the upstream gradient with a region zeroed: see below
      zeroed.emplace_back(i, std::move(gi));
      continue;
    }
    if (!report_gradient(node, i, e, std::move(gi), metas.get(), check_nan)) return false;
  }
  // ZeroedGrad(g, zero_in_place, zeroed_copy) (setitem's gradient for the tensor written into:
  // zero_in_place(g's array) writes the zeros, zeroed_copy(g) returns a new tensor):
  // once the node's other VJPs are done, g is zeroed where the write was and passed on as it is
  // when nothing but this pass holds it or its memory (our Ref and the tuple's item), else a
  // zeroed copy is: a chain of writes into one buffer (`out[t] = h`) costs the rows written,
  // not a copy of the buffer per write (PyTorch's CopySlices copies it).
  if (post && !pass_post_hooked(node, held, g, edges.get(), metas.get(), check_nan)) return false;
  for (auto& [i, z] : zeroed) {
    PyObject* e = PyTuple_GET_ITEM(edges.get(), i);
    PyObject* zg = PyTuple_GET_ITEM(z.get(), 0);
    bool own = zg == g.get() && Py_REFCNT(zg) == 2 && is_tensor(zg) && unshared_data(T(zg)->data);
    Ref gi;
    if (own) {
      Ref done(PyObject_CallOneArg(PyTuple_GET_ITEM(z.get(), 1), T(zg)->data));
      if (!done) return false;
      if (!bump_version(zg)) return false;
      gi = Ref::borrow(zg);
    } else {
      gi.reset(PyObject_CallOneArg(PyTuple_GET_ITEM(z.get(), 2), zg));
      if (!gi) return false;
    }
    z = Ref();
    if (!report_gradient(node, i, e, std::move(gi), metas.get(), check_nan)) return false;
  }
  if (!retain_graph && (op->n_saves || op->saves_output || n->aux != Py_None)) {
    n->released = true;  // a node that saved nothing can be run again
    Py_SETREF(n->saved, Py_NewRef(Py_None));
    Py_SETREF(n->versions, Py_NewRef(Py_None));
    Py_SETREF(n->out_data, Py_NewRef(Py_None));
    Py_SETREF(n->aux, Py_NewRef(Py_None));
  }
  // Drop this node's references first: a leaf may then take over a gradient buffer that
  // nothing else holds instead of copying it.
  call.clear();
  g.reset();
  out.reset();
  saved.reset();
  attrs.reset();
  return flush_done_leaves();
}

// A node with post hooks: run_post_hooks(node, raw, g) (tapegrad/_tape/registry.py) makes each held
// VJP result a plain gradient (or None), calls the hooks with (grad_inputs, (g,)), and returns the
// gradients to pass on, one per input.
bool Pass::pass_post_hooked(PyObject* node, std::vector<Ref>& held, Ref& g, PyObject* edges, PyObject* metas,
                            bool check_nan) {
  if (post_hook_runner == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "backward: a node has post hooks but no runner was set");
    return false;
  }
  const Py_ssize_t n_in = static_cast<Py_ssize_t>(held.size());
  Ref raw(PyTuple_New(n_in));
  if (!raw) return false;
  for (Py_ssize_t i = 0; i < n_in; ++i) {
    PyObject* r = held[i] ? held[i].release() : Py_NewRef(Py_None);
    PyTuple_SET_ITEM(raw.get(), i, r);
  }
  Ref grads(PyObject_CallFunctionObjArgs(post_hook_runner, node, raw.get(), g.get(), nullptr));
  if (!grads) return false;
  raw.reset();
  if (!PyTuple_Check(grads.get()) || PyTuple_GET_SIZE(grads.get()) != n_in) {
    PyErr_SetString(PyExc_RuntimeError, "backward: a node's post hooks gave a malformed result");
    return false;
  }
  for (Py_ssize_t i = 0; i < n_in; ++i) {
    PyObject* e = PyTuple_GET_ITEM(edges, i);
    if (e == Py_None || (!is_node(e) && !tracked(e))) continue;
    PyObject* gi = PyTuple_GET_ITEM(grads.get(), i);
    if (gi == Py_None) {
      if (!report(e, nullptr)) return false;
      continue;
    }
    if (!report_gradient(node, i, e, Ref::borrow(gi), metas, check_nan)) return false;
  }
  return true;
}

bool Pass::run() {
  while (!ready.empty()) {
    Ref node(ready.back());
    ready.pop_back();
    if (profile_hook == nullptr) {
      if (!run_node(node.get())) return false;
      continue;
    }
    const int64_t t0 = monotonic_ns();  // the node's VJPs and accumulation, under its class's name
    if (!run_node(node.get())) return false;
    Ref name(PyUnicode_FromString(_PyType_Name(Py_TYPE(node.get()))));
    if (!name || !profile_event(name.get(), t0, nullptr, 0)) return false;
  }
  return true;
}

// A tensor of ones shaped like arr: a copy filled in place when arr is a small float array
// (0.2 us instead of numpy's 0.5 us for np.ones), else numpy.ones.
PyObject* ones_like(PyObject* arr) {
  Ref data;
  if (is_exact_ndarray(arr)) {
    Ref copy(PyObject_CallMethodNoArgs(arr, s_copy));
    if (!copy) return nullptr;
    Py_buffer b;
    if (PyObject_GetBuffer(copy.get(), &b, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) == 0) {
      if (b.format != nullptr && b.format[0] != '\0' && b.format[1] == '\0' && (b.format[0] == 'd' || b.format[0] == 'f')) {
        if (b.format[0] == 'd') {
          std::fill_n(static_cast<double*>(b.buf), b.len / static_cast<Py_ssize_t>(sizeof(double)), 1.0);
        } else {
          std::fill_n(static_cast<float*>(b.buf), b.len / static_cast<Py_ssize_t>(sizeof(float)), 1.0f);
        }
        data = std::move(copy);
      }
      PyBuffer_Release(&b);
    } else {
      PyErr_Clear();
    }
  }
  if (!data) {
    Ref shape(PyObject_GetAttr(arr, s_shape)), dtype(PyObject_GetAttr(arr, s_dtype));
    if (!shape || !dtype) return nullptr;
    data.reset(PyObject_CallFunctionObjArgs(np_ones, shape.get(), dtype.get(), nullptr));
    if (!data) return nullptr;
  }
  return wrap(data.get());
}

}  // namespace

// run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, accumulate=True)
//   a gradient None: ones shaped like its output (the caller checked that it has one element).
//   inputs None: accumulate into the .grad of every leaf (Tensor.backward).
//   inputs, accumulate: into the .grad of those tensors only (backward(inputs=...)).
//   inputs, not accumulate: return one gradient (or None) per input (autograd.grad).
namespace {

// fork() next to backward passes. Accumulating into a .grad holds that tensor's grad_lock, a
// pthread mutex: a process forked while another thread held one would inherit it locked by a
// thread the child does not have, and the child's first backward into that tensor (a
// DataLoader worker, a multiprocessing child that trains) would wait forever. So a fork waits
// for the passes other threads are running, and passes that start meanwhile wait for the fork
// (fork_prepare and the other two below, run by os.register_at_fork: tapegrad/_tape/engine.py),
// as PyTorch's engine waits for its worker threads. A pass costs two atomic counts.
std::atomic<int> g_passes{0};   // backward passes running, all threads
std::atomic<int> g_forking{0};  // forks waiting or under way
thread_local int t_passes = 0;  // this thread's (a hook may run a backward pass inside one)
constexpr double kForkWaitSeconds = 60;  // a pass running longer lets the fork go ahead regardless

// Counts a pass while it runs; a new outermost pass first waits out a fork. The check and the
// count happen under the GIL, as does fork_prepare's start, so a fork sees every pass that began.
class PassGate {
 public:
  PassGate() {
    if (t_passes == 0 && g_forking.load() != 0) {
      Py_BEGIN_ALLOW_THREADS
      while (g_forking.load() != 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      Py_END_ALLOW_THREADS
    }
    ++t_passes;
    g_passes.fetch_add(1);
  }
  ~PassGate() {
    --t_passes;
    g_passes.fetch_sub(1);
  }
};

}  // namespace

PyObject* fork_prepare(PyObject*, PyObject*) {
  g_forking.fetch_add(1);
  const int mine = t_passes;  // a fork from inside this thread's own pass (a hook) waits for the others only
  Py_BEGIN_ALLOW_THREADS
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(kForkWaitSeconds);
  while (g_passes.load() > mine && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

PyObject* fork_parent(PyObject*, PyObject*) {
  g_forking.fetch_sub(1);
  Py_RETURN_NONE;
}

PyObject* fork_child(PyObject*, PyObject*) {  // the other threads and their passes stayed behind
  g_forking.store(0);
  g_passes.store(t_passes);
  Py_RETURN_NONE;
}

PyObject* backward_passes(PyObject*, PyObject*) {
  return Py_BuildValue("(ii)", g_passes.load(), g_forking.load());
}

// The passes running in this thread, innermost last (a hook may run a pass inside one), for what
// hooks ask of the pass that calls them: autograd.graph.register_multi_grad_hook keys its state
// by the pass's id and counts the hooks that will run in it.
namespace {
std::atomic<long long> g_pass_ids{0};
thread_local std::vector<Pass*> t_running;

class RunningPass {
 public:
  explicit RunningPass(Pass* p) { p->id = g_pass_ids.fetch_add(1); t_running.push_back(p); }
  ~RunningPass() { t_running.pop_back(); }
};
}  // namespace

// _queue_callback(fn): fn() runs when this thread's innermost pass has run its graph, before it
// returns (PyTorch's Variable._execution_engine.queue_callback); a callback may queue more.
PyObject* queue_callback(PyObject*, PyObject* fn) {
  if (t_running.empty()) {
    PyErr_SetString(PyExc_RuntimeError, "Final callbacks can only be installed during backward pass.");
    return nullptr;
  }
  if (!PyCallable_Check(fn)) {
    PyErr_Format(PyExc_TypeError, "queue_callback: expected a callable, got %s", Py_TYPE(fn)->tp_name);
    return nullptr;
  }
  t_running.back()->callbacks.push_back(Py_NewRef(fn));
  Py_RETURN_NONE;
}

static bool run_callbacks(Pass& pass) {
  for (size_t k = 0; k < pass.callbacks.size(); ++k) {  // by index: a callback may queue another
    Ref cb = Ref::borrow(pass.callbacks[k]);
    UserFloat user;
    Ref r(PyObject_CallNoArgs(cb.get()));
    if (!r) return false;
  }
  return true;
}

PyObject* current_graph_task_id(PyObject*, PyObject*) {
  return PyLong_FromLongLong(t_running.empty() ? -1 : t_running.back()->id);
}

// Whether this thread's innermost pass runs `x` (a Node) or delivers a gradient to `x` (a leaf
// tensor: PyTorch asks of its AccumulateGrad node), i.e. whether the hooks of the tensor x stands
// for run in this pass (given a gradient reaches it: a node no VJP sent one to runs no hooks).
PyObject* will_engine_execute_node(PyObject*, PyObject* x) {
  if (t_running.empty()) {
    PyErr_SetString(PyExc_RuntimeError, "_will_engine_execute_node should only be called during the backward pass");
    return nullptr;
  }
  const Pass* p = t_running.back();
  if (is_node(x)) {
    auto it = p->nodes.find(x);
    return PyBool_FromLong(it != p->nodes.end() && (it->second.needed || p->wanted_node.count(x) > 0));
  }
  if (is_tensor(x) && T(x)->grad_fn == Py_None) return PyBool_FromLong(p->leaves.count(x) > 0);
  PyErr_Format(PyExc_TypeError, "_will_engine_execute_node expects a grad_fn (a Node) or a leaf tensor, got %s",
               Py_TYPE(x)->tp_name);
  return nullptr;
}

PyObject* run_backward(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 4 || nargs > 6 || kwnames != nullptr) {
    PyErr_SetString(PyExc_TypeError,
                    "run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, accumulate=True)");
    return nullptr;
  }
  if (tensor_class == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "tapegrad: the Tensor class is not set (_C._set_tensor_class)");
    return nullptr;
  }
  PassGate gate;
  Ref outputs(PySequence_Tuple(args[0]));
  if (!outputs) return nullptr;
  Ref grads(PySequence_Tuple(args[1]));
  if (!grads) return nullptr;
  int retain_graph = PyObject_IsTrue(args[2]);
  int create_graph = PyObject_IsTrue(args[3]);
  PyObject* inputs = nargs > 4 ? args[4] : Py_None;
  int accumulate = nargs > 5 ? PyObject_IsTrue(args[5]) : 1;
  if (retain_graph < 0 || create_graph < 0 || accumulate < 0) return nullptr;
  Py_ssize_t n_out = PyTuple_GET_SIZE(outputs.get());
  if (PyTuple_GET_SIZE(grads.get()) != n_out) {
    PyErr_SetString(PyExc_RuntimeError, "run_backward: one gradient per output");
    return nullptr;
  }

  Pass pass;
  pass.retain_graph = retain_graph;
  pass.create_graph = create_graph;
  pass.all_leaves = inputs == Py_None;
  pass.accumulate = pass.all_leaves || accumulate;
  if (!pass.all_leaves) {
    Ref seq(PySequence_Tuple(inputs));
    if (!seq) return nullptr;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq.get()); ++i) {
      PyObject* t = PyTuple_GET_ITEM(seq.get(), i);
      if (!is_tensor(t) && !(is_node(t) && !pass.accumulate)) {
        PyErr_Format(PyExc_TypeError, "run_backward: input %zd must be a Tensor%s, got %s", i,
                     pass.accumulate ? "" : " or a Node", Py_TYPE(t)->tp_name);
        return nullptr;
      }
      if (is_node(t) && !pass.accumulate) {  // a GradientEdge's node: the gradient of its output
        pass.inputs.push_back(Py_NewRef(t));
        pass.results.push_back(nullptr);
        pass.wanted_node[t].push_back(i);
        continue;
      }
      pass.inputs.push_back(Py_NewRef(t));
      pass.results.push_back(nullptr);
      if (fresh_view(t) < 0) return nullptr;
      PyObject* fn = T(t)->grad_fn;
      if (fn == Py_None) {
        pass.wanted_leaf[t].push_back(i);
      } else {
        pass.wanted_node[fn].push_back(i);
      }
    }
  }

  std::vector<PyObject*> roots;
  for (Py_ssize_t i = 0; i < n_out; ++i) {
    PyObject* out = PyTuple_GET_ITEM(outputs.get(), i);
    PyObject* g = PyTuple_GET_ITEM(grads.get(), i);
    Ref made;
    if (g == Py_None && is_tensor(out)) {  // the implicit gradient of a scalar loss: ones
      made.reset(ones_like(T(out)->data));
      if (!made) return nullptr;
      g = made.get();
    }
    if (is_node(out) && is_tensor(g)) {  // a GradientEdge's node: g is the gradient of its output
      bool fresh;
      NodeState& s = pass.node_state(out, &fresh);
      if (fresh) roots.push_back(out);
      if (!add_into(&s.grad, Py_NewRef(g))) return nullptr;
      continue;
    }
    if (!is_tensor(out) || !is_tensor(g)) {
      PyErr_SetString(PyExc_TypeError, "run_backward: outputs and their gradients must be tensors");
      return nullptr;
    }
    if (fresh_view(out) < 0) return nullptr;
    PyObject* fn = T(out)->grad_fn;
    if (fn == Py_None) {  // a leaf among the outputs: its gradient is given
      if (pass.all_leaves ? T(out)->requires_grad : pass.tracked(out)) {
        if (!add_into(&pass.leaf_state(out).grad, Py_NewRef(g))) return nullptr;
      }
      continue;
    }
    bool fresh;
    NodeState& s = pass.node_state(fn, &fresh);
    if (fresh) roots.push_back(fn);
    if (!add_into(&s.grad, Py_NewRef(g))) return nullptr;
  }
  if (!pass.count(roots)) return nullptr;
  if (!pass.all_leaves) pass.mark_needed(roots);
  for (PyObject* r : roots)
    if (pass.nodes[r].deps == 0) pass.ready.push_back(Py_NewRef(r));
  for (auto& [leaf, s] : pass.leaves)
    if (s.deps == 0 && s.grad != nullptr) pass.done_leaves.push_back(leaf);

  {
    ModeGuard mode(create_graph);  // VJPs record only when create_graph; this thread only
    QuietFloat quiet;              // one error-state switch for the whole pass
    RunningPass running(&pass);
    if (!pass.flush_done_leaves() || !pass.run() || !run_callbacks(pass)) return nullptr;
  }
  if (pass.all_leaves || accumulate) Py_RETURN_NONE;
  Ref res(PyTuple_New(static_cast<Py_ssize_t>(pass.results.size())));
  if (!res) return nullptr;
  for (size_t k = 0; k < pass.results.size(); ++k) {
    PyObject* g = pass.results[k] != nullptr ? pass.results[k] : Py_None;
    PyTuple_SET_ITEM(res.get(), static_cast<Py_ssize_t>(k), Py_NewRef(g));
  }
  return res.release();
}

bool engine_init() {
  const std::pair<PyObject**, const char*> names[] = {
      {&s_shape, "shape"}, {&s_dtype, "dtype"}, {&s_sum_to_size, "sum_to_size"}, {&s_to, "to"}, {&s_aux, "aux"},
      {&s_base, "base"},   {&s_size, "size"},   {&s_kind, "kind"},               {&s_copy, "copy"}, {&s_name, "__name__"},
      {&s_real, "real"}, {&s_itemsize, "itemsize"}};
  for (auto& [field, name] : names) {
    *field = PyUnicode_InternFromString(name);
    if (*field == nullptr) return false;
  }
  Ref np(PyImport_ImportModule("numpy"));
  if (!np) return false;
  np_isnan = PyObject_GetAttrString(np.get(), "isnan");
  np_ones = PyObject_GetAttrString(np.get(), "ones");
  np_zeros = PyObject_GetAttrString(np.get(), "zeros");
  np_add = PyObject_GetAttrString(np.get(), "add");
  if (np_ones == nullptr || np_zeros == nullptr || np_add == nullptr || !elementwise_init()) return false;
  const char* wide[] = {"float64", "float32", "int64", "int32", "bool", "complex128"};
  Ref np_dtype(PyObject_GetAttrString(np.get(), "dtype"));
  if (!np_dtype) return false;
  for (size_t k = 0; k < std::size(wide); ++k) {
    wide_dtypes[k] = PyObject_CallFunction(np_dtype.get(), "s", wide[k]);
    if (wide_dtypes[k] == nullptr) return false;
  }
  // numpy's error-state ContextVar and its all-ignore value (numpy 2 keeps them in _ufunc_config);
  // where that module differs the warnings stay on, nothing else changes
  Ref config(PyImport_ImportModule("numpy._core._ufunc_config"));
  Ref var(config ? PyObject_GetAttrString(config.get(), "_extobj_contextvar") : nullptr);
  Ref errstate(var ? PyObject_GetAttrString(np.get(), "errstate") : nullptr);
  Ref no_args(PyTuple_New(0)), all_ignore(Py_BuildValue("{s:s}", "all", "ignore"));
  Ref state(errstate && no_args && all_ignore ? PyObject_Call(errstate.get(), no_args.get(), all_ignore.get()) : nullptr);
  Ref entered(state ? PyObject_CallMethod(state.get(), "__enter__", nullptr) : nullptr);
  if (entered) {
    PyObject* quiet = nullptr;
    if (PyContextVar_Get(var.get(), nullptr, &quiet) == 0 && quiet != nullptr) {
      np_quiet = quiet;
      np_errstate = var.release();
    }
    Ref exited(PyObject_CallMethod(state.get(), "__exit__", "OOO", Py_None, Py_None, Py_None));
  }
  PyErr_Clear();
  meta_cache = PyDict_New();
  inside = PyDict_New();
  return np_isnan != nullptr && meta_cache != nullptr && inside != nullptr;
}

// ---- in-place writes that record nothing, checked and done in one call (ops/pointwise.py)
namespace {

// Whether an array of b's shape broadcasts onto a's, a's shape kept (numpy's rule).
bool broadcasts_onto(ArrayHead* b, ArrayHead* a) {
  if (b->nd > a->nd) return false;
  for (int i = 1; i <= b->nd; ++i) {
    const Py_ssize_t m = b->dims[b->nd - i], n = a->dims[a->nd - i];
    if (m != n && m != 1) return false;
  }
  return true;
}

// The arrays of tensors self and other for a write into self that records nothing: both exact
// ndarrays of one dtype, self's writeable, other's broadcasting onto it, and grad mode off or
// neither tensor requiring grad (read after bringing a stale view up to date, as the
// `_requires_grad` getter does). 1 yes, 0 no (the caller's general path), -1 with an error set.
int unrecorded_write(PyObject* self, PyObject* other, PyObject** a, PyObject** b) {
  if (!is_tensor(self) || !is_tensor(other)) return 0;
  if (modes().grad_enabled) {
    if (fresh_view(self) < 0 || fresh_view(other) < 0) return -1;
    if (T(self)->requires_grad || T(other)->requires_grad) return 0;
  }
  *a = T(self)->data;
  *b = T(other)->data;
  if (!is_exact_ndarray(*a) || !is_exact_ndarray(*b)) return 0;
  ArrayHead *ha = array_head(*a), *hb = array_head(*b);
  if (ha->descr != hb->descr || !(ha->flags & kArrayWriteable) || !broadcasts_onto(hb, ha)) return 0;
  return 1;
}

}  // namespace

PyObject* inplace_arith(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const int op = nargs == 3 ? static_cast<int>(PyLong_AsLong(args[0])) : -1;
  PyObject* ufunc = binary_ufunc(op);
  if (ufunc == nullptr) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_inplace_arith(op in 0..3, self, other)");
    return nullptr;
  }
  PyObject *a, *b;
  const int ok = unrecorded_write(args[1], args[2], &a, &b);
  if (ok <= 0) return ok < 0 ? nullptr : Py_NewRef(Py_False);
  PyObject* d = array_head(a)->descr;
  if (d != wide_dtypes[0] && d != wide_dtypes[1]) return Py_NewRef(Py_False);  // float64, float32 only
  {
    QuietFloat quiet;
    // a small sum of one shape by a plain loop (add_in_place), a large one on the threads, else
    // numpy's ufunc with out=a: one IEEE operation per element whichever runs it
    const int done = op == 0 ? add_in_place(a, b) : binary_in_place(op, a, b);
    if (done < 0) return nullptr;
    if (done == 0) {
      Ref call_args(PyTuple_Pack(3, a, b, a));
      if (!call_args) return nullptr;
      Ref r(PyObject_Call(ufunc, call_args.get(), nullptr));
      if (!r) return nullptr;
    }
  }
  if (!bump_version(args[1])) return nullptr;
  Py_RETURN_TRUE;
}

PyObject* copy_tensor(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_copy_tensor(self, src)");
    return nullptr;
  }
  PyObject *a, *b;
  const int ok = unrecorded_write(args[0], args[1], &a, &b);
  if (ok <= 0) return ok < 0 ? nullptr : Py_NewRef(Py_False);
  if (!copy_in_place(a, b) && PyObject_SetItem(a, Py_Ellipsis, b) < 0) return nullptr;  // numpy's: overlap handled
  if (!bump_version(args[0])) return nullptr;
  Py_RETURN_TRUE;
}

PyObject* join_arrays(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_join_arrays(tensors, same_shape)");
    return nullptr;
  }
  PyObject* seq = args[0];
  if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq)) Py_RETURN_NONE;
  const int same_shape = PyObject_IsTrue(args[1]);
  if (same_shape < 0) return nullptr;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n == 0) Py_RETURN_NONE;
  Ref items(PySequence_Fast(seq, ""));  // (a new reference: the list may change under a callback)
  if (!items) return nullptr;
  PyObject** ts = PySequence_Fast_ITEMS(items.get());
  Ref out(PyList_New(n));
  if (!out) return nullptr;
  ArrayHead* first = nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* t = ts[i];
    if (Py_TYPE(t) != tensor_class) Py_RETURN_NONE;  // (subclasses: the Python path)
    if (modes().grad_enabled) {
      if (fresh_view(t) < 0) return nullptr;
      if (T(t)->requires_grad) Py_RETURN_NONE;
    }
    PyObject* d = T(t)->data;
    if (!is_exact_ndarray(d)) Py_RETURN_NONE;
    ArrayHead* h = array_head(d);
    if (first == nullptr) first = h;
    else if (h->descr != first->descr || h->nd != first->nd) Py_RETURN_NONE;
    else if (same_shape)
      for (int k = 0; k < h->nd; ++k)
        if (h->dims[k] != first->dims[k]) Py_RETURN_NONE;
    PyList_SET_ITEM(out.get(), i, Py_NewRef(d));
  }
  return out.release();
}

}  // namespace tapegrad::tape
