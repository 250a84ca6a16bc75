// The image networks' nearest 2× up-sampling and the add of a gradient's two shares, on NCHW views
// whose images may be channel slices of wider tensors. (ELU is fused into CondInstanceNorm++,
// norm.cpp, and the residual add into the convolution, conv.cpp.)
#include <stdexcept>
#include <string>

#include "cpu_ops.h"

namespace ncsn {
namespace {

template <typename T>
void check_same(const Tensor4<T>& a, const Tensor4<T>& b, const char* op) {
  if (a.n != b.n || a.c != b.c || a.h != b.h || a.w != b.w)
    throw std::invalid_argument(std::string(op) + ": the two tensors' shapes differ");
}

// fn(out, in, count) over the contiguous channels of each image.
template <typename T, typename Fn>
void per_image(const Tensor4<T>& out, const Tensor4<T>& in, Fn fn) {
  const int64_t count = in.c * in.plane();
  for (int64_t b = 0; b < in.n; ++b) fn(out.channel(b, 0), in.channel(b, 0), count);
}

}  // namespace

template <typename T>
void CpuOps<T>::upsample2_forward(Tensor4<T> y, Tensor4<T> x) {
  if (y.n != x.n || y.c != x.c || y.h != 2 * x.h || y.w != 2 * x.w)
    throw std::invalid_argument("upsample2: the output must be twice the input's height and width");
  for (int64_t b = 0; b < x.n; ++b)
    for (int64_t k = 0; k < x.c; ++k) {
      const T* in = x.channel(b, k);
      T* out = y.channel(b, k);
      for (int64_t i = 0; i < y.h; ++i)
        for (int64_t j = 0; j < y.w; ++j) out[i * y.w + j] = in[(i / 2) * x.w + j / 2];
    }
}

template <typename T>
void CpuOps<T>::upsample2_backward(Tensor4<T> dx, Tensor4<T> dy) {
  if (dy.n != dx.n || dy.c != dx.c || dy.h != 2 * dx.h || dy.w != 2 * dx.w)
    throw std::invalid_argument("upsample2: the gradient must be twice the input's height and width");
  for (int64_t b = 0; b < dx.n; ++b)
    for (int64_t k = 0; k < dx.c; ++k) {
      const T* g = dy.channel(b, k);
      T* d = dx.channel(b, k);
      for (int64_t i = 0; i < dx.h; ++i)
        for (int64_t j = 0; j < dx.w; ++j) {
          const T* top = g + 2 * i * dy.w + 2 * j;
          d[i * dx.w + j] = top[0] + top[1] + top[dy.w] + top[dy.w + 1];
        }
    }
}

template <typename T>
void CpuOps<T>::add_into(Tensor4<T> y, Tensor4<T> x) {
  check_same(y, x, "add_into");
  per_image(y, x, [](T* out, const T* in, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] += in[i];
  });
}

#define NCSN_INSTANTIATE(T)                                                \
  template void CpuOps<T>::upsample2_forward(Tensor4<T>, Tensor4<T>);       \
  template void CpuOps<T>::upsample2_backward(Tensor4<T>, Tensor4<T>);      \
  template void CpuOps<T>::add_into(Tensor4<T>, Tensor4<T>);
NCSN_INSTANTIATE(float)
NCSN_INSTANTIATE(double)
#undef NCSN_INSTANTIATE

}  // namespace ncsn
