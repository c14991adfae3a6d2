// gather / scatter along one dim (PyTorch's gather, scatter, scatter_add, and index_add as a
// scatter_add whose index is broadcast): every array is addressed through index's shape, so an
// index smaller than the input outside `d`, a broadcast (stride-0) index or src, and any strides
// of x and src cost nothing extra. Work is cut by destination: each output element is written by
// one task, in the order of its contributions along `d`, so the sums are bit-identical for any
// thread count (and to numpy's np.add.at), with no atomics.
#pragma once
#include <cstdint>

namespace tapegrad {

// out[p] = x[p with p[d] replaced by index[p]] for every p of index's shape `shape` (nd dims,
// 0 <= d < nd); out C-contiguous of that shape. x has strides xs, index strides is, in elements
// (any sign; 0 broadcasts); n is x's size along d. U is any type of the element's width (a copy,
// bit for bit). False if an index lies outside [0, n): *bad is then the first such index of the
// first task (in task order) that met one, the same value for any thread count, and out is
// partly written.
template <typename U>
bool gather_dim(int nd, const int64_t* shape, int d, const U* x, const int64_t* xs, int64_t n, const int64_t* index,
                const int64_t* is, U* out, int64_t* bad);

// out[p with p[d] replaced by index[p]] += src[p] (accumulate) or = src[p] for every p of index's
// shape, each destination taking its values in increasing p[d]: with repeated indices the sum is
// numpy's np.add.at's, and the overwrite keeps the last. out has strides os, src ss, index is
// (elements); n is out's size along d; out may not overlap src or index. False on an index outside
// [0, n) (*bad as for gather_dim); the elements before it in each task are already written.
template <typename T>
bool scatter_dim(int nd, const int64_t* shape, int d, T* out, const int64_t* os, int64_t n, const int64_t* index,
                 const int64_t* is, const T* src, const int64_t* ss, bool accumulate, int64_t* bad);

}  // namespace tapegrad
