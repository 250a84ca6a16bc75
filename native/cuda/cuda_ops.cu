// The CUDA backend: every op of the interface as a kernel on one stream per model, memory from a
// caching allocator. One chunk holds every row: the GPU's parallelism is inside each kernel.
// record_step records a step (a U-Net's Langevin step: some seventy launches) as a CUDA graph that
// then runs for any step k, with k set in the graph's random-draw nodes before each launch;
// everything else a step reads (the level, the step sizes, the buffers) is the same in every step
// of a sampling segment or a training run.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "check.cuh"
#include "grid.cuh"
#include "cuda_backend.h"
#include "fused_mlp.cuh"
#include "gemm.cuh"
#include "image_ops.cuh"

namespace ncsn {
namespace {

__global__ void add_bias_forward_k(float* y, int64_t rows, int64_t cols, const float* b, const float* e,
                                   const int32_t* level) {
  GRID_STRIDE(i, rows * cols) {
    const int64_t r = i / cols, j = i % cols;
    float v = y[i] + b[j];
    if (e) v += e[static_cast<int64_t>(level[r]) * cols + j];
    y[i] = v;
  }
}

// Column sums in row order, like the CPU's, so both backends add the same numbers in the same order.
// Thread (l, j) sums the rows of level l (all rows when level is null) of column j.
__global__ void column_sums_k(float* out, const float* dy, int64_t rows, int64_t cols, const int32_t* level,
                              int64_t levels) {
  GRID_STRIDE(i, levels * cols) {
    const int64_t l = i / cols, j = i % cols;
    float s = 0.0f;
    for (int64_t r = 0; r < rows; ++r)
      if (!level || level[r] == l) s += dy[r * cols + j];
    out[i] = s;
  }
}

__global__ void softplus_forward_k(float* h, const float* z, int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = z[i];
    h[i] = fmaxf(v, 0.0f) + log1pf(expf(-fabsf(v)));
  }
}

__global__ void softplus_backward_k(float* dz, const float* dh, const float* z, int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = z[i], e = expf(-fabsf(v)), r = 1.0f / (1.0f + e);
    dz[i] = dh[i] * (v >= 0.0f ? r : e * r);
  }
}

__global__ void sin_forward_k(float* h, const float* z, int64_t n) {
  GRID_STRIDE(i, n) { h[i] = sinf(z[i]); }
}

__global__ void sin_backward_k(float* dz, const float* dh, const float* z, int64_t n) {
  GRID_STRIDE(i, n) { dz[i] = dh[i] * cosf(z[i]); }
}

__global__ void scale_by_level_k(float* y, int64_t rows, int64_t cols, const float* factor, const int32_t* level) {
  GRID_STRIDE(i, rows * cols) { y[i] *= factor[level[i / cols]]; }
}

__global__ void perturb_k(float* xt, const float* x, const float* z, int64_t rows, int64_t cols, const float* sigma,
                          const int32_t* level) {
  GRID_STRIDE(i, rows * cols) { xt[i] = x[i] + sigma[level[i / cols]] * z[i]; }
}

__global__ void dsm_loss_k(float* loss, float* ds, const float* s, const float* z, int64_t rows, int64_t cols,
                           const float* sigma, const int32_t* level, float grad_scale) {
  GRID_STRIDE(r, rows) {
    const float sg = sigma[level[r]];
    float acc = 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t at = r * cols + j;
      const float e = sg * s[at] + z[at];
      acc += e * e;
      ds[at] = grad_scale * sg * e;
    }
    loss[r] = 0.5f * acc;
  }
}

__global__ void langevin_step_k(float* x, const float* s, const float* z, int64_t n, float drift, float diffusion) {
  GRID_STRIDE(i, n) { x[i] += z ? drift * s[i] + diffusion * z[i] : drift * s[i]; }
}

// x += step[0] · s + step[1] · z: langevin_step_k's arithmetic, with the sizes that
// corrector_step_size_k left on the device.
__global__ void langevin_step_sized_k(float* x, const float* s, const float* z, int64_t n, const float* step) {
  const float drift = step[0], diffusion = step[1];
  GRID_STRIDE(i, n) { x[i] += drift * s[i] + diffusion * z[i]; }
}

__global__ void paste_known_k(float* x, const float* y, const float* mask, int64_t rows, int64_t cols) {
  GRID_STRIDE(i, rows * cols) {
    if (mask[i % cols] != 0.0f) x[i] = y[i];
  }
}

// Row norms summed in two deterministic passes: block b sums rows b, b + blocks, … in a fixed tree,
// then one block sums the partials the same way. The order depends on the shape alone.
constexpr int NORM_BLOCKS = 256;

__global__ void row_norm_partials_k(double* partial, const float* a, int64_t rows, int64_t cols) {
  __shared__ double shared[GRID_THREADS];
  double acc = 0;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(GRID_THREADS) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(NORM_BLOCKS) * GRID_THREADS) {
    double sq = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const double v = a[r * cols + j];
      sq += v * v;
    }
    acc += sqrt(sq);
  }
  const double total = block_sum<GRID_THREADS>(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void sum_partials_k(double* out, const double* partial) {
  __shared__ double shared[NORM_BLOCKS];
  const double total = block_sum<NORM_BLOCKS>(partial[threadIdx.x], shared);
  if (threadIdx.x == 0) *out = total;
}

// The pc corrector's step sizes from the norm sums of the score (sums[0]) and the noise (sums[1]),
// in one thread: a few double operations that spare a read back to the host at every step.
__global__ void corrector_step_size_k(float* step, const double* sums, int64_t n, double snr) {
  const CorrectorStep e = corrector_step(sums[0], sums[1], n, snr);
  step[0] = static_cast<float>(e.drift);
  step[1] = static_cast<float>(e.diffusion);
}

__global__ void mixture_score_k(float* s, const float* x, int64_t rows, int64_t d, const float* means, int64_t k,
                                const float* log_weight, float var, const float* sigma, const int32_t* level) {
  GRID_STRIDE(r, rows) {
    const float sg = sigma[level[r]], v = var + sg * sg;
    const float* xi = x + r * d;
    float top = -INFINITY;
    for (int64_t c = 0; c < k; ++c) {
      float dist = 0.0f;
      for (int64_t j = 0; j < d; ++j) {
        const float diff = xi[j] - means[c * d + j];
        dist += diff * diff;
      }
      top = fmaxf(top, log_weight[c] - dist / (2.0f * v));
    }
    float total = 0.0f;
    for (int64_t j = 0; j < d; ++j) s[r * d + j] = 0.0f;
    for (int64_t c = 0; c < k; ++c) {
      float dist = 0.0f;
      for (int64_t j = 0; j < d; ++j) {
        const float diff = xi[j] - means[c * d + j];
        dist += diff * diff;
      }
      const float w = expf(log_weight[c] - dist / (2.0f * v) - top);
      total += w;
      for (int64_t j = 0; j < d; ++j) s[r * d + j] += w * (means[c * d + j] - xi[j]);
    }
    for (int64_t j = 0; j < d; ++j) s[r * d + j] /= total * v;
  }
}

// A step after a noted divergence changes nothing (`unless` null: always update).
__device__ __forceinline__ bool diverged(const Divergence* unless) { return unless && unless->step != 0; }

__global__ void adam_k(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step,
                       float inv_sqrt_bc2, float eps, const Divergence* unless) {
  if (diverged(unless)) return;
  GRID_STRIDE(i, n) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
  }
}

__global__ void ema_k(float* e, const float* p, int64_t n, float d, float rest, const Divergence* unless) {
  if (diverged(unless)) return;
  GRID_STRIDE(i, n) { e[i] = d * e[i] + rest * p[i]; }
}

__global__ void accumulate_k(float* dst, const float* src, int64_t n) {
  GRID_STRIDE(i, n) { dst[i] += src[i]; }
}

// Over the b losses, then the p gradient values. Every thread that finds a value that is not
// finite claims the record for `step` (all such threads write the same step, and a record of an
// earlier step stays) and offers its place; the smallest place wins whatever the timing.
__global__ void note_divergence_k(Divergence* d, const float* loss, const int32_t* level, int64_t b, const float* grad,
                                  int64_t p, uint64_t step) {
  auto* record_step = reinterpret_cast<unsigned long long*>(&d->step);
  auto* record_first = reinterpret_cast<unsigned long long*>(&d->first);
  GRID_STRIDE(i, b + p) {
    const float v = i < b ? loss[i] : grad[i - b];
    if (fabsf(v) <= FLT_MAX) continue;  // finite; ±inf and NaN fail the test
    const unsigned long long held = atomicCAS(record_step, 0ull, static_cast<unsigned long long>(step));
    if (held != 0 && held != step) return;
    atomicMin(record_first, static_cast<unsigned long long>(i < b ? Divergence::loss_at(i, level[i]) : Divergence::gradient));
  }
}

// A warp per level sums its rows' losses and counts them, lane by lane in row order, then across
// the lanes in a fixed butterfly: no atomics, the same sums run to run.
__global__ void add_level_losses_k(double* sums, const float* loss, const int32_t* level, int64_t b, int64_t levels) {
  const int64_t l = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (l >= levels) return;  // whole warps: levels a block holds past the last leave together
  double sum = 0, count = 0;
  for (int64_t r = lane; r < b; r += 32)
    if (level[r] == l) {
      sum += loss[r];
      count += 1;
    }
  for (int mask = 16; mask > 0; mask /= 2) {
    sum += __shfl_xor_sync(0xffffffffu, sum, mask);
    count += __shfl_xor_sync(0xffffffffu, count, mask);
  }
  if (lane == 0) {
    sums[l] += sum;
    sums[levels + l] += count;
  }
}

__global__ void gather_rows_k(float* out, const float* data, const int32_t* index, int64_t rows, int64_t cols) {
  GRID_STRIDE(i, rows * cols) { out[i] = data[static_cast<int64_t>(index[i / cols]) * cols + i % cols]; }
}

__global__ void fill_int_k(int32_t* out, int64_t n, int32_t value) {
  GRID_STRIDE(i, n) { out[i] = value; }
}

// Thread t makes Philox block first_block + t and writes the elements of it inside [offset, offset + n).
enum class Draw { normal, uniform, below };

__global__ void random_k(Draw kind, float* out_f, int32_t* out_i, int64_t n, RngStream s, uint64_t offset, float lo,
                         float hi, uint32_t bound) {
  const uint64_t first = offset / 4, last = (offset + static_cast<uint64_t>(n) - 1) / 4;
  GRID_STRIDE(t, static_cast<int64_t>(last - first + 1)) {
    const uint64_t block = first + static_cast<uint64_t>(t);
    const Philox4 b = philox_block(s, static_cast<uint32_t>(block));
    float z[4];
    if (kind == Draw::normal) normals_from_block(b, z);
    for (int w = 0; w < 4; ++w) {
      const uint64_t e = block * 4 + w;
      if (e < offset || e >= offset + static_cast<uint64_t>(n)) continue;
      const uint64_t j = e - offset;
      if (kind == Draw::normal) out_f[j] = z[w];
      else if (kind == Draw::uniform) out_f[j] = uniform_between(lo, hi, b.v[w]);
      else out_i[j] = static_cast<int32_t>(below(b.v[w], bound));
    }
  }
}

// Device memory is kept for reuse, keyed by size: training and sampling allocate the same sizes
// again and again, and cudaMalloc synchronises the device.
//
// A block released while a step is recorded as a graph is scratch that the graph writes at every
// replay, so it stays out of the cache until the recording is destroyed. Until the
// recording ends it may serve the recording's own later scratch, since the graph runs its nodes in
// the order they were recorded; a block so served and still in use when the recording ends would
// be lasting memory that the graph overwrites, and the recording is then refused.
class CachingAllocator {
 public:
  using Blocks = std::vector<std::pair<size_t, void*>>;

  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator() {
    cudaSetDevice(device_);
    for (auto& [size, p] : free_) cudaFree(p);
  }
  void* alloc(size_t bytes) {
    bytes = (bytes + 255) / 256 * 256;
    std::lock_guard<std::mutex> lock(mu_);
    if (recording_)
      if (void* p = take(recorded_free_, bytes)) {
        served_from_recording_.insert(p);
        return p;
      }
    if (void* p = take(free_, bytes)) return p;
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {  // give the cache back and try once more
      cudaGetLastError();
      for (auto& [size, q] : free_) cudaFree(q);
      free_.clear();
      e = cudaMalloc(&p, bytes);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw CudaError(e, "allocating " + std::to_string(bytes >> 20) + " MiB");
    }
    used_[p] = bytes;
    return p;
  }
  void release(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = used_.find(p);
    if (it == used_.end()) return;
    (recording_ ? recorded_free_ : free_).emplace(it->second, p);
    served_from_recording_.erase(p);
    used_.erase(it);
  }

  void begin_recording() {
    std::lock_guard<std::mutex> lock(mu_);
    recording_ = true;
  }
  // The blocks the recording released, for it to give back when it is destroyed; false where one
  // of them is still in use past the recording (see above).
  bool end_recording(Blocks& held) {
    std::lock_guard<std::mutex> lock(mu_);
    recording_ = false;
    held.assign(recorded_free_.begin(), recorded_free_.end());
    recorded_free_.clear();
    const bool apart = served_from_recording_.empty();
    served_from_recording_.clear();
    return apart;
  }
  void give_back(const Blocks& held) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.insert(held.begin(), held.end());
  }

 private:
  // A cached block of at least `bytes` and at most twice that, now in use, or null.
  void* take(std::multimap<size_t, void*>& from, size_t bytes) {
    auto it = from.lower_bound(bytes);
    if (it == from.end() || it->first > 2 * bytes) return nullptr;
    void* p = it->second;
    used_[p] = it->first;
    from.erase(it);
    return p;
  }

  int device_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::map<void*, size_t> used_;
  bool recording_ = false;
  std::multimap<size_t, void*> recorded_free_;   // released while recording
  std::set<void*> served_from_recording_;        // in use, taken from recorded_free_
};

// The arguments of a random_k launch, kept so that a recorded draw's node can be given new ones.
struct DrawArgs {
  Draw kind;
  float* out_f;
  int32_t* out_i;
  int64_t n;
  RngStream s;
  uint64_t offset;
  float lo, hi;
  uint32_t bound;
  dim3 grid, block;
};

// A step being recorded: its draws from streams at the recorded step, with their graph nodes.
struct StepRecording {
  uint64_t first;
  std::vector<std::pair<cudaGraphNode_t, DrawArgs>> draws;
  bool failed = false;
};

// A recorded step: its graph, the executable made from it, the draws whose step run(k) sets, and
// the scratch the step released while it was recorded, which the graph writes at every replay.
// Destroying an executable that is still queued frees it when its launches finish; its scratch
// goes back to the cache at once, since whatever uses it next is queued on the same stream, after
// the replays.
class CudaRecordedStep final : public RecordedStep {
 public:
  CudaRecordedStep(cudaStream_t stream, std::atomic<int64_t>& replays, CachingAllocator& memory)
      : stream_(stream), replays_(replays), memory_(memory) {}
  ~CudaRecordedStep() override {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    memory_.give_back(scratch_);
  }
  void run(uint64_t k) override {
    for (auto& [node, args] : draws_) {
      if (args.s.step == k) continue;
      args.s.step = k;
      void* params[] = {&args.kind, &args.out_f, &args.out_i, &args.n, &args.s, &args.offset, &args.lo, &args.hi, &args.bound};
      cudaKernelNodeParams p{};
      p.func = reinterpret_cast<void*>(&random_k);
      p.gridDim = args.grid;
      p.blockDim = args.block;
      p.kernelParams = params;
      // the values are copied into the executable; a launch already queued keeps its own
      cuda_check(cudaGraphExecKernelNodeSetParams(exec_, node, &p), "setting a recorded step's random draws");
    }
    cuda_check(cudaGraphLaunch(exec_, stream_), "running a recorded step");
    replays_.fetch_add(1, std::memory_order_relaxed);
  }

  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  std::vector<std::pair<cudaGraphNode_t, DrawArgs>> draws_;
  CachingAllocator::Blocks scratch_;

 private:
  cudaStream_t stream_;
  std::atomic<int64_t>& replays_;
  CachingAllocator& memory_;
};

class CudaOps final : public Ops<float> {
 public:
  CudaOps(int device, Precision precision) : device_(device), tf32_(precision == Precision::tf32), memory_(device) {
    const cudaError_t e = cudaSetDevice(device);
    if (e == cudaErrorDevicesUnavailable)
      throw std::runtime_error("cuda:" + std::to_string(device) +
                               " is in exclusive-process mode and another process is using it");
    cuda_check(e, "cudaSetDevice");
    const std::string launch_problem = test_launch();
    if (!launch_problem.empty()) throw std::runtime_error("cuda:" + std::to_string(device) + ": " + launch_problem);
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    size_t free_bytes = 0;
    cuda_check(cudaMemGetInfo(&free_bytes, &memory_bytes_), "cudaMemGetInfo");
    fused_ = std::make_unique<FusedMlp>(device, stream_, *this, tf32_);
    image_ops_ = std::make_unique<CudaImageOps>(stream_, *this, precision);
    // made here rather than on first use, which may be inside a recorded step, where it could take a
    // block of the step's scratch and refuse the recording (CachingAllocator)
    norm_partials_ = Array<double>(*this, NORM_BLOCKS + 2);
  }
  ~CudaOps() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda:" + std::to_string(device_); }
  void bind_to_calling_thread() override { use(); }
  MlpFastPaths<float>* mlp_fast_paths() override {
    use();
    return fused_.get();
  }
  ImageOps<float>* image_ops() override {
    use();
    return image_ops_.get();
  }

  void* alloc_bytes(size_t bytes) override {
    use();
    return memory_.alloc(bytes);
  }
  // Every use of this memory is queued on stream_, so a block handed out again is only touched
  // after the kernels that used it before.
  void free_bytes(void* p) override { memory_.release(p); }
  void to_device(void* dst, const void* src, size_t bytes) override {
    use();
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to the GPU");
    cuda_check(cudaStreamSynchronize(stream_), "copy to the GPU");
  }
  void to_host(void* dst, const void* src, size_t bytes) override {
    use();
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy from the GPU");
    cuda_check(cudaStreamSynchronize(stream_), "copy from the GPU");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    use();
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy on the GPU");
  }
  int64_t chunk_rows() const override { return int64_t(1) << 40; }
  // One chunk is the GPU's whole batch, as wide as its kernels like; a quarter of the GPU's memory
  // bounds it (sampling a thousand U-Net images at once, say).
  int64_t chunk_rows_for(double row_bytes) const override {
    return std::max<int64_t>(1, static_cast<int64_t>(0.25 * static_cast<double>(memory_bytes_) / row_bytes));
  }
  int workers() const override { return 1; }
  void run_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn) override {
    use();
    for (int64_t c = 0; c < n_chunks; ++c) fn(c, 0);
  }

  void matmul_forward(Mat<float> y, Mat<float> x, Mat<float> w) override {
    gemm_gpu({y.data, w.rows, x.data, x.cols, 1, w.data, 1, w.cols, x.rows, w.rows, x.cols, false}, stream_, tf32_);
  }
  void matmul_backward(Mat<float> dx, Mat<float> dw, Mat<float> dy, Mat<float> x, Mat<float> w) override {
    const int64_t m = dy.rows, n = dy.cols, k = x.cols;
    if (dx.data) gemm_gpu({dx.data, k, dy.data, n, 1, w.data, k, 1, m, k, n, false}, stream_, tf32_);
    // dW sums over the batch: a long K and, for a layer of width 128, four tiles of C
    const GpuGemm gw{dw.data, k, dy.data, 1, n, x.data, k, 1, n, k, m, false};
    const int64_t slices = gemm_k_slices(gw);
    if (slices == 1) return gemm_gpu(gw, stream_, tf32_);
    Array<float> partial(*this, slices * n * k);
    gemm_gpu_k_sliced(gw, partial.data(), slices, stream_, tf32_);
  }
  void add_bias_forward(Mat<float> y, const float* b, Mat<float> e, const int32_t* level) override {
    add_bias_forward_k<<<grid_blocks(y.size()), GRID_THREADS, 0, stream_>>>(y.data, y.rows, y.cols, b, e.data, level);
    launch_check("add_bias_forward");
  }
  void add_bias_backward(float* db, Mat<float> de, Mat<float> dy, const int32_t* level) override {
    column_sums_k<<<grid_blocks(dy.cols), GRID_THREADS, 0, stream_>>>(db, dy.data, dy.rows, dy.cols, nullptr, 1);
    launch_check("add_bias_backward");
    if (de.data) {
      column_sums_k<<<grid_blocks(de.size()), GRID_THREADS, 0, stream_>>>(de.data, dy.data, dy.rows, dy.cols, level, de.rows);
      launch_check("add_bias_backward (levels)");
    }
  }
  void softplus_forward(Mat<float> h, Mat<float> z) override {
    softplus_forward_k<<<grid_blocks(z.size()), GRID_THREADS, 0, stream_>>>(h.data, z.data, z.size());
    launch_check("softplus_forward");
  }
  void softplus_backward(Mat<float> dz, Mat<float> dh, Mat<float> z) override {
    softplus_backward_k<<<grid_blocks(z.size()), GRID_THREADS, 0, stream_>>>(dz.data, dh.data, z.data, z.size());
    launch_check("softplus_backward");
  }
  void sin_forward(Mat<float> h, Mat<float> z) override {
    sin_forward_k<<<grid_blocks(z.size()), GRID_THREADS, 0, stream_>>>(h.data, z.data, z.size());
    launch_check("sin_forward");
  }
  void sin_backward(Mat<float> dz, Mat<float> dh, Mat<float> z) override {
    sin_backward_k<<<grid_blocks(z.size()), GRID_THREADS, 0, stream_>>>(dz.data, dh.data, z.data, z.size());
    launch_check("sin_backward");
  }
  void scale_by_level(Mat<float> y, const float* factor, const int32_t* level) override {
    scale_by_level_k<<<grid_blocks(y.size()), GRID_THREADS, 0, stream_>>>(y.data, y.rows, y.cols, factor, level);
    launch_check("scale_by_level");
  }
  void perturb(Mat<float> xt, Mat<float> x, Mat<float> z, const float* sigma, const int32_t* level) override {
    perturb_k<<<grid_blocks(x.size()), GRID_THREADS, 0, stream_>>>(xt.data, x.data, z.data, x.rows, x.cols, sigma, level);
    launch_check("perturb");
  }
  void dsm_loss(float* loss, Mat<float> ds, Mat<float> s, Mat<float> z, const float* sigma, const int32_t* level,
                float grad_scale) override {
    dsm_loss_k<<<grid_blocks(s.rows), GRID_THREADS, 0, stream_>>>(loss, ds.data, s.data, z.data, s.rows, s.cols, sigma, level,
                                                            grad_scale);
    launch_check("dsm_loss");
  }
  void langevin_step(Mat<float> x, Mat<float> s, Mat<float> z, float drift, float diffusion) override {
    langevin_step_k<<<grid_blocks(x.size()), GRID_THREADS, 0, stream_>>>(x.data, s.data, z.data, x.size(), drift, diffusion);
    launch_check("langevin_step");
  }
  void paste_known(Mat<float> x, Mat<float> y, const float* mask) override {
    paste_known_k<<<grid_blocks(x.size()), GRID_THREADS, 0, stream_>>>(x.data, y.data, mask, x.rows, x.cols);
    launch_check("paste_known");
  }
  void langevin_step_sized(Mat<float> x, Mat<float> s, Mat<float> z, const float* step) override {
    langevin_step_sized_k<<<grid_blocks(x.size()), GRID_THREADS, 0, stream_>>>(x.data, s.data, z.data, x.size(), step);
    launch_check("langevin_step_sized");
  }
  void corrector_step_size(float* step, Mat<float> s, Mat<float> z, double snr) override {
    use();
    double* sums = norm_partials_.data() + NORM_BLOCKS;
    queue_row_norm_sum(sums, s);
    queue_row_norm_sum(sums + 1, z);  // after the first sum on the stream, so the partials can be reused
    corrector_step_size_k<<<1, 1, 0, stream_>>>(step, sums, s.rows, snr);
    launch_check("corrector_step_size");
  }
  double sum_row_norms(Mat<float> a) override {
    use();
    queue_row_norm_sum(norm_partials_.data() + NORM_BLOCKS, a);
    double total = 0;
    norm_partials_.download(&total, 1, NORM_BLOCKS);
    return total;
  }
  void note_divergence(Divergence* d, const float* loss, const int32_t* level, int64_t b, const float* grad, int64_t p,
                       uint64_t step) override {
    note_divergence_k<<<grid_blocks(b + p), GRID_THREADS, 0, stream_>>>(d, loss, level, b, grad, p, step);
    launch_check("note_divergence");
  }
  void add_level_losses(double* sums, const float* loss, const int32_t* level, int64_t b, int64_t levels) override {
    add_level_losses_k<<<grid_blocks(levels * 32), GRID_THREADS, 0, stream_>>>(sums, loss, level, b, levels);
    launch_check("add_level_losses");
  }
  void mixture_score(Mat<float> s, Mat<float> x, Mat<float> means, const float* log_weight, float var,
                     const float* sigma, const int32_t* level) override {
    mixture_score_k<<<grid_blocks(x.rows), GRID_THREADS, 0, stream_>>>(s.data, x.data, x.rows, x.cols, means.data, means.rows,
                                                                 log_weight, var, sigma, level);
    launch_check("mixture_score");
  }
  void adam_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamSettings& s, int64_t t,
                   const Divergence* unless) override {
    const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(t));
    adam_k<<<grid_blocks(n), GRID_THREADS, 0, stream_>>>(p, g, m, v, n, static_cast<float>(s.beta1), static_cast<float>(s.beta2),
                                                   static_cast<float>(s.lr / bc1), static_cast<float>(1.0 / std::sqrt(bc2)),
                                                   static_cast<float>(s.eps), unless);
    launch_check("adam_update");
  }
  void ema_update(float* ema, const float* p, int64_t n, double decay, const Divergence* unless) override {
    ema_k<<<grid_blocks(n), GRID_THREADS, 0, stream_>>>(ema, p, n, static_cast<float>(decay), static_cast<float>(1.0 - decay),
                                                  unless);
    launch_check("ema_update");
  }
  void accumulate(float* dst, const float* src, int64_t n) override {
    accumulate_k<<<grid_blocks(n), GRID_THREADS, 0, stream_>>>(dst, src, n);
    launch_check("accumulate");
  }
  void gather_rows(Mat<float> out, Mat<float> data, const int32_t* index) override {
    gather_rows_k<<<grid_blocks(out.size()), GRID_THREADS, 0, stream_>>>(out.data, data.data, index, out.rows, out.cols);
    launch_check("gather_rows");
  }
  void fill_int(int32_t* out, int64_t n, int32_t value) override {
    fill_int_k<<<grid_blocks(n), GRID_THREADS, 0, stream_>>>(out, n, value);
    launch_check("fill_int");
  }
  void random_normal(Mat<float> out, const RngStream& s, uint64_t offset) override {
    draw(Draw::normal, out.data, nullptr, out.size(), s, offset, 0, 0, 0);
  }
  void random_uniform(Mat<float> out, float lo, float hi, const RngStream& s, uint64_t offset) override {
    draw(Draw::uniform, out.data, nullptr, out.size(), s, offset, lo, hi, 0);
  }
  void random_below(int32_t* out, int64_t n, uint32_t bound, const RngStream& s, uint64_t offset) override {
    draw(Draw::below, nullptr, out, n, s, offset, 0, 0, bound);
  }

  std::unique_ptr<RecordedStep> record_step(uint64_t first, const std::function<void(uint64_t)>& step) override {
    use();
    StepRecording rec{first};
    auto recorded = std::make_unique<CudaRecordedStep>(stream_, graph_replays_, memory_);
    // Relaxed: the step's scratch may come from cudaMalloc while it is recorded.
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    recording_ = &rec;
    memory_.begin_recording();
    try {
      step(first);
    } catch (...) {  // a step that synchronises (a read back to the host) cannot be recorded
      rec.failed = true;
    }
    recording_ = nullptr;
    // the scratch goes back to the cache with `recorded`, also where it is not returned
    if (!memory_.end_recording(recorded->scratch_)) rec.failed = true;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &recorded->graph_);
    if (ended != cudaSuccess || rec.failed || !recorded->graph_ ||
        cudaGraphInstantiate(&recorded->exec_, recorded->graph_, 0) != cudaSuccess) {
      cudaGetLastError();  // the failed recording's error: the caller launches op by op
      return nullptr;
    }
    recorded->draws_ = std::move(rec.draws);
    return recorded;
  }
  int64_t graph_replays() const override { return graph_replays_.load(std::memory_order_relaxed); }

 private:
  void use() { cuda_check(cudaSetDevice(device_), "cudaSetDevice"); }
  // *total = Σ_r ‖a[r]‖₂, queued on the stream in two passes whose order depends on the shape alone.
  void queue_row_norm_sum(double* total, Mat<float> a) {
    double* partials = norm_partials_.data();
    row_norm_partials_k<<<NORM_BLOCKS, GRID_THREADS, 0, stream_>>>(partials, a.data, a.rows, a.cols);
    launch_check("sum_row_norms");
    sum_partials_k<<<1, NORM_BLOCKS, 0, stream_>>>(total, partials);
    launch_check("sum_row_norms");
  }
  void draw(Draw kind, float* f, int32_t* i, int64_t n, const RngStream& s, uint64_t offset, float lo, float hi,
            uint32_t bound) {
    if (n <= 0) return;
    const int64_t blocks = static_cast<int64_t>((offset + n - 1) / 4 - offset / 4 + 1);
    random_k<<<grid_blocks(blocks), GRID_THREADS, 0, stream_>>>(kind, f, i, n, s, offset, lo, hi, bound);
    launch_check("random draw");
    if (recording_ && s.step == recording_->first) {
      // the node just recorded is the one the stream's next node would depend on
      cudaStreamCaptureStatus status;
      const cudaGraphNode_t* deps = nullptr;
      size_t n_deps = 0;
      if (cudaStreamGetCaptureInfo(stream_, &status, nullptr, nullptr, &deps, nullptr, &n_deps) != cudaSuccess ||
          status != cudaStreamCaptureStatusActive || n_deps != 1) {
        recording_->failed = true;
        return;
      }
      recording_->draws.push_back({deps[0], DrawArgs{kind, f, i, n, s, offset, lo, hi, bound,
                                                     dim3(grid_blocks(blocks)), dim3(GRID_THREADS)}});
    }
  }

  int device_;
  bool tf32_;
  size_t memory_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  CachingAllocator memory_;
  std::unique_ptr<FusedMlp> fused_;
  std::unique_ptr<CudaImageOps> image_ops_;
  Array<double> norm_partials_;  // NORM_BLOCKS partial sums of row norms, then two totals
  StepRecording* recording_ = nullptr;  // while record_step records a step
  std::atomic<int64_t> graph_replays_{0};
};

}  // namespace

std::unique_ptr<Ops<float>> make_cuda_ops(int device, Precision precision) {
  const GpuProbe& p = probe_gpus();
  const std::string asked = "--device cuda:" + std::to_string(device);
  if (p.devices.empty()) throw std::runtime_error(asked + ": " + p.problem);
  if (device < 0 || device >= static_cast<int>(p.devices.size()))
    throw std::runtime_error(asked + ": there " + (p.devices.size() == 1 ? "is 1 GPU (cuda:0)" : "are " +
                             std::to_string(p.devices.size()) + " GPUs (cuda:0 to cuda:" +
                             std::to_string(p.devices.size() - 1) + ")"));
  const GpuInfo& g = p.devices[device];
  if (!g.usable) throw std::runtime_error(asked + " (" + g.name + "): " + g.problem);
  return std::make_unique<CudaOps>(device, g.cc_major >= 8 ? precision : Precision::fp32);
}

}  // namespace ncsn
