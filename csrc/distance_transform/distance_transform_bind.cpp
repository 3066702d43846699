// pybind11 binding of the distance transform (see distance_transform.h for the layouts).
#include "bind.h"
#include "distance_transform/distance_transform.h"

namespace py = pybind11;
namespace dt = effseg::distance_transform;
using effseg::bind::Buf;
using effseg::bind::need_in;
using effseg::bind::need_out;

namespace {

void run(int64_t N, int64_t H, int64_t W, const Buf& mask, const Buf& out, double sy, double sx) {
  dt::Args a;
  a.N = N;
  a.H = H;
  a.W = W;
  a.mask = need_in<uint8_t>("distance_transform", "mask", mask, "(N, H, W)", {N, H, W});
  a.out = need_out<float>("distance_transform", "out", out, "(N, H, W)", {N, H, W});
  a.sy = sy;
  a.sx = sx;
  dt::validate(a);  // argument errors are raised with the GIL held
  py::gil_scoped_release nogil;
  dt::forward(a);
}

}  // namespace

namespace effseg {
namespace bind {

void bind_distance_transform(py::module_& m) {
  using namespace py::literals;
  m.def("distance_transform", &run, "N"_a, "H"_a, "W"_a, "mask"_a, "out"_a,
        "sy"_a = 1.0, "sx"_a = 1.0,
        "Exact Euclidean distance transform on (address, element count) buffers: mask (N, H, W) uint8 "
        "contiguous (nonzero = foreground), out (N, H, W) float32 contiguous. out = distance "
        "to the nearest zero pixel with spacing (sy, sx); +inf in an image without zeros.");
}

}  // namespace bind
}  // namespace effseg
