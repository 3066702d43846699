// Non-causal global linear attention (GeoSeg family), CPU kernel, forward + backward,
// float and double.
//
//   taylor   (ABCNet / A2-FPN / BANet): phi(x) = x / ||x|| over channels (a column of
//            zeros maps to zeros),  out_n = (S_v + KV^T phi(q_n)) / (N + phi(q_n).(s_k + eps))
//   softplus (MANet PAM):               phi(x) = softplus(x),
//                                       out_n = KV^T phi(q_n) / (phi(q_n).(s_k + eps))
//   with KV = sum_n phi(k_n) v_n^T (Ck x Cv), s_k = sum_n phi(k_n), S_v = sum_n v_n.
//
// Layouts (contiguous, sizes in elements):
//   q, k, dq, dk        (B, Ck, N)
//   v, out, dout, dv    (B, Cv, N)
//   stats               (B, Cv + 1, Ck + 1): [b, i, j] = KV^T[i][j] (i < Cv, j < Ck),
//                       [b, i, Ck] = S_v[i], [b, Cv, j] = s_k[j] (no eps), [b, Cv, Ck] = N.
// The forward writes out and stats; the backward reads them back (with q, k, v, dout)
// instead of recomputing the summary.
#pragma once

#include <cstdint>

namespace effseg {
namespace linear_attention {

enum Kind : int { kTaylor = 0, kSoftplus = 1 };

template <class T>
struct FwdArgs {
  int64_t B = 0, Ck = 0, Cv = 0, N = 0;
  int kind = kTaylor;
  double eps = 1e-6;
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  T* out = nullptr;
  T* stats = nullptr;
};

template <class T>
struct BwdArgs {
  int64_t B = 0, Ck = 0, Cv = 0, N = 0;
  int kind = kTaylor;
  double eps = 1e-6;
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const T* out = nullptr;
  const T* stats = nullptr;
  const T* dout = nullptr;
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
};

// Throw std::invalid_argument on bad sizes, kind, eps or missing pointers.
template <class T>
void validate_fwd(const FwdArgs<T>& a);
template <class T>
void validate_bwd(const BwdArgs<T>& a);

template <class T>
void forward(const FwdArgs<T>& a);
template <class T>
void backward(const BwdArgs<T>& a);

// "avx512f", "avx2+fma" or the x86-64 / aarch64 baseline ("sse2" / "neon"): the code path
// the kernels take (common/isa.h: EFFSEG_SIMD caps it, as for the selective scan); on
// "avx512f", calls with Ck below 64 bytes of channels (16 floats) take the AVX2 build.
const char* simd_level();

}  // namespace linear_attention
}  // namespace effseg
