// nvcuda::wmma for the emulated CUDA runtime (cuda_runtime.h). A fragment is a whole tile held by
// every thread of the warp: each thread loads, multiplies and stores all of it, and the 32 stores
// write the same values. The product accumulates in float in order of k, one fmaf at a time; the
// tensor cores' own order of additions is unspecified, so the emulation checks the tiling and the
// rounding of the inputs (TF32 to nearest with ties away from zero, BF16 to nearest even), not the
// last bit of a sum.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda_bf16.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

inline float __float_to_tf32(float v) {
  if (!std::isfinite(v)) return v;
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x1000u) & ~0x1fffu;
  std::memcpy(&v, &u, 4);
  return v;
}

template <class Use, int M, int N, int K>
struct tile_shape {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
};

inline float element_value(float v) { return v; }
inline float element_value(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  using shape = tile_shape<Use, M, N, K>;
  float v[shape::rows][shape::cols];
};

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float value) {
  for (auto& row : f.v)
    for (float& x : row) x = value;
}

template <class Use, int M, int N, int K, class T, class Layout, class E>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const E* p, unsigned ld) {
  using S = typename fragment<Use, M, N, K, T, Layout>::shape;
  constexpr bool row = std::is_same_v<Layout, row_major>;
  static_assert(row || std::is_same_v<Layout, col_major>, "a matrix fragment is row- or column-major");
  for (int i = 0; i < S::rows; ++i)
    for (int j = 0; j < S::cols; ++j) f.v[i][j] = element_value(row ? p[i * ld + j] : p[j * ld + i]);
}

template <int M, int N, int K, class T, class La, class Lb>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, La>& a,
              const fragment<matrix_b, M, N, K, T, Lb>& b, const fragment<accumulator, M, N, K, float>& c) {
  fragment<accumulator, M, N, K, float> out;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = c.v[i][j];
      for (int k = 0; k < K; ++k) s = std::fma(a.v[i][k], b.v[k][j], s);
      out.v[i][j] = s;
    }
  d = out;
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ld, layout_t layout) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) (layout == mem_row_major ? p[i * ld + j] : p[j * ld + i]) = f.v[i][j];
}

}  // namespace nvcuda::wmma
