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
