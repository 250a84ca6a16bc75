// C[M×N] = (accumulate ? C : 0) + A · B on the CPU, one thread. A is read through strides,
// A(m, k) = a[m·a_row + k·a_col], so a transposed operand costs nothing; B is K×N with rows
// `ldb` apart and contiguous columns, the layout the register-blocked kernel streams.
// Either operand's rows may instead come from a table of pointers (a_rows[m] + k·a_col,
// b_rows[k]): a convolution then reads its input through shifted windows of one padded image in
// place of an unfolded copy nine times its size.
// C = A·B is the default; `accumulate` adds the old C, and the epilogue below follows either.
#pragma once
#include <cstdint>

namespace ncsn {

template <typename T>
struct GemmArgs {
  T* c;
  int64_t ldc;
  const T* a;
  int64_t a_row, a_col;
  const T* b;
  int64_t ldb;
  int64_t m, n, k;
  bool accumulate;
  const T* const* a_rows = nullptr;
  const T* const* b_rows = nullptr;
  // An epilogue on each finished element of C, while it is still in registers: (c + bias[j]) +
  // bias2[j], then softplus, each step where given (a hidden layer of the MLP in one pass).
  const T* bias = nullptr;
  const T* bias2 = nullptr;
  bool softplus = false;
};

void gemm(const GemmArgs<float>& g);
void gemm(const GemmArgs<double>& g);

// c[i·ldc + j] = Σ_p a[i·k + p] · b[j·k + p] for i < m, j < n: row-by-row dot products, for a
// product with few outputs per row (the score layer) where tiles along N would be mostly empty.
void gemm_dot(float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n, int64_t k);
// A linear layer with fewer outputs than this is gemm_dot's, not a product with wᵀ (matmul_forward).
constexpr int64_t kDotProductOutputs = 16;
void gemm_dot(double* c, int64_t ldc, const double* a, const double* b, int64_t m, int64_t n, int64_t k);

// The vector instruction sets the float kernels are built for, narrowest first: base is 128-bit
// vectors (SSE2 on x86-64, NEON on arm64), the others x86-64 only. gemm and gemm_dot above run on
// the widest this CPU has; the overloads taking one run its kernel (at most cpu_isa()), so the
// tests can check every kernel the machine can run.
enum class CpuIsa { base, avx2, avx512 };
CpuIsa cpu_isa();
void gemm(CpuIsa isa, const GemmArgs<float>& g);

// The widest this thread may take: cpu_isa(), or less under a CpuIsaLimit. Every hand-vectorised
// kernel (gemm, gemm_dot, softplus, the fused MLP) dispatches on it.
CpuIsa thread_isa();

// Rows of C in one register tile of the kernel for `isa`: a product of a multiple of them rows
// runs wholly on whole tiles.
int64_t gemm_tile_rows(CpuIsa isa);
// Columns of C in one register tile of the float kernel for `isa`: a product of a multiple of them
// columns runs wholly on whole tiles, where the rest would go through a copied strip.
int64_t gemm_tile_cols(CpuIsa isa);

// While it lives, the kernels on this thread take at most `isa`: the tests run whole ops on
// every kernel the CPU has (a CpuOps of one thread runs its ops on the calling thread).
class CpuIsaLimit {
 public:
  explicit CpuIsaLimit(CpuIsa isa);
  ~CpuIsaLimit();
  CpuIsaLimit(const CpuIsaLimit&) = delete;
  CpuIsaLimit& operator=(const CpuIsaLimit&) = delete;

 private:
  CpuIsa previous_;
};
void gemm_dot(CpuIsa isa, float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n, int64_t k);

// dst[j·ld_dst + i] = src[i·ld_src + j] for an r×c block of src, in cache-sized tiles.
void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t r, int64_t c);
void transpose(double* dst, int64_t ld_dst, const double* src, int64_t ld_src, int64_t r, int64_t c);

}  // namespace ncsn
