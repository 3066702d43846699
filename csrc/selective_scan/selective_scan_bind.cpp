// pybind11 bindings of the selective scan (see selective_scan.h for the layouts).
#include <array>
#include <cstdint>
#include <string>

#include "bind.h"
#include "selective_scan/selective_scan.h"

namespace py = pybind11;
namespace ss = effseg::selective_scan;
using effseg::bind::cp;
using effseg::bind::mp;
using effseg::bind::Ptr;

namespace {

using Str4 = std::array<int64_t, 4>;
ss::Strides strides(const Str4& s) { return ss::Strides{s[0], s[1], s[2], s[3]}; }

bool is_double(const std::string& dtype) {
  if (dtype == "float32" || dtype == "float") return false;
  if (dtype == "float64" || dtype == "double") return true;
  throw py::value_error("selective_scan: dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

template <class T>
void fill_fwd(ss::FwdArgs<T>& a, int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, Ptr u,
              Ptr delta, Ptr A, Ptr Bp, const Str4& Bs, Ptr Cp, const Str4& Cs, Ptr Dv, Ptr z,
              Ptr delta_bias, Ptr h0, bool softplus) {
  a.Bt = Bt;
  a.Dm = Dm;
  a.L = L;
  a.N = N;
  a.G = G;
  a.u = cp<T>(u);
  a.delta = cp<T>(delta);
  a.A = cp<T>(A);
  a.B = cp<T>(Bp);
  a.Bs = strides(Bs);
  a.C = cp<T>(Cp);
  a.Cs = strides(Cs);
  a.D = cp<T>(Dv);
  a.z = cp<T>(z);
  a.delta_bias = cp<T>(delta_bias);
  a.h0 = cp<T>(h0);
  a.softplus = softplus;
}

template <class T>
bool run_fwd(int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, Ptr u, Ptr delta, Ptr A,
             Ptr Bp, const Str4& Bs, Ptr Cp, const Str4& Cs, Ptr Dv, Ptr z, Ptr delta_bias, Ptr h0,
             bool softplus, Ptr out, Ptr last_state) {
  ss::FwdArgs<T> a;
  fill_fwd(a, Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0, softplus);
  a.out = mp<T>(out);
  a.last_state = mp<T>(last_state);
  int nonfinite = 0;
  a.nonfinite = &nonfinite;
  ss::validate_fwd(a);  // argument errors are raised with the GIL held
  {
    py::gil_scoped_release nogil;
    ss::forward(a);
  }
  return nonfinite == 0;
}

template <class T>
void run_bwd(int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, Ptr u, Ptr delta, Ptr A,
             Ptr Bp, const Str4& Bs, Ptr Cp, const Str4& Cs, Ptr Dv, Ptr z, Ptr delta_bias, Ptr h0,
             bool softplus, Ptr dout, Ptr dlast, Ptr du, Ptr ddelta, Ptr dA_part, Ptr dB,
             const Str4& dBs, int64_t dB_numel, Ptr dC, const Str4& dCs, int64_t dC_numel,
             Ptr dD_part, Ptr dz, Ptr dbias_part, Ptr dh0) {
  ss::BwdArgs<T> a;
  fill_fwd(a, Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0, softplus);
  a.dout = cp<T>(dout);
  a.dlast = cp<T>(dlast);
  a.du = mp<T>(du);
  a.ddelta = mp<T>(ddelta);
  a.dA_part = mp<T>(dA_part);
  a.dB = mp<T>(dB);
  a.dBs = strides(dBs);
  a.dB_numel = dB_numel;
  a.dC = mp<T>(dC);
  a.dCs = strides(dCs);
  a.dC_numel = dC_numel;
  a.dD_part = mp<T>(dD_part);
  a.dz = mp<T>(dz);
  a.dbias_part = mp<T>(dbias_part);
  a.dh0 = mp<T>(dh0);
  ss::validate_bwd(a);
  py::gil_scoped_release nogil;
  ss::backward(a);
}

bool selective_scan_fwd(const std::string& dtype, int64_t Bt, int64_t Dm, int64_t L, int64_t N,
                        int64_t G, Ptr u, Ptr delta, Ptr A, Ptr Bp, const Str4& Bs, Ptr Cp,
                        const Str4& Cs, Ptr Dv, Ptr z, Ptr delta_bias, Ptr h0, bool softplus,
                        Ptr out, Ptr last_state) {
  if (is_double(dtype))
    return run_fwd<double>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0,
                           softplus, out, last_state);
  return run_fwd<float>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0,
                        softplus, out, last_state);
}

void selective_scan_bwd(const std::string& dtype, int64_t Bt, int64_t Dm, int64_t L, int64_t N,
                        int64_t G, Ptr u, Ptr delta, Ptr A, Ptr Bp, const Str4& Bs, Ptr Cp,
                        const Str4& Cs, Ptr Dv, Ptr z, Ptr delta_bias, Ptr h0, bool softplus,
                        Ptr dout, Ptr dlast, Ptr du, Ptr ddelta, Ptr dA_part, Ptr dB,
                        const Str4& dBs, int64_t dB_numel, Ptr dC, const Str4& dCs,
                        int64_t dC_numel, Ptr dD_part, Ptr dz, Ptr dbias_part, Ptr dh0) {
  if (is_double(dtype))
    run_bwd<double>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0, softplus,
                    dout, dlast, du, ddelta, dA_part, dB, dBs, dB_numel, dC, dCs, dC_numel,
                    dD_part, dz, dbias_part, dh0);
  else
    run_bwd<float>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0, softplus,
                   dout, dlast, du, ddelta, dA_part, dB, dBs, dB_numel, dC, dCs, dC_numel,
                   dD_part, dz, dbias_part, dh0);
}

template <class T>
bool run_cross_fwd(int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, Ptr u, Ptr delta,
                   Ptr A, Ptr Bp, const Str4& Bs, Ptr Cp, const Str4& Cs, Ptr Dv, Ptr delta_bias,
                   bool softplus, Ptr tmap, Ptr out) {
  ss::FwdArgs<T> a;
  fill_fwd(a, Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, 0, delta_bias, 0, softplus);
  a.tmap = cp<int32_t>(tmap);
  a.out = mp<T>(out);
  int nonfinite = 0;
  a.nonfinite = &nonfinite;
  if (!a.tmap) throw py::value_error("selective_scan_cross_fwd: tmap is required");
  ss::validate_fwd(a);
  {
    py::gil_scoped_release nogil;
    ss::forward(a);
  }
  return nonfinite == 0;
}

bool selective_scan_cross_fwd(const std::string& dtype, int64_t Bt, int64_t Dm, int64_t L,
                              int64_t N, int64_t G, Ptr u, Ptr delta, Ptr A, Ptr Bp,
                              const Str4& Bs, Ptr Cp, const Str4& Cs, Ptr Dv, Ptr delta_bias,
                              bool softplus, Ptr tmap, Ptr out) {
  if (is_double(dtype))
    return run_cross_fwd<double>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, delta_bias,
                                 softplus, tmap, out);
  return run_cross_fwd<float>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, delta_bias,
                              softplus, tmap, out);
}

}  // namespace

namespace effseg {
namespace bind {

void bind_selective_scan(py::module_& m) {
  using namespace py::literals;
  m.def("selective_scan_fwd", &selective_scan_fwd, "dtype"_a, "Bt"_a, "Dm"_a, "L"_a, "N"_a, "G"_a,
        "u"_a, "delta"_a, "A"_a, "Bp"_a, "B_strides"_a, "Cp"_a, "C_strides"_a, "Dv"_a, "z"_a,
        "delta_bias"_a, "h0"_a, "delta_softplus"_a, "out"_a, "last_state"_a,
        "Selective-scan forward on raw addresses (0 = absent). B/C element (b,d,n,t) is at "
        "Bp[b*sb + g*sg + n*sn + t*st], g = d // (Dm // G); strides may be 0. Fastest with "
        "sn == 1. Returns False when delta holds NaN or Inf (then out is not meaningful).");
  m.def("selective_scan_cross_fwd", &selective_scan_cross_fwd, "dtype"_a, "Bt"_a, "Dm"_a, "L"_a,
        "N"_a, "G"_a, "u"_a, "delta"_a, "A"_a, "Bp"_a, "B_strides"_a, "Cp"_a, "C_strides"_a,
        "Dv"_a, "delta_bias"_a, "delta_softplus"_a, "tmap"_a, "out"_a,
        "Cross-scan forward (SS2D): G traversal orders (tmap, (G, L) int32 permutations) of "
        "one (Bt, Dm/G, L) map u; delta (Bt, Dm, L) and B/C (any strides) indexed by "
        "position; out (Bt, Dm/G, L) = sum over the G scans, scattered back by position. "
        "Returns False when delta holds NaN or Inf (then out is not meaningful).");
  m.def("selective_scan_bwd", &selective_scan_bwd, "dtype"_a, "Bt"_a, "Dm"_a, "L"_a, "N"_a, "G"_a,
        "u"_a, "delta"_a, "A"_a, "Bp"_a, "B_strides"_a, "Cp"_a, "C_strides"_a, "Dv"_a, "z"_a,
        "delta_bias"_a, "h0"_a, "delta_softplus"_a, "dout"_a, "dlast"_a, "du"_a, "ddelta"_a,
        "dA_part"_a, "dB"_a, "dB_strides"_a, "dB_numel"_a, "dC"_a, "dC_strides"_a, "dC_numel"_a,
        "dD_part"_a, "dz"_a, "dbias_part"_a, "dh0"_a,
        "Selective-scan backward. dB/dC must be zeroed; contributions are added at their "
        "strided addresses. dA_part/dD_part/dbias_part are per-batch partials (sum over b).");
}

}  // namespace bind
}  // namespace effseg
