// 3×3 convolution with padding 1, stride 1 or 2, as matrix products over an unfolded input: for
// each image, cols[(ci·3 + dy)·3 + dx][p] is the input pixel that output pixel p sees through tap
// (dy, dx) of input channel ci (0 outside the image), so that
//   forward    y = W · cols + b               W: [co, ci·9], cols: [ci·9, P]
//   backward   dWᵀ = Σ_images cols · dyᵀ,  db = Σ dy,  dcols = Wᵀ · dy, folded back into dx
// (dWᵀ rather than dW, since dy is a ninth of the size of cols or less, and only one operand of a
// product here can be read transposed).
//
// Stride 1, which most of the U-Net's convolutions are, never builds cols. With the image padded
// by one pixel all round, xp [ci, (h+2)·(w+2)], and the output laid out on a grid w+2 wide (two
// columns past each row are computed and dropped), row (ci, dy, dx) of cols is xp[ci] shifted by
// dy·(w+2) + dx: a window the product reads through a table of row pointers. Writing cols cost
// more than a third of a sampling step, in copies nine times the input's size.
//   forward    y = W · windows(xp) + b  (+ a residual branch, added as each row is written)
//   backward   dWᵀ = Σ_images windows(xp) · dyᵀ  (dy on the wide grid, zero in the dropped columns)
//              dx = W̃ · windows(dyp): the same stride-1 convolution over dy, with
//              W̃[ci][co, a, b] = W[co][ci][2 − a][2 − b], the weights transposed and flipped
// Between two layers of more than one channel, the stride-1 forward and dx take Winograd's
// F(2×2, 3×3) instead (below), 16 products per 2×2 outputs where the windows take 36: a W2
// sampling step 1.18× as fast on the 2-core AVX2 machine, training 1.10×. A convolution from or to
// one channel has too few products per tile to repay the transforms, and keeps the windows.
// The stride-2 forward reads windows as well, of the padded input split by the parity of its rows
// and columns (conv3x3_forward); only the stride-2 backward still builds cols.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu_ops.h"
#include "gemm.h"
#include "isa.h"

namespace ncsn {
namespace {

template <typename T>
T* scratch(std::vector<T>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

int64_t conv_out(int64_t in, int stride) { return (in - 1) / stride + 1; }

template <typename T>
void check_conv(const Tensor4<T>& y, const Tensor4<T>& x, int stride) {
  if (stride != 1 && stride != 2) throw std::invalid_argument("conv3x3: the stride must be 1 or 2");
  if (y.n != x.n || y.h != conv_out(x.h, stride) || y.w != conv_out(x.w, stride))
    throw std::invalid_argument("conv3x3: the output shape does not match the input's");
}

// cols [ci·9 × P] of image b.
template <typename T>
void unfold(T* cols, const Tensor4<T>& x, int64_t b, int64_t ho, int64_t wo, int stride) {
  const int64_t p = ho * wo;
  for (int64_t ci = 0; ci < x.c; ++ci) {
    const T* plane = x.channel(b, ci);
    for (int dy = 0; dy < 3; ++dy)
      for (int dx = 0; dx < 3; ++dx) {
        T* row = cols + ((ci * 3 + dy) * 3 + dx) * p;
        // the output columns whose tap lands inside the image: ox·stride + dx − 1 in [0, x.w)
        const int64_t first = dx == 0 ? 1 : 0, last = std::max(first, std::min(wo, (x.w - dx) / stride + 1));
        for (int64_t oy = 0; oy < ho; ++oy) {
          const int64_t iy = oy * stride + dy - 1;
          T* out = row + oy * wo;
          if (iy < 0 || iy >= x.h) {
            std::fill(out, out + wo, T(0));
            continue;
          }
          const T* in = plane + iy * x.w + dx - 1;
          std::fill(out, out + first, T(0));
          if (stride == 1) {
            std::memcpy(out + first, in + first, sizeof(T) * static_cast<size_t>(last - first));
          } else {
            for (int64_t ox = first; ox < last; ++ox) out[ox] = in[ox * stride];
          }
          std::fill(out + last, out + wo, T(0));
        }
      }
  }
}

// dx of image b += the unfolded gradient dcols, tap by tap (the adjoint of unfold).
template <typename T>
void fold(const Tensor4<T>& dx, int64_t b, const T* dcols, int64_t ho, int64_t wo, int stride) {
  const int64_t p = ho * wo;
  for (int64_t ci = 0; ci < dx.c; ++ci) {
    T* plane = dx.channel(b, ci);
    std::fill(plane, plane + dx.plane(), T(0));
    for (int dy = 0; dy < 3; ++dy)
      for (int dx_ = 0; dx_ < 3; ++dx_) {
        const T* row = dcols + ((ci * 3 + dy) * 3 + dx_) * p;
        const int64_t first = dx_ == 0 ? 1 : 0, last = std::max(first, std::min(wo, (dx.w - dx_) / stride + 1));
        for (int64_t oy = 0; oy < ho; ++oy) {
          const int64_t iy = oy * stride + dy - 1;
          if (iy < 0 || iy >= dx.h) continue;
          T* out = plane + iy * dx.w + dx_ - 1;
          const T* in = row + oy * wo;
          for (int64_t ox = first; ox < last; ++ox) out[ox * stride] += in[ox];
        }
      }
  }
}

// xp [c, (h+2)·(w+2)] (+2: the last window of the last plane reads two values past it, into
// dropped columns): image b of x with a border of zeros.
template <typename T>
T* pad(std::vector<T>& buf, const Tensor4<T>& x, int64_t b) {
  const int64_t wp = x.w + 2, plane = (x.h + 2) * wp;
  T* xp = scratch(buf, static_cast<size_t>(x.c * plane + 2));
  std::fill(xp, xp + x.c * plane + 2, T(0));
  for (int64_t ci = 0; ci < x.c; ++ci)
    for (int64_t iy = 0; iy < x.h; ++iy)
      std::memcpy(xp + ci * plane + (iy + 1) * wp + 1, x.channel(b, ci) + iy * x.w, sizeof(T) * static_cast<size_t>(x.w));
  return xp;
}

// rows[(ci·3 + dy)·3 + dx] = the window of padded plane ci that tap (dy, dx) sees.
template <typename T>
const T** windows(std::vector<const T*>& rows, const T* xp, int64_t c, int64_t h, int64_t w) {
  const int64_t wp = w + 2, plane = (h + 2) * wp;
  rows.resize(static_cast<size_t>(c * 9));
  for (int64_t ci = 0; ci < c; ++ci)
    for (int dy = 0; dy < 3; ++dy)
      for (int dx = 0; dx < 3; ++dx) rows[(ci * 3 + dy) * 3 + dx] = xp + ci * plane + dy * wp + dx;
  return rows.data();
}

// y [co, h, w] = W · windows(xp) (+ bias, + add [co, h, w], where given): a stride-1 convolution of a
// padded image.
template <typename T>
void conv_windows(T* y, const T* w, const T* bias, const T* add, const T** rows, int64_t co, int64_t ci, int64_t h,
                  int64_t wd) {
  thread_local std::vector<T> buf;
  const int64_t wp = wd + 2, q = h * wp;
  T* grid = scratch(buf, static_cast<size_t>(co * q));
  gemm(GemmArgs<T>{grid, q, w, ci * 9, 1, nullptr, 0, co, q, ci * 9, false, nullptr, rows});
  for (int64_t o = 0; o < co; ++o)
    for (int64_t oy = 0; oy < h; ++oy) {
      const T* in = grid + o * q + oy * wp;
      T* out = y + (o * h + oy) * wd;
      const T b = bias ? bias[o] : T(0);
      if (add) {
        const T* r = add + (o * h + oy) * wd;
        for (int64_t ox = 0; ox < wd; ++ox) out[ox] = in[ox] + b + r[ox];
      } else {
        for (int64_t ox = 0; ox < wd; ++ox) out[ox] = in[ox] + b;
      }
    }
}

// ---- stride 1 by Winograd's F(2×2, 3×3) (Lavin and Gray, 2016) ----
// Each 2×2 block of output pixels (a tile) comes from the 4×4 patch d of padded input under it:
//   Y = Aᵀ [Σ_ci U[co, ci] ⊙ V[ci]] A,   U = G g Gᵀ of each 3×3 weight g,   V = Bᵀ d B,
// 16 products per tile and channel pair where the direct sum takes 36. The sum over ci is 16
// matrix products, one for each position ξ = 4·row + column of the 4×4 transforms:
//   M[ξ] = U[ξ] · V[ξ],   U[ξ]: [co × ci],  V[ξ]: [ci × tiles],  M[ξ]: [co × tiles].
// The transforms take only additions and halvings, whose results do not depend on the vector width;
// their roundings keep the float results within the op harness's bound of the direct sum. Tiles run
// in blocks of whole tile rows (the images of a chunk in turn) small enough that a block's V and M
// stay in a core's L2 between the products.

#define NCSN_ALWAYS inline __attribute__((always_inline))

// The padded input of one channel is held as four planes, by the parity of its rows and columns:
// plane[2·(py % 2) + (px % 2)] holds padded pixel (py, px) at row py / 2, column px / 2, rows of
// n + 1 values for the n tiles across the image. Tile (ty, t)'s 4×4 patch then sits at index
// i = ty·(n + 1) + t and the next one along each plane, and every transform below is one loop over
// all the tiles of a stretch of rows. The last index of each row (t = n) is no tile: its values are
// computed, multiplied and never written out, which keeps the loops whole.

// Padded row py of the channel into its two planes: even[j] is padded column 2j, input column 2j − 1,
// odd[j] padded column 2j + 1, input column 2j (0 outside the image, and everywhere for a row of
// padding, src null).
template <typename T>
NCSN_ALWAYS void split_row_loop(T* __restrict even, T* __restrict odd, const T* __restrict src, int64_t w, int64_t n) {
  even[0] = odd[n] = T(0);
  if (!src) {
    std::fill(even + 1, even + n + 1, T(0));
    std::fill(odd, odd + n, T(0));
    return;
  }
  const int64_t pairs = w / 2;
  for (int64_t j = 0; j < pairs; ++j) {
    odd[j] = src[2 * j];
    even[j + 1] = src[2 * j + 1];
  }
  if (pairs < n) {  // an odd width: the last tile's right column is padding
    odd[pairs] = src[w - 1];
    even[n] = T(0);
  }
}

// v[ξ·ld + i] = (Bᵀ d B)[ξ] for the `count` indices i of a stretch of tile rows, from the four planes
// (each from the stretch's first row, one row more than the stretch), Bᵀ = [1 0 −1 0; 0 1 1 0;
// 0 −1 1 0; 0 1 0 −1]. col: scratch for Bᵀ d, 8·(count + 1) values.
template <typename T>
NCSN_ALWAYS void patch_loop(T* __restrict v, int64_t ld, const T* const* plane, int64_t row, int64_t count,
                            T* __restrict col) {
  const int64_t s = count + 1;
  for (int q = 0; q < 2; ++q) {  // Bᵀ d down the columns of parity q: rows 2ty .. 2ty + 3
    const T* __restrict e = plane[q];      // rows 2ty and, a plane row on, 2ty + 2
    const T* __restrict o = plane[2 + q];  // rows 2ty + 1 and 2ty + 3
    T* __restrict c0 = col + q * 4 * s;
    T* __restrict c1 = c0 + s;
    T* __restrict c2 = c1 + s;
    T* __restrict c3 = c2 + s;
    for (int64_t i = 0; i < count; ++i) {
      c0[i] = e[i] - e[i + row];
      c1[i] = o[i] + e[i + row];
      c2[i] = e[i + row] - o[i];
      c3[i] = o[i] - o[i + row];
    }
    c0[count] = c1[count] = c2[count] = c3[count] = T(0);
  }
  for (int k = 0; k < 4; ++k) {  // then across: columns 2t, 2t + 1, 2t + 2, 2t + 3
    const T* __restrict even = col + k * s;
    const T* __restrict odd = col + (4 + k) * s;
    T* __restrict v0 = v + (4 * k) * ld;
    T* __restrict v1 = v0 + ld;
    T* __restrict v2 = v1 + ld;
    T* __restrict v3 = v2 + ld;
    for (int64_t i = 0; i < count; ++i) {
      v0[i] = even[i] - even[i + 1];
      v1[i] = odd[i] + even[i + 1];
      v2[i] = even[i + 1] - odd[i];
      v3[i] = odd[i] - odd[i + 1];
    }
  }
}

// q[a][2i + b] = (Aᵀ M A)[a][b] + bias for the `count` indices i, from m[ξ·ld + i],
// Aᵀ = [1 1 1 0; 0 1 −1 −1]: output row 2ty + a of the tiles from index i on, in order.
template <typename T>
NCSN_ALWAYS void output_loop(T* __restrict q0, T* __restrict q1, const T* __restrict m, int64_t ld, int64_t count,
                             T bias) {
  for (int64_t i = 0; i < count; ++i) {
    T s[4][2];  // M A
    for (int k = 0; k < 4; ++k) {
      const T m0 = m[(4 * k) * ld + i], m1 = m[(4 * k + 1) * ld + i], m2 = m[(4 * k + 2) * ld + i],
              m3 = m[(4 * k + 3) * ld + i];
      s[k][0] = m0 + m1 + m2;
      s[k][1] = m1 - m2 - m3;
    }
    for (int b = 0; b < 2; ++b) {
      q0[2 * i + b] = s[0][b] + s[1][b] + s[2][b] + bias;
      q1[2 * i + b] = s[1][b] - s[2][b] - s[3][b] + bias;
    }
  }
}

// u[ξ·ld + q] = (G g Gᵀ)[ξ] for the 3×3 weights g of channel pair q, g[j] = wt[j·ld + q] (the
// weights transposed, so that the loop runs along q), G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
template <typename T>
NCSN_ALWAYS void weight_loop(T* __restrict u, const T* __restrict wt, int64_t ld, int64_t pairs) {
  for (int64_t q = 0; q < pairs; ++q) {
    T t[4][3];  // G g
    for (int c = 0; c < 3; ++c) {
      const T g0 = wt[c * ld + q], g1 = wt[(3 + c) * ld + q], g2 = wt[(6 + c) * ld + q];
      t[0][c] = g0;
      t[1][c] = T(0.5) * (g0 + g1 + g2);
      t[2][c] = T(0.5) * (g0 - g1 + g2);
      t[3][c] = g2;
    }
    for (int r = 0; r < 4; ++r) {
      u[(4 * r) * ld + q] = t[r][0];
      u[(4 * r + 1) * ld + q] = T(0.5) * (t[r][0] + t[r][1] + t[r][2]);
      u[(4 * r + 2) * ld + q] = T(0.5) * (t[r][0] - t[r][1] + t[r][2]);
      u[(4 * r + 3) * ld + q] = t[r][2];
    }
  }
}

NCSN_ISA_CLONES void transformed_weights(float* u, const float* wt, int64_t ld, int64_t pairs) {
  weight_loop(u, wt, ld, pairs);
}
void transformed_weights(double* u, const double* wt, int64_t ld, int64_t pairs) { weight_loop(u, wt, ld, pairs); }
NCSN_ISA_CLONES void split_row(float* even, float* odd, const float* src, int64_t w, int64_t n) {
  split_row_loop(even, odd, src, w, n);
}
void split_row(double* even, double* odd, const double* src, int64_t w, int64_t n) {
  split_row_loop(even, odd, src, w, n);
}
NCSN_ISA_CLONES void patches(float* v, int64_t ld, const float* const* plane, int64_t row, int64_t count, float* col) {
  patch_loop(v, ld, plane, row, count, col);
}
void patches(double* v, int64_t ld, const double* const* plane, int64_t row, int64_t count, double* col) {
  patch_loop(v, ld, plane, row, count, col);
}
NCSN_ISA_CLONES void outputs(float* q0, float* q1, const float* m, int64_t ld, int64_t count, float bias) {
  output_loop(q0, q1, m, ld, count, bias);
}
void outputs(double* q0, double* q1, const double* m, int64_t ld, int64_t count, double bias) {
  output_loop(q0, q1, m, ld, count, bias);
}

// Tile indices per block: V and M of a block take 16·(ci + co) values each, about 512 KiB of floats.
constexpr int64_t kWinogradBlockValues = 1 << 17;
constexpr int64_t kSkew = 16;

// Values of split input a stride-2 convolution puts into one product: 1 MiB of floats.
constexpr int64_t kPlaneValues = 1 << 18;

// A convolution from or to a single channel has too few products per tile to repay the transforms.
bool winograd_pays(int64_t ci, int64_t co) { return ci > 1 && co > 1; }

// y = conv3x3(x) with stride 1 (+ bias, + add, where given), w: [co, ci, 3, 3].
template <typename T>
void conv_winograd(const Tensor4<T>& y, const Tensor4<T>& x, const T* w, const T* bias, const Tensor4<T>& add) {
  thread_local std::vector<T> buf_u, buf_v, buf_m, buf_planes, buf_work;
  const int64_t ci = x.c, co = y.c, th = (x.h + 1) / 2, tw = (x.w + 1) / 2, row = tw + 1;
  // U[ξ], V[ξ] and M[ξ] lie kSkew values more than a whole number of pages apart, so that the 16
  // streams of a transform do not all fall into the same cache sets
  const int64_t u_ld = co * ci + kSkew;
  T* u = scratch(buf_u, static_cast<size_t>(25 * u_ld));
  transpose(u + 16 * u_ld, u_ld, w, 9, co * ci, 9);
  transformed_weights(u, u + 16 * u_ld, u_ld, co * ci);
  const int64_t block_rows = std::max<int64_t>(1, kWinogradBlockValues / (16 * (ci + co) * row));
  // a whole number of the kernel's column tiles: the columns past a block's tiles hold zeros or an
  // earlier block's values, and their products are not read
  const int64_t tile_cols = gemm_tile_cols(thread_isa());
  auto whole_tiles = [&](int64_t n) { return (n + tile_cols - 1) / tile_cols * tile_cols; };
  const int64_t ld = whole_tiles(block_rows * row);
  const int64_t v_ld = ci * ld + kSkew, m_ld = co * ld + kSkew;
  T* v = scratch(buf_v, static_cast<size_t>(16 * v_ld));
  T* m = scratch(buf_m, static_cast<size_t>(16 * m_ld));
  const int64_t plane_size = (th + 1) * row + 1;
  T* planes = scratch(buf_planes, static_cast<size_t>(4 * plane_size));
  T* work = scratch(buf_work, static_cast<size_t>(8 * (ld + 1)));  // Bᵀ d, then an output block's rows
  const int64_t tile_rows = x.n * th;
  for (int64_t r0 = 0; r0 < tile_rows; r0 += block_rows) {
    const int64_t r1 = std::min(tile_rows, r0 + block_rows);
    for (int64_t c = 0; c < ci; ++c)
      for (int64_t r = r0; r < r1;) {  // the block's tile rows of one image at a time
        const int64_t b = r / th, ty0 = r % th, ty1 = std::min(th, ty0 + r1 - r);
        for (int64_t py = 2 * ty0; py < 2 * ty1 + 2; ++py) {
          T* even = planes + 2 * (py % 2) * plane_size + py / 2 * row;
          const int64_t iy = py - 1;
          split_row(even, even + plane_size, iy >= 0 && iy < x.h ? x.channel(b, c) + iy * x.w : nullptr, x.w, tw);
        }
        const T* plane[4];
        for (int p = 0; p < 4; ++p) plane[p] = planes + p * plane_size + ty0 * row;
        patches(v + c * ld + (r - r0) * row, v_ld, plane, row, (ty1 - ty0) * row, work);
        r += ty1 - ty0;
      }
    const int64_t count = (r1 - r0) * row;
    for (int xi = 0; xi < 16; ++xi)
      gemm(GemmArgs<T>{m + xi * m_ld, ld, u + xi * u_ld, ci, 1, v + xi * v_ld, ld, co, whole_tiles(count), ci, false});
    for (int64_t o = 0; o < co; ++o) {
      T* q[2] = {work, work + 2 * ld};
      outputs(q[0], q[1], m + o * ld, m_ld, count, bias ? bias[o] : T(0));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / th, oy = 2 * (r % th);
        for (int a = 0; a < 2 && oy + a < y.h; ++a) {
          const T* in = q[a] + 2 * (r - r0) * row;
          T* out = y.channel(b, o) + (oy + a) * y.w;
          if (add.data) {
            const T* res = add.channel(b, o) + (oy + a) * y.w;
            for (int64_t j = 0; j < y.w; ++j) out[j] = in[j] + res[j];
          } else {
            std::copy(in, in + y.w, out);
          }
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void CpuOps<T>::conv3x3_forward(Tensor4<T> y, Tensor4<T> x, const T* w, const T* b, int stride, Tensor4<T> add) {
  check_conv(y, x, stride);
  if (add.data && (add.n != y.n || add.c != y.c || add.h != y.h || add.w != y.w))
    throw std::invalid_argument("conv3x3: the tensor added to the output differs from it in shape");
  if (stride == 1 && winograd_pays(x.c, y.c)) return conv_winograd(y, x, w, b, add);
  thread_local std::vector<T> buf, buf_grid;
  thread_local std::vector<const T*> rows;
  if (stride == 1) {
    for (int64_t i = 0; i < x.n; ++i) {
      const T* xp = pad(buf, x, i);
      conv_windows(y.channel(i, 0), w, b, add.data ? add.channel(i, 0) : nullptr, windows(rows, xp, x.c, x.h, x.w), y.c,
                   x.c, x.h, x.w);
    }
    return;
  }
  // Stride 2 reads windows too, of the four planes into which the padded image splits by the parity
  // of its rows and columns (split_row): tap (dy, dx) of output pixel (oy, ox) is pixel
  // (oy + dy / 2, ox + dx / 2) of plane (dy % 2, dx % 2), planes of (ho + 1) rows of wo + 1. A group
  // of images' planes lie one after another, so that one product covers the group on a grid of
  // (ho + 1)·(wo + 1) columns an image, whose last row and column are dropped: an image's output
  // alone (196 or 49 pixels in the U-Net) would leave a partial column tile.
  const int64_t pw = y.w + 1, ps = (y.h + 1) * pw, k = x.c * 9;
  const int64_t group = std::clamp<int64_t>(kPlaneValues / (4 * x.c * ps), 1, x.n);
  // + pw + 1: the windows of the last plane read past it, into dropped columns
  T* planes = scratch(buf, static_cast<size_t>(4 * x.c * group * ps + pw + 1));
  T* grid = scratch(buf_grid, static_cast<size_t>(y.c * group * ps));
  rows.resize(static_cast<size_t>(k));
  for (int64_t i0 = 0; i0 < x.n; i0 += group) {
    const int64_t g = std::min(group, x.n - i0), n = g * ps;
    for (int64_t c = 0; c < x.c; ++c)
      for (int64_t j = 0; j < g; ++j)
        for (int64_t py = 0; py < 2 * (y.h + 1); ++py) {
          T* even = planes + ((c * 4 + 2 * (py % 2)) * g + j) * ps + py / 2 * pw;
          const int64_t iy = py - 1;
          split_row(even, even + n, iy >= 0 && iy < x.h ? x.channel(i0 + j, c) + iy * x.w : nullptr, x.w, y.w);
        }
    std::fill(planes + 4 * x.c * n, planes + 4 * x.c * n + pw + 1, T(0));
    for (int64_t c = 0; c < x.c; ++c)
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx)
          rows[(c * 3 + dy) * 3 + dx] = planes + (c * 4 + 2 * (dy % 2) + dx % 2) * n + dy / 2 * pw + dx / 2;
    gemm(GemmArgs<T>{grid, n, w, k, 1, nullptr, 0, y.c, n, k, false, nullptr, rows.data()});
    for (int64_t j = 0; j < g; ++j)
      for (int64_t o = 0; o < y.c; ++o)
        for (int64_t oy = 0; oy < y.h; ++oy) {
          const T* in = grid + o * n + j * ps + oy * pw;
          T* out = y.channel(i0 + j, o) + oy * y.w;
          if (add.data) {
            const T* r = add.channel(i0 + j, o) + oy * y.w;
            for (int64_t ox = 0; ox < y.w; ++ox) out[ox] = in[ox] + b[o] + r[ox];
          } else {
            for (int64_t ox = 0; ox < y.w; ++ox) out[ox] = in[ox] + b[o];
          }
        }
  }
}

template <typename T>
void CpuOps<T>::conv3x3_backward(Tensor4<T> dx, T* dw, T* db, Tensor4<T> dy, Tensor4<T> x, const T* w, int stride) {
  check_conv(dy, x, stride);
  thread_local std::vector<T> buf, buf_t, buf_w, buf_flip, buf_dyp;
  thread_local std::vector<const T*> rows, dy_rows;
  const int64_t p = dy.plane(), k = x.c * 9;
  const bool winograd_dx = stride == 1 && dx.data && winograd_pays(dy.c, x.c);
  // stride 1 multiplies over the wide grid, h·(w+2) columns, with dy read from its padded copy
  const int64_t q = stride == 1 ? x.h * (x.w + 2) : p;
  T* dy_t = scratch(buf_t, static_cast<size_t>(dy.c * q));
  T* dw_t = scratch(buf_w, static_cast<size_t>(k * dy.c));
  T* w_flip = nullptr;
  if (stride == 1 && dx.data) {
    w_flip = scratch(buf_flip, static_cast<size_t>(k * dy.c));
    for (int64_t o = 0; o < dy.c; ++o)
      for (int64_t ci = 0; ci < x.c; ++ci)
        for (int t = 0; t < 9; ++t) w_flip[(ci * dy.c + o) * 9 + t] = w[(o * x.c + ci) * 9 + 8 - t];
  }
  std::fill(db, db + dy.c, T(0));
  std::fill(dw_t, dw_t + k * dy.c, T(0));
  for (int64_t i = 0; i < x.n; ++i) {
    const T* g = dy.channel(i, 0);
    for (int64_t co = 0; co < dy.c; ++co) {
      T s = 0;
      for (int64_t r = 0; r < p; ++r) s += g[co * p + r];
      db[co] += s;
    }
    if (stride == 1) {
      // dy padded as x is: its wide grid is the padded plane from (1, 1) on, whose dropped
      // columns land on the zero border
      const T* dyp = pad(buf_dyp, dy, i);
      const int64_t plane = (x.h + 2) * (x.w + 2);
      transpose(dy_t, dy.c, dyp + x.w + 3, plane, dy.c, q);
      const T* xp = pad(buf, x, i);
      gemm(GemmArgs<T>{dw_t, dy.c, nullptr, 0, 1, dy_t, dy.c, k, dy.c, q, true, windows(rows, xp, x.c, x.h, x.w)});
      if (dx.data && !winograd_dx)
        conv_windows(dx.channel(i, 0), w_flip, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr),
                     windows(dy_rows, dyp, dy.c, x.h, x.w), x.c, dy.c, x.h, x.w);
      continue;
    }
    T* cols = scratch(buf, static_cast<size_t>(k * p));
    unfold(cols, x, i, dy.h, dy.w, stride);
    transpose(dy_t, dy.c, g, p, dy.c, p);
    gemm(GemmArgs<T>{dw_t, dy.c, cols, p, 1, dy_t, dy.c, k, dy.c, p, true});  // dWᵀ += cols · dyᵀ
    if (dx.data) {
      gemm(GemmArgs<T>{cols, p, w, 1, k, g, p, k, p, dy.c, false});  // dcols = Wᵀ · dy
      fold(dx, i, cols, dy.h, dy.w, stride);
    }
  }
  transpose(dw, k, dw_t, dy.c, k, dy.c);
  if (winograd_dx) conv_winograd(dx, dy, w_flip, static_cast<const T*>(nullptr), Tensor4<T>{});
}

#define NCSN_INSTANTIATE(T)                                                                            \
  template void CpuOps<T>::conv3x3_forward(Tensor4<T>, Tensor4<T>, const T*, const T*, int, Tensor4<T>);      \
  template void CpuOps<T>::conv3x3_backward(Tensor4<T>, T*, T*, Tensor4<T>, Tensor4<T>, const T*, int);
NCSN_INSTANTIATE(float)
NCSN_INSTANTIATE(double)
#undef NCSN_INSTANTIATE

}  // namespace ncsn
