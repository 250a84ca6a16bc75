#include "normals.h"

#include "isa.h"

#if NCSN_X86_64
#include <initializer_list>

// Every helper below is always inlined into one of the two target functions at the end, so no
// vector crosses a call and the ABI note about vector returns does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ncsn {
namespace {

#define NCSN_INLINE inline __attribute__((always_inline))

// One lane per Philox block: F the float vector, U its 32-bit words, W the same bits as 64-bit
// lanes (the widening multiply works on the even and the odd words separately).
template <int L>
struct Lanes {
  typedef float F __attribute__((vector_size(4 * L)));
  typedef uint32_t U __attribute__((vector_size(4 * L)));
  typedef int32_t I __attribute__((vector_size(4 * L)));
  typedef uint64_t W __attribute__((vector_size(4 * L)));
};

// a·b + c: the compiler contracts it into one FMA on these targets (-ffp-contract=fast), as the
// scalar code's fmaf; every other product is kept out of a following sum by keep() below.
template <typename F>
NCSN_INLINE F fma(const F& a, const F& b, const F& c) {
  return a * b + c;
}
// An optimisation barrier: x is materialised as it is, so no later sum can absorb the product
// that made it into an FMA the scalar code does not have.
template <typename F>
NCSN_INLINE void keep(F& x) {
  asm("" : "+v"(x));
}

// mulhilo32 in every lane.
template <int L>
NCSN_INLINE void mulhilo(uint32_t m, const typename Lanes<L>::U& x, typename Lanes<L>::U& hi,
                         typename Lanes<L>::U& lo) {
  using W = typename Lanes<L>::W;
  using U = typename Lanes<L>::U;
  const W low = W{} + 0xffffffffull, mw = W{} + m;
  const W even = ((W)x & low) * mw, odd = ((W)x >> 32) * mw;
  lo = (U)((even & low) | (odd << 32));
  hi = (U)((even >> 32) | (odd & ~low));
}

// Blocks first_block … first_block + L − 1 of the stream, as four vectors of words.
template <int L>
NCSN_INLINE void philox(const RngStream& s, uint32_t first_block, typename Lanes<L>::U (&v)[4]) {
  using U = typename Lanes<L>::U;
  for (int l = 0; l < L; ++l) v[0][l] = first_block + static_cast<uint32_t>(l);
  v[1] = U{} + static_cast<uint32_t>(s.step);
  v[2] = U{} + static_cast<uint32_t>(s.step >> 32);
  v[3] = U{} + static_cast<uint32_t>(s.purpose);
  uint32_t k0 = static_cast<uint32_t>(s.seed), k1 = static_cast<uint32_t>(s.seed >> 32);
  for (int round = 0; round < 10; ++round) {
    U hi0, lo0, hi1, lo1;
    mulhilo<L>(0xD2511F53u, v[0], hi0, lo0);
    mulhilo<L>(0xCD9E8D57u, v[2], hi1, lo1);
    const U n0 = hi1 ^ v[1] ^ k0, n2 = hi0 ^ v[3] ^ k1;
    v[0] = n0;
    v[1] = lo1;
    v[2] = n2;
    v[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

template <int L>
NCSN_INLINE typename Lanes<L>::F uniform_open01(const typename Lanes<L>::U& u) {
  using F = typename Lanes<L>::F;
  using I = typename Lanes<L>::I;
  const F k = __builtin_convertvector((I)(u >> 8), F);
  const F v = fma(k, F{} + 5.9604644775390625e-8f, F{} + 2.98023223876953125e-8f);
  const F top = F{} + 0.99999994039535522f;
  return v < top ? v : top;
}

template <int L>
NCSN_INLINE typename Lanes<L>::F log_portable(const typename Lanes<L>::F& x) {
  using F = typename Lanes<L>::F;
  using U = typename Lanes<L>::U;
  using I = typename Lanes<L>::I;
  const U bits = (U)x;
  I e = (I)((bits >> 23) & 0xffu) - 126;
  F m = (F)((bits & 0x807fffffu) | 0x3f000000u);
  const auto low = m < 0.70710678118654752f;
  e = low ? e - 1 : e;
  m = low ? m + m - 1.0f : m - 1.0f;
  const F z = m * m;
  F y = F{} + 7.0376836292e-2f;
  for (const float c : {-1.1514610310e-1f, 1.1676998740e-1f, -1.2420140846e-1f, 1.4249322787e-1f, -1.6668057665e-1f,
                        2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f})
    y = fma(y, m, F{} + c);
  y = y * m * z;
  keep(y);
  const F fe = __builtin_convertvector(e, F);
  y = fma(fe, F{} - 2.12194440e-4f, y);
  y = fma(z, F{} - 0.5f, y);
  const F r = m + y;
  return fma(fe, F{} + 0.693359375f, r);
}

template <int L>
NCSN_INLINE void sincos_2pi(const typename Lanes<L>::F& u, typename Lanes<L>::F& s, typename Lanes<L>::F& c) {
  using F = typename Lanes<L>::F;
  using I = typename Lanes<L>::I;
  const F t = u * 4.0f;
  const I qi = __builtin_convertvector(t + 0.5f, I);  // floor: t + ½ is positive
  const F q = __builtin_convertvector(qi, F);
  const F a = (t - q) * 1.57079632679489662f;
  const F z = a * a;
  F sa = F{} - 1.9515295891e-4f;
  sa = fma(sa, z, F{} + 8.3321608736e-3f);
  sa = fma(sa, z, F{} - 1.6666654611e-1f);
  sa = fma(sa * z, a, a);
  F ca = F{} + 2.443315711809948e-5f;
  ca = fma(ca, z, F{} - 1.388731625493765e-3f);
  ca = fma(ca, z, F{} + 4.166664568298827e-2f);
  ca = fma(ca * z, z, fma(z, F{} - 0.5f, F{} + 1.0f));
  const I k = qi & 3;
  // quadrant 0: (sa, ca), 1: (ca, −sa), 2: (−sa, −ca), 3: (−ca, sa)
  const auto odd = (k & 1) != 0;
  const F s0 = odd ? ca : sa, c0 = odd ? -sa : ca;
  s = (k & 2) != 0 ? -s0 : s0;
  c = (k & 2) != 0 ? -c0 : c0;
}

template <int L>
NCSN_INLINE void normals(float* out, int64_t n, const RngStream& s, uint64_t offset) {
  using F = typename Lanes<L>::F;
  using U = typename Lanes<L>::U;
  const uint64_t end = offset + static_cast<uint64_t>(n);
  for (uint64_t block = offset / 4; block * 4 < end; block += L) {
    U w[4];
    philox<L>(s, static_cast<uint32_t>(block), w);
    F z[4];
    for (int p = 0; p < 2; ++p) {
      const F u1 = uniform_open01<L>(w[2 * p]), u2 = uniform_open01<L>(w[2 * p + 1]);
      F r = -2.0f * log_portable<L>(u1);
      for (int l = 0; l < L; ++l) r[l] = __builtin_sqrtf(r[l]);
      F sn, cs;
      sincos_2pi<L>(u2, sn, cs);
      z[2 * p] = r * cs;
      z[2 * p + 1] = r * sn;
    }
    // element e = 4·(block + l) + word
    for (int l = 0; l < L; ++l)
      for (int word = 0; word < 4; ++word) {
        const uint64_t e = 4 * (block + static_cast<uint64_t>(l)) + static_cast<uint64_t>(word);
        if (e >= offset && e < end) out[e - offset] = z[word][l];
      }
  }
}

}  // namespace

__attribute__((target("arch=x86-64-v4"))) void normals_avx512(float* out, int64_t n, const RngStream& s,
                                                               uint64_t offset) {
  normals<16>(out, n, s, offset);
}
__attribute__((target("arch=x86-64-v3"))) void normals_avx2(float* out, int64_t n, const RngStream& s,
                                                             uint64_t offset) {
  normals<8>(out, n, s, offset);
}

}  // namespace ncsn
#endif
