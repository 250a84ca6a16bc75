// The op harness's timing mode over the image ops at the U-Net's sizes (W2): the median time of
// each op's forward and backward, one JSON line each, on one CPU thread at the CPU's size (C = 32,
// a chunk of 8 MNIST images) and, where a GPU is usable, at the GPU's (C = 64, a batch of 128) in
// each precision it has.
//   ncsn_image_op_bench [repeats=7]
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "../tests/image_op_cases.h"

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
    }
  }
#endif
  return 0;
}
