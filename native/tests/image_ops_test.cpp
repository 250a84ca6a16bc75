// The image ops (convolution, CondInstanceNorm++, ELU, up-sampling, residual add) in the op
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
                           {1, 1, 3, 5, 5, 1}},
      std::vector<CondInstanceNorm>{{3, 4, 5, 6, 3}, {2, 2, 3, 3, 1}},
      std::vector<Elu>{{}}, std::vector<Upsample2Concat>{{}}, std::vector<AddInto>{{}});
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
