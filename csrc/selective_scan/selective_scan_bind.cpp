// pybind11 bindings of the selective scan (see selective_scan.h for the layouts).
#include <array>
#include <cstdint>
#include <string>

#include "bind.h"
#include "selective_scan/selective_scan.h"

namespace py = pybind11;
namespace ss = effseg::selective_scan;
using effseg::bind::Buf;
using effseg::bind::need_in;
using effseg::bind::need_out;
using effseg::bind::opt_in;
using effseg::bind::opt_out;

namespace {

using Str4 = std::array<int64_t, 4>;
ss::Strides strides(const Str4& s) { return ss::Strides{s[0], s[1], s[2], s[3]}; }

bool is_double(const std::string& dtype) {
  if (dtype == "float32" || dtype == "float") return false;
  if (dtype == "float64" || dtype == "double") return true;
  throw py::value_error("selective_scan: dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

// B / C (and dB / dC): element (b, g, n, t) at p[b*sb + g*sg + n*sn + t*st].
template <class T>
T* bc_buf(const char* op, const char* name, const Buf& p, const Str4& s, int64_t Bt, int64_t G,
          int64_t N, int64_t L) {
  return effseg::bind::strided<T>(op, name, p, {Bt, G, N, L}, {s[0], s[1], s[2], s[3]});
}

// The inputs both passes read, each checked against the sizes. Dm % G and the other
// relations between sizes are validate()'s; the counts here only need sizes >= 0.
// Cross scans pass u_rows = Dm / G (u and out are one map, not G of them) and no z / h0.
template <class T>
void fill_inputs(const char* op, ss::FwdArgs<T>& a, int64_t Bt, int64_t Dm, int64_t L, int64_t N,
                 int64_t G, int64_t u_rows, const Buf& u, const Buf& delta, const Buf& A,
                 const Buf& Bp, const Str4& Bs, const Buf& Cp, const Str4& Cs, const Buf& Dv,
                 const Buf& z, const Buf& delta_bias, const Buf& h0, bool softplus) {
  if (G < 1) throw py::value_error(std::string(op) + ": G (groups) must be >= 1, got " + std::to_string(G));
  a.Bt = Bt;
  a.Dm = Dm;
  a.L = L;
  a.N = N;
  a.G = G;
  a.u = need_in<T>(op, "u", u, u_rows == Dm ? "(Bt, Dm, L)" : "(Bt, Dm / G, L)", {Bt, u_rows, L});
  a.delta = need_in<T>(op, "delta", delta, "(Bt, Dm, L)", {Bt, Dm, L});
  a.A = need_in<T>(op, "A", A, "(Dm, N)", {Dm, N});
  a.B = bc_buf<const T>(op, "Bp", Bp, Bs, Bt, G, N, L);
  a.Bs = strides(Bs);
  a.C = bc_buf<const T>(op, "Cp", Cp, Cs, Bt, G, N, L);
  a.Cs = strides(Cs);
  a.D = opt_in<T>(op, "Dv", Dv, "(Dm,)", {Dm});
  a.z = opt_in<T>(op, "z", z, "(Bt, Dm, L)", {Bt, Dm, L});
  a.delta_bias = opt_in<T>(op, "delta_bias", delta_bias, "(Dm,)", {Dm});
  a.h0 = opt_in<T>(op, "h0", h0, "(Bt, Dm, N)", {Bt, Dm, N});
  a.softplus = softplus;
}

template <class T>
bool run_fwd(int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, const Buf& u,
             const Buf& delta, const Buf& A, const Buf& Bp, const Str4& Bs, const Buf& Cp,
             const Str4& Cs, const Buf& Dv, const Buf& z, const Buf& delta_bias, const Buf& h0,
             bool softplus, const Buf& out, const Buf& last_state) {
  constexpr const char* op = "selective_scan_fwd";
  ss::FwdArgs<T> a;
  fill_inputs(op, a, Bt, Dm, L, N, G, Dm, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0,
              softplus);
  a.out = need_out<T>(op, "out", out, "(Bt, Dm, L)", {Bt, Dm, L});
  a.last_state = opt_out<T>(op, "last_state", last_state, "(Bt, Dm, N)", {Bt, Dm, N});
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
void run_bwd(int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, const Buf& u,
             const Buf& delta, const Buf& A, const Buf& Bp, const Str4& Bs, const Buf& Cp,
             const Str4& Cs, const Buf& Dv, const Buf& z, const Buf& delta_bias, const Buf& h0,
             bool softplus, const Buf& dout, const Buf& dlast, const Buf& du, const Buf& ddelta,
             const Buf& dA_part, const Buf& dB, const Str4& dBs, const Buf& dC, const Str4& dCs,
             const Buf& dD_part, const Buf& dz, const Buf& dbias_part, const Buf& dh0) {
  constexpr const char* op = "selective_scan_bwd";
  ss::BwdArgs<T> a;
  fill_inputs(op, a, Bt, Dm, L, N, G, Dm, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0,
              softplus);
  a.dout = need_in<T>(op, "dout", dout, "(Bt, Dm, L)", {Bt, Dm, L});
  a.dlast = opt_in<T>(op, "dlast", dlast, "(Bt, Dm, N)", {Bt, Dm, N});
  a.du = need_out<T>(op, "du", du, "(Bt, Dm, L)", {Bt, Dm, L});
  a.ddelta = need_out<T>(op, "ddelta", ddelta, "(Bt, Dm, L)", {Bt, Dm, L});
  a.dA_part = need_out<T>(op, "dA_part", dA_part, "(Bt, Dm, N)", {Bt, Dm, N});
  a.dB = bc_buf<T>(op, "dB", dB, dBs, Bt, G, N, L);
  a.dBs = strides(dBs);
  a.dB_numel = dB.second;
  a.dC = bc_buf<T>(op, "dC", dC, dCs, Bt, G, N, L);
  a.dCs = strides(dCs);
  a.dC_numel = dC.second;
  // The kernel writes these per-channel partials only where they are given, but a
  // gradient that is asked for must have room.
  a.dD_part = opt_out<T>(op, "dD_part", dD_part, "(Bt, Dm)", {Bt, Dm});
  a.dz = opt_out<T>(op, "dz", dz, "(Bt, Dm, L)", {Bt, Dm, L});
  a.dbias_part = opt_out<T>(op, "dbias_part", dbias_part, "(Bt, Dm)", {Bt, Dm});
  a.dh0 = opt_out<T>(op, "dh0", dh0, "(Bt, Dm, N)", {Bt, Dm, N});
  ss::validate_bwd(a);
  py::gil_scoped_release nogil;
  ss::backward(a);
}

bool selective_scan_fwd(const std::string& dtype, int64_t Bt, int64_t Dm, int64_t L, int64_t N,
                        int64_t G, const Buf& u, const Buf& delta, const Buf& A, const Buf& Bp,
                        const Str4& Bs, const Buf& Cp, const Str4& Cs, const Buf& Dv, const Buf& z,
                        const Buf& delta_bias, const Buf& h0, bool softplus, const Buf& out,
                        const Buf& last_state) {
  if (is_double(dtype))
    return run_fwd<double>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0,
                           softplus, out, last_state);
  return run_fwd<float>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0,
                        softplus, out, last_state);
}

void selective_scan_bwd(const std::string& dtype, int64_t Bt, int64_t Dm, int64_t L, int64_t N,
                        int64_t G, const Buf& u, const Buf& delta, const Buf& A, const Buf& Bp,
                        const Str4& Bs, const Buf& Cp, const Str4& Cs, const Buf& Dv, const Buf& z,
                        const Buf& delta_bias, const Buf& h0, bool softplus, const Buf& dout,
                        const Buf& dlast, const Buf& du, const Buf& ddelta, const Buf& dA_part,
                        const Buf& dB, const Str4& dBs, const Buf& dC, const Str4& dCs,
                        const Buf& dD_part, const Buf& dz, const Buf& dbias_part, const Buf& dh0) {
  if (is_double(dtype))
    run_bwd<double>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0, softplus,
                    dout, dlast, du, ddelta, dA_part, dB, dBs, dC, dCs, dD_part, dz, dbias_part,
                    dh0);
  else
    run_bwd<float>(Bt, Dm, L, N, G, u, delta, A, Bp, Bs, Cp, Cs, Dv, z, delta_bias, h0, softplus,
                   dout, dlast, du, ddelta, dA_part, dB, dBs, dC, dCs, dD_part, dz, dbias_part,
                   dh0);
}

template <class T>
bool run_cross_fwd(int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, const Buf& u,
                   const Buf& delta, const Buf& A, const Buf& Bp, const Str4& Bs, const Buf& Cp,
                   const Str4& Cs, const Buf& Dv, const Buf& delta_bias, bool softplus,
                   const Buf& tmap, const Buf& out) {
  constexpr const char* op = "cross_selective_scan_fwd";
  ss::FwdArgs<T> a;
  if (G < 1) throw py::value_error(std::string(op) + ": G (groups) must be >= 1, got " + std::to_string(G));
  const Buf none{0, 0};
  fill_inputs(op, a, Bt, Dm, L, N, G, Dm / G, u, delta, A, Bp, Bs, Cp, Cs, Dv, none,
              delta_bias, none, softplus);
  // validate_fwd reads all of tmap to check its rows are permutations: bound it first.
  a.tmap = need_in<int32_t>(op, "tmap", tmap, "(G, L)", {G, L});
  if (!a.tmap) throw py::value_error(std::string(op) + ": tmap is required");
  a.out = need_out<T>(op, "out", out, "(Bt, Dm / G, L)", {Bt, Dm / G, L});
  int nonfinite = 0;
  a.nonfinite = &nonfinite;
  ss::validate_fwd(a);
  {
    py::gil_scoped_release nogil;
    ss::forward(a);
  }
  return nonfinite == 0;
}

bool cross_selective_scan_fwd(const std::string& dtype, int64_t Bt, int64_t Dm, int64_t L,
                              int64_t N, int64_t G, const Buf& u, const Buf& delta, const Buf& A,
                              const Buf& Bp, const Str4& Bs, const Buf& Cp, const Str4& Cs,
                              const Buf& Dv, const Buf& delta_bias, bool softplus, const Buf& tmap,
                              const Buf& out) {
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
        "Selective-scan forward on (address, element count) buffers ((0, 0) = absent); every "
        "count is checked against the sizes (and B/C's strides) before the kernel runs. B/C element (b,d,n,t) is at "
        "Bp[b*sb + g*sg + n*sn + t*st], g = d // (Dm // G); strides may be 0. Fastest with "
        "sn == 1. Returns False when delta holds NaN or Inf (then out is not meaningful).");
  m.def("cross_selective_scan_fwd", &cross_selective_scan_fwd, "dtype"_a, "Bt"_a, "Dm"_a, "L"_a,
        "N"_a, "G"_a, "u"_a, "delta"_a, "A"_a, "Bp"_a, "B_strides"_a, "Cp"_a, "C_strides"_a,
        "Dv"_a, "delta_bias"_a, "delta_softplus"_a, "tmap"_a, "out"_a,
        "Cross-scan forward (SS2D): G traversal orders (tmap, (G, L) int32 permutations) of "
        "one (Bt, Dm/G, L) map u; delta (Bt, Dm, L) and B/C (any strides) indexed by "
        "position; out (Bt, Dm/G, L) = sum over the G scans, scattered back by position. "
        "Returns False when delta holds NaN or Inf (then out is not meaningful).");
  m.def("selective_scan_bwd", &selective_scan_bwd, "dtype"_a, "Bt"_a, "Dm"_a, "L"_a, "N"_a, "G"_a,
        "u"_a, "delta"_a, "A"_a, "Bp"_a, "B_strides"_a, "Cp"_a, "C_strides"_a, "Dv"_a, "z"_a,
        "delta_bias"_a, "h0"_a, "delta_softplus"_a, "dout"_a, "dlast"_a, "du"_a, "ddelta"_a,
        "dA_part"_a, "dB"_a, "dB_strides"_a, "dC"_a, "dC_strides"_a,
        "dD_part"_a, "dz"_a, "dbias_part"_a, "dh0"_a,
        "Selective-scan backward. dB/dC must be zeroed; contributions are added at their "
        "strided addresses. dA_part/dD_part/dbias_part are per-batch partials (sum over b).");
}

}  // namespace bind
}  // namespace effseg
