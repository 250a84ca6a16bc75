// The launch shape of the element-wise kernels: one element per thread in blocks of GRID_THREADS,
// over a grid capped at 65535·32 blocks whose threads stride through what is left (GRID_STRIDE);
// and the block-wide sum that the reductions share.
#pragma once
#include <cstdint>

namespace ncsn {

constexpr int GRID_THREADS = 256;

inline unsigned grid_blocks(int64_t n) {
  const int64_t b = (n + GRID_THREADS - 1) / GRID_THREADS;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 32 ? 65535 * 32 : b));
}

// Every thread of a block of THREADS (a power of two) gets the block's sum of v, added in a tree
// whose shape depends on THREADS alone: no float atomics, so a run repeats bit for bit. `shared`
// holds THREADS doubles; a kernel may call it again with the same array.
template <int THREADS>
__device__ inline double block_sum(double v, double* shared) {
  __syncthreads();  // the previous call's readers are done with shared[0]
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int half = THREADS / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  return shared[0];
}

}  // namespace ncsn

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)
