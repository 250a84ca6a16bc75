// One block runs 128 particles through every Langevin step of a level. Per step:
//   h1 = softplus(W1 x + b1 + E1[i])             (computed straight into shared memory, transposed)
//   z2 = h1 W2ᵀ, a 128×128×128 product           (FP32: 8×8 outputs per thread, operands from shared
//                                                  memory; TF32: on the tensor cores, through it)
//   s  = (W3 softplus(z2 + b2 + E2[i]) + b3)/σ_i  (partial dot products reduced across 16 lanes)
//   x ← x + drift·s + diffusion·z                 (z: the same Philox elements as the op-by-op path)
#include <mma.h>

#include <algorithm>
#include <string>

#include "check.cuh"
#include "fused_mlp.cuh"
#include "gemm.cuh"

namespace ncsn {
namespace {

constexpr int H = 128;        // width this kernel is written for
constexpr int P = 128;        // particles per block
constexpr int THREADS = 256;  // 16×16 threads, each owning 8 particles × 8 hidden units
// Row length of W2ᵀ, h1ᵀ and the tensor cores' z2 in shared memory: 4 floats past the 128 put the
// rows of a WMMA tile on other banks and keep every row 16-byte aligned.
constexpr int LD = H + 4;

__device__ __forceinline__ float softplus(float z) { return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))); }

// softplus on the multi-function unit's exp2 and log2 (__expf, __logf): 6 instructions where
// softplus above takes about 70 (PTX for sm_90), and the Langevin kernel evaluates 128 per thread
// and step beside its 8,448 FMAs (D = 2). Error, from the CUDA Programming Guide's bounds for the
// two intrinsics (__expf within 2 + 1.173|x| ulp, __logf within 2^-21.41 absolute on [0.5, 2]): at
// most 1.2e-7 from the exp, 6e-8 from rounding 1 + e and 3.6e-7 from the log, so log1p(e^-|z|) is
// within 5.5e-7 absolute for every z; the final sum rounds as the accurate one's does. A Langevin
// step adds noise of √α (0.32 at W1's last level). Training keeps the accurate softplus: its
// gradients must match the op-by-op path's to 1e-6.
__device__ __forceinline__ float softplus_fast(float z) { return fmaxf(z, 0.0f) + __logf(1.0f + __expf(-fabsf(z))); }

struct LevelArgs {
  float* x;
  int64_t n;
  const float *w1, *b1, *e1, *w2, *b2, *e2, *w3, *b3;
  const float* inv_sigma;  // this level's 1/σ, read on the GPU: no host sync per launch
  int32_t level;
  int64_t steps;
  float drift, diffusion, denoise;
  uint64_t seed, first_step;
};

template <int D>
struct Shared {
  float w2t[H * LD];  // W2ᵀ: w2t[k·LD + j] = W2[j][k]
  float h1t[H * LD];  // h1ᵀ: h1t[k·LD + p]; on the tensor cores z2 then takes its place, z2[p·LD + j]
  float w1[H * D];
  float w3[D * H];
  float bias1[H], bias2[H], b3[D];
  float x[P * D];
};

// An operand of layer 2 as it is stored: rounded to TF32 for the tensor cores (the op-by-op
// product rounds its inputs the same way), else as it is.
template <bool TensorCores>
__device__ __forceinline__ float layer2_operand(float v) {
#if __CUDA_ARCH__ >= 800
  if constexpr (TensorCores) return nvcuda::wmma::__float_to_tf32(v);
#endif
  return v;
}

// z2 = h1 W2ᵀ on the tensor cores, left in shared memory in place of h1ᵀ: each of the 8 warps
// computes 32 × 64 of the 128 × 128 product as 2 × 4 WMMA tiles of 16 × 16 × 8 in TF32,
// accumulated in FP32. A is h1ᵀ read column-major, B is W2ᵀ row-major, both as stored.
template <int D>
__device__ __forceinline__ void layer2_tensor_cores(Shared<D>& sh, int tid) {
#if __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  const int warp = tid / 32, wm = (warp / 2) * 32, wn = (warp % 2) * 64;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> c[2][4];
  for (auto& row : c)
    for (auto& f : row) wmma::fill_fragment(f, 0.0f);
  for (int k = 0; k < H; k += 8) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa[2];
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[4];
    for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &sh.h1t[k * LD + wm + 16 * i], LD);
    for (int j = 0; j < 4; ++j) wmma::load_matrix_sync(fb[j], &sh.w2t[k * LD + wn + 16 * j], LD);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 4; ++j) wmma::mma_sync(c[i][j], fa[i], fb[j], c[i][j]);
  }
  __syncthreads();  // every warp has read h1ᵀ before z2 overwrites it
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      wmma::store_matrix_sync(&sh.h1t[(wm + 16 * i) * LD + wn + 16 * j], c[i][j], LD, wmma::mem_row_major);
  __syncthreads();
#else
  (void)sh;
  (void)tid;
  __trap();  // the host launches this variant on compute capability 8.0 and later only
#endif
}

template <int D, bool TensorCores>
__global__ void __launch_bounds__(THREADS) langevin_level_k(LevelArgs a) {
  extern __shared__ __align__(32) unsigned char raw[];  // 32: WMMA tiles start 32-byte aligned
  Shared<D>& sh = *reinterpret_cast<Shared<D>*>(raw);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * P;
  const float inv_sigma = *a.inv_sigma;

  for (int i = tid; i < H * H; i += THREADS) sh.w2t[(i % H) * LD + i / H] = layer2_operand<TensorCores>(a.w2[i]);
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
      sh.h1t[j * LD + p] = layer2_operand<TensorCores>(softplus_fast(z));
    }
    __syncthreads();

    // layer 2: acc[pp][jj] = Σ_k h1[p][k] W2[j][k] for p = ty·8 + pp, j = tx·8 + jj
    float acc[8][8] = {};
    if constexpr (TensorCores) {
      layer2_tensor_cores(sh, tid);
#pragma unroll
      for (int pp = 0; pp < 8; ++pp) {
        const float4 z0 = *reinterpret_cast<const float4*>(&sh.h1t[(ty * 8 + pp) * LD + tx * 8]);
        const float4 z4 = *reinterpret_cast<const float4*>(&sh.h1t[(ty * 8 + pp) * LD + tx * 8 + 4]);
        const float row[8] = {z0.x, z0.y, z0.z, z0.w, z4.x, z4.y, z4.z, z4.w};
#pragma unroll
        for (int jj = 0; jj < 8; ++jj) acc[pp][jj] = row[jj];
      }
    } else {
      for (int k = 0; k < H; ++k) {
        const float4 a0 = *reinterpret_cast<const float4*>(&sh.h1t[k * LD + ty * 8]);
        const float4 a1 = *reinterpret_cast<const float4*>(&sh.h1t[k * LD + ty * 8 + 4]);
        const float4 c0 = *reinterpret_cast<const float4*>(&sh.w2t[k * LD + tx * 8]);
        const float4 c1 = *reinterpret_cast<const float4*>(&sh.w2t[k * LD + tx * 8 + 4]);
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
#pragma unroll
        for (int pp = 0; pp < 8; ++pp)
#pragma unroll
          for (int jj = 0; jj < 8; ++jj) acc[pp][jj] = fmaf(av[pp], bv[jj], acc[pp][jj]);
      }
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
        const float h2 = softplus_fast(acc[pp][jj] + sh.bias2[j]);
#pragma unroll
        for (int d = 0; d < D; ++d) s[pp][d] = fmaf(sh.w3[d * H + j], h2, s[pp][d]);
      }
#pragma unroll
      for (int d = 0; d < D; ++d)
#pragma unroll
        for (int off = 8; off > 0; off /= 2) s[pp][d] += __shfl_xor_sync(0xffffffffu, s[pp][d], off, 16);
    }

    // The update, one element of x per lane: the 8 particles of row ty have 8·D elements, and after
    // the sums above every lane of the row holds all of their scores. Lane tx takes elements tx,
    // tx + 16, …, each drawing only the normal it needs, so the row's Philox blocks and Box-Muller
    // run once with the lanes side by side (one lane per particle in turn ran them 8 times over).
    // No barrier first: layer 1's reads of x are behind the one above, and h1ᵀ is written again
    // only after the one below (both orders of bench/emulate-cuda.sh pass without it).
    for (int e = tx; e < 8 * D; e += 16) {
      const int d = e % D, p = ty * 8 + e / D;
      const int64_t gp = p0 + p;
      if (gp >= a.n) continue;
      float sum = 0.0f;  // s[e / D][d], selected: indexing s by a variable would put it in local memory
#pragma unroll
      for (int pp = 0; pp < 8; ++pp)
#pragma unroll
        for (int dd = 0; dd < D; ++dd)
          if (pp * D + dd == e) sum = s[pp][dd];
      const float score = (sum + sh.b3[d]) * inv_sigma;
      float z = 0.0f;
      if (!denoising) {
        // element gp·D + d of the stream, the op-by-op path's draw of it
        const RngStream rs{a.seed, RngPurpose::sample_noise, a.first_step + static_cast<uint64_t>(t)};
        const uint64_t ge = static_cast<uint64_t>(gp) * D + d;
        z = normal_of_block(philox_block(rs, static_cast<uint32_t>(ge / 4)), static_cast<int>(ge % 4));
      }
      sh.x[p * D + d] += denoising ? a.denoise * score : a.drift * score + a.diffusion * z;
    }
    __syncthreads();
  }

  for (int i = tid; i < P * D; i += THREADS) {
    const int64_t e = p0 * D + i;
    if (e < a.n * D) a.x[e] = sh.x[i];
  }
}

template <int D, bool TensorCores>
void launch(const LevelArgs& a, cudaStream_t stream) {
  const size_t bytes = sizeof(Shared<D>);
  auto* kernel = langevin_level_k<D, TensorCores>;
  cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             "fused Langevin: shared memory");
  const unsigned blocks = static_cast<unsigned>((a.n + P - 1) / P);
  kernel<<<blocks, THREADS, bytes, stream>>>(a);
  launch_check("fused Langevin level");
}

template <int D>
void launch(const LevelArgs& a, bool tf32, cudaStream_t stream) {
  if (tf32) launch<D, true>(a, stream);
  else launch<D, false>(a, stream);
}


// ---- training: forward, DSM loss and backward, R rows at a time ----
//
// A grid sized to fill the GPU once; block b takes the tiles of R rows b, b + blocks, … and adds
// their gradient into its own slice of `partials` (the parameter layout of mlp_layout), which
// add_slices sums in block order. No float atomics, so on one GPU a step repeats bit for bit
// and a resumed run continues exactly; the memory is blocks × parameters whatever the batch.

constexpr int R = 16;  // rows per tile

struct TrainArgs {
  const float *xt, *noise, *sigma, *inv_sigma;
  const int32_t* level;
  int64_t rows;
  const float *w1, *b1, *e1, *w2, *b2, *e2, *w3, *b3;
  float grad_scale;
  float* loss;
  float* partials;  // blocks × param_count
  int64_t param_count;
  int64_t o_w1, o_b1, o_e1, o_w2, o_b2, o_e2, o_w3, o_b3;  // offsets in a parameter-shaped array
};

__device__ __forceinline__ float sigmoid(float z) {
  const float e = expf(-fabsf(z)), r = 1.0f / (1.0f + e);
  return z >= 0.0f ? r : e * r;
}

// Lanes per output of the training kernel's score layer: as many as the block has for its R·D
// outputs, at most 8 (16 units each), a power of two (2 for D = 8, 4 for D = 3 and 4, 8 below).
__host__ __device__ constexpr int output_lanes(int d) {
  int lanes = 8;
  while (lanes > 1 && R * d * lanes > THREADS) lanes /= 2;
  return lanes;
}

// Row length of the transposed activations h1ᵀ and dz2ᵀ: R rows of a unit, 16-byte aligned for
// float4 reads, and 4 past R so that layer 1's and dz2's writes (consecutive units) spread over 8
// banks, not 2.
constexpr int RT = R + 4;

template <int D>
struct TrainShared {
  float z1[R * H], z2[R * H], h2[R * H];  // z1, z2 later hold dz1, dz2
  float h1t[H * RT], dz2t[H * RT];        // h1ᵀ[k·RT + r], dz2ᵀ[j·RT + r]: a unit's rows side by side
  float w2s[16 * H];                      // 16 columns of W2, transposed: w2s[kk·H + j]
  float xt[R * D], s[R * D], dy[R * D];
  int32_t level[R];
};

// Column `col` of a per-level bias's gradient: v[r·H + col] of the tile's rows summed per level in
// row order, then one read-modify-write of g's row for each level present, the reads issued
// together. Adding row by row into g chained 16 dependent trips to memory per tile.
__device__ __forceinline__ void add_level_sums(float* g, const int32_t* level, const float* v, int rows, int col) {
  int lv[R];
  float vr[R], sum[R], old[R];
  bool first[R];  // row r is the first of its level in the tile
#pragma unroll
  for (int r = 0; r < R; ++r) {
    lv[r] = level[r];
    vr[r] = r < rows ? v[r * H + col] : 0.0f;
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    first[r] = r < rows;
#pragma unroll
    for (int q = 0; q < r; ++q) first[r] = first[r] && lv[q] != lv[r];
    sum[r] = 0.0f;
#pragma unroll
    for (int q = r; q < R; ++q)
      if (q < rows && lv[q] == lv[r]) sum[r] += vr[q];
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
    if (first[r]) old[r] = g[static_cast<int64_t>(lv[r]) * H + col];
#pragma unroll
  for (int r = 0; r < R; ++r)
    if (first[r]) g[static_cast<int64_t>(lv[r]) * H + col] = old[r] + sum[r];
}

// One tile of R rows: forward, loss, and the tile's gradient added into g. Every gradient element
// has one owning thread, the same in every tile, so the additions need no atomics.
template <int D>
__device__ void dsm_train_tile(const TrainArgs& a, TrainShared<D>& sh, float* g, int64_t r0) {
  const int tid = threadIdx.x;
  const int rows = static_cast<int>(min(static_cast<int64_t>(R), a.rows - r0));
  if (tid < R) sh.level[tid] = tid < rows ? a.level[r0 + tid] : 0;
  for (int i = tid; i < R * D; i += THREADS) sh.xt[i] = i / D < rows ? a.xt[r0 * D + i] : 0.0f;
  __syncthreads();

  // layer 1
  for (int e = tid; e < R * H; e += THREADS) {
    const int r = e / H, j = e % H;
    float z = a.b1[j] + a.e1[static_cast<int64_t>(sh.level[r]) * H + j];
#pragma unroll
    for (int d = 0; d < D; ++d) z = fmaf(a.w1[j * D + d], sh.xt[r * D + d], z);
    sh.z1[e] = z;
    sh.h1t[j * RT + r] = softplus(z);
  }

  // layer 2: thread owns hidden unit j for rows rb…rb+7; W2 comes in through shared memory 16 columns at a time
  {
    const int j = tid % H, rb = (tid / H) * 8;
    float acc[8] = {};
    for (int k0 = 0; k0 < H; k0 += 16) {
      __syncthreads();
      for (int i = tid; i < 16 * H; i += THREADS) {
        const int jj = i / 16, kk = i % 16;  // consecutive threads read consecutive k of a row of W2
        sh.w2s[kk * H + jj] = a.w2[jj * H + k0 + kk];
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < 16; ++kk) {
        const float w = sh.w2s[kk * H + j];
        const float4 h0 = *reinterpret_cast<const float4*>(&sh.h1t[(k0 + kk) * RT + rb]);
        const float4 h4 = *reinterpret_cast<const float4*>(&sh.h1t[(k0 + kk) * RT + rb + 4]);
        const float hv[8] = {h0.x, h0.y, h0.z, h0.w, h4.x, h4.y, h4.z, h4.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] = fmaf(hv[i], w, acc[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int r = rb + i;
      const float z = acc[i] + a.b2[j] + a.e2[static_cast<int64_t>(sh.level[r]) * H + j];
      sh.z2[r * H + j] = z;
      sh.h2[r * H + j] = softplus(z);
    }
  }
  __syncthreads();

  // output layer, loss and dL/dy (y = W3 h2 + b3, s = y / σ): OUT_LANES neighbouring lanes per
  // output, each over every OUT_LANES-th unit, then a sum across them (one warp of 128-long chains
  // held up the other seven at the barrier below)
  {
    constexpr int OUT_LANES = output_lanes(D);
    const int e = tid / OUT_LANES, part = tid % OUT_LANES;
    if (e < R * D) {  // whole warps: R·D·OUT_LANES is a multiple of 32
      const int r = e / D, d = e % D;
      float y = 0.0f;
      for (int j = part; j < H; j += OUT_LANES) y = fmaf(a.w3[d * H + j], sh.h2[r * H + j], y);
#pragma unroll
      for (int off = OUT_LANES / 2; off > 0; off /= 2) y += __shfl_xor_sync(0xffffffffu, y, off, OUT_LANES);
      if (part == 0) sh.s[e] = (y + a.b3[d]) * a.inv_sigma[sh.level[r]];
    }
  }
  __syncthreads();
  if (tid < R) {
    const int r = tid;
    const float sg = a.sigma[sh.level[r]], inv = a.inv_sigma[sh.level[r]];
    float l = 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const float z = r < rows ? a.noise[(r0 + r) * D + d] : 0.0f;
      const float err = sg * sh.s[r * D + d] + z;
      l += err * err;
      sh.dy[r * D + d] = r < rows ? a.grad_scale * sg * err * inv : 0.0f;  // rows past the end add nothing
    }
    if (r < rows) a.loss[r0 + r] = 0.5f * l;
  }
  __syncthreads();

  // out.weight, out.bias
  for (int e = tid; e < D * H; e += THREADS) {
    const int d = e / H, j = e % H;
    float acc = 0.0f;
    for (int r = 0; r < R; ++r) acc = fmaf(sh.dy[r * D + d], sh.h2[r * H + j], acc);
    g[a.o_w3 + e] += acc;
  }
  if (tid < D) {
    float acc = 0.0f;
    for (int r = 0; r < R; ++r) acc += sh.dy[r * D + tid];
    g[a.o_b3 + tid] += acc;
  }
  // dz2 = (dy W3) ⊙ sigmoid(z2), in place of z2
  for (int e = tid; e < R * H; e += THREADS) {
    const int r = e / H, j = e % H;
    float dh = 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) dh = fmaf(sh.dy[r * D + d], a.w3[d * H + j], dh);
    const float dz = dh * sigmoid(sh.z2[e]);
    sh.z2[e] = dz;
    sh.dz2t[j * RT + r] = dz;
  }
  __syncthreads();

  // fc2.bias, fc2.level_bias: column j belongs to one thread, so the per-level sums need no atomics
  if (tid < H) {
    float acc = 0.0f;
    for (int r = 0; r < rows; ++r) acc += sh.z2[r * H + tid];
    g[a.o_b2 + tid] += acc;
    add_level_sums(g + a.o_e2, sh.level, sh.z2, rows, tid);
  }
  // fc2.weight: dW2[j][k] = Σ_r dz2[r][j] h1[r][k]; thread owns rows jb…jb+7 and the 8 columns
  // k0 + 16·b, 64 FMAs for each 8 + 8 values it reads (two shared reads per FMA before). Columns 16
  // apart put a warp's reads of h1ᵀ on 8 banks (8 apart, they would all share one) and its writes
  // of a row on consecutive addresses.
  {
    const int jb = (tid / 16) * 8, k0 = tid % 16;
    float acc[8][8] = {};
    for (int r = 0; r < R; ++r) {
      const float4 d0 = *reinterpret_cast<const float4*>(&sh.z2[r * H + jb]);
      const float4 d4 = *reinterpret_cast<const float4*>(&sh.z2[r * H + jb + 4]);
      const float dv[8] = {d0.x, d0.y, d0.z, d0.w, d4.x, d4.y, d4.z, d4.w};
      float hv[8];
#pragma unroll
      for (int b = 0; b < 8; ++b) hv[b] = sh.h1t[(k0 + 16 * b) * RT + r];
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[i][b] = fmaf(dv[i], hv[b], acc[i][b]);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int b = 0; b < 8; ++b) g[a.o_w2 + static_cast<int64_t>(jb + i) * H + k0 + 16 * b] += acc[i][b];
  }
  // dz1 = (dz2 W2) ⊙ sigmoid(z1), in place of z1; thread owns column k for 8 rows
  {
    const int k = tid % H, rb = (tid / H) * 8;
    float acc[8] = {};
    for (int j = 0; j < H; ++j) {
      const float w = a.w2[j * H + k];
      const float4 d0 = *reinterpret_cast<const float4*>(&sh.dz2t[j * RT + rb]);
      const float4 d4 = *reinterpret_cast<const float4*>(&sh.dz2t[j * RT + rb + 4]);
      const float dv[8] = {d0.x, d0.y, d0.z, d0.w, d4.x, d4.y, d4.z, d4.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] = fmaf(dv[i], w, acc[i]);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int e = (rb + i) * H + k;
      sh.z1[e] = acc[i] * sigmoid(sh.z1[e]);
    }
  }
  __syncthreads();

  // fc1.bias, fc1.level_bias, fc1.weight
  if (tid < H) {
    float acc = 0.0f;
    float dw[D] = {};
    for (int r = 0; r < rows; ++r) {
      const float v = sh.z1[r * H + tid];
      acc += v;
#pragma unroll
      for (int d = 0; d < D; ++d) dw[d] = fmaf(v, sh.xt[r * D + d], dw[d]);
    }
    g[a.o_b1 + tid] += acc;
    add_level_sums(g + a.o_e1, sh.level, sh.z1, rows, tid);
#pragma unroll
    for (int d = 0; d < D; ++d) g[a.o_w1 + tid * D + d] += dw[d];
  }
}

template <int D>
__global__ void __launch_bounds__(THREADS) dsm_train_k(TrainArgs a) {
  extern __shared__ __align__(32) unsigned char raw[];  // as the Langevin kernel declares it
  TrainShared<D>& sh = *reinterpret_cast<TrainShared<D>*>(raw);
  float* g = a.partials + static_cast<int64_t>(blockIdx.x) * a.param_count;
  for (int64_t i = threadIdx.x; i < a.param_count; i += THREADS) g[i] = 0.0f;
  const int64_t tiles = (a.rows + R - 1) / R;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    __syncthreads();  // the zeroing, or the previous tile's reads of shared memory, are done
    dsm_train_tile<D>(a, sh, g, tile * R);
  }
}

template <int D>
void launch_train(const TrainArgs& a, unsigned blocks, float* grads, cudaStream_t stream) {
  dsm_train_k<D><<<blocks, THREADS, sizeof(TrainShared<D>), stream>>>(a);
  launch_check("fused DSM forward/backward");
  add_slices(grads, a.partials, blocks, a.param_count, stream);
}

// Blocks of the training kernel that fit on the GPU at once (more would only add partial gradients),
// after opting the kernel into its shared memory.
template <int D>
int64_t resident_train_blocks(int multiprocessors) {
  int per_sm = 0;
  cuda_check(cudaFuncSetAttribute(dsm_train_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(sizeof(TrainShared<D>))),
             "fused training: shared memory");
  cuda_check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, dsm_train_k<D>, THREADS, sizeof(TrainShared<D>)),
             "fused training: occupancy");
  return static_cast<int64_t>(std::max(per_sm, 1)) * multiprocessors;
}

bool data_dim_supported(int64_t d) { return d == 1 || d == 2 || d == 3 || d == 4 || d == 8; }

size_t langevin_shared_bytes(int64_t d) {
  switch (d) {
    case 1: return sizeof(Shared<1>);
    case 2: return sizeof(Shared<2>);
    case 3: return sizeof(Shared<3>);
    case 4: return sizeof(Shared<4>);
    default: return sizeof(Shared<8>);
  }
}

size_t train_shared_bytes(int64_t d) {
  switch (d) {
    case 1: return sizeof(TrainShared<1>);
    case 2: return sizeof(TrainShared<2>);
    case 3: return sizeof(TrainShared<3>);
    case 4: return sizeof(TrainShared<4>);
    default: return sizeof(TrainShared<8>);
  }
}

// "" when the kernels are written for this shape, else why not.
std::string shape_problem(const MlpShape& shape) {
  if (shape.width != H || shape.depth != 2)
    return "the fused kernels are written for width " + std::to_string(H) + " and depth 2, not width " +
           std::to_string(shape.width) + " and depth " + std::to_string(shape.depth);
  if (!data_dim_supported(shape.data_dim))
    return "the fused kernels take data of dimension 1, 2, 3, 4 or 8, not " + std::to_string(shape.data_dim);
  if (shape.first_layer != FirstLayer::softplus) return "the fused kernels are written for a softplus first layer, not sin";
  return "";
}

std::string shared_problem(const char* kernel, size_t need, size_t limit) {
  if (need <= limit) return "";
  return std::string("the fused ") + kernel + " kernel needs " + std::to_string(need / 1024) +
         " KiB of shared memory per block and this GPU allows " + std::to_string(limit / 1024) + " KiB";
}

}  // namespace

FusedMlp::FusedMlp(int device, cudaStream_t stream, Device& memory, bool tf32)
    : stream_(stream), memory_(memory), tf32_(tf32) {
  int limit = 0;
  cuda_check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "shared memory limit");
  shared_limit_ = static_cast<size_t>(limit);
  cuda_check(cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, device), "multiprocessors");
}

std::string FusedMlp::langevin_unavailable(const MlpShape& shape) const {
  const std::string why = shape_problem(shape);
  return why.empty() ? shared_problem("Langevin", langevin_shared_bytes(shape.data_dim), shared_limit_) : why;
}

std::string FusedMlp::training_unavailable(const MlpShape& shape) const {
  const std::string why = shape_problem(shape);
  return why.empty() ? shared_problem("training", train_shared_bytes(shape.data_dim), shared_limit_) : why;
}

bool FusedMlp::langevin_level(const MlpShape& shape, const float* params, const float* inv_sigma, int32_t level,
                              Mat<float> x, int64_t steps, float drift, float diffusion, uint64_t seed,
                              uint64_t first_step, float denoise, const std::atomic<bool>*) {
  if (!langevin_unavailable(shape).empty() || (x.rows + P - 1) / P > 0x7fffffff) return false;
  const auto layout = mlp_layout(shape);
  auto at = [&](size_t t) { return params + layout[t].offset; };
  const LevelArgs a{x.data, x.rows, at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), inv_sigma + level, level,
                    steps, drift, diffusion, denoise, seed, first_step};
  switch (shape.data_dim) {
    case 1: launch<1>(a, tf32_, stream_); break;
    case 2: launch<2>(a, tf32_, stream_); break;
    case 3: launch<3>(a, tf32_, stream_); break;
    case 4: launch<4>(a, tf32_, stream_); break;
    default: launch<8>(a, tf32_, stream_); break;
  }
  ++langevin_runs_;
  return true;
}

bool FusedMlp::dsm_gradients(const MlpShape& shape, const float* params, const float* sigma, const float* inv_sigma,
                             Mat<float> xt, Mat<float> noise, const int32_t* level, float grad_scale, float* loss,
                             float* grads) {
  if (!training_unavailable(shape).empty()) return false;
  const int d = static_cast<int>(shape.data_dim);
  const auto layout = mlp_layout(shape);
  const int64_t p = layout.back().offset + layout.back().size, tiles = (xt.rows + R - 1) / R;
  int64_t& resident = resident_train_blocks_[d];
  if (resident == 0) {
    switch (d) {
      case 1: resident = resident_train_blocks<1>(multiprocessors_); break;
      case 2: resident = resident_train_blocks<2>(multiprocessors_); break;
      case 3: resident = resident_train_blocks<3>(multiprocessors_); break;
      case 4: resident = resident_train_blocks<4>(multiprocessors_); break;
      default: resident = resident_train_blocks<8>(multiprocessors_); break;
    }
  }
  const int64_t blocks = std::max<int64_t>(1, std::min(tiles, resident));
  if (partials_.size() < blocks * p) partials_ = Array<float>(memory_, blocks * p);
  auto at = [&](size_t t) { return params + layout[t].offset; };
  auto off = [&](size_t t) { return layout[t].offset; };
  const TrainArgs a{xt.data, noise.data, sigma, inv_sigma, level, xt.rows,
                    at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), grad_scale, loss, partials_.data(), p,
                    off(0), off(1), off(2), off(3), off(4), off(5), off(6), off(7)};
  const unsigned grid = static_cast<unsigned>(blocks);
  switch (d) {
    case 1: launch_train<1>(a, grid, grads, stream_); break;
    case 2: launch_train<2>(a, grid, grads, stream_); break;
    case 3: launch_train<3>(a, grid, grads, stream_); break;
    case 4: launch_train<4>(a, grid, grads, stream_); break;
    default: launch_train<8>(a, grid, grads, stream_); break;
  }
  ++training_runs_;
  return true;
}

}  // namespace ncsn
