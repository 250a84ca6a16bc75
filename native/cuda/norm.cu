// CondInstanceNorm++ on the GPU, the same arithmetic as native/cpu/norm.cpp (whose header gives the
// formulas) in three steps each way:
//   forward   1. a block per (image, channel) sums its plane in double: μ_k, then Σ (x − μ_k)²
//             2. a thread per image takes m and v over its channels, in channel order, and the
//                affine map of every channel, y_k = (x_k − μ_k)·scale_k + shift_k
//             3. a thread per element applies it, and ELU where it is fused in
//   backward  1. a block per (image, channel): Σ g and Σ g·x̂ in double, g taken through ELU′
//                (from the forward's output) as it is read where ELU was fused in
//             2. a thread per image: dμ_k, and the coefficients of dx_k
//             3. a thread per (level, channel) adds dγ, dβ, dα over the images in image order;
//                a thread per element writes dx
// Block sums reduce in a fixed tree and no float atomics are used: a run repeats bit for bit.
#include <stdexcept>

#include "check.cuh"
#include "grid.cuh"
#include "image_ops.cuh"

namespace ncsn {
namespace {

constexpr double EPS = 1e-5;

// The plane of channel k of image b, and the geometry to find it.
struct Planes {
  const float* data;
  int64_t c, plane, batch_stride;
  __device__ const float* at(int64_t b, int64_t k) const { return data + b * batch_stride + k * plane; }
};
Planes planes(const Tensor4<float>& t) { return {t.data, t.c, t.plane(), t.batch_stride}; }

// exp(v) − 1 as the CPU's float ELU computes it (not expm1), so both backends round alike.
__device__ __forceinline__ float elu(float v) { return v > 0.0f ? v : expf(v) - 1.0f; }

// The gradient of plane (b, k) at q, taken through ELU′ from the ELU's output y where y.data is set.
__device__ __forceinline__ float gradient_at(const Planes& dy, const Planes& y, int64_t b, int64_t k, int64_t q) {
  const float g = dy.at(b, k)[q];
  if (!y.data) return g;
  const float out = y.at(b, k)[q];
  return out > 0.0f ? g : g * (out + 1.0f);
}

// grid (c, n): mean[b·c + k] = μ_k in double; stats[2k] = μ_k and stats[2k + 1] = 1/s_k in float.
__global__ void __launch_bounds__(GRID_THREADS) norm_moments_k(Planes x, double* mean, float* stats) {
  __shared__ double shared[GRID_THREADS];
  const int64_t k = blockIdx.x, b = blockIdx.y, n = x.plane;
  const float* p = x.at(b, k);
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += GRID_THREADS) s += p[i];
  const double mu = block_sum<GRID_THREADS>(s, shared) / static_cast<double>(n);
  double sq = 0;
  for (int64_t i = threadIdx.x; i < n; i += GRID_THREADS) sq += (p[i] - mu) * (p[i] - mu);
  const double s2 = block_sum<GRID_THREADS>(sq, shared);
  if (threadIdx.x == 0) {
    float* st = stats + b * (2 * x.c + 2);
    mean[b * x.c + k] = mu;
    st[2 * k] = static_cast<float>(mu);
    st[2 * k + 1] = static_cast<float>(1.0 / sqrt(s2 / static_cast<double>(n) + EPS));
  }
}

// A thread per image: m, 1/v, and each channel's affine map affine[2k] = scale, [2k + 1] = shift,
// rounded where the CPU rounds.
__global__ void norm_affine_maps_k(const double* mean, float* stats, float* affine, const float* embed,
                                   const int32_t* level, int64_t n, int64_t c) {
  GRID_STRIDE(b, n) {
    float* st = stats + b * (2 * c + 2);
    double m = 0;
    for (int64_t k = 0; k < c; ++k) m += mean[b * c + k];
    m /= static_cast<double>(c);
    double spread = 0;
    for (int64_t k = 0; k < c; ++k) spread += (st[2 * k] - m) * (st[2 * k] - m);
    const double inv_v = 1.0 / sqrt(spread / static_cast<double>(c - 1) + EPS);
    st[2 * c] = static_cast<float>(m);
    st[2 * c + 1] = static_cast<float>(inv_v);
    const float* gamma = embed + static_cast<int64_t>(level[b]) * 3 * c;
    const float *beta = gamma + c, *alpha = gamma + 2 * c;
    for (int64_t k = 0; k < c; ++k) {
      affine[(b * c + k) * 2] = gamma[k] * st[2 * k + 1];
      affine[(b * c + k) * 2 + 1] = beta[k] + alpha[k] * static_cast<float>((st[2 * k] - m) * inv_v);
    }
  }
}

// Element i of the logical n × c × plane tensor: y = (x − μ)·scale + shift, then ELU where fused.
__global__ void norm_apply_k(float* y, int64_t y_stride, Planes x, const float* stats, const float* affine, int64_t total,
                             bool with_elu) {
  GRID_STRIDE(i, total) {
    const int64_t q = i % x.plane, bk = i / x.plane, b = bk / x.c, k = bk % x.c;
    const float mu = stats[b * (2 * x.c + 2) + 2 * k];
    const float v = (x.at(b, k)[q] - mu) * affine[2 * bk] + affine[2 * bk + 1];
    y[b * y_stride + k * x.plane + q] = with_elu ? elu(v) : v;
  }
}

// grid (c, n): sums[2(b·c + k)] = Σ g, [+ 1] = Σ g·(x − μ)/s, in double.
// g is dy, or dy·ELU′ from y where y.data is set.
__global__ void __launch_bounds__(GRID_THREADS) norm_gradient_sums_k(Planes dy, Planes y, Planes x, const float* stats,
                                                                     double* sums) {
  __shared__ double shared[GRID_THREADS];
  const int64_t k = blockIdx.x, b = blockIdx.y, n = x.plane;
  const float* st = stats + b * (2 * x.c + 2);
  const double mu = st[2 * k], inv_s = st[2 * k + 1];
  const float* p = x.at(b, k);
  double sg = 0, sgx = 0;
  for (int64_t i = threadIdx.x; i < n; i += GRID_THREADS) {
    const float g = gradient_at(dy, y, b, k, i);
    sg += g;
    sgx += g * (p[i] - mu) * inv_s;
  }
  sg = block_sum<GRID_THREADS>(sg, shared);
  sgx = block_sum<GRID_THREADS>(sgx, shared);
  if (threadIdx.x == 0) {
    sums[2 * (b * x.c + k)] = sg;
    sums[2 * (b * x.c + k) + 1] = sgx;
  }
}

// A thread per image: dμ through the channel statistics, and coefficients such that
// dx = scale·(g − mean_g − x̂·mean_gx) + shift: coef[4k…4k+3] = scale, mean_g, mean_gx, shift.
__global__ void norm_input_coefficients_k(const double* sums, const float* stats, const float* embed,
                                          const int32_t* level, float* coef, int64_t n, int64_t c, int64_t plane) {
  GRID_STRIDE(b, n) {
    const float* st = stats + b * (2 * c + 2);
    const double m = st[2 * c], inv_v = st[2 * c + 1];
    const float* gamma = embed + static_cast<int64_t>(level[b]) * 3 * c;
    const float* alpha = gamma + 2 * c;
    const double* s = sums + 2 * b * c;
    double da_mean = 0, da_u = 0;
    for (int64_t k = 0; k < c; ++k) {
      const double u = st[2 * k] - m, da = alpha[k] * s[2 * k];
      da_mean += da;
      da_u += da * u;
    }
    da_mean /= static_cast<double>(c);
    for (int64_t k = 0; k < c; ++k) {
      const double u = st[2 * k] - m, da = alpha[k] * s[2 * k];
      const double dmu = (da - da_mean) * inv_v - u * da_u * inv_v * inv_v * inv_v / static_cast<double>(c - 1);
      float* out = coef + 4 * (b * c + k);
      out[0] = static_cast<float>(gamma[k] * static_cast<double>(st[2 * k + 1]));
      out[1] = static_cast<float>(s[2 * k] / static_cast<double>(plane));
      out[2] = static_cast<float>(s[2 * k + 1] / static_cast<double>(plane));
      out[3] = static_cast<float>(dmu / static_cast<double>(plane));
    }
  }
}

__global__ void norm_input_gradient_k(float* dx, int64_t dx_stride, Planes dy, Planes y, Planes x, const float* stats,
                                      const float* coef, int64_t total) {
  GRID_STRIDE(i, total) {
    const int64_t q = i % x.plane, bk = i / x.plane, b = bk / x.c, k = bk % x.c;
    const float* st = stats + b * (2 * x.c + 2);
    const float* cf = coef + 4 * bk;
    const float xhat = (x.at(b, k)[q] - st[2 * k]) * st[2 * k + 1];
    dx[b * dx_stride + k * x.plane + q] = cf[0] * (gradient_at(dy, y, b, k, q) - cf[1] - xhat * cf[2]) + cf[3];
  }
}

// A thread per (level, channel), adding the images of that level in image order, in float as the
// CPU does; zero for levels no image has.
__global__ void norm_embed_gradient_k(float* dembed, int64_t levels, const double* sums, const float* stats,
                                      const int32_t* level, int64_t n, int64_t c) {
  GRID_STRIDE(i, levels * c) {
    const int64_t l = i / c, k = i % c;
    float dgamma = 0, dbeta = 0, dalpha = 0;
    for (int64_t b = 0; b < n; ++b) {
      if (level[b] != l) continue;
      const float* st = stats + b * (2 * c + 2);
      const double sg = sums[2 * (b * c + k)], sgx = sums[2 * (b * c + k) + 1];
      const double u = static_cast<double>(st[2 * k]) - st[2 * c];
      dgamma += static_cast<float>(sgx);
      dbeta += static_cast<float>(sg);
      dalpha += static_cast<float>(u * static_cast<double>(st[2 * c + 1]) * sg);
    }
    float* row = dembed + l * 3 * c;
    row[k] = dgamma;
    row[c + k] = dbeta;
    row[2 * c + k] = dalpha;
  }
}

void check_norm(const Tensor4<float>& y, const Tensor4<float>& x) {
  if (y.n != x.n || y.c != x.c || y.h != x.h || y.w != x.w)
    throw std::invalid_argument("cond_instance_norm: the output shape differs from the input's");
  if (x.c < 2) throw std::invalid_argument("cond_instance_norm: needs at least 2 channels (the channel variance)");
  if (x.c > 65535 * 32 || x.n > 65535) throw std::invalid_argument("cond_instance_norm: more channels or images than one launch covers");
}

}  // namespace

void CudaImageOps::cond_instance_norm_forward(Tensor4<float> y, Tensor4<float> x, const float* embed,
                                              const int32_t* level, float* stats, bool elu) {
  check_norm(y, x);
  if (x.n == 0) return;
  const int64_t n = x.n, c = x.c;
  Array<double> mean(memory_, n * c);
  Array<float> affine(memory_, n * c * 2);
  norm_moments_k<<<dim3(static_cast<unsigned>(c), static_cast<unsigned>(n)), GRID_THREADS, 0, stream_>>>(planes(x), mean.data(), stats);
  launch_check("cond_instance_norm_forward (moments)");
  norm_affine_maps_k<<<grid_blocks(n), GRID_THREADS, 0, stream_>>>(mean.data(), stats, affine.data(), embed, level, n, c);
  launch_check("cond_instance_norm_forward (channel statistics)");
  norm_apply_k<<<grid_blocks(x.size()), GRID_THREADS, 0, stream_>>>(y.data, y.batch_stride, planes(x), stats, affine.data(), x.size(),
                                                                  elu);
  launch_check("cond_instance_norm_forward");
}

void CudaImageOps::cond_instance_norm_backward(Tensor4<float> dx, float* dembed, int64_t levels, Tensor4<float> dy,
                                               Tensor4<float> x, const float* embed, const int32_t* level,
                                               const float* stats, Tensor4<float> elu_y) {
  check_norm(dy, x);
  if (dx.data) check_norm(dx, x);
  if (elu_y.data) check_norm(elu_y, x);
  const int64_t n = x.n, c = x.c;
  Array<double> sums(memory_, n * c * 2);
  if (n > 0) {
    norm_gradient_sums_k<<<dim3(static_cast<unsigned>(c), static_cast<unsigned>(n)), GRID_THREADS, 0, stream_>>>(
        planes(dy), planes(elu_y), planes(x), stats, sums.data());
    launch_check("cond_instance_norm_backward (sums)");
  }
  norm_embed_gradient_k<<<grid_blocks(levels * c), GRID_THREADS, 0, stream_>>>(dembed, levels, sums.data(), stats, level, n, c);
  launch_check("cond_instance_norm_backward (embedding)");
  if (!dx.data || n == 0) return;
  Array<float> coef(memory_, n * c * 4);
  norm_input_coefficients_k<<<grid_blocks(n), GRID_THREADS, 0, stream_>>>(sums.data(), stats, embed, level, coef.data(), n, c,
                                                                    x.plane());
  launch_check("cond_instance_norm_backward (coefficients)");
  norm_input_gradient_k<<<grid_blocks(x.size()), GRID_THREADS, 0, stream_>>>(dx.data, dx.batch_stride, planes(dy), planes(elu_y),
                                                                      planes(x), stats, coef.data(), x.size());
  launch_check("cond_instance_norm_backward");
}

}  // namespace ncsn
