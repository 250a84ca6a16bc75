// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) and the
// transforms from its raw words to uniforms and normals. Everything here is plain integer and
// float arithmetic with explicit fmaf, so the CPU and CUDA backends draw the same numbers.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define NCSN_HD __host__ __device__ __forceinline__
#else
#define NCSN_HD inline
#endif

namespace ncsn {

struct Philox4 {
  uint32_t v[4];
};

NCSN_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

NCSN_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, ctr.v[0], hi0, lo0);
    mulhilo32(0xCD9E8D57u, ctr.v[2], hi1, lo1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return ctr;
}

// What a stream of draws is for. Each purpose has its own counter space, so adding draws for one
// never shifts the numbers of another, and a resumed run continues each stream exactly.
enum class RngPurpose : uint32_t {
  init_weights = 1,
  batch_index = 2,
  batch_level = 3,
  train_noise = 4,
  sample_init = 5,
  sample_noise = 6,
  user = 7,
  dequantize = 8,
  inpaint = 9,
};

// One stream: the key is the seed, the counter is (block, step_lo, step_hi, purpose).
struct RngStream {
  uint64_t seed;
  RngPurpose purpose;
  uint64_t step;
};

NCSN_HD Philox4 philox_block(const RngStream& s, uint32_t block) {
  Philox4 ctr{{block, static_cast<uint32_t>(s.step), static_cast<uint32_t>(s.step >> 32),
               static_cast<uint32_t>(s.purpose)}};
  return philox4x32_10(ctr, static_cast<uint32_t>(s.seed), static_cast<uint32_t>(s.seed >> 32));
}

// Uniform in (0, 1), never 0 nor 1: the top 24 bits k give (k + ½)·2⁻²⁴. Below ½ that is exact; above
// ½ float keeps only k·2⁻²⁴ steps, so the midpoint rounds to an even neighbour, and for the top k it
// rounds up to 1, which the min moves to the largest float below 1 (one word in 2²⁴ is affected).
NCSN_HD float uniform_open01(uint32_t u) {
  return fminf(fmaf(static_cast<float>(u >> 8), 5.9604644775390625e-8f, 2.98023223876953125e-8f),
               0.99999994039535522f);
}

// lo + (hi − lo)·u in [lo, hi], rounded once by an explicit fma: nvcc would contract the
// expression into an fma on its own and a host compiler may not, and the backends must agree.
NCSN_HD float uniform_between(float lo, float hi, uint32_t u) { return fmaf(hi - lo, uniform_open01(u), lo); }
inline double uniform_between(double lo, double hi, uint32_t u) {
  return std::fma(hi - lo, static_cast<double>(uniform_open01(u)), lo);
}

// Natural log for x in (0, 1], Cephes' logf polynomial.
NCSN_HD float log_portable(float x) {
  union {
    float f;
    uint32_t u;
  } bits{x};
  int e = static_cast<int>((bits.u >> 23) & 0xff) - 126;
  bits.u = (bits.u & 0x807fffffu) | 0x3f000000u;  // mantissa in [0.5, 1)
  float m = bits.f;
  if (m < 0.70710678118654752f) {
    e -= 1;
    m = m + m - 1.0f;
  } else {
    m = m - 1.0f;
  }
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = fmaf(y, m, -1.1514610310e-1f);
  y = fmaf(y, m, 1.1676998740e-1f);
  y = fmaf(y, m, -1.2420140846e-1f);
  y = fmaf(y, m, 1.4249322787e-1f);
  y = fmaf(y, m, -1.6668057665e-1f);
  y = fmaf(y, m, 2.0000714765e-1f);
  y = fmaf(y, m, -2.4999993993e-1f);
  y = fmaf(y, m, 3.3333331174e-1f);
  y = y * m * z;
  const float fe = static_cast<float>(e);
  y = fmaf(fe, -2.12194440e-4f, y);
  y = fmaf(z, -0.5f, y);
  float r = m + y;
  r = fmaf(fe, 0.693359375f, r);
  return r;
}

// sin and cos of 2*pi*u for u in (0, 1): the quadrant is taken from u exactly, so the
// polynomials (Cephes sinf/cosf) only see angles in [-pi/4, pi/4].
NCSN_HD void sincos_2pi_portable(float u, float& s, float& c) {
  const float t = u * 4.0f;
  const float q = floorf(t + 0.5f);
  const float a = (t - q) * 1.57079632679489662f;
  const float z = a * a;
  float sa = -1.9515295891e-4f;
  sa = fmaf(sa, z, 8.3321608736e-3f);
  sa = fmaf(sa, z, -1.6666654611e-1f);
  sa = fmaf(sa * z, a, a);
  float ca = 2.443315711809948e-5f;
  ca = fmaf(ca, z, -1.388731625493765e-3f);
  ca = fmaf(ca, z, 4.166664568298827e-2f);
  ca = fmaf(ca * z, z, fmaf(z, -0.5f, 1.0f));
  switch (static_cast<int>(q) & 3) {
    case 0: s = sa; c = ca; break;
    case 1: s = ca; c = -sa; break;
    case 2: s = -sa; c = -ca; break;
    default: s = -ca; c = sa; break;
  }
}

// Two standard normals from two words, by Box-Muller.
NCSN_HD void box_muller(uint32_t w1, uint32_t w2, float& n1, float& n2) {
  const float r = sqrtf(-2.0f * log_portable(uniform_open01(w1)));
  float s, c;
  sincos_2pi_portable(uniform_open01(w2), s, c);
  n1 = r * c;
  n2 = r * s;
}

// Four standard normals from one Philox block: Box-Muller on words 0 and 1, then on 2 and 3.
NCSN_HD void normals_from_block(const Philox4& b, float out[4]) {
  box_muller(b.v[0], b.v[1], out[0], out[1]);
  box_muller(b.v[2], b.v[3], out[2], out[3]);
}

// normals_from_block(b)[q] alone, from the one pair it needs (q in 0…3). The words are selected,
// not indexed by q (which would put b in a GPU thread's local memory), and Box-Muller runs once
// whichever pair a lane needs, so the lanes of a warp run it together.
NCSN_HD float normal_of_block(const Philox4& b, int q) {
  float n1, n2;
  box_muller(q < 2 ? b.v[0] : b.v[2], q < 2 ? b.v[1] : b.v[3], n1, n2);
  return q % 2 == 0 ? n1 : n2;
}

// An integer in [0, bound) from one word (Lemire's multiply-shift; the bias is below
// bound / 2^32, far under anything a batch of samples can show).
NCSN_HD uint32_t below(uint32_t u, uint32_t bound) {
  return static_cast<uint32_t>((static_cast<uint64_t>(u) * bound) >> 32);
}

}  // namespace ncsn
