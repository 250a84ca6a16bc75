// C[M×N] = (accumulate ? C : 0) + A · B on the CPU, one thread. A is read through strides,
// A(m, k) = a[m·a_row + k·a_col], so a transposed operand costs nothing; B is K×N with rows
// `ldb` apart and contiguous columns, the layout the register-blocked kernel streams.
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
};

void gemm(const GemmArgs<float>& g);
void gemm(const GemmArgs<double>& g);

}  // namespace ncsn
