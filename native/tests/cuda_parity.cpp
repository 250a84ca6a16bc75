// Every CUDA op against the CPU op on random inputs, and a short training run on both. Skipped,
// with the probe's reason, where no GPU is usable.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "check.h"
#include "core/mlp.h"
#include "core/unet.h"
#include "model/model.h"
#include "cpu/cpu_ops.h"
#include "cuda/cuda_backend.h"
#include "cuda/gemm.cuh"
#include "w1.h"

using namespace ncsn;
using test::random_values;
using Vec = std::vector<float>;

namespace {

Ops<float>& gpu() {
  const GpuProbe& p = probe_gpus();
  if (!p.problem.empty()) throw test::Skip("no usable GPU: " + p.problem);
  static std::unique_ptr<Ops<float>> ops = make_cuda_ops(0);
  return *ops;
}

CpuOps<float>& cpu() {
  static CpuOps<float> ops(1);
  return ops;
}

template <typename U>
Array<U> up(const std::vector<U>& v) {
  Array<U> a(gpu(), static_cast<int64_t>(v.size()));
  a.upload(v.data(), static_cast<int64_t>(v.size()));
  return a;
}

template <typename U>
std::vector<U> down(const Array<U>& a) {
  std::vector<U> v(static_cast<size_t>(a.size()));
  a.download(v.data(), a.size());
  return v;
}

Mat<float> mat(Vec& v, int64_t r, int64_t c) { return {v.data(), r, c}; }

// |gpu − cpu| ≤ atol + 1e-5·|cpu| everywhere (FP32 on both sides; atol covers sums of many terms).
void expect_close(const char* what, const Vec& g, const Vec& c, double atol) {
  CHECK(g.size() == c.size(), what << ": sizes differ");
  for (size_t i = 0; i < g.size(); ++i)
    CHECK(std::fabs(g[i] - c[i]) <= atol + 1e-5 * std::fabs(c[i]),
          what << "[" << i << "]: gpu " << g[i] << " vs cpu " << c[i]);
}

std::vector<int32_t> levels(size_t n, int32_t l, unsigned seed) {
  auto u = random_values<double>(n, seed, 0, l - 1e-9);
  std::vector<int32_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(u[i]);
  return out;
}

}  // namespace

TEST(cuda_philox_matches_cpu) {
  const RngStream s{1234567, RngPurpose::user, 9};
  const int64_t n = 1001;
  const uint64_t offset = 3;
  Array<float> gn(gpu(), n), gu(gpu(), n);
  Array<int32_t> gi(gpu(), n);
  gpu().random_normal(gn.mat(1, n), s, offset);
  gpu().random_uniform(gu.mat(1, n), -2.0f, 3.0f, s, offset);
  gpu().random_below(gi.data(), n, 17, s, offset);
  Vec cn(n), cu(n);
  std::vector<int32_t> ci(n);
  cpu().random_normal(mat(cn, 1, n), s, offset);
  cpu().random_uniform(mat(cu, 1, n), -2.0f, 3.0f, s, offset);
  cpu().random_below(ci.data(), n, 17, s, offset);
  CHECK(down(gi) == ci, "random_below differs");
  CHECK(down(gu) == cu, "random_uniform differs");
  // The Box-Muller transform uses only explicit fmaf and IEEE sqrt, so the bits should agree.
  const Vec g = down(gn);
  for (int64_t i = 0; i < n; ++i) {
    int32_t a, b;
    std::memcpy(&a, &g[i], 4);
    std::memcpy(&b, &cn[i], 4);
    CHECK(a == b, "normal " << i << ": gpu " << g[i] << " vs cpu " << cn[i] << " (" << std::abs(a - b) << " ulp)");
  }
}

TEST(cuda_matmul_matches_cpu) {
  // m × k inputs, n outputs: the tiles, a warp per row (n ≤ 16), and dW over batches long enough
  // to be summed in slices of K (5000 rows: 19 slices; 4096: 16)
  const int64_t shapes[][3] = {{64, 128, 128}, {513, 2, 128}, {300, 128, 2}, {37, 70, 13}, {5000, 128, 128}, {4096, 40, 64}};
  unsigned seed = 1;
  for (const auto& sh : shapes) {
    const int64_t m = sh[0], k = sh[1], n = sh[2];
    // dW = dyᵀ x as CudaOps::matmul_backward asks for it
    const int64_t slices = gemm_k_slices({nullptr, k, nullptr, 1, n, nullptr, k, 1, n, k, m, false});
    CHECK((slices > 1) == (m >= 4096), "dW over " << m << " rows in " << slices << " slices");
    Vec x = random_values<float>(m * k, seed++), w = random_values<float>(n * k, seed++), dy = random_values<float>(m * n, seed++);
    Vec y(m * n), dx(m * k), dw(n * k);
    cpu().matmul_forward(mat(y, m, n), mat(x, m, k), mat(w, n, k));
    cpu().matmul_backward(mat(dx, m, k), mat(dw, n, k), mat(dy, m, n), mat(x, m, k), mat(w, n, k));
    auto gx = up(x), gw = up(w), gdy = up(dy);
    Array<float> gy(gpu(), m * n), gdx(gpu(), m * k), gdw(gpu(), n * k);
    gpu().matmul_forward(gy.mat(m, n), gx.mat(m, k), gw.mat(n, k));
    gpu().matmul_backward(gdx.mat(m, k), gdw.mat(n, k), gdy.mat(m, n), gx.mat(m, k), gw.mat(n, k));
    auto bound = [](int64_t terms) { return static_cast<double>(terms) * std::ldexp(1.0, -22); };
    expect_close("matmul_forward", down(gy), y, bound(k));
    expect_close("matmul_backward dx", down(gdx), dx, bound(n));
    expect_close("matmul_backward dw", down(gdw), dw, bound(m));
  }
}

// dW over 5,000 rows is summed from slices held in scratch that the product releases. Recorded as
// a graph, that scratch is written again at every replay: memory allocated after the recording
// must not be given it, and a recording that hands it to memory that outlives the step is refused.
TEST(cuda_recorded_step_keeps_its_scratch_from_later_allocations) {
  gpu();
  const int64_t m = 5000, k = 128, n = 128;
  const int64_t slices = gemm_k_slices({nullptr, k, nullptr, 1, n, nullptr, k, 1, n, k, m, false});
  CHECK(slices > 1, "dW was not sliced");
  const Vec x = random_values<float>(m * k, 71), w = random_values<float>(n * k, 72), dy = random_values<float>(m * n, 73);
  Vec dx(m * k), dw(n * k), cx = x, cw = w, cdy = dy;
  cpu().matmul_backward(mat(dx, m, k), mat(dw, n, k), mat(cdy, m, n), mat(cx, m, k), mat(cw, n, k));
  auto gx = up(x), gw = up(w), gdy = up(dy);
  Array<float> gdx(gpu(), m * k), gdw(gpu(), n * k);
  auto backward = [&](uint64_t) { gpu().matmul_backward(gdx.mat(m, k), gdw.mat(n, k), gdy.mat(m, n), gx.mat(m, k), gw.mat(n, k)); };
  {
    std::unique_ptr<RecordedStep> recorded = gpu().record_step(0, backward);
    CHECK(recorded, "the product was not recorded");
    const Vec pattern = random_values<float>(slices * n * k, 74);
    auto lasting = up(pattern);  // the slices' size: the block the product released would fit
    recorded->run(1);
    CHECK(down(lasting) == pattern, "a replay wrote over memory allocated after the recording");
    expect_close("recorded dW", down(gdw), dw, static_cast<double>(m) * std::ldexp(1.0, -22));
  }
  Array<float> kept;
  std::unique_ptr<RecordedStep> refused = gpu().record_step(0, [&](uint64_t t) {
    backward(t);
    kept = Array<float>(gpu(), slices * n * k);  // takes the slices' block, and outlives the step
  });
  CHECK(!refused, "a recording whose scratch became lasting memory was kept");
}

// pc's step sizes sum row norms in partial sums that a GPU backend makes on first use and keeps.
// Made while a step is recorded, they could take a block the step released (one of about their
// size here) and refuse the recording, as one test order did; they are made before it starts.
TEST(cuda_a_step_recorded_before_any_row_norms_is_kept) {
  gpu();
  const std::unique_ptr<Ops<float>> fresh = make_cuda_ops(0);  // no row norms summed yet
  const int64_t m = 300, d = 20;
  Vec s = random_values<float>(m * d, 81), z = random_values<float>(m * d, 82), want(2);
  cpu().corrector_step_size(want.data(), mat(s, m, d), mat(z, m, d), 0.16);
  Array<float> gs(*fresh, m * d), gz(*fresh, m * d), step(*fresh, 2);
  gs.upload(s.data(), m * d);
  gz.upload(z.data(), m * d);
  std::unique_ptr<RecordedStep> recorded = fresh->record_step(0, [&](uint64_t) {
    { Array<double> released(*fresh, 300); }
    fresh->corrector_step_size(step.data(), gs.mat(m, d), gz.mat(m, d), 0.16);
  });
  CHECK(recorded, "a step whose row norms were the first was not recorded");
  recorded->run(1);
  Vec got(2);
  step.download(got.data(), 2);
  expect_close("recorded corrector step sizes", got, want, 1e-6);
}

TEST(cuda_matmul_takes_more_rows_than_grid_y_allows) {
  // 65,535 tiles of 64 rows is where grid.y ends; the op-by-op sampler reaches it at 5 M particles.
  // 17 columns: the tiled kernel's (16 and fewer take a warp per row).
  const int64_t m = 65535 * 64 + 101, k = 3, n = 17;
  Vec x = random_values<float>(m * k, 60), w = random_values<float>(n * k, 61), y(m * n);
  cpu().matmul_forward(mat(y, m, n), mat(x, m, k), mat(w, n, k));
  auto gx = up(x), gw = up(w);
  Array<float> gy(gpu(), m * n);
  gpu().matmul_forward(gy.mat(m, n), gx.mat(m, k), gw.mat(n, k));
  expect_close("matmul_forward, 4.2 M rows", down(gy), y, k * std::ldexp(1.0, -22));
}

TEST(cuda_elementwise_ops_match_cpu) {
  const int64_t m = 777, d = 128, nl = 10;
  const auto lv = levels(m, nl, 5);
  const Vec sigma = {20, 12, 7, 4, 2.5f, 1.6f, 1.2f, 1.0f, 0.5f, 0.1f};
  Vec y0 = random_values<float>(m * d, 11, -30, 30), b = random_values<float>(d, 12), e = random_values<float>(nl * d, 13);
  auto gl = up(lv);
  auto gs = up(sigma);

  Vec y = y0;
  cpu().add_bias_forward(mat(y, m, d), b.data(), mat(e, nl, d), lv.data());
  auto gy = up(y0), gb = up(b), ge = up(e);
  gpu().add_bias_forward(gy.mat(m, d), gb.data(), ge.mat(nl, d), gl.data());
  expect_close("add_bias_forward", down(gy), y, 0);

  Vec db(d), de(nl * d);
  cpu().add_bias_backward(db.data(), mat(de, nl, d), mat(y0, m, d), lv.data());
  Array<float> gdb(gpu(), d), gde(gpu(), nl * d);
  auto gy0 = up(y0);
  gpu().add_bias_backward(gdb.data(), gde.mat(nl, d), gy0.mat(m, d), gl.data());
  expect_close("add_bias_backward db", down(gdb), db, 0);
  expect_close("add_bias_backward de", down(gde), de, 0);

  Vec h(m * d), dz(m * d), dh = random_values<float>(m * d, 14);
  cpu().softplus_forward(mat(h, m, d), mat(y0, m, d));
  cpu().softplus_backward(mat(dz, m, d), mat(dh, m, d), mat(y0, m, d));
  Array<float> gh(gpu(), m * d), gdz(gpu(), m * d);
  auto gdh = up(dh);
  gpu().softplus_forward(gh.mat(m, d), gy0.mat(m, d));
  gpu().softplus_backward(gdz.mat(m, d), gdh.mat(m, d), gy0.mat(m, d));
  // the CPU leaves out log1p(exp(−|z|)) and 1/(1 + exp(|z|)) past |z| = 16 (vecmath.h); CUDA keeps them
  expect_close("softplus_forward", down(gh), h, 1.2e-7);
  expect_close("softplus_backward", down(gdz), dz, 1.2e-7);

  const int64_t dd = 3;
  Vec s = random_values<float>(m * dd, 15), x = random_values<float>(m * dd, 17);
  auto gsc = up(s), gx = up(x);
  Vec xs = x;
  cpu().scale_by_level(mat(xs, m, dd), sigma.data(), lv.data());
  gpu().scale_by_level(gx.mat(m, dd), gs.data(), gl.data());
  expect_close("scale_by_level", down(gx), xs, 0);

  {
    const double want = cpu().sum_row_norms(mat(s, m, dd)), got = gpu().sum_row_norms(gsc.mat(m, dd));
    CHECK(std::fabs(got - want) <= 1e-12 * want, "sum_row_norms: gpu " << got << " vs cpu " << want);
  }
  {
    // losses over 5,000 rows and a gradient of 7,000 values: the places span many blocks
    const int64_t b = 5000, np = 7000;
    Vec loss = random_values<float>(b, 25, 0, 10), grad = random_values<float>(np, 26);
    const auto lv5 = levels(b, 10, 27);
    auto note = [&](Ops<float>& ops, float* l, float* g, const int32_t* lev, Divergence before, uint64_t step) {
      if (&ops == &cpu()) {
        ops.note_divergence(&before, l, lev, b, g, np, step);
        return before;
      }
      auto gd = up(std::vector<Divergence>{before});
      ops.note_divergence(gd.data(), l, lev, b, g, np, step);
      return down(gd)[0];
    };
    auto both = [&](Divergence before, uint64_t step, const char* what) {
      auto gl5 = up(lv5);
      auto gloss = up(loss), ggrad = up(grad);
      const Divergence want = note(cpu(), loss.data(), grad.data(), lv5.data(), before, step),
                       got = note(gpu(), gloss.data(), ggrad.data(), gl5.data(), before, step);
      CHECK(got.step == want.step && got.first == want.first,
            "note_divergence, " << what << ": gpu step " << got.step << " first " << got.first << " vs cpu step " << want.step
                                << " first " << want.first);
      return want;
    };
    CHECK(both({}, 3, "finite").step == 0, "finite values were noted");
    grad[6543] = NAN;
    CHECK(both({}, 3, "a bad gradient").first == Divergence::gradient, "the gradient's NaN was missed");
    loss[4321] = INFINITY;
    loss[4000] = -INFINITY;
    grad[17] = NAN;
    CHECK(both({}, 3, "bad losses").first == Divergence::loss_at(4000, lv5[4000]), "not the first bad loss");
    Divergence earlier;
    earlier.step = 2;
    earlier.first = Divergence::gradient;
    CHECK(both(earlier, 3, "an earlier step").step == 2, "an earlier divergence was replaced");

    std::vector<double> sums(20, 0.5);
    Vec finite_loss = random_values<float>(b, 28, 0, 10);
    auto gsums = up(sums);
    auto gfl = up(finite_loss);
    auto gl5 = up(lv5);
    for (int rep = 0; rep < 2; ++rep) {  // twice: the sums add to what is there
      cpu().add_level_losses(sums.data(), finite_loss.data(), lv5.data(), b, 10);
      gpu().add_level_losses(gsums.data(), gfl.data(), gl5.data(), b, 10);
    }
    const auto gs2 = down(gsums);
    for (int l = 0; l < 20; ++l)
      CHECK(std::fabs(gs2[l] - sums[l]) <= 1e-12 * sums[l], "add_level_losses[" << l << "]: gpu " << gs2[l] << " vs cpu " << sums[l]);
  }

  const int64_t p = 5000;
  Vec pp = random_values<float>(p, 20), g = random_values<float>(p, 21), mm = random_values<float>(p, 22, -0.1, 0.1),
      vv = random_values<float>(p, 23, 0, 0.01), ema = random_values<float>(p, 24);
  auto gpp = up(pp), gg = up(g), gmm = up(mm), gvv = up(vv), gema = up(ema);
  AdamSettings as;
  {
    // a noted divergence leaves every value as it was
    Divergence noted;
    noted.step = 1;
    auto gnoted = up(std::vector<Divergence>{noted});
    gpu().adam_update(gpp.data(), gg.data(), gmm.data(), gvv.data(), p, as, 7, gnoted.data());
    gpu().ema_update(gema.data(), gpp.data(), p, 0.999, gnoted.data());
    CHECK(down(gpp) == pp && down(gmm) == mm && down(gvv) == vv && down(gema) == ema, "a step after a divergence moved the state");
  }
  cpu().adam_update(pp.data(), g.data(), mm.data(), vv.data(), p, as, 7, nullptr);
  gpu().adam_update(gpp.data(), gg.data(), gmm.data(), gvv.data(), p, as, 7, nullptr);
  expect_close("adam p", down(gpp), pp, 1e-7);
  // m = 0.9·m + 0.1·g cancels where the two terms nearly meet: one rounding of terms up to 0.1
  // (whether the backend contracts it into an FMA or not) is then an error of about 1e-8
  expect_close("adam m", down(gmm), mm, 3e-8);
  expect_close("adam v", down(gvv), vv, 1e-12);
  cpu().ema_update(ema.data(), pp.data(), p, 0.999, nullptr);
  gpu().ema_update(gema.data(), gpp.data(), p, 0.999, nullptr);
  expect_close("ema", down(gema), ema, 1e-7);
  cpu().accumulate(ema.data(), g.data(), p);
  gpu().accumulate(gema.data(), gg.data(), p);
  expect_close("accumulate", down(gema), ema, 1e-7);

  const int64_t rows = 100;
  const auto idx = levels(rows, static_cast<int32_t>(m), 30);
  Vec gathered(rows * dd);
  cpu().gather_rows(mat(gathered, rows, dd), mat(x, m, dd), idx.data());
  auto gidx = up(idx);
  auto gx3 = up(x);
  Array<float> gg2(gpu(), rows * dd);
  gpu().gather_rows(gg2.mat(rows, dd), gx3.mat(m, dd), gidx.data());
  expect_close("gather_rows", down(gg2), gathered, 0);
}

TEST(cuda_training_follows_the_cpu) {
  gpu();
  auto run = [](const char* device, std::vector<double>& losses) {
    ModelConfig c;
    for (int i = 0; i < 10; ++i) c.sigmas.push_back(20 * std::pow(0.05, i / 9.0));
    c.seed = 3;
    c.device = device;
    Model model(c);
    auto data = random_values<float>(2 * 4000, 8, -6, 6);
    model.set_data(data.data(), 4000, 2);
    model.train(20, 512, 1, [&](const TrainProgress& p) {
      losses.push_back(p.loss);
      return true;
    });
    return model.tensors();
  };
  std::vector<double> lg, lc;
  const auto g = run("cuda", lg), c = run("cpu", lc);
  // The same draws, the same updates; sums in another order differ in the last bits, and Adam's
  // first steps move a near-zero gradient's weight by ±lr whatever its size, hence 2·lr.
  for (size_t i = 0; i < lg.size(); ++i)
    CHECK(std::fabs(lg[i] - lc[i]) <= 1e-4 * std::fabs(lc[i]), "loss at step " << i + 1 << ": " << lg[i] << " vs " << lc[i]);
  for (size_t t = 0; t < g.size(); ++t) expect_close(g[t].name.c_str(), g[t].data, c[t].data, 2e-3);
}

// The weights of the CPU's test of the same name (ops_test.cpp): finite losses, an overflowing
// gradient at the first step. Six steps are queued before the one report, on the fused kernel and
// op by op: the five after the diverging one skip Adam and the EMA on the GPU, so every tensor of
// the checkpoint, moments and EMA included, is as it was.
TEST(cuda_a_non_finite_gradient_stops_training_before_the_weights_change) {
  gpu();
  for (const bool fused : {true, false}) {
    ModelConfig c;
    c.sigmas = {20, 8, 3, 1};
    c.device = "cuda";
    c.fused = fused;
    Model m(c);
    auto weights = m.tensors();
    for (auto& t : weights) {
      const float v = t.name == "fc2.weight" ? 1e23f : t.name == "out.bias" ? 1e17f : 0.0f;
      if (t.name.rfind("optimizer.", 0) != 0) std::fill(t.data.begin(), t.data.end(), v);
    }
    m.load_tensors(weights, 0);
    auto data = random_values<float>(2 * 500, 5, -6, 6);
    m.set_data(data.data(), 500, 2);
    std::string error;
    try {
      m.train(6, 128, 6, [](const TrainProgress&) { return true; });
    } catch (const std::exception& e) {
      error = e.what();
    }
    CHECK(error == "training diverged: non-finite gradient at step 1 (every loss in the batch was finite)",
          (fused ? "fused" : "op by op") << ": expected the gradient to stop training, got: '" << error << "'");
    CHECK(m.step() == 0, "the run stood at step " << m.step());
    const auto after = m.tensors();
    for (size_t i = 0; i < after.size(); ++i) CHECK(after[i].data == weights[i].data, after[i].name << " changed");
  }
}

TEST(cuda_fused_langevin_matches_op_by_op) {
  gpu();
  ModelConfig c;
  for (int i = 0; i < 10; ++i) c.sigmas.push_back(20 * std::pow(0.05, i / 9.0));
  c.seed = 4;
  c.device = "cuda";
  Model model(c);
  const MlpFastPaths<float>* fast = model.fast_paths();
  CHECK(fast, "the CUDA backend offers no fused kernels");
  if (const std::string why = fast->langevin_unavailable(c.shape); !why.empty()) throw test::Skip(why);
  auto data = random_values<float>(2 * 4000, 9, -6, 6);
  model.set_data(data.data(), 4000, 2);
  model.train(200, 256, 200, [](const TrainProgress&) { return true; });
  auto run = [&](bool fused, bool denoise, int64_t report_every) {
    SampleRequest r;
    r.n = 1000;  // not a multiple of the kernel's 128 particles per block
    r.sampler.steps_per_level = 3;
    r.sampler.seed = 11;
    r.sampler.fused = fused;
    r.sampler.denoise = denoise;
    r.sampler.report_every = report_every;
    std::vector<float> out;
    model.sample(r, out, [](const SampleProgress&) { return true; });
    return out;
  };
  const int64_t before = fast->langevin_runs();
  const Vec op_by_op = run(false, false, 0);
  CHECK(fast->langevin_runs() == before, "fused: false still launched the fused kernel");
  const Vec fused = run(true, false, 0);
  CHECK(fast->langevin_runs() == before + 10, "the fused kernel ran " << fast->langevin_runs() - before << " of 10 levels");
  // the same noise and the same arithmetic in another order: close, not equal
  expect_close("fused Langevin", fused, op_by_op, 1e-3);
  expect_close("fused Langevin with denoising", run(true, true, 0), run(false, true, 0), 1e-3);
  CHECK(run(true, true, 2) == run(true, true, 0), "the fused kernel in segments of 2 steps gives other samples");
}

// --precision tf32 puts the fused sampler's hidden product on the tensor cores, its inputs rounded
// to TF32 (2⁻¹¹ relative): the same particles as the FP32 kernel's to within what that rounding
// moves them, and not bit for bit (else the tensor cores did not run).
TEST(cuda_fused_langevin_on_tensor_cores_follows_fp32) {
  gpu();
  if (probe_gpus().devices[0].cc_major < 8) throw test::Skip("the GPU has no TF32 tensor cores (compute capability < 8.0)");
  ModelConfig c;
  for (int i = 0; i < 10; ++i) c.sigmas.push_back(20 * std::pow(0.05, i / 9.0));
  c.seed = 4;
  c.device = "cuda";
  Model fp32(c);
  c.precision = Precision::tf32;
  Model tf32(c);
  if (const std::string why = tf32.fast_paths()->langevin_unavailable(c.shape); !why.empty()) throw test::Skip(why);
  auto data = random_values<float>(2 * 4000, 9, -6, 6);
  fp32.set_data(data.data(), 4000, 2);
  fp32.train(200, 256, 200, [](const TrainProgress&) { return true; });
  tf32.load_tensors(fp32.tensors(), fp32.step());
  auto run = [](Model& model) {
    SampleRequest r;
    r.n = 300;  // the first 300 of the 1,000 the bound below was measured on (TF32 is slow to emulate)
    r.sampler.steps_per_level = 3;
    r.sampler.seed = 11;
    r.sampler.denoise = true;
    std::vector<float> out;
    model.sample(r, out, [](const SampleProgress&) { return true; });
    return out;
  };
  const int64_t before = tf32.fast_paths()->langevin_runs();
  const Vec on_tensor_cores = run(tf32), in_fp32 = run(fp32);
  CHECK(tf32.fast_paths()->langevin_runs() == before + 10, "the fused kernel did not sample every level");
  CHECK(on_tensor_cores != in_fp32, "the TF32 samples are the FP32 kernel's bit for bit");
  // Measured in the emulation (bench/emulate-cuda.sh, which rounds to TF32 as the GPU does), with
  // sampler seeds 1, 2, 3 and 11: at most 3.5e-3 to 5.0e-3 of 1 + |x| (3.1e-3 with seed 11 and no
  // denoising step). The GPU adds in another order, a smaller term. Three times the largest:
  for (size_t i = 0; i < in_fp32.size(); ++i)
    CHECK(std::fabs(on_tensor_cores[i] - in_fp32[i]) <= 1.5e-2 * (1 + std::fabs(in_fp32[i])),
          "particle coordinate " << i << ": " << on_tensor_cores[i] << " on the tensor cores, " << in_fp32[i] << " in FP32");
}

TEST(cuda_pc_sampler_follows_the_cpu) {
  gpu();
  auto run = [](const char* device) {
    Model model(test::exact_w1(device));
    SampleRequest r;
    r.n = 1000;
    r.sampler.kind = SamplerKind::pc;
    r.sampler.steps_per_level = 2;
    r.sampler.seed = 12;
    r.sampler.denoise = true;
    std::vector<float> out;
    model.sample(r, out, [](const SampleProgress&) { return true; });
    return out;
  };
  // The same draws; the batch norms are summed in another order, and steps as large as σ_1² = 400
  // carry that rounding into the particles.
  expect_close("pc sampler", run("cuda"), run("cpu"), 1e-2);
}

TEST(cuda_inpainting_follows_the_cpu) {
  gpu();
  auto run = [](const char* device) {
    Model model(test::exact_w1(device));
    const std::vector<float> image = {5, 0}, mask = {1, 0};
    SampleRequest r;
    r.n = 1000;
    r.sampler.steps_per_level = 5;
    r.sampler.seed = 13;
    r.known = &image;
    r.mask = &mask;
    std::vector<float> out;
    model.sample(r, out, [](const SampleProgress&) { return true; });
    return out;
  };
  // the same draws and the same per-row arithmetic: the known pixel exact, the rest close
  const Vec g = run("cuda"), c = run("cpu");
  for (size_t i = 0; i < g.size(); i += 2) CHECK(g[i] == 5.0f, "the known pixel became " << g[i]);
  expect_close("inpainting", g, c, 1e-3);
}

TEST(cuda_fused_dsm_gradients_match_op_by_op) {
  Ops<float>& ops = gpu();
  // every data dimension the kernel takes has its own split of the score layer's lanes (8 for D ≤ 2,
  // 4 for D = 3 and 4, 2 for D = 8); D = 2 and 3 also at the large batch
  for (int64_t d : {2, 3, 1, 8}) {
    const MlpShape shape{d, 128, 2, 10};
    Vec sigma(10), inv(10);
    for (int i = 0; i < 10; ++i) {
      sigma[i] = static_cast<float>(20 * std::pow(0.05, i / 9.0));
      inv[i] = 1.0f / sigma[i];
    }
    auto gsigma = up(sigma), ginv = up(inv);
    Mlp<float> mlp(shape, ginv.data());
    if (const std::string why = ops.mlp_fast_paths()->training_unavailable(shape); !why.empty()) throw test::Skip(why);
    // 333 rows: one partial tile per block; 40,001: more tiles than the GPU holds blocks, so each
    // block adds several tiles into its gradient, and the last tile is partial
    for (const int64_t b : {int64_t(333), int64_t(40001)}) {
    if (b > 333 && d != 2 && d != 3) continue;
    const int64_t p = mlp.param_count();
    auto gparams = up(random_values<float>(p, 40, -0.1, 0.1));
    auto gxt = up(random_values<float>(b * d, 41, -8, 8)), gz = up(random_values<float>(b * d, 42, -2, 2));
    auto glevel = up(levels(b, 10, 43));
    Array<float> loss_fused(ops, b), grad_fused(ops, p), loss_ops(ops, b), grad_ops(ops, p);
    const float scale = 1.0f / b;
    CHECK(mlp.fused_dsm_gradients(ops, gparams.data(), gsigma.data(), gxt.mat(b, d), gz.mat(b, d), glevel.data(), scale,
                                  loss_fused.data(), grad_fused.data()),
          "the fused path declined the W1 shape");
    mlp.reserve(ops, b);
    Array<float> s(ops, b * d), ds(ops, b * d);
    mlp.score(ops, 0, s.mat(b, d), gxt.mat(b, d), glevel.data(), gparams.data());
    ops.dsm_loss(loss_ops.data(), ds.mat(b, d), s.mat(b, d), gz.mat(b, d), gsigma.data(), glevel.data(), scale);
    mlp.backward(ops, 0, ds.mat(b, d), gxt.mat(b, d), glevel.data(), gparams.data(), grad_ops.data());
    expect_close("fused DSM loss", down(loss_fused), down(loss_ops), 1e-5);
    // sums over b rows in two orders: the bound grows with the batch
    expect_close("fused DSM gradient", down(grad_fused), down(grad_ops), 1e-6 * std::max<double>(1, b / 333.0));
    }
  }
}

TEST(cuda_fused_training_repeats_bit_for_bit) {
  gpu();
  auto run = [] {
    ModelConfig c;
    for (int i = 0; i < 10; ++i) c.sigmas.push_back(20 * std::pow(0.05, i / 9.0));
    c.seed = 5;
    c.device = "cuda";
    Model model(c);
    if (const std::string why = model.fast_paths()->training_unavailable(c.shape); !why.empty()) throw test::Skip(why);
    auto data = random_values<float>(2 * 4000, 10, -6, 6);
    model.set_data(data.data(), 4000, 2);
    const int64_t before = model.fast_paths()->training_runs(), replays_before = model.graph_replays();
    model.train(30, 20000, 30, [](const TrainProgress&) { return true; });  // 1,250 tiles a step
    // graphs are on: the kernel's launch is recorded once (a capture runs nothing) and every step
    // replays it; where the recording fails, every step launches it
    const int64_t runs = model.fast_paths()->training_runs() - before, replays = model.graph_replays() - replays_before;
    CHECK(replays == 30 ? runs == 1 : runs == 30 && replays == 0,
          "the fused training kernel ran in " << runs << " launched and " << replays << " replayed steps of 30");
    return model.tensors();
  };
  const auto a = run(), b = run();
  for (size_t t = 0; t < a.size(); ++t) CHECK(a[t].data == b[t].data, a[t].name << " differs between two runs");
}

TEST(cuda_models_on_two_gpus_from_pool_threads) {
  gpu();
  if (probe_gpus().devices.size() < 2 || !probe_gpus().devices[1].usable) throw test::Skip("needs two usable GPUs");
  // Each model trains on a thread whose current device is the other GPU, as a libuv pool thread
  // may be; both must match a model trained alone on the CPU.
  auto train = [](const char* device, int other, std::vector<NamedTensor>& out) {
    ModelConfig c;
    for (int i = 0; i < 10; ++i) c.sigmas.push_back(20 * std::pow(0.05, i / 9.0));
    c.seed = 6;
    c.device = device;
    Model model(c);
    auto data = random_values<float>(2 * 4000, 12, -6, 6);
    std::thread worker([&] {
      ModelConfig elsewhere = c;
      elsewhere.device = "cuda:" + std::to_string(other);
      const Model scratch(elsewhere);  // makes the other GPU this thread's current device
      model.set_data(data.data(), 4000, 2);
      model.train(20, 512, 20, [](const TrainProgress&) { return true; });
      out = model.tensors();
    });
    worker.join();
  };
  std::vector<NamedTensor> g0, g1, c;
  train("cuda:0", 1, g0);
  train("cuda:1", 0, g1);
  train("cpu", 0, c);
  for (size_t t = 0; t < c.size(); ++t) {
    expect_close(("cuda:0 " + c[t].name).c_str(), g0[t].data, c[t].data, 2e-3);
    expect_close(("cuda:1 " + c[t].name).c_str(), g1[t].data, c[t].data, 2e-3);
  }
}

TEST(cuda_tf32_matmul_within_its_bound) {
  gpu();
  const GpuProbe& p = probe_gpus();
  if (p.devices[0].cc_major < 8) throw test::Skip("TF32 needs compute capability 8.0");
  auto tf32 = make_cuda_ops(0, Precision::tf32);
  const int64_t m = 300, k = 128, n = 128;
  Vec x = random_values<float>(m * k, 50), w = random_values<float>(n * k, 51), y(m * n);
  cpu().matmul_forward(mat(y, m, n), mat(x, m, k), mat(w, n, k));
  Array<float> gx(*tf32, m * k), gw(*tf32, n * k), gy(*tf32, m * n);
  gx.upload(x.data(), m * k);
  gw.upload(w.data(), n * k);
  tf32->matmul_forward(gy.mat(m, n), gx.mat(m, k), gw.mat(n, k));
  Vec out(m * n);
  gy.download(out.data(), m * n);
  // TF32 keeps 10 mantissa bits of each input: with inputs in [−1, 1], |error| ≤ K·2⁻¹⁰
  for (int64_t i = 0; i < m * n; ++i)
    CHECK(std::fabs(out[i] - y[i]) <= k * std::ldexp(1.0, -10), "tf32 matmul[" << i << "]: " << out[i] << " vs " << y[i]);
}

namespace {
// 64 copies of two 8×8 images (as unet_test.cpp trains on the CPU) and a U-Net of C = 4 on them.
ModelConfig small_unet(const char* device) {
  ModelConfig c;
  c.kind = "unet";
  c.unet = UNetShape{1, 8, 8, 4, 0};
  c.sigmas = {1.0, 0.3, 0.1};
  c.seed = 7;
  c.device = device;
  c.threads = 1;
  return c;
}

Vec two_images() {
  Vec data(64 * 64);
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t i = 0; i < 64; ++i) data[r * 64 + i] = ((i / 8 < 4) == (r % 2 == 0)) ? 1.0f : 0.0f;
  return data;
}

std::vector<NamedTensor> train_small_unet(const char* device, std::vector<double>& losses, bool graphs = true,
                                          int64_t* replayed = nullptr) {
  ModelConfig config = small_unet(device);
  config.graphs = graphs;
  Model model(config);
  const int64_t before = model.graph_replays();
  const Vec data = two_images();
  model.set_data(data.data(), 64, 64);
  model.train(5, 16, 1, [&](const TrainProgress& p) {
    losses.push_back(p.loss);
    return true;
  });
  if (replayed) *replayed = model.graph_replays() - before;
  return model.tensors();
}
}  // namespace

TEST(cuda_unet_gradients_match_the_cpu) {
  Ops<float>& ops = gpu();
  const UNetShape shape{2, 8, 8, 4, 3};  // two image channels, C = 4, three levels
  UNet<float> on_gpu(shape), on_cpu(shape);
  const int64_t n = 6, d = on_gpu.data_dim(), p = on_gpu.param_count();
  Vec params = random_values<float>(static_cast<size_t>(p), 1, -0.5, 0.5);
  for (const ParamTensor& t : on_gpu.layout())  // γ and α near 1, as the initialiser draws them
    if (t.init == ParamInit::norm_embed)
      for (int64_t i = 0; i < t.size; ++i) {
        const int64_t col = i % t.shape[1], c = t.shape[1] / 3;
        if (col < c || col >= 2 * c) params[t.offset + i] += 1.0f;
      }
  Vec x = random_values<float>(static_cast<size_t>(n * d), 2, 0, 1), ds = random_values<float>(static_cast<size_t>(n * d), 3);
  const std::vector<int32_t> level = {2, 0, 1, 1, 0, 2};
  Vec s(n * d), grads(p);
  on_cpu.reserve(cpu(), n);
  on_cpu.score(cpu(), 0, mat(s, n, d), mat(x, n, d), level.data(), params.data());
  on_cpu.backward(cpu(), 0, mat(ds, n, d), mat(x, n, d), level.data(), params.data(), grads.data());
  auto gparams = up(params), gx = up(x), gds = up(ds);
  auto glevel = up(level);
  Array<float> gs(ops, n * d), ggrads(ops, p);
  on_gpu.reserve(ops, n);
  on_gpu.score(ops, 0, gs.mat(n, d), gx.mat(n, d), glevel.data(), gparams.data());
  on_gpu.backward(ops, 0, gds.mat(n, d), gx.mat(n, d), glevel.data(), gparams.data(), ggrads.data());
  // float sums in other orders through 20 layers
  auto largest = [](const Vec& v) {
    float m = 0;
    for (float e : v) m = std::max(m, std::fabs(e));
    return static_cast<double>(m);
  };
  expect_close("unet score", down(gs), s, 1e-5 * largest(s));
  expect_close("unet gradients", down(ggrads), grads, 1e-4 * largest(grads));
}

TEST(cuda_unet_training_follows_the_cpu) {
  gpu();
  std::vector<double> lg, lc;
  const auto g = train_small_unet("cuda", lg), c = train_small_unet("cpu", lc);
  // The same draws and the same updates; the GPU sums the batch in one chunk where the CPU takes two
  // of 8. Adam moves a weight whose gradient is near zero (a conv bias that the norm after it
  // nearly cancels) by about ±lr a step whatever its size, so weights may part by 2·lr a step.
  for (size_t i = 0; i < lg.size(); ++i)
    CHECK(std::fabs(lg[i] - lc[i]) <= 1e-3 * std::fabs(lc[i]), "loss at step " << i + 1 << ": " << lg[i] << " vs " << lc[i]);
  for (size_t t = 0; t < g.size(); ++t) expect_close(g[t].name.c_str(), g[t].data, c[t].data, 2e-3 * lg.size());
}

TEST(cuda_unet_training_repeats_bit_for_bit) {
  gpu();
  std::vector<double> la, lb;
  const auto a = train_small_unet("cuda", la), b = train_small_unet("cuda", lb);
  CHECK(la == lb, "two runs with one seed report different losses");
  for (size_t t = 0; t < a.size(); ++t) CHECK(a[t].data == b[t].data, a[t].name << " differs between two runs");
}

// A training step's draws, forward and backward recorded once and replayed with each step's
// random streams set in the graph: the same losses and weights as launching op by op, bit for bit.
TEST(cuda_unet_training_from_a_graph_equals_plain_launches_bit_for_bit) {
  gpu();
  std::vector<double> lg, lp;
  int64_t replayed = 0, launched = 0;
  const auto g = train_small_unet("cuda", lg, true, &replayed), p = train_small_unet("cuda", lp, false, &launched);
  CHECK(replayed == 5, replayed << " of 5 training steps replayed from a graph");
  CHECK(launched == 0, launched << " steps replayed with graphs turned off");
  CHECK(lg == lp, "the losses differ");
  for (size_t t = 0; t < g.size(); ++t) CHECK(g[t].data == p[t].data, g[t].name << " differs");
}

TEST(cuda_unet_sampling_follows_the_cpu) {
  gpu();
  auto run = [](const char* device) {
    Model model(small_unet(device));
    SampleRequest r;
    r.n = 10;
    r.init_low = 0;
    r.init_high = 1;
    r.sampler.steps_per_level = 3;
    r.sampler.step_lr = 1e-3;  // α_1 = 0.1
    r.sampler.seed = 14;
    r.sampler.denoise = true;
    std::vector<float> out;
    model.sample(r, out, [](const SampleProgress&) { return true; });
    return out;
  };
  expect_close("unet sampling", run("cuda"), run("cpu"), 1e-4);
}

namespace {
// A U-Net of C = 4 sampled (three levels of 4 steps, 12 particles of 8×8, denoised) straight over
// the CUDA backend by annealed Langevin or pc, with the steps replayed from a recorded graph or
// launched op by op; also returns how many steps ran from a graph.
Vec sample_unet_on_gpu(bool graphs, int64_t& replayed, bool inpaint = false, SamplerKind kind = SamplerKind::ald) {
  Ops<float>& ops = gpu();
  const UNetShape shape{1, 8, 8, 4, 3};
  UNet<float> net(shape);
  const int64_t n = 12, d = net.data_dim();
  Vec params = random_values<float>(static_cast<size_t>(net.param_count()), 5, -0.3, 0.3);
  for (const ParamTensor& t : net.layout())
    if (t.init == ParamInit::norm_embed)
      for (int64_t i = 0; i < t.size; ++i)
        if (i % t.shape[1] < t.shape[1] / 3) params[t.offset + i] += 1.0f;
  auto gparams = up(params), gx = up(random_values<float>(static_cast<size_t>(n * d), 6, 0, 1));
  SamplerSettings s;
  s.steps_per_level = 4;
  s.step_lr = 1e-3;
  s.seed = 21;
  s.denoise = true;
  s.graphs = graphs;
  s.kind = kind;
  s.sigmas = {1.0, 0.3, 0.1};
  Vec known = random_values<float>(static_cast<size_t>(n * d), 8, 0, 1), mask(d);
  for (int64_t j = 0; j < d; ++j) mask[j] = j < d / 2 ? 1.0f : 0.0f;
  auto gknown = up(known), gmask = up(mask);
  const Inpainting<float> task{gknown.mat(n, d), gmask.data()};
  const int64_t before = ops.graph_replays();
  CHECK(run_sampler(ops, net, gparams.data(), gx.mat(n, d), s, [](const SamplerPosition&) { return true; },
                    inpaint ? &task : nullptr),
        "the sampler stopped");
  replayed = ops.graph_replays() - before;
  return down(gx);
}
}  // namespace

// A Langevin step recorded once as a CUDA graph and replayed with each step's noise set in it
// gives the op-by-op launches' particles bit for bit, and the replayed path is the one that ran.
TEST(cuda_unet_sampling_from_a_graph_equals_plain_launches_bit_for_bit) {
  for (const bool inpaint : {false, true}) {
    int64_t replayed = 0, launched = 0;
    const Vec g = sample_unet_on_gpu(true, replayed, inpaint), p = sample_unet_on_gpu(false, launched, inpaint);
    CHECK(replayed == 3 * 4, (inpaint ? "inpainting: " : "") << replayed << " of 12 steps replayed from a graph");
    CHECK(launched == 0, launched << " steps replayed with graphs turned off");
    size_t differ = 0;
    for (size_t i = 0; i < g.size(); ++i) differ += std::memcmp(&g[i], &p[i], sizeof(float)) != 0;
    CHECK(differ == 0, (inpaint ? "inpainting: " : "") << differ << " of " << g.size() << " values differ");
  }
}

// pc's corrector steps, their step sizes computed on the GPU from the batch's norms, recorded once
// per level and replayed: the plain launches' particles bit for bit, every corrector step from the
// graph (the predictor steps, one a level, are launched).
TEST(cuda_unet_pc_sampling_from_a_graph_equals_plain_launches_bit_for_bit) {
  int64_t replayed = 0, launched = 0;
  const Vec g = sample_unet_on_gpu(true, replayed, false, SamplerKind::pc);
  const Vec p = sample_unet_on_gpu(false, launched, false, SamplerKind::pc);
  CHECK(replayed == 3 * 4, replayed << " of 12 corrector steps replayed from a graph");
  CHECK(launched == 0, launched << " steps replayed with graphs turned off");
  size_t differ = 0;
  for (size_t i = 0; i < g.size(); ++i) differ += std::memcmp(&g[i], &p[i], sizeof(float)) != 0;
  CHECK(differ == 0, "pc: " << differ << " of " << g.size() << " values differ");
}

// One seed, one GPU: the same particles every run (no atomics in the convolutions' or the norms'
// sums, the split-K weight gradient added in slice order), by ald and pc, with graphs and without.
TEST(cuda_unet_sampling_repeats_bit_for_bit) {
  for (const SamplerKind kind : {SamplerKind::ald, SamplerKind::pc})
    for (const bool graphs : {true, false}) {
      int64_t replayed = 0;
      const Vec a = sample_unet_on_gpu(graphs, replayed, false, kind), b = sample_unet_on_gpu(graphs, replayed, false, kind);
      CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0,
            "two runs with one seed differ (" << (kind == SamplerKind::pc ? "pc" : "ald") << ", "
                                              << (graphs ? "graphs)" : "plain launches)"));
    }
}

TEST(kernel_images_follow_cuda_compatibility_rules) {
  const std::string archs = "75-real 80-real 86-real 89-real 90-real 100-real 103-real 120-real 121-real 120-virtual";
  for (const auto& [major, minor] : std::vector<std::pair<int, int>>{{7, 5}, {8, 0}, {8, 7}, {9, 0}, {10, 0}, {12, 1}, {13, 0}})
    CHECK(kernel_image_problem(major, minor, archs).empty(), major << "." << minor << " should run this build");
  // Thor (11.0) has neither SASS of major 11 nor PTX from 11.0 or older
  CHECK(!kernel_image_problem(11, 0, archs).empty(), "11.0 cannot run this build");
  CHECK(!kernel_image_problem(9, 0, "80-real").empty(), "sm_80 code does not run on 9.0");
  CHECK(!kernel_image_problem(9, 0, "86-real").empty(), "sm_86 code does not run on 9.0");
  CHECK(kernel_image_problem(9, 0, "80").empty(), "compute_80 PTX runs on 9.0");
  CHECK(!kernel_image_problem(8, 0, "86").empty(), "sm_86 and compute_86 do not run on 8.0");
  CHECK(kernel_image_problem(9, 0, "90a-real").empty(), "sm_90a runs on 9.0");
  CHECK(!kernel_image_problem(10, 0, "90a-real").empty(), "sm_90a runs on 9.0 only");
}
