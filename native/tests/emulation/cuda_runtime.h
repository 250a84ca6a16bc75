// The parts of CUDA that native/cuda uses, emulated on the host for bench/emulate-cuda.sh, so that
// the kernels' indexing, tiling, reductions and the backend's recorded steps are checked against
// the CPU where there is no GPU. bench/emulate-cuda.sh rewrites each launch `k<<<g, b, s, st>>>(…)`
// into emu_launch(g, b, s, st, k, …).
//
// A launch runs its blocks one after another on the calling thread. A block's threads are fibers
// (a stack each and a switch of the callee-saved registers, x86-64 only; ucontext's switch makes
// a system call for the signal mask and took 90 % of the time). Between two __syncthreads the
// block's warps run one after another, each lane until it reaches the barrier or returns, the
// lanes of a warp meeting at each shuffle (run_block). Static __shared__ arrays are function
// statics, one block at a time holds them; dynamic shared memory is a buffer per launch. Device
// memory is host memory. A stream runs its work as it is queued, except while it is being
// captured: then launches are recorded as the nodes of a graph, which cudaGraphLaunch replays.
//
// What it proves: the arithmetic and the index maps, the record/replay logic, and, run in both
// orders (EMULATE_ORDER=reverse, reversed()), that no missing barrier changes a result: a race
// between two threads reads the old value in one order and the new one in the other; built with
// AddressSanitizer (bench/emulate-cuda.sh), that no kernel reads or writes past an allocation or a
// shared array. What it does not: races that no test's output shows, timing. The tensor cores are
// emulated by native/tests/emulation/mma.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <vector>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct float4 {
  float x, y, z, w;
};
// per OS thread: a launch runs its fibers on the thread that launched it
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
using std::max;
using std::min;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorNoDevice = 100,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorUnsupportedPtxVersion = 222,
  cudaErrorDevicesUnavailable = 46,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
};
inline const char* cudaGetErrorName(cudaError_t) { return "cudaError (emulated)"; }
inline const char* cudaGetErrorString(cudaError_t) { return "an error of the emulated CUDA runtime"; }

namespace emu {

// ---- fibers: the threads of one block ----

#if !defined(__x86_64__)
#error "the CUDA emulation's fibers are written for x86-64"
#endif
// Saves the callee-saved registers on the current stack and its pointer in *from, then resumes the
// stack at `to` (made by emu_switch itself, or by start_fiber below). Weak: every file that
// includes this header defines it, and the linker keeps one.
extern "C" void emu_switch(void** from, void* to);
asm(R"(
  .text
  .weak emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");

// Where a thread stands: free to run on, stopped at a __syncthreads (its block meets there), at
// a warp shuffle (its warp meets there), or at its end.
enum class Stop : char { none, barrier, warp, done };

struct Block {
  unsigned threads = 0;
  std::vector<void*> sp;  // each fiber's saved stack pointer
  std::vector<Stop> stop;
  void* scheduler = nullptr;
  unsigned current = 0;
  const std::function<void()>* body = nullptr;
};
inline thread_local Block* block = nullptr;
inline thread_local std::vector<std::unique_ptr<char[]>> stacks;
constexpr size_t kStackBytes = 256 * 1024;
inline thread_local std::vector<unsigned char> dynamic_shared;
inline thread_local std::vector<double> shuffle_slots;

[[noreturn]] inline void fiber_main() {
  (*block->body)();
  block->stop[block->current] = Stop::done;
  emu_switch(&block->sp[block->current], block->scheduler);
  __builtin_unreachable();
}

// A stack that emu_switch enters at fiber_main: six zero registers, then fiber_main as the return
// address, placed so that fiber_main starts with the stack aligned as after a call.
inline void* start_fiber(char* stack) {
#if defined(__SANITIZE_ADDRESS__)
  // The frames of the stack's last fiber never returned: their red zones are still marked.
  __asan_unpoison_memory_region(stack, kStackBytes);
#endif
  auto top = reinterpret_cast<uintptr_t>(stack + kStackBytes) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<void**>(top);
  *--slot = nullptr;  // fiber_main's own return address: it never returns
  *--slot = reinterpret_cast<void*>(&fiber_main);
  for (int r = 0; r < 6; ++r) *--slot = nullptr;
  return slot;
}

// The calling fiber waits here until every live thread of its block (Stop::barrier), or every
// lane of its warp (Stop::warp), has arrived.
inline void stop_at(Stop where) {
  Block& b = *block;
  b.stop[b.current] = where;
  emu_switch(&b.sp[b.current], b.scheduler);
}

// EMULATE_ORDER=reverse runs the warps of a block, the lanes of a warp and the blocks of a grid
// from the last to the first. A race between two threads of a block (a barrier missing between a write and
// a read, or a write over a value still to be read) gives the one result in one order and the
// other in the other, so a kernel that matches the CPU in both orders has none that changes its
// output; a kernel that reads another block's writes of the same launch fails in one order.
inline bool reversed() {
  static const bool r = [] {
    const char* order = std::getenv("EMULATE_ORDER");
    return order != nullptr && std::strcmp(order, "reverse") == 0;
  }();
  return r;
}

// Between two barriers the warps run one after another, each to the barrier, its lanes meeting
// at every shuffle on the way: as on a GPU, a shuffle orders the lanes of one warp and nothing
// else, so a barrier missing between warps is not hidden by a shuffle next to it.
inline void run_block(unsigned threads, const std::function<void()>& body) {
  Block b;
  b.threads = threads;
  b.sp.resize(threads);
  b.stop.assign(threads, Stop::none);
  b.body = &body;
  while (stacks.size() < threads) stacks.emplace_back(new char[kStackBytes]);
  for (unsigned t = 0; t < threads; ++t) b.sp[t] = start_fiber(stacks[t].get());
  Block* outer = block;
  block = &b;
  const unsigned warps = (threads + 31) / 32;
  for (;;) {
    bool at_barrier = false;
    for (unsigned i = 0; i < warps; ++i) {
      const unsigned w = reversed() ? warps - 1 - i : i, first = w * 32, end = std::min(threads, first + 32);
      for (;;) {
        for (unsigned j = first; j < end; ++j) {
          const unsigned t = reversed() ? first + end - 1 - j : j;
          if (b.stop[t] != Stop::none) continue;
          b.current = t;
          threadIdx = dim3(t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y));
          emu_switch(&b.scheduler, b.sp[t]);
        }
        const auto at_shuffle = std::count(&b.stop[first], &b.stop[0] + end, Stop::warp);
        if (at_shuffle == 0) break;
        if (at_shuffle != static_cast<std::ptrdiff_t>(end - first)) {
          block = outer;
          throw std::logic_error("emulated CUDA: a warp shuffle that not every lane of the warp reached");
        }
        std::fill(&b.stop[first], &b.stop[0] + end, Stop::none);
      }
      for (unsigned t = first; t < end; ++t) at_barrier |= b.stop[t] == Stop::barrier;
    }
    if (!at_barrier) break;
    for (Stop& s : b.stop)
      if (s == Stop::barrier) s = Stop::none;
  }
  block = outer;
}

// ---- streams, launches and graphs ----

struct Node {
  std::function<void()> run;
  std::function<void(void**)> set_params;  // a kernel node's arguments from cudaKernelNodeParams
};
struct Graph {
  std::vector<Node> nodes;
};
struct Stream {
  Graph* capturing = nullptr;
  bool capture_failed = false;
};
inline Stream default_stream;
inline Stream* stream_of(void* s) { return s ? static_cast<Stream*>(s) : &default_stream; }

template <class... P>
void run_kernel(dim3 grid, dim3 block_dim, size_t shared_bytes, void (*kernel)(P...), const std::tuple<P...>& args) {
  gridDim = grid;
  blockDim = block_dim;
  // Not zero: a kernel must not rely on it. A new buffer of exactly the launch's size, so that
  // AddressSanitizer (bench/emulate-cuda.sh) sees a read past its end.
  dynamic_shared = std::vector<unsigned char>(shared_bytes, 0xA5);
  const std::function<void()> body = [&] { std::apply(kernel, args); };
  const unsigned threads = block_dim.x * block_dim.y * block_dim.z;
  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  for (uint64_t i = 0; i < blocks; ++i) {
    const uint64_t n = reversed() ? blocks - 1 - i : i;
    blockIdx = dim3(static_cast<unsigned>(n % grid.x), static_cast<unsigned>(n / grid.x % grid.y),
                    static_cast<unsigned>(n / (uint64_t{grid.x} * grid.y)));
    run_block(threads, body);
  }
}

// The dynamic shared memory a kernel may launch with: 48 KiB, or what cudaFuncSetAttribute allowed
// it (a GPU refuses a launch that asks for more).
struct SharedLimits {
  std::mutex mu;
  std::map<const void*, size_t> bytes;
};
inline SharedLimits& shared_limits() {
  static SharedLimits limits;
  return limits;
}
inline size_t dynamic_shared_limit(const void* kernel) {
  SharedLimits& l = shared_limits();
  std::lock_guard<std::mutex> lock(l.mu);
  const auto it = l.bytes.find(kernel);
  return it == l.bytes.end() ? 48 * 1024 : it->second;
}

template <size_t... I, class Tuple>
void set_from(Tuple& args, void** params, std::index_sequence<I...>) {
  ((std::get<I>(args) = *static_cast<std::tuple_element_t<I, Tuple>*>(params[I])), ...);
}

}  // namespace emu

using cudaStream_t = void*;
using cudaGraph_t = emu::Graph*;
using cudaGraphExec_t = emu::Graph*;
using cudaGraphNode_t = size_t;  // the node's index in its graph, plus one
struct cudaKernelNodeParams {
  void* func = nullptr;
  dim3 gridDim, blockDim;
  unsigned sharedMemBytes = 0;
  void** kernelParams = nullptr;
  void** extra = nullptr;
};

inline cudaError_t& emu_last_error() {
  static cudaError_t e = cudaSuccess;
  return e;
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu_last_error();
  emu_last_error() = cudaSuccess;
  return e;
}

// kernel<<<grid, block, shared, stream>>>(args…), with the arguments converted to the kernel's
// parameter types as a launch converts them.
template <class... P, class... A>
void emu_launch(dim3 grid, dim3 block_dim, size_t shared_bytes, cudaStream_t stream, void (*kernel)(P...), A&&... a) {
  static_assert(sizeof...(P) == sizeof...(A), "a launch passes one argument per kernel parameter");
  if (block_dim.x * block_dim.y * block_dim.z > 1024 || grid.y > 65535 || grid.z > 65535 || grid.x == 0 ||
      shared_bytes > emu::dynamic_shared_limit(reinterpret_cast<const void*>(kernel))) {
    emu_last_error() = cudaErrorInvalidValue;  // an invalid configuration, as a GPU refuses it
    return;
  }
  std::tuple<P...> args(static_cast<P>(std::forward<A>(a))...);
  emu::Stream* s = emu::stream_of(stream);
  if (!s->capturing) {
    emu::run_kernel(grid, block_dim, shared_bytes, kernel, args);
    return;
  }
  auto held = std::make_shared<std::tuple<P...>>(args);
  s->capturing->nodes.push_back(
      {[=] { emu::run_kernel(grid, block_dim, shared_bytes, kernel, *held); },
       [=](void** params) { emu::set_from(*held, params, std::index_sequence_for<P...>{}); }});
}

// what `extern __shared__ T name[]` points at (bench/emulate-cuda.sh rewrites the declaration)
inline unsigned char* emu_dynamic_shared() { return emu::dynamic_shared.data(); }

inline void __syncthreads() { emu::stop_at(emu::Stop::barrier); }

// The multi-function unit's exp and log, here the host's, more accurate: the comparisons with the
// CPU that the emulation runs hold to the GPU's bounds either way.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }

// A block's threads take turns and switch only at barriers and shuffles, and blocks run one after
// another, so a read-modify-write is atomic as written.
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long compare, unsigned long long value) {
  const unsigned long long old = *a;
  if (old == compare) *a = value;
  return old;
}
inline unsigned long long atomicMin(unsigned long long* a, unsigned long long value) {
  const unsigned long long old = *a;
  if (value < old) *a = value;
  return old;
}

// Every lane of the warp writes its value, all meet, each reads its partner's, all meet again (the
// mask 0xffffffff says that every lane of the warp takes part).
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
  emu::Block& b = *emu::block;
  auto& slots = emu::shuffle_slots;
  slots.resize(b.threads);
  const unsigned t = b.current, lane = t % 32, partner_lane = lane ^ static_cast<unsigned>(lane_mask);
  const unsigned partner = partner_lane / width == lane / width ? t - lane + partner_lane : t;
  slots[t] = static_cast<double>(v);
  emu::stop_at(emu::Stop::warp);
  const T got = static_cast<T>(slots[partner]);
  emu::stop_at(emu::Stop::warp);
  return got;
}

// ---- memory ----

enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
inline bool emu_capture_refuses(cudaStream_t s) {
  emu::Stream* st = emu::stream_of(s);
  if (!st->capturing) return false;
  st->capture_failed = true;  // a copy to or from the host, or a sync, cannot be captured
  return true;
}
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr) {
  if (kind != cudaMemcpyDeviceToDevice && emu_capture_refuses(s)) return cudaErrorStreamCaptureUnsupported;
  emu::Stream* st = emu::stream_of(s);
  if (st->capturing) {
    st->capturing->nodes.push_back({[=] { std::memmove(dst, src, bytes); }, nullptr});
    return cudaSuccess;
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t s = nullptr) {
  emu::Stream* st = emu::stream_of(s);
  if (st->capturing) {
    st->capturing->nodes.push_back({[=] { std::memset(p, v, bytes); }, nullptr});
    return cudaSuccess;
  }
  std::memset(p, v, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = size_t(16) << 30;
  return cudaSuccess;
}

// ---- devices and streams ----

enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin, cudaDevAttrMultiProcessorCount, cudaDevAttrComputeMode };
enum cudaComputeMode { cudaComputeModeDefault, cudaComputeModeExclusive, cudaComputeModeProhibited };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
// One GPU with an H100's limits, but four multiprocessors to keep grids sized to the GPU small.
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 227 * 1024 : a == cudaDevAttrMultiProcessorCount ? 4 : 0;
  return cudaSuccess;
}
struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t totalGlobalMem;
  int multiProcessorCount;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::strcpy(p->name, "host emulation of an sm_90 GPU");
  p->major = 9;
  p->minor = 0;
  p->totalGlobalMem = size_t(16) << 30;
  p->multiProcessorCount = 4;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
template <typename F>
cudaError_t cudaFuncSetAttribute(F kernel, cudaFuncAttribute, int bytes) {
  if (bytes < 0 || bytes > 227 * 1024) return cudaErrorInvalidValue;
  emu::SharedLimits& l = emu::shared_limits();
  std::lock_guard<std::mutex> lock(l.mu);
  l.bytes[reinterpret_cast<const void*>(kernel)] = static_cast<size_t>(bytes);
  return cudaSuccess;
}
template <typename F>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, F, int, size_t) {
  *blocks = 1;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

enum { cudaStreamNonBlocking = 1 };
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new emu::Stream;
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete static_cast<emu::Stream*>(s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return emu_capture_refuses(s) ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

// ---- stream capture and graphs ----

enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal, cudaStreamCaptureModeRelaxed };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone, cudaStreamCaptureStatusActive, cudaStreamCaptureStatusInvalidated };
struct cudaGraphEdgeData;

inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  emu::Stream* st = emu::stream_of(s);
  if (st->capturing || !s) return cudaErrorInvalidValue;
  st->capturing = new emu::Graph;
  st->capture_failed = false;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  emu::Stream* st = emu::stream_of(s);
  if (!st->capturing) return cudaErrorInvalidValue;
  emu::Graph* g = st->capturing;
  st->capturing = nullptr;
  if (st->capture_failed) {
    delete g;
    *graph = nullptr;
    return cudaErrorStreamCaptureUnsupported;
  }
  *graph = g;
  return cudaSuccess;
}
// The last node captured is the one a following node depends on (a stream's capture is a chain).
inline cudaError_t cudaStreamGetCaptureInfo(cudaStream_t s, cudaStreamCaptureStatus* status, unsigned long long* id,
                                            cudaGraph_t* graph, const cudaGraphNode_t** deps,
                                            const cudaGraphEdgeData** edges, size_t* n_deps) {
  emu::Stream* st = emu::stream_of(s);
  static thread_local cudaGraphNode_t last;
  *status = st->capturing ? (st->capture_failed ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive)
                          : cudaStreamCaptureStatusNone;
  if (id) *id = 1;
  if (graph) *graph = st->capturing;
  if (edges) *edges = nullptr;
  last = st->capturing ? st->capturing->nodes.size() : 0;
  if (deps) *deps = &last;
  if (n_deps) *n_deps = st->capturing && !st->capturing->nodes.empty() ? 1 : 0;
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long = 0) {
  *exec = new emu::Graph(*graph);
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecKernelNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node, const cudaKernelNodeParams* p) {
  if (node == 0 || node > exec->nodes.size() || !exec->nodes[node - 1].set_params) return cudaErrorInvalidValue;
  exec->nodes[node - 1].set_params(p->kernelParams);
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  for (auto& n : exec->nodes) n.run();
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
