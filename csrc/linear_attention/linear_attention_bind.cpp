// pybind11 bindings of the linear attention kernels (see linear_attention.h for layouts).
#include <cstdint>
#include <string>

#include "bind.h"
#include "linear_attention/linear_attention.h"

namespace py = pybind11;
namespace la = effseg::linear_attention;
using effseg::bind::Buf;
using effseg::bind::need_in;
using effseg::bind::need_out;

namespace {

bool is_double(const std::string& dtype) {
  if (dtype == "float32" || dtype == "float") return false;
  if (dtype == "float64" || dtype == "double") return true;
  throw py::value_error("linear_attention: dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

int kind_id(const std::string& kind) {
  if (kind == "taylor") return la::kTaylor;
  if (kind == "softplus") return la::kSoftplus;
  throw py::value_error("linear_attention: kind must be 'taylor' or 'softplus', got '" + kind + "'");
}

// Each buffer is checked against the sizes before validate_*, which already reads stats.
template <class T>
void run_fwd(int64_t B, int64_t Ck, int64_t Cv, int64_t N, int kind, double eps, const Buf& q,
             const Buf& k, const Buf& v, const Buf& out, const Buf& stats) {
  constexpr const char* op = "linear_attention_fwd";
  la::FwdArgs<T> a;
  a.B = B, a.Ck = Ck, a.Cv = Cv, a.N = N, a.kind = kind, a.eps = eps;
  a.q = need_in<T>(op, "q", q, "(B, Ck, N)", {B, Ck, N});
  a.k = need_in<T>(op, "k", k, "(B, Ck, N)", {B, Ck, N});
  a.v = need_in<T>(op, "v", v, "(B, Cv, N)", {B, Cv, N});
  a.out = need_out<T>(op, "out", out, "(B, Cv, N)", {B, Cv, N});
  a.stats = need_out<T>(op, "stats", stats, "(B, Cv + 1, Ck + 1)", {B, Cv + 1, Ck + 1});
  la::validate_fwd(a);  // argument errors are raised with the GIL held
  py::gil_scoped_release nogil;
  la::forward(a);
}

template <class T>
void run_bwd(int64_t B, int64_t Ck, int64_t Cv, int64_t N, int kind, double eps, const Buf& q,
             const Buf& k, const Buf& v, const Buf& out, const Buf& stats, const Buf& dout,
             const Buf& dq, const Buf& dk, const Buf& dv) {
  constexpr const char* op = "linear_attention_bwd";
  la::BwdArgs<T> a;
  a.B = B, a.Ck = Ck, a.Cv = Cv, a.N = N, a.kind = kind, a.eps = eps;
  a.q = need_in<T>(op, "q", q, "(B, Ck, N)", {B, Ck, N});
  a.k = need_in<T>(op, "k", k, "(B, Ck, N)", {B, Ck, N});
  a.v = need_in<T>(op, "v", v, "(B, Cv, N)", {B, Cv, N});
  a.out = need_in<T>(op, "out", out, "(B, Cv, N)", {B, Cv, N});
  a.stats = need_in<T>(op, "stats", stats, "(B, Cv + 1, Ck + 1)", {B, Cv + 1, Ck + 1});
  a.dout = need_in<T>(op, "dout", dout, "(B, Cv, N)", {B, Cv, N});
  a.dq = need_out<T>(op, "dq", dq, "(B, Ck, N)", {B, Ck, N});
  a.dk = need_out<T>(op, "dk", dk, "(B, Ck, N)", {B, Ck, N});
  a.dv = need_out<T>(op, "dv", dv, "(B, Cv, N)", {B, Cv, N});
  la::validate_bwd(a);
  py::gil_scoped_release nogil;
  la::backward(a);
}

void linear_attention_fwd(const std::string& dtype, int64_t B, int64_t Ck, int64_t Cv, int64_t N,
                          const std::string& kind, double eps, const Buf& q, const Buf& k,
                          const Buf& v, const Buf& out, const Buf& stats) {
  if (is_double(dtype))
    run_fwd<double>(B, Ck, Cv, N, kind_id(kind), eps, q, k, v, out, stats);
  else
    run_fwd<float>(B, Ck, Cv, N, kind_id(kind), eps, q, k, v, out, stats);
}

void linear_attention_bwd(const std::string& dtype, int64_t B, int64_t Ck, int64_t Cv, int64_t N,
                          const std::string& kind, double eps, const Buf& q, const Buf& k,
                          const Buf& v, const Buf& out, const Buf& stats, const Buf& dout,
                          const Buf& dq, const Buf& dk, const Buf& dv) {
  if (is_double(dtype))
    run_bwd<double>(B, Ck, Cv, N, kind_id(kind), eps, q, k, v, out, stats, dout, dq, dk, dv);
  else
    run_bwd<float>(B, Ck, Cv, N, kind_id(kind), eps, q, k, v, out, stats, dout, dq, dk, dv);
}

}  // namespace

namespace effseg {
namespace bind {

void bind_linear_attention(py::module_& m) {
  using namespace py::literals;
  m.def("linear_attention_fwd", &linear_attention_fwd, "dtype"_a, "B"_a, "Ck"_a, "Cv"_a, "N"_a,
        "kind"_a, "eps"_a, "q"_a, "k"_a, "v"_a, "out"_a, "stats"_a,
        "Linear attention forward on (address, element count) tuples of contiguous buffers: q, k (B, Ck, N), "
        "v (B, Cv, N) in; out (B, Cv, N) and stats (B, Cv+1, Ck+1) = [[KV^T, S_v], [s_k, N]] out.");
  m.def("linear_attention_bwd", &linear_attention_bwd, "dtype"_a, "B"_a, "Ck"_a, "Cv"_a, "N"_a,
        "kind"_a, "eps"_a, "q"_a, "k"_a, "v"_a, "out"_a, "stats"_a, "dout"_a, "dq"_a, "dk"_a,
        "dv"_a,
        "Linear attention backward: q, k, v, the forward's out and stats, dout in; dq, dk, dv "
        "out (every element written).");
  m.def("linear_attention_simd", &la::simd_level,
        "Instruction set the linear attention kernels run on ('avx2+fma' or 'baseline').");
}

}  // namespace bind
}  // namespace effseg
