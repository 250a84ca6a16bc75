// The CUDA backend as the rest of the core sees it: plain C++, no CUDA headers, so that code built
// without nvcc can include it. Loading the addon touches no CUDA API; the first probe does.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../core/ops.h"

namespace ncsn {

struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  size_t memory_bytes = 0;
  int multiprocessors = 0;
  bool usable = false;
  std::string problem;  // why a present GPU cannot be used
};

struct GpuProbe {
  int driver_version = 0;   // e.g. 13000 for CUDA 13.0; 0 when no driver is installed
  int runtime_version = 0;  // the CUDA runtime linked into the addon
  std::vector<GpuInfo> devices;
  std::string problem;      // why no GPU is usable, when none is
  std::string compiled_archs;
};

// The GPUs, their drivers and whether each can run our kernels; computed once, then cached.
// Creates no CUDA context.
const GpuProbe& probe_gpus();

// "" when a build for `archs` (CMake's list, e.g. "80-real 90-real 120-virtual") has kernels a GPU
// of compute capability major.minor can run, else why not.
std::string kernel_image_problem(int major, int minor, const std::string& archs);

// The backend on GPU `device`, after a test launch there; throws std::runtime_error naming the
// problem when it is unusable.
// precision: the op-by-op matrix products and the convolutions on the tensor cores (TF32, or BF16
// for the convolutions), which GPUs of compute capability below 8.0 lack: they run FP32.
std::unique_ptr<Ops<float>> make_cuda_ops(int device, Precision precision = Precision::fp32);

}  // namespace ncsn
