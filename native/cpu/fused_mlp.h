// The MLP's whole-network fast path on the CPU: a level of annealed Langevin dynamics with each
// block of particles carried through all of the level's steps on one core, its activations in
// L1, the hidden layers' weights transposed once per level rather than once per chunk and step,
// and bias, per-level bias and softplus applied in the matrix product's epilogue. Bit for bit the
// op-by-op path's arithmetic, in fewer passes.
#pragma once
#include <vector>

#include "../core/mlp.h"
#include "cpu_ops.h"

namespace ncsn {

class CpuFusedMlp final : public MlpFastPaths<float> {
 public:
  explicit CpuFusedMlp(CpuOps<float>& ops) : ops_(ops) {}
  bool langevin_level(const MlpShape& shape, const float* params, const float* inv_sigma, int32_t level,
                      Mat<float> x, int64_t steps, float drift, float diffusion, uint64_t seed, uint64_t first_step,
                      float denoise, const std::atomic<bool>* cancel) override;
  // Training runs op by op: its chunks already keep their activations in cache, and the fused
  // forward pass alone would not pay for a second copy of the backward.
  bool dsm_gradients(const MlpShape&, const float*, const float*, const float*, Mat<float>, Mat<float>,
                     const int32_t*, float, float*, float*) override {
    return false;
  }
  std::string langevin_unavailable(const MlpShape& shape) const override;
  std::string training_unavailable(const MlpShape&) const override {
    return "the CPU backend fuses sampling only; training runs op by op";
  }

 private:
  // Register tiles of rows of particles a core carries through a level together: 32 rows on
  // AVX-512, whose activations, two blocks of 32 × 128 floats, stay in L1 (measured on W1: 32
  // rows beat 16 and 64), and whole tiles on every kernel.
  static constexpr int64_t kBlockTiles = 4;

  CpuOps<float>& ops_;
  std::vector<std::vector<float>> weights_t_;  // hidden layer k's weights, transposed (in × width)
};

}  // namespace ncsn
