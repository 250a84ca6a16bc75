// Fused kernels for the W1-shaped MLP (width 128, two hidden layers, a few data dimensions): a whole
// level of annealed Langevin dynamics per launch, and a training step's forward, DSM loss and
// backward in one kernel plus a deterministic reduction, activations in shared memory.
#pragma once
#include <cuda_runtime.h>

#include "../core/mlp.h"

namespace ncsn {

class FusedMlp final : public MlpFastPaths<float> {
 public:
  FusedMlp(int device, cudaStream_t stream);
  bool langevin_level(const MlpShape& shape, const float* params, const float* inv_sigma, int32_t level,
                      Mat<float> x, int64_t steps, float drift, float diffusion, uint64_t seed, uint64_t first_step,
                      float denoise) override;
  bool dsm_gradients(const MlpShape& shape, const float* params, const float* sigma, const float* inv_sigma,
                     Mat<float> xt, Mat<float> noise, const int32_t* level, float grad_scale, float* loss,
                     float* grads) override;
  ~FusedMlp() override;

 private:
  cudaStream_t stream_;
  size_t shared_limit_ = 0;  // the most shared memory one block may opt into on this GPU
  float* partials_ = nullptr;  // one gradient per block of rows, summed in block order afterwards
  size_t partial_floats_ = 0;
};

}  // namespace ncsn
