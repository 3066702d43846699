// Shared helpers of the pybind11 bindings: tensors cross the boundary as raw
// addresses (tensor.data_ptr(), 0 = absent); the Python side owns allocation, dtype
// conversion and layout. Each op binds itself in csrc/<op>/<op>_bind.cpp.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>

namespace effseg {
namespace bind {

using Ptr = std::uintptr_t;

template <class T>
const T* cp(Ptr p) {
  return reinterpret_cast<const T*>(p);
}
template <class T>
T* mp(Ptr p) {
  return reinterpret_cast<T*>(p);
}

// One per op; module.cpp calls them all.
void bind_selective_scan(pybind11::module_& m);
void bind_depthwise_conv2d(pybind11::module_& m);
void bind_distance_transform(pybind11::module_& m);
void bind_linear_attention(pybind11::module_& m);
void bind_winograd_conv2d(pybind11::module_& m);

}  // namespace bind
}  // namespace effseg
