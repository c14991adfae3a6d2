// Every parallel region of the kernels goes through this file: the thread count, the team, and
// what happens to an exception or a fork.
//
//  - The thread count is process-wide (PyTorch's at::set_num_threads), not OpenMP's per-thread
//    setting: set_num_threads in one thread is what every other thread's kernels use.
//  - The threads are a pool of workers (parallel.cpp) shared by all calling threads. Work is
//    handed out dynamically: the caller starts on it at once, idle workers join, each takes the
//    next share from a shared counter (and tiles from its share's range, then from the others'),
//    and a worker that the OS has not scheduled (on a machine busy with other processes) is never
//    waited for: the caller takes its shares, so two threads are never much slower than one.
//    Shares are fixed by the problem, not by who runs them, so results are bit-identical for any
//    thread count and any timing. While the machine
//    has more runnable threads than CPUs (/proc/loadavg) a region runs on the caller alone, as
//    under set_num_threads(1): a woken worker could be descheduled inside its share there.
//  - Idle workers poll for the next job for 10 ms while the machine has a CPU to spare (a training
//    step's kernels come that close), else for 0.1 ms, then sleep on a futex.
//  - No exception crosses a region: parallel() runs each share under a catch, keeps the first
//    exception and rethrows it on the calling thread once all shares are done. Failing to start
//    the pool's threads is an exception too.
//  - fork: the child has none of the parent's worker threads; a pthread_atfork child handler
//    makes its next region start a new pool, so the child's kernels run, on as many threads as
//    the parent's (GNU libgomp's own pool would hang there).
//  - In the ThreadSanitizer build (TAPEGRAD_TSAN) a team is std::threads started and joined per
//    call, which TSan sees through; the shares are the same.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <utility>
#include <vector>

namespace tapegrad {

// The kernels' thread count, process-wide. Starts at OpenMP's default (OMP_NUM_THREADS, else
// the number of CPUs).
int num_threads();

// Throws std::invalid_argument for n < 1.
void set_num_threads(int n);

// The worker threads the pool has started (0 in the ThreadSanitizer build): for tests.
int kernel_pool_workers();

// Registers the pthread_atfork child handler; idempotent (the bindings call it at import).
void install_fork_handler();

// True inside a region started by parallel(): nested regions run on the calling thread.
bool in_parallel_region();

// The first exception thrown by any thread of a region, rethrown on the caller afterwards.
class FirstException {
 public:
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      capture();
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void rethrow() {
    if (failed_.load(std::memory_order_acquire)) std::rethrow_exception(first_);
  }

 private:
  void capture() noexcept {
    std::lock_guard<std::mutex> lock(m_);
    if (!first_) first_ = std::current_exception();
    failed_.store(true, std::memory_order_release);
  }
  std::mutex m_;
  std::exception_ptr first_;
  std::atomic<bool> failed_{false};
};

namespace detail {
using TeamFn = void (*)(void* ctx, int tid, int nthreads);
// Runs fn(ctx, tid, nthreads) on the caller (tid 0) and on up to nt - 1 pool workers that join
// while the caller's fn runs (none if the pool is busy with another caller's job); returns once
// the caller's fn has returned and no worker is inside fn. fn must not throw, and must get its
// work done whichever of its calls run (parallel() claims shares from a counter). Throws
// std::system_error if the pool's threads cannot be started.
void run_team(int nt, TeamFn fn, void* ctx);
// False while the machine has more runnable threads than CPUs once a team of nt would be woken:
// there a woken worker can be descheduled inside its share and the caller waits for it. With
// TAPEGRAD_THREADS_IGNORE_LOAD=1 the pool acts as on an idle machine whatever the load (the
// tests: their 1- and 2-thread comparisons must run teams). Starts the pool's workers (may
// throw std::system_error).
bool room_for_team(int nt);
}  // namespace detail

// Runs body(share, nshares) for every share in [0, nt), on up to nt threads: each thread takes
// the next share from a shared counter until none is left, so a thread the OS has not scheduled
// yet (another process busy on its core) costs nothing: the others take its share, and when it
// does start there is nothing left for it. nshares is nt whichever threads run the shares, so a
// body whose arithmetic depends only on (share, nshares) gives the same result for any timing.
// On one thread, or nested in a region, the shares run in order on the caller. On a machine with
// no CPU to spare for a team (detail::room_for_team) body(0, 1) runs alone, the call a kernel makes
// under set_num_threads(1), so two threads are no slower than one there; a body must therefore
// give the same result for any nshares, as every kernel's result is the same for any thread count.
// Rethrows the first exception any share threw, after all have finished.
template <class F>
void parallel(int nt, F&& body) {
  if (nt > 1 && !in_parallel_region() && !detail::room_for_team(nt)) nt = 1;
  if (nt <= 1 || in_parallel_region()) {
    for (int s = 0; s < std::max(nt, 1); ++s) body(s, std::max(nt, 1));
    return;
  }
  FirstException error;
  std::atomic<int> next{0};
  auto share = [&](int, int) {
    for (int s; (s = next.fetch_add(1, std::memory_order_relaxed)) < nt;) error.run([&] { body(s, nt); });
  };
  detail::run_team(
      nt, [](void* ctx, int tid, int nthreads) { (*static_cast<decltype(share)*>(ctx))(tid, nthreads); }, &share);
  error.rethrow();
}

// fn(begin, end) over contiguous shares of [0, n): share s is [n * s / k, n * (s + 1) / k) for
// k = min(n, num_threads()) shares (one if !enable), run as parallel() runs them.
template <class F>
void parallel_for(int64_t n, bool enable, F&& fn) {
  if (n <= 0) return;
  const int nt = enable && n > 1 ? int(std::min<int64_t>(n, num_threads())) : 1;
  parallel(nt, [&](int s, int k) {
    const int64_t begin = int64_t(__int128(n) * s / k), end = int64_t(__int128(n) * (s + 1) / k);
    if (begin < end) fn(begin, end);
  });
}

// fn(tile) for every tile in [0, ntiles), on up to num_threads() threads (one if !enable). For
// work cut into many tiles whose arithmetic is fixed by the tile alone: the result is then the
// same for any thread count and any timing.
//
// Share s first takes the tiles of its own contiguous range, [ntiles s / nt, ntiles (s + 1) / nt),
// in order, then what is left of the other ranges, from the next share's on. A range's tiles are
// taken from its own counter by whoever runs them, so no thread waits for a slow or descheduled
// one while tiles are left. Without such a thread each range stays with its share: the same
// share (the caller's, as a rule, is 0) takes the same elements in every call of the same size,
// and finds in its own cache what it wrote the call before. (Tiles all taken from one shared
// counter went to either thread at random, and each call's data moved between the cores' caches:
// on 2 threads group_norm on 32 x 64 x 8 x 8 float32 ran 19% slower forward and backward,
// 256 x 64 x 8 x 8 25% and 19%, layer_norm and softmax over 1024 x 1024 6-10% slower.)
template <class F>
void parallel_tiles(int64_t ntiles, bool enable, F&& fn) {
  if (ntiles <= 0) return;
  const int nt = enable && ntiles > 1 && !in_parallel_region() ? int(std::min<int64_t>(ntiles, num_threads())) : 1;
  if (nt == 1) {
    for (int64_t t = 0; t < ntiles; ++t) fn(t);
    return;
  }
  struct alignas(64) Range {  // a cache line each: every tile taken writes its range's counter
    std::atomic<int64_t> next;
    int64_t end;
  };
  std::vector<Range> ranges(nt);
  for (int s = 0; s < nt; ++s) {
    ranges[s].next.store(ntiles * s / nt, std::memory_order_relaxed);
    ranges[s].end = ntiles * (s + 1) / nt;
  }
  // nt ranges whatever parallel() makes of the shares (one share on a busy machine takes all).
  parallel(nt, [&](int s, int) {
    for (int i = 0; i < nt; ++i) {
      Range& r = ranges[(s + i) % nt];
      for (int64_t t; (t = r.next.fetch_add(1, std::memory_order_relaxed)) < r.end;) fn(t);
    }
  });
}

// The elementwise kernels' work (pointwise.cpp, ternary.cpp; rows.cpp's for_blocks uses the same
// numbers): f(i, len) over [0, n) in blocks of at most kElementBlock elements, tasks of four blocks
// taken by the threads from n >= 2^15 elements (below that a fork costs more than it saves) through
// parallel_tiles. Each block's bounds, so its arithmetic, are fixed by n alone.
constexpr int64_t kElementBlock = 4096;
template <typename F>
void for_element_blocks(int64_t n, F f) {
  constexpr int64_t kTaskElems = 4 * kElementBlock, kParallelMinElems = int64_t(1) << 15;
  const int64_t ntasks = (n + kTaskElems - 1) / kTaskElems;
  parallel_tiles(ntasks, n >= kParallelMinElems, [&](int64_t k) {
    const int64_t end = std::min(n, (k + 1) * kTaskElems);
    for (int64_t i = k * kTaskElems; i < end; i += kElementBlock) f(i, std::min(kElementBlock, end - i));
  });
}

}  // namespace tapegrad
