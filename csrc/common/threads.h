// The thread count every op's kernels use: a setting of their own, so that changing it
// leaves torch's OpenMP setting alone when both share one runtime.
#pragma once

#include <cstdint>

namespace effseg {

// The kernels' thread count setting: the last set_num_threads(n > 0), else OpenMP's
// default (1 without OpenMP).
int max_threads();
// n <= 0 restores OpenMP's default.
void set_num_threads(int n);
bool has_openmp();

// The team a parallel region should start now: max_threads(), cut to the cores other
// processes leave free (see ContentionGauge). With a competing process on a small
// machine, a full team makes every fork-join wait for a descheduled thread (and, under
// libgomp's default spin-waiting, the waiting threads hold the cores that thread needs):
// measured 4-40x slower calls on 2 cores, where one thread is ~2x at worst.
int team_threads();
// The same decision for a team of `configured` threads of another runtime (PyTorch's
// intra-op pool, which effseg.compile's eager backend cuts the same way).
int team_threads_for(int configured);
// Whether team_threads() adapts (default on; EFFSEG_ADAPTIVE_THREADS=0 in the
// environment, read once, turns it off).
bool adaptive_threads();
void set_adaptive_threads(bool on);

// The decision behind team_threads(), apart from the clock and /proc so that tests can
// drive it. Fed, per calling thread, the wall clock and the CPU time that *other
// processes* have used on the CPUs this process may run on (cumulative, ns: the
// machine's busy time on those CPUs, steal included, minus this process's CPU time).
// Over windows of at least kWindowNs, the team is the CPUs those processes left free,
// rounded (at least 1, at most the setting); before the first full window, the setting.
//
// Other processes only, not this thread's own run-queue wait: that wait also counts this
// process's own idle threads (PyTorch's OpenMP workers spin after each op), and judged on
// it a quiet machine halved the team for a second at a time in a benchmark alternating
// F.conv2d with effseg's kernel (depthwise k=7 read 0.86x instead of 1.56x).
// CPU time other processes have used on the CPUs this thread may run on (ns, cumulative:
// those CPUs' busy time in /proc/stat, steal included, minus this process's CPU clock);
// *cpus gets their number, and stays 0 where the figures are not there (not Linux).
int64_t others_cpu_ns(int* cpus);

class ContentionGauge {
 public:
  static constexpr int64_t kWindowNs = 100'000'000;

  int team(int configured, int cpus, int64_t now_ns, int64_t others_ns);

 private:
  int64_t start_ns_ = -1, start_others_ = 0;
  int team_ = 0;  // 0: the full team
};

}  // namespace effseg
