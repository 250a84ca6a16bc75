// The W2 U-Net: its parameter count, and its backward pass against finite differences in double
// through every layer, norm, concatenation and residual connection.
#include <cmath>
#include <vector>

#include "check.h"
#include "model/model.h"
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
  test::expect_gradient("unet parameters", params, grads, loss);
}

namespace {
ModelConfig small_unet_config() {
  ModelConfig c;
  c.kind = "unet";
  c.unet = UNetShape{1, 8, 8, 4, 0};
  c.sigmas = {1.0, 0.3, 0.1};
  c.seed = 7;
  c.device = "cpu";
  c.threads = 2;
  return c;
}
}  // namespace

TEST(unet_starts_as_w2_says) {
  Model model(small_unet_config());
  int64_t norms = 0;
  for (const NamedTensor& t : model.tensors()) {
    if (t.name.rfind("optimizer.", 0) == 0 || t.name.rfind("ema.", 0) == 0) continue;
    if (t.name.find(".embed.weight") == std::string::npos) continue;
    ++norms;
    const int64_t c = t.shape[1] / 3;
    double sum = 0, sq = 0;
    int64_t n = 0;
    for (size_t i = 0; i < t.data.size(); ++i) {
      const int64_t part = static_cast<int64_t>(i) % (3 * c) / c;  // 0: γ, 1: β, 2: α
      if (part == 1) {
        CHECK(t.data[i] == 0.0f, t.name << ": β starts at " << t.data[i]);
        continue;
      }
      sum += t.data[i];
      sq += (t.data[i] - 1.0) * (t.data[i] - 1.0);
      ++n;
    }
    CHECK(std::fabs(sum / n - 1) < 0.02, t.name << ": γ and α average " << sum / n);
    CHECK(std::sqrt(sq / n) > 0.01 && std::sqrt(sq / n) < 0.04, t.name << ": γ and α spread " << std::sqrt(sq / n));
  }
  CHECK(norms == 17, norms << " norms");
}

TEST(unet_model_learns_and_repeats_on_the_cpu) {
  // 64 copies of two 8×8 images: the perturbed data's score is learnable in a few hundred steps.
  std::vector<float> data(64 * 64);
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t i = 0; i < 64; ++i) data[r * 64 + i] = ((i / 8 < 4) == (r % 2 == 0)) ? 1.0f : 0.0f;
  auto run = [&](std::vector<double>& losses) {
    Model model(small_unet_config());
    model.set_data(data.data(), 64, 64);
    model.train(300, 16, 50, [&](const TrainProgress& p) {
      losses.push_back(p.loss);
      return true;
    });
    return model.tensors();
  };
  std::vector<double> a, b;
  const auto ta = run(a), tb = run(b);
  CHECK(a == b, "two runs with one seed report different losses");
  for (size_t t = 0; t < ta.size(); ++t) CHECK(ta[t].data == tb[t].data, ta[t].name << " differs between two runs");
  // an untrained score is about 0, a loss of ½‖z‖² = 32 per image
  CHECK(a.front() > 15 && a.back() < 0.5 * a.front(), "losses " << a.front() << " … " << a.back());
}

TEST(unet_counts_w2s_flops) {
  // docs/workloads.md: 214 MFLOP per 28×28 image forward at C = 32, in its convolutions
  const double flops = UNet<float>(UNetShape{1, 28, 28, 32, 10}).forward_flops();
  CHECK(std::fabs(flops - 214.050816e6) < 1, "forward FLOPs " << flops);
}
