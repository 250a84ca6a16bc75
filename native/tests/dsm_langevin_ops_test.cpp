// The ops that training and sampling run around the network (noising, the DSM loss, a Langevin
// step, the pc corrector's step, inpainting's paste, the exact mixture score) in the op harness. They have no backward, so
// each is checked forward only: float against double on every CPU kernel, and CUDA against the CPU.
#include <string>
#include <tuple>
#include <vector>

#include "op_harness.h"

using namespace ncsn;
using namespace ncsn::test;

namespace {

// The fields every case here shares: rows of `d` values, each row at one of `levels` noise levels
// whose σ (a constant input) is in [0.05, 3].
struct RowCase {
  int64_t m, d, levels = 5;
  std::string name;
  std::vector<OpInput> inputs;
  int64_t out_size, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance = 1e-6;
  static constexpr bool forward_only = true;

  RowCase(std::string name_, int64_t m_, int64_t d_) : m(m_), d(d_), name(std::move(name_)), out_size(m_ * d_) {
    level = levels_of(m, static_cast<int32_t>(levels));
  }
  OpInput sigmas() const { return {levels, 0.05, 3, true}; }
};

// x̃ = x + σ_level z
struct Perturb : RowCase {
  Perturb(int64_t m_, int64_t d_) : RowCase("perturb", m_, d_) { inputs = {{m * d}, {m * d, -3, 3}, sigmas()}; }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.perturb({b.out, m, d}, {b.in[0], m, d}, {b.in[1], m, d}, b.in[2], b.level);
  }
};

// [loss | ds]: the per-row loss ½‖σ s + z‖² and its gradient scaled by 1/m, written side by side.
struct DsmLoss : RowCase {
  DsmLoss(int64_t m_, int64_t d_) : RowCase("dsm_loss", m_, d_) {
    inputs = {{m * d, -4, 4}, {m * d, -3, 3}, sigmas()};
    out_size = m + m * d;
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.dsm_loss(b.out, {b.out + m, m, d}, {b.in[0], m, d}, {b.in[1], m, d}, b.in[2], b.level, T(1) / static_cast<T>(m));
  }
};

// x + drift · s + diffusion · z, and the deterministic step without z (denoising).
struct LangevinStep : RowCase {
  bool with_noise;
  LangevinStep(int64_t m_, int64_t d_, bool with_noise_)
      : RowCase(with_noise_ ? "langevin_step" : "langevin_step without noise", m_, d_), with_noise(with_noise_) {
    inputs = {{m * d, -8, 8}, {m * d, -20, 20}, {m * d, -3, 3}};
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.out, b.in[0], sizeof(T) * static_cast<size_t>(m * d));
    const Mat<T> z = with_noise ? Mat<T>{b.in[2], m, d} : Mat<T>{};
    ops.langevin_step({b.out, m, d}, {b.in[1], m, d}, z, T(0.05), T(0.3));
  }
};

// The pc corrector's step over a whole batch: [e | √(2e) | x + e s + √(2e) z], with e from the
// batch's norms (corrector_step_size) and the step taken with the sizes where that op left them
// (langevin_step_sized). A score of zero (its range [0, 0]) takes no step.
struct PcCorrectorStep : RowCase {
  PcCorrectorStep(int64_t m_, int64_t d_, bool zero_score = false)
      : RowCase(zero_score ? "pc corrector step of a zero score" : "pc corrector step", m_, d_) {
    inputs = {{m * d, -8, 8}, {m * d, zero_score ? 0.0 : -20, zero_score ? 0.0 : 20}, {m * d, -3, 3}};
    out_size = 2 + m * d;
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.corrector_step_size(b.out, {b.in[1], m, d}, {b.in[2], m, d}, 0.16);
    ops.copy(b.out + 2, b.in[0], sizeof(T) * static_cast<size_t>(m * d));
    ops.langevin_step_sized({b.out + 2, m, d}, {b.in[1], m, d}, {b.in[2], m, d}, b.out);
  }
};

// The known pixels y over the particles x where the mask is 1.
struct PasteKnown : RowCase {
  PasteKnown(int64_t m_, int64_t d_) : RowCase("paste_known", m_, d_) {
    OpInput mask{d, 0, 1, true};
    mask.binary = true;
    inputs = {{m * d}, {m * d}, mask};
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.out, b.in[0], sizeof(T) * static_cast<size_t>(m * d));
    ops.paste_known({b.out, m, d}, {b.in[1], m, d}, b.in[2]);
  }
};

// The exact score of a K-component mixture at each row's level: a log-sum-exp over components,
// whose float rounding grows with the spread of the logits, hence the looser tolerance.
struct MixtureScore : RowCase {
  int64_t k;
  MixtureScore(int64_t m_, int64_t d_, int64_t k_) : RowCase("mixture_score", m_, d_), k(k_) {
    inputs = {{m * d, -8, 8}, {k * d, -6, 6, true}, {k, -3, 0, true}, sigmas()};
    float_tolerance = 1e-5;
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.mixture_score({b.out, m, d}, {b.in[0], m, d}, {b.in[1], k, d}, b.in[2], T(1), b.in[3], b.level);
  }
};

// Row counts around the vector widths and the CUDA kernels' block sizes; W1's 2-D rows and an
// MNIST image's 784 values.
const auto& cases() {
  static const auto table = std::make_tuple(
      std::vector<Perturb>{{7, 3}, {777, 2}, {5, 784}}, std::vector<DsmLoss>{{7, 3}, {777, 2}, {5, 784}},
      std::vector<LangevinStep>{{777, 2, true}, {777, 2, false}, {5, 784, true}},
      std::vector<PcCorrectorStep>{{777, 2}, {5, 784}, {33, 3, true}},
      std::vector<PasteKnown>{{9, 784}, {33, 5}}, std::vector<MixtureScore>{{777, 2, 2}, {40, 3, 8}});
  return table;
}

}  // namespace

TEST(dsm_and_langevin_ops_in_float_match_double) {
  for_every_case(cases(), [](const auto& c) { check_float_against_double(c); });
}

TEST(dsm_and_langevin_ops_on_cuda_match_the_cpu) {
  for_every_case(cases(), [](const auto& c) { check_cuda_against_cpu(c); });
}
