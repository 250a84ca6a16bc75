// exp and log in plain float arithmetic (Cephes' polynomials), always inlined and free of libm
// calls, so that the element-wise loops that use them vectorise in every target clone; double uses
// the C library, for the gradient checks.
#pragma once
#include <cmath>
#include <cstdint>

namespace ncsn::vm {

#define NCSN_VM inline __attribute__((always_inline))

NCSN_VM float max_f(float a, float b) { return a > b ? a : b; }
NCSN_VM float abs_f(float a) { return a < 0.0f ? -a : a; }

NCSN_VM float exp_f(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  // round x/ln2 to the nearest integer by the 1.5·2²³ shift, which vectorises where floor may not
  const float shift = 12582912.0f;
  const float n = (x * 1.44269504088896341f + shift) - shift;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + (r + 1.0f);
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

// log for x in [1, 2], which is all softplus needs.
NCSN_VM float log_1to2(float x) {
  const bool high = x > 1.41421356237f;  // use m = x/2 in [0.707, 1) and e = 1
  float m = high ? x * 0.5f : x;
  const float e = high ? 1.0f : 0.0f;
  m = m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y = y - e * 2.12194440e-4f;
  y = y - 0.5f * z;
  return (m + y) + e * 0.693359375f;
}

// softplus(z) = max(z, 0) + log1p(exp(-|z|)), accurate for large |z| of either sign.
NCSN_VM float softplus(float z) {
  const float y = exp_f(-abs_f(z));
  const float u = 1.0f + y;
  // log1p(y) = log(u) · y / (u − 1) corrects the rounding of 1 + y (Goldberg's trick)
  const float l = u == 1.0f ? y : log_1to2(u) * (y / (u - 1.0f));
  return max_f(z, 0.0f) + l;
}
NCSN_VM double softplus(double z) { return std::fmax(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

// ELU(x) = x > 0 ? x : exp(x) − 1. For float, exp − 1 loses relative accuracy as x → 0⁻ but its
// absolute error stays at the rounding of 1, about 6e-8, and libm's expm1 would not vectorise.
NCSN_VM float elu(float x) { return x > 0.0f ? x : exp_f(x) - 1.0f; }
NCSN_VM double elu(double x) { return x > 0.0 ? x : std::expm1(x); }

NCSN_VM float sigmoid(float z) {
  const float e = exp_f(-abs_f(z));
  const float r = 1.0f / (1.0f + e);
  return z >= 0.0f ? r : e * r;
}
NCSN_VM double sigmoid(double z) {
  const double e = std::exp(-std::fabs(z));
  return z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

}  // namespace ncsn::vm
