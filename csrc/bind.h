// Shared helpers of the pybind11 bindings. A tensor crosses the boundary as a Buf,
// the Python tuple (address, element count) (tensor.data_ptr(), tensor.numel(); (0, 0)
// = absent); the Python side owns allocation, dtype conversion and layout. Before a
// kernel runs, its binding computes how many elements each buffer must hold from the
// size arguments and checks every Buf against it (need_in / need_out below), so that
// inconsistent sizes raise ValueError instead of reading or writing out of bounds.
// Each op binds itself in csrc/<op>/<op>_bind.cpp.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

namespace effseg {
namespace bind {

using Ptr = std::uintptr_t;
using Buf = std::pair<Ptr, int64_t>;  // (address, element count)

[[noreturn]] inline void bad_arg(const std::string& msg) { throw std::invalid_argument(msg); }

// Product of sizes, each >= 0; raises instead of overflowing int64 (a wrapped product
// could make a too-small buffer look big enough).
inline int64_t count(const char* op, const char* what, std::initializer_list<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) bad_arg(std::string(op) + ": the sizes of " + what + " must be >= 0, got " + std::to_string(d));
    if (__builtin_mul_overflow(n, d, &n)) bad_arg(std::string(op) + ": " + what + " is too large (int64 overflow)");
  }
  return n;
}

inline std::string shape_str(std::initializer_list<int64_t> dims) {
  std::string s = "(";
  for (int64_t d : dims) s += (s.size() > 1 ? ", " : "") + std::to_string(d);
  return s + (dims.size() == 1 ? ",)" : ")");
}

// The buffer's address after checking that it holds `need` elements of T. A buffer that
// needs nothing may be absent. `layout` names the shape in the message.
template <class T>
T* checked(const char* op, const char* name, const Buf& b, int64_t need, const std::string& layout) {
  if (b.second < 0) bad_arg(std::string(op) + ": " + name + "'s element count must be >= 0, got " + std::to_string(b.second));
  if (need == 0) return reinterpret_cast<T*>(b.first);
  if (b.first == 0) bad_arg(std::string(op) + ": " + name + " is required (" + layout + ", " + std::to_string(need) + " elements)");
  if (b.second < need)
    bad_arg(std::string(op) + ": " + name + " holds " + std::to_string(b.second) + " elements but " +
            layout + " needs " + std::to_string(need));
  if (b.first % alignof(T)) bad_arg(std::string(op) + ": " + name + "'s address is not aligned to its element type");
  return reinterpret_cast<T*>(b.first);
}

// `dims` names the layout in the message, e.g. "(B, Ck, N)".
template <class T>
const T* need_in(const char* op, const char* name, const Buf& b, const char* dims,
                 std::initializer_list<int64_t> sizes) {
  return checked<const T>(op, name, b, count(op, name, sizes), std::string(dims) + " = " + shape_str(sizes));
}
template <class T>
T* need_out(const char* op, const char* name, const Buf& b, const char* dims,
            std::initializer_list<int64_t> sizes) {
  return checked<T>(op, name, b, count(op, name, sizes), std::string(dims) + " = " + shape_str(sizes));
}
// Optional buffers: absent (address 0) gives nullptr, present ones are checked in full.
template <class T>
const T* opt_in(const char* op, const char* name, const Buf& b, const char* dims,
                std::initializer_list<int64_t> sizes) {
  return b.first == 0 ? nullptr : need_in<T>(op, name, b, dims, sizes);
}
template <class T>
T* opt_out(const char* op, const char* name, const Buf& b, const char* dims,
           std::initializer_list<int64_t> sizes) {
  return b.first == 0 ? nullptr : need_out<T>(op, name, b, dims, sizes);
}

// A strided buffer whose element (i0, i1, ...) lives at p[sum i_k * s_k], i_k < e_k:
// every offset must lie in [0, count). Strides may be 0 (broadcast) or negative.
template <class T>
T* strided(const char* op, const char* name, const Buf& b, std::initializer_list<int64_t> extents,
           std::initializer_list<int64_t> strides) {
  if (extents.size() != strides.size()) bad_arg(std::string(op) + ": " + name + " needs one stride per dim");
  count(op, name, extents);  // every extent >= 0
  int64_t lo = 0, hi = 0;
  auto s = strides.begin();
  for (int64_t e : extents) {
    if (e == 0) return checked<T>(op, name, b, 0, "");  // nothing is read
    int64_t span;
    if (__builtin_mul_overflow(e - 1, *s++, &span) || __builtin_add_overflow(span > 0 ? hi : lo, span, span > 0 ? &hi : &lo))
      bad_arg(std::string(op) + ": " + name + "'s strides overflow int64");
  }
  if (lo < 0) bad_arg(std::string(op) + ": " + name + "'s strides reach before the start of its buffer");
  return checked<T>(op, name, b, hi + 1, "its strides over " + shape_str(extents));
}

// One per op; module.cpp calls them all.
void bind_selective_scan(pybind11::module_& m);
void bind_depthwise_conv2d(pybind11::module_& m);
void bind_distance_transform(pybind11::module_& m);
void bind_linear_attention(pybind11::module_& m);
void bind_winograd_conv2d(pybind11::module_& m);

}  // namespace bind
}  // namespace effseg
