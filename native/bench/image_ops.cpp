// The op harness's timing mode over the image ops at the U-Net's sizes (W2, C = 32, a CPU chunk of
// 8 MNIST images): the median time of each op's forward and backward, one JSON line each, on one
// CPU thread and, where a GPU is usable and has the ops, on the GPU.
//   ncsn_image_op_bench [repeats=7]
#include <cstdio>
#include <cstdlib>
#include <memory>
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

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 7;
  const int64_t n = 8, C = 32;
  // each distinct shape the U-Net runs, once
  const auto table = std::make_tuple(
      std::vector<Conv3x3>{{n, 1, C, 28, 28, 1}, {n, C, C, 28, 28, 1}, {n, C, 2 * C, 28, 28, 2}, {n, 2 * C, 2 * C, 14, 14, 1},
                           {n, 2 * C, 2 * C, 14, 14, 2}, {n, 2 * C, 2 * C, 7, 7, 1}, {n, 4 * C, 2 * C, 14, 14, 1},
                           {n, 3 * C, C, 28, 28, 1}, {n, C, 1, 28, 28, 1}},
      std::vector<CondInstanceNorm>{{n, C, 28, 28, 10}, {n, 2 * C, 14, 14, 10}, {n, 3 * C, 28, 28, 10}},
      std::vector<Elu>{{}}, std::vector<Upsample2Concat>{{}}, std::vector<AddInto>{{}});
  CpuOps<float> cpu(1);
  for_every_case(table, [&](const auto& c) { report("cpu", cpu, c, reps); });
#ifdef NCSN_WITH_CUDA
  if (probe_gpus().problem.empty()) {
    const std::unique_ptr<Ops<float>> gpu = make_cuda_ops(0);
    if (gpu->image_ops())
      for_every_case(table, [&](const auto& c) { report("cuda", *gpu, c, reps); });
    else
      std::printf("{\"backend\":\"cuda\",\"skipped\":\"no kernels for the image ops yet\"}\n");
  }
#endif
  return 0;
}
