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

// log1p(y) for y in [0, 1], which is all softplus needs: y·q(y), q a degree-9 polynomial fitted
// to log1p(y)/y for the least worst relative error (Lawson's iteration on Chebyshev nodes), under
// 3 ulp with the float rounding of its evaluation. Exact as y → 0, and with no division or range
// reduction: a third of the old log-based softplus's instructions.
NCSN_VM float log1p_0to1(float y) {
  float q = -3.2440258655697107e-3f;
  q = q * y + 1.985146477818489e-2f;
  q = q * y - 5.695953965187073e-2f;
  q = q * y + 1.0603655129671097e-1f;
  q = q * y - 1.5305593609809875e-1f;
  q = q * y + 1.967593878507614e-1f;
  q = q * y - 2.4954134225845337e-1f;
  q = q * y + 3.332996368408203e-1f;
  q = q * y - 4.999990165233612e-1f;
  q = q * y + 1.0f;
  return y * q;
}

// softplus(z) = max(z, 0) + log1p(exp(-|z|)), accurate for large |z| of either sign.
NCSN_VM float softplus(float z) { return max_f(z, 0.0f) + log1p_0to1(exp_f(-abs_f(z))); }
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
