// effseg._C: the C++ CPU kernels, bound with pybind11 (one bind_<op> per op, in
// csrc/<op>/<op>_bind.cpp).
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "bind.h"
#include "common/isa.h"
#include "common/threads.h"

namespace py = pybind11;

#ifndef EFFSEG_COMPILER
#define EFFSEG_COMPILER "unknown"
#endif

namespace {

py::dict build_info() {
  py::dict d;
  d["compiler"] = EFFSEG_COMPILER;
  d["openmp"] = effseg::has_openmp();
  d["max_threads"] = effseg::max_threads();
  d["adaptive_threads"] = effseg::adaptive_threads();
  d["simd"] = effseg::isa_name(effseg::isa());
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "effseg C++ CPU kernels";
  using namespace py::literals;

  // Translate the kernels' argument errors into ValueError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  effseg::bind::bind_selective_scan(m);
  effseg::bind::bind_depthwise_conv2d(m);
  effseg::bind::bind_distance_transform(m);
  effseg::bind::bind_linear_attention(m);
  effseg::bind::bind_winograd_conv2d(m);

  m.def("build_info", &build_info, "compiler, OpenMP, thread count and SIMD level of this build");
  m.def(
      "set_num_threads", [](int n) { effseg::set_num_threads(n); }, "n"_a,
      "Threads the kernels use (their own setting, torch's is not touched); n <= 0 restores "
      "the OpenMP default. No effect without OpenMP.");
  m.def("get_num_threads", &effseg::max_threads, "Threads the kernels use (1 without OpenMP).");
  m.def("team_threads", &effseg::team_threads,
        "The threads a kernel called now from this thread would start: get_num_threads(), "
        "fewer while other processes keep this process's CPUs busy (see set_adaptive_threads).");
  m.def("team_threads_for", &effseg::team_threads_for, "configured"_a,
        "team_threads() for a team of `configured` threads (e.g. torch.get_num_threads()).");
  m.def("adaptive_threads", &effseg::adaptive_threads, "Whether the team adapts to contended cores.");
  m.def(
      "_others_cpu",
      []() {
        int cpus = 0;
        const int64_t ns = effseg::others_cpu_ns(&cpus);
        return std::make_pair(ns, cpus);
      },
      "Tests only: (CPU ns other processes have used on this thread's CPUs, those CPUs); "
      "(-1, 0) where /proc/stat is not there.");
  m.def(
      "set_adaptive_threads", [](bool on) { effseg::set_adaptive_threads(on); }, "on"_a,
      "on=False: every kernel starts get_num_threads() threads, however busy the cores are "
      "(the default, on, is also set by EFFSEG_ADAPTIVE_THREADS=0 in the environment).");
  m.def(
      "_gauge_replay",
      [](int configured, int cpus, const std::vector<std::pair<int64_t, int64_t>>& readings) {
        effseg::ContentionGauge g;
        std::vector<int> teams;
        for (const auto& r : readings) teams.push_back(g.team(configured, cpus, r.first, r.second));
        return teams;
      },
      "configured"_a, "cpus"_a, "readings"_a,
      "Tests only: the team after each (wall ns, other processes' CPU ns) reading of a fresh "
      "gauge on `cpus` CPUs.");
}
