// sort along one dim in PyTorch's order (ascending, or descending; NaN above every number, -0
// equal to +0), always stable: ties keep their index order, so stable=True and stable=False give
// the same result, and it is the same for any thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// x: A x N x B, C-contiguous, sorted along N; values and idx (int64) the same layout. Each slice
// (a, :, b) is one sort of (order key, index) pairs: an LSD radix sort over the key's bytes (bytes
// equal across the slice skipped), std::sort of the pairs below kSortRadixMin entries. Slices run
// on the kernel threads from 2^15 elements on, in tasks fixed by the shape.
template <typename T>
void sort_dim(int64_t A, int64_t N, int64_t B, const T* x, bool descending, T* values, int64_t* idx);

// unique of a sorted slice s[0, n) (sort_dim's values, order its indices): unique_runs counts its
// runs of equal values (== : -0 equals +0, and each NaN is a run of its own, as PyTorch's CPU
// unique); unique_fill writes each run's first value into values, its length into counts, and the
// run number of s[j] at inverse[order[j]] (any of the three may be null).
template <typename T>
int64_t unique_runs(int64_t n, const T* s);
template <typename T>
void unique_fill(int64_t n, const T* s, const int64_t* order, T* values, int64_t* inverse, int64_t* counts);

}  // namespace tapegrad
