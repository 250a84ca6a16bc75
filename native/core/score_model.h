// A score model s(x, σ_level): a network that learns it (the MLP, the U-Net), or an exact score used to
// check the samplers apart from learning.
#pragma once
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops.h"

namespace ncsn {

// How a parameter tensor starts: PyTorch's default for a linear or convolutional layer's weight and
// bias, U(±1/√fan_in); U(±bound) with a bound of its own (a sin layer's frequencies and phases);
// zero; or a CondInstanceNorm++ table, rows of [γ | β | α] with γ and α drawn from N(1, 0.02²) and β
// zero.
enum class ParamInit { fan_in_uniform, uniform, zero, norm_embed };

// One named tensor inside a model's flat parameter array.
struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t size = 0;
  ParamInit init = ParamInit::zero;
  int64_t fan_in = 0;  // fan_in_uniform: the inputs of one output of the layer
  double bound = 0;    // uniform: values are drawn from U(−bound, bound)
};

template <typename T>
class ScoreModel {
 public:
  virtual ~ScoreModel() = default;
  virtual int64_t data_dim() const = 0;
  virtual const std::vector<ParamTensor>& layout() const = 0;
  // FLOPs of one row's forward pass in its matrix products and convolutions (an FMA counts 2):
  // the figure benchmarks divide by. 0 for a score that is not a network.
  virtual double forward_flops() const { return 0; }
  int64_t param_count() const {
    const auto& l = layout();
    return l.empty() ? 0 : l.back().offset + l.back().size;
  }
  // The most rows one chunk may hold (an image network's activations are large); the backend's
  // own chunk size when smaller.
  virtual int64_t max_chunk_rows(const Device&) const { return INT64_MAX; }
  // Values of scratch one row needs in a chunk (activations, their gradients, statistics), for the
  // memory checks made before training or sampling allocates it.
  virtual double scratch_values_per_row() const { return 0; }
  // Scratch for chunks of up to `rows` rows, one set per worker of the backend.
  virtual void reserve(Ops<T>& ops, int64_t rows) = 0;
  // s = s(x, σ_level) for one chunk of rows, with the scratch of `worker`, which keeps what
  // backward() needs.
  virtual void score(Ops<T>& ops, int worker, Mat<T> s, Mat<T> x, const int32_t* level, const T* params) = 0;

  // Networks that learn: every parameter gradient of the chunk of this worker's last score(), from
  // ds = dL/ds, into grads (overwritten). ds may be used as scratch.
  virtual bool trainable() const { return false; }
  virtual void backward(Ops<T>&, int, Mat<T>, Mat<T>, const int32_t*, const T*, T*) {
    throw std::logic_error("this score model has nothing to train");
  }
  // The forward pass, the DSM loss and the backward pass of a whole batch in a fused kernel, if the
  // backend has one for this network: loss[r] per row, grads = Σ_r grad_scale·∂loss[r]/∂θ. Returns
  // false to ask for the op-by-op path.
  virtual bool fused_dsm_gradients(Ops<T>&, const T*, const T*, Mat<T>, Mat<T>, const int32_t*, T, T*, T*) {
    return false;
  }

  // One whole level of Langevin dynamics in a fused kernel, if the backend has one for this model:
  // `steps` updates x ← x + drift·s(x) + diffusion·z with the noise of stream steps first_step…,
  // then, when denoise > 0, x ← x + denoise·s(x). `cancel` may stop it between steps. Returns
  // false to ask for the op-by-op path.
  virtual bool fused_langevin_level(Ops<T>&, const T*, int32_t, Mat<T>, int64_t, T, T, uint64_t, uint64_t, T,
                                    const std::atomic<bool>*) {
    return false;
  }
};

}  // namespace ncsn
