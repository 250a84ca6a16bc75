#include "gemm.h"
#include "isa.h"
#include "simd.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

namespace ncsn {
namespace {

using namespace simd;

#define NCSN_INLINE inline __attribute__((always_inline))

template <typename T>
NCSN_INLINE const T* a_row(const GemmArgs<T>& g, int64_t i) {
  return g.a_rows ? g.a_rows[i] : g.a + i * g.a_row;
}
template <typename T>
NCSN_INLINE const T* b_row(const GemmArgs<T>& g, int64_t p) {
  return g.b_rows ? g.b_rows[p] : g.b + p * g.ldb;
}

// GemmArgs' epilogue on columns [j0, j1) of one row of C, element by element: the rows and
// columns that no register tile covers (the tiles apply it to whole vectors, with the same result).
template <typename T>
NCSN_INLINE void epilogue_row(const GemmArgs<T>& g, T* c, int64_t j0, int64_t j1) {
  if (g.bias)
    for (int64_t j = j0; j < j1; ++j) c[j] += g.bias[j];
  if (g.bias2)
    for (int64_t j = j0; j < j1; ++j) c[j] += g.bias2[j];
  if (g.softplus)
    for (int64_t j = j0; j < j1; ++j) c[j] = vm::softplus(c[j]);
}

// Rows of C that no register tile covers: one row at a time, vectorised along N.
template <typename T>
NCSN_INLINE void gemm_rows(const GemmArgs<T>& g, int64_t m0, int64_t m1, int64_t n0) {
  for (int64_t i = m0; i < m1; ++i) {
    T* c = g.c + i * g.ldc;
    if (!g.accumulate)
      for (int64_t j = n0; j < g.n; ++j) c[j] = T(0);
    const T* ai = a_row(g, i);
    for (int64_t p = 0; p < g.k; ++p) {
      const T a = ai[p * g.a_col];
      const T* b = b_row(g, p);
      for (int64_t j = n0; j < g.n; ++j) c[j] += a * b[j];
    }
    epilogue_row(g, c, n0, g.n);
  }
}

// GemmArgs' biases on a register tile, before it is stored: one load per vector of columns.
template <typename V, int MR, int NV>
NCSN_INLINE void tile_biases(const GemmArgs<float>& g, V (&acc)[MR][NV], int64_t j) {
  for (const float* bias : {g.bias, g.bias2})
    if (bias)
      for (int v = 0; v < NV; ++v) {
        V b;
        load(b, bias + j + v * lanes<V>);
        for (int r = 0; r < MR; ++r) acc[r][v] += b;
      }
}

// softplus on a stored tile, still in L1, in groups of vectors: applied to the accumulators
// before the store it ran at two thirds of this speed, their registers and the table's competing.
template <typename V, int MR, int NV>
NCSN_INLINE void tile_softplus(const GemmArgs<float>& g, int64_t i, int64_t j) {
  constexpr int group = std::gcd(MR * NV, kTableChains<V>);
  const SoftplusTable<V> softplus;
  for (int q = 0; q < MR * NV; q += group) {
    V x[group];
    for (int k = 0; k < group; ++k) load(x[k], g.c + (i + (q + k) / NV) * g.ldc + j + (q + k) % NV * lanes<V>);
    softplus.template many<group>(x);
    for (int k = 0; k < group; ++k) store(g.c + (i + (q + k) / NV) * g.ldc + j + (q + k) % NV * lanes<V>, x[k]);
  }
}

// The register tile: MR rows × NV vectors of C held in MR·NV accumulators across all of K, one
// broadcast of A and NV loads of B per row of K. MR·NV + NV + 1 fits the 16 (AVX2, SSE) or 32
// (AVX-512) vector registers. The accumulators are the FMAs in flight: two pipes of four cycles
// need eight, and AVX-512's 4×2 tile (eight) ran the convolutions' products at 57–64 % of the
// measured FMA peak where 8×2 (sixteen) runs them at 85–95 % (Zen 5, one thread). Packing A and B
// into contiguous panels, tried on top, lost more to the copies than it won.
// RowsA / RowsB: whether that operand's rows come from its pointer table (decided once per product,
// so that the plain strided form keeps its one base pointer and scaled indices in the inner loop).
template <typename V, int MR, int NV, bool RowsA, bool RowsB>
NCSN_INLINE void tile(const GemmArgs<float>& g, int64_t i, int64_t j) {
  constexpr int lanes = sizeof(V) / sizeof(float);
  V acc[MR][NV];
  const float* a = g.a + i * g.a_row;
  const float* rows[MR];
  if (RowsA)
    for (int r = 0; r < MR; ++r) rows[r] = g.a_rows[i + r];
  // Row p of K into the accumulators; the first sets them (a·b rounds as 0 + a·b does), which
  // spares zeroing the tile through memory.
  auto step = [&](int64_t p, bool first) __attribute__((always_inline)) {
    const float* bp = (RowsB ? g.b_rows[p] : g.b + p * g.ldb) + j;
    V b[NV];
    for (int v = 0; v < NV; ++v) load(b[v], bp + v * lanes);
    const float* ap = a + p * g.a_col;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const float av = RowsA ? rows[r][p * g.a_col] : ap[r * g.a_row];
      for (int v = 0; v < NV; ++v) acc[r][v] = first ? av * b[v] : acc[r][v] + av * b[v];
    }
  };
  if (g.k == 0)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  else
    step(0, true);
  for (int64_t p = 1; p < g.k; ++p) step(p, false);
  if (g.accumulate)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        V old;
        load(old, g.c + (i + r) * g.ldc + j + v * lanes);
        acc[r][v] += old;
      }
  if (g.bias || g.bias2) tile_biases(g, acc, j);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) store(g.c + (i + r) * g.ldc + j + v * lanes, acc[r][v]);
  if (g.softplus) tile_softplus<V, MR, NV>(g, i, j);
}

template <typename V, int MR, int NV, bool RowsA>
NCSN_INLINE void tail_strip(const GemmArgs<float>& g, int64_t m_tiled, int64_t j0) {
  constexpr int64_t nc = NV * static_cast<int64_t>(sizeof(V) / sizeof(float));
  const int64_t width = g.n - j0;
  thread_local std::vector<float> b_strip, c_strip;
  b_strip.assign(static_cast<size_t>(g.k * nc), 0.0f);
  c_strip.assign(static_cast<size_t>(m_tiled * nc), 0.0f);
  for (int64_t p = 0; p < g.k; ++p) std::memcpy(&b_strip[p * nc], b_row(g, p) + j0, sizeof(float) * width);
  if (g.accumulate)
    for (int64_t i = 0; i < m_tiled; ++i) std::memcpy(&c_strip[i * nc], g.c + i * g.ldc + j0, sizeof(float) * width);
  GemmArgs<float> strip = g;
  strip.b = b_strip.data();
  strip.ldb = nc;
  strip.b_rows = nullptr;
  strip.c = c_strip.data();
  strip.ldc = nc;
  strip.bias = strip.bias2 = nullptr;
  strip.softplus = false;
  for (int64_t i = 0; i < m_tiled; i += MR) tile<V, MR, NV, RowsA, false>(strip, i, 0);
  for (int64_t i = 0; i < m_tiled; ++i) {
    std::memcpy(g.c + i * g.ldc + j0, &c_strip[i * nc], sizeof(float) * width);
    epilogue_row(g, g.c + i * g.ldc, j0, g.n);
  }
}

// The rows < MR past the last whole tile, in one tile of their own: each of their accumulators is
// an FMA chain, and one row's two chains alone leave the pipes three quarters idle.
template <typename V, int MR, int NV, bool RowsA, bool RowsB>
NCSN_INLINE void rest_tile(const GemmArgs<float>& g, int64_t i, int64_t j, int64_t rows) {
  if constexpr (MR > 1) {
    if (rows == MR - 1) return tile<V, MR - 1, NV, RowsA, RowsB>(g, i, j);
    rest_tile<V, MR - 1, NV, RowsA, RowsB>(g, i, j, rows);
  }
}

template <typename V, int MR, int NV, bool RowsA, bool RowsB>
NCSN_INLINE void gemm_f32_tiles(const GemmArgs<float>& g) {
  constexpr int64_t nc = NV * static_cast<int64_t>(sizeof(V) / sizeof(float));
  const int64_t m_tiled = g.m - g.m % MR, n_tiled = g.n - g.n % nc;
  for (int64_t j = 0; j < n_tiled; j += nc) {
    for (int64_t i = 0; i < m_tiled; i += MR) tile<V, MR, NV, RowsA, RowsB>(g, i, j);
    // still in registers: through memory they ran at a quarter of the speed
    rest_tile<V, MR, NV, RowsA, RowsB>(g, m_tiled, j, g.m - m_tiled);
  }
  if (n_tiled < g.n && m_tiled > 0) tail_strip<V, MR, NV, RowsA>(g, m_tiled, n_tiled);
  gemm_rows(g, m_tiled, g.m, n_tiled);
}

template <typename V, int MR, int NV>
NCSN_INLINE void gemm_f32_body(const GemmArgs<float>& g) {
  if (g.a_rows)
    return g.b_rows ? gemm_f32_tiles<V, MR, NV, true, true>(g) : gemm_f32_tiles<V, MR, NV, true, false>(g);
  return g.b_rows ? gemm_f32_tiles<V, MR, NV, false, true>(g) : gemm_f32_tiles<V, MR, NV, false, false>(g);
}

// The tile of each kernel, MR rows × NV vectors.
constexpr int kTileRowsAvx512 = 8, kTileRowsAvx2 = 6, kTileRowsBase = 4;
#if NCSN_X86_64
__attribute__((target("arch=x86-64-v4"))) void gemm_f32_avx512(const GemmArgs<float>& g) {
  gemm_f32_body<v16f, kTileRowsAvx512, 2>(g);
}
__attribute__((target("arch=x86-64-v3"))) void gemm_f32_avx2(const GemmArgs<float>& g) {
  gemm_f32_body<v8f, kTileRowsAvx2, 2>(g);
}
#endif
void gemm_f32_base(const GemmArgs<float>& g) { gemm_f32_body<v4f, kTileRowsBase, 2>(g); }

template <typename T>
NCSN_INLINE void dot_rows(T* c, int64_t ldc, const T* a, const T* b, int64_t m, int64_t n, int64_t k) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T acc = T(0);
      for (int64_t p = 0; p < k; ++p) acc += a[i * k + p] * b[j * k + p];
      c[i * ldc + j] = acc;
    }
}

// One vector of partial sums along K, added up at the end (float sums are not reassociated by
// the compiler, so the vector form is written out).
template <typename V>
NCSN_INLINE void dot_rows_f32(float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n,
                              int64_t k) {
  constexpr int lanes = sizeof(V) / sizeof(float);
  const int64_t k_vec = k - k % lanes;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float* ai = a + i * k;
      const float* bj = b + j * k;
      V acc = {};
      for (int64_t p = 0; p < k_vec; p += lanes) {
        V x, y;
        load(x, ai + p);
        load(y, bj + p);
        acc += x * y;
      }
      float sum = 0;
      for (int l = 0; l < lanes; ++l) sum += acc[l];
      for (int64_t p = k_vec; p < k; ++p) sum += ai[p] * bj[p];
      c[i * ldc + j] = sum;
    }
}

#if NCSN_X86_64
__attribute__((target("arch=x86-64-v4"))) void gemm_dot_f32_avx512(float* c, int64_t ldc, const float* a,
                                                                    const float* b, int64_t m, int64_t n,
                                                                    int64_t k) {
  dot_rows_f32<v16f>(c, ldc, a, b, m, n, k);
}
__attribute__((target("arch=x86-64-v3"))) void gemm_dot_f32_avx2(float* c, int64_t ldc, const float* a,
                                                                  const float* b, int64_t m, int64_t n,
                                                                  int64_t k) {
  dot_rows_f32<v8f>(c, ldc, a, b, m, n, k);
}
#endif
void gemm_dot_f32_base(float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n, int64_t k) {
  dot_rows_f32<v4f>(c, ldc, a, b, m, n, k);
}

template <typename T>
void transpose_tiled(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t r, int64_t c) {
  constexpr int64_t tile = 16;
  for (int64_t i0 = 0; i0 < r; i0 += tile)
    for (int64_t j0 = 0; j0 < c; j0 += tile)
      for (int64_t i = i0; i < std::min(r, i0 + tile); ++i)
        for (int64_t j = j0; j < std::min(c, j0 + tile); ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
}

// An 8×8 block of floats transposed in registers: three rounds of shuffles, interleaving pairs of
// rows, then pairs of pairs, then the two halves (on AVX, unpck/shufps/vperm2f128). The scalar
// tiles moved one float per load and store: transposing the MLP's 128×128 weights once per chunk
// was 8 % of a W1 training step.
NCSN_INLINE void transpose_8x8(float* dst, int64_t ld_dst, const float* src, int64_t ld_src) {
  v8f r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) load(r[i], src + i * ld_src);
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shuffle(r[i], r[i + 1], v8i{0, 8, 1, 9, 4, 12, 5, 13});
    t[i + 1] = __builtin_shuffle(r[i], r[i + 1], v8i{2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (int i = 0; i < 8; i += 4)
    for (int h = 0; h < 2; ++h) {
      u[i + 2 * h] = __builtin_shuffle(t[i + h], t[i + h + 2], v8i{0, 1, 8, 9, 4, 5, 12, 13});
      u[i + 2 * h + 1] = __builtin_shuffle(t[i + h], t[i + h + 2], v8i{2, 3, 10, 11, 6, 7, 14, 15});
    }
  for (int i = 0; i < 4; ++i) {
    store(dst + i * ld_dst, __builtin_shuffle(u[i], u[i + 4], v8i{0, 1, 2, 3, 8, 9, 10, 11}));
    store(dst + (i + 4) * ld_dst, __builtin_shuffle(u[i], u[i + 4], v8i{4, 5, 6, 7, 12, 13, 14, 15}));
  }
}

NCSN_ISA_CLONES
void transpose_f32(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t r, int64_t c) {
  const int64_t r8 = r - r % 8, c8 = c - c % 8;
  for (int64_t i = 0; i < r8; i += 8)
    for (int64_t j = 0; j < c8; j += 8) transpose_8x8(dst + j * ld_dst + i, ld_dst, src + i * ld_src + j, ld_src);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = i < r8 ? c8 : 0; j < c; ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
}

}  // namespace

CpuIsa cpu_isa() {
#if NCSN_X86_64
  static const CpuIsa isa = [] {
    __builtin_cpu_init();
    if (NCSN_AVX512 && __builtin_cpu_supports("x86-64-v4")) return CpuIsa::avx512;
    if (__builtin_cpu_supports("x86-64-v3")) return CpuIsa::avx2;
    return CpuIsa::base;
  }();
  return isa;
#else
  return CpuIsa::base;
#endif
}

int64_t gemm_tile_rows(CpuIsa isa) {
  return isa == CpuIsa::avx512 ? kTileRowsAvx512 : isa == CpuIsa::avx2 ? kTileRowsAvx2 : kTileRowsBase;
}

int64_t gemm_tile_cols(CpuIsa isa) {
  constexpr int64_t kVectors = 2;  // NV of every kernel above
  return kVectors * (isa == CpuIsa::avx512 ? 16 : isa == CpuIsa::avx2 ? 8 : 4);
}

void gemm(CpuIsa isa, const GemmArgs<float>& g) {
#if NCSN_X86_64
  if (isa == CpuIsa::avx512) return gemm_f32_avx512(g);
  if (isa == CpuIsa::avx2) return gemm_f32_avx2(g);
#endif
  (void)isa;
  gemm_f32_base(g);
}

void gemm_dot(CpuIsa isa, float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n, int64_t k) {
#if NCSN_X86_64
  if (isa == CpuIsa::avx512) return gemm_dot_f32_avx512(c, ldc, a, b, m, n, k);
  if (isa == CpuIsa::avx2) return gemm_dot_f32_avx2(c, ldc, a, b, m, n, k);
#endif
  (void)isa;
  gemm_dot_f32_base(c, ldc, a, b, m, n, k);
}

namespace {
thread_local CpuIsa isa_limit = CpuIsa::avx512;
}  // namespace
CpuIsa thread_isa() { return std::min(cpu_isa(), isa_limit); }

CpuIsaLimit::CpuIsaLimit(CpuIsa isa) : previous_(isa_limit) { isa_limit = isa; }
CpuIsaLimit::~CpuIsaLimit() { isa_limit = previous_; }

void gemm(const GemmArgs<float>& g) { gemm(thread_isa(), g); }
void gemm(const GemmArgs<double>& g) { gemm_rows(g, 0, g.m, 0); }
void gemm_dot(float* c, int64_t ldc, const float* a, const float* b, int64_t m, int64_t n, int64_t k) {
  gemm_dot(thread_isa(), c, ldc, a, b, m, n, k);
}
void gemm_dot(double* c, int64_t ldc, const double* a, const double* b, int64_t m, int64_t n, int64_t k) {
  dot_rows(c, ldc, a, b, m, n, k);
}
void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t r, int64_t c) {
  transpose_f32(dst, ld_dst, src, ld_src, r, c);
}
void transpose(double* dst, int64_t ld_dst, const double* src, int64_t ld_src, int64_t r, int64_t c) {
  transpose_tiled(dst, ld_dst, src, ld_src, r, c);
}

}  // namespace ncsn
