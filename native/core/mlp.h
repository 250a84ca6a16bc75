// The noise-conditional MLP of docs/workloads.md W1, for any width, depth and data dimension:
//   h_k = softplus(W_k h_{k-1} + b_k + E_k[i]),   s = (W_out h_depth + b_out) / σ_i
// optionally with a sin first layer, h_1 = sin(W_1 x + b_1 + E_1[i]): learned Fourier features,
// which let the layers above draw edges far sharper than softplus ridges of x alone (docs/toys.md).
// Forward and backward are written once over the op interface; every buffer is explicit.
#pragma once
#include <atomic>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "score_model.h"

namespace ncsn {

enum class FirstLayer { softplus, sin };

struct MlpShape {
  int64_t data_dim = 2;
  int64_t width = 128;
  int64_t depth = 2;
  int64_t levels = 10;
  FirstLayer first_layer = FirstLayer::softplus;
};

// The sin layer's frequencies start U(±SIN_FREQUENCY_BOUND) per input coordinate and its phases
// U(±π): periods from about 2 units of x up, against structure 0.1 to 1 wide in data a few units
// across. In docs/toys.md's numpy replica a scale of 3 did as well as 1; no other was tried.
constexpr double SIN_FREQUENCY_BOUND = 3.0;
constexpr double SIN_PHASE_BOUND = 3.14159265358979323846;

inline std::vector<ParamTensor> mlp_layout(const MlpShape& m) {
  std::vector<ParamTensor> out;
  int64_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamInit init, int64_t fan_in, double bound = 0) {
    int64_t size = 1;
    for (int64_t d : shape) size *= d;
    out.push_back({std::move(name), std::move(shape), offset, size, init, fan_in, bound});
    offset += size;
  };
  int64_t in = m.data_dim;
  for (int64_t k = 1; k <= m.depth; ++k) {
    // the sin layer is named for what it is, so that a checkpoint says which first layer it holds
    if (k == 1 && m.first_layer == FirstLayer::sin) {
      add("sin1.weight", {m.width, in}, ParamInit::uniform, 0, SIN_FREQUENCY_BOUND);
      add("sin1.bias", {m.width}, ParamInit::uniform, 0, SIN_PHASE_BOUND);
      add("sin1.level_bias", {m.levels, m.width}, ParamInit::zero, 0);
      in = m.width;
      continue;
    }
    const std::string p = "fc" + std::to_string(k);
    add(p + ".weight", {m.width, in}, ParamInit::fan_in_uniform, in);
    add(p + ".bias", {m.width}, ParamInit::fan_in_uniform, in);
    add(p + ".level_bias", {m.levels, m.width}, ParamInit::zero, 0);
    in = m.width;
  }
  add("out.weight", {m.data_dim, m.width}, ParamInit::fan_in_uniform, m.width);
  add("out.bias", {m.data_dim}, ParamInit::fan_in_uniform, m.width);
  return out;
}

// Fast paths a backend may offer for the whole MLP; each returns false for a shape it does not
// handle. Tests check them against the op-by-op path.
template <typename T>
class MlpFastPaths {
 public:
  virtual ~MlpFastPaths() = default;
  // `cancel`, set from another thread, may stop the level between steps (the sampler then
  // discards x); a GPU kernel runs its level whole.
  virtual bool langevin_level(const MlpShape& shape, const T* params, const T* inv_sigma, int32_t level, Mat<T> x,
                              int64_t steps, T drift, T diffusion, uint64_t seed, uint64_t first_step, T denoise,
                              const std::atomic<bool>* cancel) = 0;
  // Forward, DSM loss and backward over a whole batch: loss[r] per row, grads = Σ_r grad_scale·∂loss[r]/∂θ.
  virtual bool dsm_gradients(const MlpShape& shape, const T* params, const T* sigma, const T* inv_sigma, Mat<T> xt,
                             Mat<T> noise, const int32_t* level, T grad_scale, T* loss, T* grads) = 0;

  // Why the fused kernels cannot take this shape here ("" when they can), and how often each has
  // run: tests and benchmarks say which path they measured instead of passing on the other unawares.
  virtual std::string langevin_unavailable(const MlpShape& shape) const = 0;
  virtual std::string training_unavailable(const MlpShape& shape) const = 0;
  int64_t langevin_runs() const { return langevin_runs_; }
  int64_t training_runs() const { return training_runs_; }

 protected:
  int64_t langevin_runs_ = 0, training_runs_ = 0;
};

template <typename T>
class Mlp final : public ScoreModel<T> {
 public:
  // inv_sigma: a device table of 1/σ_i, owned by the caller.
  Mlp(const MlpShape& shape, const T* inv_sigma) : shape_(shape), layout_(mlp_layout(shape)), inv_sigma_(inv_sigma) {
    if (shape.data_dim < 1 || shape.width < 1 || shape.depth < 1 || shape.levels < 1)
      throw std::invalid_argument("mlp: data_dim, width, depth and levels must be positive");
  }

  int64_t data_dim() const override { return shape_.data_dim; }
  const std::vector<ParamTensor>& layout() const override { return layout_; }
  double forward_flops() const override {
    const double d = static_cast<double>(shape_.data_dim), h = static_cast<double>(shape_.width);
    return 2 * (h * d + static_cast<double>(shape_.depth - 1) * h * h + d * h);
  }

  // Per-worker activations and gradient scratch for chunks of up to `rows` rows.
  struct Activations {
    int64_t rows = 0;
    std::vector<Array<T>> z, h;  // per hidden layer: pre-activation and activation
    Array<T> dh, dz;             // gradient scratch shared by the hidden layers
  };

  void reserve(Ops<T>& ops, int64_t rows) override {
    if (static_cast<int>(acts_.size()) == ops.workers() && !acts_.empty() && acts_[0].rows >= rows) return;
    acts_.clear();
    acts_.resize(ops.workers());
    for (auto& a : acts_) {
      a.rows = rows;
      for (int64_t k = 0; k < shape_.depth; ++k) {
        a.z.emplace_back(ops, rows * shape_.width);
        a.h.emplace_back(ops, rows * shape_.width);
      }
      a.dh = Array<T>(ops, rows * shape_.width);
      a.dz = Array<T>(ops, rows * shape_.width);
    }
  }

  void score(Ops<T>& ops, int worker, Mat<T> s, Mat<T> x, const int32_t* level, const T* params) override {
    forward(ops, acts_[worker], s, x, level, params);
  }
  bool trainable() const override { return true; }
  void backward(Ops<T>& ops, int worker, Mat<T> ds, Mat<T> x, const int32_t* level, const T* params,
                T* grads) override {
    backward(ops, acts_[worker], ds, x, level, params, grads);
  }

  bool fused_langevin_level(Ops<T>& ops, const T* params, int32_t level, Mat<T> x, int64_t steps, T drift,
                            T diffusion, uint64_t seed, uint64_t first_step, T denoise,
                            const std::atomic<bool>* cancel) override {
    MlpFastPaths<T>* fast = ops.mlp_fast_paths();
    return fast && fast->langevin_level(shape_, params, inv_sigma_, level, x, steps, drift, diffusion, seed, first_step,
                                        denoise, cancel);
  }

  bool fused_dsm_gradients(Ops<T>& ops, const T* params, const T* sigma, Mat<T> xt, Mat<T> noise,
                           const int32_t* level, T grad_scale, T* loss, T* grads) override {
    MlpFastPaths<T>* fast = ops.mlp_fast_paths();
    return fast && fast->dsm_gradients(shape_, params, sigma, inv_sigma_, xt, noise, level, grad_scale, loss, grads);
  }

 private:
  void forward(Ops<T>& ops, Activations& a, Mat<T> s, Mat<T> x, const int32_t* level, const T* params) {
    const int64_t n = x.rows;
    Mat<T> in = x;
    for (int64_t k = 0; k < shape_.depth; ++k) {
      Mat<T> z = a.z[k].mat(n, shape_.width), h = a.h[k].mat(n, shape_.width);
      ops.matmul_forward(z, in, weight(params, k));
      ops.add_bias_forward(z, bias(params, k), level_bias(params, k), level);
      if (is_sin(k))
        ops.sin_forward(h, z);
      else
        ops.softplus_forward(h, z);
      in = h;
    }
    ops.matmul_forward(s, in, weight(params, shape_.depth));
    ops.add_bias_forward(s, bias(params, shape_.depth), Mat<T>{}, level);
    ops.scale_by_level(s, inv_sigma_, level);
  }

  // From dL/ds (scaled in place into dL/dy, y = s·σ); writes every parameter gradient into grads.
  void backward(Ops<T>& ops, Activations& a, Mat<T> ds, Mat<T> x, const int32_t* level, const T* params, T* grads) {
    const int64_t n = x.rows;
    Mat<T> dy = ds;
    ops.scale_by_level(dy, inv_sigma_, level);
    ops.add_bias_backward(bias(grads, shape_.depth), Mat<T>{}, dy, level);
    Mat<T> dh = a.dh.mat(n, shape_.width), dz = a.dz.mat(n, shape_.width);
    ops.matmul_backward(dh, weight(grads, shape_.depth), dy, a.h[shape_.depth - 1].mat(n, shape_.width),
                        weight(params, shape_.depth));
    for (int64_t k = shape_.depth - 1; k >= 0; --k) {
      if (is_sin(k))
        ops.sin_backward(dz, dh, a.z[k].mat(n, shape_.width));
      else
        ops.softplus_backward(dz, dh, a.z[k].mat(n, shape_.width));
      ops.add_bias_backward(bias(grads, k), level_bias(grads, k), dz, level);
      Mat<T> in = k > 0 ? a.h[k - 1].mat(n, shape_.width) : x;
      ops.matmul_backward(k > 0 ? dh : Mat<T>{}, weight(grads, k), dz, in, weight(params, k));
    }
  }

  bool is_sin(int64_t k) const { return k == 0 && shape_.first_layer == FirstLayer::sin; }
  // Layer k in [0, depth] (depth is the output layer): three tensors per hidden layer, two for out.
  Mat<T> weight(const T* base, int64_t k) const {
    const ParamTensor& p = layout_[3 * k];
    return {const_cast<T*>(base) + p.offset, p.shape[0], p.shape[1]};
  }
  T* bias(const T* base, int64_t k) const { return const_cast<T*>(base) + layout_[3 * k + 1].offset; }
  Mat<T> level_bias(const T* base, int64_t k) const {
    const ParamTensor& p = layout_[3 * k + 2];
    return {const_cast<T*>(base) + p.offset, p.shape[0], p.shape[1]};
  }

  MlpShape shape_;
  std::vector<ParamTensor> layout_;
  const T* inv_sigma_;
  std::vector<Activations> acts_;
};

}  // namespace ncsn
