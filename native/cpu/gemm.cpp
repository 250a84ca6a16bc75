#include "gemm.h"

#include <algorithm>
#include <cstring>

namespace ncsn {
namespace {

#define NCSN_INLINE inline __attribute__((always_inline))

// Rows of C that no 4×32 tile covers: one row at a time, vectorised along N.
template <typename T>
NCSN_INLINE void gemm_rows(const GemmArgs<T>& g, int64_t m0, int64_t m1, int64_t n0) {
  for (int64_t i = m0; i < m1; ++i) {
    T* c = g.c + i * g.ldc;
    if (!g.accumulate)
      for (int64_t j = n0; j < g.n; ++j) c[j] = T(0);
    for (int64_t p = 0; p < g.k; ++p) {
      const T a = g.a[i * g.a_row + p * g.a_col];
      const T* b = g.b + p * g.ldb;
      for (int64_t j = n0; j < g.n; ++j) c[j] += a * b[j];
    }
  }
}

typedef float v16f __attribute__((vector_size(64), aligned(4)));

// The register tile: 4 rows × 32 columns of C held in eight 16-wide vectors across all of K.
NCSN_INLINE void tile_4x32(const GemmArgs<float>& g, int64_t i, int64_t j) {
  v16f acc[4][2] = {};
  const float* a = g.a + i * g.a_row;
  for (int64_t p = 0; p < g.k; ++p) {
    const v16f* b = reinterpret_cast<const v16f*>(g.b + p * g.ldb + j);
    const v16f b0 = b[0], b1 = b[1];
    const float* ap = a + p * g.a_col;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const float av = ap[r * g.a_row];
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  for (int r = 0; r < 4; ++r) {
    v16f* c = reinterpret_cast<v16f*>(g.c + (i + r) * g.ldc + j);
    if (g.accumulate) {
      c[0] += acc[r][0];
      c[1] += acc[r][1];
    } else {
      c[0] = acc[r][0];
      c[1] = acc[r][1];
    }
  }
}

NCSN_INLINE void gemm_f32_body(const GemmArgs<float>& g) {
  const int64_t m4 = g.m - g.m % 4, n32 = g.n - g.n % 32;
  for (int64_t i = 0; i < m4; i += 4) {
    for (int64_t j = 0; j < n32; j += 32) tile_4x32(g, i, j);
    if (n32 < g.n) gemm_rows(g, i, i + 4, n32);
  }
  gemm_rows(g, m4, g.m, 0);
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void gemm_f32(const GemmArgs<float>& g) { gemm_f32_body(g); }

}  // namespace

void gemm(const GemmArgs<float>& g) { gemm_f32(g); }
void gemm(const GemmArgs<double>& g) { gemm_rows(g, 0, g.m, 0); }

}  // namespace ncsn
