// C[M×N] = (accumulate ? C : 0) + A · B on the GPU, FP32, with A(m, k) = a[m·a_row + k·a_col] and
// B(k, n) = b[k·b_row + n·b_col]: every layout of the MLP's products without a transpose.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace ncsn {

struct GpuGemm {
  float* c;
  int64_t ldc;
  const float* a;
  int64_t a_row, a_col;
  const float* b;
  int64_t b_row, b_col;
  int64_t m, n, k;
  bool accumulate;
  // Slices of K (gemm_gpu_k_sliced): slice z sums rows [z·k_slice, (z + 1)·k_slice) of K into its
  // own M × ldc product at c + z·m·ldc. 0: K whole.
  int64_t k_slice = 0;
};

// tf32: multiply on the tensor cores with TF32 inputs (10-bit mantissa) and FP32 accumulation, on
// GPUs of compute capability 8.0 and later; elsewhere, when false, and for products of at most 16
// columns (a warp per row then), plain FP32.
void gemm_gpu(const GpuGemm& g, cudaStream_t stream, bool tf32 = false);

// A product of a long K over few tiles of C (a weight gradient summed over a batch) would leave
// most of the GPU idle. gemm_k_slices says into how many slices of K to cut it (1: none);
// gemm_gpu_k_sliced computes each slice's product into `partial` (slices × M × N floats) and then
// adds them in slice order into C, so the result does not depend on the order blocks finish in.
int64_t gemm_k_slices(const GpuGemm& g);
void gemm_gpu_k_sliced(const GpuGemm& g, float* partial, int64_t slices, cudaStream_t stream, bool tf32);

// out[i] = Σ_s partial[s·n + i] for i < n, in slice order.
void add_slices(float* out, const float* partial, int64_t slices, int64_t n, cudaStream_t stream);

}  // namespace ncsn
