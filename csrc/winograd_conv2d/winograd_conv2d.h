// Winograd F(4x4, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", CVPR 2016), CPU transforms, float and double. The products between
// them are batched GEMMs, which the Python side runs with torch.bmm:
//
//   Y = A^T [ U (.) V ] A,   U = G g G^T (36 x K x C),   V = B^T d B (36 x C x P)
//   M[ij] = U[ij] @ V[ij]    (36 GEMMs of K x C by C x P)
//
// in the correlation form deep-learning convolutions use (stride 1, 3 x 3 kernel).
// Tiles: output tile (ty, tx) of image n covers output rows 4ty..4ty+3, columns
// 4tx..4tx+3 and reads the 6 x 6 input window at (4ty - pad_h, 4tx - pad_w), zero
// outside the image. Tiles are numbered p = (n * tiles_h + ty) * tiles_w + tx and
// processed in chunks [p0, p1); a chunk's buffers hold Pc = p1 - p0 tiles.
//
// Layouts (sizes in elements, everything contiguous):
//   x  (N, C, H, W)          V  (36, C, Pc): V[(i*6+j)*C*Pc + c*Pc + (p - p0)]
//   M  (36, K, Pc)           Y  (N, K, Ho, Wo), bias (K,) or null
#pragma once

#include <cstdint>

namespace effseg {
namespace winograd_conv2d {

// Writes the chunk [p0, p1) of V = B^T d B for every channel.
template <class T>
void input_transform(const T* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad_h,
                     int64_t pad_w, int64_t tiles_h, int64_t tiles_w, int64_t p0, int64_t p1,
                     T* V);

// Writes Y = A^T m A (+ bias[k], then max(0, .) when relu) for the tiles [p0, p1) of
// the chunk M, cropping the tiles that overhang the output's bottom / right edge.
// Returns false when a value before the activation is Inf / NaN (see output_row).
template <class T>
bool output_transform(const T* M, int64_t K, int64_t p0, int64_t p1, int64_t tiles_h,
                      int64_t tiles_w, const T* bias, bool relu, T* Y, int64_t N, int64_t Ho,
                      int64_t Wo);

// Throw std::invalid_argument on inconsistent sizes or missing pointers; the
// transforms validate again themselves.
void validate_input(const void* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad_h,
                    int64_t pad_w, int64_t tiles_h, int64_t tiles_w, int64_t p0, int64_t p1,
                    const void* V);
void validate_output(const void* M, int64_t K, int64_t p0, int64_t p1, int64_t tiles_h,
                     int64_t tiles_w, const void* Y, int64_t N, int64_t Ho, int64_t Wo);

// The instruction set the transforms run with ("avx2+fma" or the baseline), following
// common/isa.h's detection and its EFFSEG_SIMD cap.
const char* simd_level();

}  // namespace winograd_conv2d
}  // namespace effseg
