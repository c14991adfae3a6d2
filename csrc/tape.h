// The tape's types, owned by C++: the tensor base (the fields the tape reads), Node (one recorded
// op application), Op (an entry of the op table), Meta (a shape-and-dtype stand-in) and the
// thread-local grad mode. tape_types.cpp defines the Python types; tape.cpp records (apply) and
// runs the backward pass. Both read these structs directly: Python writes them only through
// setters that check what they store.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

#include <atomic>

namespace tapegrad::tape {

// An owned reference; nullptr when empty.
class Ref {
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

// How a tensor or node stands with the cycle collector (tape_gc.cpp). A tape object whose type
// adds no fields starts out of the collector's lists ("untracked") when everything it refers to
// is untracked too or cannot take part in a cycle; the setters and the engine call gc_store
// whenever they give one a new reference, and that puts back into the collector whatever a
// cycle could now pass through. Zero-filled by tp_alloc: not listed, epoch 0 (wild).
struct GcState {
  GcState* prev;             // neighbours in the list of untracked tape objects
  GcState* next;
  PyObject* owner;           // the object this is part of (set when listed)
  unsigned long long stamp;  // order of settling: an untracked object refers to lower stamps only
  unsigned long long epoch;  // the flush epoch in which it was known tame; 0: never
  bool listed;               // in the list (exactly when untracked)
  bool referenced;           // an untracked or tame tracked object may refer to it
};

// Every PyObject* field below is a strong reference and never null once the object exists
// (None stands for "nothing"), except where noted.
struct TensorObject {
  PyObject_HEAD
  PyObject* data;      // the numpy array
  PyObject* grad;      // None or a tensor
  PyObject* grad_fn;   // None or a Node: the node that produced this tensor
  PyObject* version;   // the version box: a list whose item 0 counts in-place writes (shared by views)
  PyObject* base;      // None, or the tensor this is a view of (never itself a view)
  PyObject* hooks;     // None or {handle id: hook} (hooks of a leaf; a non-leaf's live on its node)
  PyObject* post_hooks;  // None or {handle id: hook(tensor)}: run after backward updated .grad
  PyObject* weakreflist;  // may be null
  GcState gc;
  bool requires_grad;
  bool retains_grad;
  // A view's graph (grad_fn, requires_grad) was set when its version box read this; a write in
  // place through its base since then makes it stale (refresh_view), as PyTorch's attr_version.
  Py_ssize_t view_version;
  // Serialises accumulation into .grad across threads (PyTorch's AccumulateGrad holds a lock
  // too): numpy releases the GIL during `grad += g`. Never waited on while holding the GIL.
  pthread_mutex_t grad_lock;
  std::atomic<unsigned long> lock_owner;  // thread ident holding grad_lock, 0 when free
  // Attributes a program set on a tensor without a __dict__ (x.name = ...) live in a side table
  // in tensor.py (attribute_store); set once the first one is stored, so a failed lookup on any
  // other tensor (numpy's probes for __array_interface__, hasattr) costs nothing more.
  bool has_attributes;
};

struct OpObject {
  PyObject_HEAD
  PyObject* name;       // str
  PyObject* forward;    // callable on numpy arrays
  PyObject* forward16;  // the forward for 2-byte inputs (float16/bfloat16 computed in float32), or nullptr
  PyObject* vjps;       // a tuple (one VJP or None per input), or a sequence for variadic ops
  PyObject* saves;      // frozenset of the input indices the VJPs read
  PyObject* node_type;  // the Node subclass recorded (MulBackward0 for mul)
  Py_ssize_t n_saves;
  // reads[j]: bit i set when input j's VJP reads input i; n_reads == 0 when not known. A node
  // saves input i only when the VJP of an input that requires grad reads it (PyTorch's rule:
  // x * c keeps nothing of x when c needs no gradient), so an in-place write to x after it is
  // not an error and x is not kept alive.
  static constexpr int kMaxReads = 8;
  unsigned long long reads[kMaxReads];
  int n_reads;
  bool saves_output, view, aux, differentiable, all_differentiable, partial_saves;
  bool ready;           // __init__ ran (fields above set)
};

struct NodeObject {
  PyObject_HEAD
  PyObject* op;         // OpObject
  PyObject* attrs;      // dict: the op's keyword arguments
  PyObject* saved;      // tuple (an input, or None where not saved), None once released
  PyObject* versions;   // tuple of the inputs' versions at record time, None once released
  PyObject* out_data;   // the output array when the op saves it, else None
  PyObject* out_box;    // the output's version box when saved, else None
  PyObject* out_ver;    // the output's version at record time (an int), else None
  PyObject* aux;        // the forward's auxiliary result (e.g. argmax indices), else None
  PyObject* edges;      // tuple, per input: the producing Node, the leaf tensor, or None
  PyObject* meta;       // tuple, per input: (shape, dtype)
  PyObject* out_meta;   // (shape, dtype) of the output
  PyObject* where;      // (filename, line) of the user's code that recorded it, and a weak
                        // reference to the running nn.Module as a third item inside one
  PyObject* pre_hooks;  // None or {handle id: hook} (hooks of the tensor this node produced)
  PyObject* post_hooks;  // None or {handle id: hook(grad_inputs, grad_outputs)}: Node.register_hook
  PyObject* retained;   // None or a weakref to the tensor that called retain_grad()
  PyObject* unpack;     // saved_tensors_hooks' unpack hook when saved values were packed, else None
  PyObject* weakreflist;  // may be null
  GcState gc;
  long long seq;        // recording order
  bool released;        // saved values freed by a backward pass
  bool out_packed;      // out_data holds what the pack hook returned for the output
  bool ready;           // __init__ ran (fields above set)
};

extern PyTypeObject TensorBaseType, NodeType, OpType, MetaType;
extern PyTypeObject* tensor_class;  // tapegrad.Tensor: what apply and the engine create
extern PyObject* pkg_dir;           // tapegrad's directory: frames inside it are not the user's
extern PyObject* ndarray_type;      // numpy.ndarray
extern PyObject* np_asarray;        // numpy.asarray
extern PyObject* slice_grad_class;  // tapegrad._tape.node.SliceGrad (a tuple subclass): see add_slice_into
extern PyObject* post_hook_runner;  // tapegrad._tape.registry.run_post_hooks: see run_node
extern PyObject* zeroed_grad_class;  // tapegrad._tape.registry.ZeroedGrad (a tuple subclass): see run_node
inline bool is_exact_ndarray(PyObject* o) { return reinterpret_cast<PyObject*>(Py_TYPE(o)) == ndarray_type; }

// The head of numpy's array object (PyArrayObject_fields: part of numpy's ABI, read the same way
// by pybind11's PyArray_Proxy), so that the tape can read an array's shape and dtype without
// `arr.shape` building a tuple of ints per call (the engine checks every gradient it passes on).
struct ArrayHead {
  PyObject_HEAD
  char* data;
  int nd;
  Py_ssize_t* dims;
  Py_ssize_t* strides;
  PyObject* base;
  PyObject* descr;  // the dtype
  int flags;
};
inline ArrayHead* array_head(PyObject* arr) { return reinterpret_cast<ArrayHead*>(arr); }
constexpr int kArrayCContiguous = 0x0001, kArrayAligned = 0x0100, kArrayWriteable = 0x0400;  // numpy's NPY_ARRAY_*

// Whether the exact ndarray arr has the shape `shape` (a tuple of ints as `arr.shape` gives):
// 1 yes, 0 no, -1 when `shape` is not such a tuple (the caller compares the Python way).
inline int same_shape(PyObject* arr, PyObject* shape) {
  if (!PyTuple_CheckExact(shape)) return -1;
  ArrayHead* a = array_head(arr);
  if (a->nd != PyTuple_GET_SIZE(shape)) return 0;
  for (int i = 0; i < a->nd; ++i) {
    PyObject* d = PyTuple_GET_ITEM(shape, i);
    if (!PyLong_CheckExact(d)) return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(d, &overflow);
    if (overflow) return -1;
    if (v != a->dims[i]) return 0;
  }
  return 1;
}

// Thread-local modes (new threads start with grad enabled and anomaly detection off).
// `scope` is a weak reference to the nn.Module whose forward is running in this thread (set and
// restored by Module.__call__ through _C._module_scope), or null: nodes note it beside their
// user line, so a graph can say which module made each node.
// saved_hooks: autograd.graph.saved_tensors_hooks' (pack, unpack) in force in this thread, or null
struct Modes {
  bool grad_enabled = true;
  bool check_nan = false;
  bool anomaly = false;
  PyObject* scope = nullptr;
  PyObject* saved_hooks = nullptr;
};
Modes& modes();

// tapegrad.Tensor itself first: a subclass check walks the MRO, and the engine asks per edge
inline bool is_tensor(PyObject* o) {
  return reinterpret_cast<PyObject*>(Py_TYPE(o)) == reinterpret_cast<PyObject*>(tensor_class) ||
         PyObject_TypeCheck(o, &TensorBaseType);
}
inline bool is_node(PyObject* o) { return PyObject_TypeCheck(o, &NodeType); }
inline TensorObject* T(PyObject* o) { return reinterpret_cast<TensorObject*>(o); }
inline NodeObject* N(PyObject* o) { return reinterpret_cast<NodeObject*>(o); }
inline OpObject* O(PyObject* o) { return reinterpret_cast<OpObject*>(o); }

// tapegrad.ops.inplace._regenerate_view(view): makes a stale view's grad_fn the slice of its base's graph
extern PyObject* view_regenerator;
// A view whose base was written in place since the view's graph was set gets a graph from its
// base's current one (PyTorch regenerates a view's grad_fn the same way). 0, or -1 with an error.
int refresh_view(PyObject* t);
// The count in t's version box, or -1 when the box holds no int.
Py_ssize_t version_count(TensorObject* t);
inline int fresh_view(PyObject* t) { return T(t)->base == Py_None ? 0 : refresh_view(t); }

// A new tensor of tensor_class around arr (no copy), outside the tape. New reference.
PyObject* wrap(PyObject* arr);
// The same, still tracked: the caller sets more fields, then calls gc_settle (apply).
PyObject* wrap_unsettled(PyObject* arr);
// A fresh version box [0]. New reference.
PyObject* new_version_box();
// Fill a Node from an op application; where may be nullptr (then the user's frame is looked up).
bool node_fill(NodeObject* node, PyObject* op, PyObject* const* inputs, Py_ssize_t n, PyObject* attrs,
               PyObject* out, PyObject* out_version, PyObject* aux, PyObject* where);
long long next_seq();

// tape_gc.cpp: see GcState. gc_settle: o was just built and nothing but its maker refers to it
// (it may be settled again after more fields are set). gc_store: x now refers to r through a
// field the tape owns. gc_forget: o is being deallocated.
void gc_settle(PyObject* o);
void gc_store(PyObject* x, PyObject* r);
void gc_forget(PyObject* o);
PyObject* gc_stats(PyObject*, PyObject*);

// tape.cpp
PyObject* apply(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames);
PyObject* set_profile_hook(PyObject*, PyObject* hook);  // tapegrad/profiler's op hook, or None
// _binary_into(op, a, b): a op= b for the in-place arithmetic that records nothing (add_, sub_,
// mul_, div_ on float arrays: ops/pointwise.py), op 0-3 as BinaryOp: the kernel threads where
// they take the case (elementwise.h), else numpy's ufunc with out=a; under the quiet
// floating-point state of every op. None, or nullptr with the error set.
PyObject* binary_into(PyObject*, PyObject* const* args, Py_ssize_t nargs);
// _inplace_arith(op, self, other): self op= other (add_, sub_, mul_, div_ of two tensors) when
// nothing records it (grad mode off, or neither requires grad) and both are float32/float64
// arrays of one dtype, self writeable and other broadcasting onto it: done as binary_into, the
// version bumped, True; False (nothing done) for the Python path otherwise.
PyObject* inplace_arith(PyObject*, PyObject* const* args, Py_ssize_t nargs);
// _copy_tensor(self, src): self.copy_(src) on the same conditions for any one dtype (numpy's
// assignment, or the kernel threads' copy where large): True, else False (nothing done).
PyObject* copy_tensor(PyObject*, PyObject* const* args, Py_ssize_t nargs);
// _join_arrays(tensors, same_shape): for cat and stack with nothing to record, the arrays of
// `tensors` (a list or tuple of tapegrad.Tensor, not a subclass) when each is an exact ndarray,
// all of one dtype and rank (and shape, with same_shape), and grad mode is off or none requires
// grad; None otherwise (the Python path checks and says what is wrong).
PyObject* join_arrays(PyObject*, PyObject* const* args, Py_ssize_t nargs);
PyObject* run_backward(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames);
// os.register_at_fork's before / after_in_parent / after_in_child: a fork waits for the backward
// passes other threads run (tape.cpp, PassGate); backward_passes: (passes running, forks pending).
PyObject* fork_prepare(PyObject*, PyObject*);
PyObject* fork_parent(PyObject*, PyObject*);
PyObject* fork_child(PyObject*, PyObject*);
PyObject* backward_passes(PyObject*, PyObject*);
// _current_graph_task_id(): the id of this thread's innermost running backward pass, -1 outside one.
// _will_engine_execute_node(node or leaf): whether that pass runs the node / delivers to the leaf.
PyObject* current_graph_task_id(PyObject*, PyObject*);
PyObject* will_engine_execute_node(PyObject*, PyObject* x);
// _queue_callback(fn): run fn() when this thread's running backward pass has run its graph.
PyObject* queue_callback(PyObject*, PyObject* fn);
PyObject* user_frame();       // (filename, line[, module])
PyObject* user_frame_lazy();  // (code, offset[, module]): resolve_where makes it the above
PyObject* resolve_where(PyObject* where);
bool engine_init();

// Adds the tape's types and functions to the module. Returns -1 with an exception set on failure.
int add_to_module(PyObject* module);

}  // namespace tapegrad::tape
