// One block runs 128 particles through every Langevin step of a level. Per step:
//   h1 = softplus(W1 x + b1 + E1[i])             (computed straight into shared memory, transposed)
//   z2 = h1 W2ᵀ, a 128×128×128 product           (8×8 outputs per thread, operands from shared memory)
//   s  = (W3 softplus(z2 + b2 + E2[i]) + b3)/σ_i  (partial dot products reduced across 16 lanes)
//   x ← x + drift·s + diffusion·z                 (z: the same Philox elements as the op-by-op path)
#include "check.cuh"
#include "fused_mlp.cuh"

namespace ncsn {
namespace {

constexpr int H = 128;        // width this kernel is written for
constexpr int P = 128;        // particles per block
constexpr int THREADS = 256;  // 16×16 threads, each owning 8 particles × 8 hidden units
constexpr int MAX_D = 8;

__device__ __forceinline__ float softplus(float z) { return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))); }

struct LevelArgs {
  float* x;
  int64_t n;
  const float *w1, *b1, *e1, *w2, *b2, *e2, *w3, *b3;
  float inv_sigma;
  int32_t level;
  int64_t steps;
  float drift, diffusion, denoise;
  uint64_t seed, first_step;
};

template <int D>
struct Shared {
  float w2t[H * H];  // W2ᵀ: w2t[k·H + j] = W2[j][k]
  float h1t[H * P];  // h1ᵀ: h1t[k·P + p]
  float w1[H * D];
  float w3[D * H];
  float bias1[H], bias2[H], b3[D];
  float x[P * D];
};

template <int D>
__global__ void __launch_bounds__(THREADS) langevin_level_k(LevelArgs a) {
  extern __shared__ __align__(16) unsigned char raw[];
  Shared<D>& sh = *reinterpret_cast<Shared<D>*>(raw);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * P;

  for (int i = tid; i < H * H; i += THREADS) sh.w2t[(i % H) * H + i / H] = a.w2[i];
  for (int i = tid; i < H * D; i += THREADS) sh.w1[i] = a.w1[i];
  for (int i = tid; i < D * H; i += THREADS) sh.w3[i] = a.w3[i];
  for (int i = tid; i < H; i += THREADS) {
    sh.bias1[i] = a.b1[i] + a.e1[static_cast<int64_t>(a.level) * H + i];
    sh.bias2[i] = a.b2[i] + a.e2[static_cast<int64_t>(a.level) * H + i];
  }
  if (tid < D) sh.b3[tid] = a.b3[tid];
  for (int i = tid; i < P * D; i += THREADS) {
    const int64_t e = p0 * D + i;
    sh.x[i] = e < a.n * D ? a.x[e] : 0.0f;
  }
  __syncthreads();

  const int64_t total = a.steps + (a.denoise > 0.0f ? 1 : 0);
  for (int64_t t = 0; t < total; ++t) {
    const bool denoising = t == a.steps;
    // layer 1, into h1ᵀ; neighbouring threads write neighbouring particles (no bank conflicts)
    for (int e = tid; e < H * P; e += THREADS) {
      const int j = e / P, p = e % P;
      float z = sh.bias1[j];
#pragma unroll
      for (int d = 0; d < D; ++d) z = fmaf(sh.w1[j * D + d], sh.x[p * D + d], z);
      sh.h1t[e] = softplus(z);
    }
    __syncthreads();

    // layer 2: acc[pp][jj] = Σ_k h1[p][k] W2[j][k]
    float acc[8][8] = {};
    for (int k = 0; k < H; ++k) {
      const float4 a0 = *reinterpret_cast<const float4*>(&sh.h1t[k * P + ty * 8]);
      const float4 a1 = *reinterpret_cast<const float4*>(&sh.h1t[k * P + ty * 8 + 4]);
      const float4 c0 = *reinterpret_cast<const float4*>(&sh.w2t[k * H + tx * 8]);
      const float4 c1 = *reinterpret_cast<const float4*>(&sh.w2t[k * H + tx * 8 + 4]);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
#pragma unroll
      for (int pp = 0; pp < 8; ++pp)
#pragma unroll
        for (int jj = 0; jj < 8; ++jj) acc[pp][jj] = fmaf(av[pp], bv[jj], acc[pp][jj]);
    }

    // output layer: this thread's 8 hidden units' share of s, then a sum over the 16 lanes of a row
    float s[8][D];
#pragma unroll
    for (int pp = 0; pp < 8; ++pp) {
#pragma unroll
      for (int d = 0; d < D; ++d) s[pp][d] = 0.0f;
#pragma unroll
      for (int jj = 0; jj < 8; ++jj) {
        const int j = tx * 8 + jj;
        const float h2 = softplus(acc[pp][jj] + sh.bias2[j]);
#pragma unroll
        for (int d = 0; d < D; ++d) s[pp][d] = fmaf(sh.w3[d * H + j], h2, s[pp][d]);
      }
#pragma unroll
      for (int d = 0; d < D; ++d)
#pragma unroll
        for (int off = 8; off > 0; off /= 2) s[pp][d] += __shfl_xor_sync(0xffffffffu, s[pp][d], off, 16);
    }
    __syncthreads();  // every lane has read h1ᵀ and x before x changes

    // lane tx < 8 moves particle ty·8 + tx
#pragma unroll
    for (int pp = 0; pp < 8; ++pp) {
      if (tx != pp) continue;
      const int p = ty * 8 + pp;
      const int64_t gp = p0 + p;
      if (gp >= a.n) continue;
      float z[MAX_D + 3];
      if (!denoising) {
        // elements gp·D … gp·D + D − 1 of the stream, four per Philox block
        const RngStream rs{a.seed, RngPurpose::sample_noise, a.first_step + static_cast<uint64_t>(t)};
        const uint64_t e0 = static_cast<uint64_t>(gp) * D;
        for (uint64_t b = e0 / 4; b * 4 < e0 + D; ++b) {
          float w[4];
          normals_from_block(philox_block(rs, static_cast<uint32_t>(b)), w);
          for (int q = 0; q < 4; ++q) {
            const int64_t at = static_cast<int64_t>(b * 4 + q) - static_cast<int64_t>(e0);
            if (at >= 0 && at < D) z[at] = w[q];
          }
        }
      }
#pragma unroll
      for (int d = 0; d < D; ++d) {
        const float score = (s[pp][d] + sh.b3[d]) * a.inv_sigma;
        sh.x[p * D + d] += denoising ? a.denoise * score : a.drift * score + a.diffusion * z[d];
      }
    }
    __syncthreads();
  }

  for (int i = tid; i < P * D; i += THREADS) {
    const int64_t e = p0 * D + i;
    if (e < a.n * D) a.x[e] = sh.x[i];
  }
}

template <int D>
bool launch(const LevelArgs& a, size_t shared_limit, cudaStream_t stream) {
  const size_t bytes = sizeof(Shared<D>);
  if (bytes > shared_limit) return false;
  cuda_check(cudaFuncSetAttribute(langevin_level_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             "fused Langevin: shared memory");
  const unsigned blocks = static_cast<unsigned>((a.n + P - 1) / P);
  langevin_level_k<D><<<blocks, THREADS, bytes, stream>>>(a);
  launch_check("fused Langevin level");
  return true;
}

}  // namespace

FusedMlp::FusedMlp(int device, cudaStream_t stream) : stream_(stream) {
  int limit = 0;
  cuda_check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "shared memory limit");
  shared_limit_ = static_cast<size_t>(limit);
}

bool FusedMlp::langevin_level(const MlpShape& shape, const float* params, const float* inv_sigma, int32_t level,
                              Mat<float> x, int64_t steps, float drift, float diffusion, uint64_t seed,
                              uint64_t first_step, float denoise) {
  if (shape.width != H || shape.depth != 2) return false;
  if ((x.rows + P - 1) / P > 0x7fffffff) return false;
  const auto layout = mlp_layout(shape);
  auto at = [&](size_t t) { return params + layout[t].offset; };
  float inv = 0.0f;
  cuda_check(cudaMemcpyAsync(&inv, inv_sigma + level, sizeof(float), cudaMemcpyDeviceToHost, stream_), "1/σ");
  cuda_check(cudaStreamSynchronize(stream_), "1/σ");
  const LevelArgs a{x.data, x.rows, at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), inv, level, steps,
                    drift, diffusion, denoise, seed, first_step};
  switch (shape.data_dim) {
    case 1: return launch<1>(a, shared_limit_, stream_);
    case 2: return launch<2>(a, shared_limit_, stream_);
    case 3: return launch<3>(a, shared_limit_, stream_);
    case 4: return launch<4>(a, shared_limit_, stream_);
    case 8: return launch<8>(a, shared_limit_, stream_);
    default: return false;
  }
}

}  // namespace ncsn
