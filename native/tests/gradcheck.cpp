// Finite-difference gradient checks in double precision beyond the op harness's tables (which hold
// every layer op): the DSM loss, the exact mixture score against its log-density, and the whole MLP
// under the DSM loss.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "check.h"
#include "core/mlp.h"
#include "cpu/cpu_ops.h"

using namespace ncsn;
using test::expect_gradient;
using test::random_values;
using Vec = std::vector<double>;

namespace {

CpuOps<double>& ops() {
  static CpuOps<double> o(1);
  return o;
}

Mat<double> mat(Vec& v, int64_t rows, int64_t cols) { return {v.data(), rows, cols}; }

std::vector<int32_t> random_levels(size_t n, int32_t levels, unsigned seed) {
  std::vector<int32_t> l(n);
  auto u = random_values<double>(n, seed, 0, levels - 1e-9);
  for (size_t i = 0; i < n; ++i) l[i] = static_cast<int32_t>(u[i]);
  return l;
}

}  // namespace

TEST(gradcheck_dsm_loss) {
  const int64_t m = 6, d = 3;
  Vec s = random_values<double>(m * d, 41), z = random_values<double>(m * d, 42, -2, 2);
  const Vec sigma = {5.0, 1.0, 0.2};
  const auto level = random_levels(m, 3, 43);
  Vec loss_rows(m), ds(m * d);
  const double scale = 1.0 / m;
  auto loss = [&] {
    Vec scratch(m * d);
    ops().dsm_loss(loss_rows.data(), mat(scratch, m, d), mat(s, m, d), mat(z, m, d), sigma.data(), level.data(), scale);
    double sum = 0;
    for (double l : loss_rows) sum += l;
    return scale * sum;
  };
  ops().dsm_loss(loss_rows.data(), mat(ds, m, d), mat(s, m, d), mat(z, m, d), sigma.data(), level.data(), scale);
  expect_gradient("dsm_loss ds", s, ds, loss);
}

TEST(dsm_loss_hand_value) {
  // σ = 2, s = (1, 2), z = (0.5, −1): σs + z = (2.5, 3), so ½‖·‖² = ½ (6.25 + 9) = 7.625
  Vec s = {1, 2}, z = {0.5, -1}, ds(2), loss(1);
  const Vec sigma = {2.0};
  const int32_t level = 0;
  ops().dsm_loss(loss.data(), mat(ds, 1, 2), mat(s, 1, 2), mat(z, 1, 2), sigma.data(), &level, 1.0);
  CHECK(std::fabs(loss[0] - 7.625) < 1e-12, "loss " << loss[0]);
  CHECK(std::fabs(ds[0] - 5.0) < 1e-12 && std::fabs(ds[1] - 6.0) < 1e-12, "ds " << ds[0] << ", " << ds[1]);
}

TEST(mixture_score_is_grad_log_density) {
  const int64_t d = 2, k = 2;
  Vec means = {-5, -5, 5, 5};
  const Vec weights = {0.2, 0.8}, log_w = {std::log(0.2), std::log(0.8)}, sigma = {3.0, 0.5};
  const double var = 1.0;
  for (int32_t level = 0; level < 2; ++level) {
    for (unsigned trial = 0; trial < 5; ++trial) {
      Vec x = random_values<double>(d, 50 + trial, -8, 8), s(d);
      ops().mixture_score(mat(s, 1, d), mat(x, 1, d), mat(means, k, d), log_w.data(), var, sigma.data(), &level);
      auto log_density = [&] {
        const double v = var + sigma[level] * sigma[level];
        double p = 0;
        for (int64_t c = 0; c < k; ++c) {
          double dist = 0;
          for (int64_t j = 0; j < d; ++j) dist += (x[j] - means[c * d + j]) * (x[j] - means[c * d + j]);
          p += weights[c] * std::exp(-dist / (2 * v)) / (2 * M_PI * v);
        }
        return std::log(p);
      };
      expect_gradient("mixture score", x, s, log_density);
    }
  }
}

// The DSM loss of the MLP with either first layer, against finite differences of every parameter.
TEST(gradcheck_mlp_dsm) {
  for (FirstLayer first : {FirstLayer::softplus, FirstLayer::sin}) {
    MlpShape shape{3, 8, 2, 4, first};
    const Vec sigma = {4.0, 2.0, 1.0, 0.5};
    Vec inv(4);
    for (int i = 0; i < 4; ++i) inv[i] = 1 / sigma[i];
    Mlp<double> mlp(shape, inv.data());
    const int64_t m = 7, d = shape.data_dim, p = mlp.param_count();
    CHECK(p == (8 * 3 + 8 + 4 * 8) + (8 * 8 + 8 + 4 * 8) + (3 * 8 + 3), "parameter count " << p);
    mlp.reserve(ops(), m);
    Vec params = random_values<double>(p, 61, -0.5, 0.5), x = random_values<double>(m * d, 62, -3, 3);
    const Vec z = random_values<double>(m * d, 63, -2, 2);
    const auto level = random_levels(m, 4, 64);
    Vec loss_rows(m), grads(p), s(m * d), ds(m * d);
    auto loss = [&] {
      mlp.score(ops(), 0, mat(s, m, d), mat(x, m, d), level.data(), params.data());
      ops().dsm_loss(loss_rows.data(), mat(ds, m, d), mat(s, m, d), Mat<double>{const_cast<double*>(z.data()), m, d},
                     sigma.data(), level.data(), 1.0 / m);
      double sum = 0;
      for (double l : loss_rows) sum += l;
      return sum / m;
    };
    loss();
    mlp.backward(ops(), 0, mat(ds, m, d), mat(x, m, d), level.data(), params.data(), grads.data());
    expect_gradient(first == FirstLayer::sin ? "mlp (sin first layer) dsm params" : "mlp dsm params", params, grads, loss);
  }
}

TEST(adam_matches_reference_formula) {
  // Two steps of Adam against the textbook update with bias correction (PyTorch's Adam).
  AdamSettings s;
  s.lr = 0.01;
  Vec p = {0.5, -1.0}, m = {0, 0}, v = {0, 0};
  const Vec g1 = {0.2, -0.4}, g2 = {-0.1, 0.3};
  Vec rp = p, rm = m, rv = v;
  int t = 0;
  for (const Vec* g : {&g1, &g2}) {
    ++t;
    ops().adam_update(p.data(), g->data(), m.data(), v.data(), 2, s, t, nullptr);
    for (int i = 0; i < 2; ++i) {
      rm[i] = 0.9 * rm[i] + 0.1 * (*g)[i];
      rv[i] = 0.999 * rv[i] + 0.001 * (*g)[i] * (*g)[i];
      const double mh = rm[i] / (1 - std::pow(0.9, t)), vh = rv[i] / (1 - std::pow(0.999, t));
      rp[i] -= 0.01 * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  for (int i = 0; i < 2; ++i) CHECK(std::fabs(p[i] - rp[i]) < 1e-12, "adam p[" << i << "] " << p[i] << " vs " << rp[i]);
}
