// GCC vector types for the hand-vectorised CPU kernels, one per instruction set, each one register
// wide, and what they share. A type wider than the machine's registers is lowered through memory,
// dozens of times slower, so each kernel is built on the width its target has.
#pragma once
#include <cstdint>
#include <cstring>

#include "vecmath.h"

namespace ncsn::simd {

typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int32_t v16i __attribute__((vector_size(64)));

template <typename V> struct IntOf;
template <> struct IntOf<v4f> { using type = v4i; };
template <> struct IntOf<v8f> { using type = v8i; };
template <> struct IntOf<v16f> { using type = v16i; };

template <typename V>
constexpr int lanes = sizeof(V) / sizeof(float);

// Unaligned loads and stores: rows start at any float. (Through references: a vector passed by
// value would change the calling convention with the ISA, so every helper here writes through one.)
template <typename V>
NCSN_VM void load(V& v, const float* p) {
  std::memcpy(&v, p, sizeof(V));
}
template <typename V>
NCSN_VM void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// vm::piecewise_tail on whole vectors: each of the polynomial's coefficients is one permute of
// its eight-entry row by the interval index (vpermps on AVX2 and AVX-512; two 4-lane vectors
// through one two-source shuffle on 128-bit vectors). Same arithmetic as the scalar form.
// A table's rows, each repeated to sixteen lanes, so that a row of any width is one load.
struct PolyRows {
  alignas(64) float v[9][16];
};
constexpr PolyRows poly_rows(const float (&poly)[9][8]) {
  PolyRows r{};
  for (int j = 0; j < 9; ++j)
    for (int l = 0; l < 16; ++l) r.v[j][l] = poly[j][l % 8];
  return r;
}
inline constexpr PolyRows kSoftplusRows = poly_rows(vm::kSoftplusPoly);
inline constexpr PolyRows kSigmoidTailRows = poly_rows(vm::kSigmoidTailPoly);

template <typename V>
struct PiecewiseTable {
  using I = typename IntOf<V>::type;
  static constexpr int n = lanes<V> >= 8 ? 1 : 2;  // vectors per table row
  V row[9][n];

  NCSN_VM explicit PiecewiseTable(const PolyRows& rows) {
    for (int j = 0; j < 9; ++j)
      for (int k = 0; k < n; ++k) load(row[j][k], &rows.v[j][k * lanes<V>]);
  }
  NCSN_VM void pick(V& out, int j, const I& i) const {
    if constexpr (n == 1) out = __builtin_shuffle(row[j][0], i);
    else out = __builtin_shuffle(row[j][0], row[j][1], i);
  }
  // g[k] = the polynomial at t[k] ≥ 0, or 0 from 16 on, for N vectors with their Horner chains
  // interleaved: one chain is nine dependent FMAs, which independent vectors hide.
  template <int N>
  NCSN_VM void tails(const V* t, V* g) const {
    const V zero = {};
    V u[N], c;
    I i[N];
    for (int k = 0; k < N; ++k) {
      i[k] = __builtin_convertvector(t[k] < 16.0f ? t[k] * 0.5f : zero, I);
      u[k] = t[k] - (__builtin_convertvector(i[k], V) * 2.0f + 1.0f);
      pick(g[k], 8, i[k]);
    }
    for (int j = 7; j >= 0; --j)
      for (int k = 0; k < N; ++k) {
        pick(c, j, i[k]);
        g[k] = g[k] * u[k] + c;
      }
    for (int k = 0; k < N; ++k) g[k] = t[k] < 16.0f ? g[k] : zero;
  }
  // g[k] = the polynomial at |x[k]|: both functions are built from it and the sign of x.
  template <int N>
  NCSN_VM void tails_at_abs(const V* x, V* g) const {
    V t[N];
    for (int k = 0; k < N; ++k) t[k] = x[k] < V{} ? -x[k] : x[k];
    tails<N>(t, g);
  }
};

// vm::softplus on N vectors in place.
template <typename V>
struct SoftplusTable : PiecewiseTable<V> {
  NCSN_VM SoftplusTable() : PiecewiseTable<V>(kSoftplusRows) {}
  template <int N>
  NCSN_VM void many(V* x) const {
    const V zero = {};
    V g[N];
    this->template tails_at_abs<N>(x, g);
    for (int k = 0; k < N; ++k) x[k] = (x[k] < zero ? zero : x[k]) + g[k];
  }
};

// vm::sigmoid on N vectors in place.
template <typename V>
struct SigmoidTable : PiecewiseTable<V> {
  NCSN_VM SigmoidTable() : PiecewiseTable<V>(kSigmoidTailRows) {}
  template <int N>
  NCSN_VM void many(V* x) const {
    const V zero = {};
    V s[N];
    this->template tails_at_abs<N>(x, s);
    for (int k = 0; k < N; ++k) x[k] = x[k] >= zero ? 1.0f - s[k] : (x[k] < zero ? s[k] : x[k]);
  }
};

// Vectors whose Horner chains a table evaluates side by side in a streaming loop. AVX-512's 32
// registers hold the table and four chains; 16 hold the table and one, and the out-of-order core
// overlaps successive vectors (four spilled to the stack there: one took AVX2's W1 sampling from
// 36 to 47 % of its FMA ceiling).
template <typename V>
constexpr int kTableChains = lanes<V> < 16 ? 1 : 4;

}  // namespace ncsn::simd
