// CondInstanceNorm++ (docs/workloads.md W2), image by image. With N pixels per channel and C channels,
//   x̂_k = (x_k − μ_k)/s_k,   a_k = (μ_k − m)/v,   y_k = γ_k x̂_k + β_k + α_k a_k.
// Backward, with g = dy:
//   dγ_k = Σ g x̂_k,  dβ_k = Σ g,  dα_k = a_k Σ g
//   through x̂:  dx_k = (γ_k/s_k)(g − mean(g) − x̂_k mean(g x̂_k))
//   through a:  da_k = α_k Σ g;  dμ_k = (da_k − mean(da))/v − u_k Σ_j da_j u_j / (v³ (C − 1)),
//               u = μ − m, spread evenly over the N pixels of channel k.
// Sums are taken in double whatever T is: the statistics of a 28×28 plane are then exact to float.
// With ELU fused in, the forward applies it to a plane while the plane is in cache, and the
// backward takes g through ELU′ into a plane-sized buffer that both of its passes read.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "cpu_ops.h"
#include "isa.h"
#include "vecmath.h"

namespace ncsn {
namespace {

constexpr double EPS = 1e-5;

template <typename T>
void check_norm(const Tensor4<T>& y, const Tensor4<T>& x) {
  if (y.n != x.n || y.c != x.c || y.h != x.h || y.w != x.w)
    throw std::invalid_argument("cond_instance_norm: the output shape differs from the input's");
  if (x.c < 2) throw std::invalid_argument("cond_instance_norm: needs at least 2 channels (the channel variance)");
}

// The passes over one channel's plane. Sums run in eight interleaved lanes, each added in order, so
// that the compiler can keep the lanes in vector registers (one running sum would stay scalar) and
// the result still depends on the plane alone; float planes get a build per instruction set.
#define NCSN_ALWAYS inline __attribute__((always_inline))
template <typename F>
NCSN_ALWAYS double lane_sum(int64_t n, F term) {
  double lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lane[l] += term(i + l);
  double s = 0;
  for (; i < n; ++i) s += term(i);
  for (double v : lane) s += v;
  return s;
}

// Σ p and Σ (p − μ)², μ the mean.
template <typename T>
NCSN_ALWAYS void moments_loop(const T* p, int64_t n, double& mean, double& squares) {
  mean = lane_sum(n, [&](int64_t i) { return static_cast<double>(p[i]); }) / static_cast<double>(n);
  const double mu = mean;
  squares = lane_sum(n, [&](int64_t i) { return (p[i] - mu) * (p[i] - mu); });
}
template <typename T>
NCSN_ALWAYS void affine_loop(T* q, const T* p, int64_t n, T mu, T scale, T shift) {
  for (int64_t i = 0; i < n; ++i) q[i] = (p[i] - mu) * scale + shift;
}
template <typename T>
NCSN_ALWAYS void elu_loop(T* q, int64_t n) {
  for (int64_t i = 0; i < n; ++i) q[i] = vm::elu(q[i]);
}
// g·ELU′ from the ELU's output y.
template <typename T>
NCSN_ALWAYS void elu_gradient_loop(T* q, const T* g, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) q[i] = y[i] > 0 ? g[i] : g[i] * (y[i] + 1);
}
// Σ g and Σ g·(p − μ)/s.
template <typename T>
NCSN_ALWAYS void gradient_sums_loop(const T* g, const T* p, int64_t n, double mu, double inv_s, double& sg,
                                    double& sgx) {
  sg = lane_sum(n, [&](int64_t i) { return static_cast<double>(g[i]); });
  sgx = lane_sum(n, [&](int64_t i) { return g[i] * (p[i] - mu) * inv_s; });
}
template <typename T>
NCSN_ALWAYS void input_gradient_loop(T* q, const T* g, const T* p, int64_t n, double mu, double inv_s, double scale,
                                     double mean_g, double mean_gx, double shift) {
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<T>(scale * (g[i] - mean_g - (p[i] - mu) * inv_s * mean_gx) + shift);
}

NCSN_ISA_CLONES void moments(const float* p, int64_t n, double& mean, double& squares) { moments_loop(p, n, mean, squares); }
void moments(const double* p, int64_t n, double& mean, double& squares) { moments_loop(p, n, mean, squares); }
NCSN_ISA_CLONES void affine(float* q, const float* p, int64_t n, float mu, float scale, float shift) {
  affine_loop(q, p, n, mu, scale, shift);
}
void affine(double* q, const double* p, int64_t n, double mu, double scale, double shift) {
  affine_loop(q, p, n, mu, scale, shift);
}
NCSN_ISA_CLONES void elu_in_place(float* q, int64_t n) { elu_loop(q, n); }
void elu_in_place(double* q, int64_t n) { elu_loop(q, n); }
NCSN_ISA_CLONES void elu_gradient(float* q, const float* g, const float* y, int64_t n) { elu_gradient_loop(q, g, y, n); }
void elu_gradient(double* q, const double* g, const double* y, int64_t n) { elu_gradient_loop(q, g, y, n); }
NCSN_ISA_CLONES void gradient_sums(const float* g, const float* p, int64_t n, double mu, double inv_s, double& sg,
                                   double& sgx) {
  gradient_sums_loop(g, p, n, mu, inv_s, sg, sgx);
}
void gradient_sums(const double* g, const double* p, int64_t n, double mu, double inv_s, double& sg, double& sgx) {
  gradient_sums_loop(g, p, n, mu, inv_s, sg, sgx);
}
NCSN_ISA_CLONES void input_gradient(float* q, const float* g, const float* p, int64_t n, double mu, double inv_s,
                                    double scale, double mean_g, double mean_gx, double shift) {
  input_gradient_loop(q, g, p, n, mu, inv_s, scale, mean_g, mean_gx, shift);
}
void input_gradient(double* q, const double* g, const double* p, int64_t n, double mu, double inv_s, double scale,
                    double mean_g, double mean_gx, double shift) {
  input_gradient_loop(q, g, p, n, mu, inv_s, scale, mean_g, mean_gx, shift);
}

}  // namespace

template <typename T>
void CpuOps<T>::cond_instance_norm_forward(Tensor4<T> y, Tensor4<T> x, const T* embed, const int32_t* level,
                                           T* stats, bool elu) {
  check_norm(y, x);
  const int64_t c = x.c, n = x.plane();
  for (int64_t b = 0; b < x.n; ++b) {
    T* st = stats + b * (2 * c + 2);
    const T* gamma = embed + static_cast<int64_t>(level[b]) * 3 * c;
    const T *beta = gamma + c, *alpha = gamma + 2 * c;
    double mean_of_means = 0;
    for (int64_t k = 0; k < c; ++k) {
      double mu = 0, s2 = 0;
      moments(x.channel(b, k), n, mu, s2);
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
      affine(y.channel(b, k), x.channel(b, k), n, mu, scale, shift);
      if (elu) elu_in_place(y.channel(b, k), n);
    }
  }
}

template <typename T>
void CpuOps<T>::cond_instance_norm_backward(Tensor4<T> dx, T* dembed, int64_t levels, Tensor4<T> dy, Tensor4<T> x,
                                            const T* embed, const int32_t* level, const T* stats, Tensor4<T> elu_y) {
  check_norm(dy, x);
  if (elu_y.data) check_norm(elu_y, x);
  const int64_t c = x.c, n = x.plane();
  std::fill(dembed, dembed + levels * 3 * c, T(0));
  std::vector<double> sum_g(c), sum_gx(c), dmu(c);
  // With ELU, an image's g·ELU′, made by the first pass and read again by the second.
  std::vector<T> through_elu(elu_y.data ? static_cast<size_t>(c * n) : 0);
  auto gradient_plane = [&](int64_t b, int64_t k) -> const T* {
    return elu_y.data ? through_elu.data() + k * n : dy.channel(b, k);
  };
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
      double sg = 0, sgx = 0;
      if (elu_y.data) elu_gradient(through_elu.data() + k * n, dy.channel(b, k), elu_y.channel(b, k), n);
      gradient_sums(gradient_plane(b, k), x.channel(b, k), n, mu, inv_s, sg, sgx);
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
      input_gradient(dx.channel(b, k), gradient_plane(b, k), x.channel(b, k), n, mu, inv_s, scale, mean_g, mean_gx, shift);
    }
  }
}

#define NCSN_INSTANTIATE(T)                                                                                          \
  template void CpuOps<T>::cond_instance_norm_forward(Tensor4<T>, Tensor4<T>, const T*, const int32_t*, T*, bool);  \
  template void CpuOps<T>::cond_instance_norm_backward(Tensor4<T>, T*, int64_t, Tensor4<T>, Tensor4<T>, const T*,  \
                                                       const int32_t*, const T*, Tensor4<T>);
NCSN_INSTANTIATE(float)
NCSN_INSTANTIATE(double)
#undef NCSN_INSTANTIATE

}  // namespace ncsn
