// Overflow-checked int64 arithmetic for sizes. Offsets inside an array are bounded by sizes the
// bindings have checked, so only sizes derived from user-given geometry (output sizes, scratch
// buffers) go through these.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <utility>

namespace tapegrad {

// false when the result does not fit in int64 (out is then unspecified)
inline bool mul_ok(int64_t a, int64_t b, int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
inline bool add_ok(int64_t a, int64_t b, int64_t& out) { return !__builtin_add_overflow(a, b, &out); }
inline bool sub_ok(int64_t a, int64_t b, int64_t& out) { return !__builtin_sub_overflow(a, b, &out); }

// ceil(a / b) for a >= 0, b > 0, without the overflow of (a + b - 1) / b.
inline int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

// A scratch buffer too large to address: raised as MemoryError (pybind11 maps std::bad_alloc)
// with a message naming the op and the sizes.
class SizeOverflow : public std::bad_alloc {
 public:
  explicit SizeOverflow(std::string msg) : msg_(std::move(msg)) {}
  const char* what() const noexcept override { return msg_.c_str(); }

 private:
  std::string msg_;
};

// A failed allocation of `bytes` for `what`, as a std::bad_alloc (MemoryError) that says the size:
// the bindings' caller (tape.cpp's apply) adds the op and the input shapes.
[[noreturn]] inline void throw_out_of_memory(size_t bytes, const char* what) {
  throw SizeOverflow("can't allocate " + std::to_string(bytes) + " bytes of " + what);
}

// a * b, or SizeOverflow("<op>: <what> (a x b) ...").
inline int64_t checked_mul(int64_t a, int64_t b, const char* op, const char* what) {
  int64_t r;
  if (!mul_ok(a, b, r))
    throw SizeOverflow(std::string(op) + ": " + what + " of " + std::to_string(a) + " x " + std::to_string(b) +
                       " elements overflows int64");
  return r;
}

// n elements on the heap, left uninitialised: scratch that the caller writes in full before it
// reads any of it. std::vector<T>(n) would zero it first, a pass over the whole buffer on the
// calling thread before the kernel's own parallel writes.
template <typename T>
std::unique_ptr<T[]> scratch_array(int64_t n) {
  T* p = new (std::nothrow) T[static_cast<size_t>(n)];
  if (p == nullptr) throw_out_of_memory(static_cast<size_t>(n) * sizeof(T), "kernel scratch");
  return std::unique_ptr<T[]>(p);
}

}  // namespace tapegrad
