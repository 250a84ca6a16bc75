// The MLP's ops (matrix product, biases with per-level biases, softplus, sin, the score's 1/σ scaling)
// in the op harness: one table of cases, three checks over all of them.
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "op_harness.h"

using namespace ncsn;
using namespace ncsn::test;

namespace {

// y = x·wᵀ; each output sums K products of values in [−1, 1], so float rounding stays below K·2⁻²³.
struct Matmul {
  int64_t m, k, n;
  std::string name;
  std::vector<OpInput> inputs;
  int64_t out_size, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance;

  Matmul(int64_t m_, int64_t k_, int64_t n_) : m(m_), k(k_), n(n_) {
    name = "matmul " + std::to_string(m) + "×" + std::to_string(k) + "×" + std::to_string(n);
    inputs = {{m * k}, {n * k}};
    out_size = m * n;
    float_tolerance = static_cast<double>(std::max({k, m, n})) * std::ldexp(1.0, -23);
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.matmul_forward({b.out, m, n}, {b.in[0], m, k}, {b.in[1], n, k});
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.matmul_backward({b.grad[0], m, k}, {b.grad[1], n, k}, {b.dout, m, n}, {b.in[0], m, k}, {b.in[1], n, k});
  }
};

// y = y0 + b + e[level[r]]: the bias and the per-level bias of a hidden layer.
struct AddBias {
  int64_t m, n, levels;
  std::string name = "add_bias";
  std::vector<OpInput> inputs;
  int64_t out_size, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance = 1e-6;

  AddBias(int64_t m_, int64_t n_, int64_t levels_) : m(m_), n(n_), levels(levels_) {
    inputs = {{m * n}, {n}, {levels * n}};
    out_size = m * n;
    level = levels_of(m, static_cast<int32_t>(levels));
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.out, b.in[0], sizeof(T) * static_cast<size_t>(m * n));
    ops.add_bias_forward({b.out, m, n}, b.in[1], {b.in[2], levels, n}, b.level);
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.grad[0], b.dout, sizeof(T) * static_cast<size_t>(m * n));
    ops.add_bias_backward(b.grad[1], {b.grad[2], levels, n}, {b.dout, m, n}, b.level);
  }
};

// Inputs far into both tails, where softplus is x or 0 to float precision.
struct Softplus {
  int64_t m = 6, n = 700;
  std::string name = "softplus";
  std::vector<OpInput> inputs = {{m * n, -40, 40}};
  int64_t out_size = m * n, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance = 1e-6;

  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.softplus_forward({b.out, m, n}, {b.in[0], m, n});
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.softplus_backward({b.grad[0], m, n}, {b.dout, m, n}, {b.in[0], m, n});
  }
};

// Arguments over several hundred periods (a trained sin layer's pre-activations reach tens), both
// signs, every quarter of the reduction; the float kernel's sin and cos stay within a few ulp of 1.
struct Sin {
  int64_t m = 6, n = 700;
  std::string name = "sin";
  std::vector<OpInput> inputs = {{m * n, -1000, 1000}};
  int64_t out_size = m * n, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance = 1e-6;

  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.sin_forward({b.out, m, n}, {b.in[0], m, n});
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.sin_backward({b.grad[0], m, n}, {b.dout, m, n}, {b.in[0], m, n});
  }
};

// y[r] = y0[r]·factor[level[r]], the score's 1/σ_i; its backward is the same scaling of dy.
struct ScaleByLevel {
  int64_t m = 9, n = 3, levels = 4;
  std::string name = "scale_by_level";
  std::vector<OpInput> inputs = {{m * n}, {levels, 0.1, 3, true}};
  int64_t out_size = m * n, scratch_size = 0;
  std::vector<int32_t> level = levels_of(m, 4);
  double float_tolerance = 1e-6;

  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.out, b.in[0], sizeof(T) * static_cast<size_t>(m * n));
    ops.scale_by_level({b.out, m, n}, b.in[1], b.level);
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.grad[0], b.dout, sizeof(T) * static_cast<size_t>(m * n));
    ops.scale_by_level({b.grad[0], m, n}, b.in[1], b.level);
  }
};

// Shapes that take every kernel path: narrow and wide inputs and outputs, tails of 4 and 32.
const auto& small_cases() {
  static const auto table = std::make_tuple(std::vector<Matmul>{{5, 7, 6}, {9, 20, 33}, {6, 3, 40}, {8, 40, 2}, {4, 64, 64}},
                                            std::vector<AddBias>{{7, 5, 3}}, std::vector<Softplus>{{}}, std::vector<Sin>{{}},
                                            std::vector<ScaleByLevel>{{}});
  return table;
}

// W1's own shapes too (a chunk of 64 rows of the width-128 MLP, its 2-D input and output layers),
// too large for finite differences.
const auto& all_cases() {
  static const auto table = std::tuple_cat(
      small_cases(), std::make_tuple(std::vector<Matmul>{{64, 128, 128}, {64, 2, 128}, {64, 128, 2}, {13, 37, 70}},
                                     std::vector<AddBias>{{64, 128, 10}}));
  return table;
}


}  // namespace

TEST(mlp_ops_match_their_finite_difference_gradients) {
  for_every_case(small_cases(), [](const auto& c) { check_gradient(c); });
}

TEST(mlp_ops_in_float_match_double) {
  for_every_case(all_cases(), [](const auto& c) { check_float_against_double(c); });
}

TEST(mlp_ops_on_cuda_match_the_cpu) {
  for_every_case(all_cases(), [](const auto& c) { check_cuda_against_cpu(c); });
}

// The float softplus (vecmath.h's piecewise polynomial) on a dense sweep, on every kernel this CPU
// runs, against double: within 1.5 ulp where the log1p(exp(−|z|)) part exceeds 1/4, and
// everywhere within 1.2e-7 (the left-out tail past |z| = 16) plus the rounding of the result;
// infinities and NaN kept. Likewise its backward, the sigmoid.
TEST(softplus_and_its_gradient_are_accurate_everywhere) {
  std::vector<float> z;
  for (double v = -40; v <= 40; v += 1.0 / 4096) z.push_back(static_cast<float>(v));
  for (float v = 1e-30f; v < 1; v *= 1.01f) z.insert(z.end(), {v, -v});
  const float inf = INFINITY;
  z.insert(z.end(), {0.0f, -0.0f, inf, -inf, NAN});
  const int64_t n = static_cast<int64_t>(z.size());
  for (int isa = 0; isa <= static_cast<int>(cpu_isa()); ++isa) {
    const CpuIsaLimit limit(static_cast<CpuIsa>(isa));
    CpuOps<float> ops(1);
    std::vector<float> h(z.size());
    ops.softplus_forward({h.data(), 1, n}, {z.data(), 1, n});
    for (int64_t i = 0; i < n - 3; ++i) {
      const double want = std::fmax(z[i], 0.0) + std::log1p(std::exp(-std::fabs(static_cast<double>(z[i]))));
      const double err = std::fabs(h[i] - want), tail = want - std::fmax(z[i], 0.0);
      const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
      CHECK(err <= 1.2e-7 + ulp / 2 && (tail <= 0.25 || err <= 1.5 * ulp),
            "kernel " << isa << ": softplus(" << z[i] << ") = " << h[i] << ", want " << want);
    }
    CHECK(h[n - 3] == inf && h[n - 2] == 0.0f && std::isnan(h[n - 1]), "kernel " << isa << ": softplus(±inf, NaN)");
    // its backward with dh = 1 is the sigmoid: within 3 ulp where it exceeds 1/4, and 1.2e-7
    const std::vector<float> ones(z.size(), 1.0f);
    std::vector<float> sig(z.size());
    ops.softplus_backward({sig.data(), 1, n}, {const_cast<float*>(ones.data()), 1, n}, {z.data(), 1, n});
    for (int64_t i = 0; i < n - 3; ++i) {
      const double want = 1 / (1 + std::exp(-static_cast<double>(z[i])));
      const double err = std::fabs(sig[i] - want), ulp = std::ldexp(1.0, std::ilogb(want) - 23);
      CHECK(err <= 1.2e-7 && (want <= 0.25 || err <= 3 * ulp),
            "kernel " << isa << ": sigmoid(" << z[i] << ") = " << sig[i] << ", want " << want);
    }
    CHECK(sig[n - 3] == 1.0f && sig[n - 2] == 0.0f && std::isnan(sig[n - 1]), "kernel " << isa << ": sigmoid(±inf, NaN)");
  }
}
