// Nearest 2× up-sampling and the add of a gradient's two shares on the GPU (ELU is fused into
// CondInstanceNorm++, norm.cu, and the residual add into the convolution, conv.cu), over NCHW views whose images may be
// channel slices of wider tensors: element i of a view is image i / (c·h·w), at offset i % (c·h·w)
// from that image's first channel, batch_stride apart.
#include <stdexcept>
#include <string>

#include "check.cuh"
#include "grid.cuh"
#include "image_ops.cuh"

namespace ncsn {
namespace {

// A view's geometry on the device: per_image = c·h·w values, batch_stride apart.
struct View {
  float* data;
  int64_t per_image, batch_stride;
  __device__ float& at(int64_t i) const { return data[(i / per_image) * batch_stride + i % per_image]; }
};

View view(const Tensor4<float>& t) { return {t.data, t.c * t.plane(), t.batch_stride}; }

void check_same(const Tensor4<float>& a, const Tensor4<float>& b, const char* op) {
  if (a.n != b.n || a.c != b.c || a.h != b.h || a.w != b.w)
    throw std::invalid_argument(std::string(op) + ": the two tensors' shapes differ");
}

// One thread per output pixel: plane index q of the h2×w2 output reads pixel (y/2, x/2) of the input.
__global__ void upsample2_forward_k(View y, View x, int64_t n, int64_t w2, int64_t plane2) {
  GRID_STRIDE(i, n) {
    const int64_t q = i % plane2, rest = i - q, oy = q / w2, ox = q % w2;
    y.at(i) = x.at(rest / 4 + (oy / 2) * (w2 / 2) + ox / 2);
  }
}

// One thread per input pixel, summing its 2×2 block of the gradient in a fixed order.
__global__ void upsample2_backward_k(View dx, View dy, int64_t n, int64_t w, int64_t plane) {
  GRID_STRIDE(i, n) {
    const int64_t q = i % plane, rest = i - q, iy = q / w, ix = q % w;
    const int64_t top = rest * 4 + (2 * iy) * (2 * w) + 2 * ix;
    dx.at(i) = dy.at(top) + dy.at(top + 1) + dy.at(top + 2 * w) + dy.at(top + 2 * w + 1);
  }
}

__global__ void add_into_k(View y, View x, int64_t n) {
  GRID_STRIDE(i, n) { y.at(i) += x.at(i); }
}

}  // namespace

void CudaImageOps::upsample2_forward(Tensor4<float> y, Tensor4<float> x) {
  if (y.n != x.n || y.c != x.c || y.h != 2 * x.h || y.w != 2 * x.w)
    throw std::invalid_argument("upsample2: the output must be twice the input's height and width");
  if (y.size() == 0) return;
  upsample2_forward_k<<<grid_blocks(y.size()), GRID_THREADS, 0, stream_>>>(view(y), view(x), y.size(), y.w, y.plane());
  launch_check("upsample2_forward");
}

void CudaImageOps::upsample2_backward(Tensor4<float> dx, Tensor4<float> dy) {
  if (dy.n != dx.n || dy.c != dx.c || dy.h != 2 * dx.h || dy.w != 2 * dx.w)
    throw std::invalid_argument("upsample2: the gradient must be twice the input's height and width");
  if (dx.size() == 0) return;
  upsample2_backward_k<<<grid_blocks(dx.size()), GRID_THREADS, 0, stream_>>>(view(dx), view(dy), dx.size(), dx.w, dx.plane());
  launch_check("upsample2_backward");
}

void CudaImageOps::add_into(Tensor4<float> y, Tensor4<float> x) {
  check_same(y, x, "add_into");
  if (x.size() == 0) return;
  add_into_k<<<grid_blocks(x.size()), GRID_THREADS, 0, stream_>>>(view(y), view(x), x.size());
  launch_check("add_into");
}

}  // namespace ncsn
