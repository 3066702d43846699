#include "common/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#ifdef __linux__
#include <sched.h>
#include <unistd.h>
#endif

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

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

// CPU time other processes have used on this thread's CPUs (ns, cumulative; see
// ContentionGauge), and how many CPUs those are; -1 where /proc/stat or the process CPU
// clock is not there. /proc/stat counts in clock ticks (10 ms), hence the gauge's 100 ms
// windows.
int64_t others_cpu_ns(int* cpus) {
#ifdef __linux__
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return -1;
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return -1;
  char line[512];
  unsigned long long busy_ticks = 0;
  int n = 0;
  while (std::fgets(line, sizeof(line), f)) {
    if (std::strncmp(line, "cpu", 3) != 0) break;  // the cpu lines come first
    if (line[3] < '0' || line[3] > '9') continue;  // the "cpu " line: all CPUs together
    int id = -1;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    if (std::sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &id, &user, &nice, &sys, &idle,
                    &iowait, &irq, &softirq, &steal) < 8 || id < 0 || id >= CPU_SETSIZE ||
        !CPU_ISSET(id, &allowed))
      continue;  // a CPU this process may not use
    busy_ticks += user + nice + sys + irq + softirq + steal;  // guest time is inside user
    ++n;
  }
  std::fclose(f);
  timespec ts{};
  const long hz = sysconf(_SC_CLK_TCK);
  if (n == 0 || hz <= 0 || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return -1;
  *cpus = n;
  const int64_t self_ns = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  return static_cast<int64_t>(busy_ticks) * (1'000'000'000 / hz) - self_ns;
#else
  (void)cpus;
  return -1;
#endif
}

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

int ContentionGauge::team(int configured, int cpus, int64_t now_ns, int64_t others_ns) {
  configured = std::max(configured, 1);
  if (start_ns_ < 0 || now_ns < start_ns_) {  // first call, or a clock went back
    start_ns_ = now_ns;
    start_others_ = others_ns;
  } else if (now_ns - start_ns_ >= kWindowNs) {
    // Ticks against a nanosecond clock: a window's difference can dip below zero.
    const double busy = std::max<double>(0.0, static_cast<double>(others_ns - start_others_)) /
                        static_cast<double>(now_ns - start_ns_);
    const int free_cpus = static_cast<int>(static_cast<double>(std::max(cpus, 1)) - busy + 0.5);
    team_ = free_cpus >= configured ? 0 : std::max(1, free_cpus);
    start_ns_ = now_ns;
    start_others_ = others_ns;
  }
  return team_ > 0 ? std::min(team_, configured) : configured;
}

int team_threads() { return team_threads_for(max_threads()); }

int team_threads_for(int configured) {
  if (configured <= 1 || !adaptive_threads()) return configured;
  // Per calling thread: each keeps its own window, and needs no lock.
  thread_local ContentionGauge gauge;
  thread_local int64_t window_start = -1;
  thread_local bool readable = true;
  thread_local int last = 0;
  if (!readable) return configured;
  const int64_t now = now_ns();
  // /proc is read once a window, not per call: a call can be ~0.1 ms.
  if (window_start >= 0 && now - window_start < ContentionGauge::kWindowNs && last > 0)
    return std::min(last, configured);
  int cpus = 0;
  const int64_t others = others_cpu_ns(&cpus);
  if (cpus == 0) {
    readable = false;
    return configured;
  }
  window_start = now;
  last = gauge.team(configured, cpus, now, others);
  return last;
}

}  // namespace effseg
