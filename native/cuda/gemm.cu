#include "check.cuh"
#include "gemm.cuh"

namespace ncsn {
namespace {

// 64×64 tiles of C, 16 deep in K, 256 threads each computing a 4×4 block in registers.
constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;

__global__ void __launch_bounds__(256) gemm_tiled(GpuGemm g) {
  __shared__ float as[BK][BM];
  __shared__ float bs[BK][BN];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  float acc[TM][TN] = {};
  for (int64_t k0 = 0; k0 < g.k; k0 += BK) {
    // Load so that neighbouring threads read neighbouring addresses whichever way the operand runs.
    for (int i = threadIdx.x; i < BM * BK; i += blockDim.x) {
      const int mm = g.a_col == 1 ? i / BK : i % BM, kk = g.a_col == 1 ? i % BK : i / BM;
      const int64_t m = m0 + mm, k = k0 + kk;
      as[kk][mm] = (m < g.m && k < g.k) ? g.a[m * g.a_row + k * g.a_col] : 0.0f;
    }
    for (int i = threadIdx.x; i < BN * BK; i += blockDim.x) {
      const int nn = g.b_col == 1 ? i % BN : i / BK, kk = g.b_col == 1 ? i / BN : i % BK;
      const int64_t n = n0 + nn, k = k0 + kk;
      bs[kk][nn] = (n < g.n && k < g.k) ? g.b[k * g.b_row + n * g.b_col] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = as[kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) bv[j] = bs[kk][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + ty * TM + i;
    if (m >= g.m) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + tx * TN + j;
      if (n >= g.n) continue;
      float* c = g.c + m * g.ldc + n;
      *c = g.accumulate ? *c + acc[i][j] : acc[i][j];
    }
  }
}

}  // namespace

void gemm_gpu(const GpuGemm& g, cudaStream_t stream) {
  if (g.m == 0 || g.n == 0) return;
  const dim3 grid(static_cast<unsigned>((g.n + BN - 1) / BN), static_cast<unsigned>((g.m + BM - 1) / BM));
  gemm_tiled<<<grid, 256, 0, stream>>>(g);
  launch_check("gemm_tiled");
}

}  // namespace ncsn
