// Native kernel check: every C++ kernel, called through its C++ entry point (no Python,
// no pybind), against plain double-precision references on odd shapes. Built and run
// by tools/arm_check.sh, natively and as an aarch64 binary under qemu-user; it runs
// the ISA that common/isa.h picks, so EFFSEG_SIMD selects the path under test.
// Prints one line per kernel (max error, tolerance) and exits 1 on any mismatch.
#include <cstdio>
#include <exception>
#include <vector>

#include "check.h"
#include "common/isa.h"
#include "common/threads.h"

int main() {
  using namespace effseg::check;
  std::printf("native_check: isa %s, %d threads\n", effseg::isa_name(effseg::isa()),
              effseg::max_threads());
  std::vector<Result> all;
  bool ok = true;
  for (auto fn : {check_depthwise_conv2d, check_selective_scan, check_linear_attention,
                  check_winograd_conv2d, check_distance_transform}) {
    try {
      for (const Result& r : fn()) all.push_back(r);
    } catch (const std::exception& e) {
      std::printf("FAIL exception: %s\n", e.what());
      ok = false;
    }
  }
  for (const Result& r : all) {
    std::printf("%-4s %-32s cases %2d  max err %.3g  (tol %.1g)%s%s\n", r.ok() ? "ok" : "FAIL",
                r.name.c_str(), r.cases, r.max_err, r.tol, r.ok() ? "" : "  worst: ",
                r.ok() ? "" : r.worst.c_str());
    ok = ok && r.ok() && r.cases > 0;
  }
  std::printf("native_check: %s\n", ok ? "all kernels match their references" : "MISMATCH");
  return ok ? 0 : 1;
}
