// CondInstanceNorm++ (docs/workloads.md W2), image by image. With N pixels per channel and C channels,
//   x̂_k = (x_k − μ_k)/s_k,   a_k = (μ_k − m)/v,   y_k = γ_k x̂_k + β_k + α_k a_k.
// Backward, with g = dy:
//   dγ_k = Σ g x̂_k,  dβ_k = Σ g,  dα_k = a_k Σ g
//   through x̂:  dx_k = (γ_k/s_k)(g − mean(g) − x̂_k mean(g x̂_k))
//   through a:  da_k = α_k Σ g;  dμ_k = (da_k − mean(da))/v − u_k Σ_j da_j u_j / (v³ (C − 1)),
//               u = μ − m, spread evenly over the N pixels of channel k.
// Sums are taken in double whatever T is: the statistics of a 28×28 plane are then exact to float.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "cpu_ops.h"

namespace ncsn {
namespace {

constexpr double EPS = 1e-5;

template <typename T>
void check_norm(const Tensor4<T>& y, const Tensor4<T>& x) {
  if (y.n != x.n || y.c != x.c || y.h != x.h || y.w != x.w)
    throw std::invalid_argument("cond_instance_norm: the output shape differs from the input's");
  if (x.c < 2) throw std::invalid_argument("cond_instance_norm: needs at least 2 channels (the channel variance)");
}

}  // namespace

template <typename T>
void CpuOps<T>::cond_instance_norm_forward(Tensor4<T> y, Tensor4<T> x, const T* embed, const int32_t* level,
                                           T* stats) {
  check_norm(y, x);
  const int64_t c = x.c, n = x.plane();
  for (int64_t b = 0; b < x.n; ++b) {
    T* st = stats + b * (2 * c + 2);
    const T* gamma = embed + static_cast<int64_t>(level[b]) * 3 * c;
    const T *beta = gamma + c, *alpha = gamma + 2 * c;
    double mean_of_means = 0;
    for (int64_t k = 0; k < c; ++k) {
      const T* p = x.channel(b, k);
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < n; ++i) s += p[i];
      const double mu = s / n;
      for (int64_t i = 0; i < n; ++i) s2 += (p[i] - mu) * (p[i] - mu);
      st[2 * k] = static_cast<T>(mu);
      st[2 * k + 1] = static_cast<T>(1.0 / std::sqrt(s2 / n + EPS));
      mean_of_means += mu;
    }
    mean_of_means /= c;
    double spread = 0;
    for (int64_t k = 0; k < c; ++k) spread += (st[2 * k] - mean_of_means) * (st[2 * k] - mean_of_means);
    const double inv_v = 1.0 / std::sqrt(spread / (c - 1) + EPS);
    st[2 * c] = static_cast<T>(mean_of_means);
    st[2 * c + 1] = static_cast<T>(inv_v);
    for (int64_t k = 0; k < c; ++k) {
      const T mu = st[2 * k], inv_s = st[2 * k + 1];
      const T shift = beta[k] + alpha[k] * static_cast<T>((mu - mean_of_means) * inv_v);
      const T scale = gamma[k] * inv_s;
      const T* p = x.channel(b, k);
      T* q = y.channel(b, k);
      for (int64_t i = 0; i < n; ++i) q[i] = (p[i] - mu) * scale + shift;
    }
  }
}

template <typename T>
void CpuOps<T>::cond_instance_norm_backward(Tensor4<T> dx, T* dembed, int64_t levels, Tensor4<T> dy, Tensor4<T> x,
                                            const T* embed, const int32_t* level, const T* stats) {
  check_norm(dy, x);
  const int64_t c = x.c, n = x.plane();
  std::fill(dembed, dembed + levels * 3 * c, T(0));
  std::vector<double> sum_g(c), sum_gx(c), dmu(c);
  for (int64_t b = 0; b < x.n; ++b) {
    const T* st = stats + b * (2 * c + 2);
    const double m = st[2 * c], inv_v = st[2 * c + 1];
    const T* gamma = embed + static_cast<int64_t>(level[b]) * 3 * c;
    const T* alpha = gamma + 2 * c;
    T* dgamma = dembed + static_cast<int64_t>(level[b]) * 3 * c;
    T *dbeta = dgamma + c, *dalpha = dgamma + 2 * c;
    double da_mean = 0, da_u = 0;
    for (int64_t k = 0; k < c; ++k) {
      const double mu = st[2 * k], inv_s = st[2 * k + 1];
      const T *g = dy.channel(b, k), *p = x.channel(b, k);
      double sg = 0, sgx = 0;
      for (int64_t i = 0; i < n; ++i) {
        sg += g[i];
        sgx += g[i] * (p[i] - mu) * inv_s;
      }
      sum_g[k] = sg;
      sum_gx[k] = sgx;
      const double u = mu - m, da = alpha[k] * sg;
      dgamma[k] += static_cast<T>(sgx);
      dbeta[k] += static_cast<T>(sg);
      dalpha[k] += static_cast<T>(u * inv_v * sg);
      da_mean += da;
      da_u += da * u;
    }
    da_mean /= c;
    for (int64_t k = 0; k < c; ++k) {
      const double u = st[2 * k] - m, da = alpha[k] * sum_g[k];
      dmu[k] = (da - da_mean) * inv_v - u * da_u * inv_v * inv_v * inv_v / (c - 1);
    }
    if (!dx.data) continue;
    for (int64_t k = 0; k < c; ++k) {
      const double mu = st[2 * k], inv_s = st[2 * k + 1];
      const double scale = gamma[k] * inv_s, mean_g = sum_g[k] / n, mean_gx = sum_gx[k] / n;
      const double shift = dmu[k] / n;
      const T *g = dy.channel(b, k), *p = x.channel(b, k);
      T* q = dx.channel(b, k);
      for (int64_t i = 0; i < n; ++i)
        q[i] = static_cast<T>(scale * (g[i] - mean_g - (p[i] - mu) * inv_s * mean_gx) + shift);
    }
  }
}

#define NCSN_INSTANTIATE(T)                                                                                          \
  template void CpuOps<T>::cond_instance_norm_forward(Tensor4<T>, Tensor4<T>, const T*, const int32_t*, T*);        \
  template void CpuOps<T>::cond_instance_norm_backward(Tensor4<T>, T*, int64_t, Tensor4<T>, Tensor4<T>, const T*,  \
                                                       const int32_t*, const T*);
NCSN_INSTANTIATE(float)
NCSN_INSTANTIATE(double)
#undef NCSN_INSTANTIATE

}  // namespace ncsn
