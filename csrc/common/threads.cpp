#include "common/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

namespace effseg {
namespace {
// 0: the OpenMP default. Not omp_set_num_threads, which would change torch's setting.
std::atomic<int> g_num_threads{0};

bool adaptive_from_env() {
  const char* v = std::getenv("EFFSEG_ADAPTIVE_THREADS");
  return !(v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 || std::strcmp(v, "off") == 0));
}
std::atomic<bool> g_adaptive{adaptive_from_env()};

// This thread's total time runnable but not running, in ns (the second figure of its
// schedstat); -1 where the kernel does not offer it.
int64_t run_queue_wait_ns() {
  std::FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
  if (!f) return -1;
  unsigned long long on_cpu = 0, waited = 0;
  const int got = std::fscanf(f, "%llu %llu", &on_cpu, &waited);
  std::fclose(f);
  return got == 2 ? static_cast<int64_t>(waited) : -1;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

int max_threads() {
#ifdef EFFSEG_OPENMP
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

bool has_openmp() {
#ifdef EFFSEG_OPENMP
  return true;
#else
  return false;
#endif
}

bool adaptive_threads() { return g_adaptive.load(std::memory_order_relaxed); }
void set_adaptive_threads(bool on) { g_adaptive.store(on, std::memory_order_relaxed); }

int ContentionGauge::team(int configured, int64_t now_ns, int64_t waited_ns) {
  configured = std::max(configured, 1);
  if (start_ns_ < 0 || waited_ns < start_wait_ || now_ns < start_ns_) {  // first call, or a clock went back
    start_ns_ = now_ns;
    start_wait_ = waited_ns;
  } else if (now_ns - start_ns_ >= kWindowNs) {
    const double share = static_cast<double>(waited_ns - start_wait_) / static_cast<double>(now_ns - start_ns_);
    if (share > kBusyShare) {
      team_ = std::max(1, (team_ > 0 ? team_ : configured) / 2);
      hold_until_ = now_ns + kHoldNs;
    } else if (now_ns >= hold_until_) {
      team_ = 0;
    }
    start_ns_ = now_ns;
    start_wait_ = waited_ns;
  }
  return team_ > 0 ? std::min(team_, configured) : configured;
}

int team_threads() {
  const int configured = max_threads();
  if (configured <= 1 || !adaptive_threads()) return configured;
  // Per calling thread: each judges the waits it saw itself, and needs no lock.
  thread_local ContentionGauge gauge;
  thread_local int64_t window_start = -1;
  thread_local bool readable = true;
  thread_local int last = 0;
  if (!readable) return configured;
  const int64_t now = now_ns();
  // /proc is read once a window, not per call: a call can be ~0.1 ms.
  if (window_start >= 0 && now - window_start < ContentionGauge::kWindowNs && last > 0)
    return std::min(last, configured);
  const int64_t waited = run_queue_wait_ns();
  if (waited < 0) {
    readable = false;
    return configured;
  }
  window_start = now;
  last = gauge.team(configured, now, waited);
  return last;
}

}  // namespace effseg
