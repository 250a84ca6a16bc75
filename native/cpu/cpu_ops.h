// The CPU backend: every op of the interface, single-threaded and vectorised per call; the
// parallelism is across chunks of rows (run_chunks), so a chunk's activations stay in cache. The
// image ops live in conv.cpp, norm.cpp and image_pointwise.cpp.
#pragma once
#include <algorithm>
#include <memory>

#include "../core/mlp.h"
#include "../core/ops.h"
#include "thread_pool.h"

namespace ncsn {

template <typename T>
class CpuOps final : public Ops<T>, public ImageOps<T> {
 public:
  // threads <= 0: one per hardware thread. chunk: rows per chunk (a multiple of 4 is fastest).
  explicit CpuOps(int threads = 0, int64_t chunk = 64);

  std::string name() const override { return "cpu"; }
  void* alloc_bytes(size_t bytes) override;
  void free_bytes(void* p) override;
  void to_device(void* dst, const void* src, size_t bytes) override;
  void to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  int64_t chunk_rows() const override { return chunk_; }
  // 256 rows of W1 activations still fit in a core's L2 and make sampling 10–20% faster than 64
  // (measured on the 2-core AVX-512 development machine).
  int64_t independent_chunk_rows() const override { return 4 * chunk_; }
  // Large rows come 8 to a chunk, which keeps a worker's share of memory small without making the
  // per-image matrix products any narrower, and fewer where they are larger, down to one, so that
  // a chunk stays near 256 MB.
  int64_t chunk_rows_for(double row_bytes) const override {
    return std::max<int64_t>(1, std::min<int64_t>(8, static_cast<int64_t>(256e6 / row_bytes)));
  }
  int workers() const override { return pool_->size(); }
  void run_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn) override;

  void matmul_forward(Mat<T> y, Mat<T> x, Mat<T> w) override;
  void matmul_backward(Mat<T> dx, Mat<T> dw, Mat<T> dy, Mat<T> x, Mat<T> w) override;
  void add_bias_forward(Mat<T> y, const T* b, Mat<T> e, const int32_t* level) override;
  void add_bias_backward(T* db, Mat<T> de, Mat<T> dy, const int32_t* level) override;
  void softplus_forward(Mat<T> h, Mat<T> z) override;
  void softplus_backward(Mat<T> dz, Mat<T> dh, Mat<T> z) override;
  void sin_forward(Mat<T> h, Mat<T> z) override;
  void sin_backward(Mat<T> dz, Mat<T> dh, Mat<T> z) override;
  void scale_by_level(Mat<T> y, const T* factor, const int32_t* level) override;
  void perturb(Mat<T> xt, Mat<T> x, Mat<T> z, const T* sigma, const int32_t* level) override;
  void dsm_loss(T* loss, Mat<T> ds, Mat<T> s, Mat<T> z, const T* sigma, const int32_t* level,
                T grad_scale) override;
  void langevin_step(Mat<T> x, Mat<T> s, Mat<T> z, T drift, T diffusion) override;
  void langevin_step_sized(Mat<T> x, Mat<T> s, Mat<T> z, const T* step) override;
  void corrector_step_size(T* step, Mat<T> s, Mat<T> z, double snr) override;
  void paste_known(Mat<T> x, Mat<T> y, const T* mask) override;
  double sum_row_norms(Mat<T> a) override;
  void note_divergence(Divergence* d, const T* loss, const int32_t* level, int64_t b, const T* grad, int64_t p,
                       uint64_t step) override;
  void add_level_losses(double* sums, const T* loss, const int32_t* level, int64_t b, int64_t levels) override;
  void mixture_score(Mat<T> s, Mat<T> x, Mat<T> means, const T* log_weight, T var, const T* sigma,
                     const int32_t* level) override;
  void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamSettings& s, int64_t t,
                   const Divergence* unless) override;
  void ema_update(T* ema, const T* p, int64_t n, double decay, const Divergence* unless) override;
  void accumulate(T* dst, const T* src, int64_t n) override;
  void gather_rows(Mat<T> out, Mat<T> data, const int32_t* index) override;
  void fill_int(int32_t* out, int64_t n, int32_t value) override;
  void random_normal(Mat<T> out, const RngStream& s, uint64_t offset) override;
  void random_uniform(Mat<T> out, T lo, T hi, const RngStream& s, uint64_t offset) override;
  void random_below(int32_t* out, int64_t n, uint32_t bound, const RngStream& s, uint64_t offset) override;

  // float only: the fused MLP sampling path (fused_mlp.h)
  MlpFastPaths<T>* mlp_fast_paths() override { return fused_.get(); }
  ImageOps<T>* image_ops() override { return this; }
  void conv3x3_forward(Tensor4<T> y, Tensor4<T> x, const T* w, const T* b, int stride, Tensor4<T> add) override;
  void conv3x3_backward(Tensor4<T> dx, T* dw, T* db, Tensor4<T> dy, Tensor4<T> x, const T* w, int stride) override;
  void cond_instance_norm_forward(Tensor4<T> y, Tensor4<T> x, const T* embed, const int32_t* level, T* stats,
                                  bool elu) override;
  void cond_instance_norm_backward(Tensor4<T> dx, T* dembed, int64_t levels, Tensor4<T> dy, Tensor4<T> x,
                                   const T* embed, const int32_t* level, const T* stats, Tensor4<T> elu_y) override;
  void upsample2_forward(Tensor4<T> y, Tensor4<T> x) override;
  void upsample2_backward(Tensor4<T> dx, Tensor4<T> dy) override;
  void add_into(Tensor4<T> y, Tensor4<T> x) override;

 private:
  std::unique_ptr<ThreadPool> pool_;
  int64_t chunk_;
  std::unique_ptr<MlpFastPaths<T>> fused_;
};

}  // namespace ncsn
