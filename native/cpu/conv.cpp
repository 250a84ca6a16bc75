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
//              dx = W̃ · windows(dyp): the same stride-1 product over dy padded, with
//              W̃[ci][co, a, b] = W[co][ci][2 − a][2 − b], the weights transposed and flipped
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu_ops.h"
#include "gemm.h"

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

}  // namespace

template <typename T>
void CpuOps<T>::conv3x3_forward(Tensor4<T> y, Tensor4<T> x, const T* w, const T* b, int stride, Tensor4<T> add) {
  check_conv(y, x, stride);
  if (add.data && (add.n != y.n || add.c != y.c || add.h != y.h || add.w != y.w))
    throw std::invalid_argument("conv3x3: the tensor added to the output differs from it in shape");
  thread_local std::vector<T> buf;
  thread_local std::vector<const T*> rows;
  const int64_t p = y.plane(), k = x.c * 9;
  for (int64_t i = 0; i < x.n; ++i) {
    if (stride == 1) {
      const T* xp = pad(buf, x, i);
      conv_windows(y.channel(i, 0), w, b, add.data ? add.channel(i, 0) : nullptr, windows(rows, xp, x.c, x.h, x.w), y.c,
                   x.c, x.h, x.w);
      continue;
    }
    T* cols = scratch(buf, static_cast<size_t>(k * p));
    unfold(cols, x, i, y.h, y.w, stride);
    for (int64_t co = 0; co < y.c; ++co) std::fill(y.channel(i, co), y.channel(i, co) + p, b[co]);
    gemm(GemmArgs<T>{y.channel(i, 0), p, w, k, 1, cols, p, y.c, p, k, true});
    if (add.data) {  // while the image's output is in cache
      T* out = y.channel(i, 0);
      const T* r = add.channel(i, 0);
      for (int64_t j = 0; j < y.c * p; ++j) out[j] += r[j];
    }
  }
}

template <typename T>
void CpuOps<T>::conv3x3_backward(Tensor4<T> dx, T* dw, T* db, Tensor4<T> dy, Tensor4<T> x, const T* w, int stride) {
  check_conv(dy, x, stride);
  thread_local std::vector<T> buf, buf_t, buf_w, buf_flip, buf_dyp;
  thread_local std::vector<const T*> rows, dy_rows;
  const int64_t p = dy.plane(), k = x.c * 9;
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
      if (dx.data)
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
}

#define NCSN_INSTANTIATE(T)                                                                            \
  template void CpuOps<T>::conv3x3_forward(Tensor4<T>, Tensor4<T>, const T*, const T*, int, Tensor4<T>);      \
  template void CpuOps<T>::conv3x3_backward(Tensor4<T>, T*, T*, Tensor4<T>, Tensor4<T>, const T*, int);
NCSN_INSTANTIATE(float)
NCSN_INSTANTIATE(double)
#undef NCSN_INSTANTIATE

}  // namespace ncsn
