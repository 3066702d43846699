// The thread count every op's kernels use: a setting of their own, so that changing it
// leaves torch's OpenMP setting alone when both share one runtime.
#pragma once

namespace effseg {

// The kernels' thread count: the last set_num_threads(n > 0), else OpenMP's default
// (1 without OpenMP).
int max_threads();
// n <= 0 restores OpenMP's default.
void set_num_threads(int n);
bool has_openmp();

}  // namespace effseg
