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
};

// tf32: multiply on the tensor cores with TF32 inputs (10-bit mantissa) and FP32 accumulation, on
// GPUs of compute capability 8.0 and later; elsewhere, when false, and for products of at most 16
// columns (a warp per row then), plain FP32.
void gemm_gpu(const GpuGemm& g, cudaStream_t stream, bool tf32 = false);

}  // namespace ncsn
