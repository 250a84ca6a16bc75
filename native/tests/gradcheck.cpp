// Finite-difference gradient checks in double precision: every op with a backward, the DSM loss,
// the exact mixture score against its log-density, and the whole MLP under the DSM loss.
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

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

std::vector<int32_t> random_levels(size_t n, int32_t levels, unsigned seed) {
  std::vector<int32_t> l(n);
  auto u = random_values<double>(n, seed, 0, levels - 1e-9);
  for (size_t i = 0; i < n; ++i) l[i] = static_cast<int32_t>(u[i]);
  return l;
}

}  // namespace

TEST(gradcheck_matmul) {
  // Shapes that take every kernel path: narrow and wide inputs and outputs, tails of 4 and 32.
  const int64_t shapes[][3] = {{5, 7, 6}, {9, 20, 33}, {6, 3, 40}, {8, 40, 2}, {4, 64, 64}};
  unsigned seed = 1;
  for (const auto& s : shapes) {
    const int64_t m = s[0], k = s[1], n = s[2];
    Vec x = random_values<double>(m * k, seed++), w = random_values<double>(n * k, seed++);
    const Vec r = random_values<double>(m * n, seed++);
    Vec y(m * n), dx(m * k), dw(n * k);
    auto loss = [&] {
      ops().matmul_forward(mat(y, m, n), mat(x, m, k), mat(w, n, k));
      return dot(r, y);
    };
    Vec rr = r;
    ops().matmul_backward(mat(dx, m, k), mat(dw, n, k), mat(rr, m, n), mat(x, m, k), mat(w, n, k));
    expect_gradient("matmul dx", x, dx, loss);
    expect_gradient("matmul dw", w, dw, loss);
  }
}

TEST(gradcheck_add_bias) {
  const int64_t m = 7, n = 5, levels = 3;
  Vec y0 = random_values<double>(m * n, 11), b = random_values<double>(n, 12), e = random_values<double>(levels * n, 13);
  const Vec r = random_values<double>(m * n, 14);
  const auto level = random_levels(m, levels, 15);
  Vec y(m * n), db(n), de(levels * n);
  auto loss = [&] {
    y = y0;
    ops().add_bias_forward(mat(y, m, n), b.data(), mat(e, levels, n), level.data());
    return dot(r, y);
  };
  Vec rr = r;
  ops().add_bias_backward(db.data(), mat(de, levels, n), mat(rr, m, n), level.data());
  expect_gradient("add_bias db", b, db, loss);
  expect_gradient("add_bias de", e, de, loss);
}

TEST(gradcheck_softplus) {
  const int64_t m = 6, n = 9;
  Vec z = random_values<double>(m * n, 21, -30, 30), h(m * n), dz(m * n);
  const Vec r = random_values<double>(m * n, 22);
  auto loss = [&] {
    ops().softplus_forward(mat(h, m, n), mat(z, m, n));
    return dot(r, h);
  };
  Vec rr = r;
  ops().softplus_backward(mat(dz, m, n), mat(rr, m, n), mat(z, m, n));
  expect_gradient("softplus dz", z, dz, loss);
}

TEST(gradcheck_scale_by_level) {
  const int64_t m = 5, n = 3;
  Vec y = random_values<double>(m * n, 31), out(m * n);
  const Vec factor = random_values<double>(4, 32, 0.1, 3), r = random_values<double>(m * n, 33);
  const auto level = random_levels(m, 4, 34);
  auto loss = [&] {
    out = y;
    ops().scale_by_level(mat(out, m, n), factor.data(), level.data());
    return dot(r, out);
  };
  Vec dy = r;
  ops().scale_by_level(mat(dy, m, n), factor.data(), level.data());
  expect_gradient("scale_by_level dy", y, dy, loss);
}

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

TEST(gradcheck_mlp_dsm) {
  MlpShape shape{3, 8, 2, 4};
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
  expect_gradient("mlp dsm params", params, grads, loss);
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
    ops().adam_update(p.data(), g->data(), m.data(), v.data(), 2, s, t);
    for (int i = 0; i < 2; ++i) {
      rm[i] = 0.9 * rm[i] + 0.1 * (*g)[i];
      rv[i] = 0.999 * rv[i] + 0.001 * (*g)[i] * (*g)[i];
      const double mh = rm[i] / (1 - std::pow(0.9, t)), vh = rv[i] / (1 - std::pow(0.999, t));
      rp[i] -= 0.01 * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  for (int i = 0; i < 2; ++i) CHECK(std::fabs(p[i] - rp[i]) < 1e-12, "adam p[" << i << "] " << p[i] << " vs " << rp[i]);
}
