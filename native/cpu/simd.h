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

// vm::softplus on a whole vector: each of the polynomial's coefficients is one permute of its
// eight-entry row of the table by the interval index (vpermps on AVX2 and AVX-512; two 4-lane
// vectors through one two-source shuffle on 128-bit vectors). Same arithmetic as the scalar form.
// The table's rows, each repeated to sixteen lanes, so that a row of any width is one load.
struct SoftplusRows {
  alignas(64) float v[9][16];
};
inline constexpr SoftplusRows kRows = [] {
  SoftplusRows r{};
  for (int j = 0; j < 9; ++j)
    for (int l = 0; l < 16; ++l) r.v[j][l] = vm::kSoftplusPoly[j][l % 8];
  return r;
}();

template <typename V>
struct SoftplusTable {
  using I = typename IntOf<V>::type;
  static constexpr int n = lanes<V> >= 8 ? 1 : 2;  // vectors per table row
  V row[9][n];

  NCSN_VM SoftplusTable() {
    for (int j = 0; j < 9; ++j)
      for (int k = 0; k < n; ++k) load(row[j][k], &kRows.v[j][k * lanes<V>]);
  }
  NCSN_VM void pick(V& out, int j, const I& i) const {
    if constexpr (n == 1) out = __builtin_shuffle(row[j][0], i);
    else out = __builtin_shuffle(row[j][0], row[j][1], i);
  }
  NCSN_VM void operator()(V& h, const V& z) const {
    h = z;
    many<1>(&h);
  }
  // N vectors in place, their Horner chains interleaved: one chain is nine dependent FMAs, and a
  // matrix product's epilogue has enough independent vectors to hide their latency.
  template <int N>
  NCSN_VM void many(V* x) const {
    const V zero = {};
    V t[N], u[N], p[N], c;
    I i[N];
    for (int k = 0; k < N; ++k) {
      t[k] = x[k] < zero ? -x[k] : x[k];
      i[k] = __builtin_convertvector(t[k] < 16.0f ? t[k] * 0.5f : zero, I);
      u[k] = t[k] - (__builtin_convertvector(i[k], V) * 2.0f + 1.0f);
      pick(p[k], 8, i[k]);
    }
    for (int j = 7; j >= 0; --j)
      for (int k = 0; k < N; ++k) {
        pick(c, j, i[k]);
        p[k] = p[k] * u[k] + c;
      }
    for (int k = 0; k < N; ++k) x[k] = (x[k] < zero ? zero : x[k]) + (t[k] < 16.0f ? p[k] : zero);
  }
};

}  // namespace ncsn::simd
