// Every CPU GEMM kernel against a double reference, Philox against Random123's known answers, the
// uniform draws, the portable transcendental functions, and a training run's chunked sums and
// determinism.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "check.h"
#include "core/training.h"
#include "model/model.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"

using namespace ncsn;
using test::random_values;

namespace {

template <typename T>
Mat<T> mat(std::vector<T>& v, int64_t rows, int64_t cols) { return {v.data(), rows, cols}; }

// max |a − b| / (atol + rtol·|b|) over the arrays, b the double reference; ≤ 1 passes.
double worst(const std::vector<float>& a, const std::vector<double>& b, double atol, double rtol) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::fabs(a[i] - b[i]) / (atol + rtol * std::fabs(b[i])));
  return w;
}

}  // namespace

TEST(philox_known_answers) {
  // Random123 kat_vectors, philox4x32 10
  struct Kat {
    Philox4 ctr;
    uint32_t k0, k1;
    Philox4 want;
  } kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const auto& k : kats) {
    const Philox4 got = philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) CHECK(got.v[i] == k.want.v[i], "word " << i << ": " << std::hex << got.v[i]);
  }
}

TEST(uniforms_are_strictly_inside_the_unit_interval) {
  // Every value the top 24 bits can take, the largest among them, which rounds to 1 without the min.
  float lowest = 1, highest = 0;
  for (uint32_t k = 0; k < (1u << 24); ++k) {
    const float u = uniform_open01(k << 8 | 0xffu);
    lowest = std::min(lowest, u);
    highest = std::max(highest, u);
  }
  CHECK(lowest > 0.0f, "uniform_open01 reached " << lowest);
  CHECK(highest < 1.0f, "uniform_open01 reached " << highest);
  CHECK(highest == std::nextafter(1.0f, 0.0f), "the largest uniform is " << highest);
}

TEST(random_uniform_rounds_once) {
  // The CUDA kernels compute lo + (hi − lo)·u as one fma; the CPU must too, or the backends differ
  // in the last bit for about 40 % of the draws (checked bit for bit on a GPU by cuda_parity).
  CpuOps<float> ops(1);
  const int64_t n = 4099;
  const float lo = -2.0f, hi = 3.0f;
  const RngStream s{77, RngPurpose::user, 5};
  std::vector<float> got(n);
  ops.random_uniform(mat(got, 1, n), lo, hi, s, 3);
  int64_t twice_rounded_differs = 0;
  for (int64_t j = 0; j < n; ++j) {
    const uint64_t e = 3 + static_cast<uint64_t>(j);
    const uint32_t word = philox_block(s, static_cast<uint32_t>(e / 4)).v[e % 4];
    const float u = uniform_open01(word);
    const volatile float product = (hi - lo) * u;  // volatile: no contraction into an fma
    CHECK(got[j] == std::fma(hi - lo, u, lo), "draw " << j << ": " << got[j]);
    CHECK(got[j] >= lo && got[j] <= hi, "draw " << j << " = " << got[j] << " is outside [lo, hi]");
    twice_rounded_differs += (product + lo) != got[j];
  }
  // the check above is only meaningful where one rounding and two differ
  CHECK(twice_rounded_differs > n / 10, "only " << twice_rounded_differs << " draws tell one rounding from two");
}

TEST(portable_log_and_sincos) {
  double worst_log = 0, worst_trig = 0;
  for (uint32_t u = 0; u < (1u << 24); u += 7) {
    const float x = uniform_open01(u << 8);
    worst_log = std::max(worst_log, std::fabs(log_portable(x) - std::log(static_cast<double>(x))) /
                                        std::max(1e-30, std::fabs(std::log(static_cast<double>(x)))));
    float s, c;
    sincos_2pi_portable(x, s, c);
    const double a = 2 * M_PI * static_cast<double>(x);
    worst_trig = std::max({worst_trig, std::fabs(s - std::sin(a)), std::fabs(c - std::cos(a))});
  }
  CHECK(worst_log < 4e-7, "log relative error " << worst_log);
  CHECK(worst_trig < 3e-7, "sin/cos absolute error " << worst_trig);
}

// The vectorised normals on every kernel this CPU runs are the portable scalar ones bit for bit
// (the CUDA backend draws the scalar ones), at offsets and lengths that cut blocks anywhere.
TEST(every_cpu_normal_kernel_draws_the_portable_normals) {
  const RngStream s{0x0123456789abcdefull, RngPurpose::sample_noise, 0x1234567890ull};
  const int64_t spans[][2] = {{0, 4096}, {3, 61}, {1001, 37}, {4095, 2}, {7, 1}};
  for (int isa = 0; isa <= static_cast<int>(cpu_isa()); ++isa) {
    const CpuIsaLimit limit(static_cast<CpuIsa>(isa));
    CpuOps<float> ops(1);
    for (const auto& span : spans) {
      const int64_t offset = span[0], n = span[1];
      std::vector<float> z(n);
      ops.random_normal(mat(z, 1, n), s, static_cast<uint64_t>(offset));
      for (int64_t j = 0; j < n; ++j) {
        const uint64_t e = static_cast<uint64_t>(offset + j);
        float want[4];
        normals_from_block(philox_block(s, static_cast<uint32_t>(e / 4)), want);
        CHECK(z[j] == want[e % 4], "kernel " << isa << ": normal " << e << " is " << z[j] << ", want " << want[e % 4]);
        CHECK(normal_of_block(philox_block(s, static_cast<uint32_t>(e / 4)), static_cast<int>(e % 4)) == want[e % 4],
              "normal_of_block: normal " << e);
      }
    }
  }
}

TEST(normals_are_standard_and_chunk_independent) {
  CpuOps<float> ops(1);
  const int64_t n = 1 << 20;
  std::vector<float> z(n);
  const RngStream s{42, RngPurpose::user, 3};
  ops.random_normal(mat(z, 1, n), s, 0);
  double mean = 0, var = 0, kurt = 0;
  for (float v : z) mean += v;
  mean /= n;
  for (float v : z) {
    var += (v - mean) * (v - mean);
    kurt += std::pow(v - mean, 4);
  }
  var /= n;
  kurt /= n * var * var;
  // standard errors at n = 2^20: mean 0.001, variance 0.0014, kurtosis 0.0048
  CHECK(std::fabs(mean) < 0.005 && std::fabs(var - 1) < 0.007 && std::fabs(kurt - 3) < 0.03,
        "mean " << mean << " variance " << var << " kurtosis " << kurt);
  std::vector<float> part(37);
  ops.random_normal(mat(part, 1, 37), s, 1001);
  for (int i = 0; i < 37; ++i) CHECK(part[i] == z[1001 + i], "draw at an offset differs from the whole stream");
}

// Every GEMM kernel this CPU can run, not only the one it picks: shapes with partial tiles on
// both sides (9 to 15 rows leave every count of rows past the last whole tile of 4, 6 or 8), A
// read transposed through its strides, and C overwritten or accumulated into.
TEST(every_cpu_gemm_kernel_matches_double) {
  const char* names[] = {"base", "avx2", "avx512"};
  const int64_t shapes[][3] = {{64, 128, 128}, {9, 37, 70},  {10, 37, 70}, {11, 37, 70}, {12, 37, 70}, {13, 37, 70},
                               {14, 37, 70},   {15, 37, 70}, {7, 5, 33},   {1, 1, 1},    {6, 128, 16}, {25, 3, 129}};
  unsigned seed = 300;
  for (int isa = 0; isa <= static_cast<int>(cpu_isa()); ++isa) {
    for (const auto& s : shapes) {
      const int64_t m = s[0], k = s[1], n = s[2];
      const auto a = random_values<float>(m * k, seed++), b = random_values<float>(k * n, seed++);
      const auto bt = random_values<float>(n * k, seed++), c0 = random_values<float>(m * n, seed++);
      for (const bool transposed : {false, true}) {
        for (const bool accumulate : {false, true}) {
          // A(i, p) = a[i·k + p], or the same values stored column-major
          std::vector<float> at(m * k);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t p = 0; p < k; ++p) at[p * m + i] = a[i * k + p];
          std::vector<float> c = c0;
          const GemmArgs<float> g{c.data(), n, transposed ? at.data() : a.data(), transposed ? 1 : k,
                                  transposed ? m : 1, b.data(), n, m, n, k, accumulate};
          gemm(static_cast<CpuIsa>(isa), g);
          std::vector<double> want(m * n);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double sum = accumulate ? c0[i * n + j] : 0.0;
              for (int64_t p = 0; p < k; ++p) sum += static_cast<double>(a[i * k + p]) * b[p * n + j];
              want[i * n + j] = sum;
            }
          CHECK(worst(c, want, (k + 1) * std::ldexp(1.0, -23), 0) <= 1,
                "gemm on " << names[isa] << ", " << m << "x" << k << "x" << n << (transposed ? ", A transposed" : "")
                           << (accumulate ? ", accumulating" : ""));
        }
      }
      std::vector<float> c(m * n);
      gemm_dot(static_cast<CpuIsa>(isa), c.data(), n, a.data(), bt.data(), m, n, k);
      std::vector<double> want(m * n);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          for (int64_t p = 0; p < k; ++p) want[i * n + j] += static_cast<double>(a[i * k + p]) * bt[j * k + p];
      CHECK(worst(c, want, k * std::ldexp(1.0, -23), 0) <= 1,
            "gemm_dot on " << names[isa] << ", " << m << "x" << k << "x" << n);
    }
  }
}

// The epilogue (bias, second bias, softplus) on every GEMM kernel: bit for bit the product
// followed by the element-wise passes it replaces (on the same kernel, which decides where FMAs
// contract), on tiles, partial tiles and the last strip.
TEST(every_cpu_gemm_kernel_applies_its_epilogue_exactly) {
  const int64_t shapes[][3] = {{64, 128, 128}, {13, 37, 70}, {7, 2, 33}, {32, 2, 128}, {9, 128, 16}};
  unsigned seed = 400;
  for (int isa = 0; isa <= static_cast<int>(cpu_isa()); ++isa) {
    const CpuIsaLimit limit(static_cast<CpuIsa>(isa));
    CpuOps<float> ops(1);
    for (const auto& s : shapes) {
      const int64_t m = s[0], k = s[1], n = s[2];
      const auto a = random_values<float>(m * k, seed++, -3, 3), b = random_values<float>(k * n, seed++, -3, 3);
      const auto bias = random_values<float>(n, seed++, -2, 2), bias2 = random_values<float>(n, seed++, -2, 2);
      std::vector<float> want(m * n), got(m * n);
      gemm(static_cast<CpuIsa>(isa), GemmArgs<float>{want.data(), n, a.data(), k, 1, b.data(), n, m, n, k, false});
      for (int64_t i = 0; i < m * n; ++i) want[i] = (want[i] + bias[i % n]) + bias2[i % n];
      ops.softplus_forward(mat(want, m, n), mat(want, m, n));
      GemmArgs<float> g{got.data(), n, a.data(), k, 1, b.data(), n, m, n, k, false};
      g.bias = bias.data();
      g.bias2 = bias2.data();
      g.softplus = true;
      gemm(static_cast<CpuIsa>(isa), g);
      for (int64_t i = 0; i < m * n; ++i)
        CHECK(got[i] == want[i], "kernel " << isa << ", " << m << "x" << k << "x" << n << " element " << i << ": "
                                           << got[i] << " vs " << want[i]);
    }
  }
}

// Whole 8×8 blocks, the rows and columns past them, and leading dimensions wider than the block.
TEST(transpose_moves_every_value) {
  const int64_t shapes[][2] = {{128, 128}, {8, 8}, {13, 21}, {2, 128}, {128, 2}, {7, 9}, {1, 1}};
  unsigned seed = 500;
  for (const auto& s : shapes) {
    const int64_t r = s[0], c = s[1], ld_src = c + 3, ld_dst = r + 5;
    const auto src = random_values<float>(r * ld_src, seed++);
    std::vector<float> dst(c * ld_dst, -7.0f);
    transpose(dst.data(), ld_dst, src.data(), ld_src, r, c);
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < c; ++j)
        CHECK(dst[j * ld_dst + i] == src[i * ld_src + j], "transpose " << r << "x" << c << " at " << i << "," << j);
    for (int64_t j = 0; j < c; ++j)
      for (int64_t i = r; i < ld_dst; ++i) CHECK(dst[j * ld_dst + i] == -7.0f, "transpose wrote past its block");
  }
}

// matmul_forward keeps a weight's transposed copy for the rest of a job: a new job, or a call
// outside any, must see weights changed in place at the same address (Adam's step between two
// training steps), and two weights of one job (an MLP's layers) must not be mixed up. The second
// shape is past the size it keeps copies of.
TEST(matmul_forward_sees_weights_changed_between_jobs) {
  const int64_t shapes[][2] = {{32, 40}, {520, 512}};
  for (const auto& shape : shapes) {
    const int64_t m = 12, n = shape[0], k = shape[1], chunk = 3;
    CpuOps<float> ops(2);
    auto x = random_values<float>(m * k, 601, -1, 1), w = random_values<float>(n * k, 602, -1, 1);
    auto w2 = random_values<float>(n * k, 603, -1, 1);
    auto check = [&](const std::vector<float>& y, const std::vector<float>& weight, const char* when) {
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double want = 0;
          for (int64_t p = 0; p < k; ++p) want += static_cast<double>(x[i * k + p]) * weight[j * k + p];
          CHECK(std::fabs(y[i * n + j] - want) <= 1e-6 * static_cast<double>(k), n << "×" << k << ", " << when << ": y[" << i << "][" << j
                                                             << "] = " << y[i * n + j] << ", want " << want);
        }
    };
    std::vector<float> y(m * n), y2(m * n);
    for (int round = 0; round < 3; ++round) {
      ops.run_chunks(m / chunk, [&](int64_t c, int) {
        const Mat<float> xc = mat(x, m, k).row_range(c * chunk, (c + 1) * chunk);
        ops.matmul_forward(mat(y, m, n).row_range(c * chunk, (c + 1) * chunk), xc, mat(w, n, k));
        ops.matmul_forward(mat(y2, m, n).row_range(c * chunk, (c + 1) * chunk), xc, mat(w2, n, k));
      });
      check(y, w, "a job's first weight");
      check(y2, w2, "a job's second weight");
      for (float& v : w) v = -0.5f * v + 0.25f;
      ops.matmul_forward(mat(y, m, n), mat(x, m, k), mat(w, n, k));
      check(y, w, "outside a job, after the weights changed");
      for (float& v : w) v = 0.5f - v;
    }
  }
}

// note_divergence for ±inf and NaN at every position of the losses and of the gradient (whole
// vectors and the tail past them), with the largest finite float and the smallest subnormal taken
// as finite: the first bad loss wins over later ones and over the gradient, and a noted step stays.
TEST(note_divergence_finds_the_first_non_finite_value) {
  CpuOps<float> ops(1);
  const float max = std::numeric_limits<float>::max(), tiny = std::numeric_limits<float>::denorm_min();
  for (const int64_t n : {1, 15, 16, 67, 1000}) {
    auto loss = random_values<float>(n, 700 + static_cast<unsigned>(n), 0, 1e30);
    auto grad = random_values<float>(n, 800 + static_cast<unsigned>(n), -1e30, 1e30);
    std::vector<int32_t> level(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) level[r] = static_cast<int32_t>((r * 7) % 10);
    loss[0] = max;
    grad[n - 1] = -tiny;
    Divergence d;
    ops.note_divergence(&d, loss.data(), level.data(), n, grad.data(), n, 4);
    CHECK(d.step == 0, n << " finite values were noted");
    for (int64_t i = 0; i < n; ++i)
      for (const float bad : {INFINITY, -INFINITY, NAN}) {
        for (std::vector<float>* v : {&loss, &grad}) {
          const float keep = (*v)[i];
          (*v)[i] = bad;
          Divergence got;
          ops.note_divergence(&got, loss.data(), level.data(), n, grad.data(), n, 4);
          const uint64_t first = v == &loss ? Divergence::loss_at(i, level[i]) : Divergence::gradient;
          CHECK(got.step == 4 && got.first == first, bad << " at " << i << " of " << n << (v == &loss ? " losses" : " gradients"));
          (*v)[i] = keep;
        }
      }
  }
  std::vector<float> loss = {1, NAN, 2, INFINITY}, grad = {NAN, 0};
  const std::vector<int32_t> level = {0, 3, 1, 2};
  Divergence d;
  ops.note_divergence(&d, loss.data(), level.data(), 4, grad.data(), 2, 9);
  CHECK(d.step == 9 && d.in_loss() && d.level() == 3 && d.first == Divergence::loss_at(1, 3), "the first bad loss");
  loss[0] = NAN;
  ops.note_divergence(&d, loss.data(), level.data(), 4, grad.data(), 2, 10);
  CHECK(d.step == 9 && d.first == Divergence::loss_at(1, 3), "a later step replaced the noted one");
  std::vector<double> dl = {1.0, std::numeric_limits<double>::max()}, dg = {-2.0};
  const std::vector<int32_t> dlevel = {0, 0};
  Divergence dd;
  CpuOps<double>(1).note_divergence(&dd, dl.data(), dlevel.data(), 2, dg.data(), 1, 1);
  CHECK(dd.step == 0, "finite doubles");
  dg[0] = NAN;
  CpuOps<double>(1).note_divergence(&dd, dl.data(), dlevel.data(), 2, dg.data(), 1, 1);
  CHECK(dd.step == 1 && !dd.in_loss(), "NaN among double gradients");
}

// Adam and the EMA change nothing once a divergence is noted, and everything without one.
TEST(adam_and_ema_skip_after_a_noted_divergence) {
  CpuOps<float> ops(1);
  const int64_t n = 37;
  const auto g = random_values<float>(n, 41, -1, 1);
  for (const bool noted : {false, true}) {
    auto p = random_values<float>(n, 42, -1, 1), m = random_values<float>(n, 43, -1, 1), v = random_values<float>(n, 44, 0, 1),
         ema = random_values<float>(n, 45, -1, 1);
    const auto before = p, m0 = m, v0 = v, ema0 = ema;
    Divergence d;
    if (noted) d.step = 3;
    ops.adam_update(p.data(), g.data(), m.data(), v.data(), n, AdamSettings{}, 3, &d);
    ops.ema_update(ema.data(), p.data(), n, 0.999, &d);
    const bool unchanged = p == before && m == m0 && v == v0 && ema == ema0;
    CHECK(unchanged == noted, (noted ? "a step after a divergence moved the state" : "a step changed nothing"));
  }
}

namespace {
// A network of one weight whose score is that weight, except at one step of its life, where row 5
// of the batch gets a NaN score; its gradient is 1, so every step that Adam takes moves the weight.
struct FailingModel final : ScoreModel<float> {
  explicit FailingModel(int64_t failing_step) : failing_step(failing_step) {}
  std::vector<ParamTensor> params{{"w", {1}, 0, 1}};
  int64_t failing_step, scored = 0;
  int64_t data_dim() const override { return 2; }
  const std::vector<ParamTensor>& layout() const override { return params; }
  void reserve(Ops<float>&, int64_t) override {}
  void score(Ops<float>&, int, Mat<float> s, Mat<float>, const int32_t*, const float* w) override {
    std::fill(s.data, s.data + s.size(), w[0]);
    if (++scored == failing_step) s.data[5 * s.cols] = NAN;
  }
  bool trainable() const override { return true; }
  void backward(Ops<float>&, int, Mat<float>, Mat<float>, const int32_t*, const float*, float* grads) override {
    grads[0] = 1;
  }
};
}  // namespace

// Steps queued past a diverging one change nothing: the report names the step, its sample's level,
// and leaves the state (weight, Adam's moments, EMA, step) as the step before it left them; the
// next steps and reports go on from there.
TEST(a_report_names_the_diverging_step_and_the_state_is_the_step_before) {
  const std::vector<float> sigma = {4, 2, 1};
  const std::vector<float> data = random_values<float>(2 * 50, 61, -1, 1);
  auto run = [&](int64_t failing_step, int64_t queued, std::string* error) {
    CpuOps<float> ops(1);
    FailingModel model(failing_step);
    DsmTrainer<float> trainer(ops, model, sigma.data(), {4, 2, 1});
    trainer.set_data(data.data(), 50, 2);
    TrainState<float> state(ops, 1);
    for (Array<float>* a : {&state.params, &state.adam_m, &state.adam_v, &state.ema}) {
      const float v = 0.5f;
      a->upload(&v, 1);
    }
    TrainSettings ts;
    ts.batch = 16;
    for (int64_t t = 0; t < queued; ++t) trainer.step(state, ts);
    try {
      trainer.report(state);
    } catch (const DivergenceError& e) {
      *error = e.what();
    }
    std::vector<float> values;
    for (Array<float>* a : {&state.params, &state.adam_m, &state.adam_v, &state.ema}) {
      float v;
      a->download(&v, 1);
      values.push_back(v);
    }
    values.push_back(static_cast<float>(state.step));
    if (!error->empty()) {  // the record is cleared: the run goes on from the last good step
      trainer.step(state, ts);
      trainer.report(state);
      CHECK(state.step == failing_step, "after the report the run stood at step " << state.step);
    }
    return values;
  };
  std::string error, none;
  const auto diverged = run(3, 7, &error), two_steps = run(0, 2, &none);
  CHECK(none.empty(), "two good steps reported: " << none);
  int level = 0;
  float named_sigma = 0;
  CHECK(std::sscanf(error.c_str(), "training diverged: non-finite loss at step 3, noise level %d (sigma %f)", &level,
                    &named_sigma) == 2 && level >= 1 && level <= 3 && named_sigma == sigma[level - 1],
        "the report said: '" << error << "'");
  CHECK(diverged == two_steps, "the state after the report is not the state after step 2");
  CHECK(diverged[4] == 2, "the step went to " << diverged[4]);
}

// Weights that give finite losses and an overflowing gradient: with W1 = 0 every h1 is softplus(0),
// fc2's 1e23 makes every h2 about 1e25, and with out.weight = 0 the score is out.bias/σ, so each
// loss is about 1e34 while out.weight's gradient, Σ ds·h2, is about 1e43, past float's range.
TEST(a_non_finite_gradient_stops_training_before_the_weights_change) {
  ModelConfig c;
  c.sigmas = {20, 8, 3, 1};
  c.threads = 1;
  Model m(c);
  // the parameters, not their EMA ("ema.") or Adam moments ("optimizer.")
  auto is_param = [](const std::string& name) { return name.rfind("ema.", 0) != 0 && name.rfind("optimizer.", 0) != 0; };
  auto weights = m.tensors();
  for (auto& t : weights) {
    const float v = t.name == "fc2.weight" ? 1e23f : t.name == "out.bias" ? 1e17f : 0.0f;
    if (is_param(t.name)) std::fill(t.data.begin(), t.data.end(), v);
  }
  m.load_tensors(weights, 0);
  auto data = random_values<float>(2 * 500, 5, -6, 6);
  m.set_data(data.data(), 500, 2);
  std::string error;
  try {
    m.train(1, 128, 1, [](const TrainProgress&) { return true; });
  } catch (const std::exception& e) {
    error = e.what();
  }
  CHECK(error == "training diverged: non-finite gradient at step 1 (every loss in the batch was finite)",
        "expected the gradient to stop training, got: '" << error << "'");
  CHECK(m.step() == 0, "the step was taken");
  const auto after = m.tensors();
  for (size_t i = 0; i < after.size(); ++i)
    if (is_param(after[i].name)) CHECK(after[i].data == weights[i].data, after[i].name << " changed");
}

// The trainer sums the chunks' gradients as they finish, on whichever thread finished: in double,
// a batch split into 13 chunks (the last of 2 rows) over three threads takes the same steps as the
// batch in one chunk, up to rounding; a chunk left out or added twice would move the weights by
// far more.
TEST(training_sums_the_gradient_of_every_chunk) {
  const MlpShape shape{2, 16, 2, 4};
  const std::vector<double> sigma = {4, 2, 1, 0.5}, inv_sigma = {0.25, 0.5, 1, 2};
  const auto data = random_values<double>(2 * 200, 31, -3, 3);
  auto run = [&](int threads, int64_t chunk) {
    CpuOps<double> ops(threads, chunk);
    Mlp<double> mlp(shape, inv_sigma.data());
    DsmTrainer<double> trainer(ops, mlp, sigma.data(), sigma);
    trainer.set_data(data.data(), 200, 2);
    const int64_t p = mlp.param_count();
    TrainState<double> state(ops, p);
    state.params.upload(random_values<double>(p, 32, -0.5, 0.5).data(), p);
    const std::vector<double> zeros(static_cast<size_t>(p), 0.0);
    for (Array<double>* a : {&state.adam_m, &state.adam_v, &state.ema}) a->upload(zeros.data(), p);
    TrainSettings ts;
    ts.batch = 50;
    ts.seed = 3;
    std::vector<double> params(static_cast<size_t>(p));
    for (int t = 0; t < 3; ++t) trainer.step(state, ts);
    trainer.report(state);
    state.params.download(params.data(), p);
    return params;
  };
  const auto whole = run(1, 1000), chunked = run(3, 4);
  double worst_change = 0;
  for (size_t i = 0; i < whole.size(); ++i) worst_change = std::max(worst_change, std::fabs(whole[i] - chunked[i]));
  CHECK(worst_change < 1e-12, "13 chunks moved a weight " << worst_change << " away from one chunk's step");
}

TEST(training_is_identical_for_any_thread_count) {
  auto run = [](int threads) {
    ModelConfig c;
    c.sigmas = {20, 8, 3, 1};
    c.seed = 7;
    c.threads = threads;
    Model m(c);
    auto data = random_values<float>(2 * 500, 5, -6, 6);
    m.set_data(data.data(), 500, 2);
    m.train(20, 300, 10, [](const TrainProgress&) { return true; });
    return m.tensors();
  };
  const auto one = run(1), two = run(2);
  CHECK(one.size() == two.size(), "tensor count");
  for (size_t i = 0; i < one.size(); ++i) CHECK(one[i].data == two[i].data, "tensor " << one[i].name << " differs");
}
