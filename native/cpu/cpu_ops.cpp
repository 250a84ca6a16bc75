#include "cpu_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

#include "fused_mlp.h"
#include "gemm.h"
#include "isa.h"
#include "normals.h"
#include "simd.h"
#include "vecmath.h"

namespace ncsn {

template <typename T>
CpuOps<T>::CpuOps(int threads, int64_t chunk) : chunk_(chunk < 1 ? 1 : chunk) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  pool_ = std::make_unique<ThreadPool>(threads);
  if constexpr (std::is_same_v<T, float>) fused_ = std::make_unique<CpuFusedMlp>(*this);
}

template <typename T>
void* CpuOps<T>::alloc_bytes(size_t bytes) {
  // 64-byte alignment: a cache line, and whole vectors for the kernels
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}
template <typename T>
void CpuOps<T>::free_bytes(void* p) { std::free(p); }
template <typename T>
void CpuOps<T>::to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
template <typename T>
void CpuOps<T>::to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
template <typename T>
void CpuOps<T>::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }

namespace {
// Each run_chunks call is a job with a number of its own, process-wide; 0 outside any.
std::atomic<uint64_t> last_job{0};
thread_local uint64_t current_job = 0;
struct JobScope {
  uint64_t outer = current_job;
  explicit JobScope(uint64_t job) { current_job = job; }
  ~JobScope() { current_job = outer; }
};
}  // namespace

template <typename T>
void CpuOps<T>::run_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn) {
  const uint64_t job = ++last_job;
  pool_->run(n_chunks, [&](int64_t c, int worker) {
    const JobScope scope(job);
    fn(c, worker);
  });
}

// ---- matmul: y = x·wᵀ forward; dx = dy·w and dw = dyᵀ·x backward ----

namespace {
// Per-thread scratch for the transposed copy of an operand.
template <typename T>
T* scratch(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// wᵀ (K×N) for matmul_forward. Inside a job the ops never write the weights they read
// (Ops::run_chunks), so each thread transposes a weight once a job and its later chunks reuse the
// copy: once a chunk, W1's transposes took 7–9 % of a training step. Outside a job, every call
// transposes, and so does every call with a weight of over a million bytes, into one scratch
// buffer: its product costs a chunk's rows times the transpose, and kCopies such copies on every
// thread would hold too much memory.
template <typename T>
const T* transposed_weight(Mat<T> w) {
  constexpr int64_t kMaxCopied = (1 << 20) / static_cast<int64_t>(sizeof(T));
  if (w.size() > kMaxCopied) {
    T* t = scratch<T>(static_cast<size_t>(w.size()));
    transpose(t, w.rows, w.data, w.cols, w.rows, w.cols);
    return t;
  }
  struct Copy {
    const T* src = nullptr;
    int64_t rows = 0, cols = 0;
    uint64_t job = 0;
    std::vector<T> t;
  };
  constexpr int kCopies = 8;  // the weights of one job: an MLP's hidden layers
  thread_local Copy copies[kCopies];
  thread_local int oldest = 0;
  if (current_job != 0)
    for (const Copy& c : copies)
      if (c.job == current_job && c.src == w.data && c.rows == w.rows && c.cols == w.cols) return c.t.data();
  Copy& c = copies[oldest];
  oldest = (oldest + 1) % kCopies;
  c.src = w.data;
  c.rows = w.rows;
  c.cols = w.cols;
  c.job = current_job;
  c.t.resize(static_cast<size_t>(w.size()));
  transpose(c.t.data(), w.rows, w.data, w.cols, w.rows, w.cols);
  return c.t.data();
}
}  // namespace

template <typename T>
void CpuOps<T>::matmul_forward(Mat<T> y, Mat<T> x, Mat<T> w) {
  const int64_t m = x.rows, k = x.cols, n = w.rows;
  if (n < kDotProductOutputs) {  // a narrow output (the score layer): dot products along K
    gemm_dot(y.data, n, x.data, w.data, m, n, k);
    return;
  }
  gemm(GemmArgs<T>{y.data, n, x.data, k, 1, transposed_weight(w), n, m, n, k, false});
}

template <typename T>
void CpuOps<T>::matmul_backward(Mat<T> dx, Mat<T> dw, Mat<T> dy, Mat<T> x, Mat<T> w) {
  const int64_t m = dy.rows, n = dy.cols, k = x.cols;
  if (dx.data) gemm(GemmArgs<T>{dx.data, k, dy.data, n, 1, w.data, k, m, k, n, false});
  if (k >= 16) {
    gemm(GemmArgs<T>{dw.data, k, dy.data, 1, n, x.data, k, n, k, m, false});
    return;
  }
  // a narrow input (the first layer): dwᵀ = xᵀ·dy is the wide product, then transpose it
  T* dwt = scratch<T>(static_cast<size_t>(k * n));
  gemm(GemmArgs<T>{dwt, n, x.data, 1, k, dy.data, n, k, n, m, false});
  transpose(dw.data, k, dwt, n, k, n);
}

// ---- bias and per-level bias ----

namespace {
// The bias loops in every ISA clone (built for the baseline alone they were a tenth of a W1
// sampling step), each sum in the order of the CUDA kernels': (y + b) + e.
template <typename T>
inline __attribute__((always_inline)) void add_bias_loop(T* y, int64_t rows, int64_t cols, const T* b, const T* e,
                                                         const int32_t* level) {
  for (int64_t i = 0; i < rows; ++i) {
    T* row = y + i * cols;
    if (e) {
      const T* el = e + static_cast<int64_t>(level[i]) * cols;
      for (int64_t j = 0; j < cols; ++j) row[j] = row[j] + b[j] + el[j];
    } else {
      for (int64_t j = 0; j < cols; ++j) row[j] += b[j];
    }
  }
}
template <typename T>
inline __attribute__((always_inline)) void bias_gradient_loop(T* db, T* de, const T* dy, int64_t rows, int64_t cols,
                                                              const int32_t* level) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = dy + i * cols;
    if (de) {
      T* el = de + static_cast<int64_t>(level[i]) * cols;
      for (int64_t j = 0; j < cols; ++j) {
        db[j] += row[j];
        el[j] += row[j];
      }
    } else {
      for (int64_t j = 0; j < cols; ++j) db[j] += row[j];
    }
  }
}
NCSN_ISA_CLONES
void add_bias_f32(float* y, int64_t rows, int64_t cols, const float* b, const float* e, const int32_t* level) {
  add_bias_loop(y, rows, cols, b, e, level);
}
NCSN_ISA_CLONES
void bias_gradient_f32(float* db, float* de, const float* dy, int64_t rows, int64_t cols, const int32_t* level) {
  bias_gradient_loop(db, de, dy, rows, cols, level);
}
void add_bias_any(float* y, int64_t rows, int64_t cols, const float* b, const float* e, const int32_t* level) {
  add_bias_f32(y, rows, cols, b, e, level);
}
void add_bias_any(double* y, int64_t rows, int64_t cols, const double* b, const double* e, const int32_t* level) {
  add_bias_loop(y, rows, cols, b, e, level);
}
void bias_gradient_any(float* db, float* de, const float* dy, int64_t rows, int64_t cols, const int32_t* level) {
  bias_gradient_f32(db, de, dy, rows, cols, level);
}
void bias_gradient_any(double* db, double* de, const double* dy, int64_t rows, int64_t cols, const int32_t* level) {
  bias_gradient_loop(db, de, dy, rows, cols, level);
}
}  // namespace

template <typename T>
void CpuOps<T>::add_bias_forward(Mat<T> y, const T* b, Mat<T> e, const int32_t* level) {
  add_bias_any(y.data, y.rows, y.cols, b, e.data, level);
}

template <typename T>
void CpuOps<T>::add_bias_backward(T* db, Mat<T> de, Mat<T> dy, const int32_t* level) {
  std::fill(db, db + dy.cols, T(0));
  if (de.data) std::fill(de.data, de.data + de.size(), T(0));
  bias_gradient_any(db, de.data, dy.data, dy.rows, dy.cols, level);
}

// ---- softplus ----

namespace {
template <typename T>
inline __attribute__((always_inline)) void softplus_forward_loop(T* h, const T* z, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = vm::softplus(z[i]);
}
// The float form by whole vectors, each coefficient of the polynomial a register permute, which
// the compiler does not find on its own from the scalar table lookups; kTableChains vectors at a
// time, so that their Horner chains overlap (one at a time, softplus and its gradient took 16 % of
// a W1 training step on one core, four at a time 12 %).
template <typename V, int N, typename Table>
inline __attribute__((always_inline)) int64_t table_vectors(const Table& table, float* out, const float* in,
                                                            const float* factor, int64_t i, int64_t n) {
  constexpr int64_t step = N * simd::lanes<V>;
  for (; i + step <= n; i += step) {
    V v[N];
    for (int k = 0; k < N; ++k) simd::load(v[k], in + i + k * simd::lanes<V>);
    table.template many<N>(v);
    for (int k = 0; k < N; ++k) {
      if (factor) {
        V f;
        simd::load(f, factor + i + k * simd::lanes<V>);
        v[k] *= f;
      }
      simd::store(out + i + k * simd::lanes<V>, v[k]);
    }
  }
  return i;
}
// out = table(in) (· factor, where given) over whole groups of vectors, then whole vectors; the
// index of the first element left.
template <typename V, typename Table>
inline __attribute__((always_inline)) int64_t table_loop(float* out, const float* in, const float* factor,
                                                         int64_t n) {
  const Table table;
  const int64_t i = table_vectors<V, simd::kTableChains<V>>(table, out, in, factor, 0, n);
  return table_vectors<V, 1>(table, out, in, factor, i, n);
}
template <typename V>
inline __attribute__((always_inline)) void softplus_forward_vectors(float* h, const float* z, int64_t n) {
  const int64_t i = table_loop<V, simd::SoftplusTable<V>>(h, z, nullptr, n);
  softplus_forward_loop(h + i, z + i, n - i);
}
#if NCSN_X86_64
__attribute__((target("arch=x86-64-v4"))) void softplus_forward_avx512(float* h, const float* z, int64_t n) {
  softplus_forward_vectors<simd::v16f>(h, z, n);
}
__attribute__((target("arch=x86-64-v3"))) void softplus_forward_avx2(float* h, const float* z, int64_t n) {
  softplus_forward_vectors<simd::v8f>(h, z, n);
}
#endif
void softplus_forward_base(float* h, const float* z, int64_t n) { softplus_forward_vectors<simd::v4f>(h, z, n); }
void softplus_forward_f32(float* h, const float* z, int64_t n) {
#if NCSN_X86_64
  if (thread_isa() == CpuIsa::avx512) return softplus_forward_avx512(h, z, n);
  if (thread_isa() == CpuIsa::avx2) return softplus_forward_avx2(h, z, n);
#endif
  softplus_forward_base(h, z, n);
}
template <typename T>
inline __attribute__((always_inline)) void softplus_backward_loop(T* dz, const T* dh, const T* z, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dz[i] = dh[i] * vm::sigmoid(z[i]);
}
template <typename V>
inline __attribute__((always_inline)) void softplus_backward_vectors(float* dz, const float* dh, const float* z,
                                                                     int64_t n) {
  const int64_t i = table_loop<V, simd::SigmoidTable<V>>(dz, z, dh, n);
  softplus_backward_loop(dz + i, dh + i, z + i, n - i);
}
#if NCSN_X86_64
__attribute__((target("arch=x86-64-v4"))) void softplus_backward_avx512(float* dz, const float* dh, const float* z,
                                                                         int64_t n) {
  softplus_backward_vectors<simd::v16f>(dz, dh, z, n);
}
__attribute__((target("arch=x86-64-v3"))) void softplus_backward_avx2(float* dz, const float* dh, const float* z,
                                                                       int64_t n) {
  softplus_backward_vectors<simd::v8f>(dz, dh, z, n);
}
#endif
void softplus_backward_base(float* dz, const float* dh, const float* z, int64_t n) {
  softplus_backward_vectors<simd::v4f>(dz, dh, z, n);
}
void softplus_backward_f32(float* dz, const float* dh, const float* z, int64_t n) {
#if NCSN_X86_64
  if (thread_isa() == CpuIsa::avx512) return softplus_backward_avx512(dz, dh, z, n);
  if (thread_isa() == CpuIsa::avx2) return softplus_backward_avx2(dz, dh, z, n);
#endif
  softplus_backward_base(dz, dh, z, n);
}
void softplus_forward_any(float* h, const float* z, int64_t n) { softplus_forward_f32(h, z, n); }
void softplus_forward_any(double* h, const double* z, int64_t n) { softplus_forward_loop(h, z, n); }
void softplus_backward_any(float* dz, const float* dh, const float* z, int64_t n) {
  softplus_backward_f32(dz, dh, z, n);
}
void softplus_backward_any(double* dz, const double* dh, const double* z, int64_t n) {
  softplus_backward_loop(dz, dh, z, n);
}
}  // namespace

template <typename T>
void CpuOps<T>::softplus_forward(Mat<T> h, Mat<T> z) { softplus_forward_any(h.data, z.data, z.size()); }
template <typename T>
void CpuOps<T>::softplus_backward(Mat<T> dz, Mat<T> dh, Mat<T> z) {
  softplus_backward_any(dz.data, dh.data, z.data, z.size());
}

// ---- sin ----

namespace {
template <typename T>
inline __attribute__((always_inline)) void sin_forward_loop(T* h, const T* z, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = vm::sin(z[i]);
}
template <typename T>
inline __attribute__((always_inline)) void sin_backward_loop(T* dz, const T* dh, const T* z, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dz[i] = dh[i] * vm::cos(z[i]);
}
NCSN_ISA_CLONES
void sin_forward_f32(float* h, const float* z, int64_t n) { sin_forward_loop(h, z, n); }
NCSN_ISA_CLONES
void sin_backward_f32(float* dz, const float* dh, const float* z, int64_t n) { sin_backward_loop(dz, dh, z, n); }
void sin_forward_any(float* h, const float* z, int64_t n) { sin_forward_f32(h, z, n); }
void sin_forward_any(double* h, const double* z, int64_t n) { sin_forward_loop(h, z, n); }
void sin_backward_any(float* dz, const float* dh, const float* z, int64_t n) { sin_backward_f32(dz, dh, z, n); }
void sin_backward_any(double* dz, const double* dh, const double* z, int64_t n) { sin_backward_loop(dz, dh, z, n); }
}  // namespace

template <typename T>
void CpuOps<T>::sin_forward(Mat<T> h, Mat<T> z) { sin_forward_any(h.data, z.data, z.size()); }
template <typename T>
void CpuOps<T>::sin_backward(Mat<T> dz, Mat<T> dh, Mat<T> z) { sin_backward_any(dz.data, dh.data, z.data, z.size()); }

// ---- noise levels, DSM, Langevin ----

template <typename T>
void CpuOps<T>::scale_by_level(Mat<T> y, const T* factor, const int32_t* level) {
  for (int64_t i = 0; i < y.rows; ++i) {
    const T f = factor[level[i]];
    for (int64_t j = 0; j < y.cols; ++j) y.data[i * y.cols + j] *= f;
  }
}

template <typename T>
void CpuOps<T>::perturb(Mat<T> xt, Mat<T> x, Mat<T> z, const T* sigma, const int32_t* level) {
  for (int64_t i = 0; i < x.rows; ++i) {
    const T s = sigma[level[i]];
    for (int64_t j = 0; j < x.cols; ++j) {
      const int64_t at = i * x.cols + j;
      xt.data[at] = x.data[at] + s * z.data[at];
    }
  }
}

template <typename T>
void CpuOps<T>::dsm_loss(T* loss, Mat<T> ds, Mat<T> s, Mat<T> z, const T* sigma, const int32_t* level,
                         T grad_scale) {
  for (int64_t i = 0; i < s.rows; ++i) {
    const T sg = sigma[level[i]];
    T acc = T(0);
    for (int64_t j = 0; j < s.cols; ++j) {
      const int64_t at = i * s.cols + j;
      const T e = sg * s.data[at] + z.data[at];
      acc += e * e;
      ds.data[at] = grad_scale * sg * e;
    }
    loss[i] = T(0.5) * acc;
  }
}

template <typename T>
void CpuOps<T>::langevin_step(Mat<T> x, Mat<T> s, Mat<T> z, T drift, T diffusion) {
  const int64_t n = x.size();
  if (z.data) {
    for (int64_t i = 0; i < n; ++i) x.data[i] += drift * s.data[i] + diffusion * z.data[i];
  } else {
    for (int64_t i = 0; i < n; ++i) x.data[i] += drift * s.data[i];
  }
}

template <typename T>
void CpuOps<T>::langevin_step_sized(Mat<T> x, Mat<T> s, Mat<T> z, const T* step) {
  langevin_step(x, s, z, step[0], step[1]);
}

template <typename T>
void CpuOps<T>::corrector_step_size(T* step, Mat<T> s, Mat<T> z, double snr) {
  const CorrectorStep e = corrector_step(sum_row_norms(s), sum_row_norms(z), s.rows, snr);
  step[0] = static_cast<T>(e.drift);
  step[1] = static_cast<T>(e.diffusion);
}

template <typename T>
void CpuOps<T>::paste_known(Mat<T> x, Mat<T> y, const T* mask) {
  for (int64_t r = 0; r < x.rows; ++r) {
    T* xr = x.data + r * x.cols;
    const T* yr = y.data + r * x.cols;
    for (int64_t j = 0; j < x.cols; ++j) xr[j] = mask[j] != T(0) ? yr[j] : xr[j];
  }
}

template <typename T>
double CpuOps<T>::sum_row_norms(Mat<T> a) {
  double total = 0;
  for (int64_t r = 0; r < a.rows; ++r) {
    double sq = 0;
    for (int64_t j = 0; j < a.cols; ++j) {
      const double v = static_cast<double>(a.data[r * a.cols + j]);
      sq += v * v;
    }
    total += std::sqrt(sq);
  }
  return total;
}

namespace {
// A float is finite unless its exponent bits are all ones; OR-ing that test over the values
// vectorises in every ISA clone, where a sum of row norms in double, the check this replaced, took
// 7 % of a W1 training step at batch 128.
NCSN_ISA_CLONES
bool all_finite_f32(const float* a, int64_t n) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t non_finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, a + i, sizeof bits);
    non_finite |= (bits & kExponent) == kExponent;
  }
  return non_finite == 0;
}
bool all_finite_any(const float* a, int64_t n) { return all_finite_f32(a, n); }
bool all_finite_any(const double* a, int64_t n) {
  return std::all_of(a, a + n, [](double v) { return std::isfinite(v); });
}
}  // namespace

template <typename T>
void CpuOps<T>::note_divergence(Divergence* d, const T* loss, const int32_t* level, int64_t b, const T* grad,
                                int64_t p, uint64_t step) {
  if (d->step != 0 || (all_finite_any(loss, b) && all_finite_any(grad, p))) return;
  d->step = step;
  d->first = Divergence::gradient;
  for (int64_t r = 0; r < b; ++r)
    if (!std::isfinite(static_cast<double>(loss[r]))) {
      d->first = Divergence::loss_at(r, level[r]);
      break;
    }
}

template <typename T>
void CpuOps<T>::add_level_losses(double* sums, const T* loss, const int32_t* level, int64_t b, int64_t levels) {
  for (int64_t r = 0; r < b; ++r) {
    sums[level[r]] += static_cast<double>(loss[r]);
    sums[levels + level[r]] += 1;
  }
}

template <typename T>
void CpuOps<T>::mixture_score(Mat<T> s, Mat<T> x, Mat<T> means, const T* log_weight, T var, const T* sigma,
                              const int32_t* level) {
  const int64_t kk = means.rows, d = x.cols;
  std::vector<T> logit(static_cast<size_t>(kk));
  for (int64_t i = 0; i < x.rows; ++i) {
    const T sg = sigma[level[i]];
    const T v = var + sg * sg;
    const T* xi = x.data + i * d;
    T top = -INFINITY;
    for (int64_t k = 0; k < kk; ++k) {
      T dist = T(0);
      for (int64_t j = 0; j < d; ++j) {
        const T diff = xi[j] - means.data[k * d + j];
        dist += diff * diff;
      }
      logit[k] = log_weight[k] - dist / (T(2) * v);
      top = std::max(top, logit[k]);
    }
    T total = T(0);
    for (int64_t k = 0; k < kk; ++k) total += (logit[k] = std::exp(logit[k] - top));
    T* si = s.data + i * d;
    for (int64_t j = 0; j < d; ++j) {
      T acc = T(0);
      for (int64_t k = 0; k < kk; ++k) acc += logit[k] * (means.data[k * d + j] - xi[j]);
      si[j] = acc / (total * v);
    }
  }
}

// ---- optimiser ----

namespace {
template <typename T>
inline __attribute__((always_inline)) void adam_loop(T* p, const T* g, T* m, T* v, int64_t n, T b1, T b2, T step,
                                                     T inv_sqrt_bc2, T eps) {
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (T(1) - b1) * g[i];
    v[i] = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
    p[i] -= step * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
  }
}
// Vectorised in every clone (a square root and a division per parameter were 9 % of a W1 step).
NCSN_ISA_CLONES
void adam_f32(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step,
              float inv_sqrt_bc2, float eps) {
  adam_loop(p, g, m, v, n, b1, b2, step, inv_sqrt_bc2, eps);
}
void adam_any(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step,
              float inv_sqrt_bc2, float eps) {
  adam_f32(p, g, m, v, n, b1, b2, step, inv_sqrt_bc2, eps);
}
void adam_any(double* p, const double* g, double* m, double* v, int64_t n, double b1, double b2, double step,
              double inv_sqrt_bc2, double eps) {
  adam_loop(p, g, m, v, n, b1, b2, step, inv_sqrt_bc2, eps);
}
}  // namespace

template <typename T>
void CpuOps<T>::adam_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamSettings& s, int64_t t,
                            const Divergence* unless) {
  if (unless && unless->step != 0) return;
  const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(t));
  adam_any(p, g, m, v, n, static_cast<T>(s.beta1), static_cast<T>(s.beta2), static_cast<T>(s.lr / bc1),
           static_cast<T>(1.0 / std::sqrt(bc2)), static_cast<T>(s.eps));
}

namespace {
// Over every parameter once or more a step: in every ISA clone, like Adam.
template <typename T>
inline __attribute__((always_inline)) void ema_loop(T* ema, const T* p, int64_t n, T d, T rest) {
  for (int64_t i = 0; i < n; ++i) ema[i] = d * ema[i] + rest * p[i];
}
template <typename T>
inline __attribute__((always_inline)) void accumulate_loop(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}
NCSN_ISA_CLONES
void ema_f32(float* ema, const float* p, int64_t n, float d, float rest) { ema_loop(ema, p, n, d, rest); }
NCSN_ISA_CLONES
void accumulate_f32(float* dst, const float* src, int64_t n) { accumulate_loop(dst, src, n); }
void ema_any(float* ema, const float* p, int64_t n, float d, float rest) { ema_f32(ema, p, n, d, rest); }
void ema_any(double* ema, const double* p, int64_t n, double d, double rest) { ema_loop(ema, p, n, d, rest); }
void accumulate_any(float* dst, const float* src, int64_t n) { accumulate_f32(dst, src, n); }
void accumulate_any(double* dst, const double* src, int64_t n) { accumulate_loop(dst, src, n); }
}  // namespace

template <typename T>
void CpuOps<T>::ema_update(T* ema, const T* p, int64_t n, double decay, const Divergence* unless) {
  if (unless && unless->step != 0) return;
  ema_any(ema, p, n, static_cast<T>(decay), static_cast<T>(1.0 - decay));
}

template <typename T>
void CpuOps<T>::accumulate(T* dst, const T* src, int64_t n) {
  accumulate_any(dst, src, n);
}

template <typename T>
void CpuOps<T>::gather_rows(Mat<T> out, Mat<T> data, const int32_t* index) {
  for (int64_t i = 0; i < out.rows; ++i)
    std::memcpy(out.data + i * out.cols, data.data + static_cast<int64_t>(index[i]) * data.cols,
                sizeof(T) * static_cast<size_t>(out.cols));
}

template <typename T>
void CpuOps<T>::fill_int(int32_t* out, int64_t n, int32_t value) { std::fill(out, out + n, value); }

// ---- Philox draws: element e of a stream is word e % 4 of block e / 4 ----

namespace {
// The Box-Muller transform is fma-heavy: cloned so that fmaf is one instruction where the CPU has it.
template <typename T>
inline __attribute__((always_inline)) void normal_loop(T* out, int64_t n, const RngStream& s, uint64_t offset) {
  for (int64_t j = 0; j < n;) {
    const uint64_t e = offset + static_cast<uint64_t>(j);
    float z[4];
    normals_from_block(philox_block(s, static_cast<uint32_t>(e / 4)), z);
    for (uint64_t w = e % 4; w < 4 && j < n; ++w, ++j) out[j] = static_cast<T>(z[w]);
  }
}
NCSN_ISA_CLONES
void normal_f32_scalar(float* out, int64_t n, const RngStream& s, uint64_t offset) { normal_loop(out, n, s, offset); }
void normal_f32(float* out, int64_t n, const RngStream& s, uint64_t offset) {
#if NCSN_X86_64
  if (thread_isa() == CpuIsa::avx512) return normals_avx512(out, n, s, offset);
  if (thread_isa() == CpuIsa::avx2) return normals_avx2(out, n, s, offset);
#endif
  normal_f32_scalar(out, n, s, offset);
}
NCSN_ISA_CLONES
void normal_f64(double* out, int64_t n, const RngStream& s, uint64_t offset) { normal_loop(out, n, s, offset); }
void normal_any(float* out, int64_t n, const RngStream& s, uint64_t offset) { normal_f32(out, n, s, offset); }
void normal_any(double* out, int64_t n, const RngStream& s, uint64_t offset) { normal_f64(out, n, s, offset); }
}  // namespace

template <typename T>
void CpuOps<T>::random_normal(Mat<T> out, const RngStream& s, uint64_t offset) {
  normal_any(out.data, out.size(), s, offset);
}

template <typename T>
void CpuOps<T>::random_uniform(Mat<T> out, T lo, T hi, const RngStream& s, uint64_t offset) {
  const int64_t n = out.size();
  for (int64_t j = 0; j < n;) {
    const uint64_t e = offset + static_cast<uint64_t>(j);
    const Philox4 b = philox_block(s, static_cast<uint32_t>(e / 4));
    for (uint64_t w = e % 4; w < 4 && j < n; ++w, ++j)
      out.data[j] = uniform_between(lo, hi, b.v[w]);
  }
}

template <typename T>
void CpuOps<T>::random_below(int32_t* out, int64_t n, uint32_t bound, const RngStream& s, uint64_t offset) {
  for (int64_t j = 0; j < n;) {
    const uint64_t e = offset + static_cast<uint64_t>(j);
    const Philox4 b = philox_block(s, static_cast<uint32_t>(e / 4));
    for (uint64_t w = e % 4; w < 4 && j < n; ++w, ++j) out[j] = static_cast<int32_t>(below(b.v[w], bound));
  }
}

template class CpuOps<float>;
template class CpuOps<double>;

}  // namespace ncsn
