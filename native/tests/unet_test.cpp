// The W2 U-Net: its parameter count, and its backward pass against finite differences in double
// through every layer, norm, concatenation and residual connection.
#include <cmath>
#include <vector>

#include "check.h"
#include "core/unet.h"
#include "cpu/cpu_ops.h"

using namespace ncsn;
using test::random_values;

TEST(unet_has_w2s_parameter_counts) {
  // docs/workloads.md W2: 519,681 parameters with C = 32 and 2,016,257 with C = 64 (MNIST, L = 10)
  CHECK(UNet<float>(UNetShape{1, 28, 28, 32, 10}).param_count() == 519681, "C = 32");
  CHECK(UNet<float>(UNetShape{1, 28, 28, 64, 10}).param_count() == 2016257, "C = 64");
  const UNet<float> rgb(UNetShape{3, 8, 8, 4, 5});
  const auto& layout = rgb.layout();
  CHECK(layout.front().name == "conv_in.weight" && layout.front().shape == (std::vector<int64_t>{4, 3, 3, 3}),
        "the first tensor is " << layout.front().name);
  CHECK(layout.back().name == "conv_out.bias" && layout.back().shape == std::vector<int64_t>{3}, "the last tensor");
}

TEST(unet_refuses_shapes_it_cannot_halve_twice) {
  bool refused = false;
  try {
    UNet<float> u(UNetShape{1, 30, 28, 8, 10});
  } catch (const std::invalid_argument&) {
    refused = true;
  }
  CHECK(refused, "a 30×28 image was taken");
}

TEST(gradcheck_unet) {
  CpuOps<double> ops(1);
  const UNetShape shape{2, 8, 8, 2, 3};  // two image channels, C = 2, three levels
  UNet<double> net(shape);
  const int64_t n = 2, d = net.data_dim(), p = net.param_count();
  std::vector<double> params = random_values<double>(static_cast<size_t>(p), 1, -0.5, 0.5);
  for (const ParamTensor& t : net.layout())  // γ and α near 1, as the initialiser draws them
    if (t.init == ParamInit::norm_embed)
      for (int64_t i = 0; i < t.size; ++i) {
        const int64_t col = i % t.shape[1], c = t.shape[1] / 3;
        if (col < c || col >= 2 * c) params[t.offset + i] += 1.0;
      }
  std::vector<double> x = random_values<double>(static_cast<size_t>(n * d), 2, 0, 1), s(n * d), grads(p);
  const std::vector<double> r = random_values<double>(static_cast<size_t>(n * d), 3);
  const std::vector<int32_t> level = {2, 0};
  net.reserve(ops, n);
  auto loss = [&] {
    net.score(ops, 0, {s.data(), n, d}, {x.data(), n, d}, level.data(), params.data());
    double l = 0;
    for (int64_t i = 0; i < n * d; ++i) l += r[i] * s[i];
    return l;
  };
  loss();
  std::vector<double> ds = r;
  net.backward(ops, 0, {ds.data(), n, d}, {x.data(), n, d}, level.data(), params.data(), grads.data());
  CHECK(ds == r, "backward changed dL/ds");
  const double h = 1e-6;
  for (int64_t i = 0; i < p; ++i) {
    const double keep = params[i];
    params[i] = keep + h;
    const double up = loss();
    params[i] = keep - h;
    const double down = loss();
    params[i] = keep;
    const double numeric = (up - down) / (2 * h);
    CHECK(std::fabs(numeric - grads[i]) <= 1e-6 * std::max({1.0, std::fabs(numeric), std::fabs(grads[i])}),
          "parameter " << i << ": analytic " << grads[i] << " vs numeric " << numeric);
  }
}
