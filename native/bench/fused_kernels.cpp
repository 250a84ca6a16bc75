// The fused CUDA kernels of the W1 MLP timed against their arithmetic, with no profiler: each
// kernel is launched back to back on its stream, which is drained before the clock stops; the
// median of five timings is reported as one JSON line per kernel, with the fraction of the GPU's
// FP32 FMA peak (multiprocessors × FP32 lanes × 2 × the peak clock).
//   ncsn_fused_bench [particles=1000000] [batch=4096]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "core/mlp.h"
#include "cuda/cuda_backend.h"

using namespace ncsn;

namespace {

constexpr int64_t D = 2, H = 128, LEVELS = 10;

// FP32 lanes per multiprocessor: 64 on Turing and the A100, 128 on every later GPU.
int fp32_lanes(int major, int minor) { return (major == 7 || (major == 8 && minor == 0)) ? 64 : 128; }

// FLOPs: an FMA counts 2; a softplus or a sigmoid counts 4 (|z|, exp, log1p or a reciprocal, the
// select), far fewer than the instructions a full-precision exp and log1p take.
constexpr double ACTIVATION_FLOPS = 4;
constexpr double forward_fmas() { return H * D + H * H + D * H; }
constexpr double backward_fmas() { return 2 * D * H + 2 * H * H + H * D; }  // dW3, dh2, dW2, dz1, dW1

std::vector<float> uniform(size_t n, unsigned seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// Median seconds of one call of `launches`, over five timings after one warm-up.
double median_seconds(Array<float>& sync, const std::function<void()>& launches) {
  float sink = 0;
  launches();
  sync.download(&sink, 1);
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    const auto start = std::chrono::steady_clock::now();
    launches();
    sync.download(&sink, 1);  // drains the stream
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t particles = argc > 1 ? std::atoll(argv[1]) : 1000000, batch = argc > 2 ? std::atoll(argv[2]) : 4096;
  const GpuProbe& probe = probe_gpus();
  if (!probe.problem.empty()) {
    std::fprintf(stderr, "ncsn_fused_bench: no usable GPU: %s\n", probe.problem.c_str());
    return 1;
  }
  const GpuInfo& gpu = probe.devices[0];
  int clock_khz = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
  const double peak = static_cast<double>(gpu.multiprocessors) * fp32_lanes(gpu.cc_major, gpu.cc_minor) * 2.0 *
                      clock_khz * 1e3;

  auto ops = make_cuda_ops(0);
  const MlpShape shape{D, H, 2, LEVELS};
  std::vector<float> sigma(LEVELS), inv(LEVELS);
  for (int i = 0; i < LEVELS; ++i) {
    sigma[i] = static_cast<float>(20 * std::pow(0.05, i / 9.0));
    inv[i] = 1.0f / sigma[i];
  }
  Array<float> gsigma(*ops, LEVELS), ginv(*ops, LEVELS);
  gsigma.upload(sigma.data(), LEVELS);
  ginv.upload(inv.data(), LEVELS);
  Mlp<float> mlp(shape, ginv.data());
  const int64_t p = mlp.param_count();
  Array<float> params(*ops, p);
  params.upload(uniform(p, 1, -0.1f, 0.1f).data(), p);
  MlpFastPaths<float>* fast = ops->mlp_fast_paths();
  auto report = [&](const char* kernel, int64_t rows, const std::string& unavailable, const char* unit, double rate,
                    double flops) {
    if (!unavailable.empty()) {
      std::printf("{\"kernel\":\"%s\",\"skipped\":\"%s\"}\n", kernel, unavailable.c_str());
      return;
    }
    std::printf("{\"kernel\":\"%s\",\"gpu\":\"%s\",\"rows\":%lld,\"%s\":%.0f,\"flops_per_unit\":%.0f,\"tflops\":%.3f,"
                "\"fp32_peak_tflops\":%.1f,\"fraction_of_peak\":%.3f}\n",
                kernel, gpu.name.c_str(), static_cast<long long>(rows), unit, rate, flops, rate * flops / 1e12, peak / 1e12, rate * flops / peak);
  };

  // a Langevin level at σ_L, 20 steps per launch, as `bench --workload w1` samples; with `tf32`,
  // the hidden product on the tensor cores (its fraction is of the FP32 peak, for comparison)
  auto langevin = [&](const char* kernel, Ops<float>& backend) {
    const int64_t steps = 20, launches = 10;
    MlpFastPaths<float>* paths = backend.mlp_fast_paths();
    Array<float> x(backend, particles * D);
    x.upload(uniform(static_cast<size_t>(particles * D), 2, -8, 8).data(), particles * D);
    const float alpha = 0.1f;
    const std::string why = paths->langevin_unavailable(shape);
    double seconds = 0;
    if (why.empty())
      seconds = median_seconds(x, [&] {
        for (int64_t l = 0; l < launches; ++l)
          paths->langevin_level(shape, params.data(), ginv.data(), LEVELS - 1, x.mat(particles, D), steps, alpha / 2,
                                std::sqrt(alpha), 7, static_cast<uint64_t>(l * steps), 0.0f, nullptr);
      });
    report(kernel, particles, why, "particle_steps_per_s", why.empty() ? particles * steps * launches / seconds : 0,
           2 * forward_fmas() + ACTIVATION_FLOPS * 2 * H);
  };
  langevin("fused_langevin", *ops);
  if (gpu.cc_major >= 8) {
    auto tensor_cores = make_cuda_ops(0, Precision::tf32);  // the same GPU, so the same memory
    langevin("fused_langevin_tf32", *tensor_cores);
  }
  {  // a DSM training step's forward, loss and backward at W1's GPU batch
    const int64_t launches = 200;
    Array<float> xt(*ops, batch * D), noise(*ops, batch * D), loss(*ops, batch), grads(*ops, p);
    Array<int32_t> level(*ops, batch);
    xt.upload(uniform(static_cast<size_t>(batch * D), 3, -8, 8).data(), batch * D);
    noise.upload(uniform(static_cast<size_t>(batch * D), 4, -2, 2).data(), batch * D);
    std::vector<int32_t> lv(static_cast<size_t>(batch));
    for (int64_t r = 0; r < batch; ++r) lv[r] = static_cast<int32_t>(r * 7 % LEVELS);
    level.upload(lv.data(), batch);
    const std::string why = fast->training_unavailable(shape);
    double seconds = 0;
    if (why.empty())
      seconds = median_seconds(grads, [&] {
        for (int64_t l = 0; l < launches; ++l)
          fast->dsm_gradients(shape, params.data(), gsigma.data(), ginv.data(), xt.mat(batch, D), noise.mat(batch, D),
                              level.data(), 1.0f / batch, loss.data(), grads.data());
      });
    report("fused_dsm_training", batch, why, "rows_per_s", why.empty() ? batch * launches / seconds : 0,
           2 * (forward_fmas() + backward_fmas()) + ACTIVATION_FLOPS * 4 * H);
  }
  return 0;
}
