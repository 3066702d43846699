// effseg._C: the C++ CPU kernels, bound with pybind11 (one bind_<op> per op, in
// csrc/<op>/<op>_bind.cpp).
#include <pybind11/pybind11.h>

#include <stdexcept>

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
}
