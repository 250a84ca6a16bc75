// Fused kernels for the W1-shaped MLP (width 128, two hidden layers, a few data dimensions): a whole
// level of annealed Langevin dynamics per launch, and a training step's forward, DSM loss and
// backward in one kernel plus a deterministic reduction, activations in shared memory.
#pragma once
#include <cuda_runtime.h>

#include "../core/mlp.h"

namespace ncsn {

class FusedMlp final : public MlpFastPaths<float> {
 public:
  // memory: the backend whose caching allocator holds the per-block gradients. tf32: sampling's
  // hidden product on the tensor cores (compute capability 8.0 and later; training stays FP32).
  FusedMlp(int device, cudaStream_t stream, Device& memory, bool tf32);
  bool langevin_level(const MlpShape& shape, const float* params, const float* inv_sigma, int32_t level,
                      Mat<float> x, int64_t steps, float drift, float diffusion, uint64_t seed, uint64_t first_step,
                      float denoise, const std::atomic<bool>* cancel) override;
  bool dsm_gradients(const MlpShape& shape, const float* params, const float* sigma, const float* inv_sigma,
                     Mat<float> xt, Mat<float> noise, const int32_t* level, float grad_scale, float* loss,
                     float* grads) override;
  std::string langevin_unavailable(const MlpShape& shape) const override;
  std::string training_unavailable(const MlpShape& shape) const override;

 private:
  cudaStream_t stream_;
  Device& memory_;
  bool tf32_;
  size_t shared_limit_ = 0;  // the most shared memory one block may opt into on this GPU
  int multiprocessors_ = 0;
  int64_t resident_train_blocks_[9] = {};  // by data dimension, found at the first training step
  Array<float> partials_;    // one gradient per training block, summed in block order afterwards
};

}  // namespace ncsn
