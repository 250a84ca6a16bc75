// Annealed Langevin dynamics (NCSN Algorithm 1), in the paper's convention:
//   α_i = ε σ_i² / σ_L²,   x ← x + (α_i / 2) s(x, σ_i) + √α_i z,   T steps per level,
// and optionally the final denoising step x ← x + σ_L² s(x, σ_L) (NCSNv2). With one level this is
// plain Langevin with step ε. Particles are independent, so each chunk of rows runs a whole level
// on one worker with its scratch in cache.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <vector>

#include "score_model.h"

namespace ncsn {

struct LangevinSettings {
  int64_t steps_per_level = 100;
  double step_lr = 0.1;  // ε
  bool denoise = false;
  bool fused = true;  // use the backend's fused kernel where it has one
  uint64_t seed = 0;
  std::vector<double> sigmas;  // σ_1 > … > σ_L, the levels of the model
};

// The step α_i of level i.
inline double langevin_alpha(const LangevinSettings& s, size_t i) {
  if (s.sigmas.size() == 1) return s.step_lr;
  const double r = s.sigmas[i] / s.sigmas.back();
  return s.step_lr * r * r;
}

// Runs the sampler in place on x (n×D, already initialised). `progress(level_done)` is called after
// each level and returns false to stop; the function then returns false.
template <typename T>
bool annealed_langevin(Ops<T>& ops, ScoreModel<T>& model, const T* params, Mat<T> x, const LangevinSettings& s,
                       const std::function<bool(int64_t)>& progress) {
  if (s.sigmas.empty()) throw std::invalid_argument("langevin: no noise levels");
  const int64_t n = x.rows, d = x.cols, chunk = ops.independent_chunk_rows(), n_chunks = (n + chunk - 1) / chunk;
  const int64_t rows = std::min(n, chunk);
  // Scratch for the op-by-op path, made the first time a level needs it.
  std::vector<Array<T>> score, noise;
  std::vector<Array<int32_t>> level;
  const int64_t levels = static_cast<int64_t>(s.sigmas.size());
  for (int64_t i = 0; i < levels; ++i) {
    const double alpha = langevin_alpha(s, i);
    const T drift = static_cast<T>(alpha / 2), diffusion = static_cast<T>(std::sqrt(alpha));
    const double sl = s.sigmas.back();
    const T denoise = s.denoise && i == levels - 1 ? static_cast<T>(sl * sl) : T(0);
    const uint64_t first_step = static_cast<uint64_t>(i * s.steps_per_level);
    if (s.fused && model.fused_langevin_level(ops, params, static_cast<int32_t>(i), x, s.steps_per_level, drift,
                                              diffusion, s.seed, first_step, denoise)) {
      if (!progress(i + 1)) return false;
      continue;
    }
    if (score.empty()) {
      model.reserve(ops, rows);
      for (int w = 0; w < ops.workers(); ++w) {
        score.emplace_back(ops, rows * d);
        noise.emplace_back(ops, rows * d);
        level.emplace_back(ops, rows);
      }
    }
    ops.run_chunks(n_chunks, [&](int64_t c, int w) {
      const int64_t r0 = c * chunk, r1 = std::min(n, r0 + chunk), m = r1 - r0;
      Mat<T> xc = x.row_range(r0, r1), sc = score[w].mat(m, d), zc = noise[w].mat(m, d);
      ops.fill_int(level[w].data(), m, static_cast<int32_t>(i));
      for (int64_t t = 0; t < s.steps_per_level; ++t) {
        model.score(ops, w, sc, xc, level[w].data(), params);
        ops.random_normal(zc, {s.seed, RngPurpose::sample_noise, first_step + static_cast<uint64_t>(t)},
                          static_cast<uint64_t>(r0 * d));
        ops.langevin_step(xc, sc, zc, drift, diffusion);
      }
      if (denoise > 0) {
        model.score(ops, w, sc, xc, level[w].data(), params);
        ops.langevin_step(xc, sc, Mat<T>{}, denoise, T(0));
      }
    });
    if (!progress(i + 1)) return false;
  }
  return true;
}

}  // namespace ncsn
