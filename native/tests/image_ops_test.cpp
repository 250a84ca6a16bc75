// The image ops (convolution with and without a residual branch, CondInstanceNorm++ with and without
// ELU, up-sampling, the add of two gradient shares) in the op
// harness: one table of cases, three checks over all of them.
#include <tuple>
#include <vector>

#include "image_op_cases.h"

using namespace ncsn;
using namespace ncsn::test;

namespace {

// The table: every shape the U-Net takes, in small sizes (odd sizes, both strides, slices).
const auto& cases() {
  static const auto table = std::make_tuple(
      std::vector<Conv3x3>{{2, 3, 4, 6, 5, 1}, {2, 3, 4, 7, 6, 2}, {1, 4, 2, 4, 4, 2}, {2, 2, 3, 5, 4, 1, true},
                           {1, 1, 3, 5, 5, 1}, {2, 3, 3, 5, 4, 1, true, true}, {2, 2, 3, 7, 6, 2, false, true}},
      std::vector<CondInstanceNorm>{{3, 4, 5, 6, 3}, {2, 2, 3, 3, 1}, {3, 4, 5, 6, 3, true}, {2, 3, 4, 4, 2, true}},
      std::vector<Upsample2Concat>{{}}, std::vector<AddInto>{{}});
  return table;
}

// The U-Net's own sizes on a small batch, for the GPU only (too large for finite differences): many
// tiles of each product, more than 64 channels, a weight gradient summed in several slices
// (3 × 784 pixels), a 1-channel input and output, stride 2, and a norm over 64 channels.
const auto& unet_sized_cases() {
  static const auto table = std::make_tuple(
      std::vector<Conv3x3>{{3, 32, 64, 28, 28, 1}, {3, 64, 64, 14, 14, 2}, {3, 96, 32, 28, 28, 1, true},
                           {3, 1, 32, 28, 28, 1}, {3, 32, 1, 28, 28, 1}, {2, 64, 130, 7, 7, 1},
                           {3, 64, 64, 28, 28, 1, false, true}},
      std::vector<CondInstanceNorm>{{3, 64, 28, 28, 10}, {5, 128, 7, 7, 10}, {3, 64, 28, 28, 10, true}});
  return table;
}

}  // namespace

TEST(image_ops_match_their_finite_difference_gradients) {
  for_every_case(cases(), [](const auto& c) { test::check_gradient(c); });
}

TEST(image_ops_in_float_match_double) {
  for_every_case(cases(), [](const auto& c) { test::check_float_against_double(c); });
}

TEST(image_ops_on_cuda_match_the_cpu) {
  for_every_case(cases(), [](const auto& c) { test::check_cuda_against_cpu(c); });
}

TEST(cuda_image_ops_at_unet_sizes_match_the_cpu) {
  for_every_case(unet_sized_cases(), [](const auto& c) { test::check_cuda_against_cpu(c); });
}

// TF32 and BF16 on the tensor cores, each within its documented bound (Conv3x3::tolerance).
TEST(conv3x3_on_cuda_tensor_cores_within_their_bounds) {
  for (const Precision p : {Precision::tf32, Precision::bf16})
    for (const Conv3x3& c : std::get<0>(cases())) test::check_cuda_against_cpu(c, p, c.tolerance(p));
}

TEST(cuda_tensor_core_conv3x3_at_unet_sizes_within_their_bounds) {
  for (const Precision p : {Precision::tf32, Precision::bf16})
    for (const Conv3x3& c : std::get<0>(unet_sized_cases())) test::check_cuda_against_cpu(c, p, c.tolerance(p));
}

namespace {

// y = the direct sum that defines conv3x3 (+ b, + the residual input where the case has one), and
// its gradients dx and dW for dout, in double: the reference for the CPU's fast paths.
OpResult direct_conv3x3(const Conv3x3& c, const std::vector<std::vector<double>>& in, const std::vector<double>& dout) {
  const int64_t n = c.n, ci = c.ci, co = c.co, h = c.h, w = c.w, ho = c.ho(), wo = c.wo();
  const std::vector<double>&x = in[0], &wt = in[1], &b = in[2];
  OpResult r{std::vector<double>(static_cast<size_t>(c.out_size)),
             {std::vector<double>(x.size(), 0.0), std::vector<double>(wt.size(), 0.0)}};
  auto tap = [&](int64_t o, int64_t i, int dy, int dx) {
    return wt[static_cast<size_t>(((o * ci + i) * 3 + dy) * 3 + dx)];
  };
  for (int64_t img = 0; img < n; ++img)
    for (int64_t o = 0; o < co; ++o)
      for (int64_t oy = 0; oy < ho; ++oy)
        for (int64_t ox = 0; ox < wo; ++ox) {
          const size_t at = static_cast<size_t>(((img * co + o) * ho + oy) * wo + ox);
          double s = b[static_cast<size_t>(o)] + (c.residual ? in[3][at] : 0.0);
          for (int64_t i = 0; i < ci; ++i)
            for (int dy = 0; dy < 3; ++dy)
              for (int dx = 0; dx < 3; ++dx) {
                const int64_t iy = oy * c.stride + dy - 1, ix = ox * c.stride + dx - 1;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                const size_t xi = static_cast<size_t>(((img * ci + i) * h + iy) * w + ix);
                s += tap(o, i, dy, dx) * x[xi];
                r.grad[0][xi] += tap(o, i, dy, dx) * dout[at];
                r.grad[1][static_cast<size_t>(((o * ci + i) * 3 + dy) * 3 + dx)] += x[xi] * dout[at];
              }
          r.out[at] = s;
        }
  return r;
}

}  // namespace

// At these sizes the CPU's stride-1 convolutions run by Winograd's F(2×2, 3×3) in blocks of tile
// rows that split images and cross from one image to the next, and the stride-2 forward reads the
// parity planes of groups of images (groups of 9 and 3 of the 12 images at 28×28). The forward and
// both gradients against the direct sum, in double and on every float kernel.
TEST(cpu_conv3x3_and_its_gradients_at_unet_sizes_match_the_direct_sum) {
  const std::vector<Conv3x3> table{{3, 32, 32, 28, 28, 1}, {3, 96, 32, 28, 28, 1}, {2, 128, 64, 14, 14, 1},
                                   {4, 64, 64, 7, 7, 1, false, true}, {2, 5, 7, 9, 11, 1},
                                   {12, 32, 64, 28, 28, 2}, {3, 64, 64, 14, 14, 2, false, true},
                                   {2, 5, 7, 9, 11, 2}};
  for (const Conv3x3& c : table) {
    auto inputs = random_inputs(c, 505);
    for (auto& v : inputs)
      for (double& x : v) x = static_cast<float>(x);
    std::vector<double> dout;
    for (double x : random_values<double>(static_cast<size_t>(c.out_size), 95)) dout.push_back(static_cast<float>(x));
    const OpResult want = direct_conv3x3(c, inputs, dout);
    CpuOps<double> d(1);
    const OpResult exact = run_case(d, c, inputs, dout);
    expect_near(c.name + ": double forward", exact.out, want.out, 1e-12);
    expect_near(c.name + ": double input gradient", exact.grad[0], want.grad[0], 1e-12);
    expect_near(c.name + ": double weight gradient", exact.grad[1], want.grad[1], 1e-12);
    CpuOps<float> f(1);
    for (int isa = 0; isa <= static_cast<int>(cpu_isa()); ++isa) {
      const CpuIsaLimit limit(static_cast<CpuIsa>(isa));
      const OpResult got = run_case(f, c, inputs, dout);
      const std::string on = c.name + " (kernel " + std::to_string(isa) + ")";
      expect_near(on + ": float forward", got.out, want.out, c.float_tolerance);
      expect_near(on + ": float input gradient", got.grad[0], want.grad[0], c.float_tolerance);
      expect_near(on + ": float weight gradient", got.grad[1], want.grad[1], c.float_tolerance);
    }
  }
}
