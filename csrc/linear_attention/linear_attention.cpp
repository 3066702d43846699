// Linear attention, CPU kernel entry points: argument checks, thread count and the choice
// of instruction set. The kernels themselves are in linear_attention_impl.h, compiled
// here for the x86-64 / aarch64 baseline (16-byte vectors) and, on x86-64, for AVX2 + FMA
// (32-byte vectors) and AVX-512 (64-byte), picked at run time, so the build needs no
// -march flag.
#include "linear_attention/linear_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

#include "common/isa.h"
#include "common/simd_math.h"
#include "common/threads.h"

#if !defined(__GNUC__)
#error "the linear attention kernels need GCC or Clang (vector extensions)"
#endif
#pragma GCC diagnostic ignored "-Wpsabi"
#define LA_INLINE inline __attribute__((always_inline))
#define LA_LAMBDA_INLINE __attribute__((always_inline))
#define LA_UNROLL _Pragma("GCC unroll 16")

namespace effseg {
namespace linear_attention {
namespace {

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }
// Row stride of a scratch block: whole cache lines plus one more, so that the rows of a
// block spread over the L1 sets (a stride of 1 KiB would put them all in 4 of 64).
constexpr int64_t padded_ld(int64_t x) { return round_up(x, 16) + 16; }

namespace base {
#define LA_VBYTES 16
#include "linear_attention/linear_attention_impl.h"
#undef LA_VBYTES
}  // namespace base

#if defined(EFFSEG_X86_DISPATCH)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace avx2 {
#define LA_VBYTES 32
#include "linear_attention/linear_attention_impl.h"
#undef LA_VBYTES
}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// AVX-512: twice the lanes per FMA of AVX2 for the GEMMs, which is what the PyTorch peer's
// BLAS runs on such a CPU.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif
namespace avx512 {
#define LA_VBYTES 64
#include "linear_attention/linear_attention_impl.h"
#undef LA_VBYTES
}  // namespace avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// The widest build this CPU (and EFFSEG_SIMD) allows. Vectors of 16 floats pad Ck up to a
// multiple of 16 in the summary GEMM, so Ck below 16 stays on AVX2 (8 would double its work).
enum class Path { Base, AVX2, AVX512 };
Path path_for(int64_t Ck, size_t elem) {
  if (isa() >= Isa::AVX512 && Ck * int64_t(elem) >= 64) return Path::AVX512;
  if (use_avx2()) return Path::AVX2;
  return Path::Base;
}
#endif

// The team (all threads on a quiet machine), unless the call is too small to pay for waking them.
int threads_for(int64_t B, int64_t Ck, int64_t Cv, int64_t N) {
  const int64_t work = B * N * (Ck * Cv + Ck + Cv);
  return work < (int64_t{1} << 17) ? 1 : std::max(1, team_threads());
}

[[noreturn]] void fail(const std::string& msg) {
  throw std::invalid_argument("linear_attention: " + msg);
}

template <class A>
void check_common(const A& a) {
  if (a.B < 1 || a.Ck < 1 || a.Cv < 1 || a.N < 1)
    fail("B, Ck, Cv and N must all be >= 1, got " + std::to_string(a.B) + ", " +
         std::to_string(a.Ck) + ", " + std::to_string(a.Cv) + ", " + std::to_string(a.N));
  if (a.kind != kTaylor && a.kind != kSoftplus)
    fail("kind must be 0 (taylor) or 1 (softplus), got " + std::to_string(a.kind));
  if (!(a.eps > 0.0) || !std::isfinite(a.eps)) fail("eps must be a finite number > 0");
  if (!a.q || !a.k || !a.v) fail("q, k and v are required");
}

}  // namespace

template <class T>
void validate_fwd(const FwdArgs<T>& a) {
  check_common(a);
  if (!a.out || !a.stats) fail("out and stats are required");
}

template <class T>
void validate_bwd(const BwdArgs<T>& a) {
  check_common(a);
  if (!a.out || !a.stats || !a.dout || !a.dq || !a.dk || !a.dv)
    fail("out, stats, dout, dq, dk and dv are required");
  const T n = a.stats[(a.Cv + 1) * (a.Ck + 1) - 1];
  if (n != static_cast<T>(a.N)) fail("stats do not come from a forward over N = " + std::to_string(a.N));
}

template <>
void forward<float>(const FwdArgs<float>& a) {
  validate_fwd(a);
  const int nth = threads_for(a.B, a.Ck, a.Cv, a.N);
#if defined(EFFSEG_X86_DISPATCH)
  switch (path_for(a.Ck, sizeof(float))) {
    case Path::AVX512: return avx512::forward_f32(a, nth);
    case Path::AVX2: return avx2::forward_f32(a, nth);
    default: break;
  }
#endif
  base::forward_f32(a, nth);
}

template <>
void forward<double>(const FwdArgs<double>& a) {
  validate_fwd(a);
  const int nth = threads_for(a.B, a.Ck, a.Cv, a.N);
#if defined(EFFSEG_X86_DISPATCH)
  switch (path_for(a.Ck, sizeof(double))) {
    case Path::AVX512: return avx512::forward_f64(a, nth);
    case Path::AVX2: return avx2::forward_f64(a, nth);
    default: break;
  }
#endif
  base::forward_f64(a, nth);
}

template <>
void backward<float>(const BwdArgs<float>& a) {
  validate_bwd(a);
  const int nth = threads_for(a.B, a.Ck, a.Cv, a.N);
#if defined(EFFSEG_X86_DISPATCH)
  switch (path_for(a.Ck, sizeof(float))) {
    case Path::AVX512: return avx512::backward_f32(a, nth);
    case Path::AVX2: return avx2::backward_f32(a, nth);
    default: break;
  }
#endif
  base::backward_f32(a, nth);
}

template <>
void backward<double>(const BwdArgs<double>& a) {
  validate_bwd(a);
  const int nth = threads_for(a.B, a.Ck, a.Cv, a.N);
#if defined(EFFSEG_X86_DISPATCH)
  switch (path_for(a.Ck, sizeof(double))) {
    case Path::AVX512: return avx512::backward_f64(a, nth);
    case Path::AVX2: return avx2::backward_f64(a, nth);
    default: break;
  }
#endif
  base::backward_f64(a, nth);
}

const char* simd_level() {
#if defined(EFFSEG_X86_DISPATCH)
  if (isa() >= Isa::AVX512) return isa_name(Isa::AVX512);  // from Ck >= 16 floats (8 doubles)
#endif
  return use_avx2() ? "avx2+fma" : baseline_name();
}

template void validate_fwd<float>(const FwdArgs<float>&);
template void validate_fwd<double>(const FwdArgs<double>&);
template void validate_bwd<float>(const BwdArgs<float>&);
template void validate_bwd<double>(const BwdArgs<double>&);

}  // namespace linear_attention
}  // namespace effseg
