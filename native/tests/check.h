// A minimal test registry for the native tests: TEST(name) { ... } and CHECK(cond, message).
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ncsn::test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
std::vector<Case>& registry();
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by a test that cannot run here (no GPU); its message says why.
struct Skip : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Uniform values in [lo, hi] from a fixed seed: test inputs are random, never zeros.
template <typename T>
std::vector<T> random_values(size_t n, unsigned seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

}  // namespace ncsn::test

#define NCSN_CAT2(a, b) a##b
#define NCSN_CAT(a, b) NCSN_CAT2(a, b)
#define TEST(name)                                                                        \
  static void name();                                                                     \
  static ::ncsn::test::Register NCSN_CAT(register_, name)(#name, name);                  \
  static void name()
#define CHECK(cond, msg)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::ostringstream os_;                                                             \
      os_ << __FILE__ << ":" << __LINE__ << ": " << msg;                                  \
      throw ::ncsn::test::Failure(os_.str());                                             \
    }                                                                                     \
  } while (0)

namespace ncsn::test {

// Central differences of loss() with respect to every entry of v, in double, against the analytic
// gradient: |numeric − analytic| ≤ 1e-6·max(1, |numeric|, |analytic|).
inline void expect_gradient(const std::string& what, std::vector<double>& v, const std::vector<double>& analytic,
                            const std::function<double()>& loss) {
  CHECK(v.size() == analytic.size(), what << ": gradient size");
  const double h = 1e-6;
  for (size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double up = loss();
    v[i] = keep - h;
    const double down = loss();
    v[i] = keep;
    const double numeric = (up - down) / (2 * h);
    const double scale = std::max({1.0, std::fabs(numeric), std::fabs(analytic[i])});
    CHECK(std::fabs(numeric - analytic[i]) <= 1e-6 * scale,
          what << "[" << i << "]: analytic " << analytic[i] << " vs numeric " << numeric);
  }
}

}  // namespace ncsn::test
