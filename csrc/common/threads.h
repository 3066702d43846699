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

// The team a parallel region should start now: max_threads(), cut while the calling
// thread keeps waiting for a core (see ContentionGauge). With a competing process on a
// small machine, a full team makes every fork-join wait for a descheduled thread (and,
// under libgomp's default spin-waiting, the waiting threads hold the cores that thread
// needs): measured 4-40x slower calls on 2 cores, where one thread is ~2x at worst.
int team_threads();
// Whether team_threads() adapts (default on; EFFSEG_ADAPTIVE_THREADS=0 in the
// environment, read once, turns it off).
bool adaptive_threads();
void set_adaptive_threads(bool on);

// The decision behind team_threads(), apart from the clock and /proc so that tests can
// drive it. Fed, per calling thread, the wall clock and that thread's total run-queue
// wait (both ns): over windows of at least kWindowNs, a thread that waited more than
// kBusyShare of the window for a core halves its team; the full team is tried again
// once kHoldNs pass without such a window. Before the first full window: the full team.
class ContentionGauge {
 public:
  static constexpr int64_t kWindowNs = 10'000'000;
  static constexpr int64_t kHoldNs = 1'000'000'000;
  static constexpr double kBusyShare = 0.1;

  int team(int configured, int64_t now_ns, int64_t waited_ns);

 private:
  int64_t start_ns_ = -1, start_wait_ = 0, hold_until_ = 0;
  int team_ = 0;  // 0: the full team
};

}  // namespace effseg
