// exp and log in plain float arithmetic (Cephes' polynomials), always inlined and free of libm
// calls, so that the element-wise loops that use them vectorise in every target clone; double uses
// the C library, for the gradient checks.
#pragma once
#include <cmath>
#include <cstdint>

namespace ncsn::vm {

#define NCSN_VM inline __attribute__((always_inline))

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

// softplus(z) = max(z, 0) + g(|z|), g(t) = log1p(exp(−t)), with g as a piecewise polynomial:
// eight intervals of width 2 over [0, 16), degree 8 in the distance from the interval's centre,
// fitted on Chebyshev nodes (bench/fit_softplus.py). With each coefficient one register permute
// of its row (simd.h), a vector costs 9 permutes and 8 FMAs, where exp and a log1p polynomial
// took 48 instructions. Worst error 1.4 ulp where g > 1/4; past 16 g, below 1.13e-7, is left
// out, the largest absolute error anywhere. NaN stays NaN.
inline constexpr float kSoftplusPoly[9][8] = {
    {0.313261688f, 0.048587352f, 0.00671534846f, 0.000911466428f, 0.000123402191f, 1.67015605e-05f, 2.26032694e-06f, 3.05902262e-07f},
    {-0.268941492f, -0.047425881f, -0.00669285143f, -0.000911051116f, -0.000123394566f, -1.67014205e-05f, -2.26032398e-06f, -3.05902205e-07f},
    {0.0983060747f, 0.0225883275f, 0.00332402857f, 0.000455110567f, 6.16896723e-05f, 8.35057108e-06f, 1.13015949e-06f, 1.5295106e-07f},
    {-0.0151420785f, -0.00681517599f, -0.0010931734f, -0.000151428016f, -2.05583074e-05f, -2.78345283e-06f, -3.76721147e-07f, -5.09840596e-08f},
    {-0.00147277152f, 0.0013721498f, 0.000265950657f, 3.77188626e-05f, 5.13702571e-06f, 6.95814833e-07f, 9.41791853e-08f, 1.27459661e-08f},
    {0.00102607941f, -0.000156347334f, -5.03144583e-05f, -7.48537559e-06f, -1.02582044e-06f, -1.39064895e-07f, -1.88246965e-08f, -2.54772448e-09f},
    {-6.84023616e-05f, -6.9847024e-06f, 7.44788758e-06f, 1.22950598e-06f, 1.70655611e-07f, 2.31742661e-08f, 3.13773563e-09f, 4.24672714e-10f},
    {-5.21051443e-05f, 8.36048639e-06f, -7.82278903e-07f, -1.74851138e-07f, -2.50433771e-08f, -3.41482753e-09f, -4.62615835e-10f, -6.26168423e-11f},
    {1.10119336e-05f, -1.87436774e-06f, 3.08435197e-08f, 2.03562749e-08f, 3.0929832e-09f, 4.24891289e-10f, 5.76184725e-11f, 7.79993171e-12f},
};
// sigmoid(z) = z < 0 ? s(|z|) : 1 − s(|z|), s(t) = 1/(1 + exp(t)) fitted as g above (the same
// fit in bench/fit_softplus.py): worst error 2.7 ulp where sigmoid > 1/4 (the 1 − s), 1.13e-7
// absolute anywhere (past 16 s is left out).
inline constexpr float kSigmoidTailPoly[9][8] = {
    {0.268941432f, 0.0474258736f, 0.00669285096f, 0.000911051175f, 0.00012339458f, 1.67014223e-05f, 2.26032421e-06f, 3.05902233e-07f},
    {-0.196612313f, -0.0451766513f, -0.00664805761f, -0.000910221133f, -0.000123379345f, -1.67011422e-05f, -2.26031898e-06f, -3.05902091e-07f},
    {0.0454289094f, 0.0204457697f, 0.00327953463f, 0.00045428134f, 6.1674451e-05f, 8.35029186e-06f, 1.13015437e-06f, 1.5295096e-07f},
    {0.00589273404f, -0.00548864622f, -0.00106379751f, -0.000150875654f, -2.05481538e-05f, -2.78326661e-06f, -3.76717736e-07f, -5.09839992e-08f},
    {-0.00514644198f, 0.000780280447f, 0.000251486665f, 3.74432966e-05f, 5.13195164e-06f, 6.95721837e-07f, 9.417748e-08f, 1.2745935e-08f},
    {0.000406459119f, 4.20220531e-05f, -4.46997255e-05f, -7.37653636e-06f, -1.02381171e-06f, -1.3902806e-07f, -1.88240215e-08f, -2.54771226e-09f},
    {0.000394686707f, -5.58051215e-05f, 5.63576441e-06f, 1.19331185e-06f, 1.69984958e-07f, 2.3161963e-08f, 3.13751025e-09f, 4.24668578e-10f},
    {-8.54587706e-05f, 1.49190491e-05f, -2.38481704e-07f, -1.63182975e-07f, -2.48251339e-08f, -3.41081896e-09f, -4.62542393e-10f, -6.26154961e-11f},
    {-1.71146748e-05f, -1.55330508e-06f, -9.13211409e-08f, 1.75120825e-08f, 3.03924552e-09f, 4.23902913e-10f, 5.76003585e-11f, 7.79960038e-12f},
};

// The polynomial of `poly`'s interval of t ≥ 0, or 0 from 16 on (and for NaN).
NCSN_VM float piecewise_tail(const float (&poly)[9][8], float t) {
  const int i = static_cast<int>(t < 16.0f ? t * 0.5f : 0.0f);
  const float u = t - (static_cast<float>(i) * 2.0f + 1.0f);
  float p = poly[8][i];
  for (int j = 7; j >= 0; --j) p = p * u + poly[j][i];
  return t < 16.0f ? p : 0.0f;
}
NCSN_VM float softplus(float z) { return (z < 0.0f ? 0.0f : z) + piecewise_tail(kSoftplusPoly, abs_f(z)); }
NCSN_VM double softplus(double z) { return std::fmax(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

// ELU(x) = x > 0 ? x : exp(x) − 1. For float, exp − 1 loses relative accuracy as x → 0⁻ but its
// absolute error stays at the rounding of 1, about 6e-8, and libm's expm1 would not vectorise.
NCSN_VM float elu(float x) { return x > 0.0f ? x : exp_f(x) - 1.0f; }
NCSN_VM double elu(double x) { return x > 0.0 ? x : std::expm1(x); }

NCSN_VM float sigmoid(float z) {
  const float s = piecewise_tail(kSigmoidTailPoly, abs_f(z));
  return z >= 0.0f ? 1.0f - s : (z < 0.0f ? s : z);
}
NCSN_VM double sigmoid(double z) {
  const double e = std::exp(-std::fabs(z));
  return z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

// sin and cos by one reduction: n = round(x·2/π) by the 1.5·2²³ shift, r = x − n·π/2 in three
// parts (Cody–Waite, Cephes' constants), r in [−π/4, π/4]; then sin(x) is ±sin r or ±cos r by the
// quarter n mod 4 (cos x = sin(x + π/2): the quarter n + 1), each from Cephes' sinf and cosf
// polynomials. Float rounding: a few ulp of 1 for |x| up to about 10⁴, the range of a sin layer's
// pre-activations; beyond 2²² the quarter is lost, as float's own spacing of x exceeds π/2 soon
// after. No branches, so the loops vectorise.
NCSN_VM float sin_quarter(float x, int32_t quarter_offset) {
  const float shift = 12582912.0f;
  const float t = x * 0.636619772367581343f + shift;
  const int32_t quarter = (__builtin_bit_cast(int32_t, t) + quarter_offset) & 3;
  const float n = t - shift;
  float r = x - n * 1.5703125f;
  r = r - n * 4.837512969970703125e-4f;
  r = r - n * 7.54978995489188216e-8f;
  const float z = r * r;
  const float sin_r = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
  const float cos_r = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
  const float v = (quarter & 1) ? cos_r : sin_r;
  return (quarter & 2) ? -v : v;
}
NCSN_VM float sin(float x) { return sin_quarter(x, 0); }
NCSN_VM float cos(float x) { return sin_quarter(x, 1); }
NCSN_VM double sin(double x) { return std::sin(x); }
NCSN_VM double cos(double x) { return std::cos(x); }

}  // namespace ncsn::vm
