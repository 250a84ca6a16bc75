// The device probe: driver, devices, compute capability, and whether this build has kernels for
// each GPU, all without creating a CUDA context (each costs hundreds of MB of GPU memory, and on a
// GPU in exclusive-process mode would lock other processes out). The GPU a model runs on gets a
// test launch when its backend is made, since only a launch shows every way a kernel can fail.
#include <cctype>
#include <sstream>

#include "check.cuh"
#include "cuda_backend.h"

#ifndef NCSN_CUDA_ARCHS
#define NCSN_CUDA_ARCHS "unknown"
#endif

namespace ncsn {

std::string kernel_image_problem(int major, int minor, const std::string& archs) {
  std::istringstream tokens(archs);
  std::string t;
  const int cc = major * 10 + minor;
  while (tokens >> t) {
    size_t digits = 0;
    while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
    if (digits == 0) continue;
    const int arch = std::stoi(t.substr(0, digits));
    const std::string rest = t.substr(digits);
    const bool specific = !rest.empty() && (rest[0] == 'a' || rest[0] == 'f');  // sm_90a and the like
    const bool sass = rest.find("virtual") == std::string::npos;
    const bool ptx = rest.find("real") == std::string::npos;
    // SASS for sm_XY runs on X.Y and later minors of X; PTX for compute_XY is compiled by the
    // driver for X.Y and every later GPU.
    if (sass && (specific ? arch == cc : arch / 10 == major && arch % 10 <= minor)) return "";
    if (ptx && !specific && arch <= cc) return "";
  }
  return "this build has no kernels for compute capability " + std::to_string(major) + "." + std::to_string(minor) +
         " (compiled for " + archs + ")";
}

namespace {

__global__ void probe_kernel(int* flag) { *flag = 42; }

std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

}  // namespace

std::string test_launch() {
  int* flag = nullptr;
  cudaError_t e = cudaMalloc(&flag, sizeof(int));
  if (e != cudaSuccess) {
    cudaGetLastError();
    return std::string("cannot allocate on it: ") + cudaGetErrorString(e);
  }
  probe_kernel<<<1, 1>>>(flag);
  e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  int value = 0;
  if (e == cudaSuccess) e = cudaMemcpy(&value, flag, sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(flag);
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorUnsupportedPtxVersion)
    return std::string("this build has no kernels for it (compiled for ") + NCSN_CUDA_ARCHS + "): " + cudaGetErrorString(e);
  if (e != cudaSuccess) return std::string("a test kernel failed: ") + cudaGetErrorString(e);
  if (value != 42) return "a test kernel ran but wrote the wrong value";
  return "";
}

namespace {

GpuProbe run_probe() {
  GpuProbe p;
  p.compiled_archs = NCSN_CUDA_ARCHS;
  cudaRuntimeGetVersion(&p.runtime_version);
  if (cudaDriverGetVersion(&p.driver_version) != cudaSuccess || p.driver_version == 0) {
    p.problem = "no NVIDIA driver is installed";
    return p;
  }
  if (p.driver_version / 1000 < p.runtime_version / 1000) {
    p.problem = "the NVIDIA driver supports CUDA " + version_text(p.driver_version) + " but this build needs CUDA " +
                version_text(p.runtime_version) + " (driver 580 or newer)";
    return p;
  }
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
    p.problem = "no CUDA device is visible (check CUDA_VISIBLE_DEVICES)";
    return p;
  }
  if (e != cudaSuccess) {
    p.problem = std::string("CUDA cannot start: ") + cudaGetErrorString(e);
    return p;
  }
  for (int i = 0; i < n; ++i) {
    GpuInfo g;
    g.index = i;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      g.problem = "cannot read its properties";
      p.devices.push_back(g);
      continue;
    }
    g.name = prop.name;
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    g.memory_bytes = prop.totalGlobalMem;
    g.multiprocessors = prop.multiProcessorCount;
    if (prop.major * 10 + prop.minor < 75) {
      g.problem = "compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                  " is older than 7.5, the oldest CUDA 13 supports";
    } else if (int mode = 0; cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, i) == cudaSuccess &&
                                mode == cudaComputeModeProhibited) {
      g.problem = "its compute mode is set to prohibited (nvidia-smi -c), so no process may use it";
    } else {
      g.problem = kernel_image_problem(prop.major, prop.minor, NCSN_CUDA_ARCHS);
    }
    g.usable = g.problem.empty();
    p.devices.push_back(g);
  }
  bool any = false;
  for (const auto& g : p.devices) any = any || g.usable;
  if (!any) p.problem = "no GPU is usable: " + p.devices[0].name + ": " + p.devices[0].problem;
  return p;
}

}  // namespace

const GpuProbe& probe_gpus() {
  static const GpuProbe probe = run_probe();
  return probe;
}

}  // namespace ncsn
