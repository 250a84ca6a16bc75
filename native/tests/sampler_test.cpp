// The samplers on the CPU: stopping to report (the frames of an animation) never changes a result,
// the pc sampler's batch-wide norms do not depend on the thread count, and both samplers find the
// weights of a mixture whose exact score they follow.
#include <cmath>
#include <vector>

#include "check.h"
#include "model/model.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "w1.h"

using namespace ncsn;
using test::exact_w1;
using test::random_values;

namespace {

std::vector<float> draw(Model& m, SampleRequest r, std::vector<SampleProgress>* reports = nullptr) {
  std::vector<float> out;
  m.sample(r, out, [&](const SampleProgress& p) {
    if (reports) reports->push_back(p);
    return true;
  });
  return out;
}

double upper_mode_fraction(const std::vector<float>& x) {
  int64_t upper = 0;
  for (size_t i = 0; i + 1 < x.size(); i += 2) upper += x[i] + x[i + 1] > 0;
  return static_cast<double>(upper) / static_cast<double>(x.size() / 2);
}

}  // namespace

TEST(row_norm_sums_match_double) {
  CpuOps<float> f(1);
  CpuOps<double> d(1);
  for (int64_t cols : {1, 2, 7, 784}) {
    const int64_t rows = 301;
    auto a = random_values<float>(rows * cols, 60 + static_cast<unsigned>(cols), -3, 3);
    std::vector<double> ad(a.begin(), a.end());
    double want = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double sq = 0;
      for (int64_t j = 0; j < cols; ++j) sq += ad[r * cols + j] * ad[r * cols + j];
      want += std::sqrt(sq);
    }
    const double got = f.sum_row_norms({a.data(), rows, cols}), got_d = d.sum_row_norms({ad.data(), rows, cols});
    CHECK(std::fabs(got - want) <= 1e-12 * want, cols << " columns: " << got << " vs " << want);
    CHECK(std::fabs(got_d - want) <= 1e-12 * want, cols << " columns (double): " << got_d << " vs " << want);
  }
}

TEST(reports_inside_levels_change_nothing) {
  for (SamplerKind kind : {SamplerKind::ald, SamplerKind::pc}) {
    Model m(exact_w1("cpu", 2));
    SampleRequest r;
    r.n = 700;  // several chunks, the last one partial
    r.sampler.kind = kind;
    r.sampler.steps_per_level = 10;
    r.sampler.seed = 5;
    r.sampler.denoise = true;
    const auto whole = draw(m, r);
    r.sampler.report_every = 3;
    r.frames = true;
    std::vector<SampleProgress> reports;
    const auto pieces = draw(m, r, &reports);
    const char* name = kind == SamplerKind::pc ? "pc" : "ald";
    CHECK(pieces == whole, name << ": reporting every 3 steps changed the samples");
    // the start, then steps 3, 6, 9 and 10 of each of the 10 levels
    CHECK(reports.size() == 1 + 10 * 4, name << ": " << reports.size() << " reports");
    CHECK(reports[0].position.level == 0 && reports[0].position.step == 0, name << ": the first frame is the start");
    CHECK(reports[2].position.level == 0 && reports[2].position.step == 6, name << ": third report");
    CHECK(reports.back().position.level == 9 && reports.back().position.step == 10, name << ": last report");
    CHECK(reports.back().frame == whole, name << ": the last frame is the result");
    CHECK(reports[0].frame != reports[1].frame, name << ": the particles did not move");
  }
}

// The corrector's step from the batch-averaged norms, e = 2 (snr ‖z‖/‖s‖)², left where the
// particles are and taken from there; a score of zero takes no step.
TEST(pc_corrector_step_follows_the_batch_norms) {
  CpuOps<float> ops(1);
  // score rows (3, 4) and (0, 0): norms 5 and 0, mean 2.5; noise rows (1, 0) and (0, 2): mean 1.5
  std::vector<float> s = {3, 4, 0, 0}, z = {1, 0, 0, 2}, x = {1, 1, 1, 1}, step(2);
  ops.corrector_step_size(step.data(), {s.data(), 2, 2}, {z.data(), 2, 2}, 0.5);
  // ratio 0.5 · 1.5 / 2.5 = 0.3: e = 0.18, √(2e) = 0.6
  CHECK(std::fabs(step[0] - 0.18f) <= 1e-7f && std::fabs(step[1] - 0.6f) <= 1e-7f, "step " << step[0] << ", " << step[1]);
  ops.langevin_step_sized({x.data(), 2, 2}, {s.data(), 2, 2}, {z.data(), 2, 2}, step.data());
  const std::vector<float> want = {1 + step[0] * 3 + step[1] * 1, 1 + step[0] * 4, 1, 1 + step[1] * 2};
  for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(x[i] - want[i]) <= 1e-6f, "x[" << i << "] = " << x[i]);
  std::vector<float> zero(4, 0.0f);
  ops.corrector_step_size(step.data(), {zero.data(), 2, 2}, {z.data(), 2, 2}, 0.5);
  CHECK(step[0] == 0 && step[1] == 0, "a zero score gave the step " << step[0] << ", " << step[1]);
}

TEST(pc_sampling_is_identical_for_any_thread_count) {
  SampleRequest r;
  r.n = 1500;
  r.sampler.kind = SamplerKind::pc;
  r.sampler.steps_per_level = 4;
  r.sampler.seed = 9;
  Model one(exact_w1("cpu", 1)), two(exact_w1("cpu", 2));
  CHECK(draw(one, r) == draw(two, r), "pc samples differ between one and two threads");
}

// With the exact score both samplers recover the mixture weights (truth 0.8). Seeds 0–4 at these
// settings gave ald 0.772–0.788 and pc 0.786–0.798; the bounds add two standard errors of 4,000
// particles (±0.013) to that range.
TEST(both_samplers_recover_the_mixture_weights) {
  Model m(exact_w1());
  for (SamplerKind kind : {SamplerKind::ald, SamplerKind::pc}) {
    SampleRequest r;
    r.n = 4000;
    r.sampler.kind = kind;
    r.sampler.seed = 0;
    const double f = upper_mode_fraction(draw(m, r));
    CHECK(f > 0.76 && f < 0.82, (kind == SamplerKind::pc ? "pc" : "ald") << ": (5,5) fraction " << f);
  }
}

TEST(inpainting_keeps_the_known_pixels_and_completes_the_rest) {
  // x₁ known; under the exact W1 score, x₂ given x₁ = ±5 lies in that mode: about N(±5, 1)
  Model m(exact_w1());
  for (const float known : {5.0f, -5.0f}) {
    const std::vector<float> image = {known, 123.0f}, mask = {1.0f, 0.0f};  // 123: never used
    SampleRequest r;
    r.n = 2000;
    r.known = &image;
    r.mask = &mask;
    const std::vector<float> x = draw(m, r);
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < r.n; ++i) {
      CHECK(x[2 * i] == known, "a known pixel became " << x[2 * i]);
      mean += x[2 * i + 1];
      sq += x[2 * i + 1] * x[2 * i + 1];
    }
    mean /= r.n;
    const double sd = std::sqrt(sq / r.n - mean * mean);
    CHECK(std::fabs(mean - known) < 0.2, "x₂ given x₁ = " << known << " averages " << mean);
    CHECK(sd > 1.2 && sd < 1.7, "x₂ given x₁ = " << known << " spreads " << sd);
  }
  SampleRequest pc;
  pc.sampler.kind = SamplerKind::pc;
  const std::vector<float> image = {5, 0}, mask = {1, 0};
  pc.known = &image;
  pc.mask = &mask;
  bool refused = false;
  try {
    draw(m, pc);
  } catch (const std::invalid_argument&) {
    refused = true;
  }
  CHECK(refused, "pc took an inpainting");
}

// The CPU's fused Langevin path (cpu/fused_mlp.h) against the op-by-op path, bit for bit, on every
// kernel this CPU runs: W1's shape, a deeper and narrower MLP whose width leaves a partial strip,
// a single hidden layer, and a data dimension wide enough for the score layer's matrix product;
// particle counts that end in a partial block; with and without the denoising step.
TEST(cpu_fused_langevin_is_the_op_by_op_path) {
  struct Shape {
    int64_t data_dim, width, depth;
  };
  for (const Shape s : {Shape{2, 128, 2}, Shape{3, 48, 4}, Shape{5, 64, 1}, Shape{20, 32, 2}}) {
    for (int isa = 0; isa <= static_cast<int>(cpu_isa()); ++isa) {
      const CpuIsaLimit limit(static_cast<CpuIsa>(isa));
      ModelConfig c;
      c.shape = {s.data_dim, s.width, s.depth, 4};
      c.sigmas = {3, 1, 0.3, 0.1};
      c.seed = 7;
      c.threads = 1;  // the ops run on this thread, under its kernel limit
      Model model(c);
      const auto data = random_values<float>(static_cast<size_t>(300 * s.data_dim), 21, -2, 2);
      model.set_data(data.data(), 300, s.data_dim);
      model.train(30, 64, 30, [](const TrainProgress&) { return true; });
      const MlpFastPaths<float>* fast = model.fast_paths();
      CHECK(fast && fast->langevin_unavailable(c.shape).empty(), "the CPU offers no fused Langevin path here");
      for (const bool denoise : {false, true}) {
        SampleRequest r;
        r.n = 77;
        r.sampler.steps_per_level = 3;
        r.sampler.seed = 12;
        r.sampler.denoise = denoise;
        r.sampler.fused = false;
        const int64_t before = fast->langevin_runs();
        const auto op_by_op = draw(model, r);
        CHECK(fast->langevin_runs() == before, "fused: false ran the fused path");
        r.sampler.fused = true;
        const auto fused = draw(model, r);
        CHECK(fast->langevin_runs() == before + 4, "the fused path ran " << fast->langevin_runs() - before << " of 4 levels");
        CHECK(fused == op_by_op, "kernel " << isa << ", " << s.data_dim << "-" << s.width << "×" << s.depth
                                           << (denoise ? " with denoising" : "") << ": fused and op-by-op samples differ");
      }
    }
  }
}

// A sin first layer is outside the fused path's softplus epilogue: it says so, and sampling such a
// model runs op by op.
TEST(cpu_fused_langevin_declines_a_sin_first_layer) {
  ModelConfig c;
  c.shape = {2, 32, 2, 4, FirstLayer::sin};
  c.sigmas = {3, 1, 0.3, 0.1};
  c.threads = 1;
  Model model(c);
  const MlpFastPaths<float>* fast = model.fast_paths();
  CHECK(fast && fast->langevin_unavailable(c.shape).find("sin") != std::string::npos,
        "the fused path took a sin first layer: " << (fast ? fast->langevin_unavailable(c.shape) : "no fast paths"));
  SampleRequest r;
  r.n = 20;
  r.sampler.steps_per_level = 2;
  const int64_t before = fast->langevin_runs();
  const auto x = draw(model, r);
  CHECK(fast->langevin_runs() == before, "the fused path ran on a sin first layer");
  for (float v : x) CHECK(std::isfinite(v), "a sample is not finite");
}
