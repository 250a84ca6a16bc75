// The op interface: every piece of arithmetic the networks, the trainer and the samplers need.
// The networks are written once over it; each backend implements every op (native/cpu,
// native/cuda). Matrices are row-major and contiguous; a backend owns the memory they live in.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "philox.h"

namespace ncsn {

template <typename T>
struct Mat {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t size() const { return rows * cols; }
  Mat row_range(int64_t begin, int64_t end) const { return {data + begin * cols, end - begin, cols}; }
};

// A batch of images in NCHW order, viewed without a copy. Image b's channel k starts at
// data + b·batch_stride + k·h·w; batch_stride is c·h·w for a whole tensor and more for a channel
// slice of a wider one, which is how a concatenation is written and read without copying.
template <typename T>
struct Tensor4 {
  T* data = nullptr;
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t batch_stride = 0;

  int64_t plane() const { return h * w; }
  int64_t size() const { return n * c * h * w; }
  T* channel(int64_t b, int64_t k) const { return data + b * batch_stride + k * h * w; }
  Tensor4 channels(int64_t begin, int64_t end) const { return {data + begin * h * w, n, end - begin, h, w, batch_stride}; }
  Tensor4 images(int64_t begin, int64_t end) const { return {data + begin * batch_stride, end - begin, c, h, w, batch_stride}; }
};

template <typename T>
Tensor4<T> nchw(T* data, int64_t n, int64_t c, int64_t h, int64_t w) { return {data, n, c, h, w, c * h * w}; }

// How a GPU backend multiplies in its matrix products and convolutions: FP32, or on the tensor cores
// (compute capability 8.0 and later) with inputs rounded to TF32 or BF16 and FP32 accumulation.
enum class Precision { fp32, tf32, bf16 };

struct AdamSettings {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// A step recorded by Device::record_step, run again for step k of its RNG streams.
class RecordedStep {
 public:
  virtual ~RecordedStep() = default;
  virtual void run(uint64_t k) = 0;
};

// Memory and scheduling, the part of a backend that does not depend on the scalar type.
class Device {
 public:
  virtual ~Device() = default;
  virtual std::string name() const = 0;
  // Makes this device the calling thread's own (a GPU backend's current device). Every entry into
  // a model calls it first, since training and sampling run on whichever pool thread is free.
  virtual void bind_to_calling_thread() {}

  virtual void* alloc_bytes(size_t bytes) = 0;
  virtual void free_bytes(void* p) = 0;
  virtual void to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;

  // Work is split into chunks of rows that the backend may run side by side; `worker` names the
  // scratch a chunk may use. A GPU backend runs one chunk holding every row.
  virtual int64_t chunk_rows() const = 0;
  // Rows per chunk where rows never interact (sampling), so chunking cannot change a result and
  // larger chunks spread the per-chunk work (packing the weights) over more rows.
  virtual int64_t independent_chunk_rows() const { return chunk_rows(); }
  // Rows per chunk for a network whose scratch takes row_bytes a row (the U-Net's activations).
  virtual int64_t chunk_rows_for(double row_bytes) const = 0;
  virtual int workers() const = 0;
  // fn(chunk, worker) for every chunk. No chunk writes a weight that an op of the same call reads
  // (a backend may lay a weight out once per call: the CPU transposes matmul_forward's).
  virtual void run_chunks(int64_t n_chunks, const std::function<void(int64_t chunk, int worker)>& fn) = 0;

  // Records step(first) without running it, where the work step(k) queues differs from
  // step(first)'s only in the step of the RNG streams it draws, which is k in place of first. A GPU
  // backend records it as a CUDA graph, which then runs for any k with those streams' steps set in
  // it: one launch instead of one per op (a U-Net's Langevin step has some seventy). Null where the
  // backend records nothing (the CPU) or the recording failed (a step that reads back to the host):
  // the caller then runs step(k) itself. The recording holds the buffers step used: it is valid
  // while they are.
  virtual std::unique_ptr<RecordedStep> record_step(uint64_t first, const std::function<void(uint64_t k)>& step) {
    (void)first;
    (void)step;
    return nullptr;
  }
  // The steps run from a recording since the backend was made.
  virtual int64_t graph_replays() const { return 0; }
};

// An array in a device's memory, freed with it.
template <typename U>
class Array {
 public:
  Array() = default;
  Array(Device& dev, int64_t n) : dev_(&dev), n_(n) {
    data_ = static_cast<U*>(dev.alloc_bytes(static_cast<size_t>(n > 0 ? n : 1) * sizeof(U)));
  }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  Array(Array&& o) noexcept { *this = std::move(o); }
  Array& operator=(Array&& o) noexcept {
    release();
    dev_ = o.dev_; data_ = o.data_; n_ = o.n_;
    o.dev_ = nullptr; o.data_ = nullptr; o.n_ = 0;
    return *this;
  }
  ~Array() { release(); }

  U* data() const { return data_; }
  int64_t size() const { return n_; }
  Mat<U> mat(int64_t rows, int64_t cols) const { return {data_, rows, cols}; }
  void upload(const U* src, int64_t n, int64_t at = 0) { dev_->to_device(data_ + at, src, n * sizeof(U)); }
  void download(U* dst, int64_t n, int64_t at = 0) const { dev_->to_host(dst, data_ + at, n * sizeof(U)); }

 private:
  void release() {
    if (dev_ && data_) dev_->free_bytes(data_);
    data_ = nullptr;
  }
  Device* dev_ = nullptr;
  U* data_ = nullptr;
  int64_t n_ = 0;
};

// The pc corrector's step sizes (native/core/sampler.h) from the summed row norms of the score and
// of the noise over a batch of n rows: with the norms averaged, e = 2 (snr ‖z‖ / ‖s‖)², and the step
// x ← x + e s + √(2e) z. A score of exactly zero gives the step no direction, and e = 0. One
// function in double for every backend: a GPU that computes it on the device gets the host's
// numbers (double division and square root are correctly rounded on both, and nothing here can be
// contracted into an FMA).
struct CorrectorStep {
  double drift, diffusion;
};
NCSN_HD CorrectorStep corrector_step(double score_norm_sum, double noise_norm_sum, int64_t n, double snr) {
  const double score_norm = score_norm_sum / static_cast<double>(n), noise_norm = noise_norm_sum / static_cast<double>(n);
  if (!(score_norm > 0)) return {0, 0};
  const double ratio = snr * noise_norm / score_norm, e = 2 * ratio * ratio;
  return {e, sqrt(2 * e)};
}

// Where a training run diverged, kept in the device's memory so that no step waits on the host
// to check its own: `step` is the first step (1-based) whose per-sample losses or gradient held a
// value that was not finite, 0 while none has; `first` is the first such value of that step, as
// loss_at(row, level) for a loss and `gradient` where every loss was finite (the smallest wins).
struct Divergence {
  static constexpr uint64_t gradient = ~uint64_t{0} << 32;
  NCSN_HD static uint64_t loss_at(int64_t row, int32_t level) {
    return static_cast<uint64_t>(row) << 32 | static_cast<uint32_t>(level);
  }
  uint64_t step = 0;
  uint64_t first = ~uint64_t{0};

  bool in_loss() const { return first < gradient; }
  int32_t level() const { return static_cast<int32_t>(first & 0xffffffffu); }
};

template <typename T>
class MlpFastPaths;
template <typename T>
class ImageOps;

template <typename T>
class Ops : public Device {
 public:
  // Whole-network fast paths for the MLP (fused kernels), or null where the backend has none.
  virtual MlpFastPaths<T>* mlp_fast_paths() { return nullptr; }
  // The convolutional networks' ops, or null on a backend that has no kernels for them yet.
  virtual ImageOps<T>* image_ops() { return nullptr; }

  // y[M×N] = x[M×K] · wᵀ, with w[N×K] (a linear layer without its bias).
  virtual void matmul_forward(Mat<T> y, Mat<T> x, Mat<T> w) = 0;
  // dx = dy · w (skipped when dx.data is null); dw = dyᵀ · x, overwritten.
  virtual void matmul_backward(Mat<T> dx, Mat<T> dw, Mat<T> dy, Mat<T> x, Mat<T> w) = 0;

  // y[r] += b + e[level[r]]; e may be empty (no per-level bias).
  virtual void add_bias_forward(Mat<T> y, const T* b, Mat<T> e, const int32_t* level) = 0;
  // db = Σ_r dy[r]; de[l] = Σ_{r: level[r]=l} dy[r], overwritten (skipped when e is empty).
  virtual void add_bias_backward(T* db, Mat<T> de, Mat<T> dy, const int32_t* level) = 0;

  virtual void softplus_forward(Mat<T> h, Mat<T> z) = 0;
  // dz = dh · sigmoid(z)
  virtual void softplus_backward(Mat<T> dz, Mat<T> dh, Mat<T> z) = 0;

  // h = sin(z): the MLP's optional first layer, learned Fourier features of the input
  virtual void sin_forward(Mat<T> h, Mat<T> z) = 0;
  // dz = dh · cos(z)
  virtual void sin_backward(Mat<T> dz, Mat<T> dh, Mat<T> z) = 0;

  // y[r] *= factor[level[r]]: the score's 1/σ_i and its backward.
  virtual void scale_by_level(Mat<T> y, const T* factor, const int32_t* level) = 0;

  // x̃ = x + σ_level z
  virtual void perturb(Mat<T> xt, Mat<T> x, Mat<T> z, const T* sigma, const int32_t* level) = 0;
  // loss[r] = ½‖σ s[r] + z[r]‖² (DSM with λ(σ) = σ²) and ds = grad_scale · ∂loss/∂s.
  virtual void dsm_loss(T* loss, Mat<T> ds, Mat<T> s, Mat<T> z, const T* sigma, const int32_t* level,
                        T grad_scale) = 0;

  // x += drift · s + diffusion · z (z may be empty: a deterministic step such as denoising).
  virtual void langevin_step(Mat<T> x, Mat<T> s, Mat<T> z, T drift, T diffusion) = 0;
  // x += step[0] · s + step[1] · z, the step sizes read from this device's memory (where
  // corrector_step_size wrote them): the same arithmetic as langevin_step.
  virtual void langevin_step_sized(Mat<T> x, Mat<T> s, Mat<T> z, const T* step) = 0;
  // step[0], step[1] = corrector_step(Σ_r ‖s[r]‖, Σ_r ‖z[r]‖, rows, snr), the sums as sum_row_norms
  // adds them, written to this device's memory: nothing comes back to the host, so a pc corrector
  // step can be recorded (record_step) and replayed.
  virtual void corrector_step_size(T* step, Mat<T> s, Mat<T> z, double snr) = 0;
  // x[r][j] = y[r][j] where mask[j] ≠ 0 (inpainting: the known pixels over the particles).
  virtual void paste_known(Mat<T> x, Mat<T> y, const T* mask) = 0;
  // Σ_r ‖a[r]‖₂ in double, added in an order fixed by the shape alone (the PC corrector's
  // batch-averaged norms).
  virtual double sum_row_norms(Mat<T> a) = 0;
  // Notes training step `step` (1-based) in *d where one of its b per-sample losses or its p
  // gradient values is not finite and no earlier step is noted there. Nothing comes back to the
  // host: the steps after it skip Adam and the EMA by *d, and the trainer reads it when it reports.
  virtual void note_divergence(Divergence* d, const T* loss, const int32_t* level, int64_t b, const T* grad,
                               int64_t p, uint64_t step) = 0;
  // sums[l] += the losses of the rows at level l and sums[levels + l] += their count, in double and
  // in an order that the shape alone fixes (a trainer's per-level statistics, kept on the device).
  virtual void add_level_losses(double* sums, const T* loss, const int32_t* level, int64_t b, int64_t levels) = 0;

  // The exact score of a Gaussian mixture Σ w_k N(μ_k, (var + σ_level²) I), means[K×D].
  virtual void mixture_score(Mat<T> s, Mat<T> x, Mat<T> means, const T* log_weight, T var,
                             const T* sigma, const int32_t* level) = 0;

  // Adam (Kingma & Ba) with bias correction at step t (1-based), in place over n parameters, and
  // the parameters' moving average; both change nothing where `unless` (if given) notes a divergence.
  virtual void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamSettings& s, int64_t t,
                           const Divergence* unless) = 0;
  virtual void ema_update(T* ema, const T* p, int64_t n, double decay, const Divergence* unless) = 0;
  // dst += src over n values (chunk gradients summed in a fixed order).
  virtual void accumulate(T* dst, const T* src, int64_t n) = 0;

  virtual void gather_rows(Mat<T> out, Mat<T> data, const int32_t* index) = 0;
  virtual void fill_int(int32_t* out, int64_t n, int32_t value) = 0;

  // Counter-based draws: value j of the stream is element `offset + j` of it, whatever the
  // chunking, so CPU and GPU and any thread count draw the same numbers.
  virtual void random_normal(Mat<T> out, const RngStream& s, uint64_t offset) = 0;
  virtual void random_uniform(Mat<T> out, T lo, T hi, const RngStream& s, uint64_t offset) = 0;
  virtual void random_below(int32_t* out, int64_t n, uint32_t bound, const RngStream& s, uint64_t offset) = 0;
};

// The ops of the convolutional score networks (docs/workloads.md W2), on NCHW views. Each runs on
// one thread over the images it is given; a backend's parallelism is across chunks of images.
template <typename T>
class ImageOps {
 public:
  virtual ~ImageOps() = default;

  // y = conv3x3(x; w) + b (+ add, where add.data is set), padding 1, stride 1 or 2; w is
  // [y.c, x.c, 3, 3] and y.h = (x.h − 1)/stride + 1. `add` (y's shape) is a residual connection
  // taken in the output's epilogue, so the sum is written once instead of written, read and
  // written again; its backward hands dy to `add`'s branch unchanged.
  virtual void conv3x3_forward(Tensor4<T> y, Tensor4<T> x, const T* w, const T* b, int stride, Tensor4<T> add) = 0;
  // dx (skipped when dx.data is null), dw and db, overwritten.
  virtual void conv3x3_backward(Tensor4<T> dx, T* dw, T* db, Tensor4<T> dy, Tensor4<T> x, const T* w, int stride) = 0;

  // CondInstanceNorm++ as W2 writes it: for image b at level i = level[b] and channel k, with μ_k
  // and s_k the spatial mean and standard deviation (biased variance, +1e-5 under the root) and m,
  // v the mean and standard deviation of the μ_k across channels (unbiased variance, +1e-5),
  //   y_k = γ[i,k] (x_k − μ_k)/s_k + β[i,k] + α[i,k] (μ_k − m)/v,
  // with embed[i] = [γ | β | α], 3·C values per level. stats (2·C + 2 per image) keeps μ_k, 1/s_k,
  // m and 1/v for the backward pass. With `elu`, y = ELU(that) = v > 0 ? v : exp(v) − 1, applied
  // before the value is stored (the U-Net's normact in one pass instead of two).
  virtual void cond_instance_norm_forward(Tensor4<T> y, Tensor4<T> x, const T* embed, const int32_t* level,
                                          T* stats, bool elu) = 0;
  // dx, and dembed [levels × 3C] overwritten (zero for levels no image has). Where the forward
  // applied ELU, elu_y is its output and dy is taken through ELU′ (1 where y > 0, else y + 1) as it
  // is read; elu_y is empty otherwise.
  virtual void cond_instance_norm_backward(Tensor4<T> dx, T* dembed, int64_t levels, Tensor4<T> dy, Tensor4<T> x,
                                           const T* embed, const int32_t* level, const T* stats, Tensor4<T> elu_y) = 0;

  // Nearest-neighbour 2× up-sampling, y.h = 2·x.h; backward sums each 2×2 block into dx.
  virtual void upsample2_forward(Tensor4<T> y, Tensor4<T> x) = 0;
  virtual void upsample2_backward(Tensor4<T> dx, Tensor4<T> dy) = 0;

  // y += x over equal shapes (a gradient added to a buffer's share from another branch).
  virtual void add_into(Tensor4<T> y, Tensor4<T> x) = 0;
};

}  // namespace ncsn
