// The op harness's timing mode over the image ops at the U-Net's sizes (W2): the median time of
// each op's forward and backward, one JSON line each, on one CPU thread at the CPU's size (C = 32,
// a chunk of 8 MNIST images) and, where a GPU is usable, at the GPU's (C = 64, a batch of 128) in
// each precision it has; there also a whole Langevin step of that U-Net, replayed from a recorded
// CUDA graph and launched op by op (the launches a graph saves).
//   ncsn_image_op_bench [repeats=7]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "../tests/image_op_cases.h"
#include "core/sampler.h"
#include "core/unet.h"

using namespace ncsn;
using namespace ncsn::test;

namespace {

template <typename Case>
double case_flops(const Case&) { return 0; }
double case_flops(const Conv3x3& c) { return c.flops(); }

template <typename Case>
void report(const char* backend, Ops<float>& ops, const Case& c, int reps) {
  const auto [forward, backward] = time_case(ops, c, reps);
  const double flops = case_flops(c);
  std::printf("{\"op\":\"%s\",\"backend\":\"%s\",\"forward_ms\":%.4f,\"backward_ms\":%.4f", c.name.c_str(), backend,
              1e3 * forward, 1e3 * backward);
  if (flops > 0) std::printf(",\"forward_gflop_per_s\":%.1f,\"backward_gflop_per_s\":%.1f", flops / forward / 1e9, 2 * flops / backward / 1e9);
  std::printf("}\n");
}

// each distinct shape the U-Net runs, once
auto unet_ops(int64_t n, int64_t C) {
  return std::make_tuple(
      std::vector<Conv3x3>{{n, 1, C, 28, 28, 1}, {n, C, C, 28, 28, 1}, {n, C, 2 * C, 28, 28, 2}, {n, 2 * C, 2 * C, 14, 14, 1},
                           {n, 2 * C, 2 * C, 14, 14, 2}, {n, 2 * C, 2 * C, 7, 7, 1}, {n, 4 * C, 2 * C, 14, 14, 1},
                           {n, 3 * C, C, 28, 28, 1}, {n, C, 1, 28, 28, 1}, {n, C, C, 28, 28, 1, false, true},
                           {n, 2 * C, 2 * C, 14, 14, 1, false, true}, {n, 2 * C, 2 * C, 7, 7, 1, false, true}},
      std::vector<CondInstanceNorm>{{n, C, 28, 28, 10, true}, {n, 2 * C, 14, 14, 10, true}, {n, 3 * C, 28, 28, 10, true}},
      std::vector<Upsample2Concat>{{}}, std::vector<AddInto>{{}});
}

#ifdef NCSN_WITH_CUDA
// Milliseconds per Langevin step of W2's U-Net on n images at base width C, `steps` steps after one
// unrecorded warm-up segment, with graphs or without.
double langevin_step_ms(Ops<float>& ops, int64_t n, int64_t C, int steps, bool graphs) {
  UNet<float> net(UNetShape{1, 28, 28, C, 10});
  const int64_t d = net.data_dim();
  std::vector<float> params = random_values<float>(static_cast<size_t>(net.param_count()), 1, -0.05, 0.05);
  for (const ParamTensor& t : net.layout())
    if (t.init == ParamInit::norm_embed)
      for (int64_t i = 0; i < t.size; ++i)
        if (i % t.shape[1] < t.shape[1] / 3) params[t.offset + i] += 1.0f;
  Array<float> p(ops, net.param_count()), x(ops, n * d);
  p.upload(params.data(), net.param_count());
  const std::vector<float> start = random_values<float>(static_cast<size_t>(n * d), 2, 0, 1);
  x.upload(start.data(), n * d);
  SamplerSettings s;
  s.sigmas = {0.1};
  s.step_lr = 1e-5;
  s.graphs = graphs;
  const auto run = [&](int64_t count) {
    s.steps_per_level = count;
    annealed_langevin(ops, net, p.data(), x.mat(n, d), s, [](const SamplerPosition&) { return true; });
    float one;
    x.download(&one, 1);  // waits for the queue
  };
  run(2);
  const auto t0 = std::chrono::steady_clock::now();
  run(steps);
  return 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 7;
  CpuOps<float> cpu(1);
  for_every_case(unet_ops(8, 32), [&](const auto& c) { report("cpu", cpu, c, reps); });
#ifdef NCSN_WITH_CUDA
  const GpuProbe& p = probe_gpus();
  if (p.problem.empty()) {
    for (const Precision precision : {Precision::fp32, Precision::tf32, Precision::bf16}) {
      if (precision != Precision::fp32 && p.devices[0].cc_major < 8) continue;
      const std::unique_ptr<Ops<float>> gpu = make_cuda_ops(0, precision);
      const std::string backend = std::string("cuda ") + precision_name(precision);
      for_every_case(unet_ops(128, 64), [&](const auto& c) { report(backend.c_str(), *gpu, c, reps); });
      const int64_t before = gpu->graph_replays();
      const double graph = langevin_step_ms(*gpu, 128, 64, 20, true);
      const int64_t replayed = gpu->graph_replays() - before;
      const double launches = langevin_step_ms(*gpu, 128, 64, 20, false);
      std::printf("{\"op\":\"unet langevin step\",\"backend\":\"%s\",\"graph_ms\":%.4f,\"launches_ms\":%.4f,"
                  "\"steps_replayed\":%lld}\n",
                  backend.c_str(), graph, launches, static_cast<long long>(replayed));
    }
  }
#endif
  return 0;
}
