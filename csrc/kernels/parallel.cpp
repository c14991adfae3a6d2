// The kernels' thread count, teams, and fork handling (see parallel.h).
#include "kernels/parallel.h"

#include <pthread.h>

#include <cctype>
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

std::atomic<int> g_threads{0};         // 0: not read from the default yet
std::atomic<bool> g_pool_lost{false};  // fork child of a thread whose OpenMP pool had started
thread_local bool t_in_region = false;
// Whether this thread has started an OpenMP team: libgomp then keeps a pool of workers for it,
// which a fork child inherits as bookkeeping without the threads.
thread_local bool t_pool_started = false;
// The size of this thread's last team: libgomp grows (and may shrink) the pool to each team.
thread_local int t_pool_size = 1;

int default_threads() {
#ifdef TAPEGRAD_TSAN
  if (const char* env = std::getenv("OMP_NUM_THREADS"))
    if (const int n = std::atoi(env); n > 0) return n;
  return std::max(1, int(std::thread::hardware_concurrency()));
#else
  return omp_get_max_threads();
#endif
}

// Runs in the child's only thread, a copy of the thread that called fork: its thread_locals
// are that thread's. Only stores to atomics (a fork handler must be async-signal-safe).
void on_fork_child() {
  if (t_pool_started) {
    g_pool_lost.store(true);
    g_threads.store(1);
  }
}

#ifndef TAPEGRAD_TSAN
// The stack size libgomp gives its threads: OMP_STACKSIZE or GOMP_STACKSIZE ("size[B|K|M|G]",
// kilobytes without a unit), else 0 for pthread's default.
size_t gomp_stack_size() {
  for (const char* name : {"OMP_STACKSIZE", "GOMP_STACKSIZE"}) {
    const char* env = std::getenv(name);
    if (!env) continue;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    while (end && std::isspace(static_cast<unsigned char>(*end))) ++end;
    const int unit = end && *end ? std::toupper(static_cast<unsigned char>(*end)) : 'K';
    const int shift = unit == 'B' ? 0 : unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : -1;
    if (end != env && shift >= 0) return size_t(v) << shift;
  }
  return 0;
}

void* idle(void*) { return nullptr; }

// libgomp ends the process (gomp_fatal, exit(1)) when it cannot create a pool thread. Before a
// team grows the pool, start and join as many threads as it will add, with libgomp's stack
// size, and throw if that fails. (Memory taken by another thread between this check and
// libgomp's own pthread_create can still fail it: the window is a few microseconds.)
void check_threads_startable(int count) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (const size_t stack = gomp_stack_size()) pthread_attr_setstacksize(&attr, stack);
  std::vector<pthread_t> started;
  started.reserve(count);
  int err = 0;
  for (int i = 0; i < count && !err; ++i) {
    pthread_t t;
    err = pthread_create(&t, &attr, idle, nullptr);
    if (!err) started.push_back(t);
  }
  for (pthread_t t : started) pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
  if (err)
    throw std::system_error(err, std::generic_category(),
                            "could not start " + std::to_string(count) +
                                " more kernel thread(s); set_num_threads(1) runs the kernels on the calling thread");
}
#endif

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
  if (n > 1 && g_pool_lost.load())
    throw std::runtime_error(
        "set_num_threads(" + std::to_string(n) +
        "): this process was forked from a thread whose OpenMP thread pool had started; GNU libgomp cannot "
        "run a parallel region in it any more (it would wait forever for the parent's threads), so the kernels "
        "run on one thread here. Use multiprocessing's 'spawn' or 'forkserver' start method for multi-threaded "
        "kernels in child processes.");
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

namespace detail {

#ifndef TAPEGRAD_TSAN
void run_team(int nt, TeamFn fn, void* ctx) {
  if (nt > t_pool_size) check_threads_startable(nt - t_pool_size);
  t_pool_started = true;
#pragma omp parallel num_threads(nt)
  {
    t_in_region = true;
    fn(ctx, omp_get_thread_num(), omp_get_num_threads());
    t_in_region = false;
  }
  t_pool_size = nt;
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
