// The only pybind11 file: every entry point checks dtype, rank, shape and strides
// here, raises a Python exception naming the op on bad input, and only then
// releases the GIL and calls a kernel that knows nothing of Python.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#if defined(__GLIBC__)
#include <malloc.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#endif
#endif
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/checked.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/conv.h"
#include "kernels/parallel.h"
#include "kernels/optim.h"
#include "kernels/pointwise.h"
#include "kernels/clamp.h"
#include "kernels/ternary.h"
#include "kernels/pool.h"
#include "kernels/resample.h"
#include "kernels/reduce.h"
#include "kernels/rnn.h"
#include "kernels/rows.h"
#include "kernels/scan.h"
#include "kernels/select.h"
#include "kernels/sort.h"
#include "kernels/shape.h"
#include "kernels/topk.h"
#include "kernels/convert.h"
#include "kernels/random.h"
#include "kernels/gather.h"
#include "elementwise.h"
#include "tape.h"

namespace py = pybind11;

namespace {

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << (shape.size() == 1 ? ",)" : ")");
  return s.str();
}

std::string shape_str(const py::array& a) {
  return shape_str(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

// A numpy array's strides in bytes, as "(s0, s1, ...)".
std::string strides_str(const py::array& a) {
  return shape_str(std::vector<py::ssize_t>(a.strides(), a.strides() + a.ndim()));
}

[[noreturn]] void fail(const std::string& op, const std::string& msg) {
  throw py::value_error(op + ": " + msg);
}

// Whether two dtypes are the same type. Never by identity alone: numpy makes a new descriptor
// object for a dtype it unpickles (every batch a DataLoader worker sends), reads from a file or
// gets through the buffer protocol, and float32 from a worker is still float32.
bool same_dtype(const py::dtype& a, const py::dtype& b) {
  return a.is(b) || py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}

// Element strides of a numpy array (numpy reports bytes).
int64_t estride(const py::array& a, int dim) { return a.strides(dim) / static_cast<int64_t>(a.itemsize()); }

void check_strides_aligned(const std::string& op, const char* name, const py::array& a) {
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    if (a.strides(d) % static_cast<py::ssize_t>(a.itemsize()) != 0)
      fail(op, std::string(name) + " has a stride that is not a multiple of its item size");
}

// The product of dims, or a ValueError naming op and what when it exceeds int64.
int64_t checked_numel(const std::string& op, const char* what, std::initializer_list<int64_t> dims) {
  int64_t n = 1;
  bool ok = true;
  for (int64_t d : dims) ok = ok && tapegrad::mul_ok(n, d, n);
  if (!ok) {
    std::string s;
    for (int64_t d : dims) s += (s.empty() ? "" : ", ") + std::to_string(d);
    fail(op, std::string(what) + " = (" + s + ") has more elements than int64 can count");
  }
  return n;
}

// The bytes [lo, hi) that a's elements span (numpy's may_share_memory works on these bounds);
// lo == hi for an empty array.
std::pair<intptr_t, intptr_t> byte_bounds(const py::array& a) {
  if (a.size() == 0) return {0, 0};
  intptr_t lo = reinterpret_cast<intptr_t>(a.data()), hi = lo;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    const intptr_t reach = static_cast<intptr_t>(a.shape(d) - 1) * a.strides(d);
    (reach < 0 ? lo : hi) += reach;
  }
  return {lo, hi + static_cast<intptr_t>(a.itemsize())};
}

bool may_share_memory(const py::array& a, const py::array& b) {
  const auto [alo, ahi] = byte_bounds(a);
  const auto [blo, bhi] = byte_bounds(b);
  return alo < ahi && blo < bhi && alo < bhi && blo < ahi;
}

// Whether two elements of a may be one memory location. Sufficient for "no": taken in order of
// increasing |stride|, each dimension steps past everything the smaller ones reach (true of
// every slice, transpose and reshape of one array); a stride 0 over more than one element fails.
bool may_overlap_itself(const py::array& a) {
  if (a.size() == 0) return false;
  std::array<std::pair<int64_t, int64_t>, 64> dims;  // (|stride| in bytes, size); numpy's NPY_MAXDIMS is 64
  size_t n = 0;
  for (py::ssize_t d = 0; d < a.ndim() && n < dims.size(); ++d)
    if (a.shape(d) > 1) dims[n++] = {std::abs(static_cast<int64_t>(a.strides(d))), a.shape(d)};
  std::sort(dims.begin(), dims.begin() + n);
  int64_t reach = static_cast<int64_t>(a.itemsize());
  for (size_t i = 0; i < n; ++i) {
    if (dims[i].first < reach) return true;
    reach += dims[i].first * (dims[i].second - 1);
  }
  return false;
}

// out= operands: an out that overlaps an input would be written while the kernel still reads
// the input (garbage), and one whose elements alias each other is written by several threads.
// Refused rather than computed into a temporary and copied: the copy would silently double the
// call's memory, and the Python layer always passes a fresh out; a caller who wants the result
// in place of an input can pass a copy of that input instead.
void check_out_overlap(const std::string& op, const py::array& out,
                       std::initializer_list<std::pair<const char*, const py::array*>> inputs) {
  if (may_overlap_itself(out))
    fail(op, "out " + shape_str(out) + " has elements that share memory (a stride-0 or self-overlapping view); "
             "pass an out array whose elements are distinct");
  for (const auto& [name, a] : inputs)
    if (may_share_memory(out, *a))
      fail(op, std::string("out overlaps ") + name + " in memory; pass an out array that shares no memory with " +
                   "the inputs (e.g. a copy)");
}

// ---------------------------------------------------------------- GEMM
// matmul(a, b, out, alpha=1, beta=0, bias=None): a (..., M, K), b (..., K, N), out (..., M, N)
// with the same leading batch shape (broadcast batch dims arrive as stride-0 views), any
// strides; bias, a contiguous (N,) vector, is added to every row of every product.
template <typename T>
void matmul_impl(const py::array& a, const py::array& b, py::array& out, double alpha, double beta,
                 const std::optional<py::array>& bias) {
  const int nd = static_cast<int>(a.ndim());
  const int64_t M = a.shape(nd - 2), K = a.shape(nd - 1), N = b.shape(nd - 1);
  int64_t batch = 1;  // fits: matmul() checked it
  for (int d = 0; d < nd - 2; ++d) batch *= a.shape(d);
  std::vector<int64_t> offa(batch), offb(batch), offc(batch);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t rem = i, oa = 0, ob = 0, oc = 0;
    for (int d = nd - 3; d >= 0; --d) {
      const int64_t idx = rem % a.shape(d);
      rem /= a.shape(d);
      oa += idx * estride(a, d);
      ob += idx * estride(b, d);
      oc += idx * estride(out, d);
    }
    offa[i] = oa; offb[i] = ob; offc[i] = oc;
  }
  const T* pa = static_cast<const T*>(a.data());
  const T* pb = static_cast<const T*>(b.data());
  T* pc = static_cast<T*>(out.mutable_data());
  const T* pbias = bias ? static_cast<const T*>(bias->data()) : nullptr;
  const int64_t rsa = estride(a, nd - 2), csa = estride(a, nd - 1);
  const int64_t rsb = estride(b, nd - 2), csb = estride(b, nd - 1);
  const int64_t rsc = estride(out, nd - 2), csc = estride(out, nd - 1);
  // Many small products (attention's per-head products): threads take them one at a time from
  // a shared counter, so a thread that starts late leaves no share behind (each gemm then runs
  // single-threaded inside the region, so every product is computed exactly as it would be
  // alone: deterministic). No two batch entries share out (matmul() refuses an out whose
  // elements alias).
  // Products up to 256^3 also go one per thread where there are at least four per thread: split
  // across the threads, a 128^3 product spent more time meeting and packing than multiplying
  // (64 of them took 1.8x PyTorch's time at 2 threads). Each product's bits are the same either
  // way (the GEMM splits rows and columns, never the sum over K).
  const double work = double(M) * double(N) * double(K);
  const bool over_batch = work * double(batch) >= 64.0 * 64.0 * 64.0 &&
                          (work < 64.0 * 64.0 * 64.0 ||
                           (work <= 256.0 * 256.0 * 256.0 && batch >= 4 * int64_t(tapegrad::num_threads())));
  py::gil_scoped_release nogil;
  // Otherwise the products run in turn and each gemm parallelises itself if large enough.
  tapegrad::parallel_tiles(batch, over_batch, [&](int64_t i) {
    tapegrad::gemm<T>(M, N, K, static_cast<T>(alpha), pa + offa[i], rsa, csa, pb + offb[i], rsb, csb,
                      static_cast<T>(beta), pc + offc[i], rsc, csc, pbias);
  });
}

// The checks every product a @ b -> out shares once the shapes chain: one dtype, a writable out
// whose strides are whole elements, and no overlap of out with a or b.
void check_product_operands(const std::string& op, const py::array& a, const py::array& b, const py::array& out) {
  if (!same_dtype(a.dtype(), b.dtype()) || !same_dtype(a.dtype(), out.dtype()))
    fail(op, "dtypes differ: " + std::string(py::str(a.dtype())) + ", " + std::string(py::str(b.dtype())) +
                 ", " + std::string(py::str(out.dtype())));
  if (!out.writeable()) fail(op, "out is read-only");
  check_strides_aligned(op, "a", a);
  check_strides_aligned(op, "b", b);
  check_strides_aligned(op, "out", out);
  check_out_overlap(op, out, {{"a", &a}, {"b", &b}});
}

void matmul(const py::array& a, const py::array& b, py::array& out, double alpha, double beta,
            const std::optional<py::array>& bias) {
  const std::string op = "matmul";
  if (a.ndim() < 2 || b.ndim() != a.ndim() || out.ndim() != a.ndim())
    fail(op, "expected a (..., M, K), b (..., K, N) and out (..., M, N) of equal rank >= 2, got " +
                 shape_str(a) + ", " + shape_str(b) + ", " + shape_str(out));
  const int nd = static_cast<int>(a.ndim());
  for (int d = 0; d < nd - 2; ++d)
    if (a.shape(d) != b.shape(d) || a.shape(d) != out.shape(d))
      fail(op, "batch dimensions differ: " + shape_str(a) + ", " + shape_str(b) + ", " + shape_str(out));
  if (a.shape(nd - 1) != b.shape(nd - 2) || out.shape(nd - 2) != a.shape(nd - 2) ||
      out.shape(nd - 1) != b.shape(nd - 1))
    fail(op, "shapes do not chain: " + shape_str(a) + " @ " + shape_str(b) + " -> " + shape_str(out));
  check_product_operands(op, a, b, out);
  // numpy bounds the product of an array's dimensions already; checked here all the same, as
  // the offset tables below have one entry per batch element.
  int64_t batch = 1;
  for (int d = 0; d < nd - 2; ++d)
    if (!tapegrad::mul_ok(batch, a.shape(d), batch))
      fail(op, "the batch dimensions of " + shape_str(a) + " have more elements than int64 can count");
  if (bias) {
    if (bias->ndim() != 1 || bias->shape(0) != out.shape(nd - 1))
      fail(op, "bias must be a vector of the " + std::to_string(out.shape(nd - 1)) + " columns of out, got " +
                   shape_str(*bias));
    if (!same_dtype(bias->dtype(), a.dtype()))
      fail(op, "bias dtype " + std::string(py::str(bias->dtype())) + " differs from " + std::string(py::str(a.dtype())));
    if (bias->shape(0) > 1 && bias->strides(0) != bias->itemsize())
      fail(op, "bias must be contiguous, got strides " + strides_str(*bias));
    check_out_overlap(op, out, {{"bias", &*bias}});
  }
  if (same_dtype(a.dtype(), py::dtype::of<float>())) matmul_impl<float>(a, b, out, alpha, beta, bias);
  else if (same_dtype(a.dtype(), py::dtype::of<double>())) matmul_impl<double>(a, b, out, alpha, beta, bias);
  else fail(op, "only float32 and float64 are supported, got " + std::string(py::str(a.dtype())));
}

// _gemm_packed(b, as, outs, alpha=1, beta=0), for tests of PackedB: b (K, N) is packed once and
// every outs[i] = alpha * as[i] @ b + beta * outs[i] is computed from that one packing, in turn.
// Any strides; float32 or float64.
template <typename T>
void gemm_packed_impl(const py::array& b, const std::vector<py::array>& as, std::vector<py::array>& outs,
                      double alpha, double beta) {
  py::gil_scoped_release nogil;
  const tapegrad::PackedB<T> pb(b.shape(0), b.shape(1), static_cast<const T*>(b.data()), estride(b, 0),
                                estride(b, 1));
  for (size_t i = 0; i < as.size(); ++i)
    tapegrad::gemm<T>(as[i].shape(0), static_cast<T>(alpha), static_cast<const T*>(as[i].data()),
                      estride(as[i], 0), estride(as[i], 1), pb, static_cast<T>(beta),
                      static_cast<T*>(outs[i].mutable_data()), estride(outs[i], 0), estride(outs[i], 1));
}

void gemm_packed(const py::array& b, const std::vector<py::array>& as, std::vector<py::array>& outs, double alpha,
                 double beta) {
  const std::string op = "_gemm_packed";
  if (b.ndim() != 2) fail(op, "expected b (K, N), got " + shape_str(b));
  if (as.size() != outs.size())
    fail(op, "as and outs differ in length: " + std::to_string(as.size()) + " and " + std::to_string(outs.size()));
  const bool f32 = same_dtype(b.dtype(), py::dtype::of<float>());
  if (!f32 && !same_dtype(b.dtype(), py::dtype::of<double>()))
    fail(op, "only float32 and float64 are supported, got " + std::string(py::str(b.dtype())));
  check_strides_aligned(op, "b", b);  // packed even when as is empty
  for (size_t i = 0; i < as.size(); ++i) {
    const py::array &a = as[i], &out = outs[i];
    if (a.ndim() != 2 || out.ndim() != 2 || a.shape(1) != b.shape(0) || out.shape(0) != a.shape(0) ||
        out.shape(1) != b.shape(1))
      fail(op, "shapes do not chain: " + shape_str(a) + " @ " + shape_str(b) + " -> " + shape_str(out));
    check_product_operands(op, a, b, out);
  }
  if (f32) gemm_packed_impl<float>(b, as, outs, alpha, beta);
  else gemm_packed_impl<double>(b, as, outs, alpha, beta);
}

// {"cpu": the CPU's level, "cap": what TAPEGRAD_CPU allows, then each family's build}.
py::dict cpu_isa() {
  py::dict d;
  d["cpu"] = tapegrad::isa_name(tapegrad::cpu_detected_isa());
  d["cap"] = tapegrad::isa_name(tapegrad::cpu_isa());
  for (int k = 0; k < tapegrad::kKernels; ++k)
    d[tapegrad::kernel_name(tapegrad::Kernel(k))] = tapegrad::isa_name(tapegrad::kernel_isa(tapegrad::Kernel(k)));
  return d;
}

}  // namespace

// ---------------------------------------------------------------- convolution and pooling
// NC + R spatial dims (R = 2: NCHW, R = 3: NCDHW), C-contiguous float32/float64 operands of one
// dtype; every size is checked here so the kernels in conv.cpp / pool.cpp can trust their
// shapes. The kernels are 3-D: a 2-D call is lifted to depth 1. Results are new arrays.
namespace convpool {

template <size_t R>
using Dims = std::array<int64_t, R>;

template <size_t R>
std::string dims_str(const Dims<R>& p) {
  std::string s = "(";
  for (size_t i = 0; i < R; ++i) s += (i ? ", " : "") + std::to_string(p[i]);
  return s + ")";
}

// The names of R spatial dims in an error message: kind "" for an input (D, H, W), "o" for an
// output (Do, Ho, Wo), "k" for a kernel (kd, kh, kw).
std::string spatial(size_t R, const std::string& kind) {
  static const char* names[] = {"D", "H", "W"};
  static const char* lower[] = {"d", "h", "w"};
  std::string s;
  for (size_t i = 3 - R; i < 3; ++i)
    s += (s.empty() ? "" : ", ") + (kind == "k" ? "k" + std::string(lower[i]) : names[i] + kind);
  return s;
}

// A 2-D geometry as a 3-D one of depth `fill` (1 for sizes, strides, dilations; 0 for padding).
template <size_t R>
Dims<3> lift(const Dims<R>& p, int64_t fill) {
  Dims<3> out{fill, fill, fill};
  std::copy(p.begin(), p.end(), out.begin() + (3 - R));
  return out;
}

void check_rank(const std::string& op, const char* name, const py::array& a, size_t rank, const std::string& layout) {
  if (a.ndim() != py::ssize_t(rank))
    fail(op, std::string("expected ") + name + " of shape " + layout + ", got " + shape_str(a));
}

void check_contiguous(const std::string& op, const char* name, const py::array& a) {
  if (!(a.flags() & py::array::c_style)) fail(op, std::string(name) + " must be C-contiguous");
}

// All operands share one float dtype; returns true for float64.
bool check_float_dtypes(const std::string& op, std::initializer_list<std::pair<const char*, const py::array*>> ops) {
  const py::array& first = *ops.begin()->second;
  const bool f64 = same_dtype(first.dtype(), py::dtype::of<double>());
  if (!f64 && !same_dtype(first.dtype(), py::dtype::of<float>()))
    fail(op, "only float32 and float64 are supported, got " + std::string(py::str(first.dtype())) + " for " +
                 ops.begin()->first);
  for (const auto& [name, a] : ops)
    if (!same_dtype(a->dtype(), first.dtype()))
      fail(op, std::string("dtypes differ: ") + ops.begin()->first + " is " + std::string(py::str(first.dtype())) +
                   ", " + name + " is " + std::string(py::str(a->dtype())));
  return f64;
}

template <size_t R>
void check_positive(const std::string& op, const char* what, const Dims<R>& p) {
  for (int64_t v : p)
    if (v <= 0) fail(op, std::string(what) + " must be positive, got " + dims_str(p));
}

template <size_t R>
void check_nonnegative(const std::string& op, const char* what, const Dims<R>& p) {
  for (int64_t v : p)
    if (v < 0) fail(op, std::string(what) + " must be non-negative, got " + dims_str(p));
}

// The product of lead followed by the R spatial dims, or a ValueError naming op and what.
template <size_t R>
int64_t checked_numel_nd(const std::string& op, const std::string& what, std::initializer_list<int64_t> lead,
                         const Dims<R>& dims) {
  int64_t n = 1;
  bool ok = true;
  std::string s;
  for (int64_t d : lead) ok = ok && tapegrad::mul_ok(n, d, n), s += (s.empty() ? "" : ", ") + std::to_string(d);
  for (int64_t d : dims) ok = ok && tapegrad::mul_ok(n, d, n), s += (s.empty() ? "" : ", ") + std::to_string(d);
  if (!ok) fail(op, what + " = (" + s + ") has more elements than int64 can count");
  return n;
}

// The spatial sizes of an array's trailing R dims.
template <size_t R>
Dims<R> trailing(const py::array& a) {
  Dims<R> d;
  for (size_t i = 0; i < R; ++i) d[i] = a.shape(a.ndim() - R + i);
  return d;
}

template <typename T>
py::array_t<T> new_array(std::initializer_list<int64_t> lead, const Dims<3>& spatial3, size_t R) {
  std::vector<py::ssize_t> shape(lead.begin(), lead.end());
  shape.insert(shape.end(), spatial3.end() - R, spatial3.end());
  return py::array_t<T>(shape);
}

// The last R of three dims (a 3-D geometry seen as the R-D one it was lifted from).
template <size_t R>
Dims<R> last(const Dims<3>& d) {
  Dims<R> out;
  std::copy(d.end() - R, d.end(), out.begin());
  return out;
}

Dims<3> out_dims(const tapegrad::ConvShape& s) { return {s.Do, s.Ho, s.Wo}; }
Dims<3> in_dims(const tapegrad::ConvShape& s) { return {s.D, s.H, s.W}; }

// Geometry shared by the three convolution entry points; checks what they have in common.
template <size_t R>
tapegrad::ConvShape conv_shape(const std::string& op, int64_t N, int64_t C, Dims<R> in, int64_t O, Dims<R> k,
                               Dims<R> stride, Dims<R> padding, Dims<R> dilation, int64_t groups) {
  check_positive(op, "stride", stride);
  check_nonnegative(op, "padding", padding);
  check_positive(op, "dilation", dilation);
  check_positive(op, "kernel size", k);
  check_positive(op, "input size", in);
  if (groups < 1) fail(op, "groups must be positive, got " + std::to_string(groups));
  if (C < 1 || O < 1)
    fail(op, "channel counts must be positive, got in_channels=" + std::to_string(C) +
                 ", out_channels=" + std::to_string(O));
  if (C % groups || O % groups)
    fail(op, "groups=" + std::to_string(groups) + " must divide in_channels=" + std::to_string(C) +
                 " and out_channels=" + std::to_string(O));
  const Dims<3> in3 = lift(in, 1), k3 = lift(k, 1), st3 = lift(stride, 1), pad3 = lift(padding, 0),
                dil3 = lift(dilation, 1);
  tapegrad::ConvShape s{};
  s.N = N; s.C = C; s.O = O; s.groups = groups;
  s.D = in3[0]; s.H = in3[1]; s.W = in3[2]; s.kd = k3[0]; s.kh = k3[1]; s.kw = k3[2];
  s.sd = st3[0]; s.sh = st3[1]; s.sw = st3[2]; s.pd = pad3[0]; s.ph = pad3[1]; s.pw = pad3[2];
  s.dd = dil3[0]; s.dh = dil3[1]; s.dw = dil3[2];
  const auto geometry = [&] {  // built only for an error: this runs on every call
    return "input " + dims_str(in) + ", kernel " + dims_str(k) + ", stride " + dims_str(stride) + ", padding " +
           dims_str(padding) + ", dilation " + dims_str(dilation);
  };
  if (!tapegrad::conv_out_size(s.D, s.kd, s.sd, s.pd, s.dd, s.Do) ||
      !tapegrad::conv_out_size(s.H, s.kh, s.sh, s.ph, s.dh, s.Ho) ||
      !tapegrad::conv_out_size(s.W, s.kw, s.sw, s.pw, s.dw, s.Wo))
    fail(op, "output size overflows int64: " + geometry());
  if (s.Do < 1 || s.Ho < 1 || s.Wo < 1) fail(op, "output would be empty: " + geometry());
  checked_numel_nd(op, "the output (N, O, " + spatial(R, "o") + ")", {N, O}, last<R>(out_dims(s)));
  checked_numel_nd(op, "a weight group (C/groups, " + spatial(R, "k") + ")", {C / groups}, k);
  return s;
}

// gy's spatial size must fit the geometry: the convolution's own output size, or smaller (a
// transposed convolution with output_padding, whose extra elements are taps that read no output).
// Sets s's output size to gy's.
template <size_t R>
void fit_grad_output(const std::string& op, const py::array& gy, tapegrad::ConvShape& s) {
  const Dims<R> have = trailing<R>(gy);
  const Dims<3> want = out_dims(s), have3 = lift(have, 1);
  for (size_t i = 0; i < 3; ++i)
    if (have3[i] < 1 || have3[i] > want[i])
      fail(op, "grad_output " + shape_str(gy) + " does not fit input size " + dims_str(last<R>(in_dims(s))) +
                   " whose convolution output is " + dims_str(last<R>(want)));
  s.Do = have3[0];
  s.Ho = have3[1];
  s.Wo = have3[2];
}

template <size_t R>
py::array conv(const std::string& op, const py::array& x, const py::array& w, const std::optional<py::array>& bias,
               Dims<R> stride, Dims<R> padding, Dims<R> dilation, int64_t groups) {
  check_rank(op, "x", x, R + 2, "(N, C, " + spatial(R, "") + ")");
  check_rank(op, "weight", w, R + 2, "(O, C/groups, " + spatial(R, "k") + ")");
  const bool f64 = bias ? check_float_dtypes(op, {{"x", &x}, {"weight", &w}, {"bias", &*bias}})
                        : check_float_dtypes(op, {{"x", &x}, {"weight", &w}});
  const int64_t N = x.shape(0), C = x.shape(1), O = w.shape(0);
  auto s = conv_shape<R>(op, N, C, trailing<R>(x), O, trailing<R>(w), stride, padding, dilation, groups);
  s.op = R == 2 ? "conv2d" : "conv3d";
  if (w.shape(1) * groups != C)
    fail(op, "weight " + shape_str(w) + " with groups=" + std::to_string(groups) + " expects " +
                 std::to_string(w.shape(1) * groups) + " input channels, x " + shape_str(x) + " has " +
                 std::to_string(C));
  if (bias && (bias->ndim() != 1 || bias->shape(0) != O))
    fail(op, "bias must have shape (" + std::to_string(O) + ",), got " + shape_str(*bias));
  check_contiguous(op, "x", x);
  check_contiguous(op, "weight", w);
  if (bias) check_contiguous(op, "bias", *bias);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = new_array<T>({N, O}, out_dims(s), R);
    const T* px = static_cast<const T*>(x.data());
    const T* pw = static_cast<const T*>(w.data());
    const T* pb = bias ? static_cast<const T*>(bias->data()) : nullptr;
    T* py_ = y.mutable_data();
    py::gil_scoped_release nogil;
    tapegrad::conv_forward<T>(s, px, pw, pb, py_);
    return y;
  };
  return f64 ? run(double{}) : run(float{});
}

template <size_t R>
py::array conv_input_grad(const std::string& op, const py::array& gy, const py::array& w, Dims<R> input_size,
                          Dims<R> stride, Dims<R> padding, Dims<R> dilation, int64_t groups) {
  check_rank(op, "grad_output", gy, R + 2, "(N, O, " + spatial(R, "o") + ")");
  check_rank(op, "weight", w, R + 2, "(O, C/groups, " + spatial(R, "k") + ")");
  const bool f64 = check_float_dtypes(op, {{"grad_output", &gy}, {"weight", &w}});
  const int64_t N = gy.shape(0), O = w.shape(0), C = w.shape(1) * groups;
  if (gy.shape(1) != O)
    fail(op, "grad_output " + shape_str(gy) + " has " + std::to_string(gy.shape(1)) + " channels, weight " +
                 shape_str(w) + " has " + std::to_string(O) + " output channels");
  auto s = conv_shape<R>(op, N, C, input_size, O, trailing<R>(w), stride, padding, dilation, groups);
  s.op = R == 2 ? "conv2d_input_grad" : "conv3d_input_grad";
  checked_numel_nd(op, "the input gradient (N, C, " + spatial(R, "") + ")", {N, C}, input_size);
  fit_grad_output<R>(op, gy, s);
  check_contiguous(op, "grad_output", gy);
  check_contiguous(op, "weight", w);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto gx = new_array<T>({N, C}, in_dims(s), R);
    const T* pgy = static_cast<const T*>(gy.data());
    const T* pw = static_cast<const T*>(w.data());
    T* pgx = gx.mutable_data();
    py::gil_scoped_release nogil;
    tapegrad::conv_input_grad<T>(s, pgy, pw, pgx);
    return gx;
  };
  return f64 ? run(double{}) : run(float{});
}

template <size_t R>
py::array conv_weight_grad(const std::string& op, const py::array& x, const py::array& gy, Dims<R> kernel_size,
                           Dims<R> stride, Dims<R> padding, Dims<R> dilation, int64_t groups) {
  check_rank(op, "x", x, R + 2, "(N, C, " + spatial(R, "") + ")");
  check_rank(op, "grad_output", gy, R + 2, "(N, O, " + spatial(R, "o") + ")");
  const bool f64 = check_float_dtypes(op, {{"x", &x}, {"grad_output", &gy}});
  const int64_t N = x.shape(0), C = x.shape(1), O = gy.shape(1);
  if (gy.shape(0) != N)
    fail(op, "batch sizes differ: x " + shape_str(x) + ", grad_output " + shape_str(gy));
  auto s = conv_shape<R>(op, N, C, trailing<R>(x), O, kernel_size, stride, padding, dilation, groups);
  s.op = R == 2 ? "conv2d_weight_grad" : "conv3d_weight_grad";
  checked_numel_nd(op, "the weight gradient (O, C/groups, " + spatial(R, "k") + ")", {O, C / groups}, kernel_size);
  fit_grad_output<R>(op, gy, s);
  check_contiguous(op, "x", x);
  check_contiguous(op, "grad_output", gy);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto gw = new_array<T>({O, C / groups}, {s.kd, s.kh, s.kw}, R);
    const T* px = static_cast<const T*>(x.data());
    const T* pgy = static_cast<const T*>(gy.data());
    T* pgw = gw.mutable_data();
    py::gil_scoped_release nogil;
    tapegrad::conv_weight_grad<T>(s, px, pgy, pgw);
    return gw;
  };
  return f64 ? run(double{}) : run(float{});
}

template <size_t R>
py::array conv_bias_grad(const std::string& op, const py::array& gy) {
  check_rank(op, "grad_output", gy, R + 2, "(N, O, " + spatial(R, "o") + ")");
  const bool f64 = check_float_dtypes(op, {{"grad_output", &gy}});
  check_contiguous(op, "grad_output", gy);
  const int64_t N = gy.shape(0), O = gy.shape(1);
  int64_t P = 1;
  for (int64_t d : trailing<R>(gy)) P *= d;  // the array exists: its size fits
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto gb = py::array_t<T>(std::vector<py::ssize_t>{O});
    const T* pgy = static_cast<const T*>(gy.data());
    T* pgb = gb.mutable_data();
    py::gil_scoped_release nogil;
    tapegrad::conv_bias_grad<T>(N, O, P, pgy, pgb);
    return gb;
  };
  return f64 ? run(double{}) : run(float{});
}

Dims<3> out_dims(const tapegrad::PoolShape& s) { return {s.Do, s.Ho, s.Wo}; }
Dims<3> in_dims(const tapegrad::PoolShape& s) { return {s.D, s.H, s.W}; }

// Pooling geometry, with PyTorch's checks (pad at most half the kernel, non-empty output).
template <size_t R>
tapegrad::PoolShape pool_shape(const std::string& op, int64_t planes, Dims<R> in, Dims<R> k, Dims<R> stride,
                               Dims<R> padding, Dims<R> dilation, bool ceil_mode) {
  check_positive(op, "kernel_size", k);
  check_positive(op, "stride", stride);
  check_nonnegative(op, "padding", padding);
  check_positive(op, "dilation", dilation);
  check_positive(op, "input size", in);
  for (size_t i = 0; i < R; ++i)
    if (padding[i] > k[i] / 2)
      fail(op, "padding " + dims_str(padding) + " must be at most half of kernel_size " + dims_str(k));
  // its tap count, avg_pool's divisor
  checked_numel_nd(op, "a window of kernel_size (" + spatial(R, "k") + ")", {}, k);
  const Dims<3> in3 = lift(in, 1), k3 = lift(k, 1), st3 = lift(stride, 1), pad3 = lift(padding, 0),
                dil3 = lift(dilation, 1);
  tapegrad::PoolShape s{};
  s.planes = planes;
  s.D = in3[0]; s.H = in3[1]; s.W = in3[2]; s.kd = k3[0]; s.kh = k3[1]; s.kw = k3[2];
  s.sd = st3[0]; s.sh = st3[1]; s.sw = st3[2]; s.pd = pad3[0]; s.ph = pad3[1]; s.pw = pad3[2];
  s.dd = dil3[0]; s.dh = dil3[1]; s.dw = dil3[2];
  const auto geometry = [&] {  // built only for an error: this runs on every call
    return "input " + dims_str(in) + ", kernel_size " + dims_str(k) + ", stride " + dims_str(stride) +
           ", padding " + dims_str(padding) + ", dilation " + dims_str(dilation);
  };
  if (!tapegrad::pool_out_size(s.D, s.kd, s.sd, s.pd, s.dd, ceil_mode, s.Do) ||
      !tapegrad::pool_out_size(s.H, s.kh, s.sh, s.ph, s.dh, ceil_mode, s.Ho) ||
      !tapegrad::pool_out_size(s.W, s.kw, s.sw, s.pw, s.dw, ceil_mode, s.Wo))
    fail(op, "output size overflows int64: " + geometry());
  if (s.Do < 1 || s.Ho < 1 || s.Wo < 1) fail(op, "output would be empty: " + geometry());
  checked_numel_nd(op, "the output (N*C, " + spatial(R, "o") + ")", {planes}, last<R>(out_dims(s)));
  checked_numel_nd(op, "the input (N*C, " + spatial(R, "") + ")", {planes}, in);
  return s;
}

template <size_t R>
void check_pool_grad_output(const std::string& op, const py::array& gy, const tapegrad::PoolShape& s) {
  const Dims<3> want = out_dims(s);
  if (lift(trailing<R>(gy), 1) != want)
    fail(op, "grad_output " + shape_str(gy) + " does not match the pooled size " + dims_str(last<R>(want)) +
                 " of input size " + dims_str(last<R>(in_dims(s))));
}

template <size_t R>
py::tuple max_pool(const std::string& op, const py::array& x, Dims<R> kernel, Dims<R> stride, Dims<R> padding,
                   Dims<R> dilation, bool ceil_mode) {
  check_rank(op, "x", x, R + 2, "(N, C, " + spatial(R, "") + ")");
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  const int64_t N = x.shape(0), C = x.shape(1);
  const auto s = pool_shape<R>(op, N * C, trailing<R>(x), kernel, stride, padding, dilation, ceil_mode);
  auto run = [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto y = new_array<T>({N, C}, out_dims(s), R);
    auto idx = new_array<int64_t>({N, C}, out_dims(s), R);
    const T* px = static_cast<const T*>(x.data());
    T* py_ = y.mutable_data();
    int64_t* pidx = idx.mutable_data();
    {
      py::gil_scoped_release nogil;
      tapegrad::max_pool_forward<T>(s, px, py_, pidx);
    }
    return py::make_tuple(y, idx);
  };
  return f64 ? run(double{}) : run(float{});
}

template <size_t R>
py::array max_pool_backward(const std::string& op, const py::array& gy, const py::array& indices,
                            Dims<R> input_size) {
  check_rank(op, "grad_output", gy, R + 2, "(N, C, " + spatial(R, "o") + ")");
  const bool f64 = check_float_dtypes(op, {{"grad_output", &gy}});
  check_positive(op, "input size", input_size);
  if (!same_dtype(indices.dtype(), py::dtype::of<int64_t>()))
    fail(op, "indices must be int64, got " + std::string(py::str(indices.dtype())));
  if (indices.ndim() != gy.ndim() || !std::equal(gy.shape(), gy.shape() + gy.ndim(), indices.shape()))
    fail(op, "indices " + shape_str(indices) + " must have grad_output's shape " + shape_str(gy));
  check_contiguous(op, "grad_output", gy);
  check_contiguous(op, "indices", indices);
  const int64_t N = gy.shape(0), C = gy.shape(1);
  int64_t Vo = 1;
  for (int64_t d : trailing<R>(gy)) Vo *= d;  // the array exists: its size fits
  const int64_t V = checked_numel_nd(op, "an input plane (" + spatial(R, "") + ")", {}, input_size);
  checked_numel_nd(op, "the input gradient (N, C, " + spatial(R, "") + ")", {N, C}, input_size);
  const int64_t* pidx = static_cast<const int64_t*>(indices.data());
  for (int64_t i = 0, n = N * C * Vo; i < n; ++i)
    if (pidx[i] < -1 || pidx[i] >= V)
      fail(op, "index " + std::to_string(pidx[i]) + " out of range for input size " + dims_str(input_size));
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto gx = new_array<T>({N, C}, lift(input_size, 1), R);
    const T* pgy = static_cast<const T*>(gy.data());
    T* pgx = gx.mutable_data();
    py::gil_scoped_release nogil;
    tapegrad::max_pool_backward<T>(N * C, V, Vo, pgy, pidx, pgx);
    return gx;
  };
  return f64 ? run(double{}) : run(float{});
}

void check_divisor(const std::string& op, int64_t divisor_override) {
  if (divisor_override < 0)
    fail(op, "divisor_override must be positive (or 0 for none), got " + std::to_string(divisor_override));
}

template <size_t R>
Dims<R> ones() {
  Dims<R> d;
  d.fill(1);
  return d;
}

template <size_t R>
py::array avg_pool(const std::string& op, const py::array& x, Dims<R> kernel, Dims<R> stride, Dims<R> padding,
                   bool ceil_mode, bool count_include_pad, int64_t divisor_override) {
  check_rank(op, "x", x, R + 2, "(N, C, " + spatial(R, "") + ")");
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  check_divisor(op, divisor_override);
  const int64_t N = x.shape(0), C = x.shape(1);
  const auto s = pool_shape<R>(op, N * C, trailing<R>(x), kernel, stride, padding, ones<R>(), ceil_mode);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = new_array<T>({N, C}, out_dims(s), R);
    const T* px = static_cast<const T*>(x.data());
    T* py_ = y.mutable_data();
    py::gil_scoped_release nogil;
    tapegrad::avg_pool_forward<T>(s, count_include_pad, divisor_override, px, py_);
    return y;
  };
  return f64 ? run(double{}) : run(float{});
}

template <size_t R>
py::array avg_pool_backward(const std::string& op, const py::array& gy, Dims<R> input_size, Dims<R> kernel,
                            Dims<R> stride, Dims<R> padding, bool ceil_mode, bool count_include_pad,
                            int64_t divisor_override) {
  check_rank(op, "grad_output", gy, R + 2, "(N, C, " + spatial(R, "o") + ")");
  const bool f64 = check_float_dtypes(op, {{"grad_output", &gy}});
  check_contiguous(op, "grad_output", gy);
  check_divisor(op, divisor_override);
  const int64_t N = gy.shape(0), C = gy.shape(1);
  const auto s = pool_shape<R>(op, N * C, input_size, kernel, stride, padding, ones<R>(), ceil_mode);
  check_pool_grad_output<R>(op, gy, s);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto gx = new_array<T>({N, C}, in_dims(s), R);
    const T* pgy = static_cast<const T*>(gy.data());
    T* pgx = gx.mutable_data();
    py::gil_scoped_release nogil;
    tapegrad::avg_pool_backward<T>(s, count_include_pad, divisor_override, pgy, pgx);
    return gx;
  };
  return f64 ? run(double{}) : run(float{});
}

// The entry points of one spatial rank: conv2d, ..., avg_pool2d_backward for R = 2 and their
// conv3d, ... counterparts for R = 3.
template <size_t R>
void define_rank(py::module_& m) {
  using D = Dims<R>;
  const std::string n = std::to_string(R) + "d";
  const std::string in = "(N, C, " + spatial(R, "") + ")", k = spatial(R, "k");
  auto name = [&](const std::string& base, const std::string& suffix = "") { return base + n + suffix; };
  m.def(
      name("conv").c_str(),
      [op = name("conv")](const py::array& x, const py::array& w, const std::optional<py::array>& bias, D stride,
                          D padding, D dilation, int64_t groups) {
        return conv<R>(op, x, w, bias, stride, padding, dilation, groups);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      py::arg("groups"),
      (("y = " + name("conv") + "(x, weight) + bias for x " + in + ", weight (O, C/groups, " + k +
        "), bias (O,) or None.")
           .c_str()));
  m.def(
      name("conv", "_input_grad").c_str(),
      [op = name("conv", "_input_grad")](const py::array& gy, const py::array& w, D input_size, D stride,
                                         D padding, D dilation, int64_t groups) {
        return conv_input_grad<R>(op, gy, w, input_size, stride, padding, dilation, groups);
      },
      py::arg("grad_output"), py::arg("weight"), py::arg("input_size"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"),
      ("Gradient of " + name("conv") + " w.r.t. its input of size input_size; also conv_transpose" + n +
       "'s forward.")
          .c_str());
  m.def(
      name("conv", "_weight_grad").c_str(),
      [op = name("conv", "_weight_grad")](const py::array& x, const py::array& gy, D kernel_size, D stride,
                                          D padding, D dilation, int64_t groups) {
        return conv_weight_grad<R>(op, x, gy, kernel_size, stride, padding, dilation, groups);
      },
      py::arg("x"), py::arg("grad_output"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"),
      ("Gradient of " + name("conv") + " w.r.t. its weight (O, C/groups, " + k +
       "); deterministic over the batch sum.")
          .c_str());
  m.def(
      name("conv", "_bias_grad").c_str(),
      [op = name("conv", "_bias_grad")](const py::array& gy) { return conv_bias_grad<R>(op, gy); },
      py::arg("grad_output"),
      ("Gradient of " + name("conv") + " w.r.t. its bias: grad_output summed over all but dim 1.").c_str());
  m.def(
      name("max_pool").c_str(),
      [op = name("max_pool")](const py::array& x, D kernel, D stride, D padding, D dilation, bool ceil_mode) {
        return max_pool<R>(op, x, kernel, stride, padding, dilation, ceil_mode);
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      py::arg("ceil_mode"),
      ("(values, int64 indices into each (" + spatial(R, "") + ") plane) of " + name("max_pool") +
       ", PyTorch's first-max tie rule.")
          .c_str());
  m.def(
      name("max_pool", "_backward").c_str(),
      [op = name("max_pool", "_backward")](const py::array& gy, const py::array& indices, D input_size) {
        return max_pool_backward<R>(op, gy, indices, input_size);
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("input_size"),
      ("Scatter-adds grad_output at " + name("max_pool") + "'s indices into an " + in + " gradient.").c_str());
  m.def(
      name("avg_pool").c_str(),
      [op = name("avg_pool")](const py::array& x, D kernel, D stride, D padding, bool ceil_mode,
                              bool count_include_pad, int64_t divisor_override) {
        return avg_pool<R>(op, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
      py::arg("count_include_pad"), py::arg("divisor_override"),
      (name("avg_pool") + "; divisor_override 0 means none.").c_str());
  m.def(
      name("avg_pool", "_backward").c_str(),
      [op = name("avg_pool", "_backward")](const py::array& gy, D input_size, D kernel, D stride, D padding,
                                           bool ceil_mode, bool count_include_pad, int64_t divisor_override) {
        return avg_pool_backward<R>(op, gy, input_size, kernel, stride, padding, ceil_mode, count_include_pad,
                                    divisor_override);
      },
      py::arg("grad_output"), py::arg("input_size"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"),
      ("Gradient of " + name("avg_pool") + " w.r.t. its input.").c_str());
}


// F.interpolate's bilinear / nearest / nearest-exact and adaptive_avg_pool2d on (N, C, H, W)
// (csrc/kernels/resample.cpp). scale_h / scale_w: the scale_factor the output size came from, or
// <= 0 for none (PyTorch's source positions depend on it).
tapegrad::Resample resample_mode(const std::string& op, const std::string& mode) {
  if (mode == "bilinear") return tapegrad::Resample::bilinear;
  if (mode == "nearest") return tapegrad::Resample::nearest;
  if (mode == "nearest-exact") return tapegrad::Resample::nearest_exact;
  if (mode == "adaptive_avg") return tapegrad::Resample::adaptive_avg;
  fail(op, "unknown mode '" + mode + "' (bilinear, nearest, nearest-exact, adaptive_avg)");
  return tapegrad::Resample::bilinear;
}

py::array resample2d(const std::string& op, const py::array& x, const std::string& mode, Dims<2> output_size,
                     bool align_corners, double scale_h, double scale_w, bool backward) {
  const char* name = backward ? "grad_output" : "x";
  check_rank(op, name, x, 4, backward ? "(N, C, Ho, Wo)" : "(N, C, H, W)");
  const bool f64 = check_float_dtypes(op, {{name, &x}});
  check_contiguous(op, name, x);
  check_positive(op, backward ? "input size" : "output size", output_size);
  const auto m = resample_mode(op, mode);
  const int64_t N = x.shape(0), C = x.shape(1);
  if (!backward && (x.shape(2) == 0 || x.shape(3) == 0))
    fail(op, "input " + shape_str(x) + " must have non-empty spatial dims");
  checked_numel_nd(op, backward ? "the input gradient (N, C, H, W)" : "the output (N, C, Ho, Wo)", {N, C},
                   output_size);
  tapegrad::ResampleShape s{N * C, 0, 0, 0, 0, align_corners, scale_h, scale_w};
  if (backward) {
    s.H = output_size[0], s.W = output_size[1], s.Ho = x.shape(2), s.Wo = x.shape(3);
  } else {
    s.H = x.shape(2), s.W = x.shape(3), s.Ho = output_size[0], s.Wo = output_size[1];
  }
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = py::array_t<T>(std::vector<py::ssize_t>{N, C, output_size[0], output_size[1]});
    const T* px = static_cast<const T*>(x.data());
    T* py_ = y.mutable_data();
    py::gil_scoped_release nogil;
    if (backward)
      tapegrad::resample2d_backward<T>(s, m, px, py_);
    else
      tapegrad::resample2d_forward<T>(s, m, px, py_);
    return y;
  };
  return f64 ? run(double{}) : run(float{});
}

py::tuple adaptive_max_pool2d(const py::array& x, Dims<2> output_size) {
  const std::string op = "adaptive_max_pool2d";
  check_rank(op, "x", x, 4, "(N, C, H, W)");
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  check_positive(op, "output size", output_size);
  const int64_t N = x.shape(0), C = x.shape(1);
  if (x.shape(2) == 0 || x.shape(3) == 0) fail(op, "input " + shape_str(x) + " must have non-empty spatial dims");
  checked_numel_nd(op, "the output (N, C, Ho, Wo)", {N, C}, output_size);
  const tapegrad::ResampleShape s{N * C, x.shape(2), x.shape(3), output_size[0], output_size[1], false, -1, -1};
  const std::vector<py::ssize_t> shape{N, C, output_size[0], output_size[1]};
  py::array_t<int64_t> idx(shape);
  auto run = [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    py::array_t<T> y(shape);
    const T* px = static_cast<const T*>(x.data());
    T* py_ = y.mutable_data();
    int64_t* pidx = idx.mutable_data();
    {
      py::gil_scoped_release nogil;
      tapegrad::adaptive_max_pool2d_forward<T>(s, px, py_, pidx);
    }
    return py::make_tuple(y, idx);
  };
  return f64 ? run(double{}) : run(float{});
}

void define(py::module_& m) {
  define_rank<2>(m);
  define_rank<3>(m);
  m.def("adaptive_max_pool2d", &adaptive_max_pool2d, py::arg("x"), py::arg("output_size"),
        "(values, int64 flat indices into each H*W plane) of adaptive_max_pool2d on x (N, C, H, W).");
  m.def(
      "resample2d",
      [](const py::array& x, const std::string& mode, Dims<2> output_size, bool align_corners, double scale_h,
         double scale_w) {
        return resample2d("resample2d", x, mode, output_size, align_corners, scale_h, scale_w, false);
      },
      py::arg("x"), py::arg("mode"), py::arg("output_size"), py::arg("align_corners"), py::arg("scale_h"),
      py::arg("scale_w"),
      "x (N, C, H, W) resampled to (N, C, *output_size): mode 'bilinear', 'nearest', 'nearest-exact' "
      "(F.interpolate; scale_h, scale_w the scale_factor or <= 0 for none) or 'adaptive_avg' "
      "(adaptive_avg_pool2d).");
  m.def(
      "resample2d_backward",
      [](const py::array& gy, const std::string& mode, Dims<2> input_size, bool align_corners, double scale_h,
         double scale_w) {
        return resample2d("resample2d_backward", gy, mode, input_size, align_corners, scale_h, scale_w, true);
      },
      py::arg("grad_output"), py::arg("mode"), py::arg("input_size"), py::arg("align_corners"),
      py::arg("scale_h"), py::arg("scale_w"),
      "Gradient of resample2d w.r.t. its input of size input_size (its adjoint applied to grad_output).");
}

}  // namespace convpool

// ---------------------------------------------------------------- activations and row kernels
// GELU, softmax / log_softmax over the last dim, layer_norm over the trailing D elements and
// cross_entropy over (R, C) logits (csrc/kernels/rows.cpp). C-contiguous float32/float64
// operands of one dtype; results are new arrays of the input's dtype.
namespace rows {

using convpool::check_contiguous;
using convpool::check_float_dtypes;

void check_same_shape(const std::string& op, const char* an, const py::array& a, const char* bn,
                      const py::array& b) {
  if (a.ndim() != b.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), b.shape()))
    fail(op, std::string(an) + " " + shape_str(a) + " and " + bn + " " + shape_str(b) + " must have one shape");
}

py::array empty_like(const py::array& a) {
  return py::array(a.dtype(), std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

template <typename T>
T* ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <typename T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
const T* cptr(const std::optional<py::array>& a) { return a ? static_cast<const T*>(a->data()) : nullptr; }

// (rows, last-dim size) of an array of rank >= 1 with a non-empty last dim.
std::pair<int64_t, int64_t> row_shape(const std::string& op, const py::array& x) {
  if (x.ndim() < 1 || x.shape(x.ndim() - 1) < 1)
    fail(op, "expected an input of rank >= 1 with a non-empty last dim, got " + shape_str(x));
  const int64_t D = x.shape(x.ndim() - 1);
  return {static_cast<int64_t>(x.size()) / D, D};
}

py::array gelu(const py::array& x, bool tanh_approx) {
  const std::string op = "gelu";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  py::array y = empty_like(x);
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::gelu_forward<double>(n, cptr<double>(x), ptr<double>(y), tanh_approx);
  else tapegrad::gelu_forward<float>(n, cptr<float>(x), ptr<float>(y), tanh_approx);
  return y;
}

py::array gelu_backward(const py::array& g, const py::array& x, bool tanh_approx) {
  const std::string op = "gelu_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"x", &x}});
  check_same_shape(op, "grad_output", g, "x", x);
  check_contiguous(op, "grad_output", g);
  check_contiguous(op, "x", x);
  py::array gx = empty_like(x);
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::gelu_backward<double>(n, cptr<double>(g), cptr<double>(x), ptr<double>(gx), tanh_approx);
  else tapegrad::gelu_backward<float>(n, cptr<float>(g), cptr<float>(x), ptr<float>(gx), tanh_approx);
  return gx;
}

// How cumsum's kernel sees x along dim: (outer, n, inner) with element strides, and the strides
// (bytes) its result gets.
struct ScanPlan {
  int64_t outer = 1, n = 1, inner = 1, xs_outer = 0, xs_n = 0, xs_inner = 0;
  std::vector<py::ssize_t> y_strides;  // empty: C-contiguous
};

// The dims [lo, hi) of a as one axis: (size, element stride) when they step through memory as one
// (sizes-1 dims ignored), nullopt when they do not.
std::optional<std::pair<int64_t, int64_t>> merged_axis(const py::array& a, int lo, int hi) {
  int64_t size = 1, stride = 0;
  for (int d = lo; d < hi; ++d) {
    if (a.shape(d) == 1) continue;
    if (size > 1 && stride != estride(a, d) * a.shape(d)) return std::nullopt;
    size *= a.shape(d);
    stride = estride(a, d);
  }
  return std::make_pair(size, stride);
}

// A dense x (its elements fill a block of memory, in any order of its dims: C, F, a transpose)
// gives its result the same strides, and the scan runs on the block as a C-contiguous
// (outer, n, inner), inner being the elements below dim's stride; a strided view whose dims
// before and after dim each merge into one axis (a slice with steps, a broadcast) is read in place
// into a C-contiguous result; nullopt for the rest (the caller copies x).
std::optional<ScanPlan> scan_plan(const py::array& x, int dim) {
  ScanPlan p;
  p.n = x.shape(dim);
  const int64_t size = static_cast<int64_t>(x.size());
  std::vector<std::pair<int64_t, int64_t>> dims;  // (element stride, size) of the non-trivial dims
  for (int d = 0; d < x.ndim(); ++d)
    if (x.shape(d) > 1) dims.push_back({estride(x, d), x.shape(d)});
  std::sort(dims.begin(), dims.end());
  int64_t reach = 1;
  bool dense = true;
  for (const auto& [s, len] : dims) {
    dense = dense && s == reach;
    reach *= len;
  }
  if (dense) {
    p.y_strides.assign(x.strides(), x.strides() + x.ndim());
    p.inner = p.n > 1 ? estride(x, dim) : size;  // one step: a copy, as one row of running sums
    if (p.n == 1) p.outer = 1;
    else p.outer = size / (p.n * p.inner);
    p.xs_inner = 1;
    p.xs_n = p.inner;
    p.xs_outer = p.n * p.inner;
    return p;
  }
  const auto before = merged_axis(x, 0, dim), after = merged_axis(x, dim + 1, static_cast<int>(x.ndim()));
  if (!before || !after) return std::nullopt;
  std::tie(p.outer, p.xs_outer) = *before;
  std::tie(p.inner, p.xs_inner) = *after;
  p.xs_n = estride(x, dim);
  return p;
}

// Running sums of x along dim (reverse: from the end), accumulated in double.
py::array cumsum(py::array x, int64_t dim, bool reverse) {
  const std::string op = reverse ? "cumsum (reverse)" : "cumsum";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  const int64_t nd = x.ndim();
  if (nd < 1) fail(op, "expected an input of rank >= 1, got shape " + shape_str(x));
  if (dim < -nd || dim >= nd)
    fail(op, "dim " + std::to_string(dim) + " is out of range for an input of shape " + shape_str(x));
  if (dim < 0) dim += nd;
  check_strides_aligned(op, "x", x);
  if (x.size() == 0) return empty_like(x);
  std::optional<ScanPlan> plan = scan_plan(x, static_cast<int>(dim));
  if (!plan) {  // dims that no two strides describe: a C-contiguous copy, which is dense
    x = py::array::ensure(x, py::array::c_style);
    plan = scan_plan(x, static_cast<int>(dim));
  }
  const std::vector<py::ssize_t> shape(x.shape(), x.shape() + nd);
  py::array y = plan->y_strides.empty() ? py::array(x.dtype(), shape) : py::array(x.dtype(), shape, plan->y_strides);
  const ScanPlan p = *plan;
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::cumsum<double>(p.outer, p.n, p.inner, cptr<double>(x), p.xs_outer, p.xs_n, p.xs_inner, ptr<double>(y),
                             reverse);
  else
    tapegrad::cumsum<float>(p.outer, p.n, p.inner, cptr<float>(x), p.xs_outer, p.xs_n, p.xs_inner, ptr<float>(y),
                            reverse);
  return y;
}

// out (C-contiguous float32 / float64) filled with N(mean, std^2) samples from raw's words (random.h).
void normal_from_bits(const py::array& raw, py::array& out, double mean, double std) {
  const std::string op = "normal";
  const bool f64 = check_float_dtypes(op, {{"out", &out}});
  check_contiguous(op, "out", out);
  if (!out.writeable()) fail(op, "out is read-only");
  if (raw.dtype().kind() != 'u' || raw.itemsize() != 8 || !(raw.flags() & py::array::c_style))
    fail(op, "raw must be a C-contiguous uint64 array, got " + std::string(py::str(raw.dtype())));
  const int64_t n = out.size(), need = (f64 ? 2 : 1) * ((n + 1) / 2);
  if (raw.size() != need)
    fail(op, std::to_string(n) + " samples need " + std::to_string(need) + " raw words, got " +
                 std::to_string(raw.size()));
  const auto* words = static_cast<const uint64_t*>(raw.data());
  void* o = out.mutable_data();
  py::gil_scoped_release nogil;
  if (f64) tapegrad::normal_from_bits(words, n, mean, std, static_cast<double*>(o));
  else tapegrad::normal_from_bits(words, n, mean, std, static_cast<float*>(o));
}

// A float32 <-> 16-bit conversion (convert.h) between two C-contiguous arrays of one size: src
// float32 and dst the 16-bit array's uint16 view, or the other way round.
void convert_half(const py::array& src, py::array& dst, bool bf16) {
  const std::string op = "convert_half";
  if (src.size() != dst.size()) fail(op, "sizes differ: " + shape_str(src) + " and " + shape_str(dst));
  if (!(src.flags() & py::array::c_style) || !(dst.flags() & py::array::c_style))
    fail(op, "both arrays must be C-contiguous");
  if (!dst.writeable()) fail(op, "dst is read-only");
  const auto is = [](const py::array& a, char kind, int size) { return a.dtype().kind() == kind && a.itemsize() == size; };
  const auto kind = bf16 ? tapegrad::Half::bf16 : tapegrad::Half::f16;
  const int64_t n = src.size();
  if (is(src, 'f', 4) && is(dst, 'u', 2)) {
    const float* x = static_cast<const float*>(src.data());
    auto* y = static_cast<uint16_t*>(dst.mutable_data());
    py::gil_scoped_release nogil;
    tapegrad::floats_to_half(x, y, n, kind);
  } else if (is(src, 'u', 2) && is(dst, 'f', 4)) {
    const auto* x = static_cast<const uint16_t*>(src.data());
    float* y = static_cast<float*>(dst.mutable_data());
    py::gil_scoped_release nogil;
    tapegrad::half_to_floats(x, y, n, kind);
  } else {
    fail(op, "expected float32 -> uint16 or uint16 -> float32, got " + std::string(py::str(src.dtype())) + " -> " +
                 std::string(py::str(dst.dtype())));
  }
}

// binary_half (convert.h): out (a uint16 view of a 16-bit array) = a op b, each operand the uint16
// view of a 16-bit array of out's size or a number (a float32 value).
void binary_half(int op, const py::object& a, const py::object& b, py::array& out, bool bf16) {
  const std::string opname = "binary_half";
  if (op < 0 || op > 3) fail(opname, "op must be 0 (add), 1 (sub), 2 (mul) or 3 (div), got " + std::to_string(op));
  if (out.dtype().kind() != 'u' || out.itemsize() != 2 || !(out.flags() & py::array::c_style) || !out.writeable())
    fail(opname, "out must be a writable C-contiguous uint16 array");
  const int64_t n = out.size();
  const uint16_t* ptrs[2] = {nullptr, nullptr};
  float nums[2] = {0.0f, 0.0f};
  const py::object* operands[2] = {&a, &b};
  for (int k = 0; k < 2; ++k) {
    if (py::isinstance<py::array>(*operands[k])) {
      const auto arr = operands[k]->cast<py::array>();
      if (arr.dtype().kind() != 'u' || arr.itemsize() != 2 || !(arr.flags() & py::array::c_style) || arr.size() != n)
        fail(opname, std::string(k ? "b" : "a") + " must be a C-contiguous uint16 array of " + std::to_string(n) +
                         " elements, got " + std::string(py::str(arr.dtype())) + " of shape " + shape_str(arr));
      ptrs[k] = static_cast<const uint16_t*>(arr.data());
    } else {
      nums[k] = static_cast<float>(operands[k]->cast<double>());
    }
  }
  auto* y = static_cast<uint16_t*>(out.mutable_data());
  py::gil_scoped_release nogil;
  tapegrad::binary_half(op, ptrs[0], nums[0], ptrs[1], nums[1], y, n,
                        bf16 ? tapegrad::Half::bf16 : tapegrad::Half::f16);
}

// ---------------------------------------------------------------- fused 16-bit elementwise ops
// An elementwise op on float16 / bfloat16 arrays (their uint16 views) as convert.h's map_half runs
// it: each block widened to float32, the op's float32 kernel, the block rounded once; the bits of
// the float32 detour (tapegrad/_tape/registry.py) where the op's float32 forward (or VJP) calls
// that kernel. A kernel runs in place on the block (each of these allows y = x, gx = g).
using HalfBlockFn = std::function<void(float*, const float*, int64_t)>;

tapegrad::Pointwise pointwise_op(const std::string& name);  // (below, with the pointwise functions)

// The uint16 arrays' checks: C-contiguous, n elements each, out writable.
const uint16_t* half_operand(const std::string& op, const char* name, const py::array& a, int64_t n) {
  if (a.dtype().kind() != 'u' || a.itemsize() != 2 || !(a.flags() & py::array::c_style) || a.size() != n)
    fail(op, std::string(name) + " must be a C-contiguous uint16 array of " + std::to_string(n) + " elements, got " +
                 std::string(py::str(a.dtype())) + " of shape " + shape_str(a));
  return static_cast<const uint16_t*>(a.data());
}

uint16_t* half_out(const std::string& op, py::array& out) {
  if (out.dtype().kind() != 'u' || out.itemsize() != 2 || !(out.flags() & py::array::c_style) || !out.writeable())
    fail(op, "out must be a writable C-contiguous uint16 array, got " + std::string(py::str(out.dtype())) +
                 " of shape " + shape_str(out));
  return static_cast<uint16_t*>(out.mutable_data());
}

// The forward kernel by name: pointwise.h's functions, relu, gelu, gelu_tanh, silu; or a numpy
// ufunc: negative, absolute, sqrt (rows.h's unary_op, numpy's bits) or one whose float32 loop the
// threads run (elementwise.h); an empty function for any other ufunc (the caller takes the detour).
HalfBlockFn half_forward_kernel(const py::object& op, double p0, double p1, double p2) {
  if (!py::isinstance<py::str>(op)) {
    const int unary = tapegrad::tape::unary_op_of(op.ptr());
    if (unary >= 0)
      return [unary](float* t, const float*, int64_t len) { tapegrad::unary_op<float>(tapegrad::UnaryOp(unary), len, t, t); };
    void* data = nullptr;
    const auto loop = tapegrad::tape::unary_float_loop(op.ptr(), &data);
    if (loop == nullptr) return {};
    return [loop, data](float* t, const float*, int64_t len) {
      char* args[2] = {reinterpret_cast<char*>(t), reinterpret_cast<char*>(t)};  // numpy's in-place call
      const Py_ssize_t dims = len, steps[2] = {4, 4};
      loop(args, &dims, steps, data);
    };
  }
  const std::string name = op.cast<std::string>();
  if (name == "relu") return [](float* t, const float*, int64_t len) { tapegrad::relu_forward<float>(len, t, t); };
  if (name == "silu") return [](float* t, const float*, int64_t len) { tapegrad::silu_forward<float>(len, t, t); };
  if (name == "gelu" || name == "gelu_tanh") {
    const bool tanh_approx = name == "gelu_tanh";
    return [tanh_approx](float* t, const float*, int64_t len) { tapegrad::gelu_forward<float>(len, t, t, tanh_approx); };
  }
  const tapegrad::Pointwise fn = pointwise_op(name);
  return [fn, p0, p1, p2](float* t, const float*, int64_t len) {
    tapegrad::pointwise_forward<float>(fn, len, t, t, p0, p1, p2);
  };
}

// The backward kernel by name, gx = g f'(s) over g: pointwise.h's (s as its table says), relu
// (s the output), gelu, gelu_tanh, silu (s the input).
HalfBlockFn half_backward_kernel(const std::string& name, double p0, double p1, double p2) {
  if (name == "relu")
    return [](float* g, const float* s, int64_t len) { tapegrad::relu_backward<float>(len, g, s, g); };
  if (name == "silu")
    return [](float* g, const float* s, int64_t len) { tapegrad::silu_backward<float>(len, g, s, g); };
  if (name == "gelu" || name == "gelu_tanh") {
    const bool tanh_approx = name == "gelu_tanh";
    return [tanh_approx](float* g, const float* s, int64_t len) {
      tapegrad::gelu_backward<float>(len, g, s, g, tanh_approx);
    };
  }
  const tapegrad::Pointwise fn = pointwise_op(name);
  using P = tapegrad::Pointwise;
  if (fn == P::sign || fn == P::frac || fn == P::nan_to_num || fn == P::sin || fn == P::cos || fn == P::tan)
    fail(name + "_backward", name + " has no backward kernel");
  return [fn, p0, p1, p2](float* g, const float* s, int64_t len) {
    tapegrad::pointwise_backward<float>(fn, len, g, s, g, p0, p1, p2);
  };
}

// out = op(x) on 16-bit arrays (uint16 views) in one fused pass; false (nothing written) for a
// ufunc without a float32 loop here.
bool unary_half(const py::object& op, const py::array& x, py::array& out, bool bf16, double p0, double p1,
                double p2) {
  const std::string opname = "unary_half";
  uint16_t* y = half_out(opname, out);
  const int64_t n = out.size();
  const uint16_t* a = half_operand(opname, "x", x, n);
  const tapegrad::Half kind = bf16 ? tapegrad::Half::bf16 : tapegrad::Half::f16;
  // neg, abs and relu on the bits (convert.h's bits_half), exact
  const bool named = py::isinstance<py::str>(op);
  const int unary = named ? -1 : tapegrad::tape::unary_op_of(op.ptr());
  const bool relu = named && op.cast<std::string>() == "relu";
  if (relu || unary == int(tapegrad::UnaryOp::neg) || unary == int(tapegrad::UnaryOp::abs)) {
    const auto bits = unary == int(tapegrad::UnaryOp::neg)   ? tapegrad::HalfBits::neg
                      : unary == int(tapegrad::UnaryOp::abs) ? tapegrad::HalfBits::abs
                                                             : tapegrad::HalfBits::relu;
    py::gil_scoped_release nogil;
    tapegrad::bits_half(bits, a, y, n, kind);
    return true;
  }
  if (unary == int(tapegrad::UnaryOp::sqrt)) {  // in registers (convert.h's sqrt_half)
    py::gil_scoped_release nogil;
    if (tapegrad::sqrt_half(a, y, n, kind)) return true;
  }
  if (named && op.cast<std::string>() == "rsqrt") {  // in registers (convert.h's rsqrt_half)
    py::gil_scoped_release nogil;
    if (tapegrad::rsqrt_half(a, y, n, kind)) return true;
  }
  const HalfBlockFn f = half_forward_kernel(op, p0, p1, p2);
  if (!f) return false;
  py::gil_scoped_release nogil;
  tapegrad::map_half(a, nullptr, y, n, kind, f);
  return true;
}

// out = g op'(s) on 16-bit arrays (uint16 views) in one fused pass.
void unary_half_backward(const std::string& op, const py::array& g, const py::array& s, py::array& out, bool bf16,
                         double p0, double p1, double p2) {
  const std::string opname = op + "_backward (16-bit)";
  uint16_t* y = half_out(opname, out);
  const int64_t n = out.size();
  const uint16_t* a = half_operand(opname, "grad_output", g, n);
  const uint16_t* b = half_operand(opname, "saved", s, n);
  const HalfBlockFn f = half_backward_kernel(op, p0, p1, p2);
  py::gil_scoped_release nogil;
  tapegrad::map_half(a, b, y, n, bf16 ? tapegrad::Half::bf16 : tapegrad::Half::f16, f);
}

// (A, N, B) of a C-contiguous array cut at dim (the sizes before, at and after it).
std::tuple<int64_t, int64_t, int64_t> split_at(const py::array& x, int64_t dim) {
  int64_t A = 1, B = 1;
  for (int64_t d = 0; d < dim; ++d) A *= x.shape(d);
  for (int64_t d = dim + 1; d < x.ndim(); ++d) B *= x.shape(d);
  return {A, x.shape(dim), B};
}

// The dim of a sort or topk: in range for x (rank >= 1), negative from the end.
int64_t order_dim(const std::string& op, const py::array& x, int64_t dim) {
  if (x.ndim() < 1) fail(op, "expected an array of rank >= 1, got shape " + shape_str(x));
  if (dim < -x.ndim() || dim >= x.ndim())
    fail(op, "dim " + std::to_string(dim) + " out of range for shape " + shape_str(x));
  if (!(x.flags() & py::array::c_style)) fail(op, "x must be C-contiguous");
  const char kind = x.dtype().kind();
  const auto size = x.itemsize();
  if (!((kind == 'f' && (size == 4 || size == 8)) || (kind == 'i' && (size == 4 || size == 8))))
    fail(op, "only float32, float64, int32 and int64 are supported, got " + std::string(py::str(x.dtype())));
  return dim < 0 ? dim + x.ndim() : dim;
}

// Calls f(T*) with x's data as its element type (one of order_dim's four).
template <typename F>
void with_order_type(const py::array& x, F&& f) {
  const char kind = x.dtype().kind();
  const void* data = x.data();
  if (kind == 'f' && x.itemsize() == 8) f(static_cast<const double*>(data));
  else if (kind == 'f') f(static_cast<const float*>(data));
  else if (x.itemsize() == 8) f(static_cast<const int64_t*>(data));
  else f(static_cast<const int32_t*>(data));
}

// topk's indices (topk.h) along dim of a C-contiguous array: its shape with k at dim, int64, each
// slice best first.
py::array topk_indices(const py::array& x, int64_t k, bool largest, int64_t dim) {
  const std::string op = "topk";
  const int64_t d = order_dim(op, x, dim);
  const auto [A, N, B] = split_at(x, d);
  if (k < 0 || k > N) fail(op, "k (" + std::to_string(k) + ") out of range for a dim of size " + std::to_string(N));
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  shape[size_t(d)] = k;
  py::array_t<int64_t> idx(shape);
  int64_t* out = idx.mutable_data();
  py::gil_scoped_release nogil;
  with_order_type(x, [&](auto* p) { tapegrad::topk_dim(A, N, B, p, k, largest, out); });
  return idx;
}

// sort (sort.h) along dim of a C-contiguous array: (values, int64 indices), both of x's shape.
py::tuple sort_values_indices(const py::array& x, int64_t dim, bool descending) {
  const std::string op = "sort";
  const int64_t d = order_dim(op, x, dim);
  const auto [A, N, B] = split_at(x, d);
  py::array values = empty_like(x);
  py::array_t<int64_t> idx(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  void* vout = values.mutable_data();
  int64_t* iout = idx.mutable_data();
  {
    py::gil_scoped_release nogil;
    with_order_type(x, [&](auto* p) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(p)>>;
      tapegrad::sort_dim(A, N, B, p, descending, static_cast<T*>(vout), iout);
    });
  }
  return py::make_tuple(values, idx);
}

// unique (sort.h) of a 1-d C-contiguous array: (values, inverse, counts), sorted; inverse and
// counts int64, None unless asked for.
py::tuple unique_sorted(const py::array& x, bool return_inverse, bool return_counts) {
  const std::string op = "unique";
  if (x.ndim() != 1) fail(op, "expected a 1-d array, got shape " + shape_str(x));
  order_dim(op, x, 0);
  const int64_t n = x.shape(0);
  py::array sorted = empty_like(x);
  std::vector<int64_t> order(static_cast<size_t>(n));
  py::object values, inverse = py::none(), counts = py::none();
  with_order_type(x, [&](auto* p) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(p)>>;
    T* s = static_cast<T*>(sorted.mutable_data());
    int64_t runs;
    {
      py::gil_scoped_release nogil;
      tapegrad::sort_dim(1, n, 1, p, false, s, order.data());
      runs = tapegrad::unique_runs(n, s);
    }
    py::array v(x.dtype(), std::vector<py::ssize_t>{runs});
    py::array_t<int64_t> inv(std::vector<py::ssize_t>{return_inverse ? n : 0});
    py::array_t<int64_t> cnt(std::vector<py::ssize_t>{return_counts ? runs : 0});
    T* vp = static_cast<T*>(v.mutable_data());
    int64_t* ip = return_inverse ? inv.mutable_data() : nullptr;
    int64_t* cp = return_counts ? cnt.mutable_data() : nullptr;
    {
      py::gil_scoped_release nogil;
      tapegrad::unique_fill(n, static_cast<const T*>(s), order.data(), vp, ip, cp);
    }
    values = v;
    if (return_inverse) inverse = inv;
    if (return_counts) counts = cnt;
  });
  return py::make_tuple(values, inverse, counts);
}

// numpy's broadcast of the arrays' shapes, and each array's element strides through it (0 along
// the dims it is broadcast in); a ValueError naming op and the shapes when they do not broadcast.
struct Broadcast {
  std::vector<int64_t> shape;
  std::vector<std::vector<int64_t>> strides;  // per array, in the order given
  int64_t size = 1;
};

Broadcast broadcast_arrays(const std::string& op,
                           std::initializer_list<std::pair<const char*, const py::array*>> arrays) {
  Broadcast b;
  size_t nd = 0;
  for (const auto& na : arrays) nd = std::max(nd, size_t(na.second->ndim()));
  b.shape.assign(nd, 1);
  for (const auto& [name, a] : arrays) {
    const size_t lead = nd - size_t(a->ndim());
    for (size_t d = 0; d < size_t(a->ndim()); ++d) {
      const int64_t n = a->shape(py::ssize_t(d));
      int64_t& s = b.shape[lead + d];
      if (n == s || n == 1) continue;
      if (s != 1) {
        std::string shapes;
        for (const auto& [m, c] : arrays) shapes += (shapes.empty() ? "" : ", ") + std::string(m) + " " + shape_str(*c);
        fail(op, "shapes do not broadcast: " + shapes);
      }
      s = n;
    }
  }
  for (const auto& [name, a] : arrays) {
    check_strides_aligned(op, name, *a);
    std::vector<int64_t> st(nd, 0);
    const size_t lead = nd - size_t(a->ndim());
    for (size_t d = 0; d < size_t(a->ndim()); ++d)
      if (a->shape(py::ssize_t(d)) != 1) st[lead + d] = estride(*a, int(d));
    b.strides.push_back(std::move(st));
  }
  for (int64_t n : b.shape) b.size *= n;
  return b;
}

// masked_select (select.h's masked_counts and compress) of x and a bool mask that broadcast
// together, any strides: the entries where mask holds, in the broadcast shape's C order, a 1-d
// array of x's dtype.
py::array masked_select_flat(const py::array& x, const py::array& mask) {
  const std::string op = "masked_select";
  if (mask.dtype().kind() != 'b') fail(op, "mask must be bool, got " + std::string(py::str(mask.dtype())));
  const auto size = x.itemsize();
  if (size != 1 && size != 2 && size != 4 && size != 8)
    fail(op, "elements of 1, 2, 4 or 8 bytes only, got " + std::string(py::str(x.dtype())));
  const Broadcast b = broadcast_arrays(op, {{"input", &x}, {"mask", &mask}});
  const int nd = int(b.shape.size());
  const int64_t* shape = b.shape.data();
  const int64_t *xs = b.strides[0].data(), *ms = b.strides[1].data();
  const int64_t n = b.size;
  const int64_t nchunks = (n + tapegrad::kNonzeroChunk - 1) / tapegrad::kNonzeroChunk;
  std::vector<int64_t> offsets(size_t(nchunks) + 1, 0);
  const uint8_t* m = cptr<uint8_t>(mask);
  {
    py::gil_scoped_release nogil;
    tapegrad::masked_counts(nd, shape, m, ms, offsets.data() + 1);
  }
  for (int64_t c = 0; c < nchunks; ++c) offsets[size_t(c) + 1] += offsets[size_t(c)];
  py::array out(x.dtype(), std::vector<py::ssize_t>{offsets[size_t(nchunks)]});
  void* o = out.mutable_data();
  py::gil_scoped_release nogil;
  if (size == 1)
    tapegrad::compress(nd, shape, cptr<uint8_t>(x), xs, m, ms, offsets.data(), static_cast<uint8_t*>(o));
  else if (size == 2)
    tapegrad::compress(nd, shape, cptr<uint16_t>(x), xs, m, ms, offsets.data(), static_cast<uint16_t*>(o));
  else if (size == 4)
    tapegrad::compress(nd, shape, cptr<uint32_t>(x), xs, m, ms, offsets.data(), static_cast<uint32_t*>(o));
  else
    tapegrad::compress(nd, shape, cptr<uint64_t>(x), xs, m, ms, offsets.data(), static_cast<uint64_t*>(o));
  return out;
}

// nonzero (select.h) of a C-contiguous array of rank >= 1: the int64 multi-indices of its nonzero
// entries in flat order, (count, ndim), or (ndim, count) with as_tuple (a row per dim).
py::array nonzero_indices(const py::array& x, bool as_tuple) {
  const std::string op = "nonzero";
  if (x.ndim() < 1) fail(op, "expected an array of rank >= 1, got shape " + shape_str(x));
  if (!(x.flags() & py::array::c_style)) fail(op, "x must be C-contiguous");
  const char kind = x.dtype().kind();
  const auto size = x.itemsize();
  if (!(kind == 'b' || kind == 'i' || kind == 'u' || (kind == 'f' && size >= 2 && size <= 8)))
    fail(op, "only bool, integer and float16/32/64 arrays are supported, got " + std::string(py::str(x.dtype())));
  const int nd = int(x.ndim());
  const int64_t n = x.size();
  std::vector<int64_t> shape(x.shape(), x.shape() + nd);
  const int64_t nchunks = (n + tapegrad::kNonzeroChunk - 1) / tapegrad::kNonzeroChunk;
  std::vector<int64_t> offsets(size_t(nchunks) + 1, 0);
  // every bit but a float's sign bit
  const uint64_t mask = kind == 'f' ? ~uint64_t(0) >> (65 - 8 * size) : ~uint64_t(0);
  auto run = [&](auto f) {
    if (size == 1) f(cptr<uint8_t>(x), uint8_t(mask));
    else if (size == 2) f(cptr<uint16_t>(x), uint16_t(mask));
    else if (size == 4) f(cptr<uint32_t>(x), uint32_t(mask));
    else f(cptr<uint64_t>(x), uint64_t(mask));
  };
  {
    py::gil_scoped_release nogil;
    run([&](auto* p, auto m) { tapegrad::nonzero_counts(n, p, m, offsets.data() + 1); });
  }
  for (int64_t c = 0; c < nchunks; ++c) offsets[size_t(c) + 1] += offsets[size_t(c)];
  const int64_t count = offsets[size_t(nchunks)];
  py::array_t<int64_t> out(as_tuple ? std::vector<py::ssize_t>{nd, count} : std::vector<py::ssize_t>{count, nd});
  int64_t* o = out.mutable_data();
  if (count) {
    py::gil_scoped_release nogil;
    run([&](auto* p, auto m) {
      tapegrad::nonzero_write(nd, shape.data(), n, p, m, offsets.data(), o, as_tuple ? 1 : nd, as_tuple ? count : 1);
    });
  }
  return out;
}

py::array softmax(const py::array& x, bool log) {
  const std::string op = log ? "log_softmax" : "softmax";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  const auto [R, D] = row_shape(op, x);
  py::array y = empty_like(x);
  py::gil_scoped_release nogil;
  if (f64) tapegrad::softmax_forward<double>(R, D, cptr<double>(x), ptr<double>(y), log);
  else tapegrad::softmax_forward<float>(R, D, cptr<float>(x), ptr<float>(y), log);
  return y;
}

py::array softmax_backward(const py::array& g, const py::array& y, bool log) {
  const std::string op = log ? "log_softmax_backward" : "softmax_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"output", &y}});
  check_same_shape(op, "grad_output", g, "output", y);
  check_contiguous(op, "grad_output", g);
  check_contiguous(op, "output", y);
  const auto [R, D] = row_shape(op, y);
  py::array gx = empty_like(y);
  py::gil_scoped_release nogil;
  if (f64) tapegrad::softmax_backward<double>(R, D, cptr<double>(g), cptr<double>(y), ptr<double>(gx), log);
  else tapegrad::softmax_backward<float>(R, D, cptr<float>(g), cptr<float>(y), ptr<float>(gx), log);
  return gx;
}

// Rows of a layer_norm input normalised over its trailing D elements.
int64_t norm_rows(const std::string& op, const py::array& x, int64_t D) {
  if (D < 1) fail(op, "normalized size must be positive, got " + std::to_string(D));
  if (static_cast<int64_t>(x.size()) % D != 0)
    fail(op, "input " + shape_str(x) + " does not end in " + std::to_string(D) + " normalized elements");
  return static_cast<int64_t>(x.size()) / D;
}

void check_vector(const std::string& op, const char* name, const std::optional<py::array>& v, int64_t n) {
  if (!v) return;
  if (static_cast<int64_t>(v->size()) != n)
    fail(op, std::string(name) + " " + shape_str(*v) + " must hold " + std::to_string(n) + " elements");
  check_contiguous(op, name, *v);
}

py::tuple layer_norm(const py::array& x, int64_t D, const std::optional<py::array>& w,
                     const std::optional<py::array>& b, double eps) {
  const std::string op = "layer_norm";
  bool f64 = check_float_dtypes(op, {{"x", &x}});
  if (w) check_float_dtypes(op, {{"x", &x}, {"weight", &*w}});
  if (b) check_float_dtypes(op, {{"x", &x}, {"bias", &*b}});
  check_contiguous(op, "x", x);
  const int64_t R = norm_rows(op, x, D);
  check_vector(op, "weight", w, D);
  check_vector(op, "bias", b, D);
  if (!(eps >= 0)) fail(op, "eps must be >= 0, got " + std::to_string(eps));
  py::array y = empty_like(x);
  py::array mean(x.dtype(), std::vector<py::ssize_t>{R}), rstd(x.dtype(), std::vector<py::ssize_t>{R});
  {
    py::gil_scoped_release nogil;
    if (f64)
      tapegrad::layer_norm_forward<double>(R, D, cptr<double>(x), cptr<double>(w), cptr<double>(b), eps,
                                           ptr<double>(y), ptr<double>(mean), ptr<double>(rstd));
    else
      tapegrad::layer_norm_forward<float>(R, D, cptr<float>(x), cptr<float>(w), cptr<float>(b), eps,
                                          ptr<float>(y), ptr<float>(mean), ptr<float>(rstd));
  }
  return py::make_tuple(y, mean, rstd);
}

// The checks the two backward entry points share; returns (R, float64?).
std::pair<int64_t, bool> layer_norm_backward_checks(const std::string& op, const py::array& g, const py::array& x,
                                                    const py::array& mean, const py::array& rstd, int64_t D) {
  const bool f64 =
      check_float_dtypes(op, {{"grad_output", &g}, {"x", &x}, {"mean", &mean}, {"rstd", &rstd}});
  check_same_shape(op, "grad_output", g, "x", x);
  check_contiguous(op, "grad_output", g);
  check_contiguous(op, "x", x);
  const int64_t R = norm_rows(op, x, D);
  check_vector(op, "mean", mean, R);
  check_vector(op, "rstd", rstd, R);
  return {R, f64};
}

// (gx, gw, gb) of layer_norm, each None unless asked for (input, weight_grad, bias_grad), in one
// pass over g and x.
py::tuple layer_norm_backward(const py::array& g, const py::array& x, const py::array& mean, const py::array& rstd,
                              int64_t D, const std::optional<py::array>& w, bool input, bool weight_grad,
                              bool bias_grad) {
  const std::string op = "layer_norm_backward";
  const auto [R, f64] = layer_norm_backward_checks(op, g, x, mean, rstd, D);
  if (w) check_float_dtypes(op, {{"x", &x}, {"weight", &*w}});
  check_vector(op, "weight", w, D);
  std::optional<py::array> gx, gw, gb;
  if (input) gx = empty_like(x);
  if (weight_grad) gw = py::array(x.dtype(), std::vector<py::ssize_t>{D});
  if (bias_grad) gb = py::array(x.dtype(), std::vector<py::ssize_t>{D});
  {
    py::gil_scoped_release nogil;
    if (f64)
      tapegrad::layer_norm_backward<double>(R, D, cptr<double>(g), cptr<double>(x), cptr<double>(mean),
                                            cptr<double>(rstd), cptr<double>(w), gx ? ptr<double>(*gx) : nullptr,
                                            gw ? ptr<double>(*gw) : nullptr, gb ? ptr<double>(*gb) : nullptr);
    else
      tapegrad::layer_norm_backward<float>(R, D, cptr<float>(g), cptr<float>(x), cptr<float>(mean),
                                           cptr<float>(rstd), cptr<float>(w), gx ? ptr<float>(*gx) : nullptr,
                                           gw ? ptr<float>(*gw) : nullptr, gb ? ptr<float>(*gb) : nullptr);
  }
  auto opt = [](const std::optional<py::array>& a) { return a ? py::object(*a) : py::none(); };
  return py::make_tuple(opt(gx), opt(gw), opt(gb));
}

py::array silu(const py::array& x) {
  const std::string op = "silu";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  py::array y = empty_like(x);
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::silu_forward<double>(n, cptr<double>(x), ptr<double>(y));
  else tapegrad::silu_forward<float>(n, cptr<float>(x), ptr<float>(y));
  return y;
}

// ---------------------------------------------------------------- pointwise functions
// pointwise.h's functions by name, on C- or F-contiguous float32/float64 arrays; the result has
// the input's memory order (numpy's and PyTorch's elementwise ops keep a transposed layout).
tapegrad::Pointwise pointwise_op(const std::string& name) {
  using P = tapegrad::Pointwise;
  static const std::pair<const char*, P> table[] = {
      {"sigmoid", P::sigmoid},         {"tanh", P::tanh},
      {"exp", P::exp},                 {"log", P::log},
      {"erf", P::erf},                 {"rsqrt", P::rsqrt},
      {"abs", P::abs},                 {"sign", P::sign},
      {"softplus", P::softplus},       {"logsigmoid", P::logsigmoid},
      {"elu", P::elu},                 {"leaky_relu", P::leaky_relu},
      {"hardswish", P::hardswish},     {"hardsigmoid", P::hardsigmoid},
      {"mish", P::mish},               {"hardtanh", P::hardtanh},
      {"hardshrink", P::hardshrink},   {"softshrink", P::softshrink},
      {"threshold", P::threshold},     {"logit", P::logit},
      {"frac", P::frac},               {"cube", P::cube},
      {"nan_to_num", P::nan_to_num},   {"sin", P::sin},
      {"cos", P::cos},                 {"tan", P::tan},
      {"erfc", P::erfc},               {"clamp", P::clamp},
      {"log2", P::log2},               {"log10", P::log10}};
  for (const auto& [n, op] : table)
    if (name == n) return op;
  std::string known;
  for (const auto& [n, op] : table) known += (known.empty() ? "" : ", ") + std::string(n);
  throw py::value_error("pointwise: unknown function '" + name + "' (known: " + known + ")");
}

// The array's memory order: true for C (also 0-d, 1-d), false for F; fails for anything else.
bool memory_order_c(const std::string& op, const char* name, const py::array& a) {
  if (a.flags() & py::array::c_style) return true;
  if (a.flags() & py::array::f_style) return false;
  fail(op, std::string(name) + " must be C- or F-contiguous, got strides " + [&] {
    std::string s = "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.strides(d));
    return s + ")";
  }());
}

py::array empty_in_order(const py::array& a, bool c_order) {
  std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
  if (c_order) return py::array(a.dtype(), shape);
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t step = a.itemsize();
  for (size_t d = 0; d < shape.size(); ++d) {
    strides[d] = step;
    step *= std::max<py::ssize_t>(shape[d], 1);
  }
  return py::array(a.dtype(), shape, strides);
}

py::array pointwise(const std::string& name, const py::array& x, double p0, double p1, double p2,
                    std::optional<py::array> out) {
  const tapegrad::Pointwise fn = pointwise_op(name);
  const bool f64 = check_float_dtypes(name, {{"x", &x}});
  const bool c_order = memory_order_c(name, "x", x);
  if (out && !(out->is(x) || (same_dtype(out->dtype(), x.dtype()) && out->ndim() == x.ndim() &&
                              std::equal(x.shape(), x.shape() + x.ndim(), out->shape()) &&
                              (memory_order_c(name, "out", *out) == c_order || x.ndim() < 2))))
    fail(name, "out must be x, or an array of x's dtype, shape and memory order");
  if (out && !out->writeable()) fail(name, "out is read-only");
  py::array y = out ? *out : empty_in_order(x, c_order);
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::pointwise_forward<double>(fn, n, cptr<double>(x), ptr<double>(y), p0, p1, p2);
  else tapegrad::pointwise_forward<float>(fn, n, cptr<float>(x), ptr<float>(y), p0, p1, p2);
  return y;
}

py::array pointwise_backward(const std::string& name, const py::array& g, const py::array& s, double p0, double p1,
                             double p2) {
  const tapegrad::Pointwise fn = pointwise_op(name);
  const std::string op = name + "_backward";
  if (fn == tapegrad::Pointwise::sign) fail(op, "sign has no backward kernel (its gradient is zero)");
  if (fn == tapegrad::Pointwise::frac) fail(op, "frac has no backward kernel (its gradient is grad_output)");
  if (fn == tapegrad::Pointwise::nan_to_num) fail(op, "nan_to_num has no backward kernel");
  if (fn == tapegrad::Pointwise::sin || fn == tapegrad::Pointwise::cos || fn == tapegrad::Pointwise::tan)
    fail(op, name + " has no backward kernel (its gradient is the op's composite)");
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"saved", &s}});
  check_same_shape(op, "grad_output", g, "saved", s);
  const bool c_order = memory_order_c(op, "saved", s);
  if (memory_order_c(op, "grad_output", g) != c_order && g.ndim() > 1 && g.size() > 1)
    fail(op, "grad_output and saved must have one memory order (both C- or both F-contiguous)");
  py::array gx = empty_in_order(s, c_order);
  const int64_t n = static_cast<int64_t>(s.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::pointwise_backward<double>(fn, n, cptr<double>(g), cptr<double>(s), ptr<double>(gx), p0, p1, p2);
  else tapegrad::pointwise_backward<float>(fn, n, cptr<float>(g), cptr<float>(s), ptr<float>(gx), p0, p1, p2);
  return gx;
}

// The checks of an elementwise loss's kernels: input and target of one shape, dtype and memory
// order, and grad_output (when given) of that dtype and either one element or the same shape and
// order. Returns (float64?, C order?, grad_output has one element?).
struct LossOperands {
  bool f64, c_order, scalar_g;
};

LossOperands check_loss_operands(const std::string& op, const py::array* g, const py::array& x, const py::array& y) {
  const bool f64 = g ? check_float_dtypes(op, {{"grad_output", g}, {"input", &x}, {"target", &y}})
                     : check_float_dtypes(op, {{"input", &x}, {"target", &y}});
  check_same_shape(op, "input", x, "target", y);
  const bool c_order = memory_order_c(op, "input", x);
  const bool multi = x.ndim() > 1 && x.size() > 1;
  if (memory_order_c(op, "target", y) != c_order && multi)
    fail(op, "input and target must have one memory order (both C- or both F-contiguous)");
  const bool scalar_g = g && g->size() == 1;
  if (g && !scalar_g) {
    check_same_shape(op, "grad_output", *g, "input", x);
    if (memory_order_c(op, "grad_output", *g) != c_order && multi)
      fail(op, "grad_output and input must have one memory order (both C- or both F-contiguous)");
  }
  return {f64, c_order, scalar_g};
}

// binary_cross_entropy_with_logits' elementwise loss and logits gradient (pointwise.h).
py::array bce_with_logits(const py::array& x, const py::array& y) {
  const auto [f64, c_order, unused] = check_loss_operands("binary_cross_entropy_with_logits", nullptr, x, y);
  py::array loss = empty_in_order(x, c_order);
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::bce_logits_forward<double>(n, cptr<double>(x), cptr<double>(y), ptr<double>(loss));
  else tapegrad::bce_logits_forward<float>(n, cptr<float>(x), cptr<float>(y), ptr<float>(loss));
  return loss;
}

py::array bce_with_logits_backward(const py::array& g, const py::array& x, const py::array& y) {
  const auto [f64, c_order, scalar_g] = check_loss_operands("binary_cross_entropy_with_logits_backward", &g, x, y);
  py::array gx = empty_in_order(x, c_order);
  const int64_t n = static_cast<int64_t>(x.size()), step = scalar_g ? 0 : 1;
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::bce_logits_backward<double>(n, cptr<double>(g), step, cptr<double>(x), cptr<double>(y), ptr<double>(gx));
  else
    tapegrad::bce_logits_backward<float>(n, cptr<float>(g), step, cptr<float>(x), cptr<float>(y), ptr<float>(gx));
  return gx;
}

// mse_loss' gradient for the input (or, negated, the target): (g (x - y)) 2 in one pass.
py::array mse_backward(const py::array& g, const py::array& x, const py::array& y, bool negate) {
  const auto [f64, c_order, scalar_g] = check_loss_operands("mse_loss_backward", &g, x, y);
  py::array gx = empty_in_order(x, c_order);
  const int64_t n = static_cast<int64_t>(x.size()), step = scalar_g ? 0 : 1;
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::mse_backward<double>(n, cptr<double>(g), step, cptr<double>(x), cptr<double>(y), ptr<double>(gx), negate);
  else
    tapegrad::mse_backward<float>(n, cptr<float>(g), step, cptr<float>(x), cptr<float>(y), ptr<float>(gx), negate);
  return gx;
}

// mse_loss' sum of squared differences (reduce.h's sumsq_diff), a 0-d array of the inputs' dtype.
py::array mse_sum(const py::array& x, const py::array& y) {
  const auto [f64, c_order, unused] = check_loss_operands("mse_loss", nullptr, x, y);
  py::array out(x.dtype(), std::vector<py::ssize_t>{});
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) *ptr<double>(out) = tapegrad::sumsq_diff<double>(n, cptr<double>(x), cptr<double>(y));
  else *ptr<float>(out) = tapegrad::sumsq_diff<float>(n, cptr<float>(x), cptr<float>(y));
  return out;
}

// smooth_l1_loss / huber_loss elementwise and their gradient (pointwise.h), c, h and b the
// composite's constants.
py::array huber(const py::array& x, const py::array& y, double c, double h, double b, bool huber) {
  const auto [f64, c_order, unused] = check_loss_operands(huber ? "huber_loss" : "smooth_l1_loss", nullptr, x, y);
  py::array loss = empty_in_order(x, c_order);
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::huber_forward<double>(n, cptr<double>(x), cptr<double>(y), ptr<double>(loss), c, h, b, huber);
  else tapegrad::huber_forward<float>(n, cptr<float>(x), cptr<float>(y), ptr<float>(loss), c, h, b, huber);
  return loss;
}

py::array huber_backward(const py::array& g, const py::array& x, const py::array& y, double c, double b, bool huber,
                         bool negate) {
  const auto [f64, c_order, scalar_g] =
      check_loss_operands(huber ? "huber_loss_backward" : "smooth_l1_loss_backward", &g, x, y);
  py::array gx = empty_in_order(x, c_order);
  const int64_t n = static_cast<int64_t>(x.size()), step = scalar_g ? 0 : 1;
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::huber_backward<double>(n, cptr<double>(g), step, cptr<double>(x), cptr<double>(y), ptr<double>(gx), c,
                                     b, huber, negate);
  else
    tapegrad::huber_backward<float>(n, cptr<float>(g), step, cptr<float>(x), cptr<float>(y), ptr<float>(gx), c, b,
                                    huber, negate);
  return gx;
}

// ---------------------------------------------------------------- lerp, addcmul, addcdiv (ternary.h)
// C-contiguous float32/float64 operands of one dtype and shape, a weight of that shape or one
// element; out writable and C-contiguous, the same memory as the first operand (an in-place
// update) or sharing none with any operand.
void check_ternary(const std::string& op, const py::array& out,
                   std::initializer_list<std::pair<const char*, const py::array*>> ins) {
  const auto& [first_name, first] = *ins.begin();
  for (const auto& [name, a] : ins) {
    check_contiguous(op, name, *a);
    if (a != first && !(std::string(name) == "weight" && a->ndim() == 0))
      check_same_shape(op, first_name, *first, name, *a);
  }
  check_same_shape(op, first_name, *first, "out", out);
  check_contiguous(op, "out", out);
  if (!out.writeable()) fail(op, "out is read-only");
  for (const auto& [name, a] : ins)
    if (!(a == first && a->data() == out.data()) && may_share_memory(out, *a))
      fail(op, std::string("out overlaps ") + name + " in memory other than as " + first_name + " itself");
}

py::array lerp(const py::array& a, const py::array& b, const py::array& w, py::array& out) {
  const std::string op = "lerp";
  const bool f64 = check_float_dtypes(op, {{"input", &a}, {"end", &b}, {"weight", &w}, {"out", &out}});
  check_ternary(op, out, {{"input", &a}, {"end", &b}, {"weight", &w}});
  const int64_t n = static_cast<int64_t>(a.size()), w_step = w.ndim() == 0 ? 0 : 1;
  py::gil_scoped_release nogil;
  if (f64) tapegrad::lerp_forward<double>(n, cptr<double>(a), cptr<double>(b), cptr<double>(w), w_step, ptr<double>(out));
  else tapegrad::lerp_forward<float>(n, cptr<float>(a), cptr<float>(b), cptr<float>(w), w_step, ptr<float>(out));
  return out;
}

py::tuple lerp_backward(const py::array& g, const py::array& a, const py::array& b, const py::array& w,
                        bool input_grad, bool end_grad, bool weight_grad) {
  const std::string op = "lerp_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"input", &a}, {"end", &b}, {"weight", &w}});
  if (weight_grad && w.ndim() == 0) fail(op, "a 0-d weight has no gradient here (it is broadcast)");
  py::array scratch = empty_like(g);  // (check_ternary's out: the gradients are new arrays)
  check_ternary(op, scratch, {{"grad_output", &g}, {"input", &a}, {"end", &b}, {"weight", &w}});
  std::optional<py::array> ga, gb, gw;
  if (input_grad) ga = scratch;
  if (end_grad) gb = input_grad ? empty_like(g) : scratch;
  if (weight_grad) gw = input_grad || end_grad ? empty_like(g) : scratch;
  auto p = [](std::optional<py::array>& x) { return x ? x->mutable_data() : nullptr; };
  void *pa = p(ga), *pb = p(gb), *pw = p(gw);
  const int64_t n = static_cast<int64_t>(g.size()), w_step = w.ndim() == 0 ? 0 : 1;
  {
    py::gil_scoped_release nogil;
    if (f64)
      tapegrad::lerp_backward<double>(n, cptr<double>(g), cptr<double>(a), cptr<double>(b), cptr<double>(w), w_step,
                                      static_cast<double*>(pa), static_cast<double*>(pb), static_cast<double*>(pw));
    else
      tapegrad::lerp_backward<float>(n, cptr<float>(g), cptr<float>(a), cptr<float>(b), cptr<float>(w), w_step,
                                     static_cast<float*>(pa), static_cast<float*>(pb), static_cast<float*>(pw));
  }
  auto obj = [](std::optional<py::array>& x) { return x ? py::object(*x) : py::object(py::none()); };
  return py::make_tuple(obj(ga), obj(gb), obj(gw));
}

// ---------------------------------------------------------------- clamp with tensor bounds (clamp.h)
// A new array of the broadcast shape: x's memory order where x has that shape and is F-contiguous
// (as numpy's and PyTorch's elementwise results), else C order; and its element strides.
py::array broadcast_result(const py::array& x, const Broadcast& b, std::vector<int64_t>& strides) {
  std::vector<py::ssize_t> shape(b.shape.begin(), b.shape.end());
  const bool same = size_t(x.ndim()) == shape.size() && std::equal(shape.begin(), shape.end(), x.shape());
  py::array y = same && !(x.flags() & py::array::c_style) && (x.flags() & py::array::f_style)
                    ? empty_in_order(x, false)
                    : py::array(x.dtype(), shape);
  strides.assign(shape.size(), 0);
  for (size_t d = 0; d < shape.size(); ++d) strides[d] = estride(y, int(d));
  return y;
}

// clamp(x, lo, hi) of float32/float64 arrays of one dtype that broadcast together, any strides; a
// new array, or out when out is x itself of the broadcast shape (an in-place clamp).
py::array clamp_tensor(const py::array& x, const py::array& lo, const py::array& hi, std::optional<py::array> out) {
  const std::string op = "clamp";
  const bool f64 = check_float_dtypes(op, {{"input", &x}, {"min", &lo}, {"max", &hi}});
  const Broadcast b = broadcast_arrays(op, {{"input", &x}, {"min", &lo}, {"max", &hi}});
  std::vector<int64_t> os;
  py::array y;
  if (out) {
    if (!out->is(x) || size_t(x.ndim()) != b.shape.size() || !std::equal(b.shape.begin(), b.shape.end(), x.shape()))
      fail(op, "out must be input itself, of the broadcast shape " + shape_str(std::vector<py::ssize_t>(
                                                                          b.shape.begin(), b.shape.end())));
    if (!out->writeable()) fail(op, "out is read-only");
    if (may_share_memory(x, lo) || may_share_memory(x, hi)) fail(op, "out overlaps min or max");
    y = *out;
    os = b.strides[0];
    for (size_t d = 0; d < os.size(); ++d) os[d] = estride(y, int(d));
  } else {
    y = broadcast_result(x, b, os);
  }
  const int nd = int(b.shape.size());
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::clamp_tensor_forward<double>(nd, b.shape.data(), cptr<double>(x), b.strides[0].data(), cptr<double>(lo),
                                           b.strides[1].data(), cptr<double>(hi), b.strides[2].data(), ptr<double>(y),
                                           os.data());
  else
    tapegrad::clamp_tensor_forward<float>(nd, b.shape.data(), cptr<float>(x), b.strides[0].data(), cptr<float>(lo),
                                          b.strides[1].data(), cptr<float>(hi), b.strides[2].data(), ptr<float>(y),
                                          os.data());
  return y;
}

// clamp's gradients for x, lo and hi (each where asked, else None), of the broadcast shape of g, x,
// lo and hi: clamp.h's clamp_tensor_backward.
py::tuple clamp_tensor_backward(const py::array& g, const py::array& x, const py::array& lo, const py::array& hi,
                                bool input_grad, bool min_grad, bool max_grad) {
  const std::string op = "clamp_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"input", &x}, {"min", &lo}, {"max", &hi}});
  const Broadcast b = broadcast_arrays(op, {{"grad_output", &g}, {"input", &x}, {"min", &lo}, {"max", &hi}});
  std::vector<int64_t> os;
  std::optional<py::array> grads[3];
  const bool want[3] = {input_grad, min_grad, max_grad};
  for (int j = 0; j < 3; ++j)
    if (want[j]) grads[j] = broadcast_result(x, b, os);
  if (!input_grad && !min_grad && !max_grad) return py::make_tuple(py::none(), py::none(), py::none());
  void* p[3];
  for (int j = 0; j < 3; ++j) p[j] = grads[j] ? grads[j]->mutable_data() : nullptr;
  const int nd = int(b.shape.size());
  {
    py::gil_scoped_release nogil;
    if (f64)
      tapegrad::clamp_tensor_backward<double>(nd, b.shape.data(), cptr<double>(g), b.strides[0].data(), cptr<double>(x),
                                              b.strides[1].data(), cptr<double>(lo), b.strides[2].data(),
                                              cptr<double>(hi), b.strides[3].data(), static_cast<double*>(p[0]),
                                              static_cast<double*>(p[1]), static_cast<double*>(p[2]), os.data());
    else
      tapegrad::clamp_tensor_backward<float>(nd, b.shape.data(), cptr<float>(g), b.strides[0].data(), cptr<float>(x),
                                             b.strides[1].data(), cptr<float>(lo), b.strides[2].data(), cptr<float>(hi),
                                             b.strides[3].data(), static_cast<float*>(p[0]), static_cast<float*>(p[1]),
                                             static_cast<float*>(p[2]), os.data());
  }
  auto obj = [](std::optional<py::array>& a) { return a ? py::object(*a) : py::object(py::none()); };
  return py::make_tuple(obj(grads[0]), obj(grads[1]), obj(grads[2]));
}

py::array addc(const py::array& x, const py::array& t1, const py::array& t2, double value, bool divide,
               py::array& out) {
  const std::string op = divide ? "addcdiv" : "addcmul";
  const bool f64 = check_float_dtypes(op, {{"input", &x}, {"tensor1", &t1}, {"tensor2", &t2}, {"out", &out}});
  check_ternary(op, out, {{"input", &x}, {"tensor1", &t1}, {"tensor2", &t2}});
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::addc_forward<double>(divide, n, cptr<double>(x), cptr<double>(t1), cptr<double>(t2), value,
                                   ptr<double>(out));
  else
    tapegrad::addc_forward<float>(divide, n, cptr<float>(x), cptr<float>(t1), cptr<float>(t2), value,
                                  ptr<float>(out));
  return out;
}

py::array axpy(const py::array& x, const py::array& y, double value, bool subtract, py::array& out) {
  const std::string op = subtract ? "sub" : "add";
  const bool f64 = check_float_dtypes(op, {{"input", &x}, {"other", &y}, {"out", &out}});
  check_ternary(op, out, {{"input", &x}, {"other", &y}});
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::axpy_forward<double>(subtract, n, cptr<double>(x), cptr<double>(y), value, ptr<double>(out));
  else tapegrad::axpy_forward<float>(subtract, n, cptr<float>(x), cptr<float>(y), value, ptr<float>(out));
  return out;
}

// cdist's product route: out (P, R) += n2 (B, R) (row i takes batch i / (P / B)) and n1 (P,)
// per row, then sqrt(max(., 0)); returns the flat indices of the entries whose squared value was
// at most bound (P,) for their row (rows.h).
py::array cdist_finish(py::array& out, const py::array& n1, const py::array& n2, const py::array& bound) {
  const std::string op = "cdist";
  const bool f64 = check_float_dtypes(op, {{"out", &out}, {"n1", &n1}, {"n2", &n2}, {"bound", &bound}});
  if (out.ndim() != 2 || n1.ndim() != 1 || n2.ndim() != 2 || bound.ndim() != 1 || n1.shape(0) != out.shape(0) ||
      bound.shape(0) != out.shape(0) || n2.shape(1) != out.shape(1) || n2.shape(0) < 1 ||
      out.shape(0) % n2.shape(0) != 0)
    fail(op, "expected out (P, R), n1 (P,), n2 (B, R) with B dividing P and bound (P,), got " + shape_str(out) + ", " +
                 shape_str(n1) + ", " + shape_str(n2) + " and " + shape_str(bound));
  check_contiguous(op, "out", out);
  check_contiguous(op, "n1", n1);
  check_contiguous(op, "n2", n2);
  check_contiguous(op, "bound", bound);
  if (!out.writeable()) fail(op, "out is read-only");
  const int64_t P = out.shape(0), R = out.shape(1), PB = P / n2.shape(0);
  std::vector<int64_t> close;
  {
    py::gil_scoped_release nogil;
    close = f64 ? tapegrad::cdist_finish<double>(P, R, PB, ptr<double>(out), cptr<double>(n1), cptr<double>(n2),
                                                 cptr<double>(bound))
                : tapegrad::cdist_finish<float>(P, R, PB, ptr<float>(out), cptr<float>(n1), cptr<float>(n2),
                                                cptr<float>(bound));
  }
  py::array_t<int64_t> idx(static_cast<py::ssize_t>(close.size()));
  if (!close.empty()) std::memcpy(idx.mutable_data(), close.data(), close.size() * sizeof(int64_t));
  return idx;
}

py::array relu(const py::array& x, std::optional<py::array> out) {
  const std::string op = "relu";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  py::array y = out ? *out : empty_like(x);
  if (out) {  // relu_: out is x itself, or memory of x's shape and dtype that no input shares
    check_float_dtypes(op, {{"x", &x}, {"out", &y}});
    check_same_shape(op, "x", x, "out", y);
    check_contiguous(op, "out", y);
    if (!y.writeable()) fail(op, "out is read-only");
    if (y.data() != x.data() && may_share_memory(y, x)) fail(op, "out overlaps x in memory other than as x itself");
  }
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::relu_forward<double>(n, cptr<double>(x), ptr<double>(y));
  else tapegrad::relu_forward<float>(n, cptr<float>(x), ptr<float>(y));
  return y;
}

py::array relu_backward(const py::array& g, const py::array& out) {
  const std::string op = "relu_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"out", &out}});
  check_same_shape(op, "grad_output", g, "out", out);
  check_contiguous(op, "grad_output", g);
  check_contiguous(op, "out", out);
  py::array gx = empty_like(out);
  const int64_t n = static_cast<int64_t>(out.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::relu_backward<double>(n, cptr<double>(g), cptr<double>(out), ptr<double>(gx));
  else tapegrad::relu_backward<float>(n, cptr<float>(g), cptr<float>(out), ptr<float>(gx));
  return gx;
}

py::array silu_backward(const py::array& g, const py::array& x) {
  const std::string op = "silu_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"x", &x}});
  check_same_shape(op, "grad_output", g, "x", x);
  check_contiguous(op, "grad_output", g);
  check_contiguous(op, "x", x);
  py::array gx = empty_like(x);
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::silu_backward<double>(n, cptr<double>(g), cptr<double>(x), ptr<double>(gx));
  else tapegrad::silu_backward<float>(n, cptr<float>(g), cptr<float>(x), ptr<float>(gx));
  return gx;
}

// dropout's keep scale 1 / (1 - p) in the dtype, for p in [0, 1).
double dropout_scale(const std::string& op, double p) {
  if (!(p >= 0 && p < 1)) fail(op, "p must be in [0, 1), got " + std::to_string(p));
  return 1.0 / (1.0 - p);
}

py::tuple dropout(const py::array& x, double p, uint64_t seed) {
  const std::string op = "dropout";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_contiguous(op, "x", x);
  const double scale = dropout_scale(op, p);
  // Dropped where the 32-bit draw is below p 2^32 (kept with probability 1 - p, to 2^-32).
  const uint32_t threshold = static_cast<uint32_t>(std::min(std::nearbyint(std::ldexp(p, 32)), 4294967295.0));
  py::array y = empty_like(x);
  py::array mask(py::dtype::of<uint8_t>(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const int64_t n = static_cast<int64_t>(x.size());
  uint8_t* m = static_cast<uint8_t*>(mask.mutable_data());
  {
    py::gil_scoped_release nogil;
    if (f64) tapegrad::dropout_forward<double>(n, cptr<double>(x), seed, threshold, scale, ptr<double>(y), m);
    else tapegrad::dropout_forward<float>(n, cptr<float>(x), seed, threshold, float(scale), ptr<float>(y), m);
  }
  return py::make_tuple(y, mask);
}

py::array dropout_backward(const py::array& g, const py::array& mask, double p) {
  const std::string op = "dropout_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}});
  if (!same_dtype(mask.dtype(), py::dtype::of<uint8_t>()))
    fail(op, "mask must be uint8, got " + std::string(py::str(mask.dtype())));
  check_same_shape(op, "grad_output", g, "mask", mask);
  check_contiguous(op, "grad_output", g);
  check_contiguous(op, "mask", mask);
  const double scale = dropout_scale(op, p);
  py::array gx = empty_like(g);
  const int64_t n = static_cast<int64_t>(g.size());
  const uint8_t* m = static_cast<const uint8_t*>(mask.data());
  py::gil_scoped_release nogil;
  if (f64) tapegrad::dropout_backward<double>(n, cptr<double>(g), m, scale, ptr<double>(gx));
  else tapegrad::dropout_backward<float>(n, cptr<float>(g), m, float(scale), ptr<float>(gx));
  return gx;
}

// Embedding's weight gradient (num_weights, D) from g (..., D) and int64 indices of g's leading
// shape's size.
py::array embedding_backward(const py::array& g, const py::array& idx, int64_t num_weights, int64_t padding_idx,
                             bool scale_grad_by_freq) {
  const std::string op = "embedding_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}});
  check_contiguous(op, "grad_output", g);
  if (!same_dtype(idx.dtype(), py::dtype::of<int64_t>()))
    fail(op, "indices must be int64, got " + std::string(py::str(idx.dtype())));
  check_contiguous(op, "indices", idx);
  if (num_weights < 0) fail(op, "num_weights must be >= 0, got " + std::to_string(num_weights));
  if (g.ndim() < 1) fail(op, "grad_output must have rank >= 1, got " + shape_str(g));
  const int64_t D = g.shape(g.ndim() - 1), N = static_cast<int64_t>(idx.size());
  if (N * D != static_cast<int64_t>(g.size()))
    fail(op, "grad_output " + shape_str(g) + " must be indices " + shape_str(idx) + " + (D,)");
  const int64_t* pi = static_cast<const int64_t*>(idx.data());
  for (int64_t i = 0; i < N; ++i)
    if (pi[i] < 0 || pi[i] >= num_weights)
      fail(op, "index " + std::to_string(pi[i]) + " is out of range for " + std::to_string(num_weights) + " rows");
  // numpy's zeros (calloc): a large table's rows that no index names are never written
  py::array gw = py::module_::import("numpy").attr("zeros")(py::make_tuple(num_weights, D), g.dtype());
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::embedding_backward<double>(N, pi, D, cptr<double>(g), num_weights, padding_idx, scale_grad_by_freq,
                                         ptr<double>(gw));
  else
    tapegrad::embedding_backward<float>(N, pi, D, cptr<float>(g), num_weights, padding_idx, scale_grad_by_freq,
                                        ptr<float>(gw));
  return gw;
}

// Logits (R, C), targets (R,) int64 in [0, C) or -1 (ignored), per-row weights (R,).
std::pair<int64_t, int64_t> cross_entropy_checks(const std::string& op, const py::array& x, const py::array& t,
                                                 const py::array& w) {
  if (x.ndim() != 2 || x.shape(1) < 1)
    fail(op, "expected logits of shape (N, C) with C >= 1, got " + shape_str(x));
  const int64_t R = x.shape(0), C = x.shape(1);
  check_contiguous(op, "logits", x);
  if (!same_dtype(t.dtype(), py::dtype::of<int64_t>())) fail(op, "target must be int64, got " + std::string(py::str(t.dtype())));
  if (t.ndim() != 1 || t.shape(0) != R) fail(op, "target " + shape_str(t) + " must have shape (" + std::to_string(R) + ",)");
  check_contiguous(op, "target", t);
  check_vector(op, "weight", w, R);
  if (w.ndim() != 1) fail(op, "weight must be 1-d, got " + shape_str(w));
  const int64_t* pt = static_cast<const int64_t*>(t.data());
  for (int64_t i = 0; i < R; ++i)
    if (pt[i] < -1 || pt[i] >= C)
      fail(op, "target " + std::to_string(pt[i]) + " is out of bounds for " + std::to_string(C) + " classes");
  return {R, C};
}

py::tuple cross_entropy(const py::array& x, const py::array& t, const py::array& w) {
  const std::string op = "cross_entropy";
  const bool f64 = check_float_dtypes(op, {{"logits", &x}, {"weight", &w}});
  const auto [R, C] = cross_entropy_checks(op, x, t, w);
  const std::vector<py::ssize_t> rshape{R};
  py::array loss(x.dtype(), rshape), rmax(x.dtype(), rshape), logsum(x.dtype(), rshape);
  {
    py::gil_scoped_release nogil;
    if (f64)
      tapegrad::cross_entropy_forward<double>(R, C, cptr<double>(x), cptr<int64_t>(t), cptr<double>(w),
                                              ptr<double>(loss), ptr<double>(rmax), ptr<double>(logsum));
    else
      tapegrad::cross_entropy_forward<float>(R, C, cptr<float>(x), cptr<int64_t>(t), cptr<float>(w),
                                             ptr<float>(loss), ptr<float>(rmax), ptr<float>(logsum));
  }
  return py::make_tuple(loss, rmax, logsum);
}

py::array cross_entropy_backward(const py::array& g, const py::array& x, const py::array& t, const py::array& w,
                                 const py::array& rmax, const py::array& logsum) {
  const std::string op = "cross_entropy_backward";
  const bool f64 = check_float_dtypes(
      op, {{"logits", &x}, {"grad_output", &g}, {"weight", &w}, {"rmax", &rmax}, {"logsum", &logsum}});
  const auto [R, C] = cross_entropy_checks(op, x, t, w);
  check_vector(op, "grad_output", g, R);
  check_vector(op, "rmax", rmax, R);
  check_vector(op, "logsum", logsum, R);
  py::array gx = empty_like(x);
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::cross_entropy_backward<double>(R, C, cptr<double>(g), cptr<double>(x), cptr<int64_t>(t),
                                             cptr<double>(w), cptr<double>(rmax), cptr<double>(logsum),
                                             ptr<double>(gx));
  else
    tapegrad::cross_entropy_backward<float>(R, C, cptr<float>(g), cptr<float>(x), cptr<int64_t>(t), cptr<float>(w),
                                            cptr<float>(rmax), cptr<float>(logsum), ptr<float>(gx));
  return gx;
}

void define(py::module_& m) {
  m.def("gelu", &gelu, py::arg("x"), py::arg("tanh_approx"), "gelu(x), exact (erf) or the tanh approximation.");
  m.def("gelu_backward", &gelu_backward, py::arg("grad_output"), py::arg("x"), py::arg("tanh_approx"),
        "grad_output * gelu'(x), in one pass.");
  m.def("normal_from_bits", &normal_from_bits, py::arg("raw"), py::arg("out"), py::arg("mean") = 0.0,
        py::arg("std") = 1.0,
        "Fills out (float32 / float64) with N(mean, std^2) samples by Box-Muller from raw uint64 words: "
        "ceil(n / 2) of them for float32, 2 ceil(n / 2) for float64; on the kernel threads.");
  m.def("_convert_half", &convert_half, py::arg("src"), py::arg("dst"), py::arg("bf16"),
        "float32 -> 16-bit (dst the uint16 view of a float16 / bfloat16 array) or back, on the kernel threads, "
        "with numpy's float16 and ml_dtypes' bfloat16 bits.");
  m.def("_binary_half", &binary_half, py::arg("op"), py::arg("a"), py::arg("b"), py::arg("out"), py::arg("bf16"),
        "out = a op b (0 add, 1 sub, 2 mul, 3 div) for float16 / bfloat16 arrays given as uint16 views, or numbers: "
        "each widened to float32, the result rounded once; one pass on the kernel threads.");
  m.def("_unary_half", &unary_half, py::arg("op"), py::arg("x"), py::arg("out"), py::arg("bf16"), py::arg("p0") = 0.0,
        py::arg("p1") = 0.0, py::arg("p2") = 0.0,
        "out = op(x) for float16 / bfloat16 arrays given as uint16 views, op a kernel's name (pointwise's, relu, gelu, "
        "gelu_tanh, silu) or a numpy ufunc: widened to float32, the float32 kernel, rounded once, in one pass on the "
        "kernel threads. False (nothing written) for a ufunc it does not take.");
  m.def("_unary_half_backward", &unary_half_backward, py::arg("op"), py::arg("grad_output"), py::arg("saved"),
        py::arg("out"), py::arg("bf16"), py::arg("p0") = 0.0, py::arg("p1") = 0.0, py::arg("p2") = 0.0,
        "out = grad_output * op'(saved) for float16 / bfloat16 arrays given as uint16 views: the float32 backward "
        "kernel on widened blocks, rounded once, in one pass on the kernel threads.");
  m.def("topk_indices", &topk_indices, py::arg("x"), py::arg("k"), py::arg("largest") = true, py::arg("dim") = -1,
        "The indices of the k largest (smallest) entries along dim of a C-contiguous float32/float64/int32/int64 "
        "array, best first, NaN above every number, ties by the lower index (a stable sort's first k).");
  m.def("sort", &sort_values_indices, py::arg("x"), py::arg("dim") = -1, py::arg("descending") = false,
        "(values, int64 indices) of a C-contiguous float32/float64/int32/int64 array sorted along dim, NaN above "
        "every number, -0 equal to +0, ties in index order (stable).");
  m.def("unique", &unique_sorted, py::arg("x"), py::arg("return_inverse") = false, py::arg("return_counts") = false,
        "(sorted distinct values, int64 inverse or None, int64 counts or None) of a 1-d C-contiguous "
        "float32/float64/int32/int64 array; -0 equals +0, each NaN is distinct.");
  m.def("masked_select", &masked_select_flat, py::arg("x"), py::arg("mask"),
        "The entries of x where the bool mask holds (the two broadcast together, any strides: nothing copied "
        "first), in the broadcast shape's C order, copied bit for bit (elements of 1, 2, 4 or 8 bytes).");
  m.def("nonzero", &nonzero_indices, py::arg("x"), py::arg("as_tuple") = false,
        "The int64 multi-indices of the nonzero entries of a C-contiguous bool / integer / float array (rank >= 1) "
        "in flat order: (count, ndim), or (ndim, count) with as_tuple. -0.0 is zero, NaN is not.");
  m.def("cumsum", &cumsum, py::arg("x"), py::arg("dim"), py::arg("reverse") = false,
        "Running sums along dim (reverse: from the end, cumsum's backward), accumulated in double; any layout.");
  m.def("softmax", &softmax, py::arg("x"), py::arg("log"), "softmax (or log_softmax) over the last dim.");
  m.def("softmax_backward", &softmax_backward, py::arg("grad_output"), py::arg("output"), py::arg("log"),
        "Gradient of softmax (log_softmax) over the last dim, from its output.");
  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("normalized_size"), py::arg("weight"), py::arg("bias"),
        py::arg("eps"), "(y, mean, rstd) of layer_norm over the trailing normalized_size elements.");
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("grad_output"), py::arg("x"), py::arg("mean"),
        py::arg("rstd"), py::arg("normalized_size"), py::arg("weight"), py::arg("input") = true,
        py::arg("weight_grad") = false, py::arg("bias_grad") = false,
        "(grad_input, grad_weight, grad_bias) of layer_norm, each None unless asked for, in one pass; the "
        "parameter gradients are deterministic over the row sum.");
  m.def("silu", &silu, py::arg("x"), "silu(x) = x * sigmoid(x).");
  m.def("silu_backward", &silu_backward, py::arg("grad_output"), py::arg("x"), "grad_output * silu'(x), in one pass.");
  m.def("pointwise", &pointwise, py::arg("name"), py::arg("x"), py::arg("p0") = 0.0, py::arg("p1") = 0.0,
        py::arg("p2") = 0.0, py::arg("out") = py::none(),
        "name(x; p0, p1, p2) elementwise in one pass, for the functions of csrc/kernels/pointwise.h (sigmoid, "
        "tanh, exp, log, erf, rsqrt, abs, sign, softplus, logsigmoid, elu, leaky_relu, hardswish, hardsigmoid, "
        "mish, hardtanh, hardshrink, softshrink, threshold, logit, frac, cube, nan_to_num, sin, cos, tan, erfc, clamp); x C- or "
        "F-contiguous float32/float64, the result in x's memory order.");
  m.def("pointwise_backward", &pointwise_backward, py::arg("name"), py::arg("grad_output"), py::arg("saved"),
        py::arg("p0") = 0.0, py::arg("p1") = 0.0, py::arg("p2") = 0.0,
        "grad_output * name'(...) in one pass, from the saved output (sigmoid, tanh, exp, rsqrt) or input (the "
        "others), as csrc/kernels/pointwise.h lists.");
  m.def("bce_with_logits", &bce_with_logits, py::arg("input"), py::arg("target"),
        "binary_cross_entropy_with_logits elementwise, (1 - target) input - logsigmoid(input), in one pass.");
  m.def("bce_with_logits_backward", &bce_with_logits_backward, py::arg("grad_output"), py::arg("input"),
        py::arg("target"), "grad_output (sigmoid(input) - target) in one pass; grad_output may have one element.");
  m.def("mse_sum", &mse_sum, py::arg("input"), py::arg("target"),
        "The sum of (input - target)^2 over two float32/float64 arrays of one shape, dtype and memory order, "
        "threaded and rounded once (a 0-d array).");
  m.def("mse_backward", &mse_backward, py::arg("grad_output"), py::arg("input"), py::arg("target"),
        py::arg("negate") = false,
        "mse_loss' gradient (grad_output (input - target)) 2, negated for the target, in one pass; grad_output "
        "may have one element.");
  m.def("huber", &huber, py::arg("input"), py::arg("target"), py::arg("c"), py::arg("h"), py::arg("b"),
        py::arg("huber"),
        "smooth_l1_loss (huber False) or huber_loss elementwise, where(|d| < b, d d c, |d| - h) (Huber: (|d| - h) "
        "b) for d = input - target, in one pass.");
  m.def("huber_backward", &huber_backward, py::arg("grad_output"), py::arg("input"), py::arg("target"),
        py::arg("c"), py::arg("b"), py::arg("huber"), py::arg("negate") = false,
        "That loss' gradient as its composite computes it, negated for the target, in one pass; grad_output may "
        "have one element.");
  m.def("lerp", &lerp, py::arg("input"), py::arg("end"), py::arg("weight"), py::arg("out"),
        "lerp(input, end, weight) into out in one pass, PyTorch's two-sided formula with numpy's rounding; "
        "weight 0-d or of input's shape, out may be input (C-contiguous float32/float64 of one shape).");
  m.def("lerp_backward", &lerp_backward, py::arg("grad_output"), py::arg("input"), py::arg("end"),
        py::arg("weight"), py::arg("input_grad") = true, py::arg("end_grad") = true, py::arg("weight_grad") = false,
        "(g (1 - weight), g weight, g (end - input)), each None unless asked for, in one pass.");
  m.def("clamp_tensor", &clamp_tensor, py::arg("input"), py::arg("min"), py::arg("max"), py::arg("out") = py::none(),
        "clamp(input, min, max) in one pass for float32/float64 arrays of one dtype that broadcast together (any "
        "strides); x kept on a tie, NaN x and NaN bounds propagate. out: input itself (an in-place clamp).");
  m.def("clamp_tensor_backward", &clamp_tensor_backward, py::arg("grad_output"), py::arg("input"), py::arg("min"),
        py::arg("max"), py::arg("input_grad") = true, py::arg("min_grad") = false, py::arg("max_grad") = false,
        "PyTorch's clamp_backward_min_max in one pass: (g where min <= x <= max, g where x < min < max, g where "
        "x > max or max < min), each None unless asked for, of the broadcast shape.");
  m.def("addc", &addc, py::arg("input"), py::arg("tensor1"), py::arg("tensor2"), py::arg("value"),
        py::arg("divide"), py::arg("out"),
        "input + (tensor1 * tensor2) * value (divide: tensor1 / tensor2) into out in one pass; out may be input.");
  m.def("axpy", &axpy, py::arg("input"), py::arg("other"), py::arg("value"), py::arg("subtract"), py::arg("out"),
        "input + other * value (subtract: input - other * value), the product rounded first, into out in one "
        "pass; out may be input.");
  m.def("cdist_finish", &cdist_finish, py::arg("out"), py::arg("n1"), py::arg("n2"), py::arg("bound"),
        "cdist's product route, finished in place: out = sqrt(max((out + n2[row // (P // B)]) + n1[:, None], 0)); "
        "returns the flat indices of the entries whose square was at most bound[row].");
  m.def("relu", &relu, py::arg("x"), py::arg("out") = py::none(),
        "max(x, 0) (NaN kept) in one pass, into out when given (which may be x: relu_).");
  m.def("relu_backward", &relu_backward, py::arg("grad_output"), py::arg("out"),
        "grad_output where out > 0, else 0 (a select: inf or NaN there gives 0), in one pass.");
  m.def("dropout", &dropout, py::arg("x"), py::arg("p"), py::arg("seed"),
        "(y, uint8 mask) of dropout with probability p in [0, 1): a counter-based draw per element from seed, "
        "the same for any thread count.");
  m.def("dropout_backward", &dropout_backward, py::arg("grad_output"), py::arg("mask"), py::arg("p"),
        "grad_output * mask / (1 - p).");
  m.def("embedding_backward", &embedding_backward, py::arg("grad_output"), py::arg("indices"),
        py::arg("num_weights"), py::arg("padding_idx"), py::arg("scale_grad_by_freq"),
        "Embedding's weight gradient: the rows of grad_output added at indices (padding_idx, -1 for none, "
        "skipped; scaled by 1 / frequency with scale_grad_by_freq).");
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("target"), py::arg("weight"),
        "(per-row loss, row max, log sum exp(x - max)) for (N, C) logits, int64 targets (-1: ignored) and "
        "per-row weights; logsumexp = max + log sum.");
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("grad_output"), py::arg("logits"),
        py::arg("target"), py::arg("weight"), py::arg("rmax"), py::arg("logsum"),
        "Gradient of cross_entropy w.r.t. the logits.");
}

}  // namespace rows

// ---------------------------------------------------------------- batch_norm and group_norm
// (csrc/kernels/norm.cpp) over x seen as (N, C, S), S the product of the spatial dims.
// C-contiguous float32/float64 operands of one dtype; per-channel vectors hold C elements.
namespace norm {

using rows::check_contiguous;
using rows::check_float_dtypes;
using rows::check_same_shape;
using rows::check_vector;
using rows::cptr;
using rows::empty_like;
using rows::ptr;

struct Dims {
  int64_t N, C, S;
};

Dims norm_dims(const std::string& op, const py::array& x) {
  if (x.ndim() < 2 || x.size() == 0)
    fail(op, "expected a non-empty input of shape (N, C, *), got " + shape_str(x));
  check_contiguous(op, "x", x);
  const int64_t N = x.shape(0), C = x.shape(1);
  return {N, C, static_cast<int64_t>(x.size()) / (N * C)};
}

void check_optional_dtype(const std::string& op, const py::array& x, const char* name,
                          const std::optional<py::array>& v) {
  if (v) check_float_dtypes(op, {{"x", &x}, {name, &*v}});
}

py::array vec(const py::array& like, int64_t n) { return py::array(like.dtype(), std::vector<py::ssize_t>{n}); }

template <typename T>
void batch_norm_impl(const Dims& d, const py::array& x, const std::optional<py::array>& w,
                     const std::optional<py::array>& b, std::optional<py::array>& rm, std::optional<py::array>& rv,
                     bool training, double momentum, double eps, py::array& y, py::array& mean, py::array& rstd) {
  std::vector<double> mu(d.C), var(d.C);
  const int64_t M = d.N * d.S;
  if (training) {
    tapegrad::batch_norm_stats<T>(d.N, d.C, d.S, cptr<T>(x), mu.data(), var.data());
    if (rm) {  // PyTorch's update: the unbiased variance, momentum the new statistic's weight
      T* pm = ptr<T>(*rm);
      T* pv = ptr<T>(*rv);
      for (int64_t c = 0; c < d.C; ++c) {
        pm[c] = T(momentum * mu[c] + (1 - momentum) * double(pm[c]));
        pv[c] = T(momentum * var[c] * (double(M) / double(M - 1)) + (1 - momentum) * double(pv[c]));
      }
    }
  } else {
    for (int64_t c = 0; c < d.C; ++c) {
      mu[c] = double(cptr<T>(*rm)[c]);
      var[c] = double(cptr<T>(*rv)[c]);
    }
  }
  std::vector<T> scale(d.C), shift(d.C);
  T* pmean = ptr<T>(mean);
  T* prstd = ptr<T>(rstd);
  for (int64_t c = 0; c < d.C; ++c) {
    const double rs = 1.0 / std::sqrt(var[c] + eps);
    pmean[c] = T(mu[c]);
    prstd[c] = T(rs);
    scale[c] = T(w ? rs * double(cptr<T>(w)[c]) : rs);
    shift[c] = b ? cptr<T>(b)[c] : T(0);
  }
  tapegrad::channel_affine<T>(d.N, d.C, d.S, cptr<T>(x), pmean, scale.data(), shift.data(), ptr<T>(y));
}

py::tuple batch_norm(const py::array& x, const std::optional<py::array>& w, const std::optional<py::array>& b,
                     std::optional<py::array> running_mean, std::optional<py::array> running_var, bool training,
                     double momentum, double eps) {
  const std::string op = "batch_norm";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  const Dims d = norm_dims(op, x);
  check_optional_dtype(op, x, "weight", w);
  check_optional_dtype(op, x, "bias", b);
  check_optional_dtype(op, x, "running_mean", running_mean);
  check_optional_dtype(op, x, "running_var", running_var);
  check_vector(op, "weight", w, d.C);
  check_vector(op, "bias", b, d.C);
  check_vector(op, "running_mean", running_mean, d.C);
  check_vector(op, "running_var", running_var, d.C);
  if (bool(running_mean) != bool(running_var)) fail(op, "running_mean and running_var go together");
  if (!training && !running_mean) fail(op, "running_mean and running_var are required when training=False");
  if (training && d.N * d.S < 2)
    fail(op, "expected more than 1 value per channel when training, got input " + shape_str(x));
  if (!(eps >= 0)) fail(op, "eps must be >= 0, got " + std::to_string(eps));
  if (running_mean && training)
    for (const py::array* a : {&*running_mean, &*running_var})
      if (!a->writeable()) fail(op, "the running statistics must be writeable");
  py::array y = empty_like(x), mean = vec(x, d.C), rstd = vec(x, d.C);
  {
    py::gil_scoped_release nogil;
    if (f64)
      batch_norm_impl<double>(d, x, w, b, running_mean, running_var, training, momentum, eps, y, mean, rstd);
    else
      batch_norm_impl<float>(d, x, w, b, running_mean, running_var, training, momentum, eps, y, mean, rstd);
  }
  return py::make_tuple(y, mean, rstd);
}

template <typename T>
void batch_norm_backward_impl(const Dims& d, const py::array& g, const py::array& x, const py::array& mean,
                              const py::array& rstd, const std::optional<py::array>& w, bool training,
                              std::optional<py::array>& gx, std::optional<py::array>& gw,
                              std::optional<py::array>& gb) {
  const T* pm = cptr<T>(mean);
  const T* pr = cptr<T>(rstd);
  std::vector<double> sg(d.C), sgx(d.C);
  if ((gx && training) || gw || gb)
    tapegrad::batch_norm_backward_reduce<T>(d.N, d.C, d.S, cptr<T>(g), cptr<T>(x), pm, sg.data(), sgx.data());
  for (int64_t c = 0; c < d.C; ++c) {
    if (gw) ptr<T>(*gw)[c] = T(sgx[c] * double(pr[c]));
    if (gb) ptr<T>(*gb)[c] = T(sg[c]);
  }
  if (!gx) return;
  const double M = double(d.N * d.S);
  std::vector<T> a(d.C), mg(d.C), k(d.C);
  for (int64_t c = 0; c < d.C; ++c) {
    const double rs = double(pr[c]);
    a[c] = T(w ? rs * double(cptr<T>(w)[c]) : rs);
    mg[c] = T(sg[c] / M);
    k[c] = T(sgx[c] * rs * rs / M);
  }
  tapegrad::batch_norm_backward_input<T>(d.N, d.C, d.S, cptr<T>(g), cptr<T>(x), pm, training ? mg.data() : nullptr,
                                         k.data(), a.data(), ptr<T>(*gx));
}

py::tuple batch_norm_backward(const py::array& g, const py::array& x, const py::array& mean, const py::array& rstd,
                              const std::optional<py::array>& w, bool training, bool input, bool weight, bool bias) {
  const std::string op = "batch_norm_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"x", &x}, {"mean", &mean}, {"rstd", &rstd}});
  check_optional_dtype(op, x, "weight", w);
  check_same_shape(op, "grad_output", g, "x", x);
  check_contiguous(op, "grad_output", g);
  const Dims d = norm_dims(op, x);
  check_vector(op, "mean", mean, d.C);
  check_vector(op, "rstd", rstd, d.C);
  check_vector(op, "weight", w, d.C);
  std::optional<py::array> gx, gw, gb;
  if (input) gx = empty_like(x);
  if (weight) gw = vec(x, d.C);
  if (bias) gb = vec(x, d.C);
  {
    py::gil_scoped_release nogil;
    if (f64) batch_norm_backward_impl<double>(d, g, x, mean, rstd, w, training, gx, gw, gb);
    else batch_norm_backward_impl<float>(d, g, x, mean, rstd, w, training, gx, gw, gb);
  }
  auto obj = [](const std::optional<py::array>& a) { return a ? py::object(*a) : py::none(); };
  return py::make_tuple(obj(gx), obj(gw), obj(gb));
}

int64_t check_groups(const std::string& op, const Dims& d, int64_t G) {
  if (G < 1 || d.C % G != 0)
    fail(op, "num_channels " + std::to_string(d.C) + " must be divisible by num_groups " + std::to_string(G));
  return G;
}

py::tuple group_norm(const py::array& x, int64_t G, const std::optional<py::array>& w,
                     const std::optional<py::array>& b, double eps, bool want_var) {
  const std::string op = "group_norm";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  const Dims d = norm_dims(op, x);
  check_groups(op, d, G);
  check_optional_dtype(op, x, "weight", w);
  check_optional_dtype(op, x, "bias", b);
  check_vector(op, "weight", w, d.C);
  check_vector(op, "bias", b, d.C);
  if (!(eps >= 0)) fail(op, "eps must be >= 0, got " + std::to_string(eps));
  py::array y = empty_like(x), mean = vec(x, d.N * G), rstd = vec(x, d.N * G);
  std::optional<py::array> var;
  if (want_var) var = py::array(py::dtype::of<double>(), std::vector<py::ssize_t>{d.N * G});
  {
    py::gil_scoped_release nogil;
    double* pv = var ? static_cast<double*>(var->mutable_data()) : nullptr;
    if (f64)
      tapegrad::group_norm_forward<double>(d.N, d.C, d.S, G, cptr<double>(x), cptr<double>(w), cptr<double>(b), eps,
                                           ptr<double>(y), ptr<double>(mean), ptr<double>(rstd), pv);
    else
      tapegrad::group_norm_forward<float>(d.N, d.C, d.S, G, cptr<float>(x), cptr<float>(w), cptr<float>(b), eps,
                                          ptr<float>(y), ptr<float>(mean), ptr<float>(rstd), pv);
  }
  return py::make_tuple(y, mean, rstd, var ? py::object(*var) : py::none());
}

py::tuple group_norm_backward(const py::array& g, const py::array& x, const py::array& mean, const py::array& rstd,
                              int64_t G, const std::optional<py::array>& w, bool input, bool weight, bool bias) {
  const std::string op = "group_norm_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &g}, {"x", &x}, {"mean", &mean}, {"rstd", &rstd}});
  check_optional_dtype(op, x, "weight", w);
  check_same_shape(op, "grad_output", g, "x", x);
  check_contiguous(op, "grad_output", g);
  const Dims d = norm_dims(op, x);
  check_groups(op, d, G);
  check_vector(op, "mean", mean, d.N * G);
  check_vector(op, "rstd", rstd, d.N * G);
  check_vector(op, "weight", w, d.C);
  std::optional<py::array> gx, gw, gb;
  if (input) gx = empty_like(x);
  if (weight) gw = vec(x, d.C);
  if (bias) gb = vec(x, d.C);
  {
    py::gil_scoped_release nogil;
    if (f64)
      tapegrad::group_norm_backward<double>(d.N, d.C, d.S, G, cptr<double>(g), cptr<double>(x), cptr<double>(mean),
                                            cptr<double>(rstd), cptr<double>(w), gx ? ptr<double>(*gx) : nullptr,
                                            gw ? ptr<double>(*gw) : nullptr, gb ? ptr<double>(*gb) : nullptr);
    else
      tapegrad::group_norm_backward<float>(d.N, d.C, d.S, G, cptr<float>(g), cptr<float>(x), cptr<float>(mean),
                                           cptr<float>(rstd), cptr<float>(w), gx ? ptr<float>(*gx) : nullptr,
                                           gw ? ptr<float>(*gw) : nullptr, gb ? ptr<float>(*gb) : nullptr);
  }
  auto obj = [](const std::optional<py::array>& a) { return a ? py::object(*a) : py::none(); };
  return py::make_tuple(obj(gx), obj(gw), obj(gb));
}

void define(py::module_& m) {
  m.def("batch_norm", &batch_norm, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("training"), py::arg("momentum"), py::arg("eps"),
        "(y, mean, rstd) of batch_norm over (N, C, *): batch statistics when training (the running ones updated "
        "in place, PyTorch's rule), the running ones otherwise.");
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("grad_output"), py::arg("x"), py::arg("mean"),
        py::arg("rstd"), py::arg("weight"), py::arg("training"), py::arg("input"), py::arg("grad_weight"),
        py::arg("grad_bias"), "(grad_input, grad_weight, grad_bias) of batch_norm, each None unless asked for.");
  m.def("group_norm", &group_norm, py::arg("x"), py::arg("num_groups"), py::arg("weight"), py::arg("bias"),
        py::arg("eps"), py::arg("want_var"),
        "(y, mean, rstd, biased variance in float64 or None) of group_norm over (N, C, *).");
  m.def("group_norm_backward", &group_norm_backward, py::arg("grad_output"), py::arg("x"), py::arg("mean"),
        py::arg("rstd"), py::arg("num_groups"), py::arg("weight"), py::arg("input"), py::arg("grad_weight"),
        py::arg("grad_bias"), "(grad_input, grad_weight, grad_bias) of group_norm, each None unless asked for.");
}

}  // namespace norm

// ---------------------------------------------------------------- fused recurrent layers
// One direction of one LSTM or GRU layer over a packed sequence (csrc/kernels/rnn.cpp): the
// per-step batch sizes as int64 (non-increasing, positive), C-contiguous float32/float64
// operands of one dtype.
namespace rnn {

using rows::check_contiguous;
using rows::check_float_dtypes;
using rows::cptr;
using rows::ptr;

struct Packed {
  std::vector<int64_t> n;
  int64_t N = 0, B = 0;
};

Packed packed_sizes(const std::string& op, const py::array& batch_sizes) {
  if (!same_dtype(batch_sizes.dtype(), py::dtype::of<int64_t>()) || batch_sizes.ndim() != 1 || batch_sizes.shape(0) < 1)
    fail(op, "batch_sizes must be a non-empty 1-d int64 array, got " + std::string(py::str(batch_sizes.dtype())) +
                 " " + shape_str(batch_sizes));
  check_contiguous(op, "batch_sizes", batch_sizes);
  Packed p;
  const int64_t* b = static_cast<const int64_t*>(batch_sizes.data());
  p.n.assign(b, b + batch_sizes.shape(0));
  for (size_t t = 0; t < p.n.size(); ++t) {
    if (p.n[t] < 1 || (t && p.n[t] > p.n[t - 1]))
      fail(op, "batch_sizes must be positive and non-increasing, got " + std::to_string(p.n[t]) + " at step " +
                   std::to_string(t));
    p.N += p.n[t];
  }
  p.B = p.n[0];
  return p;
}

void check_shape(const std::string& op, const char* name, const py::array& a, int64_t rows, int64_t cols) {
  if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols)
    fail(op, std::string(name) + " must have shape (" + std::to_string(rows) + ", " + std::to_string(cols) +
                 "), got " + shape_str(a));
  check_contiguous(op, name, a);
}

// The hidden size H from whh (gates * H, H).
int64_t hidden_size(const std::string& op, const py::array& whh, int64_t gates) {
  if (whh.ndim() != 2 || whh.shape(1) < 1 || whh.shape(0) != gates * whh.shape(1))
    fail(op, "weight_hh must have shape (" + std::to_string(gates) + " * hidden_size, hidden_size), got " +
                 shape_str(whh));
  check_contiguous(op, "weight_hh", whh);
  return whh.shape(1);
}

py::array new_like(const py::array& a, int64_t rows, int64_t cols) {
  return py::array(a.dtype(), std::vector<py::ssize_t>{rows, cols});
}

py::tuple lstm_forward(const py::array& gi, const py::array& h0, const py::array& c0, const py::array& whh,
                       const py::array& batch_sizes, bool reverse) {
  const std::string op = "lstm";
  const bool f64 = check_float_dtypes(op, {{"gates", &gi}, {"h0", &h0}, {"c0", &c0}, {"weight_hh", &whh}});
  const Packed p = packed_sizes(op, batch_sizes);
  const int64_t H = hidden_size(op, whh, 4);
  check_shape(op, "gates", gi, p.N, 4 * H);
  check_shape(op, "h0", h0, p.B, H);
  check_shape(op, "c0", c0, p.B, H);
  py::array out = new_like(gi, p.N + 2 * p.B, H), act = new_like(gi, p.N, 4 * H), hprev = new_like(gi, p.N, H),
            cprev = new_like(gi, p.N, H), tc = new_like(gi, p.N, H);
  {
    py::gil_scoped_release nogil;
    const int64_t S = static_cast<int64_t>(p.n.size());
    if (f64)
      tapegrad::lstm_forward<double>(S, p.n.data(), H, reverse, cptr<double>(gi), cptr<double>(h0), cptr<double>(c0),
                                     cptr<double>(whh), ptr<double>(out), ptr<double>(act), ptr<double>(hprev),
                                     ptr<double>(cprev), ptr<double>(tc));
    else
      tapegrad::lstm_forward<float>(S, p.n.data(), H, reverse, cptr<float>(gi), cptr<float>(h0), cptr<float>(c0),
                                    cptr<float>(whh), ptr<float>(out), ptr<float>(act), ptr<float>(hprev),
                                    ptr<float>(cprev), ptr<float>(tc));
  }
  return py::make_tuple(out, act, hprev, cprev, tc);
}

py::tuple lstm_backward(const py::array& gout, const py::array& whh, const py::array& act, const py::array& hprev,
                        const py::array& cprev, const py::array& tc, const py::array& batch_sizes, bool reverse) {
  const std::string op = "lstm_backward";
  const bool f64 = check_float_dtypes(op, {{"grad_output", &gout}, {"weight_hh", &whh}, {"gates", &act},
                                           {"h_prev", &hprev}, {"c_prev", &cprev}, {"tanh_c", &tc}});
  const Packed p = packed_sizes(op, batch_sizes);
  const int64_t H = hidden_size(op, whh, 4);
  check_shape(op, "grad_output", gout, p.N + 2 * p.B, H);
  check_shape(op, "gates", act, p.N, 4 * H);
  check_shape(op, "h_prev", hprev, p.N, H);
  check_shape(op, "c_prev", cprev, p.N, H);
  check_shape(op, "tanh_c", tc, p.N, H);
  py::array dgi = new_like(gout, p.N, 4 * H), dh0 = new_like(gout, p.B, H), dc0 = new_like(gout, p.B, H),
            dwhh = new_like(gout, 4 * H, H);
  {
    py::gil_scoped_release nogil;
    const int64_t S = static_cast<int64_t>(p.n.size());
    if (f64)
      tapegrad::lstm_backward<double>(S, p.n.data(), H, reverse, cptr<double>(whh), cptr<double>(act),
                                      cptr<double>(hprev), cptr<double>(cprev), cptr<double>(tc), cptr<double>(gout),
                                      ptr<double>(dgi), ptr<double>(dh0), ptr<double>(dc0), ptr<double>(dwhh));
    else
      tapegrad::lstm_backward<float>(S, p.n.data(), H, reverse, cptr<float>(whh), cptr<float>(act),
                                     cptr<float>(hprev), cptr<float>(cprev), cptr<float>(tc), cptr<float>(gout),
                                     ptr<float>(dgi), ptr<float>(dh0), ptr<float>(dc0), ptr<float>(dwhh));
  }
  return py::make_tuple(dgi, dh0, dc0, dwhh);
}

py::tuple gru_forward(const py::array& gi, const py::array& h0, const py::array& whh,
                      const std::optional<py::array>& bhh, const py::array& batch_sizes, bool reverse) {
  const std::string op = "gru";
  const bool f64 = check_float_dtypes(op, {{"gates", &gi}, {"h0", &h0}, {"weight_hh", &whh}});
  const Packed p = packed_sizes(op, batch_sizes);
  const int64_t H = hidden_size(op, whh, 3);
  check_shape(op, "gates", gi, p.N, 3 * H);
  check_shape(op, "h0", h0, p.B, H);
  if (bhh) {
    check_float_dtypes(op, {{"gates", &gi}, {"bias_hh", &*bhh}});
    if (bhh->ndim() != 1 || bhh->shape(0) != 3 * H)
      fail(op, "bias_hh must have shape (" + std::to_string(3 * H) + ",), got " + shape_str(*bhh));
    check_contiguous(op, "bias_hh", *bhh);
  }
  py::array out = new_like(gi, p.N + p.B, H), act = new_like(gi, p.N, 3 * H), ghn = new_like(gi, p.N, H),
            hprev = new_like(gi, p.N, H);
  {
    py::gil_scoped_release nogil;
    const int64_t S = static_cast<int64_t>(p.n.size());
    if (f64)
      tapegrad::gru_forward<double>(S, p.n.data(), H, reverse, cptr<double>(gi), cptr<double>(h0), cptr<double>(whh),
                                    cptr<double>(bhh), ptr<double>(out), ptr<double>(act), ptr<double>(ghn),
                                    ptr<double>(hprev));
    else
      tapegrad::gru_forward<float>(S, p.n.data(), H, reverse, cptr<float>(gi), cptr<float>(h0), cptr<float>(whh),
                                   cptr<float>(bhh), ptr<float>(out), ptr<float>(act), ptr<float>(ghn),
                                   ptr<float>(hprev));
  }
  return py::make_tuple(out, act, ghn, hprev);
}

py::tuple gru_backward(const py::array& gout, const py::array& whh, const py::array& act, const py::array& ghn,
                       const py::array& hprev, const py::array& batch_sizes, bool reverse, bool bias) {
  const std::string op = "gru_backward";
  const bool f64 = check_float_dtypes(
      op, {{"grad_output", &gout}, {"weight_hh", &whh}, {"gates", &act}, {"gh_n", &ghn}, {"h_prev", &hprev}});
  const Packed p = packed_sizes(op, batch_sizes);
  const int64_t H = hidden_size(op, whh, 3);
  check_shape(op, "grad_output", gout, p.N + p.B, H);
  check_shape(op, "gates", act, p.N, 3 * H);
  check_shape(op, "gh_n", ghn, p.N, H);
  check_shape(op, "h_prev", hprev, p.N, H);
  py::array dgi = new_like(gout, p.N, 3 * H), dh0 = new_like(gout, p.B, H), dwhh = new_like(gout, 3 * H, H);
  std::optional<py::array> dbhh;
  if (bias) dbhh = py::array(gout.dtype(), std::vector<py::ssize_t>{3 * H});
  {
    py::gil_scoped_release nogil;
    const int64_t S = static_cast<int64_t>(p.n.size());
    if (f64)
      tapegrad::gru_backward<double>(S, p.n.data(), H, reverse, cptr<double>(whh), cptr<double>(act),
                                     cptr<double>(ghn), cptr<double>(hprev), cptr<double>(gout), ptr<double>(dgi),
                                     ptr<double>(dh0), ptr<double>(dwhh), dbhh ? ptr<double>(*dbhh) : nullptr);
    else
      tapegrad::gru_backward<float>(S, p.n.data(), H, reverse, cptr<float>(whh), cptr<float>(act), cptr<float>(ghn),
                                    cptr<float>(hprev), cptr<float>(gout), ptr<float>(dgi), ptr<float>(dh0),
                                    ptr<float>(dwhh), dbhh ? ptr<float>(*dbhh) : nullptr);
  }
  return py::make_tuple(dgi, dh0, dwhh, dbhh ? py::object(*dbhh) : py::none());
}

void define(py::module_& m) {
  m.def("lstm", &lstm_forward, py::arg("gates"), py::arg("h0"), py::arg("c0"), py::arg("weight_hh"),
        py::arg("batch_sizes"), py::arg("reverse"),
        "One LSTM layer-direction over packed input gates (N, 4H): (out (N + 2B, H) = every step's h, h_n, c_n; "
        "then the activated gates, h_prev, c_prev and tanh(c) saved for the backward).");
  m.def("lstm_backward", &lstm_backward, py::arg("grad_output"), py::arg("weight_hh"), py::arg("gates"),
        py::arg("h_prev"), py::arg("c_prev"), py::arg("tanh_c"), py::arg("batch_sizes"), py::arg("reverse"),
        "(d gates, d h0, d c0, d weight_hh) of lstm.");
  m.def("gru", &gru_forward, py::arg("gates"), py::arg("h0"), py::arg("weight_hh"), py::arg("bias_hh"),
        py::arg("batch_sizes"), py::arg("reverse"),
        "One GRU layer-direction over packed input gates (N, 3H): (out (N + B, H) = every step's h, h_n; then the "
        "activated gates, h W_hn^T + b_hn and h_prev saved for the backward).");
  m.def("gru_backward", &gru_backward, py::arg("grad_output"), py::arg("weight_hh"), py::arg("gates"),
        py::arg("gh_n"), py::arg("h_prev"), py::arg("batch_sizes"), py::arg("reverse"), py::arg("bias"),
        "(d gates, d h0, d weight_hh, d bias_hh or None) of gru.");
}

}  // namespace rnn

// ---------------------------------------------------------------- blocked attention
// scaled_dot_product_attention over (BH, L, D) queries, (BH, S, D) keys, (BH, S, Dv) values
// (csrc/kernels/attention.cpp); an optional additive float mask (1 or BH, L, S).
namespace attention {

using rows::check_contiguous;
using rows::check_float_dtypes;
using rows::cptr;
using rows::ptr;

struct Dims {
  int64_t BH, L, S, D, Dv, MB;
};

// An operand of shape (..., rows, cols) as the kernel's Heads: the element offset of every head
// (the leading dims flattened in C order) and the row stride. Any strides but a unit one along
// the last dim (a transposed (B, L, H, D) -> (B, H, L, D) view arrives as it is).
template <typename T>
struct HeadsOf {
  std::vector<int64_t> offset;
  int64_t ld = 0;
  const T* data = nullptr;
  tapegrad::Heads<T> view() const { return {data, offset.data(), ld}; }
};

template <typename T>
HeadsOf<T> heads_of(const std::string& op, const char* name, const py::array& a) {
  const int64_t item = sizeof(T), nd = a.ndim();
  for (int64_t i = 0; i < nd; ++i)
    if (a.strides(i) % item)
      fail(op, std::string(name) + "'s strides " + strides_str(a) + " are not whole elements");
  if (a.shape(nd - 1) > 1 && a.strides(nd - 1) != item)
    fail(op, std::string(name) + " must have adjacent elements along its last dim, got strides " + strides_str(a));
  HeadsOf<T> h;
  h.data = static_cast<const T*>(a.data());
  h.ld = a.strides(nd - 2) / item;
  h.offset.assign(1, 0);
  for (int64_t i = 0; i < nd - 2; ++i) {  // offsets of dims 0..i, from those of dims 0..i-1
    std::vector<int64_t> next;
    next.reserve(h.offset.size() * a.shape(i));
    for (int64_t o : h.offset)
      for (int64_t j = 0; j < a.shape(i); ++j) next.push_back(o + j * (a.strides(i) / item));
    h.offset.swap(next);
  }
  return h;
}

// The leading (batch and head) dims of an operand of shape (..., rows, cols).
std::vector<py::ssize_t> lead_shape(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim() - 2);
}

Dims attention_checks(const std::string& op, const py::array& q, const py::array& k, const py::array& v,
                      const std::optional<py::array>& mask) {
  for (const auto& [name, a] : {std::pair<const char*, const py::array*>{"query", &q}, {"key", &k}, {"value", &v}})
    if (a->ndim() < 2) fail(op, std::string("expected ") + name + " of shape (..., length, dim), got " + shape_str(*a));
  int64_t BH = 1;
  for (py::ssize_t i = 0; i + 2 < q.ndim(); ++i) BH *= q.shape(i);
  const int64_t n = q.ndim();
  const Dims d{BH, q.shape(n - 2), k.shape(k.ndim() - 2), q.shape(n - 1), v.shape(v.ndim() - 1), 1};
  if (lead_shape(k) != lead_shape(q) || lead_shape(v) != lead_shape(q) || k.shape(k.ndim() - 1) != d.D ||
      v.shape(v.ndim() - 2) != d.S)
    fail(op, "query " + shape_str(q) + ", key " + shape_str(k) + " and value " + shape_str(v) +
                 " do not fit (..., L, D), (..., S, D), (..., S, Dv)");
  Dims out = d;
  if (mask) {
    check_float_dtypes(op, {{"query", &q}, {"attn_mask", &*mask}});
    if (mask->ndim() != 3 || (mask->shape(0) != 1 && mask->shape(0) != d.BH) || mask->shape(1) != d.L ||
        mask->shape(2) != d.S)
      fail(op, "attn_mask must have shape (1 or " + std::to_string(d.BH) + ", " + std::to_string(d.L) + ", " +
                   std::to_string(d.S) + "), got " + shape_str(*mask));
    check_contiguous(op, "attn_mask", *mask);
    out.MB = mask->shape(0);
  }
  return out;
}

// The output, of shape (..., L, Dv) as q's leading dims. With heads (4 dims or more: (..., H, L,
// Dv)) it is laid out as (..., L, H, Dv), as PyTorch's CPU attention lays out its own: the
// transpose(-3, -2) and reshape that merge the heads after attention are then a view, not a copy
// of the whole output in every block.
py::array attention_out(const py::array& q, const Dims& d) {
  std::vector<py::ssize_t> shape = lead_shape(q);
  shape.push_back(d.L);
  shape.push_back(d.Dv);
  const size_t nd = shape.size();
  if (nd < 4) return py::array(q.dtype(), shape);
  std::vector<py::ssize_t> rows_first(shape);
  std::swap(rows_first[nd - 3], rows_first[nd - 2]);
  py::array base(q.dtype(), rows_first);
  std::vector<py::ssize_t> strides(base.strides(), base.strides() + nd);
  std::swap(strides[nd - 3], strides[nd - 2]);
  return py::array(q.dtype(), shape, strides, base.data(), base);
}

template <typename T>
py::tuple attention_forward_t(const std::string& op, const py::array& q, const py::array& k, const py::array& v,
                              const std::optional<py::array>& mask, bool causal, double scale, const Dims& d) {
  const HeadsOf<T> hq = heads_of<T>(op, "query", q), hk = heads_of<T>(op, "key", k), hv = heads_of<T>(op, "value", v);
  py::array out = attention_out(q, d), lse(q.dtype(), std::vector<py::ssize_t>{d.BH, d.L});
  const HeadsOf<T> ho = heads_of<T>(op, "output", out);
  {
    py::gil_scoped_release nogil;
    tapegrad::attention_forward<T>(d.BH, d.L, d.S, d.D, d.Dv, hq.view(), hk.view(), hv.view(), cptr<T>(mask), d.MB,
                                   causal, static_cast<T>(scale), {ptr<T>(out), ho.offset.data(), ho.ld},
                                   ptr<T>(lse));
  }
  return py::make_tuple(out, lse);
}

py::tuple attention_forward(const py::array& q, const py::array& k, const py::array& v,
                            const std::optional<py::array>& mask, bool causal, double scale) {
  const std::string op = "scaled_dot_product_attention";
  const bool f64 = check_float_dtypes(op, {{"query", &q}, {"key", &k}, {"value", &v}});
  const Dims d = attention_checks(op, q, k, v, mask);
  return f64 ? attention_forward_t<double>(op, q, k, v, mask, causal, scale, d)
             : attention_forward_t<float>(op, q, k, v, mask, causal, scale, d);
}

template <typename T>
py::tuple attention_backward_t(const std::string& op, const py::array& g, const py::array& q, const py::array& k,
                               const py::array& v, const std::optional<py::array>& mask, bool causal, double scale,
                               const py::array& out, const py::array& lse, const Dims& d) {
  const HeadsOf<T> hq = heads_of<T>(op, "query", q), hk = heads_of<T>(op, "key", k), hv = heads_of<T>(op, "value", v),
                   hg = heads_of<T>(op, "grad_output", g), ho = heads_of<T>(op, "output", out);
  py::array dq(q.dtype(), std::vector<py::ssize_t>{d.BH, d.L, d.D}), dk(q.dtype(), std::vector<py::ssize_t>{d.BH, d.S, d.D}),
      dv(q.dtype(), std::vector<py::ssize_t>{d.BH, d.S, d.Dv});
  {
    py::gil_scoped_release nogil;
    tapegrad::attention_backward<T>(d.BH, d.L, d.S, d.D, d.Dv, hq.view(), hk.view(), hv.view(), cptr<T>(mask), d.MB,
                                    causal, static_cast<T>(scale), ho.view(), cptr<T>(lse), hg.view(), ptr<T>(dq),
                                    ptr<T>(dk), ptr<T>(dv));
  }
  return py::make_tuple(dq, dk, dv);
}

py::tuple attention_backward(const py::array& g, const py::array& q, const py::array& k, const py::array& v,
                             const std::optional<py::array>& mask, bool causal, double scale, const py::array& out,
                             const py::array& lse) {
  const std::string op = "scaled_dot_product_attention_backward";
  const bool f64 = check_float_dtypes(
      op, {{"query", &q}, {"key", &k}, {"value", &v}, {"grad_output", &g}, {"output", &out}, {"lse", &lse}});
  const Dims d = attention_checks(op, q, k, v, mask);
  std::vector<py::ssize_t> want_g = lead_shape(q);
  want_g.push_back(d.L);
  want_g.push_back(d.Dv);
  if (std::vector<py::ssize_t>(g.shape(), g.shape() + g.ndim()) != want_g)
    fail(op, "grad_output must have shape " + shape_str(want_g) + " (the output's), got " + shape_str(g));
  if (std::vector<py::ssize_t>(out.shape(), out.shape() + out.ndim()) != want_g)
    fail(op, "output must have shape " + shape_str(want_g) + " (the forward's), got " + shape_str(out));
  if (lse.ndim() != 2 || lse.shape(0) != d.BH || lse.shape(1) != d.L)
    fail(op, "lse must have shape (" + std::to_string(d.BH) + ", " + std::to_string(d.L) + "), got " + shape_str(lse));
  check_contiguous(op, "lse", lse);
  return f64 ? attention_backward_t<double>(op, g, q, k, v, mask, causal, scale, out, lse, d)
             : attention_backward_t<float>(op, g, q, k, v, mask, causal, scale, out, lse, d);
}

void define(py::module_& m) {
  m.def("attention", &attention_forward, py::arg("query"), py::arg("key"), py::arg("value"), py::arg("attn_mask"),
        py::arg("is_causal"), py::arg("scale"),
        "(softmax(q k^T * scale + mask) v, the rows' log-sum-exp), blocked: the score matrix is never held whole.");
  m.def("attention_backward", &attention_backward, py::arg("grad_output"), py::arg("query"), py::arg("key"),
        py::arg("value"), py::arg("attn_mask"), py::arg("is_causal"), py::arg("scale"), py::arg("output"),
        py::arg("lse"), "(dq, dk, dv) of attention, recomputing the scores tile by tile.");
}

}  // namespace attention

// ---------------------------------------------------------------- select and row sums
// The step's elementwise glue (csrc/kernels/select.cpp): where with a condition broadcast over
// leading dims, and the column sums that reduce a bias's gradient.
namespace glue {

using convpool::check_contiguous;
using convpool::check_float_dtypes;
using convpool::check_rank;
using rows::cptr;
using rows::ptr;

// select(cond, a, b, shape) -> where(cond, a, b) as a new C-contiguous array of `shape`: cond a
// bool array whose shape, less leading 1s, is a suffix of `shape`; a and b of one dtype, each a
// single element or a C-contiguous array of `shape`.
py::array select_where(const py::array& cond, const py::array& a, const py::array& b, const std::vector<py::ssize_t>& shape) {
  const std::string op = "select";
  if (!same_dtype(cond.dtype(), py::dtype::of<bool>())) fail(op, "cond must be bool, got " + std::string(py::str(cond.dtype())));
  if (!same_dtype(a.dtype(), b.dtype()))
    fail(op, "dtypes differ: a is " + std::string(py::str(a.dtype())) + ", b is " + std::string(py::str(b.dtype())));
  const int width = static_cast<int>(a.itemsize());
  if (width != 1 && width != 2 && width != 4 && width != 8)
    fail(op, "elements of " + std::to_string(width) + " bytes are not supported");
  check_contiguous(op, "cond", cond);
  py::ssize_t lead = 0;  // cond's leading 1s
  while (lead < cond.ndim() && cond.shape(lead) == 1) ++lead;
  const py::ssize_t rank = static_cast<py::ssize_t>(shape.size()), tail = cond.ndim() - lead;
  bool suffix = tail <= rank;
  for (py::ssize_t d = 0; suffix && d < tail; ++d) suffix = cond.shape(lead + d) == shape[rank - tail + d];
  if (!suffix) fail(op, "cond " + shape_str(cond) + " is not a trailing block of the shape " + shape_str(shape));
  int64_t n = 1;
  for (py::ssize_t s : shape) {
    if (s < 0) fail(op, "negative size in the shape " + shape_str(shape));
    n *= s;
  }
  const auto full = [&](const char* name, const py::array& x) {
    if (x.size() == 1) return false;
    check_contiguous(op, name, x);
    if (x.ndim() != rank || !std::equal(shape.begin(), shape.end(), x.shape()))
      fail(op, std::string(name) + " " + shape_str(x) + " is neither one element nor of the shape " + shape_str(shape));
    return true;
  };
  const bool af = full("a", a), bf = full("b", b);
  py::array out(a.dtype(), shape);
  const int64_t inner = static_cast<int64_t>(cond.size());
  if (n == 0 || inner == 0) return out;
  const auto* c = static_cast<const uint8_t*>(cond.data());
  const void *pa = a.data(), *pb = b.data();
  void* po = out.mutable_data();
  py::gil_scoped_release nogil;
  tapegrad::select_broadcast(n / inner, inner, width, c, pa, af, pb, bf, po);
  return out;
}

// sum_rows(x) -> x (R, C) summed over its rows, (C,).
py::array sum_rows(const py::array& x) {
  const std::string op = "sum_rows";
  const bool f64 = check_float_dtypes(op, {{"x", &x}});
  check_rank(op, "x", x, 2, "(R, C)");
  check_contiguous(op, "x", x);
  const int64_t R = x.shape(0), C = x.shape(1);
  py::array out(x.dtype(), std::vector<py::ssize_t>{static_cast<py::ssize_t>(C)});
  py::gil_scoped_release nogil;
  if (f64) tapegrad::sum_rows<double>(R, C, cptr<double>(x), ptr<double>(out));
  else tapegrad::sum_rows<float>(R, C, cptr<float>(x), ptr<float>(out));
  return out;
}

void define(py::module_& m) {
  m.def("select", &select_where, py::arg("cond"), py::arg("a"), py::arg("b"), py::arg("shape"),
        "where(cond, a, b) as a new array of shape, bit for bit: cond bool, broadcast over leading dims; a and "
        "b one element or of shape.");
  m.def("sum_rows", &sum_rows, py::arg("x"), "x (R, C) summed over its rows: (C,).");
}

}  // namespace glue

// ---------------------------------------------------------------- reductions along dims
// sum / mean / amax / amin of a C-contiguous float32/float64 array over dims that are adjacent
// once dims of size 1 are dropped (csrc/kernels/reduce.h); anything else gives None, and the
// caller takes numpy's route.
namespace reduce {

using rows::cptr;
using rows::ptr;

// x as (A, N, B) for a reduction over dims: the kept dims before the reduced ones, the reduced
// ones, the kept ones after (dims of size 1 can sit anywhere), and the result's shape. False
// where reduced dims sit on both sides of a kept one (numpy's route).
bool middle_view(const py::array& x, const std::vector<int64_t>& dims, bool keepdim, const std::string& op, int64_t& A,
                 int64_t& N, int64_t& B, std::vector<py::ssize_t>& shape) {
  const int64_t nd = x.ndim();
  std::vector<bool> reduced(nd, false);
  for (int64_t d : dims) {
    const int64_t k = d < 0 ? d + nd : d;
    if (k < 0 || k >= nd)
      fail(op, "dim " + std::to_string(d) + " is out of range for an input of shape " + shape_str(x));
    if (reduced[k]) fail(op, "dim " + std::to_string(d) + " appears twice in the dims of an input of shape " + shape_str(x));
    reduced[k] = true;
  }
  A = N = B = 1;
  int phase = 0;  // 0: leading kept dims, 1: reduced dims, 2: trailing kept dims
  for (int64_t d = 0; d < nd; ++d) {
    const int64_t s = x.shape(d);
    if (!reduced[d] || keepdim) shape.push_back(reduced[d] ? 1 : s);
    if (s == 1) continue;
    if (reduced[d]) {
      if (phase == 2) return false;
      phase = 1;
      N *= s;
    } else if (phase == 0) {
      A *= s;
    } else {
      phase = 2;
      B *= s;
    }
  }
  return true;
}

bool float_c_array(const py::array& x, bool& f64) {
  f64 = same_dtype(x.dtype(), py::dtype::of<double>());
  return (f64 || same_dtype(x.dtype(), py::dtype::of<float>())) && (x.flags() & py::array::c_style);
}

// reduce(x, dims, keepdim, op) -> op over x's dims, or None where the kernel does not apply.
py::object reduce(const py::array& x, const std::vector<int64_t>& dims, bool keepdim, const std::string& op) {
  static const std::pair<const char*, tapegrad::ReduceOp> kOps[] = {
      {"sum", tapegrad::ReduceOp::sum},   {"mean", tapegrad::ReduceOp::mean},
      {"amax", tapegrad::ReduceOp::amax}, {"amin", tapegrad::ReduceOp::amin},
      {"prod", tapegrad::ReduceOp::prod}, {"logsumexp", tapegrad::ReduceOp::logsumexp},
      {"norm1", tapegrad::ReduceOp::norm1}, {"norm2", tapegrad::ReduceOp::norm2}};
  const auto* it = std::find_if(std::begin(kOps), std::end(kOps), [&](const auto& p) { return op == p.first; });
  if (it == std::end(kOps))
    fail("reduce", "unknown reduction '" + op + "' (sum, mean, amax, amin, prod, logsumexp, norm1 or norm2)");
  const tapegrad::ReduceOp kind = it->second;
  bool f64;
  if (!float_c_array(x, f64) || dims.empty()) return py::none();
  int64_t A, N, B;
  std::vector<py::ssize_t> shape;
  if (!middle_view(x, dims, keepdim, op, A, N, B, shape)) return py::none();
  if ((kind == tapegrad::ReduceOp::amax || kind == tapegrad::ReduceOp::amin) && N == 0 && A * B > 0)
    fail(op, "cannot reduce over dims of size 0 (input shape " + shape_str(x) + ")");
  py::array out(x.dtype(), shape);
  py::gil_scoped_release nogil;
  if (f64) tapegrad::reduce_middle<double>(kind, A, N, B, static_cast<const double*>(x.data()), static_cast<double*>(out.mutable_data()));
  else tapegrad::reduce_middle<float>(kind, A, N, B, static_cast<const float*>(x.data()), static_cast<float*>(out.mutable_data()));
  return std::move(out);
}

// reduce_half(x, dims, keepdim, op, bf16) -> sum or mean of a C-contiguous float16 / bfloat16 x
// (its uint16 view) over dims, a uint16 array of the same format (reduce.h's reduce_middle_half:
// float32 sums, rounded once), or None where the kernel does not apply.
py::object reduce_half(const py::array& x, const std::vector<int64_t>& dims, bool keepdim, const std::string& op,
                       bool bf16) {
  tapegrad::ReduceOp kind;
  if (op == "sum") kind = tapegrad::ReduceOp::sum;
  else if (op == "mean") kind = tapegrad::ReduceOp::mean;
  else fail("reduce_half", "unknown reduction '" + op + "' (sum or mean)");
  if (x.dtype().kind() != 'u' || x.itemsize() != 2)
    fail(op, "x must be the uint16 view of a float16 or bfloat16 array, got " + std::string(py::str(x.dtype())));
  if (!(x.flags() & py::array::c_style) || dims.empty()) return py::none();
  int64_t A, N, B;
  std::vector<py::ssize_t> shape;
  if (!middle_view(x, dims, keepdim, op, A, N, B, shape)) return py::none();
  py::array out(x.dtype(), shape);
  py::gil_scoped_release nogil;
  tapegrad::reduce_middle_half(kind, A, N, B, static_cast<const uint16_t*>(x.data()),
                               bf16 ? tapegrad::Half::bf16 : tapegrad::Half::f16,
                               static_cast<uint16_t*>(out.mutable_data()));
  return std::move(out);
}

// The reduced operands of reduce_backward / scatter: C-contiguous, x's dtype, A * B elements.
void check_reduced(const std::string& op, const char* name, const py::array& a, const py::array& x, int64_t size) {
  if (!same_dtype(a.dtype(), x.dtype()) || !(a.flags() & py::array::c_style) || a.size() != size)
    fail(op, std::string(name) + " must be a C-contiguous " + std::string(py::str(x.dtype())) + " array of " + std::to_string(size) +
                 " elements (the reduced shape of x " + shape_str(x) + "), got " + std::string(py::str(a.dtype())) + " " +
                 shape_str(a));
}

// reduce_backward(x, dims, u, v, op) -> op's gradient over x (reduce.h's ExpandOp), or None
// where the kernel does not apply.
py::object reduce_backward(const py::array& x, const std::vector<int64_t>& dims, const py::array& u,
                           const py::array& v, const std::string& op) {
  tapegrad::ExpandOp kind;
  if (op == "norm2") kind = tapegrad::ExpandOp::norm2;
  else if (op == "logsumexp") kind = tapegrad::ExpandOp::logsumexp;
  else if (op == "prod") kind = tapegrad::ExpandOp::prod;
  else if (op == "var") kind = tapegrad::ExpandOp::var;
  else fail("reduce_backward", "unknown reduction '" + op + "' (norm2, logsumexp, prod or var)");
  bool f64;
  if (!float_c_array(x, f64) || dims.empty()) return py::none();
  int64_t A, N, B;
  std::vector<py::ssize_t> shape;
  if (!middle_view(x, dims, false, op, A, N, B, shape)) return py::none();
  check_reduced(op, "the gradient", u, x, A * B);
  check_reduced(op, "the result", v, x, A * B);
  py::array out(x.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  py::gil_scoped_release nogil;
  if (f64)
    tapegrad::expand_middle<double>(kind, A, N, B, cptr<double>(x), cptr<double>(u), cptr<double>(v), ptr<double>(out));
  else
    tapegrad::expand_middle<float>(kind, A, N, B, cptr<float>(x), cptr<float>(u), cptr<float>(v), ptr<float>(out));
  return std::move(out);
}

// select_backward(g, idx, shape, dim) -> zeros of shape but for g at idx along dim.
py::object select_backward(const py::array& g, const py::array& idx, const std::vector<int64_t>& shape, int64_t dim) {
  const std::string op = "max/min backward";
  bool f64;
  if (!float_c_array(g, f64)) return py::none();
  const int64_t nd = int64_t(shape.size());
  if (dim < 0 || dim >= nd) fail(op, "dim " + std::to_string(dim) + " is out of range for " + std::to_string(nd) + " dims");
  int64_t A = 1, N = shape[dim], B = 1;
  for (int64_t d = 0; d < dim; ++d) A *= shape[d];
  for (int64_t d = dim + 1; d < nd; ++d) B *= shape[d];
  if (!same_dtype(idx.dtype(), py::dtype::of<int64_t>()) || !(idx.flags() & py::array::c_style) || idx.size() != A * B ||
      g.size() != A * B)
    fail(op, "expected the gradient and C-contiguous int64 indices of " + std::to_string(A * B) + " elements, got " +
                 shape_str(g) + " and " + std::string(py::str(idx.dtype())) + " " + shape_str(idx));
  const int64_t* ip = static_cast<const int64_t*>(idx.data());
  for (int64_t i = 0; i < A * B; ++i)
    if (ip[i] < 0 || ip[i] >= N) fail(op, "index " + std::to_string(ip[i]) + " is out of range for size " + std::to_string(N));
  py::array out(g.dtype(), std::vector<py::ssize_t>(shape.begin(), shape.end()));
  py::gil_scoped_release nogil;
  if (f64) tapegrad::scatter_middle<double>(A, N, B, ip, cptr<double>(g), ptr<double>(out));
  else tapegrad::scatter_middle<float>(A, N, B, ip, cptr<float>(g), ptr<float>(out));
  return std::move(out);
}

// select_dim(x, dim, keepdim, op) -> (values, int64 indices) of max / min ('max' or 'min') along dim,
// or None where the kernel does not apply (other dtypes or layouts).
py::object select_dim(const py::array& x, int64_t dim, bool keepdim, const std::string& op) {
  if (op != "max" && op != "min") fail("select_dim", "unknown selection '" + op + "' (max or min)");
  const int64_t nd = x.ndim();
  if (!(x.flags() & py::array::c_style) || nd == 0) return py::none();
  const int64_t d = dim < 0 ? dim + nd : dim;
  if (d < 0 || d >= nd) fail(op, "dim " + std::to_string(dim) + " is out of range for an input of shape " + shape_str(x));
  int64_t A = 1, N = x.shape(d), B = 1;
  std::vector<py::ssize_t> shape;
  for (int64_t k = 0; k < nd; ++k) {
    if (k < d) A *= x.shape(k);
    if (k > d) B *= x.shape(k);
    if (k != d || keepdim) shape.push_back(k == d ? 1 : x.shape(k));
  }
  if (N == 0 && A * B > 0) fail(op, "cannot select along a dim of size 0 (input shape " + shape_str(x) + ")");
  py::array val(x.dtype(), shape), idx(py::dtype::of<int64_t>(), shape);
  const bool min = op == "min";
  const auto run = [&](auto* tag) -> bool {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (!same_dtype(x.dtype(), py::dtype::of<T>())) return false;
    py::gil_scoped_release nogil;
    tapegrad::select_middle<T>(min, A, N, B, cptr<T>(x), ptr<T>(val), ptr<int64_t>(idx));
    return true;
  };
  if (!(run((float*)nullptr) || run((double*)nullptr) || run((int64_t*)nullptr) || run((int32_t*)nullptr) ||
        run((int16_t*)nullptr) || run((int8_t*)nullptr) || run((uint8_t*)nullptr)))
    return py::none();
  return py::make_tuple(val, idx);
}

void define(py::module_& m) {
  m.def("reduce", &reduce, py::arg("x"), py::arg("dims"), py::arg("keepdim"), py::arg("op"),
        "op ('sum', 'mean', 'amax', 'amin', 'prod', 'logsumexp', 'norm1' or 'norm2') of a C-contiguous "
        "float32/float64 x over dims (keepdim as numpy's keepdims); None where the kernel does not apply (other "
        "dtypes or layouts, reduced dims on both sides of a kept one, no dims).");
  m.def("reduce_half", &reduce_half, py::arg("x"), py::arg("dims"), py::arg("keepdim"), py::arg("op"),
        py::arg("bf16"),
        "op ('sum' or 'mean') of a C-contiguous float16 (bf16 false) or bfloat16 x, given as its uint16 view, "
        "over dims: float32 sums, each result rounded once, as a uint16 array of the same format; None where the "
        "kernel does not apply (layouts, reduced dims on both sides of a kept one, no dims).");
  m.def("reduce_backward", &reduce_backward, py::arg("x"), py::arg("dims"), py::arg("u"), py::arg("v"),
        py::arg("op"),
        "The first-order gradient over x of op ('norm2', 'logsumexp', 'prod' or 'var') over dims, from u and v "
        "(both C-contiguous, the reduced shape; the incoming gradient and the result, for var (2 / dof) g and the "
        "mean): u * x / v (0 where v is 0), u * exp(x - v), u * (v / x), u * (x - v). None where the kernel does "
        "not apply.");
  m.def("select_dim", &select_dim, py::arg("x"), py::arg("dim"), py::arg("keepdim"), py::arg("op"),
        "(values, int64 indices) of op ('max' or 'min') along dim of a C-contiguous float32/float64/int64/int32/"
        "int16/int8/uint8 x, PyTorch's choice (the first NaN, else the first of ties); None for other dtypes or "
        "layouts.");
  m.def("select_backward", &select_backward, py::arg("g"), py::arg("idx"), py::arg("shape"), py::arg("dim"),
        "max/min along dim's gradient: zeros of shape but for g (C-contiguous float32/float64) at the int64 "
        "indices idx along dim. None for other dtypes.");
}

}  // namespace reduce

// ---------------------------------------------------------------- fused optimizer updates
// Adam/AdamW and SGD over lists of parameters and their state (csrc/kernels/optim.cpp): every
// array C-contiguous and writeable (grads only read), one float dtype for all, each state array
// of its parameter's shape. The arrays are updated in place.
namespace optim {

using convpool::check_contiguous;

// Checks list `name` (of parameters' companions) against params; returns whether float64.
bool check_list(const std::string& op, const std::vector<py::array>& params, const std::vector<py::array>& list,
                const char* name, bool writeable) {
  if (list.size() != params.size())
    fail(op, std::string(name) + " has " + std::to_string(list.size()) + " arrays for " +
                 std::to_string(params.size()) + " parameters");
  const bool f64 = !params.empty() && same_dtype(params[0].dtype(), py::dtype::of<double>());
  for (size_t i = 0; i < list.size(); ++i) {
    const py::array& a = list[i];
    const std::string what = std::string(name) + "[" + std::to_string(i) + "]";
    if (!same_dtype(a.dtype(), params[0].dtype()))
      fail(op, "dtypes differ: params[0] is " + std::string(py::str(params[0].dtype())) + ", " + what + " is " +
                   std::string(py::str(a.dtype())));
    if (a.ndim() != params[i].ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), params[i].shape()))
      fail(op, what + " " + shape_str(a) + " and params[" + std::to_string(i) + "] " + shape_str(params[i]) +
                   " must have one shape");
    check_contiguous(op, what.c_str(), a);
    if (writeable && !a.writeable()) fail(op, what + " is read-only");
  }
  return f64;
}

bool check_params(const std::string& op, const std::vector<py::array>& params) {
  if (!params.empty() && !same_dtype(params[0].dtype(), py::dtype::of<double>()) &&
      !same_dtype(params[0].dtype(), py::dtype::of<float>()))
    fail(op, "only float32 and float64 are supported, got " + std::string(py::str(params[0].dtype())));
  return check_list(op, params, params, "params", true);
}

template <typename T>
T* wptr(const py::array& a) { return static_cast<T*>(const_cast<void*>(a.data())); }

template <typename T>
void run_adam(const std::vector<py::array>& ps, const std::vector<py::array>& gs, const std::vector<py::array>& ms,
              const std::vector<py::array>& vs, const std::optional<std::vector<py::array>>& vmax,
              const tapegrad::AdamHyper& h) {
  std::vector<tapegrad::AdamTensors<T>> ts;
  for (size_t i = 0; i < ps.size(); ++i)
    ts.push_back({static_cast<int64_t>(ps[i].size()), wptr<T>(ps[i]), static_cast<const T*>(gs[i].data()),
                  wptr<T>(ms[i]), wptr<T>(vs[i]), vmax ? wptr<T>((*vmax)[i]) : nullptr});
  py::gil_scoped_release nogil;
  tapegrad::adam_step<T>(ts, h);
}

void adam_step(const std::vector<py::array>& params, const std::vector<py::array>& grads,
               const std::vector<py::array>& exp_avgs, const std::vector<py::array>& exp_avg_sqs,
               const std::optional<std::vector<py::array>>& max_exp_avg_sqs, double lr, double beta1, double beta2,
               double eps, double weight_decay, double step, bool maximize, bool decoupled) {
  const std::string op = "adam_step";
  const bool f64 = check_params(op, params);
  check_list(op, params, grads, "grads", false);
  check_list(op, params, exp_avgs, "exp_avgs", true);
  check_list(op, params, exp_avg_sqs, "exp_avg_sqs", true);
  if (max_exp_avg_sqs) check_list(op, params, *max_exp_avg_sqs, "max_exp_avg_sqs", true);
  if (!(step >= 1)) fail(op, "step must be >= 1, got " + std::to_string(step));
  const tapegrad::AdamHyper h{lr, beta1, beta2, eps, weight_decay, step, bool(max_exp_avg_sqs), maximize, decoupled};
  if (f64) run_adam<double>(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, h);
  else run_adam<float>(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, h);
}

template <typename T>
void run_sgd(const std::vector<py::array>& ps, const std::vector<py::array>& gs,
             const std::optional<std::vector<py::array>>& bufs, const std::vector<bool>& first,
             const tapegrad::SgdHyper& h) {
  std::vector<tapegrad::SgdTensors<T>> ts;
  for (size_t i = 0; i < ps.size(); ++i)
    ts.push_back({static_cast<int64_t>(ps[i].size()), wptr<T>(ps[i]), static_cast<const T*>(gs[i].data()),
                  bufs ? wptr<T>((*bufs)[i]) : nullptr, bufs ? bool(first[i]) : false});
  py::gil_scoped_release nogil;
  tapegrad::sgd_step<T>(ts, h);
}

void sgd_step(const std::vector<py::array>& params, const std::vector<py::array>& grads,
              const std::optional<std::vector<py::array>>& momentum_buffers, const std::vector<bool>& first,
              double lr, double momentum, double dampening, double weight_decay, bool nesterov, bool maximize) {
  const std::string op = "sgd_step";
  const bool f64 = check_params(op, params);
  check_list(op, params, grads, "grads", false);
  if (momentum_buffers) {
    check_list(op, params, *momentum_buffers, "momentum_buffers", true);
    if (first.size() != params.size())
      fail(op, "first has " + std::to_string(first.size()) + " flags for " + std::to_string(params.size()) +
                   " parameters");
  }
  const tapegrad::SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, maximize};
  if (f64) run_sgd<double>(params, grads, momentum_buffers, first, h);
  else run_sgd<float>(params, grads, momentum_buffers, first, h);
}

void define(py::module_& m) {
  m.def("adam_step", &adam_step, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
        py::arg("max_exp_avg_sqs"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("step"), py::arg("maximize"), py::arg("decoupled"),
        "One Adam/AdamW update of every parameter in place (max_exp_avg_sqs: amsgrad's, or None); bit-identical "
        "to tapegrad.optim's numpy path.");
  m.def("sgd_step", &sgd_step, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("first"),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
        py::arg("maximize"), "One SGD update of every parameter in place (momentum_buffers None without momentum; "
        "first[i]: buffer i is new and takes the gradient); bit-identical to tapegrad.optim's numpy path.");
}

}  // namespace optim

// glibc returns large freed blocks to the OS (mmap'd chunks, heap trimming), so a training
// loop that allocates the same large temporaries every step page-faults on them every step.
// Raising both thresholds keeps freed memory for reuse (bench_overhead.py's MLP step: 2.17 ->
// 1.38 ms), at the cost of not giving back memory below the process's peak.
bool keep_freed_memory(int64_t mmap_threshold, int64_t trim_threshold) {
#if defined(__GLIBC__)
  if (mmap_threshold < 0 || trim_threshold < 0)
    throw py::value_error("keep_freed_memory: thresholds must be >= 0");
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(std::min<int64_t>(mmap_threshold, 32 << 20))) == 1 &&
         mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min<int64_t>(trim_threshold, 1 << 30))) == 1;
#else
  return false;
#endif
}

// Transparent huge pages for the heap's large blocks. Streaming a few MiB through a kernel on
// 4 KiB pages costs a TLB miss per page, a nested page walk in a VM: on the development VM GELU,
// SiLU and softmax over 1e6 floats ran 10-14% faster forward + backward on 2 MiB pages (glibc's
// own glibc.malloc.hugetlb=1 tunable, which only GLIBC_TUNABLES at process start can set). With
// THP in "madvise" mode (the common default) this does what that tunable does for the heap, once:
// the heap grows by `bytes` at least on each extension (M_TOP_PAD), is grown now by one large
// block, which is freed at once, and the new part is madvise(MADV_HUGEPAGE)d. Nothing is touched:
// pages are only made (2 MiB at a time) where the program's arrays come to live, and with the
// thresholds above glibc keeps them for reuse. Memory the heap gets beyond this part later has
// 4 KiB pages as before. Returns the bytes advised (0 where THP is off, this is not glibc, or the
// process has an address-space or data limit).
int64_t reserve_huge_heap(int64_t bytes) {
#if defined(__GLIBC__) && defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes < 0) throw py::value_error("reserve_huge_heap: bytes must be >= 0");
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < int64_t(kHuge)) return 0;
  // Under an address-space or data-segment limit (ulimit -v / -d) the reservation, and the top pad
  // every later heap extension would then ask for, count against the limit: a small allocation
  // could fail with the limit still far away. Leave the heap alone there.
  for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    struct rlimit lim;
    if (getrlimit(resource, &lim) != 0 || lim.rlim_cur != RLIM_INFINITY) return 0;
  }
  if (mallopt(M_TOP_PAD, static_cast<int>(std::min<int64_t>(bytes, 1 << 30))) != 1) return 0;
  const uintptr_t before = reinterpret_cast<uintptr_t>(sbrk(0));
  // Blocks below the mmap threshold until the heap has grown by `bytes` (glibc extends it by a
  // block plus the top pad; free space it already had is used first), then all freed: the top
  // chunk keeps the pad (the trim threshold is below it, and trimming keeps the pad).
  std::vector<void*> blocks;
  while (reinterpret_cast<uintptr_t>(sbrk(0)) - before < static_cast<uintptr_t>(bytes) && blocks.size() < 4096) {
    void* b = malloc(4 << 20);
    if (!b) break;
    blocks.push_back(b);
  }
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) free(*it);
  const uintptr_t after = reinterpret_cast<uintptr_t>(sbrk(0));
  const uintptr_t lo = (before + kHuge - 1) & ~(kHuge - 1), hi = after & ~(kHuge - 1);
  if (hi <= lo) return 0;
  if (madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) != 0) return 0;
  return static_cast<int64_t>(hi - lo);
#else
  return 0;
#endif
}

// ---------------------------------------------------------------- gather / scatter along a dim
// gather, scatter, scatter_add (and index_add, as a scatter_add with a broadcast index) along one
// dim (csrc/kernels/gather.h). index int64 of the input's rank; x and src any strides; an index
// outside [0, size) raises IndexError naming the op, the dim and the index.
namespace gathers {

// a's strides in elements; a byte stride that is no multiple of the element is refused.
std::vector<int64_t> elem_strides(const std::string& op, const char* name, const py::array& a) {
  std::vector<int64_t> s(static_cast<size_t>(a.ndim()));
  for (py::ssize_t j = 0; j < a.ndim(); ++j) {
    if (a.strides(j) % a.itemsize()) fail(op, std::string(name) + " has strides " + strides_str(a) + " that are no "
                                                 "multiple of its element size");
    s[static_cast<size_t>(j)] = estride(a, static_cast<int>(j));
  }
  return s;
}

// The shared checks; index's shape as int64.
std::vector<int64_t> check_index(const std::string& op, const py::array& x, int dim, const py::array& index) {
  if (!same_dtype(index.dtype(), py::dtype::of<int64_t>()))
    fail(op, "index must be int64, got " + std::string(py::str(index.dtype())));
  if (x.ndim() < 1 || index.ndim() != x.ndim())
    fail(op, "index " + shape_str(index) + " and input " + shape_str(x) + " must have one rank >= 1");
  if (dim < 0 || dim >= x.ndim()) fail(op, "dim " + std::to_string(dim) + " is out of range for input " + shape_str(x));
  std::vector<int64_t> shape(index.shape(), index.shape() + index.ndim());
  for (py::ssize_t j = 0; j < x.ndim(); ++j)
    if (j != dim && index.shape(j) > x.shape(j))
      fail(op, "index " + shape_str(index) + " is larger than input " + shape_str(x) + " outside dim " + std::to_string(dim));
  return shape;
}

// An index outside its dim in gather / scatter / index_add: Python's IndexError and PyTorch's
// RuntimeError at once (the module's IndexOutOfBounds, registered below).
struct IndexOutOfBounds : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void out_of_bounds(const std::string& op, int64_t bad, int dim, const py::array& x) {
  throw IndexOutOfBounds(op + "(): index " + std::to_string(bad) + " is out of bounds for dimension " +
                        std::to_string(dim) + " with size " + std::to_string(x.shape(dim)) + " (input shape " +
                        shape_str(x) + ")");
}

// gather(x, dim, index, op) -> x[p with p[dim] = index[p]] for every p of index's shape, as a new
// C-contiguous array; op names the caller in errors.
py::array gather(const py::array& x, int dim, const py::array& index, const std::string& op) {
  const std::vector<int64_t> shape = check_index(op, x, dim, index);
  const int width = static_cast<int>(x.itemsize());
  if (width != 1 && width != 2 && width != 4 && width != 8)
    fail(op, "elements of " + std::to_string(width) + " bytes are not supported");
  const std::vector<int64_t> xs = elem_strides(op, "input", x), is = elem_strides(op, "index", index);
  py::array out(x.dtype(), std::vector<py::ssize_t>(index.shape(), index.shape() + index.ndim()));
  const int nd = static_cast<int>(x.ndim());
  const int64_t n = x.shape(dim);
  const void* px = x.data();
  const auto* pi = static_cast<const int64_t*>(index.data());
  void* po = out.mutable_data();
  int64_t bad = 0;
  bool ok;
  {
    py::gil_scoped_release nogil;
    switch (width) {
      case 1: ok = tapegrad::gather_dim(nd, shape.data(), dim, static_cast<const uint8_t*>(px), xs.data(), n, pi, is.data(), static_cast<uint8_t*>(po), &bad); break;
      case 2: ok = tapegrad::gather_dim(nd, shape.data(), dim, static_cast<const uint16_t*>(px), xs.data(), n, pi, is.data(), static_cast<uint16_t*>(po), &bad); break;
      case 4: ok = tapegrad::gather_dim(nd, shape.data(), dim, static_cast<const uint32_t*>(px), xs.data(), n, pi, is.data(), static_cast<uint32_t*>(po), &bad); break;
      default: ok = tapegrad::gather_dim(nd, shape.data(), dim, static_cast<const uint64_t*>(px), xs.data(), n, pi, is.data(), static_cast<uint64_t*>(po), &bad); break;
    }
  }
  if (!ok) out_of_bounds(op, bad, dim, x);
  return out;
}

// scatter_(out, dim, index, src, accumulate, op): out[p with p[dim] = index[p]] += src[p] (or =)
// in place, for every p of index's shape. out C-contiguous and writeable; src of out's dtype and
// rank (any strides, 0 to broadcast), at least index's size in every dim. The sums take float32,
// float64, int32 and int64; the overwrite any dtype of 1, 2, 4 or 8 bytes. On an IndexError out
// is partly written.
void scatter_(py::array& out, int dim, const py::array& index, const py::array& src, bool accumulate,
              const std::string& op) {
  const std::vector<int64_t> shape = check_index(op, out, dim, index);
  if (!out.writeable()) fail(op, "out is read-only");
  if (!(out.flags() & py::array::c_style)) fail(op, "out must be C-contiguous, got strides " + strides_str(out));
  if (!same_dtype(src.dtype(), out.dtype()))
    fail(op, "src is " + std::string(py::str(src.dtype())) + ", out " + std::string(py::str(out.dtype())));
  if (src.ndim() != out.ndim()) fail(op, "src " + shape_str(src) + " must have out's rank, " + shape_str(out));
  for (py::ssize_t j = 0; j < src.ndim(); ++j)
    if (index.shape(j) > src.shape(j)) fail(op, "index " + shape_str(index) + " is larger than src " + shape_str(src));
  const std::vector<int64_t> os = elem_strides(op, "out", out), is = elem_strides(op, "index", index),
                             ss = elem_strides(op, "src", src);
  const int nd = static_cast<int>(out.ndim());
  const int64_t n = out.shape(dim);
  const auto* pi = static_cast<const int64_t*>(index.data());
  void* po = out.mutable_data();
  const void* ps = src.data();
  const int width = static_cast<int>(out.itemsize());
  const char kind = out.dtype().kind();
  int64_t bad = 0;
  bool ok = true;
#define TG_SCATTER_AS(T)                                                                                 \
  ok = tapegrad::scatter_dim(nd, shape.data(), dim, static_cast<T*>(po), os.data(), n, pi, is.data(), \
                             static_cast<const T*>(ps), ss.data(), accumulate, &bad)
  if (accumulate) {
    if (kind == 'f' && width == 4) {
      py::gil_scoped_release nogil;
      TG_SCATTER_AS(float);
    } else if (kind == 'f' && width == 8) {
      py::gil_scoped_release nogil;
      TG_SCATTER_AS(double);
    } else if (kind == 'i' && width == 4) {
      py::gil_scoped_release nogil;
      TG_SCATTER_AS(int32_t);
    } else if (kind == 'i' && width == 8) {
      py::gil_scoped_release nogil;
      TG_SCATTER_AS(int64_t);
    } else {
      fail(op, "sums take float32, float64, int32 or int64, got " + std::string(py::str(out.dtype())));
    }
  } else {
    if (width != 1 && width != 2 && width != 4 && width != 8)
      fail(op, "elements of " + std::to_string(width) + " bytes are not supported");
    py::gil_scoped_release nogil;
    switch (width) {
      case 1: TG_SCATTER_AS(uint8_t); break;
      case 2: TG_SCATTER_AS(uint16_t); break;
      case 4: TG_SCATTER_AS(uint32_t); break;
      default: TG_SCATTER_AS(uint64_t); break;
    }
  }
#undef TG_SCATTER_AS
  if (!ok) out_of_bounds(op, bad, dim, out);
}

void define(py::module_& m) {
  py::register_exception<IndexOutOfBounds>(m, "IndexOutOfBounds",
                                           py::make_tuple(py::handle(PyExc_IndexError), py::handle(PyExc_RuntimeError)));
  m.def("gather", &gather, py::arg("x"), py::arg("dim"), py::arg("index"), py::arg("op") = "gather",
        "x[p with p[dim] = index[p]] for every p of index's shape (int64, x's rank), a new array; IndexError "
        "on an index outside [0, x.shape[dim]).");
  m.def("scatter_", &scatter_, py::arg("out"), py::arg("dim"), py::arg("index"), py::arg("src"),
        py::arg("accumulate"), py::arg("op") = "scatter",
        "out[p with p[dim] = index[p]] += src[p] (accumulate) or = src[p], in place, for every p of index's "
        "shape, repeats in order along dim; the same bits for any thread count.");
}

}  // namespace gathers

// ---------------------------------------------------------------- triangles and pads
// tril / triu and pad as one pass over the output (csrc/kernels/shape.cpp); the ops in
// tapegrad/ops/shape.py reshape to the kernels' 3-d and 4-d forms.
namespace shapes {

using rows::cptr;
using rows::ptr;

int element_width(const std::string& op, const py::array& x) {
  const int w = static_cast<int>(x.itemsize());
  if (w != 1 && w != 2 && w != 4 && w != 8) fail(op, "elements of " + std::to_string(w) + " bytes are not supported");
  return w;
}

// triangle(x, diagonal, lower, inplace) -> x (B, R, C) with the elements off the triangle zeroed
// (tril where lower, else triu), in a new array, or in x itself where inplace.
py::array triangle(py::array x, int64_t diagonal, bool lower, bool inplace) {
  const std::string op = lower ? "tril" : "triu";
  const int w = element_width(op, x);
  if (x.ndim() != 3) fail(op, "x must be 3-d (B, R, C), got " + shape_str(x));
  convpool::check_contiguous(op, "x", x);
  if (inplace && !x.writeable()) fail(op, "x is read-only");
  py::array out = inplace ? x : py::array(x.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + 3));
  const int64_t B = x.shape(0), R = x.shape(1), C = x.shape(2);
  const void* src = x.data();
  void* dst = out.mutable_data();
  py::gil_scoped_release nogil;
  tapegrad::triangle(B, R, C, diagonal, lower, w, src, dst);
  return out;
}

// The maps' checks: three int64 1-d arrays of indices in [-1, n) and an interior [a2, b2) whose
// sources p + off2 lie in [0, n2).
tapegrad::PadMaps pad_maps(const std::string& op, const std::vector<py::array_t<int64_t, py::array::c_style>>& maps,
                           const std::vector<int64_t>& in_shape, int64_t a2, int64_t b2, int64_t off2) {
  if (maps.size() != 3 || in_shape.size() != 4) fail(op, "expects three maps and a 4-d input shape");
  tapegrad::PadMaps p{};
  p.outer = in_shape[0];
  p.n0 = in_shape[1];
  p.n1 = in_shape[2];
  p.n2 = in_shape[3];
  const int64_t n[3] = {p.n0, p.n1, p.n2};
  int64_t P[3];
  for (int d = 0; d < 3; ++d) {
    const auto& m = maps[static_cast<size_t>(d)];
    if (m.ndim() != 1) fail(op, "map " + std::to_string(d) + " must be 1-d, got " + shape_str(m));
    P[d] = m.shape(0);
    const int64_t* v = m.data();
    for (int64_t i = 0; i < P[d]; ++i)
      if (v[i] < -1 || v[i] >= n[d])
        fail(op, "map " + std::to_string(d) + " holds " + std::to_string(v[i]) + ", outside [-1, " +
                     std::to_string(n[d]) + ")");
  }
  p.P0 = P[0];
  p.P1 = P[1];
  p.P2 = P[2];
  p.m0 = maps[0].data();
  p.m1 = maps[1].data();
  p.m2 = maps[2].data();
  if (a2 < 0 || b2 < a2 || b2 > P[2] || (b2 > a2 && (a2 + off2 < 0 || b2 + off2 > p.n2)))
    fail(op, "interior [" + std::to_string(a2) + ", " + std::to_string(b2) + ") + " + std::to_string(off2) +
                 " does not fit the last dim (" + std::to_string(P[2]) + " out, " + std::to_string(p.n2) + " in)");
  p.a2 = a2;
  p.b2 = b2;
  p.off2 = off2;
  return p;
}

// pad(x, maps, interior, value) -> out (outer, P0, P1, P2): x (outer, n0, n1, n2) C-contiguous,
// out[o, p0, p1, p2] = x[o, m0[p0], m1[p1], m2[p2]], or value (one element of x's dtype) where a map
// is -1; interior = (a2, b2, off2): m2[p] = p + off2 on [a2, b2).
py::array pad(const py::array& x, const std::vector<py::array_t<int64_t, py::array::c_style>>& maps,
              const std::tuple<int64_t, int64_t, int64_t>& interior, const py::array& value) {
  const std::string op = "pad";
  const int w = element_width(op, x);
  if (x.ndim() != 4) fail(op, "x must be 4-d (outer, n0, n1, n2), got " + shape_str(x));
  convpool::check_contiguous(op, "x", x);
  if (!same_dtype(x.dtype(), value.dtype()) || value.size() != 1)
    fail(op, "value must be one element of x's dtype " + std::string(py::str(x.dtype())));
  const auto [a2, b2, off2] = interior;
  const tapegrad::PadMaps p =
      pad_maps(op, maps, std::vector<int64_t>(x.shape(), x.shape() + 4), a2, b2, off2);
  py::array out(x.dtype(), std::vector<py::ssize_t>{p.outer, p.P0, p.P1, p.P2});
  const void *src = x.data(), *v = value.data();
  void* dst = out.mutable_data();
  py::gil_scoped_release nogil;
  tapegrad::pad_forward(p, w, src, v, dst);
  return out;
}

// pad_backward(g, maps, interior, in_shape) -> the gradient (in_shape, 4-d) of pad's input: zeros,
// plus g's elements added at their sources (float32 / float64).
py::array pad_backward(const py::array& g, const std::vector<py::array_t<int64_t, py::array::c_style>>& maps,
                       const std::tuple<int64_t, int64_t, int64_t>& interior, const std::vector<int64_t>& in_shape) {
  const std::string op = "pad_backward";
  const bool f64 = convpool::check_float_dtypes(op, {{"grad_output", &g}});
  convpool::check_contiguous(op, "grad_output", g);
  const auto [a2, b2, off2] = interior;
  const tapegrad::PadMaps p = pad_maps(op, maps, in_shape, a2, b2, off2);
  for (int64_t s : in_shape)
    if (s < 0) fail(op, "negative size in the input shape");
  if (g.ndim() != 4 || g.shape(0) != p.outer || g.shape(1) != p.P0 || g.shape(2) != p.P1 || g.shape(3) != p.P2)
    fail(op, "grad_output " + shape_str(g) + " does not match the maps' output shape");
  py::array gx(g.dtype(), std::vector<py::ssize_t>(in_shape.begin(), in_shape.end()));
  py::gil_scoped_release nogil;
  if (f64) tapegrad::pad_backward<double>(p, cptr<double>(g), ptr<double>(gx));
  else tapegrad::pad_backward<float>(p, cptr<float>(g), ptr<float>(gx));
  return gx;
}

void define(py::module_& m) {
  m.def("triangle", &triangle, py::arg("x"), py::arg("diagonal"), py::arg("lower"), py::arg("inplace") = false,
        "x (B, R, C) C-contiguous with the elements off its lower (tril) or upper (triu) triangle zeroed, bit for "
        "bit, in a new array or in x.");
  m.def("pad", &pad, py::arg("x"), py::arg("maps"), py::arg("interior"), py::arg("value"),
        "x (outer, n0, n1, n2) gathered through three index maps (-1: value) into (outer, P0, P1, P2), bit for bit.");
  m.def("pad_backward", &pad_backward, py::arg("grad_output"), py::arg("maps"), py::arg("interior"),
        py::arg("in_shape"), "pad's input gradient: grad_output added at the maps' sources, in a fixed order.");
}

}  // namespace shapes

PYBIND11_MODULE(_C, m) {
  // A mistyped TAPEGRAD_CPU would otherwise be ignored, and a run meant to test the AVX2 or
  // generic kernels would silently test AVX-512's.
  if (*tapegrad::cpu_config_error()) throw py::import_error(tapegrad::cpu_config_error());
  m.doc() = "tapegrad's native kernels (GEMM, convolution, pooling) and the tape's hot paths";
  if (tapegrad::tape::add_to_module(m.ptr()) < 0) throw py::error_already_set();
  m.def("reserve_huge_heap", &reserve_huge_heap, py::arg("bytes"),
        "Grows the heap by bytes (glibc's top pad from now on) and advises the new part to transparent huge "
        "pages (madvise mode); returns the bytes advised, 0 where unavailable. Called once at import.");
  m.def("keep_freed_memory", &keep_freed_memory, py::arg("mmap_threshold"), py::arg("trim_threshold"),
        "glibc only: serve allocations up to mmap_threshold bytes from the heap and keep up to "
        "trim_threshold bytes of freed heap memory; returns whether it took effect.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("bias") = py::none(),
        "out = alpha * a @ b + beta * out (+ bias, a vector added to every row) for (..., M, K) @ (..., K, N) "
        "with equal batch shapes; any strides.");
  m.def("gemm_kernel", &tapegrad::gemm_kernel_name,
        "Name of the GEMM micro-kernel in use: 'avx512', 'avx2' or 'generic' (TAPEGRAD_CPU, or "
        "TAPEGRAD_GEMM_KERNEL for gemm alone, =avx2 or =generic caps the choice).");
  m.def("cpu_isa", &cpu_isa,
        "The instruction set each kernel family runs: {'cpu': the CPU's level, 'cap': the level TAPEGRAD_CPU "
        "allows, 'gemm': ..., 'conv': ..., ...}, each 'avx512', 'avx2' or 'generic' (conv's 'generic' is the "
        "im2col + gemm route). TAPEGRAD_CPU=avx512|avx2|generic caps every family; see csrc/kernels/cpu.h.");
  m.def("_gemm_packed", &gemm_packed, py::arg("b"), py::arg("as"), py::arg("outs"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0,
        "Tests: packs b (K, N) once (gemm.h's PackedB) and sets outs[i] = alpha * as[i] @ b + beta * outs[i].");
  tapegrad::install_fork_handler();
  m.def("set_num_threads", &tapegrad::set_num_threads, py::arg("n"),
        "Threads of every kernel call from any thread (process-wide); see csrc/kernels/parallel.h for fork.");
  m.def("get_num_threads", &tapegrad::num_threads, "The process-wide kernel thread count.");
  m.def("_kernel_pool_workers", &tapegrad::kernel_pool_workers,
        "Worker threads the kernels' pool has started (tests; 0 in the ThreadSanitizer build).");
  m.def(
      "_parallel_tiles_takers",
      [](int64_t ntiles, int64_t worker_delay_us) {
        std::vector<std::atomic<int>> runs(ntiles);
        std::vector<int> caller(ntiles, 0);
        std::vector<int64_t> seq(ntiles, -1);
        std::atomic<int64_t> taken{0};
        const auto me = std::this_thread::get_id();
        {
          py::gil_scoped_release nogil;
          tapegrad::parallel_tiles(ntiles, true, [&](int64_t t) {
            const bool mine = std::this_thread::get_id() == me;
            if (!mine && worker_delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(worker_delay_us));
            runs[t].fetch_add(1);
            caller[t] = mine;
            seq[t] = taken.fetch_add(1);
          });
        }
        std::vector<int> counts(ntiles);
        for (int64_t t = 0; t < ntiles; ++t) counts[t] = runs[t].load();
        return py::make_tuple(counts, caller, seq);
      },
      py::arg("ntiles"), py::arg("worker_delay_us"),
      "Tests: parallel_tiles over ntiles tiles, each on another thread than the caller first sleeping "
      "worker_delay_us; per tile the times it ran, whether the caller ran it, and when it was taken.");
#ifdef TAPEGRAD_TSAN
  // Debug-only (the ThreadSanitizer build): a deliberate data race, so scripts/tsan.sh can show
  // that TSan sees races in this module at all. Every thread adds to one unsynchronised counter.
  m.def("_tsan_racy_count", [](int64_t per_thread) {
    int64_t counter = 0;
    {
      py::gil_scoped_release nogil;
      tapegrad::parallel(2, [&](int, int) {
        for (int64_t i = 0; i < per_thread; ++i) *static_cast<volatile int64_t*>(&counter) += 1;
      });
    }
    return counter;
  });
#endif
  convpool::define(m);
  rows::define(m);
  norm::define(m);
  rnn::define(m);
  attention::define(m);
  optim::define(m);
  glue::define(m);
  reduce::define(m);
  gathers::define(m);
  shapes::define(m);
}
