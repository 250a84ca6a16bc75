// The convolutional networks' ops (ImageOps of native/core/ops.h) on the GPU, queued on the backend's
// stream. Each family has its file: conv.cu (implicit-GEMM convolutions), norm.cu
// (CondInstanceNorm++ with its ELU) and image_pointwise.cu (up-sampling, the gradients' add). Scratch (the
// convolutions' split-K partial sums, the norms' per-channel sums) comes from the backend's caching
// allocator. Every reduction adds in an order fixed by the shape, so a run repeats bit for bit.
#pragma once
#include <cuda_runtime.h>

#include "../core/ops.h"

namespace ncsn {

class CudaImageOps final : public ImageOps<float> {
 public:
  // precision: the convolutions' products (TF32 and BF16 need compute capability 8.0; the
  // backend asks for them only there).
  CudaImageOps(cudaStream_t stream, Device& memory, Precision precision)
      : stream_(stream), memory_(memory), precision_(precision) {}

  void conv3x3_forward(Tensor4<float> y, Tensor4<float> x, const float* w, const float* b, int stride,
                       Tensor4<float> add) override;
  void conv3x3_backward(Tensor4<float> dx, float* dw, float* db, Tensor4<float> dy, Tensor4<float> x, const float* w,
                        int stride) override;
  void cond_instance_norm_forward(Tensor4<float> y, Tensor4<float> x, const float* embed, const int32_t* level,
                                  float* stats, bool elu) override;
  void cond_instance_norm_backward(Tensor4<float> dx, float* dembed, int64_t levels, Tensor4<float> dy, Tensor4<float> x,
                                   const float* embed, const int32_t* level, const float* stats,
                                   Tensor4<float> elu_y) override;
  void upsample2_forward(Tensor4<float> y, Tensor4<float> x) override;
  void upsample2_backward(Tensor4<float> dx, Tensor4<float> dy) override;
  void add_into(Tensor4<float> y, Tensor4<float> x) override;

 private:
  cudaStream_t stream_;
  Device& memory_;
  Precision precision_;
};

}  // namespace ncsn
