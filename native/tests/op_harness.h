// The table-driven op harness, after ggml's test-backend-ops. An op case lists its inputs (size and
// the range of their random values), the size of its output and scratch, its noise levels, and
// runs its forward and backward on any backend through OpBuffers (any glue between ops, such as a
// copy, goes through the backend too, since its memory may be a GPU's). For every case the harness checks
//   - backward against central differences of ⟨r, forward⟩ in double, r random,
//   - float against double on the same inputs, within the case's tolerance,
//   - the CUDA backend against the CPU, where a GPU is usable and the backend has the ops
//     (otherwise the check is skipped and says why);
// and its timing mode times a case's forward and backward on any backend (native/bench).
// Outputs are poisoned with NaN before each run, so an element an op fails to write shows.
// A case that declares `static constexpr bool forward_only = true` (an op with no backward, such
// as a Langevin step) has only its forward run and compared.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "check.h"
#include "core/ops.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#ifdef NCSN_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace ncsn::test {

template <typename T>
struct OpBuffers {
  std::vector<T*> in;    // in the case's order
  std::vector<T*> grad;  // ∂⟨dout, out⟩/∂in, one per input, written by backward
  T* out = nullptr;
  T* dout = nullptr;
  T* scratch = nullptr;
  const int32_t* level = nullptr;
};

struct OpInput {
  int64_t size;
  double lo = -1, hi = 1;
  // a value the op reads but gives no gradient for (a table of factors, say): its gradient
  // buffer is not checked
  bool constant = false;
  // values 0 and 1 in place of the range (a mask)
  bool binary = false;
};

template <typename Case, typename = void>
struct ForwardOnly : std::false_type {};
template <typename Case>
struct ForwardOnly<Case, std::void_t<decltype(Case::forward_only)>> : std::bool_constant<Case::forward_only> {};

// Levels for n rows, each of `levels` drawn in turn (7 is prime to every small count of levels).
inline std::vector<int32_t> levels_of(int64_t n, int32_t levels) {
  std::vector<int32_t> l(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) l[r] = static_cast<int32_t>((r * 7 + 1) % levels);
  return l;
}

// fn(c) for every case of a table: a tuple of vectors, one per kind of case.
template <typename Table, typename Fn>
void for_every_case(const Table& table, Fn fn) {
  std::apply([&](const auto&... family) { (..., [&] { for (const auto& c : family) fn(c); }()); }, table);
}

// What a case's forward and backward produced, in double.
struct OpResult {
  std::vector<double> out;
  std::vector<std::vector<double>> grad;
};

template <typename Case>
std::vector<std::vector<double>> random_inputs(const Case& c, unsigned seed) {
  std::vector<std::vector<double>> v;
  for (const OpInput& in : c.inputs) {
    v.push_back(random_values<double>(static_cast<size_t>(in.size), seed++, in.lo, in.hi));
    if (in.binary)
      for (double& x : v.back()) x = x > (in.lo + in.hi) / 2 ? 1.0 : 0.0;
  }
  return v;
}

// A case's buffers in a backend's memory (a GPU's, maybe): the inputs, their gradients, the output
// (poisoned with NaN), the output's gradient, scratch and levels, and the views the case takes.
template <typename T>
struct CaseBuffers {
  std::vector<Array<T>> in, grad;
  Array<T> out, dout, scratch;
  Array<int32_t> level;
  OpBuffers<T> view;
};

template <typename T, typename Case>
CaseBuffers<T> make_buffers(Ops<T>& ops, const Case& c, const std::vector<std::vector<double>>& inputs,
                            const std::vector<double>& dout) {
  auto upload = [&](const std::vector<double>& v) {
    Array<T> a(ops, static_cast<int64_t>(v.size()));
    std::vector<T> t(v.begin(), v.end());
    a.upload(t.data(), static_cast<int64_t>(t.size()));
    return a;
  };
  CaseBuffers<T> b;
  for (const auto& v : inputs) {
    b.in.push_back(upload(v));
    b.grad.push_back(upload(std::vector<double>(v.size(), 0.0)));
  }
  b.out = upload(std::vector<double>(c.out_size, std::numeric_limits<double>::quiet_NaN()));
  b.dout = upload(dout);
  b.scratch = Array<T>(ops, std::max<int64_t>(c.scratch_size, 1));
  b.level = Array<int32_t>(ops, std::max<int64_t>(static_cast<int64_t>(c.level.size()), 1));
  if (!c.level.empty()) b.level.upload(c.level.data(), static_cast<int64_t>(c.level.size()));
  for (size_t i = 0; i < b.in.size(); ++i) {
    b.view.in.push_back(b.in[i].data());
    b.view.grad.push_back(b.grad[i].data());
  }
  b.view.out = b.out.data();
  b.view.dout = b.dout.data();
  b.view.scratch = b.scratch.data();
  b.view.level = b.level.data();
  return b;
}

// Runs a case on `ops` with the given inputs and output gradient.
template <typename T, typename Case>
OpResult run_case(Ops<T>& ops, const Case& c, const std::vector<std::vector<double>>& inputs,
                  const std::vector<double>& dout) {
  CaseBuffers<T> b = make_buffers(ops, c, inputs, dout);
  c.forward(ops, b.view);
  if constexpr (!ForwardOnly<Case>::value) c.backward(ops, b.view);
  auto download = [](const Array<T>& a) {
    std::vector<T> t(static_cast<size_t>(a.size()));
    a.download(t.data(), a.size());
    return std::vector<double>(t.begin(), t.end());
  };
  OpResult r{download(b.out), {}};
  for (const auto& a : b.grad) r.grad.push_back(download(a));
  return r;
}

// The timing mode: the median seconds of a case's forward and of its backward on `ops`, over `reps`
// runs after one of each as a warm-up; a download of one value drains a GPU's queue.
template <typename T, typename Case>
std::pair<double, double> time_case(Ops<T>& ops, const Case& c, int reps) {
  CaseBuffers<T> b = make_buffers(ops, c, random_inputs(c, 404), random_values<double>(static_cast<size_t>(c.out_size), 96));
  T sink;
  auto seconds = [&](auto&& run) {
    std::vector<double> t;
    for (int r = 0; r <= reps; ++r) {
      const auto start = std::chrono::steady_clock::now();
      run();
      b.out.download(&sink, 1);
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    t.erase(t.begin());
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  const double forward = seconds([&] { c.forward(ops, b.view); });
  if constexpr (ForwardOnly<Case>::value) return {forward, 0.0};
  else return {forward, seconds([&] { c.backward(ops, b.view); })};
}

inline double largest(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Every element finite and within tol·(1 + the largest reference value) of the reference.
inline void expect_near(const std::string& what, const std::vector<double>& got, const std::vector<double>& want,
                        double tol) {
  CHECK(got.size() == want.size(), what << ": sizes differ");
  const double bound = tol * (1 + largest(want));
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(std::isfinite(got[i]) && std::fabs(got[i] - want[i]) <= bound,
          what << "[" << i << "]: " << got[i] << " vs " << want[i] << " (bound " << bound << ")");
}

template <typename Case>
void check_gradient(const Case& c) {
  static_assert(!ForwardOnly<Case>::value, "a forward-only op has no gradient to check");
  CpuOps<double> ops(1);
  auto inputs = random_inputs(c, 101);
  const auto r = random_values<double>(static_cast<size_t>(c.out_size), 99);
  const OpResult analytic = run_case(ops, c, inputs, r);
  for (double v : analytic.out) CHECK(std::isfinite(v), c.name << ": the forward left an output unwritten");
  auto loss = [&] {
    const OpResult o = run_case(ops, c, inputs, r);
    double s = 0;
    for (size_t i = 0; i < r.size(); ++i) s += r[i] * o.out[i];
    return s;
  };
  for (size_t k = 0; k < inputs.size(); ++k)
    if (!c.inputs[k].constant) expect_gradient(c.name + ": input " + std::to_string(k), inputs[k], analytic.grad[k], loss);
}

// On every matrix-product kernel this CPU runs (SSE2/NEON, AVX2, AVX-512).
template <typename Case>
void check_float_against_double(const Case& c) {
  CpuOps<float> f(1);
  CpuOps<double> d(1);
  auto inputs = random_inputs(c, 202);
  for (auto& v : inputs)
    for (double& x : v) x = static_cast<float>(x);  // both see the same values
  std::vector<double> r;
  for (double x : random_values<double>(static_cast<size_t>(c.out_size), 98)) r.push_back(static_cast<float>(x));
  const OpResult want = run_case(d, c, inputs, r);
  for (int isa = 0; isa <= static_cast<int>(cpu_isa()); ++isa) {
    const CpuIsaLimit limit(static_cast<CpuIsa>(isa));
    const OpResult got = run_case(f, c, inputs, r);
    const std::string on = c.name + " (kernel " + std::to_string(isa) + ")";
    expect_near(on + ": float forward", got.out, want.out, c.float_tolerance);
    for (size_t k = 0; k < got.grad.size(); ++k)
      if (!ForwardOnly<Case>::value && !c.inputs[k].constant)
        expect_near(on + ": float gradient of input " + std::to_string(k), got.grad[k], want.grad[k], c.float_tolerance);
  }
}

inline const char* precision_name(Precision p) {
  return p == Precision::fp32 ? "fp32" : p == Precision::tf32 ? "tf32" : "bf16";
}

// The CUDA backend in `precision` against the CPU in float, within `tolerance` (as expect_near
// reads it); skipped where no GPU is usable, or where it has no tensor cores for the precision.
template <typename Case>
void check_cuda_against_cpu(const Case& c, Precision precision, double tolerance) {
#ifdef NCSN_WITH_CUDA
  const GpuProbe& p = probe_gpus();
  if (!p.problem.empty()) throw Skip("no usable GPU: " + p.problem);
  if (precision != Precision::fp32 && p.devices[0].cc_major < 8)
    throw Skip(std::string(precision_name(precision)) + " needs compute capability 8.0");
  static std::unique_ptr<Ops<float>> gpus[3];
  std::unique_ptr<Ops<float>>& gpu = gpus[static_cast<int>(precision)];
  if (!gpu) gpu = make_cuda_ops(0, precision);
  CpuOps<float> cpu(1);
  const auto inputs = random_inputs(c, 303);
  const auto r = random_values<double>(static_cast<size_t>(c.out_size), 97);
  const OpResult got = run_case(*gpu, c, inputs, r), want = run_case(cpu, c, inputs, r);
  const std::string on = c.name + ": CUDA " + precision_name(precision);
  expect_near(on + " forward", got.out, want.out, tolerance);
  for (size_t k = 0; k < got.grad.size(); ++k)
    if (!ForwardOnly<Case>::value && !c.inputs[k].constant)
      expect_near(on + " gradient of input " + std::to_string(k), got.grad[k], want.grad[k], tolerance);
#else
  (void)c;
  (void)precision;
  (void)tolerance;
  throw Skip("this build has no CUDA backend");
#endif
}

template <typename Case>
void check_cuda_against_cpu(const Case& c) {
  check_cuda_against_cpu(c, Precision::fp32, c.float_tolerance);
}

}  // namespace ncsn::test
