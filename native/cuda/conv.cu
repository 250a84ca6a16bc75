// 3×3 convolution with padding 1, stride 1 or 2, on the GPU as implicit GEMM: the same three
// products as native/cpu/conv.cpp, but the unfolded input is never written; each tile loader reads
// the input pixel that a (row, column) of the product stands for, or 0 in the padding.
//   forward          Y[co][(b, p)]   = Σ_k W[co][k] · X̂[k][(b, p)] + bias (+ R[co][(b, p)]),   k = (ci, ty, tx)
//   backward data    dX[ci][(b, q)]  = Σ_k W[co][ci][t] · dŶ[k][(b, q)],     k = (co, ty, tx)
//   backward weights dW[co][(ci, t)] = Σ_(b,p) dY[co][(b, p)] · X̂[(ci, t)][(b, p)]
// where p runs over output pixels and q over input pixels. R, a residual branch, is added in the
// forward's epilogue as each output is stored. Backward data gathers, for input pixel
// (iy, ix) and tap (ty, tx), the output pixel whose tap lands there: oy·stride = iy + 1 − ty, which
// exists only when that is non-negative, divisible by the stride and inside the output.
// Backward weights sums over every pixel of the batch, a long K and a small M × N, so K is split
// into fixed slices whose partial products a second kernel adds in slice order: the result depends
// on the shape alone, never on timing (no atomics).
// Three kernels run the products: FP32 on the CUDA cores, and on the tensor cores (compute
// capability 8.0 and later) with TF32 or BF16 inputs and FP32 accumulation.
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "check.cuh"
#include "gemm.cuh"
#include "grid.cuh"
#include "image_ops.cuh"

namespace ncsn {
namespace {

constexpr int BM = 64, BN = 64, BK = 16;   // a block's tile of C, and the depth of one step in K
constexpr int FP32_THREADS = 256;          // 16 × 16 threads, each a 4 × 4 block of C
constexpr int TC_THREADS = 128;            // four warps, each a 32 × 32 quarter of C
constexpr int64_t WEIGHT_SPLIT_K = 2048;   // pixels per slice of the weight gradient's sum
constexpr int MAX_WEIGHT_SPLITS = 256;

// One 3×3 convolution's geometry; batch strides let inputs and outputs be channel slices.
struct ConvShape {
  int c_in, h, w, c_out, ho, wo, stride;
  int64_t x_stride, y_stride;
  __device__ int in_plane() const { return h * w; }
  __device__ int out_plane() const { return ho * wo; }
};

// Each problem gives C = A·B through a(m, k, row) and b(k, row, n, col), and store(m, n, value,
// slice). The divisions by the runtime image sizes that find an image and a pixel from a flat
// index are the costly part of a load, so they are made once and handed in: `col` holds B's column
// n decoded (problems whose B runs along N in memory, where every B element a thread loads shares
// its column), `row` depth k decoded (the weight gradient, where A and B both run along K and every
// element a thread loads in a step shares its depth). Divisions by 9 and 3 are by constants, cheap.
// A_K_FAST and B_N_FAST say which index runs along memory, so that the loaders give neighbouring
// threads neighbouring addresses.
struct NoDecode {};

// Output pixel p of image b, as the unfolded input's column: where its taps start.
struct OutputPixel {
  int64_t image;  // offset of the image in the input
  int y0, x0;     // oy·stride − 1, ox·stride − 1: tap (ty, tx) reads row y0 + ty, column x0 + tx
};

__device__ __forceinline__ OutputPixel output_pixel(const ConvShape& s, int b, int p) {
  const int oy = p / s.wo, ox = p - oy * s.wo;
  return {b * s.x_stride, oy * s.stride - 1, ox * s.stride - 1};
}

// The input pixel that output pixel `o` sees through tap t of channel ci, or 0 in the padding.
__device__ __forceinline__ float unfolded(const float* x, const ConvShape& s, const OutputPixel& o, int ci, int t) {
  const int iy = o.y0 + t / 3, ix = o.x0 + t % 3;
  if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) return 0.0f;
  return x[o.image + (static_cast<int64_t>(ci) * s.h + iy) * s.w + ix];
}

struct ForwardProblem {
  static constexpr bool A_K_FAST = true, B_N_FAST = true;
  using Col = OutputPixel;
  using Row = NoDecode;
  int M, N, K;
  ConvShape s;
  const float *x, *w, *bias;
  float* y;
  const float* add;  // a residual branch of y's shape, or null
  int64_t add_stride;
  __device__ Col col(int n) const {
    const int b = n / s.out_plane();
    return output_pixel(s, b, n - b * s.out_plane());
  }
  __device__ Row row(int) const { return {}; }
  __device__ float a(int m, int k, const Row&) const { return w[static_cast<int64_t>(m) * K + k]; }
  __device__ float b(int k, const Row&, int, const Col& c) const { return unfolded(x, s, c, k / 9, k % 9); }
  // (v + bias) + add, in the order the unfused conv-then-add rounds.
  __device__ void store(int m, int n, float v, int) const {
    const int b = n / s.out_plane();
    const int64_t at = static_cast<int64_t>(m) * s.out_plane() + (n - b * s.out_plane());
    float out = v + bias[m];
    if (add) out += add[b * add_stride + at];
    y[b * s.y_stride + at] = out;
  }
};

// Input pixel (iy, ix) of image b, as the column of the output gradient that backward data reads.
struct InputPixel {
  int64_t image;  // offset of the image in the output gradient
  int iy, ix;
};

struct BackwardDataProblem {
  static constexpr bool A_K_FAST = false, B_N_FAST = true;
  using Col = InputPixel;
  using Row = NoDecode;
  int M, N, K;
  ConvShape s;
  const float *dy, *w;
  float* dx;
  __device__ Col col(int n) const {
    const int b = n / s.in_plane(), q = n - b * s.in_plane(), iy = q / s.w;
    return {b * s.y_stride, iy, q - iy * s.w};
  }
  __device__ Row row(int) const { return {}; }
  __device__ float a(int m, int k, const Row&) const { return w[(static_cast<int64_t>(k / 9) * s.c_in + m) * 9 + k % 9]; }
  __device__ float b(int k, const Row&, int, const Col& c) const {
    const int co = k / 9, t = k % 9;
    // the stride is 1 or 2, so stride − 1 is both the mask of a remainder and the shift of a quotient
    const int sy = c.iy + 1 - t / 3, sx = c.ix + 1 - t % 3, odd = s.stride - 1;
    if (sy < 0 || sx < 0 || ((sy | sx) & odd)) return 0.0f;
    const int oy = sy >> odd, ox = sx >> odd;
    if (oy >= s.ho || ox >= s.wo) return 0.0f;
    return dy[c.image + (static_cast<int64_t>(co) * s.ho + oy) * s.wo + ox];
  }
  __device__ void store(int m, int n, float v, int) const {
    const int b = n / s.in_plane();
    dx[b * s.x_stride + static_cast<int64_t>(m) * s.in_plane() + (n - b * s.in_plane())] = v;
  }
};

// Depth k of the weight gradient: pixel p of image b, in the output gradient and the input.
struct BatchPixel {
  int64_t dy;  // offset of (b, channel 0, p) in the output gradient
  OutputPixel x;
};

struct BackwardWeightsProblem {
  static constexpr bool A_K_FAST = true, B_N_FAST = false;
  using Col = NoDecode;
  using Row = BatchPixel;
  int M, N, K;
  ConvShape s;
  const float *dy, *x;
  float* partial;  // one M × N product per slice of K
  __device__ Col col(int) const { return {}; }
  __device__ Row row(int k) const {
    const int b = k / s.out_plane(), p = k - b * s.out_plane();
    return {b * s.y_stride + p, output_pixel(s, b, p)};
  }
  __device__ float a(int m, int, const Row& r) const { return dy[r.dy + static_cast<int64_t>(m) * s.out_plane()]; }
  __device__ float b(int, const Row& r, int n, const Col&) const { return unfolded(x, s, r.x, n / 9, n % 9); }
  __device__ void store(int m, int n, float v, int slice) const {
    partial[(static_cast<int64_t>(slice) * M + m) * N + n] = v;
  }
};

// The tiles' loaders: element e of a BM × BK (or BK × BN) tile, walked so that neighbouring
// threads take neighbouring addresses of the operand in memory. With THREADS a multiple of BN, a
// thread's B elements share the column tid % BN when B is N-fast; with THREADS a multiple of BK,
// its A and B elements share the depth tid % BK when they are K-fast.
template <class P>
__device__ __forceinline__ void a_element(int e, int& mm, int& kk) {
  if (P::A_K_FAST) mm = e / BK, kk = e % BK;
  else mm = e % BM, kk = e / BM;
}
template <class P>
__device__ __forceinline__ void b_element(int e, int& kk, int& nn) {
  if (P::B_N_FAST) kk = e / BN, nn = e % BN;
  else kk = e % BK, nn = e / BK;
}

// What a thread's loads share: its column of B for the whole product, its depth for one step.
template <class P, int THREADS>
struct SharedDecode {
  static_assert(THREADS % BN == 0 && THREADS % BK == 0, "the loaders' shared column and depth");
  static_assert(P::B_N_FAST || P::A_K_FAST, "K-fast B needs K-fast A to share the depth");
  typename P::Col col;
  __device__ SharedDecode(const P& p, int n0) : col(p.col(n0 + threadIdx.x % BN)) {}
  __device__ typename P::Row row(const P& p, int k0) const { return p.row(k0 + threadIdx.x % BK); }
};

// FP32: the tiles in shared memory K-major, each thread a 4 × 4 block of C read as float4.
template <class P>
__global__ void __launch_bounds__(FP32_THREADS) conv_gemm_fp32(P p, int k_len) {
  constexpr int PAD = 4;  // keeps the float4 reads aligned and spreads the K-fast stores' banks
  __shared__ __align__(16) float as[BK][BM + PAD];
  __shared__ __align__(16) float bs[BK][BN + PAD];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16, slice = blockIdx.z;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k_begin = slice * k_len, k_end = min(p.K, k_begin + k_len);
  const SharedDecode<P, FP32_THREADS> decoded(p, n0);
  float acc[4][4] = {};
  for (int k0 = k_begin; k0 < k_end; k0 += BK) {
    const typename P::Row row = decoded.row(p, k0);
    for (int e = threadIdx.x; e < BM * BK; e += FP32_THREADS) {
      int mm, kk;
      a_element<P>(e, mm, kk);
      const int m = m0 + mm, k = k0 + kk;
      as[kk][mm] = m < p.M && k < k_end ? p.a(m, k, row) : 0.0f;
    }
    for (int e = threadIdx.x; e < BK * BN; e += FP32_THREADS) {
      int kk, nn;
      b_element<P>(e, kk, nn);
      const int n = n0 + nn, k = k0 + kk;
      bs[kk][nn] = n < p.N && k < k_end ? p.b(k, row, n, decoded.col) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
      const float4 bv = *reinterpret_cast<const float4*>(&bs[kk][tx * 4]);
      const float a4[4] = {av.x, av.y, av.z, av.w}, b4[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a4[i], b4[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < p.M && n < p.N) p.store(m, n, acc[i][j], slice);
    }
}

// Tensor cores: the tiles in shared memory as TF32 (rounded to nearest) or BF16, each warp a 32 × 32
// quarter of C in 2 × 2 WMMA fragments accumulated in FP32; C leaves through shared memory so that
// edges and the problem's store work element by element.
template <class P, bool BF16>
__global__ void __launch_bounds__(TC_THREADS) conv_gemm_tc(P p, int k_len) {
#if __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  using Elem = std::conditional_t<BF16, __nv_bfloat16, float>;
  using Input = std::conditional_t<BF16, __nv_bfloat16, wmma::precision::tf32>;
  constexpr int FK = BF16 ? 16 : 8;  // the fragment's depth
  constexpr int PAD = BF16 ? 8 : 4;  // 16 bytes: rows stay 32-byte aligned where fragments start
  __shared__ __align__(32) Elem as[BM][BK + PAD];
  __shared__ __align__(32) Elem bs[BK][BN + PAD];
  __shared__ __align__(32) float cs[BM][BN + 4];
  auto convert = [](float v) -> Elem {
    if constexpr (BF16) return __float2bfloat16_rn(v);
    else return wmma::__float_to_tf32(v);
  };
  const int warp = threadIdx.x / 32, wm = (warp / 2) * 32, wn = (warp % 2) * 32, slice = blockIdx.z;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k_begin = slice * k_len, k_end = min(p.K, k_begin + k_len);
  wmma::fragment<wmma::accumulator, 16, 16, FK, float> acc[2][2];
  for (auto& row : acc)
    for (auto& f : row) wmma::fill_fragment(f, 0.0f);
  const SharedDecode<P, TC_THREADS> decoded(p, n0);
  for (int k0 = k_begin; k0 < k_end; k0 += BK) {
    const typename P::Row row = decoded.row(p, k0);
    for (int e = threadIdx.x; e < BM * BK; e += TC_THREADS) {
      int mm, kk;
      a_element<P>(e, mm, kk);
      const int m = m0 + mm, k = k0 + kk;
      as[mm][kk] = convert(m < p.M && k < k_end ? p.a(m, k, row) : 0.0f);
    }
    for (int e = threadIdx.x; e < BK * BN; e += TC_THREADS) {
      int kk, nn;
      b_element<P>(e, kk, nn);
      const int n = n0 + nn, k = k0 + kk;
      bs[kk][nn] = convert(n < p.N && k < k_end ? p.b(k, row, n, decoded.col) : 0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += FK) {
      wmma::fragment<wmma::matrix_a, 16, 16, FK, Input, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, FK, Input, wmma::row_major> fb[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &as[wm + 16 * i][kk], BK + PAD);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &bs[kk][wn + 16 * j], BN + PAD);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&cs[wm + 16 * i][wn + 16 * j], acc[i][j], BN + 4, wmma::mem_row_major);
  __syncthreads();
  for (int e = threadIdx.x; e < BM * BN; e += TC_THREADS) {
    const int m = m0 + e / BN, n = n0 + e % BN;
    if (m < p.M && n < p.N) p.store(m, n, cs[e / BN][e % BN], slice);
  }
#endif
}

// A block per output channel: db[co] = Σ over the batch's pixels of dy, in double, in a fixed tree.
constexpr int BIAS_THREADS = 256;
__global__ void __launch_bounds__(BIAS_THREADS) bias_gradient_k(float* db, const float* dy, int64_t images,
                                                                int64_t plane, int64_t y_stride) {
  __shared__ double shared[BIAS_THREADS];
  const int64_t co = blockIdx.x;
  double s = 0;
  for (int64_t i = threadIdx.x; i < images * plane; i += BIAS_THREADS) {
    const int64_t b = i / plane;
    s += dy[b * y_stride + co * plane + (i - b * plane)];
  }
  const double total = block_sum<BIAS_THREADS>(s, shared);
  if (threadIdx.x == 0) db[co] = static_cast<float>(total);
}

int64_t conv_out(int64_t in, int stride) { return (in - 1) / stride + 1; }

void check_conv(const Tensor4<float>& y, const Tensor4<float>& x, int stride) {
  if (stride != 1 && stride != 2) throw std::invalid_argument("conv3x3: the stride must be 1 or 2");
  if (y.n != x.n || y.h != conv_out(x.h, stride) || y.w != conv_out(x.w, stride))
    throw std::invalid_argument("conv3x3: the output shape does not match the input's");
  // the products index rows, columns and depth in 32 bits
  const int64_t largest = std::max({x.n * x.c * x.plane(), y.n * y.c * y.plane(), x.c * 9 * y.c, y.c * 9});
  if (largest >= (int64_t(1) << 31) || x.n * y.plane() >= (int64_t(1) << 31))
    throw std::invalid_argument("conv3x3: " + std::to_string(x.n) + " images of " + std::to_string(x.c) + "×" +
                                std::to_string(x.h) + "×" + std::to_string(x.w) + " are more than one launch covers");
}

ConvShape shape_of(const Tensor4<float>& y, const Tensor4<float>& x, int stride) {
  return {static_cast<int>(x.c), static_cast<int>(x.h), static_cast<int>(x.w), static_cast<int>(y.c),
          static_cast<int>(y.h), static_cast<int>(y.w), stride, x.batch_stride, y.batch_stride};
}

template <class P>
void run_gemm(const P& p, int slices, int k_len, Precision precision, cudaStream_t stream, const char* what) {
  const int64_t n_tiles = (static_cast<int64_t>(p.N) + BN - 1) / BN, m_tiles = (static_cast<int64_t>(p.M) + BM - 1) / BM;
  if (m_tiles > 65535) throw std::invalid_argument(std::string(what) + ": more channels than one launch covers");
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(m_tiles), static_cast<unsigned>(slices));
  switch (precision) {
    case Precision::fp32: conv_gemm_fp32<P><<<grid, FP32_THREADS, 0, stream>>>(p, k_len); break;
    case Precision::tf32: conv_gemm_tc<P, false><<<grid, TC_THREADS, 0, stream>>>(p, k_len); break;
    case Precision::bf16: conv_gemm_tc<P, true><<<grid, TC_THREADS, 0, stream>>>(p, k_len); break;
  }
  launch_check(what);
}

}  // namespace

void CudaImageOps::conv3x3_forward(Tensor4<float> y, Tensor4<float> x, const float* w, const float* b, int stride,
                                   Tensor4<float> add) {
  check_conv(y, x, stride);
  if (add.data && (add.n != y.n || add.c != y.c || add.h != y.h || add.w != y.w))
    throw std::invalid_argument("conv3x3: the tensor added to the output differs from it in shape");
  const ForwardProblem p{static_cast<int>(y.c), static_cast<int>(x.n * y.plane()), static_cast<int>(x.c * 9),
                         shape_of(y, x, stride), x.data, w, b, y.data, add.data, add.batch_stride};
  if (p.M == 0 || p.N == 0) return;
  run_gemm(p, 1, p.K, precision_, stream_, "conv3x3_forward");
}

void CudaImageOps::conv3x3_backward(Tensor4<float> dx, float* dw, float* db, Tensor4<float> dy, Tensor4<float> x,
                                    const float* w, int stride) {
  check_conv(dy, x, stride);
  if (dx.data && (dx.n != x.n || dx.c != x.c || dx.h != x.h || dx.w != x.w))
    throw std::invalid_argument("conv3x3: the input gradient's shape differs from the input's");
  const ConvShape s = shape_of(dy, x, stride);
  if (dy.c == 0) return;
  bias_gradient_k<<<static_cast<unsigned>(dy.c), BIAS_THREADS, 0, stream_>>>(db, dy.data, dy.n, dy.plane(), dy.batch_stride);
  launch_check("conv3x3_backward (bias)");

  const BackwardWeightsProblem pw{static_cast<int>(dy.c), static_cast<int>(x.c * 9), static_cast<int>(x.n * dy.plane()), s,
                                  dy.data, x.data, nullptr};
  const int64_t weights = static_cast<int64_t>(pw.M) * pw.N;
  if (pw.K == 0) {
    cuda_check(cudaMemsetAsync(dw, 0, sizeof(float) * weights, stream_), "conv3x3_backward (weights)");
  } else if (weights > 0) {
    // slices of WEIGHT_SPLIT_K pixels, or longer ones where that would make too many
    int64_t k_len = std::max<int64_t>(WEIGHT_SPLIT_K, (pw.K + MAX_WEIGHT_SPLITS - 1) / MAX_WEIGHT_SPLITS);
    k_len = (k_len + BK - 1) / BK * BK;
    const int slices = static_cast<int>((pw.K + k_len - 1) / k_len);
    Array<float> partial(memory_, slices * weights);
    BackwardWeightsProblem p = pw;
    p.partial = partial.data();
    run_gemm(p, slices, static_cast<int>(k_len), precision_, stream_, "conv3x3_backward (weights)");
    add_slices(dw, partial.data(), slices, weights, stream_);
  }

  if (!dx.data) return;
  ConvShape sd = s;
  sd.x_stride = dx.batch_stride;
  const BackwardDataProblem pd{static_cast<int>(x.c), static_cast<int>(x.n * x.plane()), static_cast<int>(dy.c * 9), sd,
                               dy.data, w, dx.data};
  if (pd.M == 0 || pd.N == 0) return;
  run_gemm(pd, 1, pd.K, precision_, stream_, "conv3x3_backward (input)");
}

}  // namespace ncsn
