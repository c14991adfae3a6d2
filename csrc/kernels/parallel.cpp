// The kernels' thread count, their worker pool, and fork handling (see parallel.h).
#include "kernels/parallel.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
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

// Blocks every signal in the calling thread while it lives, so that the threads started meanwhile
// inherit that mask and keep it. A signal sent to the process (Ctrl-C's SIGINT, a SIGTERM) goes to
// one of its threads that does not block it: the kernel prefers the main thread, but not while it
// has a signal pending already. CPython's handler run on a thread that is not the main one, on
// Linux, only marks the signal pending without setting the main thread's eval breaker, so the
// KeyboardInterrupt could wait for some later event. With the workers blocking them, such signals
// reach a Python thread, as they did before the pool existed. (Faults - SIGSEGV, SIGBUS, SIGFPE -
// are delivered to the faulting thread whatever its mask.)
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t old_;
};

}  // namespace
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

// An idle worker polls for the next job, then sleeps. Between two kernels of a training step the
// caller runs Python for tens of microseconds to a few milliseconds; a worker still polling joins
// the next job at once, a sleeping one only after the OS has woken it (tens of microseconds or
// more), by when the caller has done most shares alone. Polling costs nothing while the machine
// has a core to spare and costs someone's core time when it has not (the caller's, if they share
// one), and burns the CPU time the scheduler would let the worker run a share with. So a worker
// polls long (kQuietPollNs) only while the machine has no more runnable threads than CPUs and the
// worker is not descheduled while polling; else briefly (kBusyPollNs), as before.
constexpr int64_t kQuietPollNs = 10'000'000;
constexpr int64_t kBusyPollNs = 100'000;
// A gap this long between two polls: the worker was descheduled, another thread wants its core.
constexpr int64_t kDescheduledNs = 50'000;
// How often a polling worker reads the machine's load.
constexpr int64_t kLoadEveryNs = 250'000;
// Polls of the caller for the workers still inside a finished job before it yields its core.
constexpr int kCallerSpins = 2000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The machine's CPUs, and its runnable threads now: the fourth field of /proc/loadavg
// ("0.31 0.97 1.08 3/150 12345"), the reader included. Read at most every kLoadEveryNs by
// whichever thread asks first (a read costs a couple of microseconds); 0 where it cannot be read,
// and with TAPEGRAD_THREADS_IGNORE_LOAD=1 (parallel.h).
const int kCpus = get_nprocs();
std::atomic<int> g_runnable{0};
std::atomic<int64_t> g_runnable_at{INT64_MIN / 2};

int runnable_threads(int64_t now) {
  static const bool ignore_load = [] {
    const char* env = std::getenv("TAPEGRAD_THREADS_IGNORE_LOAD");
    return env && *env && std::string(env) != "0";
  }();
  if (ignore_load) return 0;
  if (now - g_runnable_at.load(std::memory_order_relaxed) < kLoadEveryNs) return g_runnable.load(std::memory_order_relaxed);
  g_runnable_at.store(now, std::memory_order_relaxed);
  static const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  char buf[128];
  const ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof buf - 1, 0);
  int runnable = 0;
  if (n > 0) {
    buf[n] = 0;
    if (const char* slash = std::strchr(buf, '/')) {
      const char* p = slash;
      while (p > buf && std::isdigit(static_cast<unsigned char>(p[-1]))) --p;
      runnable = std::atoi(p);
    }
  }
  g_runnable.store(runnable, std::memory_order_relaxed);
  return runnable;
}

// Sleeps while *word == seen (or until woken), and wakes up to n threads sleeping on word.
void futex_wait(std::atomic<uint32_t>& word, uint32_t seen) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<uint32_t>& word, int n) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

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

  // Whether a job for nt threads would find a CPU for each worker it wakes (or, where nt itself is
  // more than the CPUs, no more runnable threads than nt): on an oversubscribed machine a woken
  // worker may be descheduled inside its share, and the caller waits for it.
  bool room_for(int nt) {
    const int woken = std::min(sleepers_.load(std::memory_order_relaxed), nt - 1);
    return runnable_threads(now_ns()) + woken <= std::max(kCpus, nt);
  }

  int workers() {
    std::lock_guard<std::mutex> lock(mu_);
    return int(threads_.size());
  }

  // Starts workers until there are n; throws std::system_error if one cannot start.
  void grow(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    const SignalsBlocked blocked;  // the workers start with every signal blocked (see SignalsBlocked)
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

  // Wakes up to nt - 1 sleeping workers. A worker counts itself in sleepers_ and then reads gen_;
  // post bumps gen_ and then reads sleepers_ (all sequentially consistent): either the worker sees
  // the new job or post sees the sleeper, and futex_wait returns at once if gen_ moved.
  void post(Job* j) {
    job.store(j);
    gen_.fetch_add(1);
    if (sleepers_.load() > 0) futex_wake(gen_, j->nt - 1);
  }

 private:
  void work() {
    uint32_t seen = gen_.load();
    for (;;) {
      seen = next_job(seen);
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

  // Polls for a job after generation `seen` (see kQuietPollNs), then sleeps; returns its generation.
  uint32_t next_job(uint32_t seen) {
    const int64_t start = now_ns();
    int64_t last = start, budget = kQuietPollNs;
    for (int spin = 1;; ++spin) {
      if (const uint32_t g = gen_.load(std::memory_order_acquire); g != seen) return g;
      cpu_relax();
      if (spin % 64) continue;  // a clock read every ~2 us
      const int64_t t = now_ns();
      if (t - last > kDescheduledNs) break;
      last = t;
      if (runnable_threads(t) > kCpus) budget = kBusyPollNs;
      if (t - start >= budget) break;
    }
    sleepers_.fetch_add(1);
    g_runnable_at.store(INT64_MIN / 2, std::memory_order_relaxed);  // it counted this thread as runnable
    uint32_t g;
    while ((g = gen_.load()) == seen) futex_wait(gen_, seen);
    sleepers_.fetch_sub(1);
    return g;
  }

  std::mutex mu_;  // threads_
  std::atomic<uint32_t> gen_{0};  // bumped by each post; the futex word
  std::atomic<int> sleepers_{0};
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

bool room_for_team(int nt) {
  Pool& p = pool();
  p.grow(nt - 1);  // may throw; the workers exist whatever the load
  return p.room_for(nt);
}
#else
void run_team(int nt, TeamFn fn, void* ctx) {
  std::vector<std::thread> team;
  team.reserve(nt - 1);
  const SignalsBlocked blocked;
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

bool room_for_team(int) { return true; }  // the threads race as they would in the pool, whatever the load
#endif

}  // namespace detail
}  // namespace tapegrad
