// Large float arrays' elementwise ops on the kernel threads: binary arithmetic, negation, |x|,
// sqrt, numpy's float math ufuncs of one to three operands, and fills and copies.
//
// The arithmetic ops' forwards are numpy's ufuncs (np.add, np.subtract, np.multiply,
// np.true_divide; np.negative, np.absolute, np.sqrt; np.tanh, np.maximum, np.arctan2, clip's
// ufunc, ...), which run on one thread, and the backward pass sums gradients with numpy's
// in-place add. With more than one kernel thread, a large float32/float64 case goes to
// kernels/rows.h's binary_op or unary_op (one IEEE operation per element) or to numpy's own inner
// loop run on blocks (or rows of a broadcast operand) from each thread, so the result is bit for
// bit numpy's, only split between the threads. Everything else (small arrays, other dtypes, mixed
// dtypes, non-contiguous operands, broadcasting other than along leading dims) stays with numpy,
// and so does one thread but for a row broadcast's arithmetic (faster here) and small
// equal-shape gradient sums (see add_in_place).
#pragma once

#include "tape.h"

namespace tapegrad::tape {

// Caches numpy's ufuncs, np.empty and its float dtypes; false with an error set on failure.
bool elementwise_init();

// f(a, b) for f numpy's add, subtract, multiply or true_divide (binary_op), or one of its float
// ufuncs of two operands (maximum, arctan2, power, ...: numpy's own inner loop, each thread over
// its blocks or rows): a new array when the threads take the case; nullptr without an error set
// when they do not (call f), with one on failure.
PyObject* parallel_binary(PyObject* f, PyObject* a, PyObject* b);

// f(a) for f numpy's negative, absolute or sqrt (unary_op), or one of its float math ufuncs (tanh,
// sin, log1p, ...: numpy's own inner loop, each thread over its blocks), as parallel_binary: a new
// array when the threads take the case (a C-contiguous float array, large, more than one thread),
// nullptr without an error set when they do not, with one on failure.
PyObject* parallel_unary(PyObject* f, PyObject* a);

// f(xs[0], ..., xs[nin - 1]) for nin of 1 to 3 (numpy's clip's ufunc takes 3): parallel_unary,
// parallel_binary, or numpy's own loop on the threads where each operand has the result's shape,
// one element, or one row broadcast along the leading dims; as parallel_binary otherwise.
PyObject* parallel_ufunc(PyObject* f, PyObject* const* xs, int nin);

// np.full(shape, value, dtype) for a float32/float64 dtype, filled on the kernel threads where
// that helps (more than one thread, a large size): ones_like's and zeros_like's 1000x1000 float32
// took 138 us by numpy's fill on one thread, PyTorch's 70 on two. nullptr without an error set
// when numpy should make it (shape a tuple of ints, else numpy says what is wrong).
PyObject* parallel_full(PyObject* shape, PyObject* dtype, double value);

// A copy of a C-contiguous float32/float64 array made on the kernel threads (a gradient that
// becomes .grad, clone): 1000x1000 float32 took numpy's copy 280 us on one thread, PyTorch's clone
// 137 on two. nullptr without an error set where numpy should copy (one thread, small, other
// arrays).
PyObject* parallel_copy(PyObject* a);

// a += b in place (a writeable, b of a's shape or broadcast onto it), for the backward pass's
// gradient sums: a small float sum of equal shapes by a plain loop (numpy's dispatch costs more
// than its few additions), a large one on the kernel threads as above. 1 done, 0 not taken (use
// numpy), -1 with an error set.
int add_in_place(PyObject* a, PyObject* b);

// a op= b (op: BinaryOp's add, subtract, multiply, divide) on the kernel threads, a writeable and
// b of a's dtype, shape or broadcast along leading dims (a 0-d b: a scalar), both C-contiguous
// float arrays, large, more than one thread: 1 done, 0 not taken (numpy's ufunc is the caller's).
int binary_in_place(int op, PyObject* a, PyObject* b);

// a[...] = b, a writeable and b of a's dtype and shape, both C-contiguous float arrays not
// overlapping, large, more than one thread: copied on the kernel threads (copy_ with nothing to
// record). 1 done, 0 not taken (numpy's copyto is the caller's).
int copy_in_place(PyObject* a, PyObject* b);

// numpy's float32 inner loop for f, when f is one of the one-operand ufuncs whose own loops run on
// the kernel threads (elementwise.cpp's list: tanh, sin, log1p, ...), else nullptr; its data in
// *data. For the fused 16-bit path (bindings.cpp's unary_half): numpy's loop on a widened block.
using UfuncLoop = void (*)(char** args, const Py_ssize_t* dims, const Py_ssize_t* steps, void* data);
UfuncLoop unary_float_loop(PyObject* f, void** data);

// The UnaryOp (rows.h: 0 neg, 1 abs, 2 sqrt) that computes numpy's negative, absolute or sqrt
// bit for bit, or -1 for any other f.
int unary_op_of(PyObject* f);

// numpy's add, subtract, multiply, true_divide (BinaryOp's order), for the callers' fallbacks.
PyObject* binary_ufunc(int op);

}  // namespace tapegrad::tape
