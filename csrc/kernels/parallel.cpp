// The kernels' thread count, their worker pool, and fork handling (see parallel.h).
#include "kernels/parallel.h"

#include <pthread.h>

#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#ifndef TAPEGRAD_TSAN
#include <omp.h>
#endif

namespace tapegrad {
namespace {

std::atomic<int> g_threads{0};  // 0: not read from the default yet
thread_local bool t_in_region = false;

int default_threads() {
#ifdef TAPEGRAD_TSAN
  if (const char* env = std::getenv("OMP_NUM_THREADS"))
    if (const int n = std::atoi(env); n > 0) return n;
  return std::max(1, int(std::thread::hardware_concurrency()));
#else
  return omp_get_max_threads();
#endif
}

#ifndef TAPEGRAD_TSAN
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls of an idle worker for the next job before it sleeps (tens of microseconds: a training
// step's kernels follow each other closer than that), and of the caller for the workers still
// inside a finished job before it yields its core to them.
constexpr int kWorkerSpins = 4000;
constexpr int kCallerSpins = 2000;

// One team call. Lives on the caller's stack; `active` (below) says when no worker can still
// be reading it.
struct Job {
  detail::TeamFn fn;
  void* ctx;
  int nt;
  std::atomic<int> next_tid{1};  // the caller is 0
};

// The kernels' worker threads, shared by every calling thread, one job at a time (a caller that
// finds the pool busy runs its shares itself). The caller works on its job from the start and
// never waits for a worker that has not joined it: when the caller has run out of shares it
// withdraws the job, and a worker that wakes later finds nothing. It only waits for workers
// already inside the job (`active`), i.e. for shares being computed.
//
// Withdrawal: a worker increments `active` and then reads `job`; the caller stores null to `job`
// and then reads `active` (all sequentially consistent). Either the caller sees the worker's
// increment and waits for it, or the worker sees null (or a later job, which it may serve).
class Pool {
 public:
  std::mutex submit;  // held by the caller whose job is posted
  std::atomic<Job*> job{nullptr};
  std::atomic<int> active{0};

  int workers() {
    std::lock_guard<std::mutex> lock(mu_);
    return int(threads_.size());
  }

  // Starts workers until there are n; throws std::system_error if one cannot start.
  void grow(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    const int have = int(threads_.size());
    for (int i = have; i < n; ++i) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::system_error& e) {
        throw std::system_error(e.code(), "could not start " + std::to_string(n - i) +
                                              " more kernel thread(s); set_num_threads(1) runs the kernels on the "
                                              "calling thread");
      }
      threads_.back().detach();  // the pool is never destroyed: its threads end with the process
    }
  }

  void post(Job* j) {
    job.store(j);
    gen_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    if (sleepers_) cv_.notify_all();
  }

 private:
  void work() {
    uint64_t seen = gen_.load();
    for (;;) {
      uint64_t g = gen_.load(std::memory_order_acquire);
      for (int spin = 0; g == seen; g = gen_.load(std::memory_order_acquire)) {
        if (++spin < kWorkerSpins) {
          cpu_relax();
          continue;
        }
        std::unique_lock<std::mutex> lock(mu_);
        ++sleepers_;
        cv_.wait(lock, [&] { return gen_.load() != seen; });
        --sleepers_;
      }
      seen = g;
      active.fetch_add(1);
      if (Job* j = job.load()) {
        const int tid = j->next_tid.fetch_add(1);
        if (tid < j->nt) {
          t_in_region = true;
          j->fn(j->ctx, tid, j->nt);
          t_in_region = false;
        }
      }
      active.fetch_sub(1);
    }
  }

  std::mutex mu_;  // threads_, sleepers_ and the condition
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  int sleepers_ = 0;
  std::vector<std::thread> threads_;
};

// The pool, and whether a fork child must start a new one: the child has none of the parent's
// threads, and the parent's pool may have been mid-job. The old one is leaked, never touched.
std::atomic<Pool*> g_pool{nullptr};
std::atomic<bool> g_pool_lost{false};

Pool& pool() {
  Pool* p = g_pool.load();
  if (g_pool_lost.exchange(false) || !p) {
    Pool* fresh = new Pool;
    if (g_pool.compare_exchange_strong(p, fresh)) return *fresh;
    delete fresh;  // another thread installed one first
  }
  return *g_pool.load();
}
#endif

// Runs in the child's only thread. Only stores to an atomic (a fork handler must be
// async-signal-safe); the child's next team starts a new pool.
void on_fork_child() {
#ifndef TAPEGRAD_TSAN
  g_pool_lost.store(true);
#endif
}

}  // namespace

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    int unset = 0;
    g_threads.compare_exchange_strong(unset, default_threads());
    n = g_threads.load();
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  g_threads.store(n);
}

void install_fork_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const int err = pthread_atfork(nullptr, nullptr, on_fork_child))
      throw std::system_error(err, std::generic_category(), "pthread_atfork");
    num_threads();  // read the default now, in the importing thread
  });
}

bool in_parallel_region() { return t_in_region; }

int kernel_pool_workers() {
#ifndef TAPEGRAD_TSAN
  return pool().workers();
#else
  return 0;
#endif
}

namespace detail {

#ifndef TAPEGRAD_TSAN
void run_team(int nt, TeamFn fn, void* ctx) {
  Pool& p = pool();
  std::unique_lock<std::mutex> lock(p.submit, std::try_to_lock);
  if (lock.owns_lock()) p.grow(nt - 1);  // may throw: nothing is posted yet
  Job j{fn, ctx, nt};
  if (lock.owns_lock()) p.post(&j);
  // Busy pool (another thread's job): the caller's share loop takes every share itself.
  t_in_region = true;
  fn(ctx, 0, nt);
  t_in_region = false;
  if (!lock.owns_lock()) return;
  p.job.store(nullptr);
  for (int spin = 0; p.active.load() != 0; ++spin) {
    if (spin < kCallerSpins) cpu_relax();
    else std::this_thread::yield();
  }
}
#else
void run_team(int nt, TeamFn fn, void* ctx) {
  std::vector<std::thread> team;
  team.reserve(nt - 1);
  try {
    for (int tid = 1; tid < nt; ++tid)
      team.emplace_back([=] {
        t_in_region = true;
        fn(ctx, tid, nt);
      });
  } catch (const std::system_error& e) {
    for (auto& t : team) t.join();
    throw std::system_error(e.code(), "could not start " + std::to_string(nt - 1) + " kernel thread(s)");
  }
  t_in_region = true;
  fn(ctx, 0, nt);
  t_in_region = false;
  for (auto& t : team) t.join();
}
#endif

}  // namespace detail
}  // namespace tapegrad
