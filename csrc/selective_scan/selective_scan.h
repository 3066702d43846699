// Mamba S6 selective scan, CPU kernel (forward + backward), float and double.
//
// Layouts (all sizes / strides in elements):
//   u, delta, z, out, dout, du, ddelta, dz : contiguous (Bt, Dm, L)
//   A                                      : contiguous (Dm, N)
//   h0, last_state, dlast, dh0, dA_part    : contiguous (Bt, Dm, N)
//   D, delta_bias                          : (Dm,)
//   dD_part, dbias_part                    : contiguous (Bt, Dm)   (per-batch partials)
//   B, C, dB, dC : element (b, d, n, t) lives at  p[b*sb + g*sg + n*sn + t*st]
//                  with g = d / (Dm / G); any stride may be zero (broadcast).
// Null pointers mean "absent". dB / dC must be zero-initialised by the caller; the
// kernel adds every (b, d, n, t) contribution (race-free, via per-thread copies).
#pragma once

#include <cstdint>

namespace effseg {
namespace selective_scan {

struct Strides {
  int64_t sb = 0, sg = 0, sn = 0, st = 0;
};

template <class T>
struct FwdArgs {
  int64_t Bt = 0, Dm = 0, L = 0, N = 0, G = 1;
  const T* u = nullptr;
  const T* delta = nullptr;
  const T* A = nullptr;
  const T* B = nullptr;
  Strides Bs;
  const T* C = nullptr;
  Strides Cs;
  const T* D = nullptr;
  const T* z = nullptr;
  const T* delta_bias = nullptr;
  const T* h0 = nullptr;
  bool softplus = false;
  T* out = nullptr;
  T* last_state = nullptr;  // may be null
  // Cross scan (SS2D): when set, (G, L) int32, each row a permutation of 0..L-1. The G
  // groups are G traversal orders of one map: channel c = g*Du + d (Du = Dm / G) reads
  // u row d and delta row c at position tmap[g*L + t] at step t, and out (Bt, Du, L)
  // receives at that position the sum over g of y + D*u. u is (Bt, Du, L); no z / h0 /
  // last_state.
  const int32_t* tmap = nullptr;
  // Forward only, may be null: set to 1 when some delta value is NaN or Inf (the
  // kernel checks as it reads delta; the output is then not meaningful).
  int* nonfinite = nullptr;
};

template <class T>
struct BwdArgs : FwdArgs<T> {
  const T* dout = nullptr;
  const T* dlast = nullptr;  // may be null (= zero)
  T* du = nullptr;
  T* ddelta = nullptr;
  T* dA_part = nullptr;
  T* dB = nullptr;
  Strides dBs;
  int64_t dB_numel = 0;
  T* dC = nullptr;
  Strides dCs;
  int64_t dC_numel = 0;
  T* dD_part = nullptr;
  T* dz = nullptr;
  T* dbias_part = nullptr;
  T* dh0 = nullptr;
};

// Throw std::invalid_argument on inconsistent sizes / missing required pointers
// (validate: the inputs both passes read; validate_fwd / validate_bwd: plus outputs).
// forward() / backward() validate again themselves.
template <class T>
void validate(const FwdArgs<T>& a);
template <class T>
void validate_fwd(const FwdArgs<T>& a);
template <class T>
void validate_bwd(const BwdArgs<T>& a);

template <class T>
void forward(const FwdArgs<T>& a);
template <class T>
void backward(const BwdArgs<T>& a);

// The instruction set the float kernels dispatch to: common/isa.h's level and name
// ("avx512f", "avx2+fma", "sse2" / "neon", "generic"; EFFSEG_SIMD caps it).
const char* simd_level();

}  // namespace selective_scan
}  // namespace effseg
