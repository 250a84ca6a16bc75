// The CUDA image-op kernels in FP32, emulated on the host (bench/emulate-cuda-image-ops.sh), against
// the CPU ops: convolutions over several tiles, channel slices, both strides and a weight gradient
// split in two slices of K, and a residual branch added in the forward's epilogue (into and from
// channel slices); CondInstanceNorm++ at three sizes, with and without ELU fused in; up-sampling
// into and out of channel slices, the add of two gradient shares. Tolerances as the op harness's
// (image_op_cases.h).
#include <cstdio>
#include <random>
#include "cpu/cpu_ops.h"
#include "cuda/image_ops.cuh"
using namespace ncsn;
using Vec = std::vector<float>;
static Vec rnd(size_t n, unsigned seed, float lo = -1, float hi = 1) {
  std::mt19937 g(seed); std::uniform_real_distribution<float> d(lo, hi); Vec v(n); for (auto& x : v) x = d(g); return v;
}
static int failures = 0;
static void compare(const char* what, const Vec& got, const Vec& want, double tol) {
  double big = 0, worst = 0; size_t at = 0;
  for (float w : want) big = std::max(big, (double)std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i) { double e = std::fabs((double)got[i] - want[i]); if (!(e <= worst)) { worst = e; at = i; } }
  const bool ok = worst <= tol * (1 + big);
  if (!ok) ++failures;
  std::printf("%s %-60s max err %.3g (bound %.3g) at %zu\n", ok ? "ok  " : "FAIL", what, worst, tol * (1 + big), at);
}
int main() {
  CpuOps<float> cpu(1);
  CudaImageOps gpu(nullptr, cpu, Precision::fp32);
  ImageOps<float>& ref = *cpu.image_ops();
  struct C { int64_t n, ci, co, h, w; int s; bool slice; };
  for (C c : {C{2, 3, 4, 6, 5, 1, false}, C{2, 3, 4, 7, 6, 2, false}, C{2, 2, 3, 5, 4, 1, true}, C{1, 1, 3, 5, 5, 1, false},
              C{3, 20, 70, 12, 12, 1, false}, C{3, 24, 9, 28, 28, 1, false}, C{2, 17, 5, 14, 14, 2, true}}) {
    const int64_t wide = c.ci + (c.slice ? 2 : 0), ho = (c.h - 1) / c.s + 1, wo = (c.w - 1) / c.s + 1;
    Vec x = rnd(c.n * wide * c.h * c.w, 1), w = rnd(c.co * c.ci * 9, 2, -0.5, 0.5), b = rnd(c.co, 3), dy = rnd(c.n * c.co * ho * wo, 4);
    auto view = [&](Vec& v) { return c.slice ? nchw(v.data(), c.n, wide, c.h, c.w).channels(1, 1 + c.ci) : nchw(v.data(), c.n, c.ci, c.h, c.w); };
    Vec y1(c.n * c.co * ho * wo, NAN), y2 = y1, dx1(x.size(), 0), dx2(x.size(), 0), dw1(w.size(), NAN), dw2 = dw1, db1(c.co, NAN), db2 = db1;
    ref.conv3x3_forward(nchw(y1.data(), c.n, c.co, ho, wo), view(x), w.data(), b.data(), c.s, {});
    gpu.conv3x3_forward(nchw(y2.data(), c.n, c.co, ho, wo), view(x), w.data(), b.data(), c.s, {});
    ref.conv3x3_backward(view(dx1), dw1.data(), db1.data(), nchw(dy.data(), c.n, c.co, ho, wo), view(x), w.data(), c.s);
    gpu.conv3x3_backward(view(dx2), dw2.data(), db2.data(), nchw(dy.data(), c.n, c.co, ho, wo), view(x), w.data(), c.s);
    char name[128];
    std::snprintf(name, sizeof name, "conv %lld→%lld %lldx%lld s%d n%lld%s", (long long)c.ci, (long long)c.co, (long long)c.h, (long long)c.w, c.s, (long long)c.n, c.slice ? " slice" : "");
    const double tol = std::max<double>(1e-5, std::max({c.ci * 9, c.co * 9, c.n * ho * wo}) * std::ldexp(1.0, -23));
    compare((std::string(name) + " y").c_str(), y2, y1, tol);
    compare((std::string(name) + " dx").c_str(), dx2, dx1, tol);
    compare((std::string(name) + " dw").c_str(), dw2, dw1, tol);
    compare((std::string(name) + " db").c_str(), db2, db1, tol);
    // the residual branch, a channel slice of a wider tensor, added into an output that is one too
    Vec r = rnd(c.n * (c.co + 3) * ho * wo, 11), z1(c.n * (c.co + 1) * ho * wo, NAN), z2 = z1;
    const Tensor4<float> branch = nchw(r.data(), c.n, c.co + 3, ho, wo).channels(2, 2 + c.co);
    ref.conv3x3_forward(nchw(z1.data(), c.n, c.co + 1, ho, wo).channels(1, 1 + c.co), view(x), w.data(), b.data(), c.s, branch);
    gpu.conv3x3_forward(nchw(z2.data(), c.n, c.co + 1, ho, wo).channels(1, 1 + c.co), view(x), w.data(), b.data(), c.s, branch);
    for (size_t i = 0; i < z1.size(); ++i) if (std::isnan(z1[i])) z1[i] = z2[i] = 0;
    compare((std::string(name) + " y + residual, slices").c_str(), z2, z1, tol);
  }
  for (auto [n, ch, h, w, levels] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{{3, 4, 5, 6, 3}, {2, 2, 3, 3, 1}, {3, 12, 28, 28, 10}}) {
    Vec x = rnd(n * ch * h * w, 5, -2, 2), e = rnd(levels * 3 * ch, 6, 0.5, 1.5), g = rnd(n * ch * h * w, 7);
    for (int64_t k = 0; k < ch; ++k) for (int64_t b = 0; b < n; ++b) for (int64_t q = 0; q < h * w; ++q) x[(b * ch + k) * h * w + q] += 0.3f * k;
    std::vector<int32_t> lv(n); for (int64_t r = 0; r < n; ++r) lv[r] = (r * 7 + 1) % levels;
    Vec y1(x.size(), NAN), y2 = y1, s1(n * (2 * ch + 2), NAN), s2 = s1, dx1(x.size(), NAN), dx2 = dx1, de1(e.size(), NAN), de2 = de1;
    auto t = [&](Vec& v) { return nchw(v.data(), n, ch, h, w); };
    for (const bool elu : {false, true}) {
      ref.cond_instance_norm_forward(t(y1), t(x), e.data(), lv.data(), s1.data(), elu);
      gpu.cond_instance_norm_forward(t(y2), t(x), e.data(), lv.data(), s2.data(), elu);
      // both backwards read the CPU's output for ELU′, so that only the backward is compared
      ref.cond_instance_norm_backward(t(dx1), de1.data(), levels, t(g), t(x), e.data(), lv.data(), s1.data(), elu ? t(y1) : Tensor4<float>{});
      gpu.cond_instance_norm_backward(t(dx2), de2.data(), levels, t(g), t(x), e.data(), lv.data(), s2.data(), elu ? t(y1) : Tensor4<float>{});
      const std::string what = elu ? "norm+elu " : "norm ";
      compare((what + "y").c_str(), y2, y1, 1e-5); compare((what + "stats").c_str(), s2, s1, 1e-6);
      compare((what + "dx").c_str(), dx2, dx1, 1e-5); compare((what + "dembed").c_str(), de2, de1, 1e-5);
    }
  }
  {
    const int64_t n = 2, c = 3, h = 4, w = 5;
    Vec x = rnd(n * c * h * w, 8, -3, 3), g = rnd(x.size(), 9);
    auto t = [&](Vec& v) { return nchw(v.data(), n, c, h, w); };
    Vec u1(n * (c + 2) * 4 * h * w, NAN), u2 = u1;
    ref.upsample2_forward(nchw(u1.data(), n, c + 2, 2 * h, 2 * w).channels(0, c), t(x));
    gpu.upsample2_forward(nchw(u2.data(), n, c + 2, 2 * h, 2 * w).channels(0, c), t(x));
    for (size_t i = 0; i < u1.size(); ++i) if (std::isnan(u1[i])) u1[i] = u2[i] = 0;
    compare("upsample2 into a slice", u2, u1, 0);
    Vec gu = rnd(n * (c + 2) * 4 * h * w, 10), b1(x.size()), b2(x.size());
    ref.upsample2_backward(t(b1), nchw(gu.data(), n, c + 2, 2 * h, 2 * w).channels(0, c));
    gpu.upsample2_backward(t(b2), nchw(gu.data(), n, c + 2, 2 * h, 2 * w).channels(0, c));
    compare("upsample2 backward from a slice", b2, b1, 1e-7);
    Vec a1 = x, a2 = x;
    ref.add_into(t(a1), t(g)); gpu.add_into(t(a2), t(g)); compare("add_into", a2, a1, 0);
  }
  std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
