// The kernels' thread count, their worker pool, and fork handling (see parallel.h).
#include "kernels/parallel.h"

#include <pthread.h>
#include <sched.h>

#include <cctype>
#include <chrono>
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

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

using Clock = std::chrono::steady_clock;

// How long an idle worker polls for the next job before it sleeps: a training step's kernels
// follow each other closer than that (the interpreter's work between two ops), and a sleeping
// worker takes 5-50 us (far more on a busy machine) to wake. Time, not a count of pauses: a
// pause is 10 cycles on one x86 and 140 on another. And how long the caller polls for workers
// still inside a finished job (finishing one tile) before it yields, and then sleeps until the
// last one leaves.
constexpr auto kWorkerSpin = std::chrono::microseconds(100);
constexpr auto kCallerSpin = std::chrono::microseconds(20);
constexpr auto kCallerYield = std::chrono::microseconds(500);
// How long the callers on a CPU where a woken worker found itself leave the sleepers asleep (a
// polling worker still joins). Such a wake-up cost the caller about 1 ms on a loaded 2-CPU
// machine (each context switch there may hand its CPU to another program): on a machine that
// stays busy one wasted wake-up per 20 ms, on one that turns quiet the second thread back
// within 20 ms.
constexpr auto kCrowded = std::chrono::milliseconds(20);

// The CPU this thread runs on now, or -1 where that is unknown.
inline int current_cpu() {
#ifdef __linux__
  return sched_getcpu();
#else
  return -1;
#endif
}

// Whether this thread runs on `cpu` now (false where either is unknown).
inline bool on_cpu(int cpu) { return cpu >= 0 && current_cpu() == cpu; }

// One team call. Lives on the caller's stack; `active` (below) says when no worker can still
// be reading it.
struct Job {
  detail::TeamFn fn;
  void* ctx;
  int nt;
  int caller_cpu;
  std::atomic<int> next_tid{1};  // the caller is 0
};

// The kernels' worker threads, shared by every calling thread, one job at a time (a caller that
// finds the pool busy runs its shares itself). The caller works on its job from the start and
// never waits for a worker that has not joined it: when the caller has run out of shares it
// withdraws the job, and a worker that wakes later finds nothing. It only waits for workers
// already inside the job (`active`), i.e. for shares being computed, and sleeps if that takes
// long (a worker descheduled mid-share on a busy machine).
//
// A worker that finds itself on the caller's CPU takes no share and does not poll: the caller
// cannot be running then (it was preempted by this worker, which the OS woke on the caller's
// CPU because the other CPUs are busy), so a share taken there would only time-slice that CPU
// with the caller, and polling there only takes the CPU from it. Jobs posted from that CPU then
// wake no sleeping worker for kCrowded.
//
// Withdrawal: a worker increments `active` and then reads `job`; the caller stores null to `job`
// and then reads `active` (all sequentially consistent). Either the caller sees the worker's
// increment and waits for it, or the worker sees null (or a later job, which it may serve). The
// caller's sleep likewise: it sets `caller_asleep_` then reads `active`; a leaving worker
// decrements `active` then reads `caller_asleep_`, and notifies under the mutex.
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
    caller_cpu_.store(j->caller_cpu, std::memory_order_relaxed);
    job.store(j);
    gen_.fetch_add(1);
    // A worker woken lately found itself on this CPU: another wake would only cost the caller
    // two context switches and perhaps its CPU to another program; try again after kCrowded.
    const bool crowded = j->caller_cpu >= 0 && j->caller_cpu == crowded_cpu_.load(std::memory_order_relaxed) &&
                         now_ns() < crowded_until_ns_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    // Sleepers beyond the nt - 1 a job can use stay asleep.
    for (int k = crowded ? 0 : std::min(sleepers_, j->nt - 1); k > 0; --k) cv_.notify_one();
  }

  // Returns once no worker is inside the withdrawn job: polls (a worker finishing its tile), then
  // yields (a worker preempted on this CPU gets it; one elsewhere is waited for without this
  // CPU going to another program), then sleeps (a worker descheduled for long).
  void wait_idle() {
    const auto start = Clock::now();
    for (int spin = 0; active.load() != 0; ++spin) {
      if ((spin & 63) != 63) {
        cpu_relax();
        continue;
      }
      const auto waited = Clock::now() - start;
      if (waited < kCallerSpin) continue;
      if (waited < kCallerYield) {
        std::this_thread::yield();
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      caller_asleep_.store(true);
      done_.wait(lock, [&] { return active.load() == 0; });
      caller_asleep_.store(false);
      return;
    }
  }

 private:
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  }

  void crowded(int cpu) {
    crowded_cpu_.store(cpu, std::memory_order_relaxed);
    crowded_until_ns_.store(now_ns() + std::chrono::nanoseconds(kCrowded).count(), std::memory_order_relaxed);
  }

  // Waits for a job after generation `seen`: polls, then sleeps; returns the new generation.
  uint64_t next_job(uint64_t seen) {
    const auto until = Clock::now() + kWorkerSpin;
    uint64_t g;
    for (int spin = 0; (g = gen_.load(std::memory_order_acquire)) == seen; ++spin) {
      if ((spin & 63) != 63 || (Clock::now() < until && !on_cpu(caller_cpu_.load(std::memory_order_relaxed)))) {
        cpu_relax();
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      ++sleepers_;
      cv_.wait(lock, [&] { return gen_.load() != seen; });
      --sleepers_;
    }
    return g;
  }

  void work() {
    uint64_t seen = gen_.load();
    for (;;) {
      seen = next_job(seen);
      // On the caller's CPU (the job's, below; the pool's latest, here, saves entering at all).
      if (const int cpu = caller_cpu_.load(std::memory_order_relaxed); on_cpu(cpu)) {
        crowded(cpu);
        continue;
      }
      active.fetch_add(1);
      if (Job* j = job.load(); j && on_cpu(j->caller_cpu)) {
        crowded(j->caller_cpu);
      } else if (j) {
        const int tid = j->next_tid.fetch_add(1);
        if (tid < j->nt) {
          t_in_region = true;
          j->fn(j->ctx, tid, j->nt);
          t_in_region = false;
        }
      }
      if (active.fetch_sub(1) == 1 && caller_asleep_.load()) {
        std::lock_guard<std::mutex> lock(mu_);
        done_.notify_one();
      }
    }
  }

  std::mutex mu_;  // threads_, sleepers_ and both conditions
  std::condition_variable cv_;     // a new job (gen_)
  std::condition_variable done_;   // the last worker left a job (active == 0)
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> caller_cpu_{-1};  // of the latest job
  // A worker found itself on crowded_cpu_, the caller's, before crowded_until_ns_ - kCrowded.
  std::atomic<int> crowded_cpu_{-1};
  std::atomic<int64_t> crowded_until_ns_{0};
  std::atomic<bool> caller_asleep_{false};
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

// Runs in the child's only thread. Only stores to an atomic (a fork handler must be
// async-signal-safe); the child's next team starts a new pool.
void on_fork_child() { g_pool_lost.store(true); }

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

int kernel_pool_workers() { return pool().workers(); }

namespace detail {

void run_team(int nt, TeamFn fn, void* ctx) {
  Pool& p = pool();
  std::unique_lock<std::mutex> lock(p.submit, std::try_to_lock);
  if (lock.owns_lock()) p.grow(nt - 1);  // may throw: nothing is posted yet
  Job j{fn, ctx, nt, current_cpu()};
  if (lock.owns_lock()) p.post(&j);
  // Busy pool (another thread's job): the caller's share loop takes every share itself.
  t_in_region = true;
  fn(ctx, 0, nt);
  t_in_region = false;
  if (!lock.owns_lock()) return;
  p.job.store(nullptr);
  p.wait_idle();
}

}  // namespace detail
}  // namespace tapegrad
