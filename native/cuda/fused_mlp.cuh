// Fused kernels for the W1-shaped MLP (width 128, two hidden layers, a few data dimensions): a whole
// level of annealed Langevin dynamics per launch, weights and activations in shared memory.
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

 private:
  cudaStream_t stream_;
  size_t shared_limit_ = 0;  // the most shared memory one block may opt into on this GPU
};

}  // namespace ncsn
