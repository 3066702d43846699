// Exact Euclidean distance transform of a batch of 2-D masks, CPU kernel.
//
// Layouts (sizes in elements): mask (N, H, W) uint8, contiguous, nonzero = foreground;
// out (N, H, W) float32, contiguous. out[p] = distance from pixel p to the nearest
// zero pixel of its image, with pixel spacing (sy, sx) along (H, W); 0 on zero pixels;
// +inf everywhere in an image without any zero pixel (scipy's
// distance_transform_edt semantics otherwise).
#pragma once

#include <cstdint>

namespace effseg {
namespace distance_transform {

struct Args {
  int64_t N = 0, H = 0, W = 0;
  const uint8_t* mask = nullptr;
  float* out = nullptr;
  double sy = 1.0, sx = 1.0;
};

// Throws std::invalid_argument on negative sizes, H >= 2^24, W >= 2^31 - 1, missing
// pointers or spacing that is not finite and > 0. forward() validates again itself.
void validate(const Args& a);
void forward(const Args& a);

}  // namespace distance_transform
}  // namespace effseg
