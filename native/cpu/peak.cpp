#include "peak.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "gemm.h"
#include "isa.h"

namespace ncsn {
namespace {

typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

// ACC independent chains of acc ← acc·m + c, enough to cover the FMA units' latency × throughput,
// with the chains and the two operands all in registers. Returns FLOPs done (2 per lane per FMA).
template <typename V, int ACC>
inline __attribute__((always_inline)) double fma_chains(int64_t rounds, float* sink) {
  constexpr int lanes = sizeof(V) / sizeof(float);
  V acc[ACC];
  for (int i = 0; i < ACC; ++i) acc[i] = V{} + 0.001f * static_cast<float>(i);
  const V m = V{} + 0.999999f, c = V{} + 1e-7f;
  for (int64_t r = 0; r < rounds; ++r)
#pragma GCC unroll 32
    for (int i = 0; i < ACC; ++i) acc[i] = acc[i] * m + c;
  V total = {};
  for (int i = 0; i < ACC; ++i) total += acc[i];
  for (int l = 0; l < lanes; ++l) *sink += total[l];  // keeps the loop from being dropped
  return 2.0 * lanes * ACC * static_cast<double>(rounds);
}

#if NCSN_X86_64
__attribute__((target("arch=x86-64-v4"))) double chains_avx512(int64_t rounds, float* sink) {
  return fma_chains<v16f, 16>(rounds, sink);
}
__attribute__((target("arch=x86-64-v3"))) double chains_avx2(int64_t rounds, float* sink) {
  return fma_chains<v8f, 12>(rounds, sink);
}
#endif
double chains_base(int64_t rounds, float* sink) { return fma_chains<v4f, 12>(rounds, sink); }

double chains(int64_t rounds, float* sink) {
#if NCSN_X86_64
  switch (cpu_isa()) {
    case CpuIsa::avx512: return chains_avx512(rounds, sink);
    case CpuIsa::avx2: return chains_avx2(rounds, sink);
    default: break;
  }
#endif
  return chains_base(rounds, sink);
}

}  // namespace

double fma_peak_gflops(int threads, double seconds) {
  threads = std::max(1, threads);
  std::vector<double> rate(static_cast<size_t>(threads), 0.0);
  std::vector<float> sink(static_cast<size_t>(threads) * 16, 0.0f);  // a cache line each
  auto run = [&](int t) {
    using clock = std::chrono::steady_clock;
    const auto end = clock::now() + std::chrono::duration<double>(seconds);
    double best = 0;
    while (clock::now() < end) {
      const auto start = clock::now();
      const double flops = chains(1 << 16, &sink[static_cast<size_t>(t) * 16]);
      best = std::max(best, flops / std::chrono::duration<double>(clock::now() - start).count());
    }
    rate[static_cast<size_t>(t)] = best;
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (auto& th : pool) th.join();
  double total = 0;
  for (double r : rate) total += r;
  return total / 1e9;
}

}  // namespace ncsn
