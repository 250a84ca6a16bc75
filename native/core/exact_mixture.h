// The exact score of a Gaussian mixture perturbed at σ_i: Σ w_k N(μ_k, (var + σ_i²) I). With the
// W1 mixture it reproduces the paper's Figure 3 and lets the samplers be tested apart from learning.
#pragma once
#include <cmath>
#include <stdexcept>
#include <vector>

#include "score_model.h"

namespace ncsn {

template <typename T>
class ExactMixture final : public ScoreModel<T> {
 public:
  // means: K×D on the host; weights sum to 1; sigma: a device table owned by the caller.
  ExactMixture(Ops<T>& ops, const std::vector<T>& means, const std::vector<T>& weights, int64_t dim, T var,
               const T* sigma)
      : dim_(dim), k_(static_cast<int64_t>(weights.size())), var_(var), sigma_(sigma) {
    if (k_ < 1 || dim < 1 || static_cast<int64_t>(means.size()) != k_ * dim)
      throw std::invalid_argument("exact mixture: means must be K×D for K weights");
    std::vector<T> logw(k_);
    for (int64_t k = 0; k < k_; ++k) {
      if (!(weights[k] > 0)) throw std::invalid_argument("exact mixture: weights must be positive");
      logw[k] = std::log(weights[k]);
    }
    means_ = Array<T>(ops, k_ * dim);
    means_.upload(means.data(), k_ * dim);
    log_weight_ = Array<T>(ops, k_);
    log_weight_.upload(logw.data(), k_);
  }

  int64_t data_dim() const override { return dim_; }
  const std::vector<ParamTensor>& layout() const override { return layout_; }
  void reserve(Ops<T>&, int64_t) override {}
  void score(Ops<T>& ops, int, Mat<T> s, Mat<T> x, const int32_t* level, const T*) override {
    ops.mixture_score(s, x, means_.mat(k_, dim_), log_weight_.data(), var_, sigma_, level);
  }

 private:
  int64_t dim_, k_;
  T var_;
  const T* sigma_;
  Array<T> means_, log_weight_;
  std::vector<ParamTensor> layout_;
};

}  // namespace ncsn
