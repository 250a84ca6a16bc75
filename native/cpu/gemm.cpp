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

template <typename T>
NCSN_INLINE void dot_rows(T* c, int64_t ldc, const T* a, const T* b, int64_t m, int64_t n, int64_t k) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T acc = T(0);
      for (int64_t p = 0; p < k; ++p) acc += a[i * k + p] * b[j * k + p];
      c[i * ldc + j] = acc;
    }
}

// Sixteen lanes of partial sums along K, added up at the end (float sums are not reassociated by
// the compiler, so the vector form is written out).
NCSN_INLINE void dot_rows_f32(float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n,
                              int64_t k) {
  const int64_t k16 = k - k % 16;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float* ai = a + i * k;
      const float* bj = b + j * k;
      v16f acc = {};
      for (int64_t p = 0; p < k16; p += 16)
        acc += *reinterpret_cast<const v16f*>(ai + p) * *reinterpret_cast<const v16f*>(bj + p);
      float sum = 0;
      for (int l = 0; l < 16; ++l) sum += acc[l];
      for (int64_t p = k16; p < k; ++p) sum += ai[p] * bj[p];
      c[i * ldc + j] = sum;
    }
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void gemm_dot_f32(float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n, int64_t k) {
  dot_rows_f32(c, ldc, a, b, m, n, k);
}

template <typename T>
void transpose_tiled(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t r, int64_t c) {
  constexpr int64_t tile = 16;
  for (int64_t i0 = 0; i0 < r; i0 += tile)
    for (int64_t j0 = 0; j0 < c; j0 += tile)
      for (int64_t i = i0; i < std::min(r, i0 + tile); ++i)
        for (int64_t j = j0; j < std::min(c, j0 + tile); ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
}

}  // namespace

void gemm(const GemmArgs<float>& g) { gemm_f32(g); }
void gemm(const GemmArgs<double>& g) { gemm_rows(g, 0, g.m, 0); }
void gemm_dot(float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n, int64_t k) {
  gemm_dot_f32(c, ldc, a, b, m, n, k);
}
void gemm_dot(double* c, int64_t ldc, const double* a, const double* b, int64_t m, int64_t n, int64_t k) {
  dot_rows(c, ldc, a, b, m, n, k);
}
void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t r, int64_t c) {
  transpose_tiled(dst, ld_dst, src, ld_src, r, c);
}
void transpose(double* dst, int64_t ld_dst, const double* src, int64_t ld_src, int64_t r, int64_t c) {
  transpose_tiled(dst, ld_dst, src, ld_src, r, c);
}

}  // namespace ncsn
