#include <mma.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "check.cuh"
#include "gemm.cuh"

namespace ncsn {
namespace {

// 64×64 tiles of C, 16 deep in K, 256 threads each computing a 4×4 block in registers.
constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;

// The rows of K that block z sums, and where its C is (GpuGemm::k_slice).
struct KSlice {
  int64_t begin, end;
  float* c;
};
__device__ __forceinline__ KSlice k_slice_of(const GpuGemm& g) {
  if (g.k_slice == 0) return {0, g.k, g.c};
  const int64_t z = blockIdx.z, begin = z * g.k_slice;
  return {begin, min(g.k, begin + g.k_slice), g.c + z * g.m * g.ldc};
}

__global__ void __launch_bounds__(256) gemm_tiled(GpuGemm g) {
  __shared__ float as[BK][BM];
  __shared__ float bs[BK][BN];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM, n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const KSlice ks = k_slice_of(g);
  float acc[TM][TN] = {};
  for (int64_t k0 = ks.begin; k0 < ks.end; k0 += BK) {
    // Load so that neighbouring threads read neighbouring addresses whichever way the operand runs.
    for (int i = threadIdx.x; i < BM * BK; i += blockDim.x) {
      const int mm = g.a_col == 1 ? i / BK : i % BM, kk = g.a_col == 1 ? i % BK : i / BM;
      const int64_t m = m0 + mm, k = k0 + kk;
      as[kk][mm] = (m < g.m && k < ks.end) ? g.a[m * g.a_row + k * g.a_col] : 0.0f;
    }
    for (int i = threadIdx.x; i < BN * BK; i += blockDim.x) {
      const int nn = g.b_col == 1 ? i % BN : i / BK, kk = g.b_col == 1 ? i / BN : i % BK;
      const int64_t n = n0 + nn, k = k0 + kk;
      bs[kk][nn] = (n < g.n && k < ks.end) ? g.b[k * g.b_row + n * g.b_col] : 0.0f;
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
      float* c = ks.c + m * g.ldc + n;
      *c = g.accumulate ? *c + acc[i][j] : acc[i][j];
    }
  }
}

// C = A·B for a product with few columns (a score layer's D outputs): a warp per row of C, its lanes
// splitting K and finishing the sums by shuffles. A 64 × 64 tile would compute 64 columns to keep
// n of them: for W1's output layer, half as many FMAs again as its hidden layer.
constexpr int NARROW_N = 16;
constexpr int NARROW_THREADS = 256;

__global__ void __launch_bounds__(NARROW_THREADS) gemm_narrow(GpuGemm g) {
  const int lane = threadIdx.x % 32;
  const int64_t m = (static_cast<int64_t>(blockIdx.x) * NARROW_THREADS + threadIdx.x) / 32;
  if (m >= g.m) return;  // the whole warp: m is the warp's
  float acc[NARROW_N] = {};
  for (int64_t k = lane; k < g.k; k += 32) {
    const float a = g.a[m * g.a_row + k * g.a_col];
#pragma unroll
    for (int n = 0; n < NARROW_N; ++n)
      if (n < g.n) acc[n] = fmaf(a, g.b[k * g.b_row + n * g.b_col], acc[n]);
  }
#pragma unroll
  for (int n = 0; n < NARROW_N; ++n) {
    if (n >= g.n) break;
    for (int off = 16; off > 0; off /= 2) acc[n] += __shfl_xor_sync(0xffffffffu, acc[n], off);
    if (lane == 0) {
      float* c = g.c + m * g.ldc + n;
      *c = g.accumulate ? *c + acc[n] : acc[n];
    }
  }
}

// The same 64×64 tiles on the tensor cores: four warps, each 32×32 of C as 2×2 WMMA fragments of
// 16×16×8 in TF32, accumulated in FP32; C goes through shared memory so edges and `accumulate` work.
__global__ void __launch_bounds__(128) gemm_tf32(GpuGemm g) {
#if __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int PAD = 4;  // keeps every fragment row 32-byte aligned and spreads the banks
  __shared__ __align__(32) float as[BM][BK + PAD];
  __shared__ __align__(32) float bs[BK][BN + PAD];
  __shared__ __align__(32) float cs[BM][BN + PAD];
  const int warp = threadIdx.x / 32, wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM, n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const KSlice ks = k_slice_of(g);
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
  for (auto& row : acc)
    for (auto& f : row) wmma::fill_fragment(f, 0.0f);
  for (int64_t k0 = ks.begin; k0 < ks.end; k0 += BK) {
    for (int i = threadIdx.x; i < BM * BK; i += blockDim.x) {
      const int mm = g.a_col == 1 ? i / BK : i % BM, kk = g.a_col == 1 ? i % BK : i / BM;
      const int64_t m = m0 + mm, k = k0 + kk;
      as[mm][kk] = wmma::__float_to_tf32((m < g.m && k < ks.end) ? g.a[m * g.a_row + k * g.a_col] : 0.0f);
    }
    for (int i = threadIdx.x; i < BN * BK; i += blockDim.x) {
      const int nn = g.b_col == 1 ? i % BN : i / BK, kk = g.b_col == 1 ? i / BN : i % BK;
      const int64_t n = n0 + nn, k = k0 + kk;
      bs[kk][nn] = wmma::__float_to_tf32((n < g.n && k < ks.end) ? g.b[k * g.b_row + n * g.b_col] : 0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &as[wm + 16 * i][kk], BK + PAD);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &bs[kk][wn + 16 * j], BN + PAD);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&cs[wm + 16 * i][wn + 16 * j], acc[i][j], BN + PAD, wmma::mem_row_major);
  __syncthreads();
  for (int i = threadIdx.x; i < BM * BN; i += blockDim.x) {
    const int mm = i / BN, nn = i % BN;
    const int64_t m = m0 + mm, n = n0 + nn;
    if (m >= g.m || n >= g.n) continue;
    float* c = ks.c + m * g.ldc + n;
    *c = g.accumulate ? *c + cs[mm][nn] : cs[mm][nn];
  }
#endif
}

// out[i] = Σ_s partial[s·n + i], in slice order.
__global__ void add_slices_k(float* out, const float* partial, int64_t slices, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int64_t j = 0; j < slices; ++j) s += partial[j * n + i];
    out[i] = s;
  }
}

// The tiles of C, times `slices` slices of K on grid.z.
void launch_tiles(const GpuGemm& g, int64_t slices, cudaStream_t stream, bool tf32) {
  // Rows (batch or particles, up to 2³¹ − 1 tiles) on grid.x; columns (layer widths) on grid.y,
  // whose limit of 65,535 tiles is 4,194,240 columns.
  const int64_t row_tiles = (g.m + BM - 1) / BM, col_tiles = (g.n + BN - 1) / BN;
  if (row_tiles > 0x7fffffff || col_tiles > 65535)
    throw std::invalid_argument("matrix product of " + std::to_string(g.m) + "×" + std::to_string(g.n) +
                                " is larger than one launch covers");
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_tiles), static_cast<unsigned>(slices));
  if (tf32) {
    gemm_tf32<<<grid, 128, 0, stream>>>(g);
    launch_check("gemm_tf32");
  } else {
    gemm_tiled<<<grid, 256, 0, stream>>>(g);
    launch_check("gemm_tiled");
  }
}

// A slice of K is at least this long: a block then does 256 × 64 × 64 FMAs for the 64 × 64 partial
// sums it writes. Slices stop where the product has this many blocks (an H100 has 132
// multiprocessors) or 64 slices, whichever comes first.
constexpr int64_t MIN_SLICE_K = 256, SLICED_BLOCKS = 256, MAX_SLICES = 64;

int64_t slice_length(const GpuGemm& g, int64_t slices) { return ((g.k + slices - 1) / slices + BK - 1) / BK * BK; }

}  // namespace

void gemm_gpu(const GpuGemm& g, cudaStream_t stream, bool tf32) {
  if (g.m == 0 || g.n == 0) return;
  if (g.n <= NARROW_N) {  // FP32 whatever the precision: it reads each input once either way
    const int64_t blocks = (g.m + NARROW_THREADS / 32 - 1) / (NARROW_THREADS / 32);
    if (blocks > 0x7fffffff) throw std::invalid_argument("matrix product of " + std::to_string(g.m) + " rows is larger than one launch covers");
    gemm_narrow<<<static_cast<unsigned>(blocks), NARROW_THREADS, 0, stream>>>(g);
    launch_check("gemm_narrow");
    return;
  }
  launch_tiles(g, 1, stream, tf32);
}

int64_t gemm_k_slices(const GpuGemm& g) {
  if (g.m == 0 || g.n == 0 || g.n <= NARROW_N || g.accumulate) return 1;
  const int64_t tiles = ((g.m + BM - 1) / BM) * ((g.n + BN - 1) / BN);
  const int64_t wanted = std::min({g.k / MIN_SLICE_K, SLICED_BLOCKS / tiles, MAX_SLICES});
  if (wanted < 2) return 1;
  const int64_t length = slice_length(g, wanted);
  return (g.k + length - 1) / length;
}

void gemm_gpu_k_sliced(const GpuGemm& g, float* partial, int64_t slices, cudaStream_t stream, bool tf32) {
  if (g.accumulate || g.n <= NARROW_N || g.ldc != g.n)
    throw std::logic_error("gemm_gpu_k_sliced: not a product gemm_k_slices splits, or C is not dense");
  GpuGemm sliced = g;
  sliced.c = partial;
  sliced.ldc = g.n;
  sliced.k_slice = slice_length(g, slices);
  const int64_t used = (g.k + sliced.k_slice - 1) / sliced.k_slice;
  launch_tiles(sliced, used, stream, tf32);
  add_slices(g.c, partial, used, g.m * g.n, stream);
}

void add_slices(float* out, const float* partial, int64_t slices, int64_t n, cudaStream_t stream) {
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 65535);
  add_slices_k<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(out, partial, slices, n);
  launch_check("add_slices");
}

}  // namespace ncsn
