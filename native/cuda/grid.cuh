// The launch shape of the element-wise kernels: one element per thread in blocks of GRID_THREADS,
// over a grid capped at 65535·32 blocks whose threads stride through what is left (GRID_STRIDE).
#pragma once
#include <cstdint>

namespace ncsn {

constexpr int GRID_THREADS = 256;

inline unsigned grid_blocks(int64_t n) {
  const int64_t b = (n + GRID_THREADS - 1) / GRID_THREADS;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 32 ? 65535 * 32 : b));
}

}  // namespace ncsn

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)
