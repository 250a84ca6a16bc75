// exp and log in plain float arithmetic (Cephes' polynomials), so that the element-wise loops
// that call them vectorise; double uses the C library, for the gradient checks.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ncsn::vm {

inline float exp_f(float x) {
  x = std::fmin(std::fmax(x, -87.3f), 88.7f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = std::fma(n, -0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p * r, r, r + 1.0f);
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// log for x in [1, 2], which is all softplus needs.
inline float log_1to2(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const bool high = x > 1.41421356237f;  // use m = x/2 in [0.707, 1) and e = 1
  float m = high ? x * 0.5f : x;
  const float e = high ? 1.0f : 0.0f;
  m = m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = std::fma(y, m, -1.1514610310e-1f);
  y = std::fma(y, m, 1.1676998740e-1f);
  y = std::fma(y, m, -1.2420140846e-1f);
  y = std::fma(y, m, 1.4249322787e-1f);
  y = std::fma(y, m, -1.6668057665e-1f);
  y = std::fma(y, m, 2.0000714765e-1f);
  y = std::fma(y, m, -2.4999993993e-1f);
  y = std::fma(y, m, 3.3333331174e-1f);
  y = y * m * z;
  y = std::fma(e, -2.12194440e-4f, y);
  y = std::fma(z, -0.5f, y);
  return std::fma(e, 0.693359375f, m + y);
}

// softplus(z) = max(z, 0) + log1p(exp(-|z|)), accurate for large |z| of either sign.
inline float softplus(float z) {
  const float y = exp_f(-std::fabs(z));
  const float u = 1.0f + y;
  // log1p(y) = log(u) · y / (u − 1) corrects the rounding of 1 + y (Goldberg's trick)
  const float l = u == 1.0f ? y : log_1to2(u) * (y / (u - 1.0f));
  return std::fmax(z, 0.0f) + l;
}
inline double softplus(double z) { return std::fmax(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

inline float sigmoid(float z) {
  const float e = exp_f(-std::fabs(z));
  const float r = 1.0f / (1.0f + e);
  return z >= 0.0f ? r : e * r;
}
inline double sigmoid(double z) {
  const double e = std::exp(-std::fabs(z));
  return z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

}  // namespace ncsn::vm
