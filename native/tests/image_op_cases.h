// The image ops' cases for the op harness (native/tests/op_harness.h): each builds its views over
// the harness's buffers and runs one op forward and backward. The tests run them at small sizes,
// native/bench/image_ops.cpp at the U-Net's.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "op_harness.h"

namespace ncsn::test {

// y = conv3x3(x) + b. With `slice`, x is channels [1, 1 + ci) of a tensor two channels wider and
// dx a slice of its gradient: a concatenation read in place. With `residual`, y = conv3x3(x) + b + r,
// r a fourth input of y's shape added in the epilogue, whose gradient is dy (a residual block's
// second convolution).
// Every output, input gradient and weight gradient is a sum of at most terms() products of two
// values in [−1, 1]; the float tolerance is that many roundings of 2⁻²³ (1e-5 at least).
struct Conv3x3 {
  int64_t n, ci, co, h, w;
  int stride;
  bool slice = false, residual = false;
  std::string name;
  std::vector<OpInput> inputs;
  int64_t out_size, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance;

  Conv3x3(int64_t n_, int64_t ci_, int64_t co_, int64_t h_, int64_t w_, int stride_, bool slice_ = false,
          bool residual_ = false)
      : n(n_), ci(ci_), co(co_), h(h_), w(w_), stride(stride_), slice(slice_), residual(residual_) {
    name = "conv3x3 " + std::to_string(ci) + "→" + std::to_string(co) + " on " + std::to_string(h) + "×" +
           std::to_string(w) + " stride " + std::to_string(stride) + (slice ? " from a channel slice" : "") +
           (residual ? " plus a residual branch" : "");
    inputs = {{n * (ci + (slice ? 2 : 0)) * h * w}, {co * ci * 9, -0.5, 0.5}, {co}};
    out_size = n * co * ho() * wo();
    if (residual) inputs.push_back({out_size});
    float_tolerance = std::max(1e-5, static_cast<double>(terms()) * std::ldexp(1.0, -23));
  }
  int64_t terms() const { return std::max({ci * 9, co * 9, n * ho() * wo()}); }
  // On the tensor cores each product's two inputs are rounded to 10 (TF32) or 7 (BF16) fraction
  // bits, a relative error of at most 2⁻¹⁰ or 2⁻⁷ per product (two roundings of 2⁻¹¹ or 2⁻⁸);
  // the bound is twice that over terms() products, which also covers the FP32 accumulation.
  double tolerance(Precision p) const {
    if (p == Precision::fp32) return float_tolerance;
    return static_cast<double>(terms()) * std::ldexp(1.0, p == Precision::tf32 ? -9 : -6);
  }
  int64_t ho() const { return (h - 1) / stride + 1; }
  // forward FLOPs (an FMA counts 2); the backward does twice as many (dx and dW)
  double flops() const { return 2.0 * static_cast<double>(n * co * ci * 9 * ho() * wo()); }
  int64_t wo() const { return (w - 1) / stride + 1; }
  template <typename T>
  Tensor4<T> in_view(T* p) const {
    return slice ? nchw(p, n, ci + 2, h, w).channels(1, 1 + ci) : nchw(p, n, ci, h, w);
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.image_ops()->conv3x3_forward(nchw(b.out, n, co, ho(), wo()), in_view(b.in[0]), b.in[1], b.in[2], stride,
                                     residual ? nchw(b.in[3], n, co, ho(), wo()) : Tensor4<T>{});
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.image_ops()->conv3x3_backward(in_view(b.grad[0]), b.grad[1], b.grad[2], nchw(b.dout, n, co, ho(), wo()), in_view(b.in[0]),
                         b.in[1], stride);
    if (residual) ops.copy(b.grad[3], b.dout, sizeof(T) * out_size);
  }
};

// CondInstanceNorm++ with `levels` rows of [γ | β | α]; inputs with a per-channel offset, so
// that the channel means differ as they do in a network. With `elu`, ELU fused in (the U-Net's
// normact): the backward reads the forward's output for ELU′.
struct CondInstanceNorm {
  int64_t n, c, h, w, levels;
  bool elu = false;
  std::string name;
  std::vector<OpInput> inputs;
  int64_t out_size, scratch_size;
  std::vector<int32_t> level;
  double float_tolerance = 1e-5;

  CondInstanceNorm(int64_t n_, int64_t c_, int64_t h_, int64_t w_, int64_t levels_, bool elu_ = false)
      : n(n_), c(c_), h(h_), w(w_), levels(levels_), elu(elu_) {
    name = "cond_instance_norm " + std::to_string(c) + " channels on " + std::to_string(h) + "×" + std::to_string(w) +
           (elu ? " with ELU" : "");
    inputs = {{n * c * h * w, -2, 2}, {levels * 3 * c, 0.5, 1.5}};
    out_size = n * c * h * w;
    scratch_size = n * (2 * c + 2);
    level = levels_of(n, static_cast<int32_t>(levels));
  }
  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.image_ops()->cond_instance_norm_forward(nchw(b.out, n, c, h, w), nchw(b.in[0], n, c, h, w), b.in[1], b.level, b.scratch,
                                                elu);
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.image_ops()->cond_instance_norm_backward(nchw(b.grad[0], n, c, h, w), b.grad[1], levels, nchw(b.dout, n, c, h, w),
                                    nchw(b.in[0], n, c, h, w), b.in[1], b.level, b.scratch,
                                    elu ? nchw(b.out, n, c, h, w) : Tensor4<T>{});
  }
};

// concat(up2(x), skip) written in place, as the U-Net does: up2 writes channels [0, c) of the
// wider output and the skip connection is copied into channels [c, c + 2).
struct Upsample2Concat {
  int64_t n = 2, c = 3, h = 3, w = 4, wide = c + 2;
  std::string name = "upsample2 and a skip connection into one tensor";
  std::vector<OpInput> inputs = {{n * c * h * w}, {n * 2 * 4 * h * w}};
  int64_t out_size = n * wide * 4 * h * w, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance = 1e-7;

  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    const Tensor4<T> out = nchw(b.out, n, wide, 2 * h, 2 * w), skip = nchw(b.in[1], n, 2, 2 * h, 2 * w);
    ops.image_ops()->upsample2_forward(out.channels(0, c), nchw(b.in[0], n, c, h, w));
    for (int64_t i = 0; i < n; ++i) ops.copy(out.channel(i, c), skip.channel(i, 0), sizeof(T) * 2 * skip.plane());
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    const Tensor4<T> dout = nchw(b.dout, n, wide, 2 * h, 2 * w), dskip = nchw(b.grad[1], n, 2, 2 * h, 2 * w);
    ops.image_ops()->upsample2_backward(nchw(b.grad[0], n, c, h, w), dout.channels(0, c));
    for (int64_t i = 0; i < n; ++i) ops.copy(dskip.channel(i, 0), dout.channel(i, c), sizeof(T) * 2 * dskip.plane());
  }
};

// out = a, then out += b: a gradient's second share added to its first; both receive dout.
struct AddInto {
  int64_t n = 2, c = 3, h = 4, w = 3;
  std::string name = "add_into";
  std::vector<OpInput> inputs = {{n * c * h * w}, {n * c * h * w}};
  int64_t out_size = n * c * h * w, scratch_size = 0;
  std::vector<int32_t> level;
  double float_tolerance = 1e-7;

  template <typename T>
  void forward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.out, b.in[0], sizeof(T) * out_size);
    ops.image_ops()->add_into(nchw(b.out, n, c, h, w), nchw(b.in[1], n, c, h, w));
  }
  template <typename T>
  void backward(Ops<T>& ops, const OpBuffers<T>& b) const {
    ops.copy(b.grad[0], b.dout, sizeof(T) * out_size);
    ops.copy(b.grad[1], b.dout, sizeof(T) * out_size);
  }
};

}  // namespace ncsn::test
