// The samplers, both over the model's noise levels σ_1 > … > σ_L:
//
// ald: annealed Langevin dynamics (NCSN Algorithm 1), in the paper's convention
//   α_i = ε σ_i² / σ_L²,   x ← x + (α_i / 2) s(x, σ_i) + √α_i z,   T steps per level,
// and optionally the final denoising step x ← x + σ_L² s(x, σ_L) (NCSNv2). With one level this is
// plain Langevin with step ε.
//
// pc: the predictor-corrector sampler of Song et al. 2021 for the VE SDE. At each level, T Langevin
// corrector steps whose size comes from a target signal-to-noise ratio,
//   e = 2 (snr ‖z‖ / ‖s‖)²  (norms averaged over the batch),   x ← x + e s + √(2e) z,
// then the reverse-diffusion predictor from σ_i to σ_{i+1} (σ_{L+1} = 0),
//   x ← x + (σ_i² − σ_{i+1}²) s + √(σ_i² − σ_{i+1}²) z;
// with denoising the last predictor step leaves out its noise, which is the σ_L² s denoising step.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <vector>

#include "score_model.h"

namespace ncsn {

enum class SamplerKind { ald, pc };

struct SamplerSettings {
  SamplerKind kind = SamplerKind::ald;
  int64_t steps_per_level = 100;  // T: Langevin steps (ald) or corrector steps (pc) at each level
  double step_lr = 0.1;           // ε of ald
  double snr = 0.16;              // the pc corrector's signal-to-noise ratio
  bool denoise = false;
  bool fused = true;  // use the backend's fused kernel where it has one
  // Record a step once and replay it (a CUDA graph) where the backend can (Device::record_step).
  bool graphs = true;
  uint64_t seed = 0;
  // Also report every this many steps inside a level (the frames of an animation); 0: at level ends.
  int64_t report_every = 0;
  std::vector<double> sigmas;  // σ_1 > … > σ_L, the levels of the model
  // Set from another thread to stop after the current step; the sampler then returns false.
  const std::atomic<bool>* cancel = nullptr;
};

// Where a sampler stands: `step` of the T steps of `level` (0-based) are done; step == T at the
// level's end.
struct SamplerPosition {
  int64_t level = 0;
  int64_t step = 0;
};
// Returns false to stop the sampler, which then returns false.
using SamplerProgress = std::function<bool(const SamplerPosition&)>;

// The step α_i of level i.
inline double langevin_alpha(const SamplerSettings& s, size_t i) {
  if (s.sigmas.size() == 1) return s.step_lr;
  const double r = s.sigmas[i] / s.sigmas.back();
  return s.step_lr * r * r;
}

// The steps of a level in the segments between reports.
inline int64_t segment_steps(const SamplerSettings& s) {
  return s.report_every > 0 ? std::min(s.report_every, s.steps_per_level) : s.steps_per_level;
}

inline bool cancelled(const SamplerSettings& s) { return s.cancel && s.cancel->load(std::memory_order_relaxed); }

// Rows per chunk of n where rows never interact (sampling, score fields): the backend's, or fewer
// where the network's activations are large, or where fewer give every worker a share (8 images
// to inpaint make two chunks of 4 on two cores, not one of 8). Rows are independent, so the chunks
// change no result.
template <typename T>
int64_t independent_chunk_rows(const Ops<T>& ops, const ScoreModel<T>& model, int64_t n) {
  const int64_t share = (n + ops.workers() - 1) / ops.workers();
  return std::max<int64_t>(1, std::min({ops.independent_chunk_rows(), model.max_chunk_rows(ops), share}));
}

// Inpainting (NCSN): where mask is 1 the image is known. At each level the known pixels are set to
// the image perturbed at that level, y + σ_i z (z drawn per particle, kept for the level), before
// its steps and after every step, and to the image itself at the end.
template <typename T>
struct Inpainting {
  Mat<T> known;   // n × D: the known image in every row
  const T* mask;  // D values, 1 where the pixel is known
};

// Particles are independent, so each chunk of rows runs a whole segment on one worker with its
// scratch in cache.
template <typename T>
bool annealed_langevin(Ops<T>& ops, ScoreModel<T>& model, const T* params, Mat<T> x, const SamplerSettings& s,
                       const SamplerProgress& progress, const Inpainting<T>* inpaint = nullptr) {
  const int64_t n = x.rows, d = x.cols, chunk = independent_chunk_rows(ops, model, x.rows), n_chunks = (n + chunk - 1) / chunk;
  const int64_t rows = std::min(n, chunk), steps = s.steps_per_level, segment = segment_steps(s);
  // Scratch for the op-by-op path, made the first time a segment needs it.
  std::vector<Array<T>> score, noise;
  std::vector<Array<int32_t>> level;
  Array<T> perturbed, perturbation;  // inpainting: the known image at this level's noise
  if (inpaint) {
    perturbed = Array<T>(ops, n * d);
    perturbation = Array<T>(ops, n * d);
  }
  const int64_t levels = static_cast<int64_t>(s.sigmas.size());
  for (int64_t i = 0; i < levels; ++i) {
    const double alpha = langevin_alpha(s, i);
    const T drift = static_cast<T>(alpha / 2), diffusion = static_cast<T>(std::sqrt(alpha));
    const double sl = s.sigmas.back();
    if (inpaint) {
      const Mat<T> y = perturbed.mat(n, d), z = perturbation.mat(n, d);
      ops.copy(y.data, inpaint->known.data, sizeof(T) * static_cast<size_t>(n * d));
      ops.random_normal(z, {s.seed, RngPurpose::inpaint, static_cast<uint64_t>(i)}, 0);
      ops.langevin_step(y, y, z, T(0), static_cast<T>(s.sigmas[i]));
      ops.paste_known(x, y, inpaint->mask);
    }
    for (int64_t t0 = 0; t0 < steps; t0 += segment) {
      const int64_t t1 = std::min(steps, t0 + segment);
      const T denoise = s.denoise && i == levels - 1 && t1 == steps ? static_cast<T>(sl * sl) : T(0);
      const uint64_t first_step = static_cast<uint64_t>(i * steps + t0);
      const bool fused = !inpaint && s.fused && model.fused_langevin_level(ops, params, static_cast<int32_t>(i), x, t1 - t0, drift,
                                                               diffusion, s.seed, first_step, denoise, s.cancel);
      if (!fused) {
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
          // step k of the noise stream; only k changes from step to step, so a GPU replays a graph
          const auto step = [&](uint64_t k) {
            model.score(ops, w, sc, xc, level[w].data(), params);
            ops.random_normal(zc, {s.seed, RngPurpose::sample_noise, k}, static_cast<uint64_t>(r0 * d));
            ops.langevin_step(xc, sc, zc, drift, diffusion);
            if (inpaint) ops.paste_known(xc, perturbed.mat(n, d).row_range(r0, r1), inpaint->mask);
          };
          const std::unique_ptr<RecordedStep> recorded = s.graphs && t1 - t0 > 1 ? ops.record_step(first_step, step) : nullptr;
          for (int64_t t = 0; t < t1 - t0; ++t) {
            if (cancelled(s)) return;
            const uint64_t k = first_step + static_cast<uint64_t>(t);
            if (recorded) recorded->run(k);
            else step(k);
          }
          if (denoise > 0) {
            model.score(ops, w, sc, xc, level[w].data(), params);
            ops.langevin_step(xc, sc, Mat<T>{}, denoise, T(0));
          }
        });
      }
      // A fused segment on the GPU runs whole: a cancel takes effect at its end.
      if (cancelled(s) || !progress({i, t1})) return false;
    }
  }
  if (inpaint) ops.paste_known(x, inpaint->known, inpaint->mask);
  return true;
}

// The corrector's step size needs norms over the whole batch, so every step scores all rows before
// any row moves; noise stream step i·(T+1) + t is corrector step t of level i, and i·(T+1) + T its
// predictor. The step size is computed and used where the particles are (corrector_step_size), not
// read back to the host, so the corrector steps of a level queue the same work but for their noise:
// they are recorded once per level and replayed (a CUDA graph on a GPU: one launch a step, and the
// host never waits on the GPU inside a level).
template <typename T>
bool predictor_corrector(Ops<T>& ops, ScoreModel<T>& model, const T* params, Mat<T> x, const SamplerSettings& s,
                         const SamplerProgress& progress) {
  const int64_t n = x.rows, d = x.cols, chunk = independent_chunk_rows(ops, model, x.rows), n_chunks = (n + chunk - 1) / chunk;
  const int64_t steps = s.steps_per_level, segment = segment_steps(s);
  const int64_t levels = static_cast<int64_t>(s.sigmas.size());
  Array<T> score(ops, n * d), noise(ops, n * d), corrector_size(ops, 2);
  std::vector<Array<int32_t>> level;
  model.reserve(ops, std::min(n, chunk));
  for (int w = 0; w < ops.workers(); ++w) level.emplace_back(ops, std::min(n, chunk));

  auto score_and_noise = [&](int32_t i, uint64_t stream_step) {
    ops.run_chunks(n_chunks, [&](int64_t c, int w) {
      const int64_t r0 = c * chunk, r1 = std::min(n, r0 + chunk);
      ops.fill_int(level[w].data(), r1 - r0, i);
      model.score(ops, w, score.mat(n, d).row_range(r0, r1), x.row_range(r0, r1), level[w].data(), params);
      ops.random_normal(noise.mat(n, d).row_range(r0, r1), {s.seed, RngPurpose::sample_noise, stream_step},
                        static_cast<uint64_t>(r0 * d));
    });
  };
  // x += drift · s + diffusion · z chunk by chunk, `step` given each chunk's x, s and z: with the
  // sizes known on the host (the predictor), or where corrector_step_size left them on the device.
  auto move = [&](const auto& step) {
    ops.run_chunks(n_chunks, [&](int64_t c, int) {
      const int64_t r0 = c * chunk, r1 = std::min(n, r0 + chunk);
      step(x.row_range(r0, r1), score.mat(n, d).row_range(r0, r1), noise.mat(n, d).row_range(r0, r1));
    });
  };

  const uint64_t per_level = static_cast<uint64_t>(steps) + 1;
  for (int64_t i = 0; i < levels; ++i) {
    const auto li = static_cast<int32_t>(i);
    const uint64_t first = static_cast<uint64_t>(i) * per_level;
    const auto corrector = [&](uint64_t k) {
      score_and_noise(li, k);
      ops.corrector_step_size(corrector_size.data(), score.mat(n, d), noise.mat(n, d), s.snr);
      move([&](Mat<T> xc, Mat<T> sc, Mat<T> zc) { ops.langevin_step_sized(xc, sc, zc, corrector_size.data()); });
    };
    const std::unique_ptr<RecordedStep> recorded = s.graphs && steps > 1 ? ops.record_step(first, corrector) : nullptr;
    for (int64_t t = 0; t < steps; ++t) {
      const uint64_t k = first + static_cast<uint64_t>(t);
      if (recorded) recorded->run(k);
      else corrector(k);
      if (cancelled(s)) return false;
      if ((t + 1) % segment == 0 && t + 1 < steps && !progress({i, t + 1})) return false;
    }
    const double next = i + 1 < levels ? s.sigmas[i + 1] : 0.0;
    const double var = s.sigmas[i] * s.sigmas[i] - next * next;
    score_and_noise(li, first + static_cast<uint64_t>(steps));
    const T drift = static_cast<T>(var), diffusion = static_cast<T>(s.denoise && i == levels - 1 ? 0.0 : std::sqrt(var));
    move([&](Mat<T> xc, Mat<T> sc, Mat<T> zc) { ops.langevin_step(xc, sc, zc, drift, diffusion); });
    if (cancelled(s) || !progress({i, steps})) return false;
  }
  return true;
}

// Runs the chosen sampler in place on x (n×D, already initialised); inpainting takes ald.
template <typename T>
bool run_sampler(Ops<T>& ops, ScoreModel<T>& model, const T* params, Mat<T> x, const SamplerSettings& s,
                 const SamplerProgress& progress, const Inpainting<T>* inpaint = nullptr) {
  if (s.sigmas.empty()) throw std::invalid_argument("sampler: no noise levels");
  if (s.kind == SamplerKind::pc) {
    if (inpaint) throw std::invalid_argument("inpainting runs the ald sampler, not pc");
    return predictor_corrector(ops, model, params, x, s, progress);
  }
  return annealed_langevin(ops, model, params, x, s, progress, inpaint);
}

}  // namespace ncsn
