// The only pybind11 file: every entry point checks dtype, rank, shape and strides
// here, raises a Python exception naming the op on bad input, and only then
// releases the GIL and calls a kernel that knows nothing of Python.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <omp.h>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/gemm.h"

namespace py = pybind11;

namespace {

std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

[[noreturn]] void fail(const std::string& op, const std::string& msg) {
  throw py::value_error(op + ": " + msg);
}

// Element strides of a numpy array (numpy reports bytes).
int64_t estride(const py::array& a, int dim) { return a.strides(dim) / static_cast<int64_t>(a.itemsize()); }

void check_strides_aligned(const std::string& op, const char* name, const py::array& a) {
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    if (a.strides(d) % static_cast<py::ssize_t>(a.itemsize()) != 0)
      fail(op, std::string(name) + " has a stride that is not a multiple of its item size");
}

// ---------------------------------------------------------------- GEMM
// matmul(a, b, out, alpha=1, beta=0): a (..., M, K), b (..., K, N), out (..., M, N) with the
// same leading batch shape (broadcast batch dims arrive as stride-0 views). Any strides.
template <typename T>
void matmul_impl(const py::array& a, const py::array& b, py::array& out, double alpha, double beta) {
  const int nd = static_cast<int>(a.ndim());
  const int64_t M = a.shape(nd - 2), K = a.shape(nd - 1), N = b.shape(nd - 1);
  int64_t batch = 1;
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
  const int64_t rsa = estride(a, nd - 2), csa = estride(a, nd - 1);
  const int64_t rsb = estride(b, nd - 2), csb = estride(b, nd - 1);
  const int64_t rsc = estride(out, nd - 2), csc = estride(out, nd - 1);
  py::gil_scoped_release nogil;
  for (int64_t i = 0; i < batch; ++i)
    tapegrad::gemm<T>(M, N, K, static_cast<T>(alpha), pa + offa[i], rsa, csa, pb + offb[i], rsb, csb,
                      static_cast<T>(beta), pc + offc[i], rsc, csc);
}

void matmul(const py::array& a, const py::array& b, py::array& out, double alpha, double beta) {
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
  if (!a.dtype().is(b.dtype()) || !a.dtype().is(out.dtype()))
    fail(op, "dtypes differ: " + std::string(py::str(a.dtype())) + ", " + std::string(py::str(b.dtype())) +
                 ", " + std::string(py::str(out.dtype())));
  if (!out.writeable()) fail(op, "out is read-only");
  check_strides_aligned(op, "a", a);
  check_strides_aligned(op, "b", b);
  check_strides_aligned(op, "out", out);
  if (a.dtype().is(py::dtype::of<float>())) matmul_impl<float>(a, b, out, alpha, beta);
  else if (a.dtype().is(py::dtype::of<double>())) matmul_impl<double>(a, b, out, alpha, beta);
  else fail(op, "only float32 and float64 are supported, got " + std::string(py::str(a.dtype())));
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "tapegrad's native kernels (GEMM, convolution, pooling)";
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0,
        "out = alpha * a @ b + beta * out for (..., M, K) @ (..., K, N) with equal batch shapes; any strides.");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
    omp_set_num_threads(n);
  });
  m.def("get_num_threads", []() { return omp_get_max_threads(); });
}
