#include "common/threads.h"

#include <atomic>

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

namespace effseg {
namespace {
// 0: the OpenMP default. Not omp_set_num_threads, which would change torch's setting.
std::atomic<int> g_num_threads{0};
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

}  // namespace effseg
